//! Match messages on the simulator, beside a rollback session and without one: every player
//! sends 1,000 messages (to everyone, to one player, to a set) while the direct path dies and
//! comes back mid-stream, and under loss, copies and reordering on both paths. Every message
//! arrives exactly once and in order per sender, and the sessions still agree on their
//! checksums.

use std::collections::HashMap;
use std::time::Duration;

use ricochet::link::{Path, PathConfig, PathMode};
use ricochet::messages::{Messenger, Recipients};
use ricochet::sim::paths::{SimPathSocket, SimPaths};
use ricochet::sim::{LinkConditions, SimAddr};
use ricochet::Event;

#[allow(dead_code)]
#[path = "paths/common.rs"]
mod common;

use common::{dead, direct_link, relay_link, PathMatch};

/// Messages each player sends.
const COUNT: u32 = 1000;
/// The op code of message `i`.
fn op(i: u32) -> u8 {
    (i % 251) as u8
}

/// Who message `i` of player `from` (of `n`) goes to, by handle: everyone, one other player
/// (each in turn), or a set (this player itself, which is left out, and one or two others).
fn recipients(n: usize, from: usize, i: u32) -> Recipients<usize> {
    let other = |k: u32| (from + 1 + (k as usize % (n - 1))) % n;
    match i % 3 {
        0 => Recipients::Everyone,
        1 => Recipients::One(other(i / 3)),
        _ => Recipients::Set(vec![from, other(i / 3), other(i / 3 + 1)]),
    }
}

/// Whether message `i` of `from` goes to `to`.
fn addressed(n: usize, from: usize, i: u32, to: usize) -> bool {
    to != from
        && match recipients(n, from, i) {
            Recipients::Everyone => true,
            Recipients::One(h) => h == to,
            Recipients::Set(set) => set.contains(&to),
            _ => unreachable!(),
        }
}

/// The numbers of the messages `from` sends `to`, in order.
fn expected(n: usize, from: usize, to: usize) -> Vec<u32> {
    (0..COUNT).filter(|&i| addressed(n, from, i, to)).collect()
}

/// The data of message `i` from `from`.
fn data(from: usize, i: u32) -> Vec<u8> {
    format!("{from} {i}").into_bytes()
}

/// Parses [`data`], checking the op and the sender it names.
fn number(from: usize, op_code: u8, bytes: &[u8]) -> u32 {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let (sender, i) = text.split_once(' ').expect("\"from i\"");
    assert_eq!(sender, from.to_string(), "the sender is who sent it");
    let i: u32 = i.parse().expect("a number");
    assert_eq!(op_code, op(i), "op of message {i}");
    i
}

/// Asserts that `got[(from, to)]` is exactly what `from` sent `to`, in order, for every pair.
fn assert_exactly_once_in_order(n: usize, got: &HashMap<(usize, usize), Vec<u32>>) {
    for from in 0..n {
        for to in (0..n).filter(|&t| t != from) {
            let want = expected(n, from, to);
            let have = got.get(&(from, to)).cloned().unwrap_or_default();
            assert_eq!(
                have.len(),
                want.len(),
                "{from} to {to}: {} of {} arrived",
                have.len(),
                want.len()
            );
            assert_eq!(have, want, "{from} to {to}: order or copies");
        }
    }
}

/// A match of `n` players in rollback; from 1 s on each sends its messages (a few per
/// frame), while the direct path carries them, dies at 2.5 s and comes back at 4.5 s. With
/// `lossy`, both paths also lose, copy and reorder packets all along.
fn messages_beside_a_session(n: usize, seed: u64, lossy: bool) {
    let mut m = PathMatch::new(n, seed, PathConfig::default());
    let noisy = |c: LinkConditions| {
        if lossy {
            c.jitter(Duration::from_millis(4))
                .loss(0.05)
                .duplicate(0.05)
                .reorder(0.05)
        } else {
            c
        }
    };
    m.set_all_direct(noisy(direct_link()));
    for a in 0..n as SimAddr {
        for b in (0..n as SimAddr).filter(|&b| b != a) {
            m.sim.relay().set_link(a, b, noisy(relay_link()));
        }
    }
    m.run_until(Duration::from_millis(300));
    m.open_all_channels();
    m.run_until(Duration::from_secs(1));
    m.assert_all_on(Path::Direct);

    let mut next = vec![0u32; n];
    let mut cut = false;
    let mut restored = false;
    let mut paths_while_sending = Vec::new();
    let mut ticks = 0;
    while next.iter().any(|&i| i < COUNT) {
        for (me, p) in m.players.iter_mut().enumerate() {
            // Two messages a frame: 1,000 take about 8 s.
            for _ in 0..2 {
                let i = next[me];
                if i < COUNT {
                    p.session
                        .send_message(recipients(n, me, i), op(i), &data(me, i))
                        .expect("queued");
                    next[me] += 1;
                }
            }
        }
        if !cut && m.elapsed() >= Duration::from_millis(2500) {
            cut = true;
            m.set_all_direct(dead(direct_link()));
        }
        if !restored && m.elapsed() >= Duration::from_millis(4500) {
            restored = true;
            m.set_all_direct(noisy(direct_link()));
        }
        m.tick();
        paths_while_sending.push(m.path(0, 1));
        ticks += 1;
        assert!(ticks < 100_000);
    }
    // Until everything is acknowledged (and the path has had time to come back).
    let sent_by = m.elapsed();
    while !m
        .players
        .iter()
        .all(|p| p.session.all_messages_acknowledged())
        || m.elapsed() < Duration::from_secs(10)
    {
        m.tick();
        assert!(
            m.elapsed() < sent_by + Duration::from_secs(30),
            "unacknowledged for 30 s"
        );
    }
    // The stream crossed every switch: direct, relay while the path was dead, direct again.
    let mut switches: Vec<Option<Path>> = paths_while_sending.clone();
    switches.dedup();
    assert!(
        switches.len() >= 3,
        "the pair switched paths while messages flowed: {switches:?}"
    );
    m.assert_all_on(Path::Direct);

    let mut got: HashMap<(usize, usize), Vec<u32>> = HashMap::new();
    for (to, p) in m.players.iter().enumerate() {
        for e in &p.events {
            if let Event::Message {
                from,
                peer,
                op,
                data,
            } = e
            {
                assert_eq!(*peer as usize, *from, "handle and peer agree");
                got.entry((*from, to))
                    .or_default()
                    .push(number(*from, *op, data));
            }
        }
    }
    assert_exactly_once_in_order(n, &got);
    for (i, p) in m.players.iter().enumerate() {
        let stats = p.session.stats();
        println!("player {i}: {:?}", stats.messages);
        assert!(
            stats.messages.resent > 0,
            "the dead direct path cost some messages"
        );
        assert_eq!(stats.socket.control_overflow, 0);
    }
    let (frame, _) = m.finish(common::frames_in(m.elapsed()) - 60);
    assert!(frame > 500, "the match played on: {frame} frames");
}

#[test]
fn two_players_exchange_1000_messages_each_way_across_path_switches() {
    messages_beside_a_session(2, 71, false);
}

#[test]
fn three_players_exchange_1000_messages_each_way_across_path_switches() {
    messages_beside_a_session(3, 72, false);
}

#[test]
fn three_players_exchange_messages_under_loss_copies_and_reordering() {
    messages_beside_a_session(3, 73, true);
}

#[test]
fn messages_to_handles_that_are_no_player_are_refused() {
    let mut m = PathMatch::new(2, 74, PathConfig::default());
    let s = &mut m.players[0].session;
    let err = s.send_message(5, 1, b"x").unwrap_err();
    assert_eq!(err.to_string(), "player 5 is not a member of the match");
    let err = s
        .send_message(Recipients::Everyone, 1, &[0; 2049])
        .unwrap_err();
    assert!(err.to_string().contains("at most 2048 bytes"), "{err}");
    // A message to this player alone goes nowhere.
    s.send_message(0, 1, b"me").unwrap();
    assert!(s.all_messages_acknowledged());
    s.send_message([0, 1], 1, b"both").unwrap();
    assert_eq!(s.unacknowledged_messages(1), 1);
}

/// Members without a session: `n` messengers over both simulated paths (member 0 only ever
/// uses the relay, as a relay-only client would), each sending 1,000 messages to everyone, one
/// member or a set, while the direct paths die and come back, under loss, copies and
/// reordering.
#[test]
fn members_without_a_session_exchange_1000_messages_each_way() {
    let n = 3usize;
    let noisy = |c: LinkConditions| {
        c.jitter(Duration::from_millis(4))
            .loss(0.05)
            .duplicate(0.05)
            .reorder(0.05)
    };
    let sim = SimPaths::new(75, noisy(direct_link()), noisy(relay_link()));
    let mut members: Vec<Messenger<SimAddr, SimPathSocket>> = (0..n)
        .map(|me| {
            let config = PathConfig {
                mode: if me == 0 {
                    PathMode::ForceRelay
                } else {
                    PathMode::Automatic
                },
                ..PathConfig::default()
            };
            let others = (0..n as SimAddr).filter(|&p| p != me as SimAddr);
            Messenger::with_seed(
                sim.socket(me as SimAddr, config),
                me as SimAddr,
                others,
                75 + me as u64,
            )
        })
        .collect();
    sim.open_channel(1, 2);
    let mut next = vec![0u32; n];
    let mut got: HashMap<(usize, usize), Vec<u32>> = HashMap::new();
    let mut paths = Vec::new();
    let step = Duration::from_millis(5);
    while sim.elapsed() < Duration::from_secs(60) {
        let t = sim.elapsed();
        if t == Duration::from_secs(2) {
            for (a, b) in [(1, 2), (2, 1)] {
                sim.direct().set_link(a, b, dead(direct_link()));
            }
        }
        if t == Duration::from_secs(4) {
            for (a, b) in [(1, 2), (2, 1)] {
                sim.direct().set_link(a, b, noisy(direct_link()));
            }
        }
        for (me, messenger) in members.iter_mut().enumerate() {
            let i = next[me];
            if i < COUNT && t >= Duration::from_millis(500) {
                // By address; the member itself is left out of a set.
                let to = match recipients(n, me, i) {
                    Recipients::Everyone => Recipients::Everyone,
                    Recipients::One(h) => Recipients::One(h as SimAddr),
                    Recipients::Set(s) => {
                        Recipients::Set(s.iter().map(|&h| h as SimAddr).collect())
                    }
                    _ => unreachable!(),
                };
                messenger.send(to, op(i), &data(me, i)).expect("queued");
                next[me] += 1;
            }
            messenger.poll(sim.now());
            while let Some(msg) = messenger.recv() {
                let from = msg.from as usize;
                got.entry((from, me))
                    .or_default()
                    .push(number(from, msg.op, &msg.data));
            }
        }
        paths.push(members[1].socket().path(&2));
        let done = next.iter().all(|&i| i == COUNT)
            && members.iter().all(|m| m.all_acknowledged())
            && t > Duration::from_secs(8);
        if done {
            break;
        }
        sim.advance(step);
    }
    assert!(sim.elapsed() < Duration::from_secs(60), "not done in 60 s");
    assert_exactly_once_in_order(n, &got);
    paths.dedup();
    assert!(
        paths.starts_with(&[
            None,
            Some(Path::Relay),
            Some(Path::Direct),
            Some(Path::Relay),
            Some(Path::Direct)
        ]),
        "1 and 2 went direct, fell back and came back: {paths:?}"
    );
    assert_eq!(members[1].socket().path(&2), Some(Path::Direct));
    for (me, m) in members.iter().enumerate() {
        let stats = m.stats();
        println!("member {me}: {stats:?}");
        assert_eq!(stats.malformed_packets, 0);
        assert!(stats.messages.resent > 0);
        // Member 0 never left the relay.
        if me == 0 {
            for peer in [1, 2] {
                assert_eq!(m.socket().stats(&peer).map(|s| s.switches), Some(0));
            }
        }
    }
}
