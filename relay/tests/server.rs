//! The server around the relay: `/health`, Prometheus `/metrics`, and graceful shutdown that
//! closes every member with 1001 and makes `run` return.
mod common;

use std::time::Duration;

use common::*;
use ricochet_protocol::relay::close;

#[tokio::test]
async fn health_metrics_and_graceful_shutdown() {
    let mut relay = Relay::default().await;
    assert_eq!(http_get(relay.addr, "/health").await, (200, "ok".into()));
    let (mut a, _, _) = relay.join("m", 1).await;
    let (mut b, _, _) = relay.join("m", 2).await;
    a.event().await;
    a.send(1, b"0123456789").await;
    b.frame().await;
    let (status, body) = http_get(relay.addr, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "relay_connections",
        "relay_members",
        "relay_matches",
        "relay_frames_in_total",
        "relay_frames_out_total",
        "relay_bytes_in_total",
        "relay_bytes_out_total",
        "relay_queue_depth",
    ] {
        assert!(body.contains(name), "{name} missing from\n{body}");
    }
    assert_eq!(metric(&body, "relay_members", ""), 2.0);
    assert_eq!(metric(&body, "relay_matches", ""), 1.0);
    // frames_out counts WELCOME, JOIN and the game frame.
    assert!(metric(&body, "relay_frames_out_total", "") >= 4.0);

    relay.stop();
    assert_eq!(a.closed().await, Some(close::GOING_AWAY));
    assert_eq!(b.closed().await, Some(close::GOING_AWAY));
    let res = tokio::time::timeout(Duration::from_secs(6), &mut relay.task)
        .await
        .expect("run did not return after shutdown")
        .unwrap();
    assert!(res.is_ok());
    assert!(tokio::net::TcpStream::connect(relay.addr).await.is_err());
}

/// HTTP errors are JSON like signaling's (`{"error", "message"}`), and the WebSocket answers at
/// any path, so the relay works behind a proxy that forwards a path prefix.
#[tokio::test]
async fn errors_are_json_and_the_websocket_answers_behind_a_path_prefix() {
    let relay = Relay::default().await;
    for (path, status, code) in [
        ("/", 426, "upgrade_required"),
        ("/nothing-here", 404, "not_found"),
        ("/relay/", 404, "not_found"),
    ] {
        let (got, body) = http_get(relay.addr, path).await;
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {body:?}: {e}"));
        assert_eq!(
            (got, json["error"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A WebSocket at a prefixed path (as a proxy forwards `wss://host/relay/?ticket=...`).
    let url = format!(
        "ws://{}/relay/?ticket={}",
        relay.addr,
        ticket("prefixed", 1)
    );
    let mut c = Client::connect(&url).await;
    assert!(matches!(
        c.event().await,
        ricochet_protocol::relay::RelayEvent::Welcome { .. }
    ));
}

/// A config always has a usable secret (`Config::new` is the only way to make one), and
/// settings that do not fit together stop `run` before it serves.
#[tokio::test]
async fn run_refuses_settings_that_do_not_fit_together() {
    assert!(matches!(
        ricochet_relay::Config::new(b"short".to_vec()),
        Err(ricochet_relay::ConfigError::WeakSecret { .. })
    ));
    let mut c = config();
    assert!(c.set_max_frame_len(3).is_err());
    assert!(c.set_outbound_queue(0).is_err());
    assert!(c.set_max_members_per_match(70_000).is_err());
    c.set_byte_rate(1_000, 1_000).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = ricochet_relay::run(listener, c, std::future::pending()).await;
    match r {
        Err(ricochet_relay::Error::Config(e)) => assert_eq!(e.setting(), "byte-burst"),
        other => panic!("{other:?}"),
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_setting_forwards() {
    // 0 = connections on the caller's runtime; 1 and 3 = that many shard threads.
    for shards in [0, 1, 3] {
        let mut cfg = config();
        cfg.set_shards(shards).unwrap();
        let relay = Relay::start(cfg).await;
        for key in ["a", "b", "c", "d"] {
            let mut by = Bystanders::new(&relay, key).await;
            by.exchange(3).await;
        }
    }
}
