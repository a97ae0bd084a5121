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
    cfg.max_connections_per_ip = 2;
    let server = start(cfg).await;
    let a = join(&server.url("/capped")).await;
    let _b = join(&server.url("/other")).await;
    let (status, body) = refused(&server.url("/third")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_connections_from_ip"))
    );
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = join(&server.url("/third")).await;
    server.stop().await.unwrap();

    let mut cfg = config();
    cfg.max_connections = 1;
    let server = start(cfg).await;
    let _a = join(&server.url("/one")).await;
    let (status, body) = refused(&server.url("/two")).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("server_full")));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn origin_allowlist() {
    let mut cfg = config();
    cfg.allowed_origins = vec!["https://game.example".into()];
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
    cfg.idle_timeout = Duration::from_millis(600);
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
