//! Finding 1 of the hostile-client audit: a member that floods WebSocket pings and never reads
//! took the relay from 5 MB to 1.6 GB RSS in 6 s. Control frames now count against the frame
//! and byte rate limits and the write buffer is bounded, so the real `ricochet-relay` binary
//! stays small through 8 s of ping floods from several connections (each cut off and
//! reconnected), and another match keeps delivering every frame meanwhile.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    rss_of(pid) / 1024
}

async fn start_binary() -> (Process, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ricochet-relay"))
        .args(["--addr", &addr.to_string()])
        .env("RICOCHET_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Process(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the relay did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, addr)
}

/// Sends pings with a 125-byte payload (the most a control frame carries) as fast as the
/// socket takes them, never reading, until the relay drops the connection.
async fn flood(url: String) -> u64 {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return 0;
    };
    let mut sent = 0;
    while ws.send(Message::Ping(vec![0x55; 125].into())).await.is_ok() {
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_floods_leave_the_relay_small_and_other_matches_whole() {
    let (relay, addr) = start_binary().await;
    let pid = relay.0.id();
    let url = |t: &str| format!("ws://{addr}/?ticket={t}");
    let idle_rss = rss_kib(pid);

    // The bystanders: a 2-player match that keeps exchanging numbered frames.
    let mut a = Client::connect(&url(&ticket("bystanders", 1))).await;
    let mut b = Client::connect(&url(&ticket("bystanders", 2))).await;
    a.event().await; // WELCOME
    b.event().await; // WELCOME
    a.event().await; // JOIN of b

    // Eight attackers, each reconnecting with a fresh ticket whenever it is cut off.
    let stop_at = Instant::now() + Duration::from_secs(8);
    let mut attackers = Vec::new();
    for i in 0..8u128 {
        attackers.push(tokio::spawn(async move {
            let (mut connections, mut pings) = (0u64, 0u64);
            while Instant::now() < stop_at {
                let t = ticket(&format!("attack-{i}"), 100 + i);
                pings += flood(format!("ws://{addr}/?ticket={t}")).await;
                connections += 1;
            }
            (connections, pings)
        }));
    }

    let mut peak = 0;
    let mut sent = 0u32;
    while Instant::now() < stop_at {
        for _ in 0..6 {
            sent += 1;
            let p = sent.to_be_bytes();
            a.send(1, &p).await;
            let f = b.frame().await;
            assert_eq!(&f[4..], &p, "a bystander frame was lost or reordered");
            b.send(2, &p).await;
            let f = a.frame().await;
            assert_eq!(&f[4..], &p, "a bystander frame was lost or reordered");
        }
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut connections, mut pings) = (0, 0);
    for a in attackers {
        let (c, p) = a.await.unwrap();
        connections += c;
        pings += p;
    }
    let metrics = http_get(addr, "/metrics").await.1;
    let limited = metric(&metrics, "relay_disconnects_total", "rate_limited")
        + metric(&metrics, "relay_disconnects_total", "byte_rate_limited")
        + metric(&metrics, "relay_disconnects_total", "read_error")
        + metric(&metrics, "relay_disconnects_total", "write_error");
    println!(
        "relay RSS idle {idle_rss} KiB, peak {peak} KiB; {pings} pings over {connections} \
         attacker connections, {limited} cut off; {sent} bystander frames each way delivered"
    );
    assert!(
        peak < 64 * 1024,
        "relay RSS peaked at {peak} KiB under the ping flood"
    );
    assert!(
        limited >= 8.0,
        "every attacker connection is cut off: {limited}"
    );
    assert!(sent > 100, "the bystanders kept playing: {sent}");
}
