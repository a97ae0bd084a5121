//! `ricochet-fuzz`: the stable fuzz driver as a command, for long runs without libFuzzer and
//! for libFuzzer's seed corpora.
//!
//! ```text
//! ricochet-fuzz list
//! ricochet-fuzz run SECONDS [TARGET...]      # each target for SECONDS; a table at the end
//! ricochet-fuzz seeds DIR [TARGET...]        # DIR/TARGET/seed-N, valid encodings
//! ricochet-fuzz repro TARGET FILE...         # runs TARGET on each file (a panic is the finding)
//! ```
//! `RICOCHET_FUZZ_SEED` sets the base seed of `run` (default 1). A finding is written to
//! `target/fuzz/findings/TARGET-N.bin` and makes the command exit with status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ricochet_fuzz::driver::{self, Budget};
use ricochet_fuzz::TARGETS;

fn names(args: &[String]) -> Result<Vec<&'static str>, String> {
    if args.is_empty() {
        return Ok(TARGETS.iter().map(|(n, _)| *n).collect());
    }
    args.iter()
        .map(|a| {
            TARGETS
                .iter()
                .find(|(n, _)| n == a)
                .map(|(n, _)| *n)
                .ok_or_else(|| format!("unknown target {a:?} (see `ricochet-fuzz list`)"))
        })
        .collect()
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let secs: f64 = args
        .first()
        .ok_or("run SECONDS [TARGET...]")?
        .parse()
        .map_err(|_| "SECONDS must be a number")?;
    let base: u64 = std::env::var("RICOCHET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rows = Vec::new();
    let mut failed = false;
    for name in names(&args[1..])? {
        let seed = driver::seed_for(name, base);
        let report = driver::run_named(name, Budget::time(Duration::from_secs_f64(secs)), seed)
            .ok_or("unknown target")?;
        let findings = match &report.finding {
            None => 0,
            Some(f) => {
                failed = true;
                let dir = PathBuf::from("target/fuzz/findings");
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let path = (0..)
                    .map(|i| dir.join(format!("{name}-{i}.bin")))
                    .find(|p| !p.exists())
                    .ok_or("no free file name")?;
                std::fs::write(&path, &f.input).map_err(|e| e.to_string())?;
                eprintln!(
                    "FINDING in {name} (seed {seed}): {}\n  input ({} bytes): {}\n  saved to {}",
                    f.message,
                    f.input.len(),
                    f.hex(),
                    path.display()
                );
                1
            }
        };
        eprintln!(
            "{name}: {} executions in {:.1} s ({:.0}/s), {findings} findings",
            report.execs,
            report.elapsed.as_secs_f64(),
            report.execs_per_sec()
        );
        rows.push((name, report.execs, report.execs_per_sec(), findings));
    }
    println!("| target | executions | exec/s | findings |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, execs, rate, findings) in rows {
        println!("| {name} | {execs} | {rate:.0} | {findings} |");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn seeds(args: &[String]) -> Result<ExitCode, String> {
    let dir = PathBuf::from(args.first().ok_or("seeds DIR [TARGET...]")?);
    for name in names(&args[1..])? {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
        for (i, seed) in ricochet_fuzz::seeds::seeds(name).iter().enumerate() {
            std::fs::write(sub.join(format!("seed-{i}")), seed).map_err(|e| e.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn repro(args: &[String]) -> Result<ExitCode, String> {
    let name = args.first().ok_or("repro TARGET FILE...")?;
    let target = ricochet_fuzz::target(name).ok_or_else(|| format!("unknown target {name:?}"))?;
    for file in &args[1..] {
        let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        target(&data);
        eprintln!("{file}: no finding");
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("list") => {
            for (name, _) in TARGETS {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("run") => run(&args[1..]),
        Some("seeds") => seeds(&args[1..]),
        Some("repro") => repro(&args[1..]),
        _ => Err("usage: ricochet-fuzz list | run SECONDS [TARGET...] | seeds DIR [TARGET...] | repro TARGET FILE...".into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}
