//! Desync forensics, without I/O: once two peers' checksums differ at a checked frame, find
//! the exact first frame that differs and swap both states there and at the frame before.
//!
//! The desync detector compares checksums only every `interval` frames, so the divergence
//! happened somewhere in the `interval` frames up to the first checked frame that differs
//! (`checked`). Each peer keeps, for this, a bounded window of its confirmed past: the saved
//! state of every `spacing`-th confirmed frame (at most [`DEFAULT_SAVED_STATES`] of them) and
//! the confirmed inputs since the oldest. When a desync is reported:
//!
//! 1. Each side re-simulates its own confirmed frames from the last saved state before the
//!    window with the recorded inputs ([`Job::Checksums`]) and sends the checksum of every
//!    frame in the window to the other ([`Control::ForensicChecksums`]).
//! 2. With both lists, each side knows the first frame that differs (`frame`). It
//!    re-simulates again to encode its state after `frame - 1` and after `frame` with
//!    [`crate::Game::encode_state`] ([`Job::States`]) and sends both in chunks
//!    ([`Control::StateChunk`], at most [`MAX_STATE_BYTES`] each), repeating the chunks until
//!    the other side says it has them ([`Control::ForensicDone`]) or [`MAX_ROUNDS`] rounds.
//! 3. With both sides' states, it hands out a [`ForensicBundle`]: the frame, both states and
//!    checksums, the peers, the saved state and inputs to re-run the window, and whether
//!    re-simulating reproduced the checksum this side had computed when it played the frame
//!    (when it does not, the nondeterminism is local to this machine's run, e.g. uninitialised
//!    memory, and the states are this side's best re-creation).
//!
//! Everything is bounded: one investigation per peer, the checksums of at most
//! [`MAX_WINDOW`] frames, states of at most [`MAX_STATE_BYTES`]; messages from peers without
//! an investigation, or that do not fit one, are dropped.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::wire::Control;

/// Saved states kept for forensics by default.
pub const DEFAULT_SAVED_STATES: usize = 16;
/// Fewest frames between two saved states (more when the check interval is longer).
pub const MIN_SPACING: u32 = 16;
/// Largest encoded state exchanged, in bytes.
pub const MAX_STATE_BYTES: usize = 1 << 20;
/// State bytes per chunk (a chunk packet stays well under the relay's 4 KiB frame limit).
pub const CHUNK_BYTES: usize = 1024;
/// Most frames whose checksums one investigation compares.
pub const MAX_WINDOW: usize = 4096;
/// Rounds of sending a state's chunks before giving up on an acknowledgement.
pub const MAX_ROUNDS: u32 = 5;
/// Chunks sent per poll.
const CHUNKS_PER_POLL: usize = 8;
/// Polls between two rounds of checksums or chunks.
const RESEND_POLLS: u32 = 30;

/// How a game state is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateFormat {
    /// A JSON document (the state's serde representation): tools name differing fields.
    Json,
    /// Any other bytes: tools show the differing byte ranges.
    Binary,
}

impl StateFormat {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            StateFormat::Json => 0,
            StateFormat::Binary => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(StateFormat::Json),
            1 => Some(StateFormat::Binary),
            _ => None,
        }
    }
}

/// A game state as bytes ([`crate::Game::encode_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedState {
    /// The encoding.
    pub format: StateFormat,
    /// The encoded state.
    pub bytes: Vec<u8>,
}

impl EncodedState {
    /// A state encoded as JSON by serde.
    pub fn json(bytes: Vec<u8>) -> Self {
        EncodedState {
            format: StateFormat::Json,
            bytes,
        }
    }

    /// A state in any other encoding.
    pub fn binary(bytes: Vec<u8>) -> Self {
        EncodedState {
            format: StateFormat::Binary,
            bytes,
        }
    }
}

/// How an [`EncodedState`] is written in a bundle: JSON states as JSON, others as hex.
#[derive(Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
enum StateRepr {
    Json { state: serde_json::Value },
    Binary { hex: String },
}

impl Serialize for EncodedState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = (self.format == StateFormat::Json)
            .then(|| serde_json::from_slice::<serde_json::Value>(&self.bytes).ok())
            .flatten();
        match json {
            Some(state) => StateRepr::Json { state },
            None => StateRepr::Binary {
                hex: self.bytes.iter().map(|b| format!("{b:02x}")).collect(),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for EncodedState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match StateRepr::deserialize(d)? {
            StateRepr::Json { state } => {
                EncodedState::json(serde_json::to_vec(&state).map_err(serde::de::Error::custom)?)
            }
            StateRepr::Binary { hex } => {
                if hex.len() % 2 != 0 || !hex.is_ascii() {
                    return Err(serde::de::Error::custom("hex of odd length"));
                }
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(serde::de::Error::custom)?;
                EncodedState::binary(bytes)
            }
        })
    }
}

/// One side's states at the first differing frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideStates {
    /// The peer (its address, as the session knows it).
    pub peer: String,
    /// Its checksum after the frame before (equal on both sides). Checksums are written as
    /// 16 hex digits: JSON numbers lose precision beyond 2^53 in JavaScript.
    #[serde(with = "hex_checksum_opt")]
    pub checksum_before: Option<u64>,
    /// Its state after the frame before (`None` when the first frame is frame 0, or the game
    /// encodes no state).
    pub before: Option<EncodedState>,
    /// Its checksum after the first differing frame.
    #[serde(with = "hex_checksum")]
    pub checksum: u64,
    /// Its state after the first differing frame (`None` when the game encodes no state).
    pub state: Option<EncodedState>,
}

/// Everything one peer knows about a desync with another: written by the game (the bot and
/// the browser page save it as JSON) and read by `ricochet-desync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForensicBundle {
    /// Bundle format version ([`BUNDLE_VERSION`]).
    pub version: u32,
    /// The `ricochet` crate version that wrote it.
    pub ricochet_version: String,
    /// The first frame whose states differ.
    pub frame: i32,
    /// The first checked frame whose checksums differed (where the desync was detected).
    pub checked_frame: i32,
    /// This side.
    pub local: SideStates,
    /// The other side.
    pub remote: SideStates,
    /// Whether re-simulating the window here gave the checksum this side computed when it
    /// first played `checked_frame` (`false`: the local simulation does not reproduce itself).
    pub reproduced: bool,
    /// Number of players (inputs per frame).
    pub players: usize,
    /// The saved state the window was re-simulated from, and its frame (`inputs` follow it).
    pub base_frame: i32,
    /// That state, encoded (`None` when the game encodes no state).
    pub base_state: Option<EncodedState>,
    /// The confirmed inputs of frames `base_frame + 1 ..= frame`, each the players' input
    /// bytes in player order, then one status byte per player (0 confirmed, 1 disconnected),
    /// as hex.
    pub inputs: Vec<String>,
    /// When the session records a replay ([`crate::SessionSettings::with_replay_recording`]):
    /// the whole [`crate::Replay`] from frame 0 as far as it was confirmed, as hex of
    /// [`crate::Replay::to_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// Checksums in bundles: 16 hex digits.
mod hex_checksum {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(c: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{c:016x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// Optional checksums in bundles: 16 hex digits or `null`.
mod hex_checksum_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(c: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match c {
            Some(c) => s.serialize_str(&format!("{c:016x}")),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| u64::from_str_radix(&t, 16).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The bundle format this version writes.
pub const BUNDLE_VERSION: u32 = 1;

impl ForensicBundle {
    /// The bundle as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a bundle written by [`ForensicBundle::to_json`].
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// One difference between two encoded states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where: a field path for JSON states (`players[1].score`, `bullets.length`), a byte
    /// range for binary ones (`bytes[12..16]`).
    pub path: String,
    /// The value on the first side (JSON text, or hex bytes).
    pub left: String,
    /// The value on the second side.
    pub right: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} vs {}", self.path, self.left, self.right)
    }
}

/// The differences between two encoded states, at most `limit` of them: field by field when
/// both are JSON (object keys in sorted order, arrays element by element, then their
/// lengths), else byte ranges.
pub fn diff(a: &EncodedState, b: &EncodedState, limit: usize) -> Vec<Difference> {
    let json = |s: &EncodedState| {
        (s.format == StateFormat::Json)
            .then(|| serde_json::from_slice::<serde_json::Value>(&s.bytes).ok())
            .flatten()
    };
    let mut out = Vec::new();
    match (json(a), json(b)) {
        (Some(x), Some(y)) => diff_json(&x, &y, String::new(), limit, &mut out),
        _ => diff_bytes(&a.bytes, &b.bytes, limit, &mut out),
    }
    out
}

fn diff_json(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: String,
    limit: usize,
    out: &mut Vec<Difference>,
) {
    use serde_json::Value;
    if out.len() >= limit || a == b {
        return;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, xv) in x {
                match y.get(key) {
                    Some(yv) => diff_json(xv, yv, join(key), limit, out),
                    None => out.push(Difference {
                        path: join(key),
                        left: xv.to_string(),
                        right: "(absent)".into(),
                    }),
                }
            }
            for (key, yv) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(Difference {
                    path: join(key),
                    left: "(absent)".into(),
                    right: yv.to_string(),
                });
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (xv, yv)) in x.iter().zip(y).enumerate() {
                diff_json(xv, yv, format!("{path}[{i}]"), limit, out);
            }
            if x.len() != y.len() {
                out.push(Difference {
                    path: join("length"),
                    left: x.len().to_string(),
                    right: y.len().to_string(),
                });
            }
        }
        _ => out.push(Difference {
            path: if path.is_empty() {
                "(root)".into()
            } else {
                path
            },
            left: a.to_string(),
            right: b.to_string(),
        }),
    }
    out.truncate(limit);
}

fn diff_bytes(a: &[u8], b: &[u8], limit: usize, out: &mut Vec<Difference>) {
    let hex = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let common = a.len().min(b.len());
    let mut i = 0;
    while i < common && out.len() < limit {
        if a[i] == b[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < common && a[i] != b[i] && i - start < 16 {
            i += 1;
        }
        out.push(Difference {
            path: format!("bytes[{start}..{i}]"),
            left: hex(&a[start..i]),
            right: hex(&b[start..i]),
        });
    }
    if a.len() != b.len() && out.len() < limit {
        out.push(Difference {
            path: "length".into(),
            left: a.len().to_string(),
            right: b.len().to_string(),
        });
    }
}

/// Work the session must do with the game for the forensics (it owns the game).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job<A> {
    /// Re-simulate frames `from ..= to` and report each one's checksum with
    /// [`Forensics::checksums_done`].
    Checksums {
        /// The peer of the investigation.
        peer: A,
        /// First frame.
        from: i32,
        /// Last frame.
        to: i32,
    },
    /// Re-simulate up to `frame` and report the states after `frame - 1` and `frame` with
    /// [`Forensics::states_done`].
    States {
        /// The peer of the investigation.
        peer: A,
        /// The first differing frame.
        frame: i32,
    },
}

/// What the session found re-simulating the states of [`Job::States`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resimulated {
    /// Checksum and state after the frame before (`None` for frame 0).
    pub before: Option<(u64, Option<EncodedState>)>,
    /// Checksum and state after the frame.
    pub at: (u64, Option<EncodedState>),
    /// The saved state the window was re-simulated from.
    pub base_frame: i32,
    /// It, encoded.
    pub base_state: Option<EncodedState>,
    /// The inputs of `base_frame + 1 ..= frame` (see [`ForensicBundle::inputs`]).
    pub inputs: Vec<String>,
    /// The session's recorded replay so far, if it records one.
    pub replay: Option<Vec<u8>>,
}

/// A state being received in chunks.
#[derive(Debug, Default)]
struct Incoming {
    checksum: u64,
    format: Option<StateFormat>,
    total: usize,
    bytes: Vec<u8>,
    have: Vec<bool>,
}

impl Incoming {
    fn complete(&self) -> bool {
        self.format.is_some() && self.have.iter().all(|h| *h)
    }
}

/// One investigation, with one peer.
#[derive(Debug)]
struct Case {
    checked: i32,
    from: i32,
    local_sums: Option<Vec<u64>>,
    reproduced: bool,
    remote_sums: Option<(i32, Vec<u64>)>,
    frame: Option<i32>,
    job_given: bool,
    states_job_given: bool,
    local: Option<Resimulated>,
    /// The peer's states after `frame - 1` and `frame`, by frame.
    incoming: HashMap<i32, Incoming>,
    peer_done: bool,
    bundled: bool,
    /// Polls since the last round of checksums or chunks.
    since_send: u32,
    rounds: u32,
    /// The next chunk of the current round (counting from the round's first).
    cursor: Option<usize>,
    /// The peer's message since our bundle was made: answer with Done.
    owe_done: bool,
}

/// The forensics of one session: investigations per peer.
#[derive(Debug)]
pub struct Forensics<A> {
    interval: u32,
    local_name: String,
    /// How bundles name each peer (its players' handles), by address.
    names: HashMap<A, String>,
    players: usize,
    cases: HashMap<A, Case>,
    /// Checksums a peer sent before our own detection fired (one list per peer).
    early: HashMap<A, (i32, Vec<u64>)>,
    bundles: Vec<ForensicBundle>,
}

impl<A: Clone + Eq + Hash + std::fmt::Debug> Forensics<A> {
    /// Forensics for a session whose desync detector checks every `interval`-th frame;
    /// `local` names this peer in bundles, `names` the others (by default their address).
    pub fn new(
        interval: u32,
        players: usize,
        local: String,
        names: impl IntoIterator<Item = (A, String)>,
    ) -> Self {
        Forensics {
            interval: interval.max(1),
            local_name: local,
            names: names.into_iter().collect(),
            players,
            cases: HashMap::new(),
            early: HashMap::new(),
            bundles: Vec::new(),
        }
    }

    /// Frames between two saved states for a check interval of `interval`.
    pub fn spacing(interval: u32) -> u32 {
        interval.max(MIN_SPACING)
    }

    /// The desync detector found that `peer` disagrees first at checked frame `checked`.
    pub fn start(&mut self, peer: A, checked: i32) {
        if self.cases.contains_key(&peer) {
            return;
        }
        let from = (checked - self.interval as i32 + 1).max(0);
        let mut case = Case {
            checked,
            from,
            local_sums: None,
            reproduced: true,
            remote_sums: None,
            frame: None,
            job_given: false,
            states_job_given: false,
            local: None,
            incoming: HashMap::new(),
            peer_done: false,
            bundled: false,
            since_send: RESEND_POLLS,
            rounds: 0,
            cursor: None,
            owe_done: false,
        };
        if let Some(early) = self.early.remove(&peer) {
            case.remote_sums = Some(early);
        }
        self.cases.insert(peer, case);
    }

    /// The next re-simulation the session must run, if any.
    pub fn next_job(&mut self) -> Option<Job<A>> {
        for (peer, case) in &mut self.cases {
            if !case.job_given {
                case.job_given = true;
                return Some(Job::Checksums {
                    peer: peer.clone(),
                    from: case.from,
                    to: case.checked,
                });
            }
            if let (Some(frame), false) = (case.frame, case.states_job_given) {
                case.states_job_given = true;
                return Some(Job::States {
                    peer: peer.clone(),
                    frame,
                });
            }
        }
        None
    }

    /// The checksums of [`Job::Checksums`] (`None`: the window was not available, and the
    /// investigation with `peer` ends), and whether the last one equals the checksum this side
    /// computed when it played the checked frame.
    pub fn checksums_done(&mut self, peer: &A, sums: Option<Vec<u64>>, reproduced: bool) {
        let Some(sums) = sums else {
            tracing::warn!(
                ?peer,
                "desync forensics: the saved window no longer covers the desync"
            );
            self.cases.remove(peer);
            return;
        };
        if let Some(case) = self.cases.get_mut(peer) {
            case.local_sums = Some(sums);
            case.reproduced = reproduced;
            case.since_send = RESEND_POLLS;
            Self::find_frame(case);
        }
    }

    /// The states of [`Job::States`] (`None`: not available; the investigation ends).
    pub fn states_done(&mut self, peer: &A, states: Option<Resimulated>) {
        let Some(states) = states else {
            self.cases.remove(peer);
            return;
        };
        if let Some(case) = self.cases.get_mut(peer) {
            case.local = Some(states);
            case.since_send = RESEND_POLLS;
        }
        self.try_bundle(peer);
    }

    fn find_frame(case: &mut Case) {
        if case.frame.is_some() {
            return;
        }
        let (Some(local), Some((first, remote))) = (&case.local_sums, &case.remote_sums) else {
            return;
        };
        for (i, sum) in local.iter().enumerate() {
            let frame = case.from + i as i32;
            let Some(theirs) = usize::try_from(frame - first)
                .ok()
                .and_then(|j| remote.get(j))
            else {
                continue;
            };
            if sum != theirs {
                case.frame = Some(frame);
                return;
            }
        }
        // Equal over the window: the checked frame itself is the only difference known.
        case.frame = Some(case.checked);
    }

    /// Handles a forensic message from `peer`.
    pub fn receive(&mut self, peer: &A, msg: &Control) {
        match msg {
            Control::ForensicChecksums {
                first_frame,
                checksums,
            } => {
                if checksums.len() > MAX_WINDOW {
                    return;
                }
                match self.cases.get_mut(peer) {
                    Some(case) => {
                        if case.bundled {
                            case.owe_done = true;
                        }
                        if case.remote_sums.is_none() {
                            case.remote_sums = Some((*first_frame, checksums.clone()));
                            Self::find_frame(case);
                        }
                    }
                    None => {
                        self.early
                            .insert(peer.clone(), (*first_frame, checksums.clone()));
                    }
                }
            }
            Control::StateChunk {
                frame,
                checksum,
                format,
                total,
                offset,
                bytes,
            } => {
                let Some(case) = self.cases.get_mut(peer) else {
                    return;
                };
                if case.bundled {
                    case.owe_done = true;
                    return;
                }
                let Some(want) = case.frame else { return };
                if *frame != want && *frame != want - 1 {
                    return;
                }
                let total = *total as usize;
                let offset = *offset as usize;
                let Some(format) = StateFormat::from_byte(*format) else {
                    return;
                };
                if total > MAX_STATE_BYTES
                    || !crate::wire::is_whole_chunk(offset, bytes.len(), total, CHUNK_BYTES)
                {
                    return;
                }
                let chunks = total.div_ceil(CHUNK_BYTES).max(1);
                let entry = case.incoming.entry(*frame).or_insert_with(|| Incoming {
                    checksum: *checksum,
                    format: Some(format),
                    total,
                    bytes: vec![0; total],
                    have: vec![false; chunks],
                });
                if entry.total != total || entry.checksum != *checksum {
                    return;
                }
                entry.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
                entry.have[offset / CHUNK_BYTES] = true;
                let peer = peer.clone();
                self.try_bundle(&peer);
            }
            Control::ForensicDone { frame } => {
                if let Some(case) = self.cases.get_mut(peer) {
                    if case.frame == Some(*frame) {
                        case.peer_done = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn try_bundle(&mut self, peer: &A) {
        let Some(case) = self.cases.get_mut(peer) else {
            return;
        };
        let (Some(frame), Some(local)) = (case.frame, &case.local) else {
            return;
        };
        if case.bundled {
            return;
        }
        let remote_at = case.incoming.get(&frame).filter(|s| s.complete());
        let remote_before = case.incoming.get(&(frame - 1)).filter(|s| s.complete());
        let Some(remote_at) = remote_at else { return };
        if local.before.is_some() && remote_before.is_none() {
            return;
        }
        let decode = |i: &Incoming| {
            (!i.bytes.is_empty() || i.total == 0).then(|| EncodedState {
                format: i.format.unwrap_or(StateFormat::Binary),
                bytes: i.bytes.clone(),
            })
        };
        let bundle = ForensicBundle {
            version: BUNDLE_VERSION,
            ricochet_version: env!("CARGO_PKG_VERSION").to_string(),
            frame,
            checked_frame: case.checked,
            local: SideStates {
                peer: self.local_name.clone(),
                checksum_before: local.before.as_ref().map(|(c, _)| *c),
                before: local.before.as_ref().and_then(|(_, s)| s.clone()),
                checksum: local.at.0,
                state: local.at.1.clone(),
            },
            remote: SideStates {
                peer: self
                    .names
                    .get(peer)
                    .cloned()
                    .unwrap_or_else(|| format!("{peer:?}")),
                checksum_before: remote_before.map(|s| s.checksum),
                before: remote_before.and_then(decode),
                checksum: remote_at.checksum,
                state: decode(remote_at),
            },
            reproduced: case.reproduced,
            players: self.players,
            base_frame: local.base_frame,
            base_state: local.base_state.clone(),
            inputs: local.inputs.clone(),
            replay: local
                .replay
                .as_ref()
                .map(|r| r.iter().map(|b| format!("{b:02x}")).collect()),
        };
        case.bundled = true;
        case.owe_done = true;
        tracing::warn!(frame, ?peer, "desync forensics: both states collected");
        self.bundles.push(bundle);
    }

    /// Messages to send now, each to its peer.
    pub fn poll_transmit(&mut self) -> Vec<(A, Control)> {
        let mut out = Vec::new();
        for (peer, case) in &mut self.cases {
            case.since_send = case.since_send.saturating_add(1);
            if case.owe_done {
                if let Some(frame) = case.frame {
                    out.push((peer.clone(), Control::ForensicDone { frame }));
                }
                case.owe_done = false;
            }
            // Our checksums, every few polls until the peer has answered with states (then it
            // knows the frame).
            let peer_knows = !case.incoming.is_empty() || case.bundled;
            if let Some(sums) = &case.local_sums {
                if !peer_knows && case.cursor.is_none() && case.since_send >= RESEND_POLLS {
                    out.push((
                        peer.clone(),
                        Control::ForensicChecksums {
                            first_frame: case.from,
                            checksums: sums.clone(),
                        },
                    ));
                    if case.local.is_none() {
                        case.since_send = 0;
                    }
                }
            }
            // Our states, in rounds, until the peer has them.
            let Some(local) = &case.local else { continue };
            let Some(frame) = case.frame else { continue };
            if case.peer_done || case.rounds >= MAX_ROUNDS {
                continue;
            }
            if case.cursor.is_none() {
                if case.since_send < RESEND_POLLS {
                    continue;
                }
                case.cursor = Some(0);
                case.rounds += 1;
            }
            let states: Vec<(i32, u64, &EncodedState)> = [
                local
                    .before
                    .as_ref()
                    .and_then(|(c, s)| s.as_ref().map(|s| (frame - 1, *c, s))),
                local.at.1.as_ref().map(|s| (frame, local.at.0, s)),
            ]
            .into_iter()
            .flatten()
            .collect();
            // Every chunk of both states, each round starting one chunk further on, so that
            // a loss pattern in step with the rounds cannot hit the same chunk every time.
            let chunks: Vec<(usize, usize)> = states
                .iter()
                .enumerate()
                .flat_map(|(which, (_, _, s))| {
                    let n = s
                        .bytes
                        .len()
                        .min(MAX_STATE_BYTES)
                        .div_ceil(CHUNK_BYTES)
                        .max(1);
                    (0..n).map(move |i| (which, i))
                })
                .collect();
            let mut sent = 0;
            while let Some(k) = case.cursor {
                if k >= chunks.len() {
                    case.cursor = None;
                    case.since_send = 0;
                    break;
                }
                if sent == CHUNKS_PER_POLL {
                    break;
                }
                let (which, chunk) = chunks[(k + case.rounds as usize) % chunks.len()];
                let (f, checksum, state) = states[which];
                let total = state.bytes.len().min(MAX_STATE_BYTES);
                let offset = chunk * CHUNK_BYTES;
                let end = (offset + CHUNK_BYTES).min(total);
                out.push((
                    peer.clone(),
                    Control::StateChunk {
                        frame: f,
                        checksum,
                        format: state.format.to_byte(),
                        total: total as u32,
                        offset: offset as u32,
                        bytes: state.bytes[offset.min(total)..end].to_vec(),
                    },
                ));
                sent += 1;
                case.cursor = Some(k + 1);
            }
        }
        out
    }

    /// A finished bundle, if any.
    pub fn poll_bundle(&mut self) -> Option<ForensicBundle> {
        (!self.bundles.is_empty()).then(|| self.bundles.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the exchange between two sides whose per-frame checksums differ from frame
    /// `diverge` on; returns both bundles.
    fn exchange(
        interval: u32,
        checked: i32,
        diverge: i32,
        drop_every: usize,
    ) -> Vec<ForensicBundle> {
        let mut sides = [
            Forensics::<u8>::new(interval, 2, "0".into(), [(1, "1".into())]),
            Forensics::<u8>::new(interval, 2, "1".into(), [(0, "0".into())]),
        ];
        let sum = |side: usize, f: i32| f as u64 * 7 + u64::from(side == 1 && f >= diverge);
        let state = |side: usize, f: i32| {
            let mut b = format!("{{\"frame\":{f},\"x\":{}}}", sum(side, f)).into_bytes();
            // Large enough for several chunks.
            b.extend(std::iter::repeat_n(b' ', 3000));
            EncodedState::json(b)
        };
        sides[0].start(1, checked);
        let mut bundles = Vec::new();
        let mut n = 0;
        for _ in 0..2000 {
            for me in 0..2 {
                while let Some(job) = sides[me].next_job() {
                    match job {
                        Job::Checksums { peer, from, to } => sides[me].checksums_done(
                            &peer,
                            Some((from..=to).map(|f| sum(me, f)).collect()),
                            true,
                        ),
                        Job::States { peer, frame } => sides[me].states_done(
                            &peer,
                            Some(Resimulated {
                                before: (frame > 0)
                                    .then(|| (sum(me, frame - 1), Some(state(me, frame - 1)))),
                                at: (sum(me, frame), Some(state(me, frame))),
                                base_frame: 0,
                                base_state: None,
                                inputs: Vec::new(),
                                replay: None,
                            }),
                        ),
                    }
                }
                for (to, msg) in sides[me].poll_transmit() {
                    n += 1;
                    if drop_every > 0 && n % drop_every == 0 {
                        continue;
                    }
                    let other = to as usize;
                    if other == 1 && !sides[1].cases.contains_key(&0) {
                        // The other side's detector fires a little later.
                        sides[1].start(0, checked);
                    }
                    sides[other].receive(&(me as u8), &msg);
                }
                while let Some(b) = sides[me].poll_bundle() {
                    bundles.push(b);
                }
            }
        }
        bundles
    }

    #[test]
    fn both_sides_name_the_exact_frame_and_get_each_others_states() {
        for (interval, checked, diverge, drop) in
            [(10, 739, 733, 0), (10, 739, 730, 7), (1, 50, 50, 3)]
        {
            let bundles = exchange(interval, checked, diverge, drop);
            assert_eq!(bundles.len(), 2, "{interval} {diverge}");
            for b in &bundles {
                assert_eq!(b.frame, diverge);
                assert_eq!(b.checked_frame, checked);
                assert_eq!(b.local.checksum_before, b.remote.checksum_before);
                assert_ne!(b.local.checksum, b.remote.checksum);
                let remote: serde_json::Value =
                    serde_json::from_slice(&b.remote.state.as_ref().unwrap().bytes).unwrap();
                assert_eq!(remote["frame"], diverge);
                let back = ForensicBundle::from_json(&b.to_json()).unwrap();
                assert_eq!(back.frame, b.frame);
                assert_eq!(back.remote.checksum, b.remote.checksum);
            }
            assert_eq!(
                bundles[0].local.peer,
                bundles[1].remote.peer.trim_matches('"')
            );
        }
    }

    #[test]
    fn diffs_name_json_fields_and_binary_ranges() {
        let a = EncodedState::json(
            br#"{"frame":733,"players":[{"x":1,"score":4},{"x":2,"score":4}],"bullets":[1,2]}"#
                .to_vec(),
        );
        let b = EncodedState::json(br#"{"frame":733,"players":[{"x":1,"score":4},{"x":2,"score":1004}],"bullets":[1,2,3],"extra":true}"#.to_vec());
        let found: Vec<String> = diff(&a, &b, 10).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            found,
            [
                "bullets.length: 2 vs 3",
                "players[1].score: 4 vs 1004",
                "extra: (absent) vs true"
            ]
        );
        assert_eq!(diff(&a, &a, 10), []);
        assert_eq!(diff(&a, &b, 1).len(), 1);
        let x = EncodedState::binary(vec![1, 2, 3, 4, 5, 6]);
        let y = EncodedState::binary(vec![1, 9, 9, 4, 5, 7, 8]);
        let found: Vec<String> = diff(&x, &y, 10).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            found,
            [
                "bytes[1..3]: 0203 vs 0909",
                "bytes[5..6]: 06 vs 07",
                "length: 6 vs 7"
            ]
        );
        // JSON against bytes that are not JSON: compared as bytes.
        assert_eq!(
            diff(&a, &EncodedState::json(b"{oops".to_vec()), 10)[0].path,
            "bytes[1..5]"
        );
    }

    #[test]
    fn hostile_messages_are_bounded() {
        let mut f = Forensics::<u8>::new(10, 2, "0".into(), []);
        // No investigation: chunks are dropped, one early checksum list is kept.
        f.receive(
            &9,
            &Control::StateChunk {
                frame: 1,
                checksum: 0,
                format: 0,
                total: u32::MAX,
                offset: 0,
                bytes: vec![0; 10],
            },
        );
        assert!(f.cases.is_empty());
        f.receive(
            &9,
            &Control::ForensicChecksums {
                first_frame: 0,
                checksums: vec![0; MAX_WINDOW + 1],
            },
        );
        assert!(f.early.is_empty());
        f.start(9, 99);
        f.checksums_done(&9, Some(vec![1; 10]), true);
        f.receive(
            &9,
            &Control::ForensicChecksums {
                first_frame: 90,
                checksums: vec![1; 9].into_iter().chain([2]).collect(),
            },
        );
        assert_eq!(f.cases[&9].frame, Some(99));
        for (total, offset, len) in [
            (MAX_STATE_BYTES + 1, 0, CHUNK_BYTES),
            (5000, 10, 100),
            (5000, 0, 10),
            (5000, 8192, 1024),
        ] {
            f.receive(
                &9,
                &Control::StateChunk {
                    frame: 99,
                    checksum: 1,
                    format: 0,
                    total: total as u32,
                    offset: offset as u32,
                    bytes: vec![0; len],
                },
            );
        }
        assert!(f.cases[&9].incoming.is_empty());
        f.receive(
            &9,
            &Control::StateChunk {
                frame: 99,
                checksum: 1,
                format: 7,
                total: 10,
                offset: 0,
                bytes: vec![0; 10],
            },
        );
        assert!(f.cases[&9].incoming.is_empty());
    }
}
