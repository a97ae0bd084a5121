//! The stable fuzz driver: a seeded loop that feeds a target random bytes and mutations of
//! valid encodings (bit flips, interesting values, truncation, extension, insertion, deletion,
//! duplication, splicing of two encodings, dictionary tokens) for a time or execution budget.
//!
//! It has no coverage feedback (that is what the libFuzzer binaries add), no dependencies and
//! runs on any toolchain; the same seed and budget in executions give the same inputs. A panic
//! in the target is a finding: the driver catches it only to stop and report the input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::Target;

/// Longest input generated, in bytes.
pub const MAX_INPUT: usize = 8 * 1024;

/// A small, fast, seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// A length biased towards small values (mostly below 16, sometimes up to `max`).
    pub fn len(&mut self, max: usize) -> usize {
        match self.below(4) {
            0..=2 => self.below(16.min(max + 1)),
            _ => self.below(max + 1),
        }
    }
}

const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFF, 0xFE, 0x10, 0x20, 0x40, 0xF0, 0xF3, 0xF4, b'0', b'9',
    b'a', b'f', b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b'-', b'.', b'e',
];

const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
];

/// Applies one random mutation to `input`.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], dictionary: &[Vec<u8>]) {
    let len = input.len();
    let pos = rng.below(len + 1);
    match rng.below(14) {
        0 if len > 0 => input[pos.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => input[pos.min(len - 1)] = rng.byte(),
        2 if len > 0 => {
            input[pos.min(len - 1)] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
        }
        3 => {
            let n = 1 + rng.len(31);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            input.splice(pos..pos, bytes);
        }
        4 if len > 0 => {
            let end = (pos + 1 + rng.len(len)).min(len);
            input.drain(pos.min(len - 1)..end);
        }
        5 => input.truncate(pos),
        6 => {
            let n = 1 + rng.len(63);
            input.extend((0..n).map(|_| rng.byte()));
        }
        7 if len > 0 => {
            let from = rng.below(len);
            let n = 1 + rng.len(len - from - 1);
            let chunk = input[from..from + n].to_vec();
            input.splice(pos..pos, chunk);
        }
        8 if !seeds.is_empty() => {
            // Splice: this input's head, another encoding's tail.
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            input.truncate(pos);
            input.extend_from_slice(&other[from..]);
        }
        9 if !dictionary.is_empty() => {
            let token = &dictionary[rng.below(dictionary.len())];
            if rng.below(2) == 0 || len == 0 {
                input.splice(pos..pos, token.iter().copied());
            } else {
                let at = pos.min(len - 1);
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
        }
        10 if len > 0 => {
            let width = [1usize, 2, 4, 8][rng.below(4)].min(len);
            let at = rng.below(len - width + 1);
            let value = INTERESTING_INTS[rng.below(INTERESTING_INTS.len())];
            let value = if rng.below(4) == 0 {
                value.wrapping_neg()
            } else {
                value
            };
            let bytes = if rng.below(2) == 0 {
                value.to_le_bytes()
            } else {
                (value << (8 * (8 - width))).to_be_bytes()
            };
            input[at..at + width].copy_from_slice(&bytes[..width]);
        }
        11 if len > 0 => {
            let at = pos.min(len - 1);
            let delta = 1 + rng.below(16) as u8;
            input[at] = if rng.below(2) == 0 {
                input[at].wrapping_add(delta)
            } else {
                input[at].wrapping_sub(delta)
            };
        }
        12 if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            input.swap(a, b);
        }
        13 if len > 0 => {
            let at = pos.min(len - 1);
            let end = (at + 1 + rng.len(len)).min(len);
            let byte = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            input[at..end].fill(byte);
        }
        // The chosen mutation needs bytes the input lacks: add one instead.
        _ => input.insert(pos, rng.byte()),
    }
}

/// Fills `out` with the next input: sometimes random bytes, mostly a seed with 1 to 8 stacked
/// mutations.
pub fn generate(rng: &mut Rng, seeds: &[Vec<u8>], dictionary: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if seeds.is_empty() || rng.below(10) == 0 {
        let n = rng.len(512);
        out.extend((0..n).map(|_| rng.byte()));
    } else {
        out.extend_from_slice(&seeds[rng.below(seeds.len())]);
        for _ in 0..1 + rng.below(8).min(rng.below(8)) {
            mutate(rng, out, seeds, dictionary);
        }
    }
    out.truncate(MAX_INPUT);
}

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop after this long.
    pub time: Option<Duration>,
    /// Stop after this many executions.
    pub execs: Option<u64>,
}

impl Budget {
    /// Runs for `time`.
    pub fn time(time: Duration) -> Self {
        Budget {
            time: Some(time),
            execs: None,
        }
    }

    /// Runs `execs` inputs.
    pub fn execs(execs: u64) -> Self {
        Budget {
            time: None,
            execs: Some(execs),
        }
    }
}

/// An input that made the target panic.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

impl Finding {
    /// The input in hex.
    pub fn hex(&self) -> String {
        self.input.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Inputs run (the finding's included).
    pub execs: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// The first input that made the target panic, if one did (the run stops there).
    pub finding: Option<Finding>,
}

impl Report {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// Runs `target` on every seed as it is, then on generated inputs until `budget` is spent or
/// the target panics.
pub fn run(
    target: Target,
    seeds: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    budget: Budget,
    seed: u64,
) -> Report {
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut execs = 0u64;
    let mut input = Vec::with_capacity(MAX_INPUT);
    let mut finding = None;
    let mut next_seed = 0;
    loop {
        if execs.is_multiple_of(64) {
            let out_of_time = budget.time.is_some_and(|t| start.elapsed() >= t);
            let out_of_execs = budget.execs.is_some_and(|n| execs >= n);
            if out_of_time || out_of_execs {
                break;
            }
        } else if budget.execs.is_some_and(|n| execs >= n) {
            break;
        }
        if next_seed < seeds.len() {
            input.clear();
            input.extend_from_slice(&seeds[next_seed]);
            next_seed += 1;
        } else {
            generate(&mut rng, seeds, dictionary, &mut input);
        }
        execs += 1;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            finding = Some(Finding {
                input: input.clone(),
                message: panic_message(&*payload),
            });
            break;
        }
    }
    Report {
        execs,
        elapsed: start.elapsed(),
        finding,
    }
}

/// [`run`] on the target called `name` with its own seeds and dictionary.
pub fn run_named(name: &str, budget: Budget, seed: u64) -> Option<Report> {
    let target = crate::target(name)?;
    Some(run(
        target,
        &crate::seeds::seeds(name),
        &crate::seeds::dictionary(name),
        budget,
        seed,
    ))
}

/// A per-target default seed, so that targets run with the same base seed do not all draw the
/// same sequence.
pub fn seed_for(name: &str, base: u64) -> u64 {
    name.bytes().fold(base ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planted bug: panics on a three-byte frame with the RENEW opcode, which only
    /// mutations of the relay client frame seeds reach (the seeds themselves are longer).
    fn planted(data: &[u8]) {
        assert!(
            !(data.len() == 3 && data[0] == 0xF4 && data[1] == 0),
            "planted bug"
        );
    }

    #[test]
    fn the_driver_finds_a_planted_bug_and_reports_its_input() {
        let seeds = crate::seeds::seeds("relay_client_frame");
        assert!(seeds.iter().all(|s| s.len() != 3 || s[0] != 0xF4));
        let report = run(planted, &seeds, &[], Budget::execs(2_000_000), 1);
        let finding = report.finding.expect("the planted bug was not found");
        assert_eq!(finding.message, "planted bug");
        assert_eq!(finding.input.len(), 3);
        assert_eq!(&finding.input[..2], &[0xF4, 0]);
    }

    #[test]
    fn a_clean_target_runs_its_whole_budget_and_runs_are_reproducible() {
        fn clean(_: &[u8]) {}
        let seeds = crate::seeds::seeds("wire_packet");
        let report = run(clean, &seeds, &[], Budget::execs(10_000), 7);
        assert_eq!(report.execs, 10_000);
        assert!(report.finding.is_none());
        let inputs = |seed| {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            (0..100)
                .map(|_| {
                    generate(&mut rng, &seeds, &[], &mut out);
                    out.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(3), inputs(3));
        assert_ne!(inputs(3), inputs(4));
    }

    #[test]
    fn mutations_stay_in_bounds_and_vary() {
        let mut rng = Rng::new(9);
        let seeds = vec![vec![1, 2, 3], vec![], vec![9; 40]];
        let dictionary = vec![b"token".to_vec()];
        let mut distinct = std::collections::HashSet::new();
        let mut out = Vec::new();
        for _ in 0..100_000 {
            generate(&mut rng, &seeds, &dictionary, &mut out);
            assert!(out.len() <= MAX_INPUT);
            distinct.insert(out.clone());
        }
        assert!(distinct.len() > 50_000, "{}", distinct.len());
    }
}
