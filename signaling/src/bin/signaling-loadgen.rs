//! Load generator for `signaling/bench/run.sh`: the same client load against any
//! matchbox-protocol signaling server (ours or `matchbox_server`).
//!
//! ```text
//! signaling-loadgen idle    <ws-base-url[,url...]> <server-pid[,pid...]> <connections> <tasks> [redis-pid]
//! signaling-loadgen latency <ws-base-url[,url...]> <clients> <concurrency>
//! ```
//! `idle` opens `connections` WebSockets (two per room, many per task), waits for each one's
//! `IdAssigned`, lets the server settle, and prints the server's VmRSS before and after (summed
//! over the given server processes; a Redis process's separately), and the live matches and
//! members the servers' `/metrics` report while the sockets are open (ricochet only).
//! `latency` joins `clients` clients into 2-player rooms, `concurrency` rooms at a time, and
//! prints join-to-`NewPeer` percentiles: from the second client starting its TCP connect to the
//! first client receiving `NewPeer` (and the first client's own join: from its TCP connect to its
//! `IdAssigned`), and the joins per second of the whole run.
//!
//! Given several base URLs (nodes of a cluster), the two members of room `r` join different
//! nodes: the first `r % n`, the second `(r + 1) % n`, so the second member's join is forwarded
//! to the first one's node.
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn usage() -> ! {
    eprintln!(
        "usage: signaling-loadgen idle <ws-url[,url...]> <server-pid[,pid...]> <connections> <tasks> [redis-pid]"
    );
    eprintln!("       signaling-loadgen latency <ws-url[,url...]> <clients> <concurrency>");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

async fn connect(url: &str) -> Result<Ws, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(ws)
}

/// Reads text frames until one starts with `prefix` (e.g. `{"NewPeer"`).
async fn wait_for(ws: &mut Ws, prefix: &str) -> Result<(), String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(prefix) => return Ok(()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed".into()),
            Err(_) => return Err(format!("timed out waiting for {prefix}")),
        }
    }
}

/// A comma-separated list of `T`.
fn list<T: std::str::FromStr>(args: &[String], i: usize) -> Vec<T> {
    let items: Option<Vec<T>> = args
        .get(i)
        .map(|a| a.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or(None);
    match items {
        Some(v) if !v.is_empty() => v,
        _ => usage(),
    }
}

/// The node (index into the base URLs) that member `member` (0 or 1) of room `room` joins.
fn node_of(room: usize, member: usize, nodes: usize) -> usize {
    (room + member) % nodes
}

/// Sum over the servers of the gauges `ricochet_signaling_matches` and
/// `ricochet_signaling_connections` from `GET /metrics`; `None` if a server has none.
async fn live_gauges(bases: &[String]) -> Option<(u64, u64)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut matches, mut members) = (0, 0);
    for base in bases {
        let host = base
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        let text = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = TcpStream::connect(host).await.ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            Some(String::from_utf8_lossy(&out).into_owned())
        })
        .await
        .ok()??;
        let gauge = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        matches += gauge("ricochet_signaling_matches")?;
        members += gauge("ricochet_signaling_connections")?;
    }
    Some((matches, members))
}

fn vm_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn idle(
    bases: Vec<String>,
    pids: Vec<u32>,
    connections: usize,
    tasks: usize,
    redis: Option<u32>,
) {
    let rss = |pids: &[u32]| pids.iter().map(|&p| vm_rss_kb(p)).sum::<u64>();
    let before = rss(&pids);
    let redis_before = redis.map(vm_rss_kb);
    let run = std::process::id();
    let started = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Result<usize, String>>(tasks);
    let (hold_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    for t in 0..tasks {
        let bases = bases.clone();
        let done = done_tx.clone();
        let mut hold = hold_tx.subscribe();
        tokio::spawn(async move {
            let mut open = Vec::new();
            let mut i = t;
            let mut result = Ok(0);
            while i < connections {
                let base = &bases[node_of(i / 2, i % 2, bases.len())];
                let url = format!("{base}/idle-{run}-{}", i / 2);
                match connect(&url).await {
                    Ok(mut ws) => match wait_for(&mut ws, "{\"IdAssigned\"").await {
                        Ok(()) => open.push(ws),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    },
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                i += tasks;
            }
            let _ = done.send(result.map(|_| open.len())).await;
            // Hold the sockets open, unread, until told to close.
            let _ = hold.recv().await;
            drop(open);
        });
    }
    drop(done_tx);
    let mut opened = 0;
    let mut errors = Vec::new();
    // Each task reports once, then holds its sockets (and its sender) until told to close.
    for _ in 0..tasks {
        let Some(r) = done_rx.recv().await else {
            break;
        };
        match r {
            Ok(n) => opened += n,
            Err(e) => errors.push(e),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the server finish any lazy work and the allocator settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss(&pids);
    let per_conn = |before: u64, after: u64| {
        if opened > 0 {
            (after.saturating_sub(before) as f64 * 1024.0) / opened as f64
        } else {
            0.0
        }
    };
    let live = live_gauges(&bases).await;
    for e in errors.iter().take(3) {
        eprintln!("error: {e}");
    }
    let mut line = format!(
        "idle opened={opened} errors={} rss_before_kb={before} rss_after_kb={after} bytes_per_conn={:.0} connect_secs={connect_secs:.1}",
        errors.len(),
        per_conn(before, after),
    );
    if let (Some(b), Some(pid)) = (redis_before, redis) {
        let a = vm_rss_kb(pid);
        line += &format!(
            " redis_rss_before_kb={b} redis_rss_after_kb={a} redis_bytes_per_conn={:.0}",
            per_conn(b, a)
        );
    }
    if let Some((matches, members)) = live {
        line += &format!(" live_matches={matches} live_members={members}");
    }
    println!("{line}");
    let _ = hold_tx.send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Percentile `p` (0..=1) of sorted `samples`, microseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i].as_secs_f64() * 1e6
}

async fn latency(bases: Vec<String>, clients: usize, concurrency: usize) {
    let rooms = clients / 2;
    let run = std::process::id();
    let started = Instant::now();
    // Per room: (A's connect to its `IdAssigned`, B's connect to A's `NewPeer`).
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<(Duration, Duration), String>>(rooms.max(1));
    let per_task = rooms.div_ceil(concurrency.max(1));
    for t in 0..concurrency {
        let bases = bases.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for r in (t * per_task)..((t + 1) * per_task).min(rooms) {
                let n = bases.len();
                let url_a = format!("{}/lat-{run}-{r}", bases[node_of(r, 0, n)]);
                let url_b = format!("{}/lat-{run}-{r}", bases[node_of(r, 1, n)]);
                let one = async {
                    let ta = Instant::now();
                    let mut a = connect(&url_a).await?;
                    wait_for(&mut a, "{\"IdAssigned\"").await?;
                    let first = ta.elapsed();
                    let t0 = Instant::now();
                    let mut b = connect(&url_b).await?;
                    wait_for(&mut a, "{\"NewPeer\"").await?;
                    let took = t0.elapsed();
                    let _ = a.close(None).await;
                    let _ = b.close(None).await;
                    Ok::<_, String>((first, took))
                };
                let _ = tx.send(one.await).await;
            }
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    let mut firsts = Vec::new();
    let mut errors = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Ok((first, d)) => {
                firsts.push(first);
                samples.push(d);
            }
            Err(e) => {
                if errors < 3 {
                    eprintln!("error: {e}");
                }
                errors += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    samples.sort();
    firsts.sort();
    println!(
        "latency samples={} errors={errors} p50_us={:.0} p99_us={:.0} max_us={:.0} first_join_p50_us={:.0} first_join_p99_us={:.0} secs={secs:.2} joins_per_sec={:.0}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
        percentile(&firsts, 0.50),
        percentile(&firsts, 0.99),
        (2 * samples.len()) as f64 / secs.max(1e-9),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bases: Vec<String> = list::<String>(&args, 2)
        .into_iter()
        .map(|b| b.trim_end_matches('/').to_owned())
        .collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => {
            let redis = args.get(6).map(|_| arg(&args, 6));
            idle(bases, list(&args, 3), arg(&args, 4), arg(&args, 5), redis).await
        }
        Some("latency") => latency(bases, arg(&args, 3), arg(&args, 4)).await,
        _ => usage(),
    }
}
