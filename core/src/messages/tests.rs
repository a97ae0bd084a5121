//! The message streams between members over a seeded lossy wire, on a virtual clock.

use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use web_time::Instant;

use super::*;

/// A wire between members that loses, copies and delays (and so reorders) control messages.
struct Net {
    rng: ChaCha8Rng,
    loss: f64,
    duplicate: f64,
    /// Each message takes 5 ms plus up to this much.
    jitter: Duration,
    in_flight: Vec<(Instant, u16, u16, Control)>,
}

impl Net {
    fn new(seed: u64, loss: f64, duplicate: f64, jitter: Duration) -> Self {
        Net {
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss,
            duplicate,
            jitter,
            in_flight: Vec::new(),
        }
    }

    fn send(&mut self, now: Instant, from: u16, to: u16, msg: Control) {
        if self.rng.gen_bool(self.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.rng.gen_range(0..=self.jitter.as_micros() as u64);
            let at = now + Duration::from_millis(5) + Duration::from_micros(jitter);
            self.in_flight.push((at, from, to, msg.clone()));
        }
    }

    /// What has arrived by `now`, in arrival order.
    fn due(&mut self, now: Instant) -> Vec<(u16, u16, Control)> {
        self.in_flight.sort_by_key(|(at, ..)| *at);
        let n = self.in_flight.partition_point(|(at, ..)| *at <= now);
        self.in_flight
            .drain(..n)
            .map(|(_, from, to, msg)| (from, to, msg))
            .collect()
    }
}

/// Members `0..n` of one match, each with its streams to all the others.
fn members(n: u16, seed: u64) -> Vec<MessageStreams<u16>> {
    (0..n)
        .map(|me| {
            let mut s = MessageStreams::new(seed * 100 + u64::from(me));
            for p in (0..n).filter(|&p| p != me) {
                s.add_member(p);
            }
            s
        })
        .collect()
}

/// One step of `dt`: every member sends what is due, the wire delivers what has arrived.
fn step(ms: &mut [MessageStreams<u16>], net: &mut Net, now: &mut Instant, dt: Duration) {
    for (me, s) in ms.iter_mut().enumerate() {
        while let Some((to, msg)) = s.poll_transmit(*now) {
            net.send(*now, me as u16, to, msg);
        }
    }
    *now += dt;
    for (from, to, msg) in net.due(*now) {
        assert!(ms[to as usize].handle(&from, &msg));
    }
}

/// The bounds every member keeps, whatever it was sent.
fn assert_bounded(s: &MessageStreams<u16>) {
    assert!(s.inbox.len() <= MAX_UNREAD);
    for m in s.members.values() {
        assert!(m.inc.held.len() < RECEIVE_WINDOW as usize);
        assert!(m.inc.retired.len() <= RETIRED_STREAMS);
        assert!(m.out.unacked.len() <= MAX_IN_FLIGHT + MAX_QUEUED);
        let sent = m.out.unacked.iter().filter(|p| p.sent_at.is_some()).count();
        assert!(sent <= MAX_IN_FLIGHT);
    }
    assert!(s.departed.len() <= DEPARTED_KEPT);
}

/// Message `i` of sender `from` to `to`, as data.
fn data(from: u16, to: u16, i: u32) -> Vec<u8> {
    format!("{from}>{to} {i}").into_bytes()
}

/// Sends `count` messages from every member to every other (as fast as the queues take them)
/// over a wire with `loss`, `duplicate` and `jitter`, and checks that each arrives exactly
/// once, in order. Returns the virtual time it took.
fn exchange(
    n: u16,
    count: u32,
    seed: u64,
    loss: f64,
    duplicate: f64,
    jitter: Duration,
) -> Duration {
    let mut ms = members(n, seed);
    let mut net = Net::new(seed, loss, duplicate, jitter);
    let start = Instant::now();
    let mut now = start;
    // next[from][to]: the next message `from` sends `to`; got[to][from]: the next expected.
    let mut next = vec![vec![0u32; n as usize]; n as usize];
    let mut got = vec![vec![0u32; n as usize]; n as usize];
    let mut steps = 0;
    loop {
        for from in 0..n {
            for to in (0..n).filter(|&t| t != from) {
                while next[from as usize][to as usize] < count {
                    let i = next[from as usize][to as usize];
                    match ms[from as usize].send(
                        Recipients::One(to),
                        (i % 256) as u8,
                        &data(from, to, i),
                    ) {
                        Ok(()) => next[from as usize][to as usize] += 1,
                        Err(MessageError::QueueFull { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
        for (to, s) in ms.iter_mut().enumerate() {
            while let Some(m) = s.poll_message() {
                let i = got[to][m.from as usize];
                assert_eq!(m.data, data(m.from, to as u16, i), "{} to {to}", m.from);
                assert_eq!(m.op, (i % 256) as u8);
                got[to][m.from as usize] += 1;
            }
            assert_bounded(s);
        }
        let done = (0..n as usize).all(|t| (0..n as usize).all(|f| f == t || got[t][f] == count));
        if done && ms.iter().all(|s| s.all_acknowledged()) {
            break;
        }
        steps += 1;
        assert!(steps < 100_000, "stuck: {got:?}");
    }
    for s in &ms {
        let st = s.stats();
        assert_eq!(st.received, u64::from(count) * u64::from(n - 1));
        assert_eq!(st.acknowledged, u64::from(count) * u64::from(n - 1));
    }
    now - start
}

#[test]
fn a_clean_wire_delivers_everything_in_order() {
    let took = exchange(2, 3000, 1, 0.0, 0.0, Duration::ZERO);
    // The pacing (about 30 bytes a message), not the resends, sets the pace.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn loss_copies_and_reordering_lose_repeat_and_reorder_nothing() {
    for seed in 1..=4 {
        exchange(3, 1500, seed, 0.2, 0.1, Duration::from_millis(40));
    }
    // Very lossy, very jumbled.
    exchange(2, 500, 9, 0.5, 0.3, Duration::from_millis(150));
}

#[test]
fn copies_and_reordering_are_counted() {
    let mut ms = members(2, 3);
    let mut now = Instant::now();
    for i in 0..5u8 {
        ms[0].send(Recipients::Everyone, i, &[i]).unwrap();
    }
    let mut sent = Vec::new();
    while let Some((to, msg)) = ms[0].poll_transmit(now) {
        assert_eq!(to, 1);
        sent.push(msg);
    }
    assert_eq!(sent.len(), 5);
    // Before its first message, a stream is unknown: what comes ahead of it is dropped.
    ms[1].handle(&0, &sent[3]);
    assert_eq!(ms[1].stats().dropped, 1);
    ms[1].handle(&0, &sent[0]);
    // The rest backwards, each twice: held until the gap fills, then all delivered in order.
    for msg in sent[1..].iter().rev() {
        ms[1].handle(&0, msg);
        ms[1].handle(&0, msg);
    }
    let ops: Vec<u8> = std::iter::from_fn(|| ms[1].poll_message())
        .map(|m| m.op)
        .collect();
    assert_eq!(ops, [0, 1, 2, 3, 4]);
    let st = ms[1].stats();
    assert_eq!((st.received, st.held, st.duplicates), (5, 3, 4));
    // One acknowledgement for the lot.
    let acks: Vec<_> = std::iter::from_fn(|| ms[1].poll_transmit(now)).collect();
    assert_eq!(acks.len(), 1);
    let (to, ack) = acks[0].clone();
    assert_eq!(to, 0);
    assert!(matches!(ack, Control::MessageAck { next: 5, .. }));
    ms[0].handle(&1, &ack);
    assert!(ms[0].all_acknowledged());
    now += RESEND_AFTER * 2;
    assert_eq!(ms[0].poll_transmit(now), None, "nothing to resend");
}

#[test]
fn unacknowledged_messages_are_sent_again_after_200_ms() {
    let mut ms = members(2, 4);
    let t0 = Instant::now();
    ms[0].send(Recipients::One(1), 1, b"x").unwrap();
    assert!(ms[0].poll_transmit(t0).is_some());
    assert_eq!(ms[0].poll_transmit(t0), None);
    assert_eq!(ms[0].poll_timeout(), Some(t0 + RESEND_AFTER));
    assert_eq!(
        ms[0].poll_transmit(t0 + RESEND_AFTER - Duration::from_millis(1)),
        None
    );
    let again = ms[0].poll_transmit(t0 + RESEND_AFTER);
    assert!(matches!(again, Some((1, Control::Message { seq: 0, .. }))));
    assert_eq!(ms[0].stats().resent, 1);
    assert_eq!(ms[0].unacknowledged(&1), 1);
}

#[test]
fn at_most_64_in_flight_and_1024_waiting() {
    let mut ms = members(2, 5);
    let now = Instant::now();
    for _ in 0..MAX_IN_FLIGHT + MAX_QUEUED {
        ms[0].send(Recipients::One(1), 0, b"m").unwrap();
    }
    let err = ms[0].send(Recipients::One(1), 0, b"m").unwrap_err();
    assert!(matches!(err, MessageError::QueueFull { .. }), "{err}");
    let sent = std::iter::from_fn(|| ms[0].poll_transmit(now)).count();
    assert_eq!(sent, MAX_IN_FLIGHT);
    // The window moves with the acknowledgements.
    let ack = ack_of(&ms[0], 1, 10);
    ms[0].handle(&1, &ack);
    let sent: Vec<u32> = std::iter::from_fn(|| ms[0].poll_transmit(now))
        .map(|(_, m)| match m {
            Control::Message { seq, .. } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent, (64..74).collect::<Vec<_>>());
    assert!(ms[0].send(Recipients::One(1), 0, b"m").is_ok());
}

/// The acknowledgement `member`'s stream to `to` would get with `next`.
fn ack_of(s: &MessageStreams<u16>, to: u16, next: u32) -> Control {
    Control::MessageAck {
        stream: s.members[&to].out.stream,
        next,
    }
}

#[test]
fn refused_sends_queue_nothing() {
    let mut ms = members(3, 6);
    let big = vec![0; MAX_MESSAGE_DATA + 1];
    assert_eq!(
        ms[0].send(Recipients::Everyone, 0, &big),
        Err(MessageError::TooLarge {
            len: MAX_MESSAGE_DATA + 1
        })
    );
    assert!(ms[0].send(Recipients::Everyone, 0, &big[1..]).is_ok());
    let err = ms[0]
        .send(Recipients::Set(vec![1, 7]), 0, b"x")
        .unwrap_err();
    assert_eq!(err.to_string(), "7 is not a member of the match");
    assert_eq!(ms[0].unacknowledged(&1), 1, "nothing queued for 1 either");
    // One full queue refuses the message to the whole set.
    for _ in 1..MAX_IN_FLIGHT + MAX_QUEUED {
        ms[0].send(Recipients::One(2), 0, b"x").unwrap();
    }
    assert!(matches!(
        ms[0].send(Recipients::Everyone, 0, b"x"),
        Err(MessageError::QueueFull { .. })
    ));
    assert_eq!(ms[0].unacknowledged(&1), 1);
    // A set naming a member twice sends it once; an empty set sends nothing.
    ms[0].send(Recipients::Set(vec![1, 1]), 0, b"y").unwrap();
    assert_eq!(ms[0].unacknowledged(&1), 2);
    ms[0].send(Recipients::Set(vec![]), 0, b"y").unwrap();
    assert_eq!(ms[0].unacknowledged(&1), 2);
}

#[test]
fn a_member_that_restarts_starts_a_new_stream() {
    let mut a = MessageStreams::new(1);
    a.add_member(2u16);
    let now = Instant::now();
    let mut b = MessageStreams::new(2);
    b.add_member(1u16);
    for i in 0..3u8 {
        b.send(Recipients::One(1), i, &[i]).unwrap();
    }
    let old: Vec<Control> = std::iter::from_fn(|| b.poll_transmit(now))
        .map(|(_, m)| m)
        .collect();
    for m in &old[..2] {
        a.handle(&2, m);
    }
    // b restarts: a new process, a new stream, seq from 0.
    let mut b = MessageStreams::new(3);
    b.add_member(1u16);
    b.send(Recipients::One(1), 10, b"new").unwrap();
    let (_, first) = b.poll_transmit(now).unwrap();
    a.handle(&2, &first);
    // The old stream's last message, and a late copy of its first, arrive after.
    a.handle(&2, &old[2]);
    a.handle(&2, &old[0]);
    let got: Vec<u8> = std::iter::from_fn(|| a.poll_message())
        .map(|m| m.op)
        .collect();
    assert_eq!(got, [0, 1, 10]);
    // Only the new stream is acknowledged.
    let acks: Vec<_> = std::iter::from_fn(|| a.poll_transmit(now)).collect();
    assert_eq!(acks.len(), 1);
    b.handle(&1, &acks[0].1);
    assert!(b.all_acknowledged());
    b.send(Recipients::One(1), 11, b"more").unwrap();
    let (_, second) = b.poll_transmit(now).unwrap();
    a.handle(&2, &second);
    assert_eq!(a.poll_message().map(|m| m.op), Some(11));
}

#[test]
fn a_member_that_leaves_and_comes_back_continues() {
    let mut ms = members(2, 7);
    let mut net = Net::new(7, 0.0, 0.0, Duration::ZERO);
    let mut now = Instant::now();
    ms[1].send(Recipients::One(0), 1, b"before").unwrap();
    for _ in 0..3 {
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
    }
    assert_eq!(
        ms[0].poll_message().map(|m| m.data),
        Some(b"before".to_vec())
    );
    // 0 thinks 1 left, then sees it again: its own stream to 1 is new, 1's stream continues.
    ms[0].remove_member(&1);
    ms[0].send(Recipients::Everyone, 0, b"nobody").unwrap();
    assert_eq!(ms[0].unacknowledged(&1), 0);
    ms[0].add_member(1);
    ms[0].send(Recipients::One(1), 2, b"again").unwrap();
    ms[1].send(Recipients::One(0), 3, b"after").unwrap();
    for _ in 0..3 {
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
    }
    assert_eq!(
        ms[0].poll_message().map(|m| m.data),
        Some(b"after".to_vec())
    );
    assert_eq!(
        ms[1].poll_message().map(|m| m.data),
        Some(b"again".to_vec())
    );
    assert!(ms.iter().all(|s| s.all_acknowledged()));
}

#[test]
fn sequence_numbers_wrap() {
    let mut ms = members(2, 8);
    let start = u32::MAX - 40;
    ms[0].members.get_mut(&1).unwrap().out.next_seq = start;
    let stream = ms[0].members[&1].out.stream;
    let inc = &mut ms[1].members.get_mut(&0).unwrap().inc;
    inc.stream = Some(stream);
    inc.next = start;
    let mut net = Net::new(8, 0.2, 0.1, Duration::from_millis(30));
    let mut now = Instant::now();
    for i in 0..100u32 {
        ms[0].send(Recipients::One(1), 0, &i.to_le_bytes()).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2000 {
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
        got.extend(std::iter::from_fn(|| ms[1].poll_message()));
        if ms[0].all_acknowledged() && got.len() == 100 {
            break;
        }
    }
    let order: Vec<u32> = got
        .iter()
        .map(|m| u32::from_le_bytes(m.data[..].try_into().unwrap()))
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    assert_eq!(ms[1].members[&0].inc.next, start.wrapping_add(100));
}

#[test]
fn hostile_input_never_panics_and_stays_bounded() {
    let mut ms = members(2, 9);
    let now = Instant::now();
    ms[0].send(Recipients::One(1), 0, b"real").unwrap();
    let _ = std::iter::from_fn(|| ms[0].poll_transmit(now)).count();
    let real_stream = ms[0].members[&1].out.stream;
    // Acknowledgements of unknown streams, of our stream beyond what was sent, from a
    // stranger: all ignored.
    for ack in [
        Control::MessageAck {
            stream: 12345,
            next: 1,
        },
        Control::MessageAck { stream: 0, next: 1 },
        Control::MessageAck {
            stream: real_stream,
            next: 2,
        },
        Control::MessageAck {
            stream: real_stream,
            next: u32::MAX / 3,
        },
    ] {
        ms[0].handle(&1, &ack);
        ms[0].handle(&99, &ack);
    }
    assert_eq!(ms[0].unacknowledged(&1), 1);
    assert_eq!(ms[0].stats().acks_ignored, 8);
    // An old ack (behind what is acknowledged) is ignored quietly.
    ms[0].handle(
        &1,
        &Control::MessageAck {
            stream: real_stream,
            next: u32::MAX,
        },
    );
    assert_eq!(ms[0].unacknowledged(&1), 1);

    // Messages: far ahead, oversized, stream 0, from a stranger, not starting a stream.
    let msg = |stream, seq, len| Control::Message {
        stream,
        seq,
        op: 1,
        data: vec![0; len],
    };
    let b = &mut ms[1];
    b.handle(&0, &msg(5, 3, 1)); // not a stream start: dropped, no ack
    assert_eq!(b.poll_transmit(now), None);
    b.handle(&0, &msg(5, 0, 1)); // starts stream 5
    b.handle(&0, &msg(5, RECEIVE_WINDOW + 1, 1)); // beyond the window
    b.handle(&0, &msg(5, u32::MAX / 2 + 7, 1));
    b.handle(&0, &msg(5, 2, MAX_MESSAGE_DATA + 1)); // larger than any message
    b.handle(&0, &msg(0, 0, 1));
    b.handle(&77, &msg(5, 1, 1));
    assert_eq!(b.stats().received, 1);
    assert!(b.members[&0].inc.held.is_empty());
    // A flood of every seq in and past the window holds at most the window.
    for seq in 0..10_000u32 {
        b.handle(&0, &msg(5, seq.wrapping_mul(2_654_435_761), 64));
    }
    assert_bounded(b);
    // Random controls from random senders, interleaved with polls.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut t = now;
    for _ in 0..50_000 {
        let from = rng.gen_range(0..3u16);
        let stream = [5, real_stream, rng.gen(), 0][rng.gen_range(0..4)];
        let c = if rng.gen_bool(0.5) {
            msg(stream, rng.gen_range(0..600), rng.gen_range(0..4))
        } else {
            Control::MessageAck {
                stream,
                next: rng.gen_range(0..600),
            }
        };
        for s in ms.iter_mut() {
            s.handle(&from, &c);
            if rng.gen_bool(0.1) {
                let _ = s.send(Recipients::Everyone, 0, b"z");
            }
            if rng.gen_bool(0.05) {
                while s.poll_transmit(t).is_some() {}
                let _ = s.poll_timeout();
            }
            if rng.gen_bool(0.01) {
                while s.poll_message().is_some() {}
            }
            assert_bounded(s);
        }
        t += Duration::from_millis(1);
    }
}

#[test]
fn unread_messages_are_bounded_and_nothing_is_lost() {
    let mut ms = members(2, 10);
    let mut net = Net::new(10, 0.0, 0.0, Duration::ZERO);
    let mut now = Instant::now();
    let total = MAX_UNREAD + 500;
    let mut queued = 0;
    // The application reads nothing for a while.
    while ms[1].inbox.len() < MAX_UNREAD || queued < total {
        while queued < total
            && ms[0]
                .send(Recipients::One(1), 0, &(queued as u32).to_le_bytes())
                .is_ok()
        {
            queued += 1;
        }
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
        assert!(ms[1].inbox.len() <= MAX_UNREAD);
    }
    assert!(
        ms[1].stats().dropped > 0,
        "the reader's backlog held messages back"
    );
    // Then it reads everything: all arrive, once, in order.
    let mut got = Vec::new();
    for _ in 0..1000 {
        got.extend(std::iter::from_fn(|| ms[1].poll_message()));
        step(&mut ms, &mut net, &mut now, Duration::from_millis(10));
        if got.len() == total && ms[0].all_acknowledged() {
            break;
        }
    }
    got.extend(std::iter::from_fn(|| ms[1].poll_message()));
    let order: Vec<u32> = got
        .iter()
        .map(|m| u32::from_le_bytes(m.data[..].try_into().unwrap()))
        .collect();
    assert_eq!(order, (0..total as u32).collect::<Vec<_>>());
}

#[test]
fn sending_is_paced() {
    let mut ms = members(2, 11);
    let t0 = Instant::now();
    for _ in 0..MAX_IN_FLIGHT {
        ms[0]
            .send(Recipients::One(1), 0, &[0; MAX_MESSAGE_DATA])
            .unwrap();
    }
    let first = std::iter::from_fn(|| ms[0].poll_transmit(t0)).count();
    let per = MAX_MESSAGE_DATA + MESSAGE_OVERHEAD;
    // The burst, plus the one message that may take the budget below zero.
    assert_eq!(first, BYTE_BURST as usize / per + 1);
    let next = ms[0].poll_timeout().unwrap();
    assert!(next > t0);
    // Over the next second (nothing is acknowledged: first sends and resends alike), about a
    // second's worth more.
    let mut later = 0;
    for ms_ in 1..=1000 {
        let t = t0 + Duration::from_millis(ms_);
        later += std::iter::from_fn(|| ms[0].poll_transmit(t)).count();
    }
    let rate = BYTES_PER_SECOND as usize / per;
    assert!((rate - 1..=rate + 1).contains(&later), "{later} vs {rate}");
}

#[test]
fn recipients_from_handles_sets_and_everyone() {
    assert_eq!(Recipients::from(3usize), Recipients::One(3));
    assert_eq!(Recipients::from([1usize, 2]), Recipients::Set(vec![1, 2]));
    assert_eq!(Recipients::from(vec![4u16]), Recipients::Set(vec![4]));
    assert_eq!(Recipients::from(&[5u16][..]), Recipients::Set(vec![5]));
}

#[test]
fn a_session_socket_holds_every_window_between_two_frames() {
    let windows = (crate::limits::MAX_PLAYERS - 1) * (MAX_IN_FLIGHT + 1);
    assert!(crate::wire::socket::MAX_QUEUED_MESSAGES >= windows);
}
