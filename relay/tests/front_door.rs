//! The HTTP/TCP front door holds against the audit's attacks on the relay: sockets that never
//! send a byte are closed at the header timeout while `/health` keeps answering; connections
//! holding a huge unfinished request head are cut off at the head cap and the process's memory
//! stays bounded (the real binary); one address at its TCP cap cannot keep another address from
//! `/health` or a join; a kept-alive client that goes quiet is closed; at descriptor exhaustion
//! failed accepts are logged a few times, not thousands, and the relay recovers.
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use ricochet_protocol::relay::RelayEvent;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `addr` from the local address `from` (any of 127.0.0.0/8 on Linux).
async fn tcp_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
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

/// `GET path` from `from`, `Connection: close`: the status (0 if none came within 5 s).
async fn get_from(from: IpAddr, addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = tcp_from(from, addr).await else {
        return 0;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    match closed_at(&mut s, Duration::from_secs(5)).await {
        Some((_, bytes)) => String::from_utf8_lossy(&bytes)
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        None => 0,
    }
}

/// (a) 400 sockets that never send a byte, from four addresses (100 each, under the per-IP
/// TCP cap), are all closed at the header timeout; `/health` answers throughout.
#[tokio::test]
async fn silent_sockets_are_closed_at_the_header_timeout_while_health_answers() {
    let timeout = Duration::from_secs(1);
    let mut cfg = config();
    cfg.set_http_header_timeout(timeout).unwrap();
    let relay = Relay::start(cfg).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for n in 0..400u32 {
        silent.push(
            tcp_from(ip(10 + (n % 4) as u8), relay.addr)
                .await
                .expect("connect"),
        );
    }
    let opened = started.elapsed();
    let watchers: Vec<_> = silent
        .into_iter()
        .map(|mut s| tokio::spawn(async move { closed_at(&mut s, Duration::from_secs(10)).await }))
        .collect();
    let mut answered = 0;
    while started.elapsed() < timeout + Duration::from_millis(300) {
        let status = tokio::time::timeout(Duration::from_secs(1), http_get(relay.addr, "/health"))
            .await
            .map(|(status, _)| status);
        assert_eq!(status, Ok(200), "/health failed during the attack");
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
}

/// (c) One address opens connections up to the per-IP TCP cap; the next from it is refused at
/// once, while another address still gets `/health` and joins a match.
#[tokio::test]
async fn one_address_at_its_tcp_cap_cannot_shut_out_another() {
    let mut cfg = config();
    cfg.set_http_header_timeout(Duration::from_secs(30))
        .unwrap();
    let cap = ricochet_relay::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP;
    let relay = Relay::start(cfg).await;
    let attacker = ip(1);
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(tcp_from(attacker, relay.addr).await.expect("connect"));
    }
    let mut over = tcp_from(attacker, relay.addr).await.expect("connect");
    let (_, answer) = closed_at(&mut over, Duration::from_secs(5))
        .await
        .expect("the connection over the cap was not closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    // Another address is served: /health, and a join with a ticket.
    let other = ip(2);
    assert_eq!(get_from(other, relay.addr, "/health").await, 200);
    let stream = tcp_from(other, relay.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        relay.url(&ticket("front-door", 1)),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("join refused");
    let mut member = Client { ws };
    assert!(matches!(member.event().await, RelayEvent::Welcome { .. }));
    // Closing one of the attacker's sockets lets it in again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get_from(attacker, relay.addr, "/health").await, 200);
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
        let relay = Relay::start(cfg).await;
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
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
    }
}

#[tokio::test]
async fn tcp_caps_below_websocket_caps_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = config();
    cfg.set_max_connections_per_ip(500).unwrap();
    let r = ricochet_relay::run(listener, cfg, async {}).await;
    let e = r.expect_err("a TCP cap per IP below the WebSocket cap was accepted");
    assert_eq!(
        e.to_string(),
        "invalid configuration: --max-tcp-connections-per-ip (128) must be at least \
         --max-connections-per-ip (500)"
    );
    let mut cfg = config();
    assert!(cfg.set_max_request_head(4096).is_err());
    assert!(cfg.set_max_request_head(2 << 20).is_err());
    assert!(cfg.set_http_header_timeout(Duration::ZERO).is_err());
    assert!(cfg.set_http_idle_timeout(Duration::ZERO).is_err());
    assert!(cfg.set_max_tcp_connections(0).is_err());
    cfg.set_max_tcp_connections(100).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = ricochet_relay::run(listener, cfg, async {})
        .await
        .expect_err("a TCP cap below the WebSocket cap was accepted");
    assert!(
        matches!(&e, ricochet_relay::Error::Config(c) if c.setting() == "max-tcp-connections"),
        "{e}"
    );
}

/// A relay binary started for a test, killed when dropped; its log (stdout and stderr) is kept.
struct Binary {
    child: Child,
    addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts `ricochet-relay` with `args`, through `sh -c 'ulimit -n N; exec ...'` when
    /// `nofile` is given (soft and hard limit, so the relay cannot raise it).
    fn start(args: &[&str], nofile: Option<u32>) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bin = env!("CARGO_BIN_EXE_ricochet-relay");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["--addr", &addr.to_string()])
            .args(args)
            .env("RICOCHET_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ricochet-relay");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for output in outputs {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(output).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "binary not listening: {}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Binary { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Most the relay process may hold while under the head attack.
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// (b) 500 connections (from five addresses, under the per-IP cap) each send 400 KiB of a
/// request head that never ends: each is cut off at 16 KiB and closed, and the real binary's
/// resident memory stays under [`RSS_BOUND`].
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_unfinished_heads_are_cut_off_and_memory_stays_bounded() {
    let relay = Binary::start(&[], None);
    let addr = relay.addr;
    let pid = relay.child.id();
    let before = rss_of(pid);
    let head = std::sync::Arc::new(format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Fill: {}",
        "z".repeat(400 * 1024)
    ));
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
    let attackers: Vec<_> = (0..500u32)
        .map(|n| {
            let head = head.clone();
            tokio::spawn(async move {
                let mut s = tcp_from(ip(20 + (n % 5) as u8), addr)
                    .await
                    .expect("connect");
                let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(head.as_bytes()))
                    .await;
                let closed = closed_at(&mut s, Duration::from_secs(10)).await;
                (closed.is_some(), s)
            })
        })
        .collect();
    let mut sockets = Vec::new();
    let mut closed = 0;
    for a in attackers {
        let (was_closed, s) = a.await.unwrap();
        closed += usize::from(was_closed);
        sockets.push(s);
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap().max(before).max(rss_of(pid));
    println!(
        "head attack, 500 x 400 KiB: RSS {} MB before, peak {} MB (bound {} MB); {closed}/500 closed by the relay",
        before / 1_000_000,
        peak / 1_000_000,
        RSS_BOUND / 1_000_000
    );
    assert_eq!(closed, 500, "every oversize head is cut off");
    assert!(peak < RSS_BOUND, "RSS peaked at {peak} bytes");
    assert_eq!(get_from(ip(1), addr, "/health").await, 200);
    drop(sockets);
}

/// At descriptor exhaustion (the relay limited to 128 open files), 600 silent sockets keep
/// `accept` failing for seconds: the failures are logged at most once per 5 s with a count of
/// the rest, and once the header timeout has cleared the attackers `/health` answers again.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_failures_at_descriptor_exhaustion_are_logged_sparingly() {
    let relay = Binary::start(&["--http-header-timeout-secs", "2"], Some(128));
    let addr = relay.addr;
    let started = Instant::now();
    let mut silent = Vec::new();
    for n in 0..600u32 {
        silent.push(
            tcp_from(ip(30 + (n % 6) as u8), addr)
                .await
                .expect("connect"),
        );
    }
    // /health queues behind the attackers while descriptors are exhausted, then is answered.
    let mut recovered = None;
    while started.elapsed() < Duration::from_secs(30) {
        if get_from(ip(2), addr, "/health").await == 200 {
            recovered = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = recovered.expect("/health never answered within 30 s");
    drop(silent);
    // Let the relay finish draining its queue, then read its log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exhausted_for = started.elapsed();
    let log = relay.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    println!(
        "descriptor exhaustion: /health answered after {recovered:?}; {} 'accept failed' lines \
         ({suppressed} more failures counted in them) over {exhausted_for:?}",
        lines.len()
    );
    assert!(!lines.is_empty(), "no accept failure was logged: {log}");
    assert!(
        log.contains("Too many open files"),
        "the failures were not EMFILE: {log}"
    );
    let allowed = exhausted_for.as_secs() / 5 + 2;
    assert!(
        lines.len() as u64 <= allowed,
        "{} lines in {exhausted_for:?}: {log}",
        lines.len()
    );
}
