//! Signaling across nodes on Redis, with the real binaries and a real `redis-server`: players
//! on different nodes join by name and play; the node that is home to a running match is
//! killed and its players go on and stay present (they rejoin through a load balancer and
//! another node takes the match over); quick-match groups and presence are one across the
//! nodes; Redis restarts without ending a running match.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ricochet_tests::processes::{
    bin, bot_report, free_port, http_get_text, http_get_with, serial, spawn_bot, wait_listening,
    Proc, TEST_SECRET,
};
use tokio_tungstenite::tungstenite;

const ADMIN: &str = "cluster-admin-token-0123456789";

/// `redis-server` on a free loopback port, without persistence (a restart loses everything,
/// the worst case).
fn redis(port: u16) -> Proc {
    let p = Proc(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server; scripts/install-deps)"),
    );
    wait_listening(&format!("127.0.0.1:{port}"));
    p
}

/// A relay, and `n` signaling nodes on one Redis; each node's address.
struct Cluster {
    relay: Proc,
    nodes: Vec<Option<Proc>>,
    addrs: Vec<String>,
    redis_port: u16,
}

impl Cluster {
    fn start(n: usize, redis_port: u16) -> Cluster {
        let dir = bin("ricochet-relay");
        let dir = dir.parent().unwrap();
        let relay_addr = format!("127.0.0.1:{}", free_port());
        let relay = Proc(
            Command::new(dir.join("ricochet-relay"))
                .args(["--addr", &relay_addr])
                .env("RICOCHET_SECRET", TEST_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(&relay_addr);
        let addrs: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let nodes = addrs
            .iter()
            .map(|addr| Some(node(dir, addr, &relay_addr, redis_port)))
            .collect();
        for a in &addrs {
            wait_listening(a);
        }
        Cluster {
            relay,
            nodes,
            addrs,
            redis_port,
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// The admin view of node `i`.
    fn state(&self, i: usize) -> serde_json::Value {
        self.state_via(i, "")
    }

    /// The admin view node `i` answers with `query` (`?node=ID`: that node's view, fetched by
    /// node `i`).
    fn state_via(&self, i: usize, query: &str) -> serde_json::Value {
        let body = http_get_with(
            &self.addrs[i],
            &format!("/admin/api/state{query}"),
            &format!("Authorization: Bearer {ADMIN}\r\n"),
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }
}

fn node(dir: &Path, addr: &str, relay: &str, redis_port: u16) -> Proc {
    Proc(
        Command::new(dir.join("ricochet-signaling"))
            .args(["--addr", addr, "--relay-url", &format!("ws://{relay}/")])
            .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
            .args(["--advertise-url", &format!("ws://{addr}")])
            .args(["--admin-token", ADMIN])
            // Every test client is 127.0.0.1: one address's join rate would hold them up.
            .args(["--join-rate-per-ip", "1000", "--join-burst-per-ip", "1000"])
            .env("RICOCHET_SECRET", TEST_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ricochet-signaling"),
    )
}

/// A TCP load balancer for tests: each connection goes to the next node in turn that accepts
/// it (a dead node is skipped), as a TCP load balancer with health checks would.
struct Balancer {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    fn start(upstreams: Vec<String>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let start = next.fetch_add(1, Ordering::Relaxed);
                let server = (0..upstreams.len()).find_map(|k| {
                    TcpStream::connect(&upstreams[(start + k) % upstreams.len()]).ok()
                });
                let Some(server) = server else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        // One side ended (a node killed: a reset, no close frame): end the
                        // other side the same way.
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Balancer { addr, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn agree(reports: &[serde_json::Value]) {
    for r in reports {
        println!("{r}");
        assert_eq!(r["checksum"], reports[0]["checksum"], "checksums differ");
        assert_eq!(r["desyncs"], 0);
        assert_eq!(r["disconnected"], serde_json::json!([]), "{r}");
        assert_eq!(r["left"], serde_json::json!([]), "{r}");
    }
}

/// Waits until `check` holds, polling every 100 ms for up to `secs`.
fn until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn players_on_three_nodes_join_one_match_by_name_and_play() {
    let _one = serial();
    let redis_port = free_port();
    let _redis = redis(redis_port);
    let cluster = Cluster::start(3, redis_port);
    let bots: Vec<Proc> = (0..3)
        .map(|i| {
            spawn_bot(
                &format!("ws://{}", cluster.addrs[i]),
                "three-nodes",
                3,
                900,
                i + 1,
                &[],
            )
        })
        .collect();
    let reports: Vec<_> = bots.into_iter().map(bot_report).collect();
    agree(&reports);
    for r in &reports {
        assert_eq!(r["present"], 3, "{r}");
    }
    drop(cluster.relay);
}

#[test]
fn a_killed_node_loses_no_match_its_players_rejoin_elsewhere() {
    let _one = serial();
    let redis_port = free_port();
    let _redis = redis(redis_port);
    let mut cluster = Cluster::start(3, redis_port);
    let lb = Balancer::start(cluster.addrs.clone());
    // Round robin: the three bots land on nodes 0, 1 and 2; the first to join makes node 0
    // the match's home, and the others are forwarded there.
    let mut bots = Vec::new();
    for i in 0..3 {
        bots.push(spawn_bot(
            &format!("ws://{}", lb.addr),
            "node-dies",
            3,
            1500,
            i + 1,
            &[],
        ));
        until(10, "the bot's join", || {
            cluster.state(0)["totals"]["clients"].as_u64() == Some(i as u64 + 1)
        });
    }
    std::thread::sleep(Duration::from_secs(4));
    let before = cluster.state(0);
    assert_eq!(before["matches"][0]["members"].as_array().unwrap().len(), 3);
    cluster.kill(0);
    // The players rejoin through the balancer; one of the other nodes takes the match over
    // with all three present.
    until(15, "the match on another node with its 3 players", || {
        [1, 2].iter().any(|&i| {
            let s = cluster.state(i);
            s["matches"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["name"] == "node-dies"
                        && m["members"]
                            .as_array()
                            .is_some_and(|p| p.len() == 3 && p.iter().all(|p| p["away"] == false))
                })
            })
        })
    });
    let reports: Vec<_> = bots.into_iter().map(bot_report).collect();
    agree(&reports);
    for r in &reports {
        assert_eq!(r["present"], 3, "{r}");
        assert!(r["signaling_reconnects"].as_u64().unwrap() >= 1, "{r}");
    }
    let metrics: u64 = [1, 2]
        .iter()
        .map(|&i| {
            http_get_text(&cluster.addrs[i], "/metrics")
                .lines()
                .find_map(|l| l.strip_prefix("ricochet_signaling_takeovers_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(metrics, 1, "one takeover");
    drop(lb);
}

/// A raw signaling client: its welcome's match ID, and its peer ID.
fn ws_join(addr: &str, path: &str) -> (Ws, String, String) {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}{path}")).expect("join");
    let mut id = String::new();
    loop {
        let m = ws.read().unwrap();
        let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if let Some(p) = v["IdAssigned"].as_str() {
            id = p.to_owned();
        }
        if v["Ricochet"]["type"] == "welcome" {
            return (
                ws,
                v["Ricochet"]["match_id"].as_str().unwrap().to_owned(),
                id,
            );
        }
    }
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// Reads on `ws` fail after 5 s instead of hanging the test.
fn read_timeout(ws: &mut Ws) {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
}

#[test]
fn quick_match_and_presence_are_one_across_nodes() {
    let _one = serial();
    let redis_port = free_port();
    let _redis = redis(redis_port);
    let cluster = Cluster::start(3, redis_port);
    let a = &cluster.addrs;
    // Quick match: a group of 2 forms from joiners on two nodes; the third starts a new one.
    let (_q1, m1, _) = ws_join(&a[0], "/arena?next=2&version=3");
    let (_q2, m2, _) = ws_join(&a[1], "/arena?next=2&version=3");
    let (_q3, m3, _) = ws_join(&a[2], "/arena?next=2&version=3");
    let (_q4, m4, _) = ws_join(&a[1], "/arena?next=2&version=4");
    assert_eq!(m1, m2, "one group across two nodes");
    assert_ne!(m3, m1, "the full group took no third");
    assert_ne!(m4, m3, "another version is another queue");
    // Two players joining one new name on two nodes at the same moment meet in one match
    // (the name and its home are claimed in one step).
    for round in 0..60 {
        let path = format!("/race-{round}");
        let (p0, p1) = (path.clone(), path);
        let (n0, n1) = (a[0].clone(), a[1].clone());
        let first = std::thread::spawn(move || ws_join(&n0, &p0));
        let second = std::thread::spawn(move || ws_join(&n1, &p1));
        let (_w0, id0, _) = first.join().unwrap();
        let (_w1, id1, _) = second.join().unwrap();
        assert_eq!(id0, id1, "round {round}: two matches for one name");
    }
    // Presence: a member on node 2 sees a member of node 0 change its metadata.
    let (mut x, mx, _) = ws_join(&a[0], "/presence");
    let (mut y, my, y_id) = ws_join(&a[2], "/presence");
    assert_eq!(mx, my);
    let mut joined = false;
    read_timeout(&mut x);
    while !joined {
        let v: serde_json::Value =
            serde_json::from_str(x.read().unwrap().to_text().unwrap()).unwrap();
        joined = v["Ricochet"]["type"] == "peer_joined" && v["Ricochet"]["peer"] == y_id;
    }
    x.send(tungstenite::Message::text(
        r#"{"Ricochet":{"type":"set_meta","meta":{"name":"ann"}}}"#,
    ))
    .unwrap();
    read_timeout(&mut y);
    loop {
        let v: serde_json::Value =
            serde_json::from_str(y.read().unwrap().to_text().unwrap()).unwrap();
        if v["Ricochet"]["type"] == "peer_meta" {
            assert_eq!(v["Ricochet"]["meta"]["name"], "ann");
            break;
        }
    }
    // A created match is listed by every node, and joined through any of them.
    let created = {
        let mut s = TcpStream::connect(&a[1]).unwrap();
        let body = r#"{"labels":{"mode":"duel"}}"#;
        write!(s, "POST /matches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        v["id"].as_str().unwrap().to_owned()
    };
    for addr in a {
        let listing = http_get_text(addr, "/matches?mode=duel");
        assert!(listing.contains(&created), "{addr}: {listing}");
    }
    let (_c, mc, _) = ws_join(&a[2], &format!("/{created}"));
    assert_eq!(mc, created);
    // The operator console of any node shows every node's view: node 1 fetches node 0's, where
    // the room "presence" lives.
    let home = cluster.state(0);
    let nodes = cluster.state(1)["nodes"].as_array().unwrap().len();
    assert_eq!(nodes, 3, "{home}");
    let there = cluster.state_via(1, &format!("?node={}", home["node"].as_str().unwrap()));
    assert_eq!(there["node"], home["node"]);
    assert!(
        there["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "presence"),
        "{there}"
    );
    drop(cluster.relay);
}

#[test]
fn a_redis_restart_ends_no_running_match() {
    let _one = serial();
    let redis_port = free_port();
    let mut redis_proc = redis(redis_port);
    let cluster = Cluster::start(2, redis_port);
    let bots: Vec<Proc> = (0..2)
        .map(|i| {
            spawn_bot(
                &format!("ws://{}", cluster.addrs[i]),
                "redis-restart",
                2,
                1200,
                i + 1,
                &[],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let _ = redis_proc.0.kill();
    let _ = redis_proc.0.wait();
    std::thread::sleep(Duration::from_secs(2));
    let _redis = redis(cluster.redis_port);
    drop(redis_proc);
    // The match's keys come back once Redis answers again.
    until(15, "the match published again", || {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &redis_port.to_string(),
                "--scan",
                "--pattern",
                "ricochet:room:*",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("redis-restart")
    });
    let reports: Vec<_> = bots.into_iter().map(bot_report).collect();
    agree(&reports);
}
