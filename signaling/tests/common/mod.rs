//! Helpers shared by the integration tests: start a server on port 0, raw WebSocket clients,
//! a tiny HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use ricochet_protocol::signaling::{ServerFrame, ServerMessage};
use ricochet_protocol::PeerId;
use ricochet_signaling::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &[u8] = b"test secret shared with the relay";

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running server; dropping it does not stop it, call [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ricochet_signaling::Error>>,
}

pub fn config() -> Config {
    let mut config = Config::new(SECRET.to_vec()).unwrap();
    config.set_relay_url(Some("ws://relay.test:3537")).unwrap();
    config
}

pub async fn start(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config).await
}

/// [`start`] on a listener already bound (when the config must name its address).
pub async fn start_on(listener: tokio::net::TcpListener, config: Config) -> Server {
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ricochet_signaling::run(listener, config, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), ricochet_signaling::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server did not stop within 10 s")
            .expect("server task panicked")
    }
}

/// A raw WebSocket client that remembers its assigned ID.
pub struct Client {
    pub ws: Ws,
    pub id: PeerId,
}

pub async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// Connects and reads `IdAssigned`.
pub async fn join(url: &str) -> Client {
    let mut ws = connect(url).await;
    let id = match recv(&mut ws).await {
        ServerFrame::IdAssigned(id) => id,
        other => panic!("expected IdAssigned first, got {other:?}"),
    };
    Client { ws, id }
}

/// Connects, expecting an HTTP refusal; returns (status, parsed JSON body).
pub async fn refused(url: &str) -> (u16, Value) {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            (
                status,
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            )
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Next text frame, decoded; panics after 5 s.
pub async fn recv(ws: &mut Ws) -> ServerFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket closed")
            .expect("socket error");
        match msg {
            Message::Text(t) => {
                return ServerFrame::from_json(t.as_str())
                    .unwrap_or_else(|e| panic!("undecodable {t}: {e}"))
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Next Ricochet extension message (skipping nothing: the next frame must be one).
pub async fn recv_ext(ws: &mut Ws) -> ServerMessage {
    match recv(ws).await {
        ServerFrame::Ricochet(m) => m,
        other => panic!("expected an extension message, got {other:?}"),
    }
}

/// Asserts that nothing arrives for `ms` milliseconds.
pub async fn silent(ws: &mut Ws, ms: u64) {
    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
        panic!("expected silence, got {msg:?}");
    }
}

/// Reads the welcome and the ticket that follow `IdAssigned`.
pub async fn welcome(ws: &mut Ws) -> (ServerMessage, ServerMessage) {
    let w = recv_ext(ws).await;
    assert!(matches!(w, ServerMessage::Welcome { .. }), "{w:?}");
    let t = recv_ext(ws).await;
    assert!(matches!(t, ServerMessage::Ticket(_)), "{t:?}");
    (w, t)
}

/// Reads `NewPeer(expected)` followed by `peer_joined`.
pub async fn expect_joined(ws: &mut Ws, expected: PeerId) {
    assert_eq!(recv(ws).await, ServerFrame::NewPeer(expected));
    match recv_ext(ws).await {
        ServerMessage::PeerJoined(m) => assert_eq!(m.peer, expected),
        other => panic!("expected peer_joined, got {other:?}"),
    }
}

/// Reads `PeerLeft(expected)` followed by `peer_left`.
pub async fn expect_left(ws: &mut Ws, expected: PeerId) {
    assert_eq!(recv(ws).await, ServerFrame::PeerLeft(expected));
    assert_eq!(
        recv_ext(ws).await,
        ServerMessage::PeerLeft { peer: expected }
    );
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

pub async fn signal(ws: &mut Ws, to: PeerId, data: Value) {
    let text = serde_json::json!({"Signal": {"receiver": to, "data": data}}).to_string();
    send_text(ws, &text).await;
}

/// Expects a `Signal` from `from` carrying `data`.
pub async fn expect_signal(ws: &mut Ws, from: PeerId, data: Value) {
    assert_eq!(recv(ws).await, ServerFrame::Signal { sender: from, data });
}

/// Waits for the server to close the socket; returns the close code if one was sent.
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("socket not closed within 5 s")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (status, _, body) =
        exchange(stream, addr, method, path, body, "", Duration::from_secs(5)).await;
    (status, body)
}

/// [`http`] with `Authorization: Bearer TOKEN` when `token` is given; (status, body).
pub async fn http_bearer(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = exchange(
        stream,
        addr,
        method,
        path,
        None,
        &auth,
        Duration::from_secs(5),
    )
    .await;
    (status, body)
}

/// Sends one request on `stream` (with `headers`, whole header lines, added) and reads the
/// response until the server closes; returns (status, head, body).
async fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &str,
    wait: Duration,
) -> (u16, String, String) {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(wait, stream.read_to_end(&mut out))
        .await
        .expect("http timeout")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A TCP connection to `addr` from the local address `from` (any of 127.0.0.0/8 works on
/// Linux), so that one test can be several client addresses.
pub async fn tcp_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// [`http`] from the local address `from`.
pub async fn http_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let (status, _, body) = http_full_from(from, addr, method, path, body).await;
    (status, body)
}

/// [`http_from`], also returning the response head (status line and headers).
pub async fn http_full_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, String) {
    let stream = tcp_from(from, addr).await.unwrap();
    exchange(
        stream,
        addr,
        method,
        path,
        body,
        "",
        Duration::from_secs(10),
    )
    .await
}

/// A WebSocket join of `path` on the server at `server` from the local address `from`: the client and its
/// `IdAssigned` ID, or the HTTP refusal (status, JSON body).
pub async fn join_from(
    from: std::net::IpAddr,
    server: SocketAddr,
    path: &str,
) -> Result<Client, (u16, Value)> {
    let stream = tcp_from(from, server).await.expect("tcp connect");
    let url = format!("ws://{server}{path}");
    match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await {
        Ok((mut ws, _)) => {
            let id = match recv(&mut ws).await {
                ServerFrame::IdAssigned(id) => id,
                other => panic!("expected IdAssigned first, got {other:?}"),
            };
            Ok(Client { ws, id })
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            Err((
                status,
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            ))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A `redis-server` on a free loopback port, killed on drop.
pub struct Redis(std::process::Child, pub u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `redis-server`, or `None` if it is not installed.
pub async fn redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child, port);
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(redis);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("redis-server did not listen on port {port}");
}
