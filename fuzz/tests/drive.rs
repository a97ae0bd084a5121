//! The stable driver over every target, for a short budget each (CI): `RICOCHET_FUZZ_SECS`
//! (default 2) per target, `RICOCHET_FUZZ_SEED` (default 1) as the base seed. A finding fails
//! the test with the input in hex; `ricochet-fuzz repro TARGET FILE` replays one.

use std::io::Write as _;
use std::time::Duration;

use ricochet_fuzz::driver::{self, Budget};

fn drive(name: &str) {
    let secs: f64 = std::env::var("RICOCHET_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let base: u64 = std::env::var("RICOCHET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seed = driver::seed_for(name, base);
    let report = driver::run_named(name, Budget::time(Duration::from_secs_f64(secs)), seed)
        .expect("a known target");
    // Straight to stderr, past the test harness's capture: the executions are the point.
    let line = format!(
        "fuzz {name}: {} executions in {:.1} s ({:.0}/s), seed {seed}\n",
        report.execs,
        report.elapsed.as_secs_f64(),
        report.execs_per_sec()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(f) = report.finding {
        panic!(
            "{name}: finding after {} executions (seed {seed}): {}\ninput ({} bytes): {}",
            report.execs,
            f.message,
            f.input.len(),
            f.hex()
        );
    }
    assert!(
        report.execs >= 100,
        "{name} ran only {} inputs",
        report.execs
    );
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                drive(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_driven() {
            let driven = [$(stringify!($name)),*];
            for (name, _) in ricochet_fuzz::TARGETS {
                assert!(driven.contains(name), "{name} has no test here");
            }
        }
    };
}

targets!(
    relay_client_frame,
    relay_frame,
    ticket,
    signaling_client_frame,
    signaling_server_frame,
    signaling_meta,
    match_id,
    wire_packet,
    ggrs_guard,
    path_header,
    stun,
    stun_limiter,
    session_description,
    forensics,
    match_messages,
    spectator_stream,
);
