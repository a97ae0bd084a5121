//! The operator console's API: off without a token, refused with a wrong one, and with the
//! right one it lists matches with their members, lobby and reported links, closes a match and
//! removes a member.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ricochet_protocol::signaling::{ErrorCode, ServerMessage};
use serde_json::{json, Value};

const TOKEN: &str = "operator-token-0123456789";

/// An HTTP request with `Authorization: Bearer token` (if any); (status, JSON body).
async fn admin(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, body) = http_bearer(addr, method, path, token).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn console() -> ricochet_signaling::Config {
    let mut c = config();
    c.set_admin_token(Some(TOKEN)).unwrap();
    c
}

#[tokio::test]
async fn without_a_token_the_console_is_off_and_says_how_to_turn_it_on() {
    let server = start(config()).await;
    for (method, path) in [
        ("GET", "/admin"),
        ("GET", "/admin/api/state"),
        (
            "POST",
            &format!("/admin/api/matches/{}/close", "ab".repeat(16)),
        ),
    ] {
        let (status, body) = admin(server.addr, method, path, Some(TOKEN)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"], "admin_disabled");
        assert!(body["message"].as_str().unwrap().contains("--admin-token"));
    }
    // Short tokens are refused at start.
    assert!(config().set_admin_token(Some("short")).is_err());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_tokens_are_refused_and_then_rate_limited() {
    let server = start(console()).await;
    let (status, page) = admin(server.addr, "GET", "/admin", None).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("operator console"));
    let (status, body) = admin(server.addr, "GET", "/admin/api/state", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let mut limited = false;
    for i in 0..30 {
        let (status, body) = admin(
            server.addr,
            "GET",
            "/admin/api/state",
            Some(&format!("guess-{i}")),
        )
        .await;
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    assert!(limited, "wrong tokens were not rate limited");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_console_lists_closes_and_removes() {
    let server = start(console()).await;
    let url = server.url("/ops-night?meta=%7B%22name%22%3A%22ann%22%7D&rejoin_grace_secs=9");
    let mut a = join(&url).await;
    welcome(&mut a.ws).await;
    let mut b = join(&server.url("/ops-night")).await;
    welcome(&mut b.ws).await;
    expect_joined(&mut a.ws, b.id).await;
    let mut c = join(&server.url("/ops-night")).await;
    welcome(&mut c.ws).await;
    expect_joined(&mut a.ws, c.id).await;
    expect_joined(&mut b.ws, c.id).await;
    // a reports its links twice; the second report's relay counter gives a rate.
    let report = |packets: u64| {
        json!({"Ricochet": {"type": "links", "relay_packets": packets, "links": [
            {"peer": b.id, "path": "relay", "rtt_ms": 42, "loss": 0.01},
            {"peer": c.id, "path": "direct", "rtt_ms": 7}
        ]}})
        .to_string()
    };
    send_text(&mut a.ws, &report(100)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send_text(&mut a.ws, &report(160)).await;
    // Two more at once are over the rate (one a second, a burst of two): the last is refused,
    // the sender told.
    send_text(&mut a.ws, &report(160)).await;
    send_text(&mut a.ws, &report(160)).await;
    match recv_ext(&mut a.ws).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::ReportRefused),
        other => panic!("{other:?}"),
    }
    let (status, view) = admin(server.addr, "GET", "/admin/api/state", Some(TOKEN)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["totals"]["clients"], 3);
    assert_eq!(view["totals"]["matches"], 1);
    assert_eq!(
        view["matches"][0]["rejoin_grace_secs"], 9,
        "the room's own grace"
    );
    assert_eq!(view["totals"]["links_reported"], 2);
    assert_eq!(view["totals"]["links_relayed"], 1);
    let pps = view["totals"]["relay_packets_per_sec"].as_f64().unwrap();
    assert!((30.0..=60.0).contains(&pps), "{pps}");
    let m = &view["matches"][0];
    assert_eq!(m["name"], "ops-night");
    assert_eq!(m["relay_url"], "ws://relay.test:3537");
    assert_eq!(m["lobby"]["host"], json!(a.id));
    let members = m["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["meta"]["name"], "ann");
    assert_eq!(members[0]["links"][0]["path"], "relay");
    assert_eq!(members[0]["links"][0]["rtt_ms"], 42);
    let id = m["id"].as_str().unwrap().to_owned();

    // Remove c: its socket closes with 4101, the others see it leave.
    let (status, body) = admin(
        server.addr,
        "POST",
        &format!("/admin/api/matches/{id}/members/{}/remove", c.id),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(closed(&mut c.ws).await, Some(4101));
    expect_left(&mut a.ws, c.id).await;
    expect_left(&mut b.ws, c.id).await;
    // Removing it again, or from another match: 404.
    let (status, _) = admin(
        server.addr,
        "POST",
        &format!("/admin/api/matches/{id}/members/{}/remove", c.id),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);

    // Close the match: both sockets close with 4100, and the match is gone.
    let (status, body) = admin(
        server.addr,
        "POST",
        &format!("/admin/api/matches/{id}/close"),
        Some(TOKEN),
    )
    .await;
    assert_eq!((status, body["members"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(closed(&mut a.ws).await, Some(4100));
    assert_eq!(closed(&mut b.ws).await, Some(4100));
    let (_, view) = admin(server.addr, "GET", "/admin/api/state", Some(TOKEN)).await;
    assert_eq!(view["totals"]["matches"], 0);
    assert_eq!(view["totals"]["clients"], 0);
    let (status, _) = admin(
        server.addr,
        "POST",
        &format!("/admin/api/matches/{id}/close"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    // The name makes a fresh match now.
    let mut again = join(&server.url("/ops-night")).await;
    welcome(&mut again.ws).await;
    let (status, _) = admin(server.addr, "GET", "/admin/api/state?limit=0", Some(TOKEN)).await;
    assert_eq!(status, 400);
    server.stop().await.unwrap();
}
