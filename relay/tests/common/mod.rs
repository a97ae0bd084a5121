//! Shared test harness: a relay on port 0 and a small WebSocket client.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use ricochet_protocol::relay::{ClientFrame, Opcode, RelayEvent, RelayFrame};
use ricochet_protocol::{PeerId, Ticket, TicketClaims};
use ricochet_relay::Config;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &[u8] = b"test secret, at least sixteen bytes";
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Relay {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), ricochet_relay::Error>>,
}

impl Relay {
    pub async fn start(config: Config) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ricochet_relay::run(listener, config, async move {
            let _ = rx.await;
        }));
        Relay {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn default() -> Relay {
        Relay::start(config()).await
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub fn url(&self, ticket: &str) -> String {
        format!("ws://{}/?ticket={ticket}", self.addr)
    }

    /// Joins match `key` as peer `n` and reads the WELCOME.
    pub async fn join(&self, key: &str, n: u128) -> (Client, u16, Vec<(u16, PeerId)>) {
        let mut c = Client::connect(&self.url(&ticket(key, n))).await;
        match c.event().await {
            RelayEvent::Welcome { you, members } => (c, you, members),
            e => panic!("expected WELCOME, got {e:?}"),
        }
    }

    pub async fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").await.1
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn config() -> Config {
    Config::new(SECRET.to_vec()).unwrap()
}

pub fn peer(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A distinct, increasing issue time for every ticket a test makes: a later ticket for a seat
/// is always the newer one, even within one millisecond.
pub fn issued_at_ms() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let prev = NEXT.fetch_max(now, std::sync::atomic::Ordering::AcqRel);
    if prev >= now {
        NEXT.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    } else {
        now
    }
}

/// A ticket for peer `n` of match `key`, in seat `n % 16` of a 16-player match, valid 60 s.
pub fn ticket(key: &str, n: u128) -> String {
    ticket_with(key, n, (n % 16) as u8, 16, 60)
}

/// A ticket for peer `n` of match `key` in `seat` of a `max_players` match, valid `ttl` s.
pub fn ticket_with(key: &str, n: u128, seat: u8, max_players: u8, ttl: u64) -> String {
    Ticket::issue(
        SECRET,
        &TicketClaims {
            match_key: key.into(),
            peer: peer(n),
            seat,
            max_players,
            issued_at_ms: issued_at_ms(),
            expires_at: unix_now() + ttl,
        },
    )
    .unwrap()
    .to_string()
}

/// A raw HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// Reads a counter or gauge value (the sum over its label sets matching `filter`).
pub fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw next.
#[derive(Debug)]
pub enum Seen {
    Frame(Vec<u8>),
    Closed(Option<u16>),
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client { ws }
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw(ClientFrame::broadcast(Opcode(opcode), payload).to_vec())
            .await;
    }

    pub async fn send_to(&mut self, target: u16, opcode: u8, payload: &[u8]) {
        self.send_raw(ClientFrame::to_member(Opcode(opcode), target, payload).to_vec())
            .await;
    }

    /// The next binary frame or close, skipping pings.
    pub async fn next(&mut self) -> Seen {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for the relay");
            match msg {
                Some(Ok(Message::Binary(b))) => return Seen::Frame(b.to_vec()),
                Some(Ok(Message::Close(c))) => return Seen::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Seen::Closed(None),
            }
        }
    }

    pub async fn frame(&mut self) -> Vec<u8> {
        match self.next().await {
            Seen::Frame(b) => b,
            Seen::Closed(c) => panic!("expected a frame, connection closed with {c:?}"),
        }
    }

    pub async fn event(&mut self) -> RelayEvent {
        let b = self.frame().await;
        RelayFrame::parse(&b)
            .unwrap()
            .event()
            .unwrap()
            .unwrap_or_else(|| panic!("expected a relay event, got {b:?}"))
    }

    /// Reads until the connection closes; returns the close code. Frames before it are skipped.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Seen::Closed(c) = self.next().await {
                return c;
            }
        }
    }

    /// Asserts nothing arrives within `d`.
    pub async fn silent_for(&mut self, d: Duration) {
        if let Ok(Some(Ok(m))) = tokio::time::timeout(d, self.ws.next()).await {
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                panic!("expected silence, got {m:?}");
            }
        }
    }
}

pub fn close_code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// A two-member match that keeps exchanging frames; `check` proves every frame so far
/// arrived in order, untouched.
pub struct Bystanders {
    a: Client,
    b: Client,
    sent: u32,
}

impl Bystanders {
    pub async fn new(relay: &Relay, key: &str) -> Bystanders {
        let (mut a, _, _) = relay.join(key, 9_001).await;
        let (b, _, _) = relay.join(key, 9_002).await;
        assert!(matches!(a.event().await, RelayEvent::Join { .. }));
        Bystanders { a, b, sent: 0 }
    }

    /// Exchanges `n` frames each way and checks them.
    pub async fn exchange(&mut self, n: u32) {
        for _ in 0..n {
            self.sent += 1;
            let p = self.sent.to_be_bytes();
            self.a.send(1, &p).await;
            self.b.send(2, &p).await;
            let fb = self.b.frame().await;
            let fa = self.a.frame().await;
            assert_eq!(&fb[..1], &[1]);
            assert_eq!(&fb[4..], &p, "bystander frame lost or reordered");
            assert_eq!(&fa[..1], &[2]);
            assert_eq!(&fa[4..], &p, "bystander frame lost or reordered");
        }
    }
}

/// Resident set size of process `pid`, from /proc, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}
