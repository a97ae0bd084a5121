//! Environment variables are prefixed per binary. With both servers' variables exported in one
//! environment (as an operator running both on one machine would), the real `ricochet-relay`
//! binds `RICOCHET_RELAY_ADDR` and nothing else, and the real `ricochet-signaling` binds
//! `RICOCHET_SIGNALING_ADDR` and nothing else; neither reads the other's variables nor the old
//! unprefixed names (which it names in a warning). The ticket secret is the one shared
//! variable.
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ricochet_tests::processes::bin;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET /health` with a short deadline: the whole answer, or `None` if nothing listens at
/// `addr`.
fn health(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Starts `binary` with its own variables (prefix `own`) and the other server's (prefix
/// `other`) exported, and checks it binds only its own address and warns about the old names.
fn binds_its_own_address(binary: &str, own: &str, other: &str) {
    let mine = free_addr();
    let theirs = free_addr();
    let old = free_addr();
    assert!(mine != theirs && theirs != old && mine != old);
    let mut cmd = Command::new(bin(binary));
    // Only what this test sets: nothing inherited from the caller's environment.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RICOCHET_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .env("RICOCHET_SECRET", "env prefix test secret, 16+ bytes")
        .env(format!("{own}ADDR"), mine.to_string())
        .env(format!("{other}ADDR"), theirs.to_string())
        // The old names, and the other server's own limits: each would make this one refuse
        // to start (a zero cap) if it read them.
        .env("RICOCHET_ADDR", old.to_string())
        .env("RICOCHET_MAX_CONNECTIONS", "0")
        .env(format!("{other}MAX_CONNECTIONS"), "0")
        .env(format!("{other}MAX_CONNECTIONS_PER_IP"), "0")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = health(mine) {
            break answer;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut log = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut log)
                .unwrap();
            panic!("{binary} exited ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "{binary} not listening on {mine}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    assert!(health(theirs).is_none(), "{binary} answered on {other}ADDR");
    assert!(health(old).is_none(), "{binary} answered on RICOCHET_ADDR");
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    for old in ["RICOCHET_ADDR", "RICOCHET_MAX_CONNECTIONS"] {
        assert!(
            log.contains(&format!("{old} is set but no longer read")),
            "no warning about {old}: {log}"
        );
    }
    assert!(!log.contains(other), "{log}");
}

#[test]
fn the_relay_binds_its_own_address_when_both_servers_variables_are_exported() {
    binds_its_own_address("ricochet-relay", "RICOCHET_RELAY_", "RICOCHET_SIGNALING_");
}

#[test]
fn signaling_binds_its_own_address_when_both_servers_variables_are_exported() {
    binds_its_own_address(
        "ricochet-signaling",
        "RICOCHET_SIGNALING_",
        "RICOCHET_RELAY_",
    );
}
