//! Rejoining a seat: a player whose process, tab or network was gone takes its seat again,
//! and the match goes on for everyone.
//!
//! ggrs 0.13 cannot take a disconnected player back into a running session, so a rejoin
//! starts a new ggrs session, a new **epoch**, for every player at a frame they agree on,
//! from the confirmed state there:
//!
//! 1. The returning player starts its session with
//!    [`SessionBuilder::start_rejoin`](crate::SessionBuilder::start_rejoin) (same roster,
//!    same handle) and sends [`Control::Rejoin`] to every other player every
//!    [`REJOIN_RESEND`] until answered. Whoever receives it disconnects the player's old
//!    self, if it had not already (the new process proves the old one gone).
//! 2. The **coordinator**, the player with the lowest handle among those still connected
//!    (other than the returning one), picks the new epoch's first frame `F`: the newest
//!    frame it knows any player to be at, plus [`REBASE_MARGIN`] and the prediction window,
//!    so that no player has confirmed frame `F` yet. It sends [`Control::Rebase`] (epoch,
//!    `F`, the players still absent, the request's nonce) to every connected player and the
//!    returning one, every [`REBASE_RESEND`] until it moves.
//! 3. Every player plays on in the old epoch, but confirms (checks, records) no frame from
//!    `F` on. Once it has confirmed frame `F - 1`, it loads the confirmed state before `F`
//!    (re-simulated from its last saved confirmed state, so any frames it predicted past
//!    `F` are rewound, as in a rollback), starts the new ggrs session there and disconnects
//!    the absent players in it from its start. ggrs messages carry their epoch (see
//!    [`crate::wire::put_epoch_header`]), so the two sessions never mix.
//! 4. The coordinator sends the returning player that state ([`Game::encode_state`]) in
//!    [`Control::Snapshot`] chunks, with its checksum; the returning player acknowledges
//!    ([`Control::SnapshotAck`]) what it has, decodes it ([`Game::decode_state`]), checks the
//!    checksum and starts the new epoch at `F` too. The players' new sessions synchronise,
//!    and play continues from `F` with the returning player in its seat.
//!
//! A session that does not reach the new epoch's start within the disconnect timeout
//! disconnects the players it has not synchronised with, so a player who vanishes again
//! mid-rejoin cannot hold the match.
//!
//! [`Game::encode_state`]: crate::Game::encode_state
//! [`Game::decode_state`]: crate::Game::decode_state

use std::time::Duration;

use web_time::Instant;

use crate::game::{EncodedState, StateFormat};
use crate::wire::{Control, MAX_SNAPSHOT_BYTES, SNAPSHOT_CHUNK};

/// How often a returning player asks again until it is seated.
pub const REJOIN_RESEND: Duration = Duration::from_millis(250);
/// How long after an epoch seated a player the coordinator leaves a new request of that player
/// (a new process, or the same one asking anew) unanswered: it is answered once this is over,
/// since the player keeps asking. A player that asks again and again (a bug, or an attack)
/// costs the others one epoch switch per cooldown at most.
pub const REJOIN_COOLDOWN: Duration = Duration::from_secs(3);
/// How often the coordinator sends [`Control::Rebase`] again until it moves to the epoch.
pub const REBASE_RESEND: Duration = Duration::from_millis(100);
/// Frames between the newest frame the coordinator knows of and the new epoch's first frame,
/// on top of the prediction window: time for the [`Control::Rebase`] to reach every player
/// (half a second at 60 Hz, resends included).
pub const REBASE_MARGIN: i32 = 30;
/// Snapshot chunks sent beyond the acknowledged bytes at a time (8 KiB: inside the relay's
/// per-client byte rate when resent every [`SNAPSHOT_RESEND`]).
pub const SNAPSHOT_WINDOW: usize = 8;
/// How often unacknowledged snapshot chunks are sent again.
pub const SNAPSHOT_RESEND: Duration = Duration::from_millis(100);

/// Why a rejoin did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejoinError {
    /// The game cannot encode its state ([`crate::Game::encode_state`] gives `None`, or a
    /// state over [`MAX_SNAPSHOT_BYTES`]).
    #[error("the game cannot send its state: {0}")]
    CannotEncode(String),
    /// The game could not decode the state it received.
    #[error("the received state does not decode: {0}")]
    CannotDecode(String),
    /// The decoded state's checksum is not the one the coordinator announced.
    #[error("the received state's checksum {got:016x} is not the announced {expected:016x}")]
    ChecksumMismatch {
        /// The announced checksum.
        expected: u64,
        /// The decoded state's.
        got: u64,
    },
    /// The match let a late joiner in that this side never heard from (its requests were
    /// all lost), so this side cannot seat it.
    #[error("a late joiner this side never heard from")]
    UnknownJoiner,
    /// The coordinator answered but its state did not arrive within the disconnect timeout.
    #[error("the match's state did not arrive in time")]
    StateNotSent,
    /// The confirmed state before the new epoch could not be rebuilt (the saved states do
    /// not reach back that far).
    #[error("the confirmed state of frame {0} is no longer known")]
    StateGone(i32),
}

/// The coordinator's side of one snapshot transfer: the bytes, and how many the returning
/// player has acknowledged.
#[derive(Debug)]
pub(crate) struct SnapshotSender {
    /// Sent with every round until the first acknowledgement (the returning player needs it
    /// before the state).
    rebase: Control,
    epoch: u32,
    frame: i32,
    checksum: u64,
    format: u8,
    bytes: Vec<u8>,
    acked: usize,
    /// Whether a round was sent (an empty state is done after one).
    sent: bool,
    /// The end of the bytes sent so far.
    sent_to: usize,
    next_round: Option<Instant>,
}

impl SnapshotSender {
    pub(crate) fn new(
        rebase: Control,
        epoch: u32,
        frame: i32,
        checksum: u64,
        state: EncodedState,
    ) -> Result<Self, RejoinError> {
        if state.bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(RejoinError::CannotEncode(format!(
                "{} bytes, more than {MAX_SNAPSHOT_BYTES}",
                state.bytes.len()
            )));
        }
        Ok(SnapshotSender {
            rebase,
            epoch,
            frame,
            checksum,
            format: state.format.to_byte(),
            bytes: state.bytes,
            acked: 0,
            sent: false,
            sent_to: 0,
            next_round: None,
        })
    }

    /// Takes an acknowledgement; returns whether the whole state has arrived.
    pub(crate) fn ack(&mut self, epoch: u32, next: u32) -> bool {
        if epoch == self.epoch {
            let next = (next as usize).min(self.bytes.len());
            if next > self.acked {
                self.acked = next;
            }
        }
        self.done()
    }

    pub(crate) fn done(&self) -> bool {
        self.sent && self.acked >= self.bytes.len()
    }

    /// The messages due at `now`: every [`SNAPSHOT_RESEND`], the window beyond the
    /// acknowledged bytes again; in between, as acknowledgements move the window, only the
    /// chunks it newly covers (so the bytes in flight stay within the window).
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Vec<Control> {
        let end = (self.acked + SNAPSHOT_WINDOW * SNAPSHOT_CHUNK).min(self.bytes.len());
        let round = self.next_round.is_none_or(|at| now >= at);
        let from = if round {
            self.acked
        } else if end > self.sent_to {
            self.sent_to
        } else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if round && self.acked == 0 {
            out.push(self.rebase.clone());
        }
        let mut offset = from;
        // An empty state is one empty chunk.
        loop {
            let to = (offset + SNAPSHOT_CHUNK).min(end);
            out.push(Control::Snapshot {
                epoch: self.epoch,
                frame: self.frame,
                checksum: self.checksum,
                format: self.format,
                total: self.bytes.len() as u32,
                offset: offset as u32,
                bytes: self.bytes[offset..to].to_vec(),
            });
            offset = to;
            if offset >= end {
                break;
            }
        }
        self.sent = true;
        self.sent_to = self.sent_to.max(end);
        if round {
            self.next_round = Some(now + SNAPSHOT_RESEND);
        }
        out
    }
}

/// The returning player's side: the chunks of one epoch's snapshot.
#[derive(Debug)]
pub(crate) struct SnapshotReceiver {
    pub(crate) epoch: u32,
    pub(crate) frame: i32,
    pub(crate) checksum: u64,
    format: u8,
    bytes: Vec<u8>,
    /// Per chunk, whether it arrived.
    have: Vec<bool>,
    /// Bytes without a gap from the start.
    next: usize,
}

impl SnapshotReceiver {
    /// Starts on the first chunk seen of `epoch` (`None` if it is not a snapshot chunk).
    pub(crate) fn new(first: &Control) -> Option<Self> {
        let Control::Snapshot {
            epoch,
            frame,
            checksum,
            format,
            total,
            ..
        } = first
        else {
            return None;
        };
        let total = *total as usize;
        Some(SnapshotReceiver {
            epoch: *epoch,
            frame: *frame,
            checksum: *checksum,
            format: *format,
            bytes: vec![0; total],
            have: vec![false; total.div_ceil(SNAPSHOT_CHUNK)],
            next: 0,
        })
    }

    /// Takes a chunk (of this transfer: same epoch, frame, checksum and length, at a chunk
    /// boundary; anything else is ignored).
    pub(crate) fn receive(&mut self, chunk: &Control) {
        let Control::Snapshot {
            epoch,
            frame,
            checksum,
            format,
            total,
            offset,
            bytes,
        } = chunk
        else {
            return;
        };
        let offset = *offset as usize;
        let same = *epoch == self.epoch
            && *frame == self.frame
            && *checksum == self.checksum
            && *format == self.format
            && *total as usize == self.bytes.len();
        let total = self.bytes.len();
        if !same || !crate::wire::is_whole_chunk(offset, bytes.len(), total, SNAPSHOT_CHUNK) {
            return;
        }
        let i = offset / SNAPSHOT_CHUNK;
        if let Some(have) = self.have.get_mut(i) {
            if !*have {
                self.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
                *have = true;
            }
        }
        while self.next < self.bytes.len() && self.have[self.next / SNAPSHOT_CHUNK] {
            self.next = (self.next + SNAPSHOT_CHUNK).min(self.bytes.len());
        }
    }

    /// The acknowledgement to send.
    pub(crate) fn ack(&self) -> Control {
        Control::SnapshotAck {
            epoch: self.epoch,
            next: self.next as u32,
        }
    }

    /// The state, once every byte has arrived.
    pub(crate) fn complete(&self) -> Option<EncodedState> {
        if self.next < self.bytes.len() {
            return None;
        }
        let format = StateFormat::from_byte(self.format)?;
        Some(EncodedState {
            format,
            bytes: self.bytes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebase() -> Control {
        Control::Rebase {
            epoch: 1,
            frame: 700,
            absent: 0,
            nonce: 9,
            players: 2,
        }
    }

    #[test]
    fn a_snapshot_arrives_whole_through_loss_and_reordering() {
        let state: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut tx =
            SnapshotSender::new(rebase(), 1, 700, 42, EncodedState::binary(state.clone())).unwrap();
        let mut rx: Option<SnapshotReceiver> = None;
        let mut now = Instant::now();
        let mut rounds = 0;
        while !tx.done() {
            rounds += 1;
            assert!(rounds < 200, "the transfer does not finish");
            let mut msgs = tx.poll_transmit(now);
            msgs.reverse();
            for (i, m) in msgs.iter().enumerate() {
                // Every third message is lost.
                if (i + rounds) % 3 == 1 || !matches!(m, Control::Snapshot { .. }) {
                    continue;
                }
                let r = rx.get_or_insert_with(|| SnapshotReceiver::new(m).unwrap());
                r.receive(m);
            }
            if let Some(r) = &rx {
                let Control::SnapshotAck { epoch, next } = r.ack() else {
                    unreachable!()
                };
                tx.ack(epoch, next);
            }
            now += SNAPSHOT_RESEND;
        }
        let got = rx.unwrap().complete().unwrap();
        assert_eq!(got.bytes, state);
        assert_eq!(got.format, StateFormat::Binary);
    }

    #[test]
    fn foreign_and_misaligned_chunks_are_ignored() {
        let first = Control::Snapshot {
            epoch: 2,
            frame: 10,
            checksum: 1,
            format: 0,
            total: 1500,
            offset: 0,
            bytes: vec![1; 1024],
        };
        let mut rx = SnapshotReceiver::new(&first).unwrap();
        for bad in [
            // Another epoch, a misaligned offset, a short chunk.
            Control::Snapshot {
                epoch: 3,
                frame: 10,
                checksum: 1,
                format: 0,
                total: 1500,
                offset: 1024,
                bytes: vec![2; 476],
            },
            Control::Snapshot {
                epoch: 2,
                frame: 10,
                checksum: 1,
                format: 0,
                total: 1500,
                offset: 1000,
                bytes: vec![2; 500],
            },
            Control::Snapshot {
                epoch: 2,
                frame: 10,
                checksum: 1,
                format: 0,
                total: 1500,
                offset: 1024,
                bytes: vec![2; 10],
            },
        ] {
            rx.receive(&bad);
        }
        rx.receive(&first);
        assert!(rx.complete().is_none());
        assert_eq!(
            rx.ack(),
            Control::SnapshotAck {
                epoch: 2,
                next: 1024
            }
        );
        rx.receive(&Control::Snapshot {
            epoch: 2,
            frame: 10,
            checksum: 1,
            format: 0,
            total: 1500,
            offset: 1024,
            bytes: vec![2; 476],
        });
        let state = rx.complete().unwrap();
        assert_eq!(state.bytes.len(), 1500);
        assert_eq!(state.bytes[1499], 2);
    }
}
