//! Rejoin: a member whose connection drops without a close keeps its place for the rejoin
//! grace and takes it back with the token of its welcome; the others see nothing. A second
//! rejoin replaces a connection that is still open (half-open), a bad token is refused, a
//! place nobody comes back to is given up when the grace runs out, a close with 1001 (a page
//! unloading) keeps the place like a drop, and a clean close leaves at once. A match created
//! with its own grace keeps places that long (0: not at all), never longer than the server.
mod common;

use std::time::{Duration, Instant};

use common::*;
use ricochet_protocol::signaling::{Member, Rejoin, ServerMessage};
use ricochet_protocol::PeerId;
use serde_json::json;

/// The rejoin credential of a member's welcome, if it has one.
fn credential(welcome: &ServerMessage) -> Option<&Rejoin> {
    match welcome {
        ServerMessage::Welcome { rejoin, .. } => rejoin.as_ref(),
        other => panic!("not a welcome: {other:?}"),
    }
}

/// The rejoin token of a welcome from the 2-second server.
fn token(welcome: &ServerMessage) -> String {
    let r = credential(welcome).expect("no rejoin credential");
    assert_eq!(r.grace_secs, 2);
    r.token.clone()
}

/// The grace of a member's welcome, or `None` without a rejoin credential.
fn grace(welcome: &ServerMessage) -> Option<u64> {
    credential(welcome).map(|r| r.grace_secs)
}

/// Drops a member's connection without a close and waits for `watcher` to hear it left;
/// returns how long that took (how long signaling kept its place).
async fn kept_after_drop(watcher: &mut Ws, dropped: Ws, id: PeerId) -> Duration {
    drop(dropped);
    let at = Instant::now();
    expect_left(watcher, id).await;
    at.elapsed()
}

#[tokio::test]
async fn a_dropped_member_takes_its_place_back_and_nobody_sees_it_leave() {
    let mut cfg = config();
    cfg.set_rejoin_grace(Duration::from_secs(2)).unwrap();
    let server = start(cfg).await;
    let mut a = join(&server.url("/room")).await;
    welcome(&mut a.ws).await;
    // A client that can rejoin says so; stock matchbox clients do not (see below).
    let b = join(&server.url("/room?rejoinable=1")).await;
    let mut b_ws = b.ws;
    let (w, _) = welcome(&mut b_ws).await;
    let token = token(&w);
    expect_joined(&mut a.ws, b.id).await;

    // Dropped without a close (the TCP connection just ends): the others hear nothing.
    drop(b_ws);
    silent(&mut a.ws, 500).await;
    let rejoin_url = server.url(&format!("/anything?rejoin={token}"));
    let mut b2 = join(&rejoin_url).await;
    assert_eq!(b2.id, b.id, "the same peer ID");
    let (w, t) = welcome(&mut b2.ws).await;
    let ServerMessage::Welcome { members, .. } = &w else {
        unreachable!()
    };
    assert_eq!(
        members,
        &vec![
            Member {
                peer: a.id,
                meta: None
            },
            Member {
                peer: b.id,
                meta: None
            }
        ]
    );
    assert!(matches!(t, ServerMessage::Ticket(_)));
    silent(&mut a.ws, 300).await;
    // Signals reach the rejoined member.
    signal(&mut a.ws, b.id, json!({"IceCandidate": "c"})).await;
    expect_signal(&mut b2.ws, a.id, json!({"IceCandidate": "c"})).await;

    // Rejoining while the old connection is still open (the server had not noticed it was
    // gone): the new one takes over and the old one is closed.
    let mut b3 = join(&rejoin_url).await;
    assert_eq!(closed(&mut b2.ws).await, Some(1000));
    welcome(&mut b3.ws).await;
    silent(&mut a.ws, 300).await;

    // Tokens that name nobody are refused before the upgrade.
    for bad in ["garbage", "AAAA", &token[..token.len() - 2]] {
        let (status, body) = refused(&server.url(&format!("/room?rejoin={bad}"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("rejoin_refused")),
            "{bad}"
        );
    }

    // Dropped again and nobody comes back: after the grace the others hear it left, and the
    // token is refused.
    let kept = kept_after_drop(&mut a.ws, b3.ws, b.id).await;
    assert!(kept >= Duration::from_millis(1500), "{kept:?}");
    let (status, _) = refused(&rejoin_url).await;
    assert_eq!(status, 404);

    // A clean close leaves at once.
    let mut c = join(&server.url("/room?rejoinable=1")).await;
    welcome(&mut c.ws).await;
    expect_joined(&mut a.ws, c.id).await;
    c.ws.close(None).await.unwrap();
    let closing = Instant::now();
    expect_left(&mut a.ws, c.id).await;
    assert!(
        closing.elapsed() < Duration::from_millis(1000),
        "{:?}",
        closing.elapsed()
    );
    // A page that unloads (a reload) closes with 1001 "going away": its place is kept for the
    // grace, as for a drop, and the reloaded page takes it back.
    let mut e = join(&server.url("/room?rejoinable=1")).await;
    let (w, _) = welcome(&mut e.ws).await;
    let e_token = self::token(&w);
    expect_joined(&mut a.ws, e.id).await;
    e.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
        reason: "".into(),
    }))
    .await
    .unwrap();
    silent(&mut a.ws, 500).await;
    let e2 = join(&server.url(&format!("/room?rejoin={e_token}"))).await;
    assert_eq!(e2.id, e.id, "the reloaded page is the same peer");
    silent(&mut a.ws, 300).await;
    drop(e2);
    expect_left(&mut a.ws, e.id).await;
    // A client that did not say it can rejoin gets no token and leaves when it drops.
    let mut d = join(&server.url("/room")).await;
    let (w, _) = welcome(&mut d.ws).await;
    assert!(
        matches!(w, ServerMessage::Welcome { rejoin: None, .. }),
        "{w:?}"
    );
    expect_joined(&mut a.ws, d.id).await;
    drop(d.ws);
    expect_left(&mut a.ws, d.id).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn with_no_grace_there_is_no_token_and_a_drop_leaves_at_once() {
    let mut cfg = config();
    cfg.set_rejoin_grace(Duration::ZERO).unwrap();
    let server = start(cfg).await;
    let mut a = join(&server.url("/room")).await;
    let (w, _) = welcome(&mut a.ws).await;
    assert!(
        matches!(w, ServerMessage::Welcome { rejoin: None, .. }),
        "{w:?}"
    );
    let mut b = join(&server.url("/room")).await;
    welcome(&mut b.ws).await;
    expect_joined(&mut a.ws, b.id).await;
    drop(b.ws);
    expect_left(&mut a.ws, b.id).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_match_created_with_its_own_grace_keeps_places_that_long() {
    // The server keeps places 30 s; one match asks for 1 s, another for none, a third for
    // more than the server allows.
    let mut cfg = config();
    cfg.set_rejoin_grace(Duration::from_secs(30)).unwrap();
    let server = start(cfg).await;
    let create = |body: serde_json::Value| {
        let addr = server.addr;
        async move {
            let (status, text) = http(addr, "POST", "/matches", Some(&body.to_string())).await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            )
        }
    };
    let (status, too_long) = create(json!({"rejoin_grace_secs": 31})).await;
    assert_eq!(
        (status, too_long["error"].as_str()),
        (400, Some("bad_request")),
        "{too_long}"
    );
    assert!(
        too_long["message"].as_str().unwrap().contains("0..=30"),
        "{too_long}"
    );
    let (status, default) = create(json!({})).await;
    assert_eq!(
        (status, default["rejoin_grace_secs"].as_u64()),
        (201, Some(30))
    );

    // A 1-second match: the welcome says 1 s, and a dropped member is gone after about 1 s.
    let (status, short) = create(json!({"rejoin_grace_secs": 1})).await;
    assert_eq!(
        (status, short["rejoin_grace_secs"].as_u64()),
        (201, Some(1))
    );
    let path = short["path"].as_str().unwrap();
    let mut a = join(&server.url(&format!("{path}?rejoinable=1"))).await;
    let (w, _) = welcome(&mut a.ws).await;
    assert_eq!(grace(&w), Some(1));
    let b = join(&server.url(&format!("{path}?rejoinable=1"))).await;
    let mut b_ws = b.ws;
    let (w, _) = welcome(&mut b_ws).await;
    assert_eq!(grace(&w), Some(1));
    let b_token = credential(&w).expect("a credential").token.clone();
    expect_joined(&mut a.ws, b.id).await;
    let waited = kept_after_drop(&mut a.ws, b_ws, b.id).await;
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "the place was kept {waited:?}, not about 1 s"
    );
    let (status, _) = refused(&server.url(&format!("/x?rejoin={b_token}"))).await;
    assert_eq!(status, 404, "the grace is over");

    // A match with no grace: no credential even for a client that can rejoin, and a drop
    // leaves at once.
    let (status, none) = create(json!({"rejoin_grace_secs": 0})).await;
    assert_eq!((status, none["rejoin_grace_secs"].as_u64()), (201, Some(0)));
    let path = none["path"].as_str().unwrap();
    let mut c = join(&server.url(&format!("{path}?rejoinable=1"))).await;
    let (w, _) = welcome(&mut c.ws).await;
    assert_eq!(grace(&w), None);
    let d = join(&server.url(&format!("{path}?rejoinable=1"))).await;
    let mut d_ws = d.ws;
    let (w, _) = welcome(&mut d_ws).await;
    assert_eq!(grace(&w), None);
    expect_joined(&mut c.ws, d.id).await;
    let kept = kept_after_drop(&mut c.ws, d_ws, d.id).await;
    assert!(kept < Duration::from_millis(800), "{kept:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_join_that_makes_a_named_room_sets_its_grace() {
    let mut cfg = config();
    cfg.set_rejoin_grace(Duration::from_secs(30)).unwrap();
    let server = start(cfg).await;
    for (query, why) in [
        ("rejoin_grace_secs=31", "over the server's"),
        ("rejoin_grace_secs=-1", "not a whole number"),
        ("rejoin_grace_secs=soon", "not a number"),
        (
            "rejoin_grace_secs=5&spectate=1",
            "a spectator makes no match",
        ),
    ] {
        let (status, body) = refused(&server.url(&format!("/graceful?{query}"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{why}: {body}"
        );
    }
    // The first member makes the room with a 1 s grace; a later join asking for another keeps
    // the room's, as its welcome says.
    let mut a = join(&server.url("/graceful?rejoinable=1&rejoin_grace_secs=1")).await;
    let (w, _) = welcome(&mut a.ws).await;
    assert_eq!(grace(&w), Some(1));
    let b = join(&server.url("/graceful?rejoinable=1&rejoin_grace_secs=20")).await;
    let mut b_ws = b.ws;
    let (w, _) = welcome(&mut b_ws).await;
    assert_eq!(
        grace(&w),
        Some(1),
        "the room's grace, not the later joiner's"
    );
    expect_joined(&mut a.ws, b.id).await;
    let waited = kept_after_drop(&mut a.ws, b_ws, b.id).await;
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "the place was kept {waited:?}, not about 1 s"
    );
    // A quick-match group takes the grace of the join that made it; the parameter is not
    // one of its required properties.
    let mut q = join(&server.url("/quick?next=2&rejoinable=1&rejoin_grace_secs=0")).await;
    let (w, _) = welcome(&mut q.ws).await;
    assert_eq!(grace(&w), None, "no grace, no credential");
    let mut r = join(&server.url("/quick?next=2&rejoinable=1")).await;
    let (w, _) = welcome(&mut r.ws).await;
    assert_eq!(grace(&w), None, "the same group");
    expect_joined(&mut q.ws, r.id).await;
    server.stop().await.unwrap();
}
