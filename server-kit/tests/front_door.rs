//! The front door's limits, measured on loopback with a tiny hyper service: silent sockets and
//! kept-alive connections are closed on time, oversize heads get 431, the TCP caps hold per
//! address and in total, upgrades keep their slot, shutdown is graceful.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use ricochet_server_kit::{FrontDoor, FrontDoorConfig, OpenConnections};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `/` answers 200, `/slow` after 300 ms, `/echo` with its body, `/upgrade` switches protocols
/// and then holds the upgraded IO for 60 s.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ok = |body: Bytes| Ok(Response::new(Full::new(body)));
    match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok(Bytes::from_static(b"slow"))
        }
        "/echo" => {
            let body = req.into_body().collect().await;
            ok(body.map(|b| b.to_bytes()).unwrap_or_default())
        }
        "/upgrade" => {
            let on_upgrade = hyper::upgrade::on(req);
            tokio::spawn(async move {
                if let Ok(io) = on_upgrade.await {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    drop(io);
                }
            });
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert(hyper::header::UPGRADE, "test".parse().unwrap());
            r.headers_mut()
                .insert(hyper::header::CONNECTION, "upgrade".parse().unwrap());
            Ok(r)
        }
        _ => ok(Bytes::from_static(b"ok")),
    }
}

struct Door {
    addr: SocketAddr,
    open: OpenConnections,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Door {
    async fn start(config: FrontDoorConfig) -> Door {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let door = FrontDoor::new(config).unwrap();
        let open = door.open_connections();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(door.serve(
            listener,
            |_peer| hyper::service::service_fn(handle),
            async move {
                let _ = stopped.await;
            },
        ));
        Door {
            addr,
            open,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve did not return")
            .unwrap();
    }
}

fn config() -> FrontDoorConfig {
    FrontDoorConfig::default()
}

/// Reads until EOF or a reset; returns what arrived and when the connection ended.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, Instant::now()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head and a body of `body_len` bytes.
async fn read_response(s: &mut TcpStream, body_len: usize) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if body.len() >= body_len {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response timed out")
            .expect("read");
        assert!(n > 0, "closed mid-response: {text:?}");
        out.extend_from_slice(&buf[..n]);
    }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (out, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Waits until `f` holds, up to 5 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn silent_sockets_are_closed_at_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let door = Door::start(FrontDoorConfig {
        header_read_timeout: timeout,
        ..config()
    })
    .await;
    let start = Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..50 {
        sockets.push(TcpStream::connect(door.addr).await.unwrap());
    }
    eventually("all 50 counted", || door.open.total() == 50).await;
    let mut last = start;
    for s in &mut sockets {
        let (bytes, at) = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(
            bytes.is_empty(),
            "a silent socket is closed without an answer"
        );
        last = last.max(at);
    }
    let lived = last - start;
    println!("50 silent sockets: last closed after {lived:?} (timeout {timeout:?})");
    assert!(lived >= timeout, "closed before the timeout: {lived:?}");
    assert!(lived < timeout + Duration::from_millis(700), "{lived:?}");
    eventually("slots given back", || door.open.total() == 0).await;
    door.stop().await;
}

/// hyper's header-read timeout also runs while a kept-alive connection waits for its next
/// request: measured here, with an idle timeout far longer so it cannot be the cause.
#[tokio::test]
async fn header_timeout_covers_the_wait_for_the_next_request() {
    let timeout = Duration::from_millis(600);
    let door = Door::start(FrontDoorConfig {
        header_read_timeout: timeout,
        idle_timeout: Duration::from_secs(30),
        ..config()
    })
    .await;
    let mut s = TcpStream::connect(door.addr).await.unwrap();
    // Two requests on one connection, the second after 400 ms (within the timeout).
    let mut answered = Instant::now();
    for i in 0..2 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut s, 2).await;
        // Taken when the response is in: on a loaded machine a sleep can overrun, so the
        // time of the last answer is read, not computed.
        answered = Instant::now();
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let (rest, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_empty());
    let waited = closed - answered;
    println!("kept-alive connection closed {waited:?} after its last response");
    assert!(waited >= timeout - Duration::from_millis(50), "{waited:?}");
    assert!(waited < timeout + Duration::from_millis(500), "{waited:?}");
    door.stop().await;
}

#[tokio::test]
async fn idle_timeout_closes_quiet_connections_and_stalled_bodies() {
    let idle = Duration::from_millis(400);
    let door = Door::start(FrontDoorConfig {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: idle,
        ..config()
    })
    .await;
    // A kept-alive client that goes quiet after a response.
    let mut quiet = TcpStream::connect(door.addr).await.unwrap();
    quiet
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut quiet, 2).await;
    let answered = Instant::now();
    // A client that promises a 100-byte body and sends 10.
    let mut stalled = TcpStream::connect(door.addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let sent = Instant::now();
    let (_, quiet_closed) = read_until_closed(&mut quiet, Duration::from_secs(5)).await;
    let (_, stalled_closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    let (q, st) = (quiet_closed - answered, stalled_closed - sent);
    println!("idle {idle:?}: quiet keep-alive closed after {q:?}, stalled body after {st:?}");
    for waited in [q, st] {
        assert!(waited >= idle - Duration::from_millis(20), "{waited:?}");
        assert!(waited < idle * 2 + Duration::from_millis(300), "{waited:?}");
    }
    // A connection that keeps talking is not idle, however long it lives.
    let mut busy = TcpStream::connect(door.addr).await.unwrap();
    for _ in 0..6 {
        busy.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut busy, 2)
            .await
            .starts_with("HTTP/1.1 200"));
        tokio::time::sleep(idle / 2).await;
    }
    door.stop().await;
}

#[tokio::test]
async fn oversize_request_heads_get_431_and_are_closed() {
    let door = Door::start(FrontDoorConfig {
        max_request_head: 16 * 1024,
        ..config()
    })
    .await;
    // A head just under the cap is fine.
    let mut s = TcpStream::connect(door.addr).await.unwrap();
    let filler = "a".repeat(15 * 1024);
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: t\r\nX-Fill: {filler}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (ok, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        ok.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&ok)
    );
    // 400 KiB of unfinished head: cut off at 16 KiB.
    let mut s = TcpStream::connect(door.addr).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Fill: {}",
        "b".repeat(400 * 1024)
    );
    // The server may close (and reset) before all of it is written.
    let _ = s.write_all(big.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer);
    // Linux may deliver the reset before the answer; when the answer arrives, it is 431.
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text:?}"
    );
    eventually("closed", || door.open.total() == 0).await;
    // A head over the cap sent in full, then read: 431.
    let mut s = TcpStream::connect(door.addr).await.unwrap();
    let over = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Fill: {}\r\n\r\n",
        "c".repeat(17 * 1024)
    );
    s.write_all(over.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 431");
    door.stop().await;
}

#[tokio::test]
async fn tcp_caps_hold_per_address_and_in_total() {
    let door = Door::start(FrontDoorConfig {
        max_connections: 5,
        max_connections_per_ip: 3,
        ..config()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", door.addr).await);
    }
    eventually("3 counted", || door.open.total() == 3).await;
    // The fourth from the same address: a bare 503, closed at once.
    let mut over = connect_from("127.0.0.1", door.addr).await;
    let (answer, _) = read_until_closed(&mut over, Duration::from_secs(2)).await;
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    // Another address still gets in and is served...
    let other = get_from("127.0.0.2", door.addr, "/").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // ...until the total cap: 3 + 2 from 127.0.0.2, then 127.0.0.3 is refused too.
    held.push(connect_from("127.0.0.2", door.addr).await);
    held.push(connect_from("127.0.0.2", door.addr).await);
    eventually("5 counted", || door.open.total() == 5).await;
    let mut over = connect_from("127.0.0.3", door.addr).await;
    let (answer, _) = read_until_closed(&mut over, Duration::from_secs(2)).await;
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    // Closing gives the places back.
    held.clear();
    eventually("all given back", || door.open.total() == 0).await;
    assert_eq!(door.open.addresses(), 0);
    assert!(get(door.addr, "/").await.starts_with("HTTP/1.1 200"));
    door.stop().await;
}

async fn get_from(local: &str, addr: SocketAddr, path: &str) -> String {
    let mut s = connect_from(local, addr).await;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (out, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_upgraded_connection_keeps_its_place_until_closed() {
    let door = Door::start(FrontDoorConfig {
        max_connections_per_ip: 2,
        idle_timeout: Duration::from_millis(200),
        header_read_timeout: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut up = TcpStream::connect(door.addr).await.unwrap();
    up.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut up, 0).await;
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    // Well past the HTTP timeouts: the upgraded socket is not HTTP's to close, and it still
    // holds its place.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(door.open.total(), 1);
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), up.read(&mut buf))
            .await
            .is_err(),
        "the upgraded connection was closed"
    );
    let _second = TcpStream::connect(door.addr).await.unwrap();
    let mut third = TcpStream::connect(door.addr).await.unwrap();
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(2)).await;
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    door.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_stops_accepting() {
    let door = Door::start(config()).await;
    let addr = door.addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    eventually("both counted", || door.open.total() == 2).await;
    let open = door.open.clone();
    let started = Instant::now();
    door.stop().await;
    println!(
        "serve returned {:?} after the shutdown signal",
        started.elapsed()
    );
    let answer = read_response(&mut slow, 4).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    let (rest, _) = read_until_closed(&mut idle, Duration::from_secs(2)).await;
    assert!(rest.is_empty());
    assert_eq!(open.total(), 0);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
