//! The relay's binary frame format: what a client and the relay send each other inside
//! WebSocket binary messages once the client is a member of a match.
//!
//! One WebSocket binary message carries exactly one frame. There are two directions with two
//! headers; both start with an [`Opcode`] byte and a flags byte, then the payload runs to the
//! end of the message (its length is the message's length, so there is no length field).
//!
//! Client to relay ([`ClientFrame`]):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | opcode |
//! | 1 | 1 | flags: bit 0 ([`FLAG_TARGETED`]) = a target member follows; other bits must be 0 |
//! | 2 | 2 | target member number, big-endian `u16`, only if [`FLAG_TARGETED`] is set |
//! | 2 or 4 | rest | payload |
//!
//! Relay to client ([`RelayFrame`]):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | opcode |
//! | 1 | 1 | flags: bit 0 ([`FLAG_TARGETED`]) = the frame was sent to this member alone |
//! | 2 | 2 | sender member number, big-endian `u16`, stamped by the relay ([`RELAY_MEMBER`] for the relay itself) |
//! | 4 | rest | payload |
//!
//! Opcodes `0x00..=0xEF` belong to the game and are forwarded verbatim; `0xF0..=0xFF` are
//! reserved for the relay ([`Opcode::WELCOME`], [`Opcode::JOIN`], [`Opcode::LEAVE`],
//! [`Opcode::ERROR`] from the relay; [`Opcode::RENEW`] from a client; [`Opcode::STREAM`] both
//! ways; the others are unassigned). A client sending any other reserved opcode gets an
//! [`Opcode::ERROR`] frame back and nothing is forwarded.
//!
//! **Spectators** (a ticket with [`crate::ticket::SPECTATOR_SEAT`]) are members of a match of
//! their own kind: the players never hear of them (no JOIN or LEAVE), they receive only their
//! WELCOME (listing the players) and the match's [`Opcode::STREAM`] frames, and may send only
//! [`Opcode::RENEW`] (anything else is answered with [`ErrorCode::NotAllowed`] and goes
//! nowhere). A player sends the stream once; the relay fans it out to every spectator and
//! keeps its latest [`StreamKind::Key`] and the inputs since, so a spectator arriving late
//! starts from there ([`StreamRecord`]).
//!
//! Everything here is plain byte manipulation without I/O or allocation beyond the returned
//! values, so it builds for wasm32 as well as native. Decoders return a [`FrameError`] on short
//! or malformed input and never panic.
//!
//! ```
//! use ricochet_protocol::relay::{ClientFrame, Opcode, RelayFrame};
//! // A client sends game opcode 7 to everyone.
//! let wire = ClientFrame::broadcast(Opcode(7), b"inputs").to_vec();
//! assert_eq!(wire, [7, 0, b'i', b'n', b'p', b'u', b't', b's']);
//! let frame = ClientFrame::parse(&wire).unwrap();
//! assert_eq!(frame.target, None);
//! // The relay forwards it stamped with the sender's member number 3.
//! let out = RelayFrame { opcode: frame.opcode, targeted: false, sender: 3, payload: frame.payload };
//! let wire = out.to_vec();
//! assert_eq!(&wire[..4], &[7, 0, 0, 3]);
//! assert_eq!(RelayFrame::parse(&wire).unwrap(), out);
//! ```

use crate::PeerId;

/// Flags bit 0: in a client frame, a target member number follows the flags; in a relay frame,
/// the frame was addressed to the receiving member alone.
pub const FLAG_TARGETED: u8 = 0x01;
/// Flag bits this version defines; a client frame with any other bit set is malformed.
pub const KNOWN_FLAGS: u8 = FLAG_TARGETED;
/// Size of a relay-to-client header, in bytes.
pub const RELAY_HEADER_LEN: usize = 4;
/// Size of a client-to-relay header without a target, in bytes.
pub const CLIENT_HEADER_LEN: usize = 2;
/// Size of a client-to-relay header with a target, in bytes.
pub const CLIENT_TARGETED_HEADER_LEN: usize = 4;
/// The member number the relay uses as sender of its own frames (errors); never given to a
/// member.
pub const RELAY_MEMBER: u16 = 0xFFFF;
/// Size of one member entry (member number + peer ID) in WELCOME, JOIN and LEAVE payloads.
pub const MEMBER_ENTRY_LEN: usize = 2 + 16;
/// The first opcode reserved for the relay.
pub const FIRST_RESERVED_OPCODE: u8 = 0xF0;

/// A frame's first byte: what the frame is. See the module docs for which values are whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Relay to client, once, first: you are in. Sender field: your own member number.
    /// Payload: the members already present, as entries of [`MEMBER_ENTRY_LEN`] bytes
    /// (member `u16` BE, peer ID 16 bytes).
    pub const WELCOME: Opcode = Opcode(0xF0);
    /// Relay to client: a member joined. Sender field: its member number. Payload: its peer
    /// ID (16 bytes).
    pub const JOIN: Opcode = Opcode(0xF1);
    /// Relay to client: a member left. Sender field: its member number. Payload: its peer ID
    /// (16 bytes).
    pub const LEAVE: Opcode = Opcode(0xF2);
    /// Relay to client: your frame was refused (nothing was forwarded). Sender field:
    /// [`RELAY_MEMBER`]. Payload: [`ErrorCode`] (1 byte), then the refused frame's opcode
    /// (1 byte, 0 if it had none).
    pub const ERROR: Opcode = Opcode(0xF3);
    /// Client to relay, never forwarded: extends this membership with a fresher ticket for the
    /// same match, peer and seat (payload: the ticket text, ASCII). A membership ends when its
    /// ticket expires unless renewed this way; the relay answers a refused renewal with
    /// [`Opcode::ERROR`] ([`ErrorCode::TicketRefused`]) and keeps the old expiry.
    pub const RENEW: Opcode = Opcode(0xF4);
    /// Client (a player) to relay, and relay to spectators: one record of the match's
    /// spectator stream ([`StreamRecord`]: its confirmed inputs, and now and then the state
    /// they start from). Never forwarded to players. The relay forwards a record only if it
    /// continues the stream (see [`StreamRecord`]), so two players streaming the same match
    /// at once (the streaming player changes when it leaves) make one stream. Sender field:
    /// the streaming player's member number. A malformed record is refused with
    /// [`ErrorCode::Malformed`].
    pub const STREAM: Opcode = Opcode(0xF5);

    /// Whether the opcode is in the relay's reserved range `0xF0..=0xFF`.
    pub const fn is_reserved(self) -> bool {
        self.0 >= FIRST_RESERVED_OPCODE
    }

    /// Whether the opcode belongs to the game (`0x00..=0xEF`) and is forwarded verbatim.
    pub const fn is_game(self) -> bool {
        !self.is_reserved()
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is shorter than its header says: `needed` bytes, got `got`.
    #[error("frame too short: needed {needed} bytes, got {got}")]
    Incomplete {
        /// Bytes the header requires.
        needed: usize,
        /// Bytes received.
        got: usize,
    },
    /// The flags byte has bits this version does not define.
    #[error("unknown flag bits {0:#04x}")]
    UnknownFlags(u8),
    /// A relay event's payload does not have the layout its opcode requires.
    #[error("malformed {0} payload")]
    BadPayload(&'static str),
}

/// A decoded client-to-relay frame, borrowing its payload from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFrame<'a> {
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The one member to deliver to, or `None` for every other member of the match.
    pub target: Option<u16>,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> ClientFrame<'a> {
    /// A frame for every other member.
    pub fn broadcast(opcode: Opcode, payload: &'a [u8]) -> Self {
        ClientFrame {
            opcode,
            target: None,
            payload,
        }
    }

    /// A frame for one member.
    pub fn to_member(opcode: Opcode, target: u16, payload: &'a [u8]) -> Self {
        ClientFrame {
            opcode,
            target: Some(target),
            payload,
        }
    }

    /// Checks that `buf` holds a well-formed client frame and returns its header length
    /// (mini-redis style `check` before `parse`).
    pub fn check(buf: &[u8]) -> Result<usize, FrameError> {
        if buf.len() < CLIENT_HEADER_LEN {
            return Err(FrameError::Incomplete {
                needed: CLIENT_HEADER_LEN,
                got: buf.len(),
            });
        }
        let flags = buf[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(FrameError::UnknownFlags(flags));
        }
        let header = if flags & FLAG_TARGETED != 0 {
            CLIENT_TARGETED_HEADER_LEN
        } else {
            CLIENT_HEADER_LEN
        };
        if buf.len() < header {
            return Err(FrameError::Incomplete {
                needed: header,
                got: buf.len(),
            });
        }
        Ok(header)
    }

    /// Decodes one whole WebSocket binary message sent by a client.
    pub fn parse(buf: &'a [u8]) -> Result<Self, FrameError> {
        let header = Self::check(buf)?;
        let target =
            (header == CLIENT_TARGETED_HEADER_LEN).then(|| u16::from_be_bytes([buf[2], buf[3]]));
        Ok(ClientFrame {
            opcode: Opcode(buf[0]),
            target,
            payload: &buf[header..],
        })
    }

    /// The header bytes and how many of them are used (2 or 4).
    pub fn header(&self) -> ([u8; CLIENT_TARGETED_HEADER_LEN], usize) {
        match self.target {
            Some(t) => {
                let [hi, lo] = t.to_be_bytes();
                (
                    [self.opcode.0, FLAG_TARGETED, hi, lo],
                    CLIENT_TARGETED_HEADER_LEN,
                )
            }
            None => ([self.opcode.0, 0, 0, 0], CLIENT_HEADER_LEN),
        }
    }

    /// Length of the encoded frame, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.header().1 + self.payload.len()
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (header, len) = self.header();
        out.extend_from_slice(&header[..len]);
        out.extend_from_slice(self.payload);
    }

    /// The encoded frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// A decoded relay-to-client frame, borrowing its payload from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayFrame<'a> {
    /// The frame's opcode.
    pub opcode: Opcode,
    /// Whether the frame was addressed to the receiver alone.
    pub targeted: bool,
    /// Member number of the sender, stamped by the relay; [`RELAY_MEMBER`] for relay errors.
    pub sender: u16,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> RelayFrame<'a> {
    /// Checks that `buf` holds a well-formed relay frame.
    pub fn check(buf: &[u8]) -> Result<(), FrameError> {
        if buf.len() < RELAY_HEADER_LEN {
            return Err(FrameError::Incomplete {
                needed: RELAY_HEADER_LEN,
                got: buf.len(),
            });
        }
        if buf[1] & !KNOWN_FLAGS != 0 {
            return Err(FrameError::UnknownFlags(buf[1]));
        }
        Ok(())
    }

    /// Decodes one whole WebSocket binary message sent by the relay.
    pub fn parse(buf: &'a [u8]) -> Result<Self, FrameError> {
        Self::check(buf)?;
        Ok(RelayFrame {
            opcode: Opcode(buf[0]),
            targeted: buf[1] & FLAG_TARGETED != 0,
            sender: u16::from_be_bytes([buf[2], buf[3]]),
            payload: &buf[RELAY_HEADER_LEN..],
        })
    }

    /// The header bytes.
    pub fn header(&self) -> [u8; RELAY_HEADER_LEN] {
        relay_header(self.opcode, self.targeted, self.sender)
    }

    /// Length of the encoded frame, in bytes.
    pub fn encoded_len(&self) -> usize {
        RELAY_HEADER_LEN + self.payload.len()
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header());
        out.extend_from_slice(self.payload);
    }

    /// The encoded frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Interprets a relay event ([`Opcode::WELCOME`], [`Opcode::JOIN`], [`Opcode::LEAVE`],
    /// [`Opcode::ERROR`]); `Ok(None)` for any other opcode.
    pub fn event(&self) -> Result<Option<RelayEvent>, FrameError> {
        let event = match self.opcode {
            Opcode::WELCOME => {
                if !self.payload.len().is_multiple_of(MEMBER_ENTRY_LEN) {
                    return Err(FrameError::BadPayload("WELCOME"));
                }
                RelayEvent::Welcome {
                    you: self.sender,
                    members: self
                        .payload
                        .chunks_exact(MEMBER_ENTRY_LEN)
                        .map(|e| {
                            let (n, p) = e.split_at(2);
                            (u16::from_be_bytes([n[0], n[1]]), peer_from(p))
                        })
                        .collect(),
                }
            }
            Opcode::JOIN | Opcode::LEAVE => {
                if self.payload.len() != 16 {
                    return Err(FrameError::BadPayload(if self.opcode == Opcode::JOIN {
                        "JOIN"
                    } else {
                        "LEAVE"
                    }));
                }
                let peer = peer_from(self.payload);
                if self.opcode == Opcode::JOIN {
                    RelayEvent::Join {
                        member: self.sender,
                        peer,
                    }
                } else {
                    RelayEvent::Leave {
                        member: self.sender,
                        peer,
                    }
                }
            }
            Opcode::ERROR => match self.payload {
                [code, opcode, ..] => RelayEvent::Error {
                    code: ErrorCode::from_byte(*code),
                    opcode: Opcode(*opcode),
                },
                _ => return Err(FrameError::BadPayload("ERROR")),
            },
            _ => return Ok(None),
        };
        Ok(Some(event))
    }
}

fn peer_from(bytes: &[u8]) -> PeerId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[..16]);
    PeerId(uuid::Uuid::from_bytes(id))
}

/// The 4-byte relay-to-client header.
pub const fn relay_header(opcode: Opcode, targeted: bool, sender: u16) -> [u8; RELAY_HEADER_LEN] {
    let [hi, lo] = sender.to_be_bytes();
    [opcode.0, if targeted { FLAG_TARGETED } else { 0 }, hi, lo]
}

/// A relay event, decoded from a reserved-opcode [`RelayFrame`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// You are a member: your number, and the members present before you.
    Welcome {
        /// Your member number in this match.
        you: u16,
        /// Other members already present: (member number, peer ID).
        members: Vec<(u16, PeerId)>,
    },
    /// A member joined.
    Join {
        /// Its member number.
        member: u16,
        /// Its peer ID.
        peer: PeerId,
    },
    /// A member left.
    Leave {
        /// Its member number (not reused while the match lives, unless 65,535 numbers ran out).
        member: u16,
        /// Its peer ID.
        peer: PeerId,
    },
    /// One of your frames was refused.
    Error {
        /// Why.
        code: ErrorCode,
        /// The refused frame's opcode (0 if it was too short to have one).
        opcode: Opcode,
    },
}

impl RelayEvent {
    /// Encodes the event as a relay frame.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            RelayEvent::Welcome { you, members } => {
                let mut out =
                    Vec::with_capacity(RELAY_HEADER_LEN + members.len() * MEMBER_ENTRY_LEN);
                out.extend_from_slice(&relay_header(Opcode::WELCOME, false, *you));
                for (n, p) in members {
                    out.extend_from_slice(&n.to_be_bytes());
                    out.extend_from_slice(p.0.as_bytes());
                }
                out
            }
            RelayEvent::Join { member, peer } => presence(Opcode::JOIN, *member, *peer),
            RelayEvent::Leave { member, peer } => presence(Opcode::LEAVE, *member, *peer),
            RelayEvent::Error { code, opcode } => {
                let mut out = relay_header(Opcode::ERROR, false, RELAY_MEMBER).to_vec();
                out.push(code.to_byte());
                out.push(opcode.0);
                out
            }
        }
    }
}

fn presence(opcode: Opcode, member: u16, peer: PeerId) -> Vec<u8> {
    let mut out = Vec::with_capacity(RELAY_HEADER_LEN + 16);
    out.extend_from_slice(&relay_header(opcode, false, member));
    out.extend_from_slice(peer.0.as_bytes());
    out
}

/// Why the relay refused one frame ([`Opcode::ERROR`] payload byte 0). The connection stays
/// open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: the frame is shorter than its header or has unknown flag bits.
    Malformed,
    /// 2: the opcode is in the reserved range and clients may not send it.
    ReservedOpcode,
    /// 3: the target member is not in the match (or is the sender itself).
    UnknownTarget,
    /// 4: a [`Opcode::RENEW`] ticket was invalid, expired, for another match, peer or seat, or
    /// older than the one in use.
    TicketRefused,
    /// 5: a spectator sent something other than [`Opcode::RENEW`]: spectators only watch.
    NotAllowed,
    /// Any other value, from a later version.
    Other(u8),
}

impl ErrorCode {
    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::ReservedOpcode => 2,
            ErrorCode::UnknownTarget => 3,
            ErrorCode::TicketRefused => 4,
            ErrorCode::NotAllowed => 5,
            ErrorCode::Other(b) => b,
        }
    }

    /// Reads the wire byte.
    pub const fn from_byte(b: u8) -> Self {
        match b {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::ReservedOpcode,
            3 => ErrorCode::UnknownTarget,
            4 => ErrorCode::TicketRefused,
            5 => ErrorCode::NotAllowed,
            b => ErrorCode::Other(b),
        }
    }
}

/// Size of a [`StreamRecord`]'s header, in bytes.
pub const STREAM_HEADER_LEN: usize = 6;

/// What a [`StreamRecord`] carries (byte 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// 0: the confirmed inputs of `count` consecutive frames from `frame`.
    Inputs,
    /// 1: the match's state before `frame` (after frame `frame - 1`), from which a spectator
    /// starts; `count` is 0.
    Key,
}

/// One record of a match's spectator stream, the payload of an [`Opcode::STREAM`] frame:
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 1 | kind: 0 = [`StreamKind::Inputs`], 1 = [`StreamKind::Key`] |
/// | 1 | 4 | frame, big-endian `u32` |
/// | 5 | 1 | count: frames of inputs, `1..=255` (inputs); 0 (key) |
/// | 6 | rest | body, opaque to the relay (its layout is the engine's: `docs/PROTOCOL.md`) |
///
/// The relay follows the stream with one number, the next frame it expects (`next`, none
/// at first). An inputs record is forwarded iff `frame == next` (then `next = frame + count`);
/// others are dropped silently (a second streaming player's copy, or a gap). A key is
/// forwarded iff there is no `next` yet, or `frame > next`, or `frame == next` and the record
/// forwarded last is not already a key (a second streaming player's copy); then
/// `next = frame`. The relay keeps the last forwarded key and the inputs forwarded after it,
/// up to a bound (a key that was not forwarded replaces it only if it is later and starts
/// exactly where a kept inputs record starts): what a spectator arriving later receives
/// first, right after its WELCOME, so its stream always starts with a key (`docs/PROTOCOL.md`
/// §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRecord<'a> {
    /// What the record carries.
    pub kind: StreamKind,
    /// The first frame it concerns.
    pub frame: u32,
    /// Frames of inputs (0 for a key).
    pub count: u8,
    /// The rest of the record.
    pub body: &'a [u8],
}

impl<'a> StreamRecord<'a> {
    /// Decodes a record; the kind must be known and `count` must fit it (0 for a key, at
    /// least 1 for inputs).
    pub fn parse(buf: &'a [u8]) -> Result<Self, FrameError> {
        if buf.len() < STREAM_HEADER_LEN {
            return Err(FrameError::Incomplete {
                needed: STREAM_HEADER_LEN,
                got: buf.len(),
            });
        }
        let count = buf[5];
        let kind = match (buf[0], count) {
            (0, 1..) => StreamKind::Inputs,
            (1, 0) => StreamKind::Key,
            _ => return Err(FrameError::BadPayload("STREAM")),
        };
        Ok(StreamRecord {
            kind,
            frame: u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]),
            count,
            body: &buf[STREAM_HEADER_LEN..],
        })
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            StreamKind::Inputs => 0,
            StreamKind::Key => 1,
        });
        out.extend_from_slice(&self.frame.to_be_bytes());
        out.push(self.count);
        out.extend_from_slice(self.body);
    }

    /// The encoded record.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STREAM_HEADER_LEN + self.body.len());
        self.encode(&mut out);
        out
    }

    /// The frame after the last one it concerns (`frame + count`).
    pub fn end(&self) -> u64 {
        u64::from(self.frame) + u64::from(self.count)
    }
}

/// WebSocket close codes the relay uses (the close frame's reason text is informative only).
pub mod close {
    /// The relay is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (bad framing, unmasked frame, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message was received; only binary messages are allowed.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A message larger than the relay's maximum frame size was received.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The upgrade request had no `ticket` query parameter.
    pub const TICKET_MISSING: u16 = 4000;
    /// The ticket is malformed, has a bad signature or an unknown version.
    pub const TICKET_INVALID: u16 = 4001;
    /// The ticket has expired: at connect, or later, when the membership it admitted reached
    /// the ticket's expiry without a [`super::Opcode::RENEW`].
    pub const TICKET_EXPIRED: u16 = 4002;
    /// The match already has the maximum number of members (the ticket's player limit, or the
    /// relay's own cap if lower).
    pub const MATCH_FULL: u16 = 4003;
    /// Another connection presented a later ticket for the same seat of the same match and
    /// took this one's place (a reconnect).
    pub const REPLACED: u16 = 4004;
    /// The seat is held by a live member whose ticket is as recent as this one or more: a
    /// replayed or older ticket never evicts anyone.
    pub const SEAT_TAKEN: u16 = 4005;
    /// The client sent more bytes per second than allowed.
    pub const BYTE_RATE_LIMITED: u16 = 4007;
    /// The client sent more frames per second than allowed (WebSocket pings and pongs count).
    pub const RATE_LIMITED: u16 = 4008;
    /// The client did not read fast enough: its outbound queue overflowed.
    pub const SLOW_READER: u16 = 4009;
    /// Nothing (not even a pong) was received within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4010;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_round_trip() {
        for f in [
            ClientFrame::broadcast(Opcode(0), b""),
            ClientFrame::broadcast(Opcode(0xEF), b"abc"),
            ClientFrame::to_member(Opcode(1), 0x1234, b"xyz"),
        ] {
            let wire = f.to_vec();
            assert_eq!(wire.len(), f.encoded_len());
            assert_eq!(ClientFrame::parse(&wire).unwrap(), f);
        }
        assert_eq!(
            ClientFrame::to_member(Opcode(9), 0x0102, b"p").to_vec(),
            [9, 1, 1, 2, b'p']
        );
    }

    #[test]
    fn relay_round_trip_and_events() {
        let peer = PeerId(uuid::Uuid::from_u128(42));
        for ev in [
            RelayEvent::Welcome {
                you: 2,
                members: vec![(0, peer), (1, PeerId(uuid::Uuid::from_u128(7)))],
            },
            RelayEvent::Welcome {
                you: 0,
                members: vec![],
            },
            RelayEvent::Join { member: 5, peer },
            RelayEvent::Leave { member: 5, peer },
            RelayEvent::Error {
                code: ErrorCode::UnknownTarget,
                opcode: Opcode(3),
            },
        ] {
            let wire = ev.to_vec();
            let f = RelayFrame::parse(&wire).unwrap();
            assert_eq!(f.event().unwrap(), Some(ev));
        }
        let f = RelayFrame {
            opcode: Opcode(4),
            targeted: true,
            sender: 258,
            payload: b"hi",
        };
        assert_eq!(f.to_vec(), [4, 1, 1, 2, b'h', b'i']);
        assert_eq!(RelayFrame::parse(&f.to_vec()).unwrap().event(), Ok(None));
    }

    #[test]
    fn short_and_bad_input_are_errors() {
        assert_eq!(
            ClientFrame::parse(&[]),
            Err(FrameError::Incomplete { needed: 2, got: 0 })
        );
        assert_eq!(
            ClientFrame::parse(&[1]),
            Err(FrameError::Incomplete { needed: 2, got: 1 })
        );
        assert_eq!(
            ClientFrame::parse(&[1, 1, 0]),
            Err(FrameError::Incomplete { needed: 4, got: 3 })
        );
        assert_eq!(
            ClientFrame::parse(&[1, 2]),
            Err(FrameError::UnknownFlags(2))
        );
        assert!(RelayFrame::parse(&[1, 0, 0]).is_err());
        assert!(RelayFrame::parse(&[1, 0x80, 0, 0]).is_err());
        let bad = |b: &[u8]| RelayFrame::parse(b).unwrap().event().is_err();
        assert!(bad(&[0xF0, 0, 0, 0, 1]));
        assert!(bad(&[0xF1, 0, 0, 0, 1, 2]));
        assert!(bad(&[0xF2, 0, 0, 0]));
        assert!(bad(&[0xF3, 0, 0xFF, 0xFF, 1]));
    }

    #[test]
    fn every_short_input_is_handled_without_panic() {
        // Exhaustive over all 1- and 2-byte messages and a sample of 3..=5-byte ones.
        for a in 0..=255u8 {
            let _ = ClientFrame::parse(&[a]);
            let _ = RelayFrame::parse(&[a]);
            for b in 0..=255u8 {
                let _ = ClientFrame::parse(&[a, b]);
                for tail in [&[][..], &[1], &[1, 2], &[1, 2, 3]] {
                    let mut v = vec![a, b];
                    v.extend_from_slice(tail);
                    let _ = ClientFrame::parse(&v);
                    if let Ok(f) = RelayFrame::parse(&v) {
                        let _ = f.event();
                    }
                }
            }
        }
    }

    #[test]
    fn stream_records_round_trip_and_refuse_nonsense() {
        for r in [
            StreamRecord {
                kind: StreamKind::Inputs,
                frame: 600,
                count: 3,
                body: b"abc",
            },
            StreamRecord {
                kind: StreamKind::Key,
                frame: u32::MAX,
                count: 0,
                body: b"",
            },
        ] {
            assert_eq!(StreamRecord::parse(&r.to_vec()), Ok(r));
        }
        assert_eq!(
            StreamRecord {
                kind: StreamKind::Inputs,
                frame: 0x0102_0304,
                count: 2,
                body: b"x"
            }
            .to_vec(),
            [0, 1, 2, 3, 4, 2, b'x']
        );
        assert!(StreamRecord::parse(&[0, 0, 0, 0, 1]).is_err());
        assert!(StreamRecord::parse(&[0, 0, 0, 0, 1, 0]).is_err()); // inputs of 0 frames
        assert!(StreamRecord::parse(&[1, 0, 0, 0, 1, 1]).is_err()); // a key with a count
        assert!(StreamRecord::parse(&[2, 0, 0, 0, 1, 0]).is_err()); // unknown kind
        assert_eq!(ErrorCode::from_byte(5), ErrorCode::NotAllowed);
    }

    #[test]
    fn reserved_range() {
        assert!(Opcode(0xEF).is_game());
        assert!(Opcode(0xF0).is_reserved());
        assert!(Opcode(0xFF).is_reserved());
        assert_eq!(ErrorCode::from_byte(200), ErrorCode::Other(200));
    }
}
