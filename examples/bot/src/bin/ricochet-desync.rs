//! `ricochet-desync`: reads a desync forensics bundle (written by a Ricochet session on a desync,
//! e.g. by `ricochet-bot` or the browser page) and prints where the two peers' states differ,
//! by field path for JSON states (`players[1].score: 4 vs 1004`) or byte range otherwise.
//!
//! With `--rerun` it also plays the bundle's recorded inputs from its saved state through the
//! demo game here, and says which side's checksum this machine's simulation reproduces.
//!
//! Exit codes: 0 when the bundle was read (whatever it shows), 1 when it cannot be read.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Parser;
use ricochet::session::forensics::{diff, ForensicBundle};
use ricochet::{Game, InputStatus};
use ricochet_demo_game::{Arena, Input};

/// Prints where the two states of a desync forensics bundle differ.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The bundle (JSON).
    bundle: PathBuf,
    /// Most differences to print per state.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Re-run the recorded inputs through the demo game here and compare checksums.
    #[arg(long)]
    rerun: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("ricochet-desync: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let b = ForensicBundle::from_json(&text)
        .with_context(|| format!("{} is not a forensics bundle", args.bundle.display()))?;
    println!(
        "desync: first differing frame {} (detected at checked frame {}), {} players",
        b.frame, b.checked_frame, b.players
    );
    println!(
        "  {} (this side): checksum {:016x}; {}: checksum {:016x}",
        b.local.peer, b.local.checksum, b.remote.peer, b.remote.checksum
    );
    match (b.local.checksum_before, b.remote.checksum_before) {
        (Some(l), Some(r)) if l == r => {
            println!("  after frame {}: equal checksums {l:016x}", b.frame - 1)
        }
        (Some(l), Some(r)) => println!(
            "  after frame {}: checksums differ already ({l:016x} vs {r:016x})",
            b.frame - 1
        ),
        _ => {}
    }
    if !b.reproduced {
        println!(
            "  note: re-simulating did not reproduce the checksum {} played; its states are its \
             best re-creation (nondeterminism local to that run)",
            b.local.peer
        );
    }
    if let (Some(l), Some(r)) = (&b.local.before, &b.remote.before) {
        let found = diff(l, r, args.limit);
        if !found.is_empty() {
            println!(
                "state after frame {} ({} vs {}):",
                b.frame - 1,
                b.local.peer,
                b.remote.peer
            );
            for d in found {
                println!("  {d}");
            }
        }
    }
    match (&b.local.state, &b.remote.state) {
        (Some(l), Some(r)) => {
            println!(
                "state after frame {} ({} vs {}):",
                b.frame, b.local.peer, b.remote.peer
            );
            let found = diff(l, r, args.limit);
            if found.is_empty() {
                println!("  (the encoded states are equal: the difference is in what the checksum covers but the encoding does not)");
            }
            for d in found {
                println!("  {d}");
            }
        }
        _ => println!(
            "no states in the bundle: the game does not encode its state (Game::encode_state)"
        ),
    }
    if args.rerun {
        rerun(&b)?;
    }
    Ok(())
}

/// Plays the bundle's inputs from its saved state through the demo game.
fn rerun(b: &ForensicBundle) -> anyhow::Result<()> {
    let Some(base) = &b.base_state else {
        bail!("the bundle has no saved state to re-run from");
    };
    let mut game: Arena =
        serde_json::from_slice(&base.bytes).context("the saved state is not the demo game's")?;
    let size = std::mem::size_of::<Input>();
    for (i, hex) in b.inputs.iter().enumerate() {
        let bytes = from_hex(hex).context("inputs are not hex")?;
        if bytes.len() != b.players * (size + 1) {
            bail!(
                "frame {}: {} input bytes, expected {}",
                b.base_frame + 1 + i as i32,
                bytes.len(),
                b.players * (size + 1)
            );
        }
        let (raw, statuses) = bytes.split_at(b.players * size);
        let inputs: Vec<(Input, InputStatus)> = (0..b.players)
            .map(|p| {
                let input: Input = bytemuck::pod_read_unaligned(&raw[p * size..(p + 1) * size]);
                let status = if statuses[p] == 1 {
                    InputStatus::Disconnected
                } else {
                    InputStatus::Confirmed
                };
                (input, status)
            })
            .collect();
        game.advance(&inputs);
    }
    if let Some(hex) = &b.replay {
        let bytes = from_hex(hex).context("the replay is not hex")?;
        let replay = ricochet::Replay::from_bytes(&bytes).context("reading the replay")?;
        match replay.play(&mut Arena::new(b.players)) {
            Ok(frames) => println!(
                "replay from frame 0: {frames} frames, every checksum {} recorded reproduced here",
                b.local.peer
            ),
            Err(e) => println!("replay from frame 0: {e}"),
        }
    }
    let here = game.checksum();
    let side = if here == b.local.checksum {
        format!("{}'s", b.local.peer)
    } else if here == b.remote.checksum {
        format!("{}'s", b.remote.peer)
    } else {
        "neither side's".to_string()
    };
    println!(
        "re-run here from frame {} to {}: checksum {here:016x}, {side}",
        b.base_frame, b.frame
    );
    Ok(())
}

/// The bytes of hex text (`None` if it is not hex).
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|j| {
            hex.get(j..j + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}
