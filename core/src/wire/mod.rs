//! The bytes Ricochet puts on a peer-to-peer path.
//!
//! Every packet between two peers is one of:
//! - a **ggrs message**, in a compact encoding of ggrs's own serde form (see below), or
//! - a **control message** of Ricochet's own (desync checksum reports and forensics, match
//!   messages and their acknowledgements), which starts with the two bytes `00 00`. ggrs messages start with their two-byte session magic, which ggrs never
//!   sets to zero, so the two kinds never collide and no extra tag byte is spent.
//!
//! # The compact encoding
//! ggrs only exposes [`ggrs::Message`] through serde, so this module has a small serde data
//! format, closest to postcard, tuned to ggrs's messages:
//! `u16` is 2 bytes little-endian (the magic is random, so a varint would spend 3);
//! other unsigned integers are LEB128 varints; signed integers are zigzag LEB128; `bool` and
//! `u8` are one byte; enum variants are one byte (index); sequences, strings and byte strings are
//! a varint length then their items; structs and tuples are their fields in order; `Option` is
//! one byte (0 or 1) then the value.
//!
//! Decoding never panics: short, long or garbled input gives a [`WireError`], and lengths are
//! checked against the bytes actually present before anything is allocated.

pub mod socket;

pub use socket::{GgrsSocket, PacketSocket, SocketStats};

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::{ser, Deserialize, Serialize};

/// Largest packet accepted or produced, in bytes. Larger ones are dropped as malformed.
pub const MAX_PACKET: usize = 16 * 1024;

/// First two bytes of every control message.
pub const CONTROL_PREFIX: [u8; 2] = [0, 0];

const TAG_CHECKSUMS: u8 = 1;
const TAG_FORENSIC_CHECKSUMS: u8 = 2;
const TAG_STATE_CHUNK: u8 = 3;
const TAG_FORENSIC_DONE: u8 = 4;
const TAG_MESSAGE: u8 = 5;
const TAG_MESSAGE_ACK: u8 = 6;
/// A ggrs message of session epoch 1 or later (see [`put_epoch_header`]).
pub const TAG_EPOCH: u8 = 7;
const TAG_REJOIN: u8 = 8;
const TAG_REBASE: u8 = 9;
const TAG_SNAPSHOT: u8 = 10;
const TAG_SNAPSHOT_ACK: u8 = 11;

/// Largest game state a rejoin transfers ([`Control::Snapshot`]), in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes in one [`Control::Snapshot`] chunk.
pub const SNAPSHOT_CHUNK: usize = 1024;

/// Largest data of one match message ([`Control::Message`]), in bytes.
pub const MAX_MESSAGE_DATA: usize = 2048;

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The packet ended in the middle of a value.
    #[error("packet is cut short")]
    Truncated,
    /// Bytes were left over after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A varint ran past ten bytes or overflowed its type.
    #[error("malformed varint")]
    BadVarint,
    /// A value is outside what its type allows (bad bool, enum index, UTF-8, ...).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The packet is larger than [`MAX_PACKET`].
    #[error("packet of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// A control message with a tag this version does not know.
    #[error("unknown control message tag {0}")]
    UnknownControl(u8),
    /// The type cannot be represented in this format (a programming error, not bad input).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

impl ser::Error for WireError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WireError::Invalid(msg.to_string())
    }
}

impl de::Error for WireError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WireError::Invalid(msg.to_string())
    }
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// A message for the ggrs session.
    Ggrs(ggrs::Message),
    /// A message for Ricochet itself.
    Control(Control),
}

/// Ricochet's own peer-to-peer messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Checksums of confirmed frames `first_frame`, `first_frame + interval`, ... (one per
    /// entry), for desync detection.
    Checksums {
        /// Frame of the first checksum.
        first_frame: i32,
        /// Distance in frames between consecutive checksums (at least 1).
        interval: u32,
        /// The checksums.
        checksums: Vec<u64>,
    },
    /// Desync forensics: the checksum after every frame from `first_frame` on, re-simulated
    /// by the sender (see [`crate::session::forensics`]).
    ForensicChecksums {
        /// Frame of the first checksum.
        first_frame: i32,
        /// One checksum per frame.
        checksums: Vec<u64>,
    },
    /// Desync forensics: a chunk of the sender's encoded state after `frame`.
    StateChunk {
        /// The frame the state is after.
        frame: i32,
        /// The sender's checksum of that state.
        checksum: u64,
        /// Its encoding (0 JSON, 1 binary).
        format: u8,
        /// The whole state's length in bytes.
        total: u32,
        /// Where this chunk starts.
        offset: u32,
        /// The chunk.
        bytes: Vec<u8>,
    },
    /// Desync forensics: the sender has the receiver's states for the first differing
    /// `frame`.
    ForensicDone {
        /// That frame.
        frame: i32,
    },
    /// A match message: message `seq` of the sender's stream `stream` to the receiver (see
    /// [`crate::messages`]).
    Message {
        /// The sender's stream to this receiver: a random non-zero number, new with every
        /// sender (a new process or a new handle is a new stream).
        stream: u32,
        /// The message's number in its stream, counted from 0.
        seq: u32,
        /// The application's op code.
        op: u8,
        /// The application's data, at most [`MAX_MESSAGE_DATA`] bytes.
        data: Vec<u8>,
    },
    /// Acknowledges the match messages of the receiver's stream `stream`: every `seq` below
    /// `next` has arrived (`next` is the lowest not yet received).
    MessageAck {
        /// The stream acknowledged (the receiver of this ack sent it).
        stream: u32,
        /// The lowest `seq` of that stream not yet received.
        next: u32,
    },
    /// A player's new process asks to be seated again (see [`crate::session::rejoin`]);
    /// sent to every other player until a [`Control::Rebase`] answers it.
    Rejoin {
        /// Random, new with each rejoining session: the answer names it.
        nonce: u32,
    },
    /// The match moves to session `epoch` at `frame`: every player starts a new ggrs session
    /// there, from the confirmed state after frame `frame - 1`.
    Rebase {
        /// The new epoch (the current one plus one).
        epoch: u32,
        /// The first frame of the new epoch.
        frame: i32,
        /// Player handles absent from the new epoch (bit `h` for handle `h`): disconnected
        /// from its start.
        absent: u32,
        /// The nonce of the [`Control::Rejoin`] it answers.
        nonce: u32,
        /// Players in the new epoch: one more than before when the request came from a late
        /// joiner (its handle is the new one), the same for a rejoin.
        players: u8,
    },
    /// A chunk of the state a rejoining player starts epoch `epoch` from.
    Snapshot {
        /// The epoch.
        epoch: u32,
        /// The epoch's first frame (the state is the one before it).
        frame: i32,
        /// The game's checksum of that state.
        checksum: u64,
        /// Its encoding (0 JSON, 1 binary).
        format: u8,
        /// The whole state's length in bytes (at most [`MAX_SNAPSHOT_BYTES`]).
        total: u32,
        /// Where this chunk starts.
        offset: u32,
        /// The chunk (at most [`SNAPSHOT_CHUNK`] bytes).
        bytes: Vec<u8>,
    },
    /// The rejoining player has the first `next` bytes of epoch `epoch`'s snapshot.
    SnapshotAck {
        /// The epoch.
        epoch: u32,
        /// Bytes received without a gap from the start.
        next: u32,
    },
}

/// Writes the header of a ggrs message of session `epoch` (1 or later) into `out` (cleared
/// first): [`CONTROL_PREFIX`], [`TAG_EPOCH`], the epoch as a varint; the ggrs message's own
/// encoding follows. Epoch 0's messages go bare, as before epochs existed.
pub fn put_epoch_header(out: &mut Vec<u8>, epoch: u32) {
    out.clear();
    out.extend_from_slice(&CONTROL_PREFIX);
    out.push(TAG_EPOCH);
    put_varint(out, u128::from(epoch));
}

/// If `bytes` is a ggrs message of an epoch of 1 or later, that epoch and the length of its
/// header (the ggrs message follows); `Err` for a malformed header.
pub fn split_epoch(bytes: &[u8]) -> Option<Result<(u32, usize), WireError>> {
    let rest = bytes
        .strip_prefix(&CONTROL_PREFIX)?
        .strip_prefix(&[TAG_EPOCH])?;
    let mut d = Decoder { input: rest };
    Some(match d.uint::<u32>() {
        Ok(0) => Err(WireError::Invalid("epoch 0 is never wrapped".into())),
        Ok(epoch) => Ok((epoch, bytes.len() - d.input.len())),
        Err(e) => Err(e),
    })
}

/// The shape of ggrs 0.13's `Message` (its fields are private to ggrs, so Ricochet decodes
/// a packet into this mirror first to check it; the serde layout must match ggrs's exactly,
/// which `tests::mirror_matches_ggrs` checks).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    /// Session magic.
    pub magic: u16,
    /// The message body.
    pub body: BodyView,
}

/// The body of a [`MessageView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum BodyView {
    SyncRequest { random: u32 },
    SyncReply { random: u32 },
    Input(InputView),
    InputAck { ack_frame: i32 },
    QualityReport { frame_advantage: i16, ping: u128 },
    QualityReply { pong: u128 },
    ChecksumReport { checksum: u128, frame: i32 },
    KeepAlive,
}

/// An input message as ggrs sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputView {
    /// For each player: (disconnected, last frame received from them) as the sender sees it.
    pub peer_connect_status: Vec<(bool, i32)>,
    /// The sender is leaving.
    pub disconnect_requested: bool,
    /// Frame of the first input in `bytes`.
    pub start_frame: i32,
    /// Last of our frames the sender has received.
    pub ack_frame: i32,
    /// Delta-encoded inputs.
    pub bytes: Vec<u8>,
}

/// Decodes a ggrs message into its [`MessageView`] (for checks) without handing it to ggrs.
pub fn decode_view(bytes: &[u8]) -> Result<MessageView, WireError> {
    let mut d = Decoder { input: bytes };
    let view = MessageView::deserialize(&mut d)?;
    if !d.input.is_empty() {
        return Err(WireError::TrailingBytes(d.input.len()));
    }
    Ok(view)
}

/// Encodes a (possibly edited) [`MessageView`] into `out` (cleared first), in the same
/// layout as the ggrs message it mirrors.
pub fn encode_view(view: &MessageView, out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    view.serialize(&mut Encoder { out })
}

/// Encodes a ggrs message into `out` (cleared first).
pub fn encode_ggrs(msg: &ggrs::Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    msg.serialize(&mut Encoder { out })?;
    if out.len() > MAX_PACKET {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(())
}

/// Encodes a control message into `out` (cleared first).
pub fn encode_control(msg: &Control, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&CONTROL_PREFIX);
    match msg {
        Control::Checksums {
            first_frame,
            interval,
            checksums,
        } => {
            out.push(TAG_CHECKSUMS);
            put_varint(out, zigzag(*first_frame as i128));
            put_varint(out, *interval as u128);
            put_checksums(out, checksums);
        }
        Control::ForensicChecksums {
            first_frame,
            checksums,
        } => {
            out.push(TAG_FORENSIC_CHECKSUMS);
            put_varint(out, zigzag(*first_frame as i128));
            put_checksums(out, checksums);
        }
        Control::StateChunk {
            frame,
            checksum,
            format,
            total,
            offset,
            bytes,
        } => {
            out.push(TAG_STATE_CHUNK);
            put_chunk(out, *frame, *checksum, *format, *total, *offset, bytes);
        }
        Control::ForensicDone { frame } => {
            out.push(TAG_FORENSIC_DONE);
            put_varint(out, zigzag(*frame as i128));
        }
        Control::Message {
            stream,
            seq,
            op,
            data,
        } => {
            out.push(TAG_MESSAGE);
            put_varint(out, u128::from(*stream));
            put_varint(out, u128::from(*seq));
            out.push(*op);
            put_varint(out, data.len() as u128);
            out.extend_from_slice(data);
        }
        Control::MessageAck { stream, next } => {
            out.push(TAG_MESSAGE_ACK);
            put_varint(out, u128::from(*stream));
            put_varint(out, u128::from(*next));
        }
        Control::Rejoin { nonce } => {
            out.push(TAG_REJOIN);
            put_varint(out, u128::from(*nonce));
        }
        Control::Rebase {
            epoch,
            frame,
            absent,
            nonce,
            players,
        } => {
            out.push(TAG_REBASE);
            put_varint(out, u128::from(*epoch));
            put_varint(out, zigzag(*frame as i128));
            put_varint(out, u128::from(*absent));
            put_varint(out, u128::from(*nonce));
            out.push(*players);
        }
        Control::Snapshot {
            epoch,
            frame,
            checksum,
            format,
            total,
            offset,
            bytes,
        } => {
            out.push(TAG_SNAPSHOT);
            put_varint(out, u128::from(*epoch));
            put_chunk(out, *frame, *checksum, *format, *total, *offset, bytes);
        }
        Control::SnapshotAck { epoch, next } => {
            out.push(TAG_SNAPSHOT_ACK);
            put_varint(out, u128::from(*epoch));
            put_varint(out, u128::from(*next));
        }
    }
}

/// A chunk of an encoded game state ([`Control::StateChunk`], and [`Control::Snapshot`] after
/// its epoch): the frame (zigzag varint), the state's checksum (8 bytes little-endian), its
/// format (1 byte), its total length, this chunk's offset and length (varints), the bytes.
fn put_chunk(
    out: &mut Vec<u8>,
    frame: i32,
    checksum: u64,
    format: u8,
    total: u32,
    offset: u32,
    bytes: &[u8],
) {
    put_varint(out, zigzag(frame as i128));
    out.extend_from_slice(&checksum.to_le_bytes());
    out.push(format);
    put_varint(out, u128::from(total));
    put_varint(out, u128::from(offset));
    put_varint(out, bytes.len() as u128);
    out.extend_from_slice(bytes);
}

/// Whether `len` bytes at `offset` are a whole chunk of a `total`-byte state cut into
/// `chunk`-byte pieces: at a chunk boundary inside the state (offset 0 for an empty state),
/// as long as the state has bytes left there, up to `chunk`.
pub fn is_whole_chunk(offset: usize, len: usize, total: usize, chunk: usize) -> bool {
    offset.is_multiple_of(chunk) && offset < total.max(1) && len == chunk.min(total - offset)
}

/// A count, then each checksum as 8 bytes little-endian.
fn put_checksums(out: &mut Vec<u8>, checksums: &[u64]) {
    put_varint(out, checksums.len() as u128);
    for c in checksums {
        out.extend_from_slice(&c.to_le_bytes());
    }
}

/// Decodes one packet.
pub fn decode(bytes: &[u8]) -> Result<Packet, WireError> {
    if bytes.len() > MAX_PACKET {
        return Err(WireError::TooLarge(bytes.len()));
    }
    if bytes.len() >= 2 && bytes[..2] == CONTROL_PREFIX {
        return decode_control(&bytes[2..]).map(Packet::Control);
    }
    let mut d = Decoder { input: bytes };
    let msg = ggrs::Message::deserialize(&mut d)?;
    if !d.input.is_empty() {
        return Err(WireError::TrailingBytes(d.input.len()));
    }
    Ok(Packet::Ggrs(msg))
}

fn decode_control(bytes: &[u8]) -> Result<Control, WireError> {
    let mut d = Decoder { input: bytes };
    let tag = d.take(1)?[0];
    let msg = match tag {
        TAG_CHECKSUMS => {
            let first_frame = d.frame()?;
            let interval = u32::try_from(d.varint()?).map_err(|_| WireError::BadVarint)?;
            if interval == 0 {
                return Err(WireError::Invalid("checksum interval 0".into()));
            }
            Control::Checksums {
                first_frame,
                interval,
                checksums: d.checksums()?,
            }
        }
        TAG_FORENSIC_CHECKSUMS => Control::ForensicChecksums {
            first_frame: d.frame()?,
            checksums: d.checksums()?,
        },
        TAG_STATE_CHUNK => {
            let (frame, checksum, format, total, offset, bytes) = d.chunk()?;
            Control::StateChunk {
                frame,
                checksum,
                format,
                total,
                offset,
                bytes,
            }
        }
        TAG_FORENSIC_DONE => Control::ForensicDone { frame: d.frame()? },
        TAG_MESSAGE => {
            let stream = d.stream()?;
            let seq = d.uint()?;
            let op = d.take(1)?[0];
            let len: usize = d.uint()?;
            if len > MAX_MESSAGE_DATA {
                return Err(WireError::Invalid(format!(
                    "match message of {len} bytes (at most {MAX_MESSAGE_DATA})"
                )));
            }
            let data = d.take(len)?.to_vec();
            Control::Message {
                stream,
                seq,
                op,
                data,
            }
        }
        TAG_MESSAGE_ACK => Control::MessageAck {
            stream: d.stream()?,
            next: d.uint()?,
        },
        TAG_REJOIN => Control::Rejoin { nonce: d.uint()? },
        TAG_REBASE => {
            let (epoch, frame, absent, nonce) = (d.uint()?, d.frame()?, d.uint()?, d.uint()?);
            let players = d.take(1)?[0];
            if !(1..=crate::limits::MAX_PLAYERS).contains(&usize::from(players)) {
                return Err(WireError::Invalid(format!("{players} players")));
            }
            Control::Rebase {
                epoch,
                frame,
                absent,
                nonce,
                players,
            }
        }
        TAG_SNAPSHOT => {
            let epoch = d.uint()?;
            let (frame, checksum, format, total, offset, bytes) = d.chunk()?;
            let len = bytes.len();
            if total as usize > MAX_SNAPSHOT_BYTES || len > SNAPSHOT_CHUNK {
                return Err(WireError::Invalid(format!(
                    "snapshot of {total} bytes, chunk of {len} (at most {MAX_SNAPSHOT_BYTES} and {SNAPSHOT_CHUNK})"
                )));
            }
            if u64::from(offset) + len as u64 > u64::from(total) {
                return Err(WireError::Invalid("snapshot chunk past the end".into()));
            }
            Control::Snapshot {
                epoch,
                frame,
                checksum,
                format,
                total,
                offset,
                bytes,
            }
        }
        TAG_SNAPSHOT_ACK => Control::SnapshotAck {
            epoch: d.uint()?,
            next: d.uint()?,
        },
        other => return Err(WireError::UnknownControl(other)),
    };
    if !d.input.is_empty() {
        return Err(WireError::TrailingBytes(d.input.len()));
    }
    Ok(msg)
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn len(&mut self, len: Option<usize>) -> Result<(), WireError> {
        let len = len.ok_or(WireError::Unsupported("sequence without a known length"))?;
        put_varint(self.out, len as u128);
        Ok(())
    }
    fn variant(&mut self, index: u32) -> Result<(), WireError> {
        let index =
            u8::try_from(index).map_err(|_| WireError::Unsupported("enum with >256 variants"))?;
        self.out.push(index);
        Ok(())
    }
}

impl ser::Serializer for &mut Encoder<'_> {
    type Ok = ();
    type Error = WireError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), WireError> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), WireError> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), WireError> {
        put_varint(self.out, zigzag(v.into()));
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), WireError> {
        put_varint(self.out, zigzag(v.into()));
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), WireError> {
        put_varint(self.out, zigzag(v.into()));
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), WireError> {
        put_varint(self.out, zigzag(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), WireError> {
        self.out.push(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), WireError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), WireError> {
        put_varint(self.out, v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), WireError> {
        put_varint(self.out, v.into());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), WireError> {
        put_varint(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), WireError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), WireError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), WireError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), WireError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), WireError> {
        put_varint(self.out, v.len() as u128);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), WireError> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), WireError> {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), WireError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), WireError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), WireError> {
        self.variant(index)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WireError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), WireError> {
        self.variant(index)?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, WireError> {
        self.len(len)?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, WireError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, WireError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, WireError> {
        self.variant(index)?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, WireError> {
        self.len(len)?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, WireError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, WireError> {
        self.variant(index)?;
        Ok(self)
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = WireError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WireError> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), WireError> {
                Ok(())
            }
        }
    )*};
}
compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = WireError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), WireError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WireError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), WireError> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = WireError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WireError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), WireError> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = WireError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WireError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), WireError> {
        Ok(())
    }
}

struct Decoder<'de> {
    input: &'de [u8],
}

impl<'de> Decoder<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], WireError> {
        if self.input.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn varint(&mut self) -> Result<u128, WireError> {
        let mut value: u128 = 0;
        for i in 0..19 {
            let byte = self.byte()?;
            let bits = u128::from(byte & 0x7f);
            let shift = 7 * i;
            if shift >= 128 || (shift > 121 && bits >> (128 - shift) != 0) {
                return Err(WireError::BadVarint);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint)
    }
    fn uint<T: TryFrom<u128>>(&mut self) -> Result<T, WireError> {
        T::try_from(self.varint()?).map_err(|_| WireError::BadVarint)
    }
    fn sint<T: TryFrom<i128>>(&mut self) -> Result<T, WireError> {
        T::try_from(unzigzag(self.varint()?)).map_err(|_| WireError::BadVarint)
    }
    /// A length prefix for items of at least `min_item` bytes each, checked against the input.
    /// A zigzag varint frame number.
    fn frame(&mut self) -> Result<i32, WireError> {
        i32::try_from(unzigzag(self.varint()?)).map_err(|_| WireError::BadVarint)
    }

    /// A little-endian `u64`.
    fn u64_le(&mut self) -> Result<u64, WireError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    /// What [`put_chunk`] wrote: frame, checksum, format, total, offset, bytes.
    #[allow(clippy::type_complexity)]
    fn chunk(&mut self) -> Result<(i32, u64, u8, u32, u32, Vec<u8>), WireError> {
        let frame = self.frame()?;
        let checksum = self.u64_le()?;
        let format = self.take(1)?[0];
        let total = self.uint()?;
        let offset = self.uint()?;
        let len = self.len_prefix(1)?;
        Ok((
            frame,
            checksum,
            format,
            total,
            offset,
            self.take(len)?.to_vec(),
        ))
    }

    /// A match message stream: a non-zero `u32` varint.
    fn stream(&mut self) -> Result<u32, WireError> {
        match self.uint()? {
            0 => Err(WireError::Invalid("match message stream 0".into())),
            stream => Ok(stream),
        }
    }

    /// What [`put_checksums`] wrote.
    fn checksums(&mut self) -> Result<Vec<u64>, WireError> {
        let count = self.len_prefix(8)?;
        (0..count).map(|_| self.u64_le()).collect()
    }

    fn len_prefix(&mut self, min_item: usize) -> Result<usize, WireError> {
        let len: usize = self.uint()?;
        if len.saturating_mul(min_item.max(1)) > self.input.len() && min_item > 0 {
            return Err(WireError::Truncated);
        }
        Ok(len)
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = WireError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WireError> {
        Err(WireError::Unsupported("self-describing deserialization"))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            b => Err(WireError::Invalid(format!("bool byte {b}"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_i8(self.byte()? as i8)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_i16(self.sint()?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_i32(self.sint()?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_i64(self.sint()?)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_i128(self.sint()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let b = self.take(2)?;
        v.visit_u16(u16::from_le_bytes([b[0], b[1]]))
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_u32(self.uint()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_u64(self.uint()?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_u128(self.varint()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        v.visit_f64(f64::from_le_bytes(b))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        self.deserialize_str(v)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let len = self.len_prefix(1)?;
        let s =
            std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Invalid("UTF-8".into()))?;
        v.visit_borrowed_str(s)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let len = self.len_prefix(1)?;
        v.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        self.deserialize_bytes(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => v.visit_some(self),
            b => Err(WireError::Invalid(format!("option byte {b}"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        // Every item takes at least one byte in this format except units, which ggrs never
        // sends in sequences, so a length larger than what is left is malformed.
        let len = self.len_prefix(1)?;
        v.visit_seq(Items { d: self, left: len })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, WireError> {
        v.visit_seq(Items { d: self, left: len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_seq(Items { d: self, left: len })
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WireError> {
        let len = self.len_prefix(2)?;
        v.visit_map(Items { d: self, left: len })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_seq(Items {
            d: self,
            left: fields.len(),
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WireError> {
        Err(WireError::Unsupported("identifiers"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WireError> {
        Err(WireError::Unsupported("ignored values"))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Items<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = WireError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WireError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = WireError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WireError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WireError> {
        seed.deserialize(&mut *self.d)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = WireError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), WireError> {
        let index = u32::from(self.byte()?);
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = WireError;
    fn unit_variant(self) -> Result<(), WireError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, WireError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, WireError> {
        v.visit_seq(Items { d: self, left: len })
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WireError> {
        v.visit_seq(Items {
            d: self,
            left: fields.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_and_zigzag_round_trip() {
        for v in [
            0i128,
            1,
            -1,
            63,
            -64,
            64,
            i32::MAX as i128,
            i32::MIN as i128,
            i128::MAX,
            i128::MIN,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            let mut d = Decoder { input: &out };
            assert_eq!(unzigzag(d.varint().unwrap()), v);
            assert!(d.input.is_empty());
        }
    }

    #[test]
    fn control_round_trip_and_errors() {
        let msg = Control::Checksums {
            first_frame: 120,
            interval: 10,
            checksums: vec![1, u64::MAX, 3],
        };
        let mut out = Vec::new();
        encode_control(&msg, &mut out);
        assert_eq!(decode(&out).unwrap(), Packet::Control(msg));
        for msg in [
            Control::ForensicChecksums {
                first_frame: 730,
                checksums: vec![1, u64::MAX, 3],
            },
            Control::StateChunk {
                frame: -1,
                checksum: 42,
                format: 1,
                total: 5000,
                offset: 1024,
                bytes: vec![7; 1024],
            },
            Control::ForensicDone { frame: 733 },
            Control::Message {
                stream: u32::MAX,
                seq: 1_000_000,
                op: 255,
                data: vec![9; MAX_MESSAGE_DATA],
            },
            Control::Message {
                stream: 1,
                seq: 0,
                op: 0,
                data: Vec::new(),
            },
            Control::MessageAck {
                stream: 0x0102_0304,
                next: u32::MAX,
            },
            Control::Rejoin { nonce: u32::MAX },
            Control::Rebase {
                epoch: 1,
                frame: 1116,
                absent: 0b1010,
                nonce: 7,
                players: 4,
            },
            Control::Snapshot {
                epoch: 3,
                frame: 700,
                checksum: u64::MAX,
                format: 0,
                total: 1500,
                offset: 1024,
                bytes: vec![5; 476],
            },
            Control::SnapshotAck {
                epoch: 3,
                next: 1024,
            },
        ] {
            encode_control(&msg, &mut out);
            assert_eq!(decode(&out).unwrap(), Packet::Control(msg.clone()));
            // Every truncation is an error, never a panic.
            for cut in 0..out.len() {
                assert!(decode(&out[..cut]).is_err(), "{msg:?} cut at {cut}");
            }
        }
        for cut in 2..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        out.push(0);
        assert_eq!(decode(&out), Err(WireError::TrailingBytes(1)));
        assert_eq!(decode(&[0, 0, 77]), Err(WireError::UnknownControl(77)));
        // A huge claimed count with no bytes behind it is refused before allocating.
        assert_eq!(
            decode(&[0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn epoch_headers_and_snapshot_limits() {
        let mut out = Vec::new();
        put_epoch_header(&mut out, 300);
        assert_eq!(out, [0, 0, TAG_EPOCH, 0xac, 0x02]);
        out.extend_from_slice(&[0x34, 0x12, 7]);
        assert_eq!(split_epoch(&out), Some(Ok((300, 5))));
        assert_eq!(split_epoch(&[0x34, 0x12, 7]), None);
        assert!(matches!(split_epoch(&[0, 0, TAG_EPOCH, 0]), Some(Err(_))));
        assert!(matches!(
            split_epoch(&[0, 0, TAG_EPOCH, 0x80]),
            Some(Err(_))
        ));
        // A chunk past the end, or a state over the limit, is refused.
        for (total, offset, len) in [(100u32, 90u32, 20usize), (u32::MAX, 0, 10)] {
            encode_control(
                &Control::Snapshot {
                    epoch: 1,
                    frame: 1,
                    checksum: 0,
                    format: 0,
                    total,
                    offset,
                    bytes: vec![0; len],
                },
                &mut out,
            );
            assert!(decode(&out).is_err(), "{total} {offset} {len}");
        }
    }

    #[test]
    fn match_messages_as_documented() {
        // docs/PROTOCOL.md 3: the first message of stream 0x01020304, op 7, data "hi".
        let msg = Control::Message {
            stream: 0x0102_0304,
            seq: 0,
            op: 7,
            data: b"hi".to_vec(),
        };
        let mut out = Vec::new();
        encode_control(&msg, &mut out);
        let want = [
            0x00, 0x00, // control
            0x05, // tag: Message
            0x84, 0x86, 0x88, 0x08, // stream 0x01020304
            0x00, // seq 0
            0x07, // op 7
            0x02, b'h', b'i', // len 2, "hi"
        ];
        assert_eq!(out, want);
        assert_eq!(decode(&want), Ok(Packet::Control(msg)));
        // Behind the path header (sequence number 0, flags 0), as a relay-only client sends
        // its first packet to a member.
        let mut links = crate::link::Links::new(crate::link::PathConfig {
            mode: crate::link::PathMode::ForceRelay,
            ..Default::default()
        });
        let tx = links.send(web_time::Instant::now(), &1u16, &out);
        assert_eq!(tx.packet[..3], [0x00, 0x00, 0x00]);
        assert_eq!(tx.packet[3..], want);

        // Its acknowledgement: the receiver has every seq below 1.
        let ack = Control::MessageAck {
            stream: 0x0102_0304,
            next: 1,
        };
        encode_control(&ack, &mut out);
        assert_eq!(out, [0x00, 0x00, 0x06, 0x84, 0x86, 0x88, 0x08, 0x01]);
        assert_eq!(decode(&out), Ok(Packet::Control(ack)));
    }

    #[test]
    fn match_messages_out_of_bounds_are_refused() {
        // Stream 0 is never a stream.
        assert!(matches!(
            decode(&[0, 0, 5, 0, 0, 7, 0]),
            Err(WireError::Invalid(_))
        ));
        assert!(matches!(
            decode(&[0, 0, 6, 0, 0]),
            Err(WireError::Invalid(_))
        ));
        // A stream or seq beyond u32.
        assert_eq!(
            decode(&[0, 0, 6, 0x80, 0x80, 0x80, 0x80, 0x10, 0]),
            Err(WireError::BadVarint)
        );
        assert_eq!(
            decode(&[0, 0, 6, 1, 0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(WireError::BadVarint)
        );
        // Data over the limit, even when every byte is there.
        let mut big = vec![0, 0, 5, 1, 0, 7];
        put_varint(&mut big, (MAX_MESSAGE_DATA + 1) as u128);
        big.extend(std::iter::repeat_n(0, MAX_MESSAGE_DATA + 1));
        assert!(matches!(decode(&big), Err(WireError::Invalid(_))));
        // A huge claimed length is refused before anything is allocated, and a length with
        // too few bytes behind it is cut short.
        assert!(matches!(
            decode(&[0, 0, 5, 1, 0, 7, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(WireError::Invalid(_))
        ));
        assert_eq!(
            decode(&[0, 0, 5, 1, 0, 7, 3, 1, 2]),
            Err(WireError::Truncated)
        );
        // An ack with trailing bytes.
        assert_eq!(
            decode(&[0, 0, 6, 1, 0, 0]),
            Err(WireError::TrailingBytes(1))
        );
    }

    #[test]
    fn mirror_matches_ggrs() {
        // Capture real ggrs traffic of a short two-peer session and decode it both ways.
        use crate::sim::{LinkConditions, SimNetwork};
        use crate::wire::socket::PacketSocket;
        struct Tap(
            crate::sim::SimSocket,
            std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
        );
        impl PacketSocket<u16> for Tap {
            fn send_packet(&mut self, to: &u16, p: &[u8]) {
                self.1.lock().unwrap().push(p.to_vec());
                self.0.send_packet(to, p)
            }
            fn receive_packets(&mut self, out: &mut Vec<(u16, Vec<u8>)>) {
                self.0.receive_packets(out)
            }
        }
        #[derive(Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        struct In(u16);
        struct G(u64);
        impl crate::Game for G {
            type Input = In;
            type State = u64;
            fn advance(&mut self, i: &[(In, crate::InputStatus)]) {
                self.0 = self
                    .0
                    .wrapping_mul(31)
                    .wrapping_add(u64::from(i[0].0 .0) + u64::from(i[1].0 .0));
            }
            fn save(&self) -> u64 {
                self.0
            }
            fn load(&mut self, s: &u64) {
                self.0 = *s
            }
            fn checksum(&self) -> u64 {
                self.0
            }
        }
        let net = SimNetwork::new(1, LinkConditions::lan());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sessions: Vec<_> = (0..2u16)
            .map(|me| {
                crate::SessionBuilder::new()
                    .add_local_player(me as usize)
                    .unwrap()
                    .add_remote_player(1 - me as usize, 1 - me)
                    .unwrap()
                    .start_p2p::<G, _>(Tap(net.socket(me), log.clone()))
                    .unwrap()
            })
            .collect();
        let mut games = [G(0), G(0)];
        for f in 0..400u16 {
            for (me, (s, g)) in sessions.iter_mut().zip(&mut games).enumerate() {
                s.add_local_input(me, In(f * 7 + me as u16)).unwrap();
                s.advance(g).unwrap();
            }
            net.advance(std::time::Duration::from_millis(17));
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        let log = log.lock().unwrap();
        let mut kinds = std::collections::HashSet::new();
        for p in log.iter().filter(|p| p[..2] != CONTROL_PREFIX) {
            let view = decode_view(p).expect("mirror decodes every ggrs packet");
            kinds.insert(std::mem::discriminant(&view.body));
            let Packet::Ggrs(msg) = decode(p).unwrap() else {
                panic!()
            };
            let mut again = Vec::new();
            encode_ggrs(&msg, &mut again).unwrap();
            assert_eq!(&again, p);
        }
        assert!(kinds.len() >= 4, "saw {} message kinds", kinds.len());
    }

    #[test]
    fn documented_example_bytes() {
        // docs/PROTOCOL.md: an InputAck for frame 300 from a session with magic 0xBEEF.
        let view = MessageView {
            magic: 0xBEEF,
            body: BodyView::InputAck { ack_frame: 300 },
        };
        let mut out = Vec::new();
        encode_view(&view, &mut out).unwrap();
        assert_eq!(out, [0xEF, 0xBE, 0x03, 0xD8, 0x04]);
        let Packet::Ggrs(msg) = decode(&out).unwrap() else {
            panic!("not ggrs")
        };
        let mut again = Vec::new();
        encode_ggrs(&msg, &mut again).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                let _ = decode(&bytes);
            }
        }
        assert!(decode(&vec![1; MAX_PACKET + 1]).is_err());
    }
}
