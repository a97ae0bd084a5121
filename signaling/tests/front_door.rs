//! The HTTP/TCP front door holds against the audit's attacks on the signaling server: sockets
//! that never send a byte are closed at the header timeout while `/health` keeps answering;
//! connections holding a huge unfinished request head are cut off at the head cap and the
//! process's memory stays bounded (the real binary); one address at its TCP cap cannot keep
//! another address from `/health` or a join; a kept-alive client that goes quiet is closed.
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Waits for the server to close `s` (EOF or reset); returns when, and the bytes that came.
async fn closed_at(s: &mut TcpStream, limit: Duration) -> Option<(Instant, Vec<u8>)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((Instant::now(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /health` from 127.0.0.1 with a deadline: the status, or `None` if it took longer.
async fn health_within(addr: SocketAddr, limit: Duration) -> Option<u16> {
    tokio::time::timeout(limit, http(addr, "GET", "/health", None))
        .await
        .ok()
        .map(|(status, _)| status)
}

/// (a) 400 sockets that never send a byte, from four addresses (100 each, under the per-IP
/// TCP cap), are all closed at the header timeout; `/health` answers throughout.
#[tokio::test]
async fn silent_sockets_are_closed_at_the_header_timeout_while_health_answers() {
    let timeout = Duration::from_secs(1);
    let mut cfg = config();
    cfg.set_http_header_timeout(timeout).unwrap();
    let server = start(cfg).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for n in 0..400u32 {
        let from = ip(10 + (n % 4) as u8);
        silent.push(tcp_from(from, server.addr).await.expect("connect"));
    }
    let opened = started.elapsed();
    let watchers: Vec<_> = silent
        .into_iter()
        .map(|mut s| tokio::spawn(async move { closed_at(&mut s, Duration::from_secs(10)).await }))
        .collect();
    // `/health` every 100 ms while the attack is on.
    let mut answered = 0;
    while started.elapsed() < timeout + Duration::from_millis(300) {
        let status = health_within(server.addr, Duration::from_secs(1)).await;
        assert_eq!(status, Some(200), "/health failed during the attack");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut longest = Duration::ZERO;
    let mut shortest = Duration::MAX;
    for w in watchers {
        let (at, bytes) = w
            .await
            .unwrap()
            .expect("a silent socket was still open after 10 s");
        assert!(bytes.is_empty(), "a silent socket got an answer: {bytes:?}");
        longest = longest.max(at - started);
        shortest = shortest.min(at - started);
    }
    println!(
        "400 silent sockets (opened in {opened:?}): closed after {shortest:?}..{longest:?} \
         (header timeout {timeout:?}); /health answered {answered} times meanwhile"
    );
    assert!(
        shortest >= timeout - Duration::from_millis(50),
        "{shortest:?}"
    );
    assert!(
        longest <= timeout + opened + Duration::from_millis(1500),
        "{longest:?}"
    );
    server.stop().await.unwrap();
}

/// (c) One address opens connections up to the per-IP TCP cap; the next from it is refused at
/// once, while another address still gets `/health` and a WebSocket join.
#[tokio::test]
async fn one_address_at_its_tcp_cap_cannot_shut_out_another() {
    let mut cfg = config();
    cfg.set_http_header_timeout(Duration::from_secs(30))
        .unwrap();
    let cap = cfg.max_tcp_connections_per_ip();
    assert_eq!(cap, ricochet_signaling::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP);
    let server = start(cfg).await;
    let attacker = ip(1);
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tcp_from(attacker, server.addr).await.expect("connect"));
    }
    // The server has taken them all when one more is refused.
    let mut over = tcp_from(attacker, server.addr).await.expect("connect");
    let refused_at = Instant::now();
    let (at, answer) = closed_at(&mut over, Duration::from_secs(5))
        .await
        .expect("the connection over the cap was not closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    println!(
        "connection {} from one address: 503 and closed after {:?}",
        cap + 1,
        at - refused_at
    );
    // Another address is served.
    let other = ip(2);
    let (status, body) = http_from(other, server.addr, "GET", "/health", None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let mut member = join_from(other, server.addr, "/front-door")
        .await
        .unwrap_or_else(|(status, body)| panic!("join refused: {status} {body}"));
    welcome(&mut member.ws).await;
    // The attacker's held sockets are all still counted: closing some lets it in again.
    held.truncate(cap - 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = http_from(attacker, server.addr, "GET", "/health", None).await;
    assert_eq!(status, 200);
    drop(held);
    server.stop().await.unwrap();
}

/// (d) A kept-alive client that goes quiet after a response is closed: at the header timeout
/// when that is the shorter (hyper's timer covers the wait for the next request), at the idle
/// timeout when that is.
#[tokio::test]
async fn quiet_kept_alive_clients_are_closed() {
    for (header, idle) in [(1, 30), (30, 1)] {
        let mut cfg = config();
        cfg.set_http_header_timeout(Duration::from_secs(header))
            .unwrap()
            .set_http_idle_timeout(Duration::from_secs(idle))
            .unwrap();
        let expected = Duration::from_secs(header.min(idle));
        let server = start(cfg).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let answered = Instant::now();
        let (at, _) = closed_at(&mut s, Duration::from_secs(10))
            .await
            .expect("kept-alive connection still open after 10 s");
        let waited = at - answered;
        println!("header {header} s, idle {idle} s: quiet keep-alive closed after {waited:?}");
        assert!(
            waited >= expected - Duration::from_millis(100),
            "{waited:?}"
        );
        assert!(
            waited <= expected + Duration::from_millis(800),
            "{waited:?}"
        );
        server.stop().await.unwrap();
    }
}

/// Oversize heads get 431 and the connection is closed; WebSocket joins still work with a
/// normal head.
#[tokio::test]
async fn oversize_heads_get_431() {
    let server = start(config()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(ricochet_signaling::DEFAULT_MAX_REQUEST_HEAD)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (_, answer) = closed_at(&mut s, Duration::from_secs(5))
        .await
        .expect("not closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
    let mut c = join(&server.url("/after-431")).await;
    welcome(&mut c.ws).await;
    server.stop().await.unwrap();
}

#[test]
fn front_door_settings_are_validated() {
    type Set = fn(&mut ricochet_signaling::Config) -> Result<(), ricochet_signaling::ConfigError>;
    let check = |f: Set| {
        let mut c = config();
        f(&mut c)?;
        c.validate()
    };
    assert_eq!(check(|_| Ok(())), Ok(()));
    for (bad, flag) in [
        (
            check(|c| {
                let n = c.max_connections() - 1;
                c.set_max_tcp_connections(n).map(drop)
            }),
            "max-tcp-connections",
        ),
        (
            check(|c| {
                let n = c.max_connections_per_ip() - 1;
                c.set_max_tcp_connections_per_ip(n).map(drop)
            }),
            "max-tcp-connections-per-ip",
        ),
        (
            check(|c| {
                c.set_max_tcp_connections(1_000)?
                    .set_max_connections(1_000)?
                    .set_max_tcp_connections_per_ip(1_001)
                    .map(drop)
            }),
            "max-tcp-connections-per-ip",
        ),
        (
            check(|c| c.set_http_header_timeout(Duration::ZERO).map(drop)),
            "http-header-timeout-secs",
        ),
        (
            check(|c| c.set_http_idle_timeout(Duration::ZERO).map(drop)),
            "http-idle-timeout-secs",
        ),
        (
            check(|c| c.set_max_request_head(1024).map(drop)),
            "max-request-head",
        ),
        (
            check(|c| c.set_max_request_head(4 << 20).map(drop)),
            "max-request-head",
        ),
    ] {
        let e = bad.expect_err("accepted");
        assert_eq!(e.setting(), flag, "{e}");
        assert!(e.to_string().starts_with(&format!("--{flag} ")), "{e}");
    }
}

/// A server binary started for a test, killed when dropped.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ricochet-signaling"))
            .args(["--addr", &addr.to_string()])
            .args(args)
            .env("RICOCHET_SECRET", "front door test secret, 16+ bytes")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ricochet-signaling");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "binary not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Binary { child, addr }
    }

    /// Resident set size, in bytes.
    fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }
}

/// Resident set size of process `pid`, from /proc, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Most the signaling process may hold while under the head attack (the audit measured 211 MB
/// before the head cap).
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// (b) 500 connections (from five addresses, under the per-IP cap) each send 400 KiB of a
/// request head that never ends: each is answered 431 or reset at 16 KiB and closed, and the
/// real binary's resident memory stays under [`RSS_BOUND`].
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_unfinished_heads_are_cut_off_and_memory_stays_bounded() {
    let server = Binary::start(&[]);
    let addr = server.addr;
    let before = server.rss();
    let head = std::sync::Arc::new(format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Fill: {}",
        "z".repeat(400 * 1024)
    ));
    let mut attackers = Vec::new();
    for n in 0..500u32 {
        let head = head.clone();
        attackers.push(tokio::spawn(async move {
            let mut s = tcp_from(ip(20 + (n % 5) as u8), addr)
                .await
                .expect("connect");
            // The server stops reading at the cap; the write fails or stalls there.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), s.write_all(head.as_bytes())).await;
            let closed = closed_at(&mut s, Duration::from_secs(10)).await;
            // Hold the socket open (from our side) until the measurement is done.
            (closed.is_some(), s)
        }));
    }
    // Sample the server's RSS every 20 ms until every attacker is done.
    let pid = server.child.id();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::task::spawn_blocking(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_of(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let mut sockets = Vec::new();
    let mut closed = 0;
    for a in attackers {
        let (was_closed, s) = a.await.unwrap();
        closed += usize::from(was_closed);
        sockets.push(s);
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut peak = sampler.await.unwrap().max(before);
    peak = peak.max(server.rss());
    println!(
        "head attack, 500 x 400 KiB: RSS {} MB before, peak {} MB (bound {} MB); {closed}/500 closed by the server",
        before / 1_000_000,
        peak / 1_000_000,
        RSS_BOUND / 1_000_000
    );
    assert_eq!(closed, 500, "every oversize head is cut off");
    assert!(peak < RSS_BOUND, "RSS peaked at {peak} bytes");
    // And the server still serves.
    let (status, _) = http(addr, "GET", "/health", None).await;
    assert_eq!(status, 200);
    drop(sockets);
}
