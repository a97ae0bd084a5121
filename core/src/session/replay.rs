//! Replays: the confirmed inputs of a session, with the checksum after every frame, in a
//! versioned file. Playing one back through the same game reproduces every checksum.
//!
//! # File format (version 1), all integers little-endian
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `RCRP` |
//! | 4 | 2 | format version, [`REPLAY_VERSION`] |
//! | 6 | 1 | number of players `p` (1..=255) |
//! | 7 | 2 | size of one input in bytes `s` |
//! | 9 | 4 | number of frames `n` |
//! | 13 | n × (p×(s+1) + 8) | per frame: the `p` inputs, then one status byte per player (0 confirmed, 1 disconnected), then the `u64` checksum after the frame |

use crate::{Game, InputStatus};

/// The replay format this version writes and reads.
pub const REPLAY_VERSION: u16 = 1;
const MAGIC: &[u8; 4] = b"RCRP";
const HEADER: usize = 13;

/// Why a replay could not be read or did not play back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The data does not start with the replay magic.
    #[error("not a Ricochet replay")]
    NotAReplay,
    /// The replay was written by another format version.
    #[error("replay format version {found} is not supported (this build reads {REPLAY_VERSION})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
    },
    /// The file ends before the frames its header announces.
    #[error("replay is cut off: header announces {expected} frames, file holds {found}")]
    Truncated {
        /// Frames announced by the header.
        expected: u32,
        /// Complete frames present.
        found: u32,
    },
    /// The file has bytes after its last frame.
    #[error("replay has {0} unexpected bytes after its last frame")]
    TrailingBytes(usize),
    /// The inputs in the file are not the size of this game's input type.
    #[error("replay inputs are {found} bytes, this game's are {expected}")]
    InputSizeMismatch {
        /// `size_of::<G::Input>()`.
        expected: usize,
        /// Input size in the file.
        found: usize,
    },
    /// Playing back gave a different checksum: the game is not deterministic or not the one
    /// that recorded the replay.
    #[error("checksum mismatch at frame {frame}: recorded {recorded:#x}, replayed {replayed:#x}")]
    ChecksumMismatch {
        /// First frame that differs.
        frame: u32,
        /// Checksum in the replay.
        recorded: u64,
        /// Checksum of the played-back state.
        replayed: u64,
    },
    /// Inputs larger than 65,535 bytes cannot be recorded.
    #[error("inputs of {0} bytes are too large for a replay (at most 65535)")]
    InputTooLarge(usize),
    /// A replay must have at least one player, at most 255.
    #[error("invalid player count {0}")]
    BadPlayerCount(usize),
}

/// A recorded match: confirmed inputs and the checksum after each frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    players: u8,
    input_size: u16,
    frames: u32,
    data: Vec<u8>,
}

impl Replay {
    /// An empty replay for `players` players with inputs of `input_size` bytes.
    pub fn new(players: usize, input_size: usize) -> Result<Self, ReplayError> {
        let players = u8::try_from(players)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(ReplayError::BadPlayerCount(players))?;
        let input_size =
            u16::try_from(input_size).map_err(|_| ReplayError::InputTooLarge(input_size))?;
        Ok(Replay {
            players,
            input_size,
            frames: 0,
            data: Vec::new(),
        })
    }

    /// Number of players.
    pub fn players(&self) -> usize {
        self.players as usize
    }

    /// Number of frames recorded.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    fn record_len(&self) -> usize {
        self.players as usize * (self.input_size as usize + 1) + 8
    }

    /// Appends one confirmed frame: each player's input with its status (`Predicted` is
    /// recorded as confirmed: a confirmed frame has no predictions) and the checksum after it.
    pub fn push_frame<I: bytemuck::Pod>(&mut self, inputs: &[(I, InputStatus)], checksum: u64) {
        debug_assert_eq!(inputs.len(), self.players as usize);
        debug_assert_eq!(std::mem::size_of::<I>(), self.input_size as usize);
        for (input, _) in inputs {
            self.data.extend_from_slice(bytemuck::bytes_of(input));
        }
        for (_, status) in inputs {
            self.data
                .push(u8::from(*status == InputStatus::Disconnected));
        }
        self.data.extend_from_slice(&checksum.to_le_bytes());
        self.frames += 1;
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&REPLAY_VERSION.to_le_bytes());
        out.push(self.players);
        out.extend_from_slice(&self.input_size.to_le_bytes());
        out.extend_from_slice(&self.frames.to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses file bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReplayError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(ReplayError::NotAReplay);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != REPLAY_VERSION {
            return Err(ReplayError::UnsupportedVersion { found: version });
        }
        if bytes.len() < HEADER {
            return Err(ReplayError::Truncated {
                expected: 0,
                found: 0,
            });
        }
        let players = bytes[6];
        if players == 0 {
            return Err(ReplayError::BadPlayerCount(0));
        }
        let input_size = u16::from_le_bytes([bytes[7], bytes[8]]);
        let frames = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
        let replay = Replay {
            players,
            input_size,
            frames,
            data: Vec::new(),
        };
        let body = &bytes[HEADER..];
        let record = replay.record_len();
        let expected_len = record as u64 * frames as u64;
        if (body.len() as u64) < expected_len {
            return Err(ReplayError::Truncated {
                expected: frames,
                found: (body.len() / record) as u32,
            });
        }
        if body.len() as u64 > expected_len {
            return Err(ReplayError::TrailingBytes(
                body.len() - expected_len as usize,
            ));
        }
        Ok(Replay {
            data: body.to_vec(),
            ..replay
        })
    }

    /// Plays the replay through `game` (which must be in the state the match started from),
    /// checking the checksum after every frame. Returns the number of frames played.
    pub fn play<G: Game>(&self, game: &mut G) -> Result<u32, ReplayError> {
        let size = std::mem::size_of::<G::Input>();
        if size != self.input_size as usize {
            return Err(ReplayError::InputSizeMismatch {
                expected: size,
                found: self.input_size as usize,
            });
        }
        let players = self.players as usize;
        let mut inputs = Vec::with_capacity(players);
        for (frame, record) in self.data.chunks_exact(self.record_len()).enumerate() {
            let (raw, rest) = record.split_at(players * size);
            let (statuses, sum) = rest.split_at(players);
            inputs.clear();
            for (p, status) in statuses.iter().enumerate() {
                let input = if size == 0 {
                    G::Input::zeroed()
                } else {
                    bytemuck::pod_read_unaligned::<G::Input>(&raw[p * size..(p + 1) * size])
                };
                let status = if *status == 1 {
                    InputStatus::Disconnected
                } else {
                    InputStatus::Confirmed
                };
                inputs.push((input, status));
            }
            game.advance(&inputs);
            let mut b = [0u8; 8];
            b.copy_from_slice(sum);
            let recorded = u64::from_le_bytes(b);
            let replayed = game.checksum();
            if recorded != replayed {
                return Err(ReplayError::ChecksumMismatch {
                    frame: frame as u32,
                    recorded,
                    replayed,
                });
            }
        }
        Ok(self.frames)
    }
}

use bytemuck::Zeroable as _;
