//! HTTP routes: `/health`, `/metrics`, static files beside the WebSocket room routes, and the
//! answer to a plain GET on a room.
mod common;

use std::path::PathBuf;

use common::*;

fn static_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ricochet-signaling-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>ricochet</h1>").unwrap();
    std::fs::write(dir.join("game.js"), "console.log('game')").unwrap();
    std::fs::write(dir.join("assets/style.css"), "body{}").unwrap();
    dir
}

#[tokio::test]
async fn health_and_metrics() {
    let server = start(config()).await;
    assert_eq!(http(server.addr, "GET", "/health", None).await.0, 200);
    let _a = join(&server.url("/metered")).await;
    let (status, text) = http(server.addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    for needle in [
        "ricochet_signaling_connections 1",
        "ricochet_signaling_matches 1",
        "ricochet_signaling_connections_accepted_total 1",
        "# TYPE ricochet_signaling_rejections counter",
        "# TYPE ricochet_signaling_messages_received counter",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn static_files_do_not_shadow_rooms() {
    let mut cfg = config();
    cfg.set_static_dir(Some(static_dir()));
    let server = start(cfg).await;
    let (status, body) = http(server.addr, "GET", "/", None).await;
    assert_eq!((status, body.as_str()), (200, "<h1>ricochet</h1>"));
    let (status, body) = http(server.addr, "GET", "/game.js", None).await;
    assert_eq!((status, body.as_str()), (200, "console.log('game')"));
    let (status, body) = http(server.addr, "GET", "/assets/style.css", None).await;
    assert_eq!((status, body.as_str()), (200, "body{}"));
    assert_eq!(http(server.addr, "GET", "/missing.txt", None).await.0, 404);
    // The same one-segment path is still a room for WebSocket upgrades.
    let mut a = join(&server.url("/game.js")).await;
    welcome(&mut a.ws).await;
    assert_eq!(http(server.addr, "GET", "/health", None).await.0, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn plain_get_on_a_room_without_static_files_says_upgrade() {
    let server = start(config()).await;
    let (status, body) = http(server.addr, "GET", "/some-room", None).await;
    assert_eq!(status, 426);
    assert!(body.contains("upgrade_required"), "{body}");
    assert_eq!(http(server.addr, "GET", "/a/b", None).await.0, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn match_api_answers_cors_preflight() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start(config()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = "OPTIONS /matches HTTP/1.1\r\nHost: x\r\nOrigin: https://game.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n";
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let lower = out.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{out}");
    assert!(lower.contains("access-control-allow-origin: *"), "{out}");
    assert!(lower.contains("post"), "{out}");
    server.stop().await.unwrap();
}
