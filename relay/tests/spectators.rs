//! Spectators on the relay: a ticket with seat 255 joins a match to watch it. The players never
//! hear of a spectator, it receives the match's stream (one player's STREAM records, never
//! the players' game frames), a spectator arriving late starts from the kept key, and a
//! hostile spectator can send nothing anywhere: every frame it sends is refused, and flooding
//! gets it closed by the rate limit while the players go on untouched.
mod common;

use std::time::Duration;

use common::*;
use ricochet_protocol::relay::{
    close, ErrorCode, Opcode, RelayEvent, RelayFrame, StreamKind, StreamRecord,
};
use ricochet_protocol::ticket::SPECTATOR_SEAT;

/// A STREAM record's bytes, its body naming the frame.
fn record(kind: StreamKind, frame: u32, count: u8) -> Vec<u8> {
    StreamRecord {
        kind,
        frame,
        count,
        body: format!("body {frame}").as_bytes(),
    }
    .to_vec()
}

/// Joins match `key` of `max_players` as spectator peer `n`; returns it, its member number and
/// the players its WELCOME lists.
async fn spectate(
    relay: &Relay,
    key: &str,
    n: u128,
    max_players: u8,
) -> (Client, u16, Vec<(u16, ricochet_protocol::PeerId)>) {
    let mut c =
        Client::connect(&relay.url(&ticket_with(key, n, SPECTATOR_SEAT, max_players, 60))).await;
    match c.event().await {
        RelayEvent::Welcome { you, members } => (c, you, members),
        e => panic!("expected WELCOME, got {e:?}"),
    }
}

/// Joins match `key` (2 players) as player `n` in seat `seat`.
async fn play(relay: &Relay, key: &str, n: u128, seat: u8) -> (Client, u16) {
    let mut c = Client::connect(&relay.url(&ticket_with(key, n, seat, 2, 60))).await;
    match c.event().await {
        RelayEvent::Welcome { you, .. } => (c, you),
        e => panic!("expected WELCOME, got {e:?}"),
    }
}

/// Reads the next frame and checks it is the STREAM record `expected`, from one of `senders`.
async fn expect_record(c: &mut Client, senders: &[u16], expected: &[u8]) {
    let b = c.frame().await;
    let f = RelayFrame::parse(&b).unwrap();
    assert_eq!((f.opcode, f.targeted), (Opcode::STREAM, false), "{b:?}");
    assert!(senders.contains(&f.sender), "{b:?} from {}", f.sender);
    assert_eq!(
        f.payload, expected,
        "stream record lost, reordered or changed"
    );
}

/// Two players who exchange numbered frames; `exchange` checks every one arrives, in order,
/// from the other player, and nothing else in between.
struct Players {
    a: Client,
    na: u16,
    b: Client,
    nb: u16,
    sent: u32,
}

impl Players {
    async fn new(relay: &Relay, key: &str) -> Players {
        let (mut a, na) = play(relay, key, 1, 0).await;
        let (b, nb) = play(relay, key, 2, 1).await;
        assert_eq!(
            a.event().await,
            RelayEvent::Join {
                member: nb,
                peer: peer(2)
            }
        );
        Players {
            a,
            na,
            b,
            nb,
            sent: 0,
        }
    }

    async fn exchange(&mut self, n: u32) {
        for _ in 0..n {
            self.sent += 1;
            let p = self.sent.to_be_bytes();
            self.a.send(1, &p).await;
            self.b.send(2, &p).await;
            let fb = self.b.frame().await;
            let fa = self.a.frame().await;
            assert_eq!(fb, [&[1, 0][..], &self.na.to_be_bytes(), &p].concat());
            assert_eq!(fa, [&[2, 0][..], &self.nb.to_be_bytes(), &p].concat());
        }
    }
}

#[tokio::test]
async fn a_players_stream_reaches_the_spectator_in_order_and_never_the_other_player() {
    let relay = Relay::default().await;
    let (mut s, ns, members) = spectate(&relay, "watch", 10, 2).await;
    assert!(members.is_empty());
    let mut p = Players::new(&relay, "watch").await;
    assert!(![p.na, p.nb].contains(&ns), "member numbers collide");
    // A spectator arriving after the players is listed to no one, and sees them.
    let (mut second, _, members) = spectate(&relay, "watch", 11, 2).await;
    assert_eq!(members, vec![(p.na, peer(1)), (p.nb, peer(2))]);

    let mut records = vec![record(StreamKind::Key, 0, 0)];
    for f in 0..50u32 {
        records.push(record(StreamKind::Inputs, f * 2, 2));
        if f % 10 == 9 {
            records.push(record(StreamKind::Key, f * 2 + 2, 0));
        }
    }
    for (i, r) in records.iter().enumerate() {
        p.a.send(Opcode::STREAM.0, r).await;
        // Player b streams the same match a little behind: whichever copy of a record the
        // relay takes first goes to the spectators, the other nowhere.
        if i > 0 {
            p.b.send(Opcode::STREAM.0, &records[i - 1]).await;
        }
        if i % 10 == 0 {
            p.exchange(1).await;
        }
    }
    for r in &records {
        expect_record(&mut s, &[p.na, p.nb], r).await;
        expect_record(&mut second, &[p.na, p.nb], r).await;
    }
    // The players got only each other's game frames (`exchange` checks each), nothing more.
    p.exchange(3).await;
    p.a.silent_for(Duration::from_millis(100)).await;
    p.b.silent_for(Duration::from_millis(100)).await;
    // And the spectators no game frame.
    s.silent_for(Duration::from_millis(50)).await;
    second.silent_for(Duration::from_millis(50)).await;

    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_spectators", ""), 2.0);
    assert_eq!(metric(&m, "relay_members", ""), 2.0);
    assert_eq!(
        metric(&m, "relay_stream_records_total", ""),
        records.len() as f64
    );
    assert_eq!(
        metric(&m, "relay_stream_deliveries_total", ""),
        2.0 * records.len() as f64
    );
    assert_eq!(
        metric(&m, "relay_stream_records_dropped_total", ""),
        records.len() as f64 - 1.0
    );

    // A spectator leaving is told to no one either.
    drop(second);
    p.exchange(2).await;
    p.a.silent_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_hostile_spectator_reaches_no_one_and_flooding_closes_it() {
    let mut cfg = config();
    cfg.set_frame_rate(500, 100).unwrap();
    let relay = Relay::start(cfg).await;
    let mut p = Players::new(&relay, "hostile").await;
    let (mut s, _, _) = spectate(&relay, "hostile", 66, 2).await;
    p.exchange(2).await;

    let key = record(StreamKind::Key, 0, 0);
    let tries: Vec<(Vec<u8>, ErrorCode, u8)> = vec![
        (vec![1, 0, b'x'], ErrorCode::NotAllowed, 1),
        (vec![0xEF, 0], ErrorCode::NotAllowed, 0xEF),
        (
            [&[Opcode::STREAM.0, 0][..], &key].concat(),
            ErrorCode::NotAllowed,
            0xF5,
        ),
        (
            [&[Opcode::STREAM.0, 1][..], &p.na.to_be_bytes(), &key].concat(),
            ErrorCode::NotAllowed,
            0xF5,
        ),
        (
            [&[1, 1][..], &p.na.to_be_bytes(), b"to a"].concat(),
            ErrorCode::NotAllowed,
            1,
        ),
        (
            [&[2, 1][..], &p.nb.to_be_bytes(), b"to b"].concat(),
            ErrorCode::NotAllowed,
            2,
        ),
        (vec![0xF0, 0], ErrorCode::NotAllowed, 0xF0),
        (vec![0xF4, 1, 0, 0], ErrorCode::NotAllowed, 0xF4),
        (vec![], ErrorCode::Malformed, 0),
        (vec![3], ErrorCode::Malformed, 3),
        (vec![3, 1, 0], ErrorCode::Malformed, 3),
        (vec![3, 0x80], ErrorCode::Malformed, 3),
    ];
    for (bytes, code, opcode) in &tries {
        s.send_raw(bytes.clone()).await;
        assert_eq!(
            s.event().await,
            RelayEvent::Error {
                code: *code,
                opcode: Opcode(*opcode)
            },
            "{bytes:?}"
        );
        p.exchange(1).await;
    }
    // A RENEW with a bad ticket is refused as for a player; the spectator stays.
    s.send(Opcode::RENEW.0, b"not a ticket").await;
    assert_eq!(
        s.event().await,
        RelayEvent::Error {
            code: ErrorCode::TicketRefused,
            opcode: Opcode::RENEW
        }
    );
    // A good one is taken silently.
    let fresh = ticket_with("hostile", 66, SPECTATOR_SEAT, 2, 120);
    s.send(Opcode::RENEW.0, fresh.as_bytes()).await;
    s.silent_for(Duration::from_millis(50)).await;

    // Now it floods, game frames and stream records mixed, without reading.
    let (na, nb) = (p.na, p.nb);
    let flood = tokio::spawn(async move {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        for i in 0..5_000u32 {
            let frame = match i % 3 {
                0 => vec![1, 0, i as u8],
                1 => [&[Opcode::STREAM.0, 0][..], &key].concat(),
                _ => [
                    &[1, 1][..],
                    &(if i % 2 == 0 { na } else { nb }).to_be_bytes(),
                ]
                .concat(),
            };
            if s.ws.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        s.closed().await
    });
    p.exchange(20).await;
    assert_eq!(flood.await.unwrap(), Some(close::RATE_LIMITED));
    // The players saw nothing of it: no JOIN or LEAVE, no frame; their own traffic went on
    // complete and in order (`exchange` checks each frame).
    p.exchange(10).await;
    p.a.silent_for(Duration::from_millis(100)).await;
    p.b.silent_for(Duration::from_millis(100)).await;

    let m = relay.metrics().await;
    assert!(metric(&m, "relay_frames_dropped_total", "not_allowed") >= 8.0);
    assert_eq!(metric(&m, "relay_stream_records_total", ""), 0.0);
    assert!(metric(&m, "relay_disconnects_total", "rate_limited") >= 1.0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&relay.metrics().await, "relay_spectators", "") != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "spectator not gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_late_spectator_gets_the_kept_key_then_the_inputs_since_then_live_records() {
    let relay = Relay::default().await;
    let mut p = Players::new(&relay, "late").await;
    let early = [
        record(StreamKind::Key, 0, 0),
        record(StreamKind::Inputs, 0, 4),
        record(StreamKind::Inputs, 4, 4),
    ];
    let kept = [
        record(StreamKind::Key, 8, 0),
        record(StreamKind::Inputs, 8, 1),
        record(StreamKind::Inputs, 9, 3),
        record(StreamKind::Inputs, 12, 2),
    ];
    for r in early.iter().chain(&kept) {
        p.a.send(Opcode::STREAM.0, r).await;
    }
    // Once b has a's next game frame, the relay has taken a's records before it.
    p.exchange(1).await;
    let (mut s, _, members) = spectate(&relay, "late", 10, 2).await;
    assert_eq!(members.len(), 2);
    let live = [
        record(StreamKind::Inputs, 14, 1),
        record(StreamKind::Key, 15, 0),
        record(StreamKind::Inputs, 15, 1),
    ];
    for r in &live {
        p.a.send(Opcode::STREAM.0, r).await;
    }
    for r in kept.iter().chain(&live) {
        expect_record(&mut s, &[p.na], r).await;
    }
    s.silent_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn spectators_beyond_the_limit_are_refused_with_4003_and_the_players_never_know() {
    let mut cfg = config();
    cfg.set_max_spectators_per_match(1).unwrap();
    let relay = Relay::start(cfg).await;
    let mut p = Players::new(&relay, "few").await;
    let (s, ns, _) = spectate(&relay, "few", 10, 2).await;
    let mut over =
        Client::connect(&relay.url(&ticket_with("few", 11, SPECTATOR_SEAT, 2, 60))).await;
    assert_eq!(over.closed().await, Some(close::MATCH_FULL));
    // A player's frame targeted at the spectator's number finds no one.
    p.a.send_to(ns, 1, b"psst").await;
    assert_eq!(
        p.a.event().await,
        RelayEvent::Error {
            code: ErrorCode::UnknownTarget,
            opcode: Opcode(1)
        }
    );
    drop(s);
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&relay.metrics().await, "relay_spectators", "") != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "spectator not gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same spectator's older (or same) ticket is refused; a later one replaces it.
    let older = ticket_with("few", 12, SPECTATOR_SEAT, 2, 60);
    let (mut s12, _, _) = spectate(&relay, "few", 12, 2).await;
    let mut replay = Client::connect(&relay.url(&older)).await;
    assert_eq!(replay.closed().await, Some(close::SEAT_TAKEN));
    let (_back, _, _) = spectate(&relay, "few", 12, 2).await;
    assert_eq!(s12.closed().await, Some(close::REPLACED));
    // The players heard of none of it.
    p.exchange(3).await;
    p.a.silent_for(Duration::from_millis(100)).await;
    p.b.silent_for(Duration::from_millis(100)).await;
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "match_full"), 1.0);
    assert_eq!(metric(&m, "relay_members", ""), 2.0);
    assert_eq!(metric(&m, "relay_spectators", ""), 1.0);
}
