//! Load generator for `signaling/bench/run.sh`: the same client load against any
//! matchbox-protocol signaling server (ours or `matchbox_server`).
//!
//! ```text
//! signaling-loadgen idle    <ws-base-url> <server-pid> <connections> <tasks>
//! signaling-loadgen latency <ws-base-url> <clients> <concurrency>
//! ```
//! `idle` opens `connections` WebSockets (two per room, many per task), waits for each one's
//! `IdAssigned`, lets the server settle, and prints the server's VmRSS before and after.
//! `latency` joins `clients` clients into 2-player rooms, `concurrency` rooms at a time, and
//! prints join-to-`NewPeer` percentiles: from the second client starting its TCP connect to the
//! first client receiving `NewPeer`.
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn usage() -> ! {
    eprintln!("usage: signaling-loadgen idle <ws-url> <server-pid> <connections> <tasks>");
    eprintln!("       signaling-loadgen latency <ws-url> <clients> <concurrency>");
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

fn vm_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn idle(base: String, pid: u32, connections: usize, tasks: usize) {
    let before = vm_rss_kb(pid);
    let run = std::process::id();
    let started = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Result<usize, String>>(tasks);
    let (hold_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    for t in 0..tasks {
        let base = base.clone();
        let done = done_tx.clone();
        let mut hold = hold_tx.subscribe();
        tokio::spawn(async move {
            let mut open = Vec::new();
            let mut i = t;
            let mut result = Ok(0);
            while i < connections {
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
    let after = vm_rss_kb(pid);
    let per_conn = if opened > 0 {
        (after.saturating_sub(before) as f64 * 1024.0) / opened as f64
    } else {
        0.0
    };
    for e in errors.iter().take(3) {
        eprintln!("error: {e}");
    }
    println!(
        "idle opened={opened} errors={} rss_before_kb={before} rss_after_kb={after} bytes_per_conn={per_conn:.0} connect_secs={connect_secs:.1}",
        errors.len()
    );
    let _ = hold_tx.send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn latency(base: String, clients: usize, concurrency: usize) {
    let rooms = clients / 2;
    let run = std::process::id();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Duration, String>>(rooms.max(1));
    let per_task = rooms.div_ceil(concurrency.max(1));
    for t in 0..concurrency {
        let base = base.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for r in (t * per_task)..((t + 1) * per_task).min(rooms) {
                let url = format!("{base}/lat-{run}-{r}");
                let one = async {
                    let mut a = connect(&url).await?;
                    wait_for(&mut a, "{\"IdAssigned\"").await?;
                    let t0 = Instant::now();
                    let mut b = connect(&url).await?;
                    wait_for(&mut a, "{\"NewPeer\"").await?;
                    let took = t0.elapsed();
                    let _ = a.close(None).await;
                    let _ = b.close(None).await;
                    Ok::<_, String>(took)
                };
                let _ = tx.send(one.await).await;
            }
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    let mut errors = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Ok(d) => samples.push(d),
            Err(e) => {
                if errors < 3 {
                    eprintln!("error: {e}");
                }
                errors += 1;
            }
        }
    }
    samples.sort();
    let pct = |p: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e6
    };
    println!(
        "latency samples={} errors={errors} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base: String = arg::<String>(&args, 2).trim_end_matches('/').to_owned();
    match args.get(1).map(String::as_str) {
        Some("idle") => idle(base, arg(&args, 3), arg(&args, 4), arg(&args, 5)).await,
        Some("latency") => latency(base, arg(&args, 3), arg(&args, 4)).await,
        _ => usage(),
    }
}
