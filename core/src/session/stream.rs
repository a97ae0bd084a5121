//! The spectator stream: one player sends the match's confirmed inputs once, the relay fans
//! them out to every spectator, and a spectator replays them on its own copy of the game.
//!
//! A match's **streaming player** is its lowest player handle still connected (the same one
//! that coordinates rejoins). Its session turns what it confirms into
//! [`StreamRecord`](ricochet_protocol::relay::StreamRecord)s and gives them to its socket
//! ([`crate::PacketSocket::send_stream`]; the relay path sends them as
//! [`Opcode::STREAM`](ricochet_protocol::relay::Opcode::STREAM) frames):
//! - a **key** (the state before a frame, from which a spectator starts) at the first frame
//!   with a saved confirmed state once it streams, then every [`KEY_INTERVAL`] frames or so;
//! - the **inputs** of every confirmed frame, one record per frame (so a second streaming
//!   player's records always line up with the first one's, frame for frame: the relay keeps
//!   the one that continues the stream and drops the other).
//!
//! Nothing is sent to the other players: many spectators cost the players one record per
//! frame, whatever their number.
//!
//! A spectator feeds the records it receives to a [`Watcher`] and steps its game with it. The
//! watcher starts at the first key, follows the inputs frame by frame (calling
//! [`crate::Game::player_joined`] when a late joiner's inputs appear), checks its state against
//! every later key's checksum (reloading from the key if they differ), and across a gap in
//! the inputs (records lost while the streaming player's relay link was down) waits for the
//! next key.
//!
//! Record bodies (after the 6-byte record header, all integers big-endian):
//!
//! Inputs (`count` frames; Ricochet sends 1):
//!
//! | size | field |
//! | --- | --- |
//! | 1 | players `n` |
//! | 2 | input size `s` in bytes (`size_of::<Game::Input>()`) |
//! | `count * n * (1 + s)` | per frame, per player in handle order: status (0 confirmed, 2 disconnected), then the input's bytes |
//!
//! Key:
//!
//! | size | field |
//! | --- | --- |
//! | 4 | session epoch |
//! | 1 | players |
//! | 8 | the game's checksum in this state ([`crate::Game::checksum`]) |
//! | 1 | state format (0 JSON, 1 binary: [`crate::StateFormat`]) |
//! | rest | the state ([`crate::Game::encode_state`]) |

use std::collections::VecDeque;

use ricochet_protocol::relay::{StreamKind, StreamRecord};

use crate::game::{EncodedState, Game, InputStatus, StateFormat};

/// Frames between two keys of the stream (a late spectator starts at most this far back, at
/// 60 frames per second five seconds).
pub const KEY_INTERVAL: i32 = 300;
/// Largest stream record the streaming player sends, in bytes: the relay's default largest
/// frame (4 KiB) less the frame header. A key whose state does not fit is not sent (the
/// spectators keep following the inputs; a late one waits).
pub const MAX_RECORD_BYTES: usize = 4096 - 2;
/// The largest frame a watcher takes (a record beyond it is malformed): about 200 days at
/// 60 Hz, far enough from `i32::MAX` that frame arithmetic never overflows.
pub const MAX_FRAME: i32 = 1 << 30;
/// Size of a key body before the state.
const KEY_HEADER: usize = 4 + 1 + 8 + 1;

/// Why a stream record could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The record's header or body does not have the layout it must have.
    #[error("malformed stream record: {0}")]
    Malformed(String),
    /// The inputs are for another game (another input size).
    #[error("stream inputs are {got} bytes per player, this game's are {expected}")]
    InputSize {
        /// This game's input size.
        expected: usize,
        /// The stream's.
        got: usize,
    },
    /// The key's state could not be decoded by this game ([`Game::decode_state`]).
    #[error("the key at frame {frame} cannot be loaded: {reason}")]
    Key {
        /// The key's frame.
        frame: i32,
        /// The game's explanation.
        reason: String,
    },
}

fn status_byte(s: InputStatus) -> u8 {
    match s {
        InputStatus::Confirmed => 0,
        InputStatus::Predicted => 1,
        InputStatus::Disconnected => 2,
    }
}

fn status_from(b: u8) -> Option<InputStatus> {
    match b {
        0 => Some(InputStatus::Confirmed),
        1 => Some(InputStatus::Predicted),
        2 => Some(InputStatus::Disconnected),
        _ => None,
    }
}

/// Encodes the inputs record of one confirmed frame.
pub(crate) fn inputs_record<I: bytemuck::Pod>(frame: i32, inputs: &[(I, InputStatus)]) -> Vec<u8> {
    let size = std::mem::size_of::<I>();
    let mut body = Vec::with_capacity(3 + inputs.len() * (1 + size));
    body.push(inputs.len() as u8);
    body.extend_from_slice(&(size as u16).to_be_bytes());
    for (input, status) in inputs {
        body.push(status_byte(*status));
        body.extend_from_slice(bytemuck::bytes_of(input));
    }
    StreamRecord {
        kind: StreamKind::Inputs,
        frame: frame as u32,
        count: 1,
        body: &body,
    }
    .to_vec()
}

/// Encodes a key: the state before `frame`.
pub(crate) fn key_record(
    frame: i32,
    epoch: u32,
    players: usize,
    checksum: u64,
    state: &EncodedState,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(KEY_HEADER + state.bytes.len());
    body.extend_from_slice(&epoch.to_be_bytes());
    body.push(players as u8);
    body.extend_from_slice(&checksum.to_be_bytes());
    body.push(state.format.to_byte());
    body.extend_from_slice(&state.bytes);
    StreamRecord {
        kind: StreamKind::Key,
        frame: frame as u32,
        count: 0,
        body: &body,
    }
    .to_vec()
}

/// What the streaming player's session has to send, in order.
pub(crate) enum Item<S> {
    /// The confirmed inputs of one frame, encoded.
    Inputs(Vec<u8>),
    /// The state before `frame` (a saved confirmed state), with its player count.
    Key(i32, S, usize),
}

/// The streaming side, kept in the session's [`crate::session::Core`]: from confirmed frames
/// to [`Item`]s.
pub(crate) struct Broadcast<S> {
    /// Whether this session streams now.
    pub(crate) on: bool,
    /// Whether the stream has had its key since this session started streaming.
    keyed: bool,
    /// The frame of the last key.
    last_key: i32,
    pub(crate) items: Vec<Item<S>>,
    /// Keys skipped because the state was too large (warned once).
    pub(crate) too_large: bool,
}

impl<S: Clone> Broadcast<S> {
    pub(crate) fn new() -> Self {
        Broadcast {
            on: false,
            keyed: false,
            last_key: 0,
            items: Vec::new(),
            too_large: false,
        }
    }

    /// Starts or stops streaming; a session that starts again starts with a key.
    pub(crate) fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            self.keyed = false;
            self.items.clear();
        }
    }

    /// Frame `frame` is confirmed with `inputs`; `state` is the state after it if it was
    /// saved.
    pub(crate) fn confirmed<I: bytemuck::Pod>(
        &mut self,
        frame: i32,
        inputs: &[(I, InputStatus)],
        state: Option<&S>,
    ) {
        if !self.on {
            return;
        }
        if self.keyed {
            self.items.push(Item::Inputs(inputs_record(frame, inputs)));
        }
        if let Some(state) = state {
            if !self.keyed || frame + 1 - self.last_key >= KEY_INTERVAL {
                self.items
                    .push(Item::Key(frame + 1, state.clone(), inputs.len()));
                self.keyed = true;
                self.last_key = frame + 1;
            }
        }
    }
}

/// A spectator's side of the stream: records in, frames of the game out. Sans-IO: feed it
/// what the relay sent ([`Watcher::receive`]) and step the game ([`Watcher::step`]).
///
/// ```
/// use ricochet::session::stream::Watcher;
/// # use ricochet::{Game, InputStatus};
/// # #[derive(Default)] struct G(u64);
/// # impl Game for G { type Input = u8; type State = u64;
/// #   fn advance(&mut self, i: &[(u8, InputStatus)]) { self.0 += i.len() as u64 }
/// #   fn save(&self) -> u64 { self.0 } fn load(&mut self, s: &u64) { self.0 = *s }
/// #   fn checksum(&self) -> u64 { self.0 } }
/// let mut game = G::default();
/// let mut watcher = Watcher::new(60);
/// // for record in what the relay sent: watcher.receive(&mut game, &record)?;
/// while let Some(frame) = watcher.step(&mut game) {
///     // draw `game` after `frame`
/// }
/// assert_eq!(watcher.frame(), None); // no key yet
/// ```
pub struct Watcher<I> {
    /// The next frame to simulate; `None` before the first key (or after a gap, until the
    /// next one).
    next: Option<i32>,
    /// Players in the game as this watcher has it.
    players: usize,
    /// Received frames not simulated yet, from `next`.
    queue: VecDeque<Vec<(I, InputStatus)>>,
    /// Checksum every frame whose number + 1 is a multiple of this.
    checksum_every: u32,
    log: VecDeque<(i32, u64)>,
    stats: WatchStats,
    /// A key within the frames received, checked when the watcher reaches its frame.
    check: Option<Key>,
}

/// A decoded key record.
struct Key {
    frame: i32,
    players: usize,
    checksum: u64,
    state: EncodedState,
}

/// Counters of a [`Watcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Keys loaded (the first one, and any after a gap or a mismatch).
    pub keys_loaded: u64,
    /// Keys that matched the watcher's own state at their frame.
    pub keys_checked: u64,
    /// Keys whose checksum differed from the watcher's state at their frame (it reloaded):
    /// the stream and the watcher disagreed, which a deterministic game never does.
    pub key_mismatches: u64,
    /// Times inputs did not continue the frames the watcher had (records lost upstream):
    /// it waited for the next key.
    pub gaps: u64,
    /// Frames simulated.
    pub frames: u64,
    /// Records refused as malformed.
    pub malformed: u64,
}

impl<I: bytemuck::Pod> Watcher<I> {
    /// A watcher logging the checksum of every `checksum_every`-th frame (as a player's
    /// session does: frames `checksum_every - 1`, `2 * checksum_every - 1`, ...).
    pub fn new(checksum_every: u32) -> Self {
        Watcher {
            next: None,
            players: 0,
            queue: VecDeque::new(),
            checksum_every: checksum_every.max(1),
            log: VecDeque::new(),
            stats: WatchStats::default(),
            check: None,
        }
    }

    /// The next frame to simulate, once started.
    pub fn frame(&self) -> Option<i32> {
        self.next
    }

    /// Frames received and not simulated yet.
    pub fn buffered(&self) -> usize {
        self.queue.len()
    }

    /// Players in the match as the stream has them.
    pub fn players(&self) -> usize {
        self.players
    }

    /// The counters.
    pub fn stats(&self) -> WatchStats {
        self.stats
    }

    /// The checksum logged after `frame`, if it is one of the last
    /// [`crate::session::CHECKSUM_LOG`] checked frames.
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        let i = self.log.binary_search_by_key(&frame, |(f, _)| *f).ok()?;
        Some(self.log[i].1)
    }

    /// The newest logged checksum and its frame.
    pub fn last_checksum(&self) -> Option<(i32, u64)> {
        self.log.back().copied()
    }

    /// Takes one record (the payload of a STREAM frame from the relay). A key may load
    /// `game` (the first one, or after a gap or a mismatch).
    pub fn receive<G: Game<Input = I>>(
        &mut self,
        game: &mut G,
        record: &[u8],
    ) -> Result<(), StreamError> {
        let r = StreamRecord::parse(record).map_err(|e| {
            self.stats.malformed += 1;
            StreamError::Malformed(e.to_string())
        })?;
        // Far beyond any match (about 200 days at 60 Hz), and room for frame arithmetic.
        let frame = i32::try_from(r.frame)
            .ok()
            .filter(|f| *f <= MAX_FRAME)
            .ok_or_else(|| {
                self.stats.malformed += 1;
                StreamError::Malformed(format!("frame {} out of range", r.frame))
            })?;
        tracing::trace!(kind = ?r.kind, frame, count = r.count, "stream record received");
        match r.kind {
            StreamKind::Inputs => self.inputs(frame, r.count, r.body),
            StreamKind::Key => self.key(game, frame, r.body),
        }
    }

    fn inputs(&mut self, frame: i32, count: u8, body: &[u8]) -> Result<(), StreamError> {
        let bad = |this: &mut Self, why: &str| {
            this.stats.malformed += 1;
            Err(StreamError::Malformed(why.into()))
        };
        if body.len() < 3 {
            return bad(self, "inputs body shorter than its header");
        }
        let players = usize::from(body[0]);
        let size = usize::from(u16::from_be_bytes([body[1], body[2]]));
        let expected = std::mem::size_of::<I>();
        if size != expected {
            self.stats.malformed += 1;
            return Err(StreamError::InputSize {
                expected,
                got: size,
            });
        }
        let per_frame = players * (1 + size);
        if players == 0 || body.len() != 3 + usize::from(count) * per_frame {
            return bad(
                self,
                "inputs body length does not match its players and frames",
            );
        }
        let Some(next) = self.next else {
            // Waiting for a key.
            return Ok(());
        };
        let expected_frame = next + self.queue.len() as i32;
        for (i, chunk) in body[3..].chunks_exact(per_frame).enumerate() {
            let f = frame + i as i32;
            if f < expected_frame {
                continue; // already have it
            }
            if f > expected_frame {
                // Records were lost upstream: wait for the next key.
                tracing::warn!(
                    expected = expected_frame,
                    got = f,
                    "the spectator stream skipped frames; waiting for the next key"
                );
                self.stats.gaps += 1;
                self.next = None;
                self.queue.clear();
                return Ok(());
            }
            let mut inputs = Vec::with_capacity(players);
            for p in chunk.chunks_exact(1 + size) {
                let Some(status) = status_from(p[0]) else {
                    return bad(self, "unknown input status");
                };
                inputs.push((bytemuck::pod_read_unaligned::<I>(&p[1..]), status));
            }
            self.queue.push_back(inputs);
            return Ok(());
        }
        Ok(())
    }

    fn key<G: Game<Input = I>>(
        &mut self,
        game: &mut G,
        frame: i32,
        body: &[u8],
    ) -> Result<(), StreamError> {
        if body.len() < KEY_HEADER {
            self.stats.malformed += 1;
            return Err(StreamError::Malformed(
                "key body shorter than its header".into(),
            ));
        }
        let players = usize::from(body[4]);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&body[5..13]);
        let Some(format) = StateFormat::from_byte(body[13]) else {
            self.stats.malformed += 1;
            return Err(StreamError::Malformed("unknown state format".into()));
        };
        let key = Key {
            frame,
            players,
            checksum: u64::from_be_bytes(sum),
            state: EncodedState {
                format,
                bytes: body[KEY_HEADER..].to_vec(),
            },
        };
        match self.next {
            Some(next) if frame < next => Ok(()), // behind the watcher: nothing to learn
            Some(next) if frame <= next + self.queue.len() as i32 => {
                // Within (or right after) what the watcher has: check it on the way.
                self.check = Some(key);
                self.check_key(game)
            }
            Some(next) => {
                // Inputs between the watcher and the key were lost upstream.
                tracing::warn!(
                    expected = next + self.queue.len() as i32,
                    key = frame,
                    "the spectator stream skipped frames up to a key"
                );
                self.stats.gaps += 1;
                self.load(game, key)
            }
            None => self.load(game, key),
        }
    }

    fn load<G: Game<Input = I>>(&mut self, game: &mut G, key: Key) -> Result<(), StreamError> {
        let frame = key.frame;
        game.decode_state(&key.state)
            .map_err(|reason| StreamError::Key { frame, reason })?;
        if game.checksum() != key.checksum {
            return Err(StreamError::Key {
                frame,
                reason: "the decoded state's checksum differs from the key's".into(),
            });
        }
        self.stats.keys_loaded += 1;
        self.players = key.players;
        self.next = Some(frame);
        self.queue.clear();
        self.check = None;
        Ok(())
    }

    /// Compares the watcher's state with the key waiting at its frame, once there; a
    /// mismatch reloads from the key.
    fn check_key<G: Game<Input = I>>(&mut self, game: &mut G) -> Result<(), StreamError> {
        if self.check.as_ref().map(|k| k.frame) != self.next {
            return Ok(());
        }
        let Some(key) = self.check.take() else {
            return Ok(());
        };
        if game.checksum() == key.checksum && self.players == key.players {
            self.stats.keys_checked += 1;
            return Ok(());
        }
        tracing::warn!(
            frame = key.frame,
            "the spectator's state differs from the stream's key; reloading"
        );
        self.stats.key_mismatches += 1;
        let queue = std::mem::take(&mut self.queue);
        self.load(game, key)?;
        // The inputs received after the key still follow it.
        self.queue = queue;
        Ok(())
    }

    /// Simulates the next received frame on `game`; its number, or `None` if it has not
    /// arrived (or no key has).
    pub fn step<G: Game<Input = I>>(&mut self, game: &mut G) -> Option<i32> {
        if let Err(e) = self.check_key(game) {
            tracing::warn!(%e, "a stream key could not be loaded");
            self.next = None;
            self.queue.clear();
        }
        let frame = self.next?;
        let inputs = self.queue.pop_front()?;
        while self.players < inputs.len() {
            // A late joiner's first frame: the players' sessions told their games at the
            // same point.
            game.player_joined(self.players);
            self.players += 1;
        }
        game.advance(&inputs);
        self.stats.frames += 1;
        if (i64::from(frame) + 1) % i64::from(self.checksum_every) == 0 {
            if self.log.len() == crate::session::CHECKSUM_LOG {
                self.log.pop_front();
            }
            self.log.push_back((frame, game.checksum()));
        }
        self.next = Some(frame + 1);
        Some(frame)
    }
}
