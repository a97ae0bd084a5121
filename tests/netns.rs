//! A small internet in network namespaces, for NAT tests (root only): a "public" host running
//! the servers, two "home" hosts each behind its own NAT (iptables MASQUERADE), and a router
//! joining the public host and the two NATs.
//!
//! ```text
//!  home-a 192.0.2.2/26 ── 192.0.2.1 nat-a 203.0.113.2/30 ──┐
//!                                                          rtr ── 198.51.100.1/24 ── pub 198.51.100.2
//!  home-b 192.0.2.66/26 ─ 192.0.2.65 nat-b 203.0.113.6/30 ─┘       (signaling, STUN, relay)
//! ```
//!
//! Each NAT masquerades its home behind its WAN address and drops unsolicited packets from the
//! WAN, like a home router. Only documentation addresses are used (RFC 5737). The homes' addresses are not routed
//! anywhere: a home reaches the other only through the other's NAT mapping, which is what STUN
//! (server-reflexive candidates) is for. The router is where the tests cut or thin out UDP
//! between the two NATs ([`NatLab::block_udp_between_homes`], [`NatLab::lose_udp_between_homes`]).
//!
//! Namespace names are `rcn<pid>x<n>-<role>`, unique per lab; dropping the [`NatLab`] kills
//! what still runs inside them and deletes them. Labs of killed runs (their pid is gone) are
//! deleted by the next [`NatLab::new`]; namespaces with other names are never touched.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::path::Path;

use crate::processes::{Proc, TEST_SECRET};

/// The public host's address (servers listen here).
pub const PUBLIC_IP: &str = "198.51.100.2";
/// The signaling server's port on the public host.
pub const SIGNALING_PORT: u16 = 3536;
/// The relay's port on the public host.
pub const RELAY_PORT: u16 = 3537;
/// The STUN responder's (UDP) port on the public host.
pub const STUN_PORT: u16 = 3478;
/// The TURN server's (coturn's) port on the public host ([`NatLab::start_turn`]); not 3478,
/// which the STUN responder holds.
pub const TURN_PORT: u16 = 3479;
/// The UDP ports coturn allocates relay addresses from.
pub const TURN_RELAY_PORTS: (u16, u16) = (50000, 50999);
/// Public (WAN) address of home A's NAT.
pub const NAT_A_WAN: &str = "203.0.113.2";
/// Public (WAN) address of home B's NAT.
pub const NAT_B_WAN: &str = "203.0.113.6";
/// How long the servers may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Marks the router's drop rules added by the tests.
const RULE_COMMENT: &str = "ricochet-nat-test";
/// Marks the router's counting rules (UDP between the NATs that got through).
const COUNT_COMMENT: &str = "ricochet-nat-count";
/// Marks the public host's counting rule (UDP arriving at coturn's relay addresses).
const TURN_COUNT_COMMENT: &str = "ricochet-turn-count";

/// One of the lab's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The servers' host.
    Public,
    /// The router between the public host and the NATs.
    Router,
    /// Home A's NAT.
    NatA,
    /// Home B's NAT.
    NatB,
    /// The first player's machine, behind [`Host::NatA`].
    HomeA,
    /// The second player's machine, behind [`Host::NatB`].
    HomeB,
}

impl Host {
    const ALL: [Host; 6] = [
        Host::Public,
        Host::Router,
        Host::NatA,
        Host::NatB,
        Host::HomeA,
        Host::HomeB,
    ];

    fn role(self) -> &'static str {
        match self {
            Host::Public => "pub",
            Host::Router => "rtr",
            Host::NatA => "nata",
            Host::NatB => "natb",
            Host::HomeA => "homea",
            Host::HomeB => "homeb",
        }
    }
}

/// Why a lab could not be built.
#[derive(Debug)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

/// The namespaces of one lab; deleted (with everything running in them) on drop.
pub struct NatLab {
    prefix: String,
    created: Vec<String>,
}

fn run(cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(LabError(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs as root (namespaces, veths and iptables need it).
pub fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Why NAT tests cannot run here, or `None` when they can: not root, or `ip`/`iptables`
/// missing (`scripts/install-deps` installs them).
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some(
            "NAT tests need root (network namespaces, veth pairs and iptables); run them as root"
                .into(),
        );
    }
    for tool in ["ip", "iptables"] {
        if run(Command::new(tool).arg("-V")).is_err() {
            return Some(format!(
                "NAT tests need `{tool}` (Debian packages iproute2 and iptables; scripts/install-deps)"
            ));
        }
    }
    None
}

/// Parses `rcn<pid>x<n>-<role>` and says whether `pid` is gone (the lab was left by a killed
/// run).
fn stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("rcn") else {
        return false;
    };
    let Some((id, role)) = rest.split_once('-') else {
        return false;
    };
    let Some((pid, n)) = id.split_once('x') else {
        return false;
    };
    let known_role = Host::ALL.iter().any(|h| h.role() == role);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    known_role
        && digits(pid)
        && digits(n)
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn kill_inside(ns: &str) {
    if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", ns])) {
        for pid in pids.split_whitespace() {
            let _ = run(Command::new("kill").args(["-9", pid]));
        }
    }
}

fn delete(ns: &str) {
    kill_inside(ns);
    let _ = run(Command::new("ip").args(["netns", "del", ns]));
}

impl NatLab {
    /// Builds the lab: six namespaces, their links, routes, forwarding and the two NATs.
    pub fn new() -> Result<NatLab, LabError> {
        if let Some(why) = unavailable() {
            return Err(LabError(why));
        }
        // Labs left behind by killed runs of this harness.
        if let Ok(list) = run(Command::new("ip").args(["netns", "list"])) {
            for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if stale(name) {
                    delete(name);
                }
            }
        }
        static LABS: AtomicU32 = AtomicU32::new(0);
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let mut lab = NatLab {
            prefix: format!("rcn{}x{n}", std::process::id()),
            created: Vec::new(),
        };
        for host in Host::ALL {
            let name = lab.ns(host);
            run(Command::new("ip").args(["netns", "add", &name]))?;
            lab.created.push(name);
            lab.sh(host, "ip link set lo up")?;
            // IPv6 stays on: webrtc-rs sends from dual-stack `[::]` sockets, which fail with
            // "cannot assign requested address" when IPv6 is disabled.
        }
        lab.link(Host::Public, "eth0", Host::Router, "pub")?;
        lab.link(Host::NatA, "wan", Host::Router, "nata")?;
        lab.link(Host::NatB, "wan", Host::Router, "natb")?;
        lab.link(Host::HomeA, "eth0", Host::NatA, "lan")?;
        lab.link(Host::HomeB, "eth0", Host::NatB, "lan")?;
        for (host, dev, addr) in [
            (Host::Public, "eth0", "198.51.100.2/24"),
            (Host::Router, "pub", "198.51.100.1/24"),
            (Host::Router, "nata", "203.0.113.1/30"),
            (Host::Router, "natb", "203.0.113.5/30"),
            (Host::NatA, "wan", "203.0.113.2/30"),
            (Host::NatA, "lan", "192.0.2.1/26"),
            (Host::NatB, "wan", "203.0.113.6/30"),
            (Host::NatB, "lan", "192.0.2.65/26"),
            (Host::HomeA, "eth0", "192.0.2.2/26"),
            (Host::HomeB, "eth0", "192.0.2.66/26"),
        ] {
            lab.sh(host, &format!("ip addr add {addr} dev {dev}"))?;
            lab.sh(host, &format!("ip link set {dev} up"))?;
        }
        for (host, via) in [
            (Host::Public, "198.51.100.1"),
            (Host::NatA, "203.0.113.1"),
            (Host::NatB, "203.0.113.5"),
            (Host::HomeA, "192.0.2.1"),
            (Host::HomeB, "192.0.2.65"),
        ] {
            lab.sh(host, &format!("ip route add default via {via}"))?;
        }
        for host in [Host::Router, Host::NatA, Host::NatB] {
            lab.sh(host, "sysctl -qw net.ipv4.ip_forward=1")?;
        }
        for nat in [Host::NatA, Host::NatB] {
            lab.sh(nat, "iptables -t nat -A POSTROUTING -o wan -j MASQUERADE")?;
            // A home router's stateful firewall: nothing unsolicited comes in from the WAN.
            // Besides being realistic, it is what lets hole punching work: without it, the
            // other peer's first check (arriving before our own went out) leaves a conntrack
            // entry that makes MASQUERADE move our packets to that peer onto another port.
            for chain in ["INPUT", "FORWARD"] {
                lab.sh(
                    nat,
                    &format!("iptables -A {chain} -i wan -m conntrack --ctstate NEW -j DROP"),
                )?;
            }
        }
        // Counting rules (no target): UDP between the NATs that the drop rules, inserted above
        // them, let through.
        for (src, dst) in [(NAT_A_WAN, NAT_B_WAN), (NAT_B_WAN, NAT_A_WAN)] {
            lab.sh(
                Host::Router,
                &format!(
                    "iptables -A FORWARD -p udp -s {src} -d {dst} -m comment --comment {COUNT_COMMENT}"
                ),
            )?;
        }
        Ok(lab)
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.role())
    }

    /// Runs a shell command line inside `host` and returns its output.
    pub fn sh(&self, host: Host, line: &str) -> Result<String, LabError> {
        run(Command::new("ip").args(["netns", "exec", &self.ns(host), "sh", "-c", line]))
    }

    /// A command that runs `program` inside `host` (through `ip netns exec`, which execs it:
    /// the child's pid is the program's).
    pub fn command(&self, host: Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).arg(program);
        cmd
    }

    fn link(&self, a: Host, a_dev: &str, b: Host, b_dev: &str) -> Result<(), LabError> {
        run(Command::new("ip").args([
            "-n",
            &self.ns(a),
            "link",
            "add",
            a_dev,
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            &self.ns(b),
        ]))
        .map(drop)
    }

    /// Starts `ricochet-relay` and `ricochet-signaling` (with its STUN responder), found in
    /// directory `binaries`, on the public host and waits until both accept connections.
    pub fn start_servers(&self, binaries: &Path) -> Result<PublicServers, LabError> {
        let relay = self.spawn_relay(binaries)?;
        let signaling = spawn_server(
            self.command(Host::Public, binaries.join("ricochet-signaling"))
                .args(["--addr", &format!("{PUBLIC_IP}:{SIGNALING_PORT}")])
                .args(["--relay-url", &format!("ws://{PUBLIC_IP}:{RELAY_PORT}/")])
                .args(["--stun-addr", &format!("{PUBLIC_IP}:{STUN_PORT}")]),
            "ricochet-signaling",
        )?;
        for port in [RELAY_PORT, SIGNALING_PORT] {
            self.wait_listening(Host::Public, PUBLIC_IP, port)?;
        }
        Ok(PublicServers {
            relay,
            _signaling: signaling,
        })
    }

    fn spawn_relay(&self, binaries: &Path) -> Result<Proc, LabError> {
        spawn_server(
            self.command(Host::Public, binaries.join("ricochet-relay"))
                .args(["--addr", &format!("{PUBLIC_IP}:{RELAY_PORT}")]),
            "ricochet-relay",
        )
    }

    /// Kills the relay of `servers` (SIGKILL: every membership gone with the process), waits
    /// `down`, starts a new one and waits until it listens; returns the Unix time in
    /// milliseconds at which it did.
    pub fn restart_relay(
        &self,
        servers: &mut PublicServers,
        binaries: &Path,
        down: std::time::Duration,
    ) -> Result<u64, LabError> {
        let _ = servers.relay.0.kill();
        let _ = servers.relay.0.wait();
        std::thread::sleep(down);
        servers.relay = self.spawn_relay(binaries)?;
        self.wait_listening(Host::Public, PUBLIC_IP, RELAY_PORT)?;
        Ok(crate::processes::unix_ms())
    }

    /// Starts coturn (`turnserver`, Debian package coturn) on the public host at
    /// [`TURN_PORT`], UDP and TCP, no TLS/DTLS, with one static long-term-credential user
    /// `user:password` in realm `ricochet`, relaying from [`TURN_RELAY_PORTS`]; waits until it
    /// accepts connections and counts the UDP datagrams reaching its relay addresses
    /// ([`NatLab::udp_to_turn_relays`]). The lab's public addresses (documentation ranges) are
    /// allowed as peers explicitly, so a configuration that denies such ranges cannot silently
    /// turn the relay candidates off.
    pub fn start_turn(&self, user: &str, password: &str) -> Result<TurnServer, LabError> {
        if run(Command::new("turnserver").arg("--version")).is_err() {
            return Err(LabError(
                "the TURN test needs `turnserver` (Debian package coturn; scripts/install-deps)"
                    .into(),
            ));
        }
        if user.contains(':') {
            return Err(LabError(format!("TURN user name {user:?} contains ':'")));
        }
        let pidfile = std::env::temp_dir().join(format!("{}-turnserver.pid", self.prefix));
        let (min, max) = TURN_RELAY_PORTS;
        let proc = self
            .command(Host::Public, "turnserver")
            // No configuration file, no admin CLI, logs to stdout (discarded).
            .args(["-n", "--no-cli", "--log-file", "stdout", "--simple-log"])
            .args(["--listening-ip", PUBLIC_IP, "--relay-ip", PUBLIC_IP])
            .args(["--listening-port", &TURN_PORT.to_string()])
            .args([
                "--min-port",
                &min.to_string(),
                "--max-port",
                &max.to_string(),
            ])
            .args(["--no-tls", "--no-dtls", "--fingerprint", "--lt-cred-mech"])
            .args([
                "--realm",
                "ricochet",
                "--user",
                &format!("{user}:{password}"),
            ])
            .args(["--allowed-peer-ip", "198.51.100.0-198.51.100.255"])
            .args(["--allowed-peer-ip", "203.0.113.0-203.0.113.255"])
            .args(["--no-multicast-peers"])
            .arg("--pidfile")
            .arg(&pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(Proc)
            .map_err(|e| LabError(format!("cannot start turnserver: {e}")))?;
        let turn = TurnServer { proc, pidfile };
        self.wait_listening(Host::Public, PUBLIC_IP, TURN_PORT)?;
        self.sh(
            Host::Public,
            &format!(
                "iptables -A INPUT -p udp -d {PUBLIC_IP} --dport {min}:{max} \
                 -m comment --comment {TURN_COUNT_COMMENT}"
            ),
        )?;
        Ok(turn)
    }

    /// The TURN URL as seen from the homes ([`NatLab::start_turn`]).
    pub fn turn_url(&self) -> String {
        format!("turn:{PUBLIC_IP}:{TURN_PORT}")
    }

    /// UDP datagrams that reached coturn's relay addresses on the public host (from the other
    /// peer or the other peer's relay address).
    pub fn udp_to_turn_relays(&self) -> Result<u64, LabError> {
        self.counted(Host::Public, "INPUT", TURN_COUNT_COMMENT)
    }

    /// Waits until something inside `host` accepts TCP connections on `ip:port`.
    pub fn wait_listening(&self, host: Host, ip: &str, port: u16) -> Result<(), LabError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = ["bash", "-c", &format!("exec 3<>/dev/tcp/{ip}/{port}")];
        loop {
            let ok = self
                .command(host, probe[0])
                .args(&probe[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError(format!(
                    "nothing listening on {ip}:{port} in {} after {START_TIMEOUT:?}",
                    self.ns(host)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The signaling URL as seen from the homes.
    pub fn signaling_url(&self) -> String {
        format!("ws://{PUBLIC_IP}:{SIGNALING_PORT}")
    }

    /// The STUN URL as seen from the homes.
    pub fn stun_url(&self) -> String {
        format!("stun:{PUBLIC_IP}:{STUN_PORT}")
    }

    fn forward_rule(&self, action: &str, rule: &str) -> Result<(), LabError> {
        for (src, dst) in [(NAT_A_WAN, NAT_B_WAN), (NAT_B_WAN, NAT_A_WAN)] {
            self.sh(
                Host::Router,
                &format!(
                    "iptables {action} FORWARD -p udp -s {src} -d {dst} {rule} \
                     -m comment --comment {RULE_COMMENT} -j DROP"
                ),
            )?;
        }
        Ok(())
    }

    /// Drops every UDP datagram between the two NATs, both ways, from now on (the servers stay
    /// reachable, UDP included).
    pub fn block_udp_between_homes(&self) -> Result<(), LabError> {
        self.forward_rule("-I", "")
    }

    /// Drops each UDP datagram between the two NATs with `probability` (iptables' `statistic`
    /// match; this kernel has no netem).
    pub fn lose_udp_between_homes(&self, probability: f64) -> Result<(), LabError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(LabError(format!(
                "loss probability {probability} not in 0..=1"
            )));
        }
        self.forward_rule(
            "-I",
            &format!("-m statistic --mode random --probability {probability}"),
        )
    }

    fn counted(&self, host: Host, chain: &str, comment: &str) -> Result<u64, LabError> {
        let out = self.sh(host, &format!("iptables -L {chain} -v -n -x"))?;
        Ok(out
            .lines()
            .filter(|l| l.contains(comment))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    /// UDP datagrams between the two NATs (both ways) the router dropped by the tests' rules.
    pub fn udp_dropped_between_homes(&self) -> Result<u64, LabError> {
        self.counted(Host::Router, "FORWARD", RULE_COMMENT)
    }

    /// UDP datagrams between the two NATs (both ways) the router forwarded.
    pub fn udp_forwarded_between_homes(&self) -> Result<u64, LabError> {
        self.counted(Host::Router, "FORWARD", COUNT_COMMENT)
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            delete(ns);
        }
    }
}

/// The servers on the public host, killed on drop.
pub struct PublicServers {
    relay: Proc,
    _signaling: Proc,
}

/// Starts a server process with the lab's secret (its stderr goes to the test's).
fn spawn_server(cmd: &mut Command, what: &str) -> Result<Proc, LabError> {
    cmd.env("RICOCHET_SECRET", TEST_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Proc)
        .map_err(|e| LabError(format!("cannot start {what}: {e}")))
}

/// coturn on the public host ([`NatLab::start_turn`]), killed on drop (and, like everything in
/// the lab, when the [`NatLab`] is dropped).
pub struct TurnServer {
    proc: Proc,
    pidfile: std::path::PathBuf,
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        // coturn's only trace outside the lab.
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

/// Starts `program` (a `ricochet-bot` or another peer) inside `host` with its stdout piped
/// (read a bot's with [`crate::processes::bot_report`]).
pub fn spawn_peer(
    lab: &NatLab,
    host: Host,
    program: &Path,
    args: &[String],
) -> Result<Proc, LabError> {
    lab.command(host, program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Proc)
        .map_err(|e| LabError(format!("cannot start {}: {e}", program.display())))
}
