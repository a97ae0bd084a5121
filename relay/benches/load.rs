//! Load benchmark: `cargo bench -p ricochet-relay --bench load` (about 3-5 minutes).
//! Method, results and caveats: `docs/BENCHMARKS.md` (relay section).
//!
//! Runs four relays, each in its own child process (this same binary with `serve NAME`), one
//! after the other, and drives them from this process with the same load generator:
//! - `ours`: [`ricochet_relay::run`] with its defaults, limits raised so only load matters;
//! - `ours-sharded`: the same with one shard thread per CPU;
//! - `baseline`: the obvious tokio-tungstenite broadcast relay written below (a task per
//!   connection plus a writer task, an unbounded channel per client, one send and flush per
//!   frame, a global room map behind a mutex, tokio-tungstenite's default configuration);
//! - `baseline-8k`: the same with an 8 KiB read buffer instead of 128 KiB.
//!
//! The generator runs one single-threaded runtime per CPU, many connections per task (a tick
//! every millisecond sends what is due on each connection; one `SelectAll` reads them all).
//! Every payload is 32 bytes: send time (ns since the generator's epoch), step, connection,
//! sequence. For each workload (1,000 two-player matches; 250 four-player matches): one step
//! at 60 Hz per client, then the offered rate steps up (frames per second per client) until a
//! step fails: delivered share < 99.99% or p99 > 2 ms. Each step: 1 s warm-up, a measured
//! window, 0.5 s for stragglers. Server CPU is the child's total on-CPU time (sum of
//! `/proc/PID/task/*/schedstat`) over the window, divided by the frames delivered from it.
//!
//! Environment: `BENCH_WINDOW_MS` (default 3000), `BENCH_MAX_HZ` (default 240), `BENCH_ONLY`,
//! `BENCH_PLAYERS`, `BENCH_SHARDS`, `BENCH_PIN=1`, `BENCH_SCALE_DOWN`, `BENCH_OUT` (write the
//! Markdown tables there too).
#![allow(missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SelectAll;
use futures_util::{SinkExt, StreamExt};
use ricochet_protocol::{PeerId, Ticket, TicketClaims};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &[u8] = b"benchmark secret, 16+ bytes";
const PAYLOAD: usize = 32;
const CONNS_PER_TASK: usize = 100;
/// Generator threads: one per CPU the generator may use.
fn gen_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
const BUCKET_US: u64 = 5;
const BUCKETS: usize = 10_000; // 5 us x 10,000 = 50 ms, then one overflow bucket
const MAX_STEPS: usize = 16;
/// The servers, in the order they are reported.
const SERVERS: [&str; 4] = ["ours", "ours-sharded", "baseline", "baseline-8k"];
/// Rate steps, frames per second per client.
const STEPS_HZ: &[u32] = &[3, 6, 9, 12, 15, 18, 24, 30, 45, 60, 90, 120];

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------------------------------
// Servers (child process).

fn serve(which: &str) {
    // `ours-sharded` runs its accept loop on one thread and the matches on its shard threads
    // (one per CPU); `ours` (the default: no shards) and the baselines get tokio's default
    // multi-threaded runtime (one worker per CPU).
    let rt = if which == "ours-sharded" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        // Exit when the parent closes our stdin.
        std::thread::spawn(|| {
            let mut s = String::new();
            while std::io::stdin()
                .read_line(&mut s)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
            std::process::exit(0);
        });
        match which {
            "ours" | "ours-sharded" => {
                let mut cfg = ricochet_relay::Config::new(SECRET.to_vec()).unwrap();
                cfg.set_max_connections_per_ip(100_000)
                    .unwrap()
                    .set_max_connections(100_000)
                    .unwrap()
                    .set_max_tcp_connections(100_000)
                    .unwrap()
                    .set_max_tcp_connections_per_ip(100_000)
                    .unwrap()
                    .set_frame_rate(100_000, 100_000)
                    .unwrap()
                    .set_byte_rate(1 << 30, 1 << 30)
                    .unwrap();
                if which == "ours-sharded" {
                    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                    let n = std::env::var("BENCH_SHARDS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(cpus);
                    cfg.set_shards(n).unwrap();
                }
                ricochet_relay::run(listener, cfg, std::future::pending())
                    .await
                    .unwrap();
            }
            "baseline-8k" => baseline(listener, Some(8 * 1024)).await,
            _ => baseline(listener, None).await,
        }
    });
}

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, tokio::sync::mpsc::UnboundedSender<Message>)>>>>;

/// The obvious relay: task per connection, channel per client.
/// `read_buffer`: `None` is tokio-tungstenite's default configuration (the obvious choice);
/// `Some(n)` only changes the read buffer size, to separate that effect from the design's.
async fn baseline(listener: tokio::net::TcpListener, read_buffer: Option<usize>) {
    let rooms: Rooms = Arc::default();
    let mut next_id = 0u64;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        tokio::spawn(baseline_conn(tcp, rooms.clone(), next_id, read_buffer));
    }
}

#[allow(clippy::result_large_err)] // the handshake callback signature is tungstenite's
async fn baseline_conn(tcp: TcpStream, rooms: Rooms, id: u64, read_buffer: Option<usize>) {
    let mut path = String::new();
    let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let config = read_buffer.map(|n| WebSocketConfig::default().read_buffer_size(n));
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, config).await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    rooms
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push((id, tx));
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_binary() {
            let rooms = rooms.lock().unwrap();
            for (other, tx) in rooms.get(&path).into_iter().flatten() {
                if *other != id {
                    let _ = tx.send(msg.clone());
                }
            }
        }
    }
    let mut rooms = rooms.lock().unwrap();
    if let Some(members) = rooms.get_mut(&path) {
        members.retain(|(other, _)| *other != id);
        if members.is_empty() {
            rooms.remove(&path);
        }
    }
    writer.abort();
}

// ---------------------------------------------------------------------------------------
// Measurement.

struct StepStats {
    sent: AtomicU64,
    recv: AtomicU64,
    buckets: Vec<AtomicU64>,
}

impl StepStats {
    fn new() -> Self {
        StepStats {
            sent: AtomicU64::new(0),
            recv: AtomicU64::new(0),
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn percentile_us(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        if total == 0 {
            return f64::NAN;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            if acc >= want {
                return ((i as u64 + 1) * BUCKET_US) as f64;
            }
        }
        f64::INFINITY
    }
}

struct Control {
    hz: AtomicU32,
    step: AtomicU32,
    stop: AtomicBool,
    steps: Vec<StepStats>,
    epoch: Instant,
    header: usize,
}

/// Total on-CPU time of every thread of `pid`, in nanoseconds.
fn cpu_ns(pid: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(|e| {
        let s = std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok()?;
        s.split_whitespace().next()?.parse::<u64>().ok()
    })
    .sum()
}

async fn gen_task(conns: Vec<Ws>, first_id: u32, ctl: Arc<Control>) {
    let n = conns.len();
    let mut sinks = Vec::with_capacity(n);
    let mut incoming = SelectAll::new();
    for c in conns {
        let (s, r) = c.split();
        sinks.push(s);
        incoming.push(r);
    }
    let mut due = vec![Instant::now(); n];
    let mut seq = vec![0u32; n];
    let mut hz = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let header = ctl.header;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if ctl.stop.load(Ordering::Relaxed) {
                    break;
                }
                let now = Instant::now();
                let want = ctl.hz.load(Ordering::Relaxed);
                if want != hz {
                    hz = want;
                    if hz > 0 {
                        // Spread this task's connections evenly over one period.
                        let period = Duration::from_secs(1) / hz;
                        for (i, d) in due.iter_mut().enumerate() {
                            *d = now + period * i as u32 / n as u32;
                        }
                    }
                }
                if hz == 0 {
                    // Idle (another server is being measured): look again in 20 ms rather
                    // than every millisecond.
                    tick.reset_after(Duration::from_millis(20));
                    continue;
                }
                let period = Duration::from_secs(1) / hz;
                let step = ctl.step.load(Ordering::Relaxed);
                let mut sent = 0;
                for i in 0..n {
                    // Catch up at most a few periods; a generator that falls further behind
                    // simply offers less (and the delivered count shows it).
                    if now.saturating_duration_since(due[i]) > period * 4 {
                        due[i] = now;
                    }
                    while due[i] <= now {
                        due[i] += period;
                        seq[i] += 1;
                        let mut f = Vec::with_capacity(2 + PAYLOAD);
                        f.extend_from_slice(&[1, 0]);
                        let t = ctl.epoch.elapsed().as_nanos() as u64;
                        f.extend_from_slice(&t.to_be_bytes());
                        f.extend_from_slice(&step.to_be_bytes());
                        f.extend_from_slice(&(first_id + i as u32).to_be_bytes());
                        f.extend_from_slice(&seq[i].to_be_bytes());
                        f.resize(2 + PAYLOAD, 0);
                        if sinks[i].send(Message::Binary(f.into())).await.is_ok() && step != 0 {
                            sent += 1;
                        }
                    }
                }
                if step != 0 {
                    ctl.steps[step as usize].sent.fetch_add(sent, Ordering::Relaxed);
                }
            }
            Some(msg) = incoming.next() => {
                let Ok(Message::Binary(b)) = msg else { continue };
                if b.len() < header + 12 || b[0] >= 0xF0 {
                    continue;
                }
                let p = &b[header..];
                let t = u64::from_be_bytes(p[..8].try_into().unwrap());
                let step = u32::from_be_bytes(p[8..12].try_into().unwrap()) as usize;
                if step == 0 || step >= MAX_STEPS {
                    continue;
                }
                let lat_us = (ctl.epoch.elapsed().as_nanos() as u64).saturating_sub(t) / 1000;
                let s = &ctl.steps[step];
                s.recv.fetch_add(1, Ordering::Relaxed);
                let bucket = ((lat_us / BUCKET_US) as usize).min(BUCKETS);
                s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One generator thread: connects its members, then runs [`gen_task`]s over them (a
/// whole match always lives on one thread) until told to stop.
fn gen_thread(
    urls: Vec<(u32, String)>,
    ctl: Arc<Control>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut conns = Vec::with_capacity(urls.len());
        for chunk in urls.chunks(100) {
            let futs = chunk.iter().map(|(id, url)| async move {
                // tungstenite zero-fills its whole read buffer before each read: keep it small.
                let config = WebSocketConfig::default().read_buffer_size(4096);
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                        .await
                        .expect("connect");
                (*id, ws)
            });
            conns.extend(futures_util::future::join_all(futs).await);
        }
        let mut tasks = Vec::new();
        while !conns.is_empty() {
            let rest = conns.split_off(conns.len().min(CONNS_PER_TASK));
            let first = conns[0].0;
            let group = conns.into_iter().map(|(_, ws)| ws).collect();
            tasks.push(tokio::spawn(gen_task(group, first, ctl.clone())));
            conns = rest;
        }
        let _ = ready.send(());
        for t in tasks {
            let _ = t.await;
        }
    });
}

struct Server {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Server {
    fn start(name: &'static str) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match server_cpus() {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpus]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args(["serve", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        Server { name, child, port }
    }

    fn url(&self, match_idx: usize, peer: usize, tag: &str) -> String {
        let key = format!("{tag}-{match_idx}");
        if self.name.starts_with("ours") {
            let ticket = Ticket::issue(
                SECRET,
                &TicketClaims {
                    match_key: key,
                    peer: PeerId(uuid::Uuid::from_u128(peer as u128 + 1)),
                    seat: peer as u8,
                    max_players: 16,
                    issued_at_ms: 0,
                    expires_at: u64::MAX / 2,
                },
            )
            .unwrap();
            format!("ws://127.0.0.1:{}/?ticket={ticket}", self.port)
        } else {
            format!("ws://127.0.0.1:{}/{key}", self.port)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Debug)]
struct Row {
    server: &'static str,
    players: usize,
    matches: usize,
    hz: u32,
    offered_in: f64,
    delivered: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu_us_per_frame: f64,
    server_cores: f64,
    gen_cores: f64,
    out_per_s: f64,
    pass: bool,
}

/// One server's members, connected and driven by the generator threads.
struct Load<'a> {
    server: &'a Server,
    ctl: Arc<Control>,
    threads: Vec<std::thread::JoinHandle<()>>,
    players: usize,
    matches: usize,
}

impl<'a> Load<'a> {
    /// Connects every member of `matches` matches of `players`, idle until [`Load::step`].
    async fn connect(server: &'a Server, players: usize, matches: usize, tag: &str) -> Load<'a> {
        let ctl = Arc::new(Control {
            hz: AtomicU32::new(0),
            step: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            steps: (0..MAX_STEPS).map(|_| StepStats::new()).collect(),
            epoch: Instant::now(),
            header: if server.name.starts_with("ours") {
                4
            } else {
                2
            },
        });
        // Connect, many at a time, on single-threaded runtimes that then run the generator
        // tasks; a match's members all live on one generator thread.
        let total = players * matches;
        let mut threads = Vec::new();
        let mut ready = Vec::new();
        let gens = gen_threads();
        for g in 0..gens {
            let urls: Vec<(u32, String)> = (0..total)
                .filter(|i| (i / players) % gens == g)
                .map(|i| (i as u32, server.url(i / players, i, tag)))
                .collect();
            let (tx, rx) = tokio::sync::oneshot::channel();
            ready.push(rx);
            let ctl = ctl.clone();
            threads.push(std::thread::spawn(move || gen_thread(urls, ctl, tx)));
        }
        for r in ready {
            r.await.expect("generator thread failed to connect");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Load {
            server,
            ctl,
            threads,
            players,
            matches,
        }
    }

    /// Offers `hz` frames per second per client: 1 s warm-up, `window` measured, 0.5 s for
    /// stragglers; then goes idle again.
    async fn step(&self, step: usize, hz: u32, window: Duration) -> Row {
        let ctl = &self.ctl;
        let pid = self.server.child.id().to_string();
        ctl.hz.store(hz, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (s0, g0, t0) = (cpu_ns(&pid), cpu_ns("self"), Instant::now());
        ctl.step.store(step as u32, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        ctl.step.store(0, Ordering::Relaxed);
        let (s1, g1, el) = (cpu_ns(&pid), cpu_ns("self"), t0.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
        ctl.hz.store(0, Ordering::Relaxed);
        let st = &ctl.steps[step];
        let sent = st.sent.load(Ordering::Relaxed);
        let recv = st.recv.load(Ordering::Relaxed);
        let expected = sent * (self.players as u64 - 1);
        let delivered = if expected == 0 {
            0.0
        } else {
            recv as f64 / expected as f64
        };
        let secs = el.as_secs_f64();
        let row = Row {
            server: self.server.name,
            players: self.players,
            matches: self.matches,
            hz,
            offered_in: (self.players * self.matches) as f64 * hz as f64,
            delivered,
            p50: st.percentile_us(0.50),
            p99: st.percentile_us(0.99),
            p999: st.percentile_us(0.999),
            cpu_us_per_frame: (s1 - s0) as f64 / 1000.0 / recv.max(1) as f64,
            server_cores: (s1 - s0) as f64 / 1e9 / secs,
            gen_cores: (g1 - g0) as f64 / 1e9 / secs,
            out_per_s: recv as f64 / secs,
            pass: delivered >= 0.9999 && st.percentile_us(0.99) <= 2000.0,
        };
        eprintln!("{}", fmt_row(&row));
        row
    }

    /// Disconnects everyone.
    async fn stop(self) {
        self.ctl.hz.store(0, Ordering::Relaxed);
        self.ctl.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        // Let the server notice the closes before the next workload.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn fmt_row(r: &Row) -> String {
    format!(
        "| {} | {}p x {} | {} Hz | {:.0}k | {:.0}k | {:.4}% | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        r.server,
        r.players,
        r.matches,
        r.hz,
        r.offered_in / 1000.0,
        r.out_per_s / 1000.0,
        r.delivered * 100.0,
        r.p50,
        r.p99,
        r.p999,
        r.cpu_us_per_frame,
        r.server_cores,
        r.gen_cores,
        if r.pass { "ok" } else { "FAIL" }
    )
}

const HEADER: &str = "| server | workload | rate/client | frames in/s offered | frames out/s delivered | delivered | p50 us | p99 us | p99.9 us | server CPU us/forwarded frame | server cores | generator cores | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";

/// With `BENCH_PIN=1` on a machine with 2+ CPUs: the servers get CPU 0 and the generator the
/// others, so neither steals the other's core. Off by default: on a shared machine a pinned
/// process cannot escape a busy neighbour, which shows up as multi-millisecond tails.
fn pinning() -> bool {
    std::env::var("BENCH_PIN").is_ok_and(|v| v == "1")
        && Command::new("taskset").arg("-V").output().is_ok()
}

fn server_cpus() -> Option<String> {
    std::env::var("BENCH_SERVER_CPUS").ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "serve") {
        serve(args.get(i + 1).map(String::as_str).unwrap_or("ours"));
        return;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if pinning() && cpus >= 2 && server_cpus().is_none() {
        // Re-run this process on CPUs 1.. and tell it to put the servers on CPU 0.
        let status = Command::new("taskset")
            .args(["-c", &format!("1-{}", cpus - 1)])
            .arg(std::env::current_exe().unwrap())
            .args(&args[1..])
            .env("BENCH_SERVER_CPUS", "0")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    let window = Duration::from_millis(
        std::env::var("BENCH_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000),
    );
    let max_hz: u32 = std::env::var("BENCH_MAX_HZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let scale: usize = std::env::var("BENCH_SCALE_DOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let steps: Vec<u32> = STEPS_HZ.iter().copied().filter(|&h| h <= max_hz).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut headline = Vec::new();
    let mut search = Vec::new();
    eprintln!("{HEADER}");
    rt.block_on(async {
        let only = std::env::var("BENCH_ONLY").ok();
        let servers: Vec<Server> = SERVERS
            .iter()
            .filter(|name| only.as_deref().is_none_or(|o| o == **name))
            .map(|name| Server::start(name))
            .collect();
        for (players, matches) in [(2, 1000 / scale), (4, 250 / scale)] {
            if std::env::var("BENCH_PLAYERS").is_ok_and(|p| p != players.to_string()) {
                continue;
            }
            // The issue's workload, one server at a time, each on fresh connections.
            for server in &servers {
                eprintln!("# {}: {players}-player x {matches}, 60 Hz", server.name);
                let load = Load::connect(server, players, matches, &format!("{players}p")).await;
                headline.push(load.step(1, 60, window).await);
                load.stop().await;
            }
            // The rate search, interleaved: every server is connected at once and idle but
            // the one being measured; each step runs on every server still passing, in an
            // order that rotates, so that all of them meet the same neighbours' load.
            eprintln!("# {players}-player x {matches}, rate search, servers interleaved");
            let tag = format!("{players}p-search");
            let mut loads = Vec::new();
            for server in &servers {
                loads.push(Load::connect(server, players, matches, &tag).await);
            }
            let mut passing = vec![true; loads.len()];
            for (k, &hz) in steps.iter().enumerate() {
                for j in 0..loads.len() {
                    let j = (j + k) % loads.len();
                    if passing[j] {
                        let row = loads[j].step(k + 1, hz, window).await;
                        passing[j] = row.pass;
                        search.push(row);
                    }
                }
                if !passing.contains(&true) {
                    break;
                }
            }
            for load in loads {
                load.stop().await;
            }
        }
    });
    let order = |name: &str| SERVERS.iter().position(|s| *s == name).unwrap_or(0);
    search.sort_by(|a, b| {
        (a.players, order(a.server), a.hz).cmp(&(b.players, order(b.server), b.hz))
    });
    let sustainable = |server: &str, players: usize| {
        search
            .iter()
            .filter(|r| r.server == server && r.players == players && r.pass)
            .map(|r| r.offered_in)
            .fold(0.0, f64::max)
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "Run {date} on {cpus} CPUs ({model}); servers pinned to CPU 0 and generator to the rest: {}; load average before: {}, after: {}.\n\n",
        server_cpus().is_some(),
        load_start.trim(),
        load_end.trim()
    ));
    out.push_str("### At 60 Hz per client\n\n");
    out.push_str(HEADER);
    out.push('\n');
    for r in &headline {
        out.push_str(&fmt_row(r));
        out.push('\n');
    }
    out.push_str("\n### Rate search (stops at the first failing step)\n\n");
    out.push_str(HEADER);
    out.push('\n');
    for r in &search {
        out.push_str(&fmt_row(r));
        out.push('\n');
    }
    out.push_str("\n### Sustainable rate (highest passing step, frames in/s)\n\n| workload | ours | ours-sharded | baseline | baseline-8k | ours / baseline | ours / baseline-8k |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "n/a".into()
        }
    };
    for players in [2, 4] {
        let [o, oi, b, b8] = ["ours", "ours-sharded", "baseline", "baseline-8k"]
            .map(|name| sustainable(name, players));
        out.push_str(&format!(
            "| {players}-player | {:.0}k | {:.0}k | {:.0}k | {:.0}k | {} | {} |\n",
            o / 1000.0,
            oi / 1000.0,
            b / 1000.0,
            b8 / 1000.0,
            ratio(o, b),
            ratio(o, b8)
        ));
    }
    out.push_str(&format!(
        "\nTotal run time: {:.0} s; measured window per step: {} ms; max step tried: {max_hz} Hz per client.\n",
        started.elapsed().as_secs_f64(),
        window.as_millis()
    ));
    println!("{out}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, &out).unwrap();
    }
}
