//! Bad input never panics the server and never affects other matches: malformed JSON, signals
//! to peers outside the match, oversize messages, forged sender IDs and ID claims, floods.
mod common;

use common::*;
use futures_util::SinkExt as _;
use ricochet_protocol::signaling::{ErrorCode, ServerMessage};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Two matches of two members each, welcomes consumed: (a1, a2) and (b1, b2).
async fn two_matches(server: &Server) -> (Client, Client, Client, Client) {
    let mut a1 = join(&server.url("/match-a")).await;
    welcome(&mut a1.ws).await;
    let mut a2 = join(&server.url("/match-a")).await;
    welcome(&mut a2.ws).await;
    expect_joined(&mut a1.ws, a2.id).await;
    let mut b1 = join(&server.url("/match-b")).await;
    welcome(&mut b1.ws).await;
    let mut b2 = join(&server.url("/match-b")).await;
    welcome(&mut b2.ws).await;
    expect_joined(&mut b1.ws, b2.id).await;
    (a1, a2, b1, b2)
}

/// Match B still works both ways.
async fn still_intact(b1: &mut Client, b2: &mut Client) {
    signal(&mut b1.ws, b2.id, json!({"sdp": "offer"})).await;
    expect_signal(&mut b2.ws, b1.id, json!({"sdp": "offer"})).await;
    signal(&mut b2.ws, b1.id, json!({"sdp": "answer"})).await;
    expect_signal(&mut b1.ws, b2.id, json!({"sdp": "answer"})).await;
}

fn error_code(m: ServerMessage) -> ErrorCode {
    match m {
        ServerMessage::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_socket_stays() {
    let server = start(config()).await;
    let (mut a1, mut a2, mut b1, mut b2) = two_matches(&server).await;
    for junk in [
        "",
        "{",
        "null",
        "[]",
        "42",
        "\"Hello\"",
        r#"{"Signal": {}}"#,
        r#"{"Signal": {"receiver": "not-a-uuid", "data": 1}}"#,
        r#"{"Ricochet": {"type": "launch_missiles"}}"#,
        r#"{"Ricochet": 7}"#,
        "\u{0}\u{1}",
    ] {
        send_text(&mut a1.ws, junk).await;
        assert_eq!(
            error_code(recv_ext(&mut a1.ws).await),
            ErrorCode::Malformed,
            "{junk:?}"
        );
    }
    a1.ws.send(Message::binary(vec![0xff, 0, 1])).await.unwrap();
    assert_eq!(error_code(recv_ext(&mut a1.ws).await), ErrorCode::Malformed);
    // Still connected and useful.
    signal(&mut a1.ws, a2.id, json!("hi")).await;
    expect_signal(&mut a2.ws, a1.id, json!("hi")).await;
    still_intact(&mut b1, &mut b2).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn signals_never_cross_matches() {
    let server = start(config()).await;
    let (mut a1, mut a2, mut b1, mut b2) = two_matches(&server).await;
    // a1 addresses b1 (another match) and a made-up peer, and itself.
    for target in [
        b1.id,
        ricochet_protocol::PeerId(uuid::Uuid::new_v4()),
        a1.id,
    ] {
        signal(&mut a1.ws, target, json!({"evil": true})).await;
        assert_eq!(
            error_code(recv_ext(&mut a1.ws).await),
            ErrorCode::UnknownPeer
        );
    }
    silent(&mut b1.ws, 200).await;
    silent(&mut b2.ws, 50).await;
    silent(&mut a2.ws, 50).await;
    still_intact(&mut b1, &mut b2).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversize_messages_close_only_that_socket() {
    let mut cfg = config();
    cfg.set_max_message_size(4096).unwrap();
    let server = start(cfg).await;
    let (mut a1, mut a2, mut b1, mut b2) = two_matches(&server).await;
    // Just under the limit is fine.
    signal(&mut a1.ws, a2.id, json!("x".repeat(3000))).await;
    expect_signal(&mut a2.ws, a1.id, json!("x".repeat(3000))).await;
    // Over it: the sender is disconnected with 1009, its match-mate sees it leave.
    signal(&mut a1.ws, a2.id, json!("x".repeat(10_000))).await;
    let code = closed(&mut a1.ws).await;
    assert!(matches!(code, Some(1009) | None), "{code:?}");
    expect_left(&mut a2.ws, a1.id).await;
    still_intact(&mut b1, &mut b2).await;
    // Oversize metadata in the URL is refused before the upgrade.
    let big = format!("{{\"n\":\"{}\"}}", "x".repeat(1000));
    let (status, body) = refused(&server.url(&format!("/m?meta={}", urlencode(&big)))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("meta_too_large"))
    );
    let (status, body) = refused(&server.url("/m?meta=%5B1%5D")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_meta")));
    // Oversize or non-object metadata over the socket: an error, nothing broadcast.
    let set = json!({"Ricochet": {"type": "set_meta", "meta": {"n": "x".repeat(1000)}}});
    send_text(&mut b1.ws, &set.to_string()).await;
    assert_eq!(
        error_code(recv_ext(&mut b1.ws).await),
        ErrorCode::MetaTooLarge
    );
    let set = json!({"Ricochet": {"type": "set_meta", "meta": "just a string"}});
    send_text(&mut b1.ws, &set.to_string()).await;
    assert_eq!(error_code(recv_ext(&mut b1.ws).await), ErrorCode::BadMeta);
    silent(&mut b2.ws, 100).await;
    still_intact(&mut b1, &mut b2).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn nobody_can_claim_another_peers_id() {
    let server = start(config()).await;
    let (mut a1, mut a2, mut b1, mut b2) = two_matches(&server).await;
    // A second socket asking for a1's ID (in the query, as matchbox-style clients might) gets a
    // fresh one; a1 keeps working.
    let mut imposter = join(&server.url(&format!("/match-a?id={}&peer_id={}", a1.id, a1.id))).await;
    assert_ne!(imposter.id, a1.id);
    welcome(&mut imposter.ws).await;
    expect_joined(&mut a1.ws, imposter.id).await;
    expect_joined(&mut a2.ws, imposter.id).await;
    // A signal with a forged `sender` is stamped with the real sender.
    let forged = json!({"Signal": {"sender": a1.id, "receiver": a2.id, "data": "trust me"}});
    send_text(&mut imposter.ws, &forged.to_string()).await;
    expect_signal(&mut a2.ws, imposter.id, json!("trust me")).await;
    // a1's identity is intact.
    signal(&mut a1.ws, a2.id, json!("real")).await;
    expect_signal(&mut a2.ws, a1.id, json!("real")).await;
    // Renewal always names the socket's own peer.
    let renew = json!({"Ricochet": {"type": "renew_ticket", "peer": a1.id}});
    send_text(&mut imposter.ws, &renew.to_string()).await;
    match recv_ext(&mut imposter.ws).await {
        ServerMessage::Ticket(g) => {
            assert_eq!(g.ticket.verify_signature(SECRET).unwrap().peer, imposter.id)
        }
        other => panic!("{other:?}"),
    }
    still_intact(&mut b1, &mut b2).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn floods_disconnect_the_flooder_only() {
    let mut cfg = config();
    cfg.set_message_rate(20, 50).unwrap();
    let server = start(cfg).await;
    let (mut a1, mut a2, mut b1, mut b2) = two_matches(&server).await;
    let mut sent = 0;
    for i in 0..2000 {
        let text = json!({"Signal": {"receiver": a2.id, "data": i}}).to_string();
        if a1.ws.send(Message::text(text)).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 50);
    // The flooder sees why: the server reads what it still sends until its close, so the
    // close frame is not lost to a reset.
    let code = closed(&mut a1.ws).await;
    assert_eq!(code, Some(1008));
    // a2 got at most the burst, then the flooder left.
    let mut got = 0;
    loop {
        match recv(&mut a2.ws).await {
            ricochet_protocol::signaling::ServerFrame::Signal { .. } => got += 1,
            ricochet_protocol::signaling::ServerFrame::PeerLeft(p) => {
                assert_eq!(p, a1.id);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got <= 55, "{got}");
    still_intact(&mut b1, &mut b2).await;
    // The metric counted it.
    let (_, metrics) = http(server.addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains(r#"ricochet_signaling_rejections_total{reason="rate_limited"} 1"#),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_room_names_and_queries_are_http_errors() {
    let server = start(config()).await;
    for path in [
        "/a%20b",
        "/%C3%A9",
        "/this-name-is-far-too-long-for-a-room-name-0123456789012345678901234567890",
    ] {
        let (status, body) = refused(&server.url(path)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_room")),
            "{path}"
        );
    }
    let (status, body) = refused(&server.url("/0123456789abcdef0123456789abcdef?next=2")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_next")));
    let (status, _) = refused(&server.url("/room?meta=%ZZ")).await;
    assert_eq!(status, 400);
    // The server is still fine.
    let (status, _) = http(server.addr, "GET", "/health", None).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}
