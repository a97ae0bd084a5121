//! Connection limits (total, per IP), the Origin allowlist, the idle timeout, and graceful
//! shutdown that closes every WebSocket and returns.
mod common;

use std::time::Duration;

use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[tokio::test]
async fn per_ip_and_total_connection_caps() {
    let mut cfg = config();
    cfg.set_max_connections_per_ip(2).unwrap();
    cfg.set_rejoin_grace(Duration::from_secs(1)).unwrap();
    let server = start(cfg).await;
    let mut a = join(&server.url("/capped")).await;
    let b = join(&server.url("/other?rejoinable=1")).await;
    let (status, body) = refused(&server.url("/third")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_connections_from_ip"))
    );
    // A connection that closes frees its place at once.
    a.ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = join(&server.url("/third")).await;
    // A rejoinable one that drops without a close keeps it for the rejoin grace (1 s here),
    // then frees it.
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = refused(&server.url("/fourth")).await;
    assert_eq!(status, 429, "the dropped member still holds its place");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let _d = join(&server.url("/fourth")).await;
    server.stop().await.unwrap();

    let mut cfg = config();
    cfg.set_max_connections(1).unwrap();
    let server = start(cfg).await;
    let _a = join(&server.url("/one")).await;
    let (status, body) = refused(&server.url("/two")).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("server_full")));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn origin_allowlist() {
    let mut cfg = config();
    cfg.set_allowed_origins(["https://game.example"]);
    let server = start(cfg).await;
    let mut req = server.url("/o").into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", HeaderValue::from_static("https://evil.example"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        other => panic!("evil origin accepted: {:?}", other.map(|_| ())),
    }
    let (status, _) = refused(&server.url("/o")).await; // no Origin at all
    assert_eq!(status, 403);
    let mut req = server.url("/o").into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", HeaderValue::from_static("https://game.example"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert!(matches!(
        recv(&mut ws).await,
        ricochet_protocol::signaling::ServerFrame::IdAssigned(_)
    ));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn silent_clients_time_out_but_keep_alive_counts() {
    let mut cfg = config();
    cfg.set_idle_timeout(Duration::from_millis(600)).unwrap();
    let server = start(cfg).await;
    let mut quiet = join(&server.url("/idle")).await;
    let mut chatty = join(&server.url("/idle2")).await;
    welcome(&mut quiet.ws).await;
    welcome(&mut chatty.ws).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        send_text(&mut chatty.ws, "\"KeepAlive\"").await;
    }
    assert_eq!(closed(&mut quiet.ws).await, Some(1000));
    silent(&mut chatty.ws, 100).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_and_returns() {
    let server = start(config()).await;
    let mut a = join(&server.url("/bye")).await;
    let mut b = join(&server.url("/bye")).await;
    welcome(&mut a.ws).await;
    welcome(&mut b.ws).await;
    let addr = server.addr;
    server.stop().await.unwrap();
    assert_eq!(closed(&mut b.ws).await, Some(1001));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn slow_readers_are_cut_off_without_slowing_others() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use ricochet_protocol::signaling::ServerFrame;
    use tokio_tungstenite::tungstenite::Message;

    let mut cfg = config();
    // Budgets that refill at once, and an outbound queue sized from the smallest bursts: the
    // slow member's queue overflows as soon as its socket buffers are full.
    let message_size = cfg.max_message_size() as u32;
    cfg.set_message_rate(1_000_000, 1_000_000)
        .unwrap()
        .set_signal_rate(1_000_000, 1)
        .unwrap()
        .set_signal_byte_rate(1_000_000_000, message_size)
        .unwrap()
        .set_match_join_rate(ricochet_signaling::DEFAULT_MATCH_JOIN_RATE, 2)
        .unwrap()
        .set_meta_rate(ricochet_signaling::DEFAULT_META_RATE, 1)
        .unwrap();
    let server = start(cfg).await;
    let mut fast = join(&server.url("/slow")).await;
    welcome(&mut fast.ws).await;
    // The slow member joins and then never reads again.
    let slow = join(&server.url("/slow")).await;
    expect_joined(&mut fast.ws, slow.id).await;
    let (mut sink, mut stream) = fast.ws.split();
    let payload = "x".repeat(7000);
    let to = slow.id;
    let writer = tokio::spawn(async move {
        for _ in 0..5000 {
            let text = serde_json::json!({"Signal": {"receiver": to, "data": payload}});
            if sink.send(Message::text(text.to_string())).await.is_err() {
                break;
            }
        }
    });
    // The fast member sees the slow one cut off (as a leave) well before it stops sending.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "slow reader never cut off"
        );
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            if ServerFrame::from_json(t.as_str()).unwrap() == ServerFrame::PeerLeft(slow.id) {
                break;
            }
        }
    }
    writer.abort();
    // Another match is unaffected.
    let mut other = join(&server.url("/elsewhere")).await;
    welcome(&mut other.ws).await;
    let (_, metrics) = http(server.addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains(r#"ricochet_signaling_rejections_total{reason="too_slow"} 1"#),
        "{metrics}"
    );
    drop(slow);
    server.stop().await.unwrap();
}
