//! Fuzz targets for every decoder that reads bytes from the network.
//!
//! Each target takes arbitrary bytes, decodes them the way the receiving side does and, where
//! the decode succeeds, re-encodes and checks round-trip and consistency invariants with
//! `assert!`: a finding is a panic (in a target, or in the code under test). Nothing here
//! catches panics; the drivers do, to report the input:
//!
//! - [`driver`]: a stable, dependency-free seeded generator (random bytes and mutations of valid
//!   encodings, [`seeds`]), run by `cargo test -p ricochet-fuzz` for a few seconds per target
//!   and by the `ricochet-fuzz` command for long runs;
//! - `fuzz_targets/*.rs`: one coverage-guided libFuzzer binary per target (feature `libfuzzer`,
//!   built by `scripts/fuzz` with the sanitizer-coverage flags, on stable Rust).
//!
//! | target | decoder | who receives it |
//! | --- | --- | --- |
//! | [`relay_client_frame`] | `relay::ClientFrame::check` / `parse` | the relay, from clients |
//! | [`relay_frame`] | `relay::RelayFrame::parse` / `event` | clients, from the relay |
//! | [`ticket`] | `Ticket::from_text(..).verify` / `verify_signature` | the relay (upgrade query, `RENEW`) |
//! | [`signaling_client_frame`] | `signaling::ClientFrame::from_json` | the signaling server |
//! | [`signaling_server_frame`] | `signaling::ServerFrame::from_json` | clients |
//! | [`signaling_meta`] | `signaling::parse_meta` / `check_meta` | the signaling server (`?meta=`, `set_meta`) |
//! | [`match_id`] | `MatchId::from_str` (and its serde form) | the signaling server (URL), clients |
//! | [`wire_packet`] | `wire::decode` / `decode_view` | peers (direct and relayed packets) |
//! | [`ggrs_guard`] | `GgrsSocket` receive path: decode, the message guard, ggrs's input decoder | peers |
//! | [`path_header`] | `path_socket::split_header`, `SequenceWindow`, `PeerPath` | peers |
//! | [`stun`] | `signaling::stun::respond` / `Responder::handle` | the STUN port |
//! | [`stun_limiter`] | `signaling::stun::ReplyLimiter` (sources and times from the input) | the STUN port |
//! | [`session_description`] | `signaller::usable_session_description` | peers (offers and answers relayed by signaling) |
//! | [`forensics`] | `session::forensics::Forensics` (desync forensics messages) | peers |
//! | [`match_messages`] | `messages::MessageStreams` (match messages and acks) | peers |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

pub mod driver;
pub mod seeds;

/// The secret the ticket target signs and verifies with.
pub const SECRET: &[u8] = b"fuzzing secret shared with the relay";

/// A fuzz target: decodes `data` and checks invariants, panicking on a finding.
pub type Target = fn(&[u8]);

/// Every target, by name (the libFuzzer binaries and `scripts/fuzz` use the same names).
pub const TARGETS: &[(&str, Target)] = &[
    ("relay_client_frame", relay_client_frame),
    ("relay_frame", relay_frame),
    ("ticket", ticket),
    ("signaling_client_frame", signaling_client_frame),
    ("signaling_server_frame", signaling_server_frame),
    ("signaling_meta", signaling_meta),
    ("match_id", match_id),
    ("wire_packet", wire_packet),
    ("ggrs_guard", ggrs_guard),
    ("path_header", path_header),
    ("stun", stun),
    ("stun_limiter", stun_limiter),
    ("session_description", session_description),
    ("forensics", forensics),
    ("match_messages", match_messages),
    ("spectator_stream", spectator_stream),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Reads structured values off the front of fuzz input; past the end, everything is zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }
}

// ---------------------------------------------------------------------------------------------
// Relay frames (protocol/src/relay.rs).

/// `relay::ClientFrame::check` and `parse`: they agree, and a parsed frame re-encodes to exactly
/// the input (the format has one encoding per frame).
pub fn relay_client_frame(data: &[u8]) {
    use ricochet_protocol::relay::{ClientFrame, FLAG_TARGETED};
    match ClientFrame::check(data) {
        Ok(header) => {
            let frame = ClientFrame::parse(data).expect("check accepted what parse refuses");
            assert_eq!(frame.header().1, header);
            assert_eq!(frame.target.is_some(), data[1] & FLAG_TARGETED != 0);
            assert_eq!(frame.opcode.0, data[0]);
            assert_eq!(frame.payload, &data[header..]);
            assert_eq!(frame.encoded_len(), data.len());
            assert_eq!(frame.to_vec(), data, "re-encoding differs");
        }
        Err(e) => assert_eq!(ClientFrame::parse(data), Err(e)),
    }
}

/// `relay::RelayFrame::parse` and `event`: a parsed frame re-encodes to the input; an event
/// re-encodes to a frame that decodes to the same event (and to the input itself when the
/// input is in the canonical form the relay sends).
pub fn relay_frame(data: &[u8]) {
    use ricochet_protocol::relay::{Opcode, RelayFrame, RELAY_MEMBER};
    let Ok(frame) = RelayFrame::parse(data) else {
        assert!(RelayFrame::check(data).is_err());
        return;
    };
    RelayFrame::check(data).expect("parse accepted what check refuses");
    assert_eq!(frame.to_vec(), data, "re-encoding differs");
    let is_event = matches!(
        frame.opcode,
        Opcode::WELCOME | Opcode::JOIN | Opcode::LEAVE | Opcode::ERROR
    );
    match frame.event() {
        Ok(Some(event)) => {
            assert!(is_event);
            let wire = event.to_vec();
            let again = RelayFrame::parse(&wire).expect("an encoded event does not parse");
            assert_eq!(again.event(), Ok(Some(event.clone())));
            let canonical = data[1] == 0
                && (frame.opcode != Opcode::ERROR
                    || (frame.sender == RELAY_MEMBER && frame.payload.len() == 2));
            if canonical {
                assert_eq!(wire, data, "canonical event re-encodes differently");
            }
        }
        Ok(None) => assert!(!is_event),
        Err(_) => assert!(is_event),
    }
}

// ---------------------------------------------------------------------------------------------
// Tickets (protocol/src/ticket.rs).

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(SECRET).expect("HMAC takes any key");
    mac.update(body);
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Ticket verification. Byte 0 chooses the mode: even, the rest is ticket text as received
/// (mostly refused at the signature, unless it is a mutation of a valid ticket that kept it);
/// odd, the rest is the signed part of a ticket, which the target signs with [`SECRET`] so that
/// the fields after the signature check are reached. Either way an accepted ticket re-issues
/// to exactly the same text, its claims are consistent, and a correctly signed ticket is never
/// refused for its signature.
pub fn ticket(data: &[u8]) {
    use ricochet_protocol::ticket::{Ticket, TicketError, MAX_MATCH_KEY_LEN, MAX_TICKET_CHARS};
    let mut r = Reader::new(data);
    let mode = r.u8();
    let now = r.u64();
    let (text, signed_by_us) = if mode & 1 == 0 {
        (String::from_utf8_lossy(r.rest()).into_owned(), false)
    } else {
        (sign(r.rest()), true)
    };
    let ticket = Ticket::from_text(text.clone());
    let result = ticket.verify_signature(SECRET);
    match &result {
        Ok(claims) => {
            assert!(text.len() <= MAX_TICKET_CHARS);
            assert!(!claims.match_key.is_empty() && claims.match_key.len() <= MAX_MATCH_KEY_LEN);
            // A player's seat is below the player limit; a spectator's is SPECTATOR_SEAT.
            assert!(claims.seat < claims.max_players || claims.is_spectator());
            assert!(claims.max_players >= 1);
            let again = Ticket::issue(SECRET, claims).expect("accepted claims cannot be issued");
            assert_eq!(again.as_str(), text, "re-issued ticket differs");
            match ticket.verify(SECRET, now) {
                Ok(c) => {
                    assert_eq!(&c, claims);
                    assert!(now <= claims.expires_at);
                }
                Err(TicketError::Expired { expires_at, now: n }) => {
                    assert_eq!((expires_at, n), (claims.expires_at, now));
                    assert!(now > expires_at);
                }
                Err(e) => panic!("verify_signature accepted, verify refused: {e}"),
            }
        }
        Err(TicketError::BadSignature) => {
            assert!(
                !signed_by_us,
                "a correctly signed ticket failed the signature check"
            )
        }
        Err(TicketError::WeakSecret) => panic!("the secret is long enough"),
        Err(_) => assert!(ticket.verify(SECRET, now).is_err()),
    }
    // Verifying with another secret accepts nothing.
    assert!(ticket
        .verify_signature(b"another secret, also 16+ bytes")
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Signaling messages (protocol/src/signaling.rs).

/// `signaling::ClientFrame::from_json`: an accepted frame re-encodes to JSON that decodes to
/// the same frame, and re-encoding is stable.
pub fn signaling_client_frame(data: &[u8]) {
    use ricochet_protocol::signaling::ClientFrame;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ClientFrame::from_json(text) {
        let json = frame.to_json();
        let again = ClientFrame::from_json(&json).expect("re-encoded frame does not decode");
        assert_eq!(again, frame);
        assert_eq!(again.to_json(), json, "encoding is not stable");
    }
}

/// `signaling::ServerFrame::from_json`, as [`signaling_client_frame`].
pub fn signaling_server_frame(data: &[u8]) {
    use ricochet_protocol::signaling::ServerFrame;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ServerFrame::from_json(text) {
        let json = frame.to_json();
        let again = ServerFrame::from_json(&json).expect("re-encoded frame does not decode");
        assert_eq!(again, frame);
        assert_eq!(again.to_json(), json, "encoding is not stable");
    }
}

/// `signaling::parse_meta` and `check_meta`, with the limit from the first two bytes: accepted
/// metadata is an object whose compact encoding fits the limit and parses back to itself; both
/// functions agree with what they document.
pub fn signaling_meta(data: &[u8]) {
    use ricochet_protocol::signaling::{check_meta, parse_meta, MetaError};
    let mut r = Reader::new(data);
    let max = usize::from(r.u16());
    let Ok(text) = std::str::from_utf8(r.rest()) else {
        return;
    };
    match parse_meta(text, max) {
        Ok(value) => {
            assert!(value.is_object());
            assert!(text.len() <= max);
            let compact = serde_json::to_string(&value).expect("a Value always encodes");
            assert!(compact.len() <= max);
            assert_eq!(check_meta(&value, max), Ok(()));
            assert_eq!(parse_meta(&compact, max), Ok(value));
        }
        Err(MetaError::TooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert!(len > max);
        }
        Err(_) => {}
    }
    // check_meta on whatever JSON the text is: exactly "an object of at most max bytes".
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let compact_len = serde_json::to_string(&value).map_or(usize::MAX, |s| s.len());
        let ok = value.is_object() && compact_len <= max;
        assert_eq!(check_meta(&value, max).is_ok(), ok);
    }
}

/// `MatchId::from_str` and its serde form: accepted text is 32 hex digits, displays as their
/// lowercase form and parses back; refusals say why correctly.
pub fn match_id(data: &[u8]) {
    use ricochet_protocol::signaling::{MatchId, MatchIdError};
    let text = String::from_utf8_lossy(data);
    match text.parse::<MatchId>() {
        Ok(id) => {
            assert_eq!(text.len(), MatchId::TEXT_LEN);
            assert_eq!(id.to_string(), text.to_ascii_lowercase());
            assert_eq!(id.to_string().parse::<MatchId>(), Ok(id));
            let json = serde_json::to_string(&id).expect("a MatchId always encodes");
            assert_eq!(serde_json::from_str::<MatchId>(&json).ok(), Some(id));
        }
        Err(MatchIdError::Length(n)) => {
            assert_eq!(n, text.len());
            assert_ne!(n, MatchId::TEXT_LEN);
        }
        Err(MatchIdError::NotHex) => {
            assert_eq!(text.len(), MatchId::TEXT_LEN);
            assert!(!text.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(e) => panic!("undocumented error {e:?}"),
    }
    // The serde form of the same text (a JSON string) agrees with FromStr.
    let json = serde_json::to_string(&*text).expect("a str always encodes");
    assert_eq!(
        serde_json::from_str::<MatchId>(&json).ok(),
        text.parse::<MatchId>().ok()
    );
}

// ---------------------------------------------------------------------------------------------
// The peer-to-peer wire format (core/src/wire.rs) and the message guard (core/src/transport.rs).

/// `wire::decode` and the guard's mirror `wire::decode_view`: they accept the same ggrs
/// messages (the guard must check exactly what ggrs will act on), a decoded message re-encodes
/// (no longer than the input: only overlong varints can be shortened) to bytes that decode to
/// the same message, and the mirror re-encodes to the same bytes as ggrs's own type.
pub fn wire_packet(data: &[u8]) {
    use ricochet::wire::{self, Packet, MAX_PACKET};
    let decoded = wire::decode(data);
    let control = data.len() >= 2 && data[..2] == wire::CONTROL_PREFIX;
    if data.len() <= MAX_PACKET && !control {
        assert_eq!(
            wire::decode_view(data).is_ok(),
            matches!(decoded, Ok(Packet::Ggrs(_))),
            "the guard's mirror and ggrs's type disagree on {data:02x?}"
        );
    }
    match decoded {
        Ok(Packet::Ggrs(msg)) => {
            let mut out = Vec::new();
            wire::encode_ggrs(&msg, &mut out).expect("a decoded message does not encode");
            assert!(out.len() <= data.len());
            assert_eq!(wire::decode(&out), Ok(Packet::Ggrs(msg)));
            let view = wire::decode_view(data).expect("mirror refused a ggrs message");
            let mut mirrored = Vec::new();
            wire::encode_view(&view, &mut mirrored).expect("a decoded view does not encode");
            assert_eq!(mirrored, out, "mirror and ggrs encode differently");
        }
        Ok(Packet::Control(msg)) => {
            assert!(control);
            let mut out = Vec::new();
            wire::encode_control(&msg, &mut out);
            assert!(out.len() <= data.len());
            assert_eq!(wire::decode(&out), Ok(Packet::Control(msg)));
        }
        Err(_) => {}
    }
}

/// A [`ricochet::PacketSocket`] that delivers what the target queues and drops what it sends.
#[derive(Default)]
struct Feed {
    queue: Vec<(u16, Vec<u8>)>,
}

impl ricochet::PacketSocket<u16> for Feed {
    fn send_packet(&mut self, _: &u16, _: &[u8]) {}
    fn receive_packets(&mut self, out: &mut Vec<(u16, Vec<u8>)>) {
        out.append(&mut self.queue);
    }
}

/// Walks what ggrs's input decoder (`bitfield_rle::decode`, then its delta decoding of
/// `[u16 LE length][bytes]` entries) makes of an input batch; `None` where ggrs would refuse it.
fn ggrs_inputs(bytes: &[u8]) -> Option<(usize, usize)> {
    let decoded = bitfield_rle::decode(bytes).ok()?;
    let mut pos = 0;
    let mut count = 0;
    while pos < decoded.len() {
        let len = usize::from(u16::from_le_bytes([
            *decoded.get(pos)?,
            *decoded.get(pos + 1)?,
        ]));
        pos += 2;
        if pos + len > decoded.len() {
            return None;
        }
        pos += len;
        count += 1;
    }
    Some((count, decoded.len()))
}

/// The receive path of [`ricochet::GgrsSocket`]: a roster, bounds and quality-report pings from
/// the input, then batches of packets from a few addresses. Every message handed on to ggrs is
/// checked against the guard's documented rules, independently of the guard, and its inputs
/// are run through ggrs's own decoder (which panics or allocates without bound on some batches:
/// the guard must never let one through); the counters account for every packet.
pub fn ggrs_guard(data: &[u8]) {
    ggrs_guard_run(data);
}

/// [`ggrs_guard`], returning how many `Input` messages the guard let through and how many
/// packets it rejected (so tests can check the seeds reach both sides of the guard).
fn ggrs_guard_run(data: &[u8]) -> (usize, u64) {
    use ggrs::NonBlockingSocket as _;
    use ricochet::wire::socket::{
        Bounds, GgrsSocket, MAX_DECODED_INPUTS, MAX_FRAMES_AHEAD, MAX_INPUT_LEAD,
    };
    use ricochet::wire::{self, BodyView, MessageView, Packet};

    let mut r = Reader::new(data);
    let players = usize::from(r.u8() % 4) + 1;
    // Player handle -> address: 0 is us (local), the others are peers 1..=3 or local.
    let roster: Vec<Option<u16>> = (0..players)
        .map(|p| {
            let a = u16::from(r.u8() % 4);
            (p > 0 && a > 0).then_some(a)
        })
        .collect();
    let with_roster = r.u8() & 1 == 1;
    let mut socket = GgrsSocket::new(Feed::default());
    if with_roster {
        socket.set_roster(roster.clone());
    }
    // Pings we sent (their echoes are the only believable quality replies).
    let mut pings = Vec::new();
    for _ in 0..r.u8() % 3 {
        let ping = u128::from(r.u64());
        let mut bytes = Vec::new();
        let view = MessageView {
            magic: 1,
            body: BodyView::QualityReport {
                frame_advantage: 0,
                ping,
            },
        };
        wire::encode_view(&view, &mut bytes).expect("a view encodes");
        let Ok(Packet::Ggrs(msg)) = wire::decode(&bytes) else {
            panic!("an encoded quality report does not decode");
        };
        socket.send_to(&msg, &1);
        pings.push(ping);
    }
    let mut bounds: Option<Bounds> = None;
    let mut fed = 0u64;
    let mut inputs_passed = 0;
    while !r.is_empty() {
        if r.u8() & 1 == 1 {
            let current_frame = (r.u32() % 4096) as i32;
            let b = Bounds {
                current_frame,
                confirmed_frame: current_frame - i32::from(r.u8() % 16) - 1,
                max_prediction: i32::from(r.u8() % 16),
                players,
            };
            socket.set_bounds(b);
            bounds = Some(b);
        }
        for _ in 0..=r.u8() % 4 {
            let from = u16::from(r.u8() % 4);
            let len = usize::from(r.u16() % 512);
            let packet = r.bytes(len).to_vec();
            socket.with_socket(|s| s.queue.push((from, packet)));
            fed += 1;
        }
        let before = socket.stats();
        let messages = socket.receive_all_messages();
        let after = socket.stats();
        assert_eq!(
            (after.packets_received - before.packets_received)
                - (after.control_packets_received - before.control_packets_received),
            messages.len() as u64
        );
        for (from, msg) in messages {
            let mut bytes = Vec::new();
            wire::encode_ggrs(&msg, &mut bytes).expect("a passed message does not encode");
            let view = wire::decode_view(&bytes).expect("a passed message has no view");
            let limit = bounds.map(|b| b.current_frame.saturating_add(MAX_FRAMES_AHEAD));
            match &view.body {
                BodyView::ChecksumReport { .. } => panic!("a ggrs checksum report passed"),
                BodyView::QualityReply { pong } => {
                    assert!(pings.contains(pong), "an unsent ping's echo passed")
                }
                BodyView::QualityReport {
                    frame_advantage, ..
                } => assert!(i32::from(*frame_advantage).abs() <= MAX_FRAMES_AHEAD),
                BodyView::InputAck { ack_frame } => {
                    if let Some(limit) = limit {
                        assert!((-1..=limit).contains(ack_frame), "ack {ack_frame} passed");
                    }
                }
                BodyView::Input(input) => {
                    inputs_passed += 1;
                    // ggrs's own decoder must accept it, within the size limit.
                    let (count, decoded) = ggrs_inputs(&input.bytes)
                        .expect("the guard passed inputs ggrs cannot decode");
                    assert!(decoded <= MAX_DECODED_INPUTS);
                    if with_roster {
                        assert!(roster.contains(&Some(from)), "input from a non-player");
                    }
                    if let (Some(b), Some(limit)) = (bounds, limit) {
                        assert!((0..=limit).contains(&input.start_frame));
                        assert!((-1..=limit).contains(&input.ack_frame));
                        let last = i64::from(input.start_frame) + count as i64 - 1;
                        let lead = i64::from(b.current_frame)
                            + i64::from(b.max_prediction)
                            + i64::from(MAX_INPUT_LEAD);
                        assert!(last <= lead, "inputs up to {last} passed, lead {lead}");
                        if with_roster && !input.disconnect_requested {
                            assert_eq!(input.peer_connect_status.len(), players);
                            for (_, frame) in &input.peer_connect_status {
                                assert!((-1..=limit).contains(frame));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let stats = socket.stats();
    assert_eq!(
        stats.packets_received
            + stats.malformed_packets
            + stats.rejected_packets
            + stats.stale_packets
            + socket.held_reports() as u64
            + socket.held_early() as u64,
        fed,
        "a packet went uncounted: {stats:?}"
    );
    assert!(stats.edited_packets <= stats.packets_received);
    (inputs_passed, stats.rejected_packets)
}

// ---------------------------------------------------------------------------------------------
// The path header (core/src/path_socket.rs) and path choice (core/src/path.rs).

/// A plain model of [`ricochet::link::SequenceWindow`]'s copy detection: sequence
/// numbers unwrapped to a running position; a packet is a copy if its number was accepted at
/// the same position and is still within 64 of the highest.
#[derive(Default)]
struct WindowModel {
    /// The highest sequence number and its unwrapped position.
    highest: Option<(u16, u64)>,
    /// Accepted sequence numbers and their positions.
    accepted: std::collections::HashMap<u16, u64>,
}

impl WindowModel {
    fn accept(&mut self, seq: u16) -> bool {
        let Some((highest, position)) = self.highest else {
            self.highest = Some((seq, 1 << 20));
            self.accepted.insert(seq, 1 << 20);
            return true;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead == 0 {
            return false;
        }
        if ahead < 0x8000 {
            let position = position + u64::from(ahead);
            self.highest = Some((seq, position));
            self.accepted.insert(seq, position);
            if self.accepted.len() > 256 {
                self.accepted.retain(|_, p| position - *p < 64);
            }
            return true;
        }
        let behind = highest.wrapping_sub(seq);
        if behind >= 64 {
            return true;
        }
        let at = position - u64::from(behind);
        self.accepted.insert(seq, at) != Some(at)
    }
}

/// Packets from one peer (path header, sequence numbers, the copies flag) arriving over either
/// path, interleaved with channel events and time: the copy detection agrees with a plain model,
/// the loss estimate stays in `0..=1`, and the path choice keeps its promises (a forced relay
/// never goes direct, direct-only never uses the relay, a reachable peer's packets always go
/// somewhere, direct only after a direct packet arrived and while the newest packet from the
/// peer says it is ready).
pub fn path_header(data: &[u8]) {
    path_header_run(data);
}

/// [`path_header`], returning whether the path went direct at some point.
fn path_header_run(data: &[u8]) -> bool {
    use ricochet::link::{
        split_header, SequenceWindow, FLAG_COPIES_WANTED, FLAG_DIRECT_READY, HEADER_LEN,
    };
    use ricochet::link::{Path, PathConfig, PathMode, PeerPath};

    let mut r = Reader::new(data);
    let mode = match r.u8() % 3 {
        0 => PathMode::Automatic,
        1 => PathMode::ForceRelay,
        _ => PathMode::DirectOnly,
    };
    let ms = |v: u8| Duration::from_millis(u64::from(v) * 8);
    let config = PathConfig {
        mode,
        ice_timeout: ms(r.u8()),
        direct_silence: ms(r.u8()),
        probe_every: u32::from(r.u8() % 10),
        return_holdoff: ms(r.u8()),
        hedge_after: ms(r.u8()),
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut path = PeerPath::new(config, now);
    let mut window = SequenceWindow::default();
    let mut model = WindowModel::default();
    let mut direct_seen = false;
    let mut switches = 0;
    let mut events = 0;
    let mut went_direct = false;
    // What the newest packet said: the peer is ready for the direct path.
    let mut peer_ready = false;
    while !r.is_empty() && events < 256 {
        events += 1;
        match r.u8() % 9 {
            0 | 1 => {
                // A packet: a length (0..=7, so short ones happen), header and body bytes.
                let len = usize::from(r.u8() % 8);
                let packet = r.bytes(len);
                let direct = r.u8() & 1 == 1;
                if direct {
                    path.on_direct_received(now);
                    direct_seen = true;
                }
                match split_header(packet) {
                    None => assert!(packet.len() < HEADER_LEN),
                    Some((seq, flags, body)) => {
                        assert_eq!(body, &packet[HEADER_LEN..]);
                        assert_eq!(seq, u16::from_be_bytes([packet[0], packet[1]]));
                        assert_eq!(
                            window.accept(seq),
                            model.accept(seq),
                            "copy detection disagrees with the model at {seq}"
                        );
                        if flags & FLAG_COPIES_WANTED != 0 {
                            path.on_copies_requested(now);
                        }
                        if window.highest() == Some(seq) {
                            peer_ready = flags & FLAG_DIRECT_READY != 0;
                            path.on_peer_state(now, peer_ready);
                        }
                    }
                }
                let loss = window.loss();
                assert!((0.0..=1.0).contains(&loss), "loss {loss}");
            }
            2 => {
                // A run of sequence numbers, to move the window further than single packets do.
                let start = r.u16();
                for i in 0..u16::from(r.u8() % 64) {
                    let seq = start.wrapping_add(i * u16::from(r.u8() % 3));
                    assert_eq!(window.accept(seq), model.accept(seq));
                }
            }
            3 => now += Duration::from_millis(u64::from(r.u16() % 4096)),
            4 => path.on_channel_open(now),
            5 => path.on_channel_closed(now),
            6 => path.on_ice_failed(now),
            7 => path.on_attempt(now),
            _ => {
                let route = path.route(now);
                match mode {
                    PathMode::ForceRelay => assert!(route.relay && !route.direct),
                    PathMode::DirectOnly => assert!(!route.relay),
                    PathMode::Automatic => assert!(route.relay || route.direct),
                }
                if path.reachable() {
                    assert!(
                        route.relay || route.direct,
                        "a reachable peer's packet dropped"
                    );
                }
            }
        }
        path.poll(now);
        if path.path() == Path::Direct {
            assert!(direct_seen, "direct before any direct packet");
            assert!(
                peer_ready,
                "direct while the peer's newest packet said it is not ready"
            );
            assert_ne!(mode, PathMode::ForceRelay);
            went_direct = true;
        }
        assert!(path.switches() >= switches);
        switches = path.switches();
    }
    went_direct
}

// ---------------------------------------------------------------------------------------------
// STUN (signaling/src/stun.rs).

fn source_from(r: &mut Reader<'_>) -> SocketAddr {
    let ip = if r.u8() & 1 == 0 {
        let b = r.bytes(4);
        let mut o = [0u8; 4];
        o[..b.len()].copy_from_slice(b);
        IpAddr::from(o)
    } else {
        let b = r.bytes(16);
        let mut o = [0u8; 16];
        o[..b.len()].copy_from_slice(b);
        IpAddr::from(o)
    };
    SocketAddr::new(ip, r.u16())
}

/// `stun::respond` on a datagram from a source taken from the input: an answer is a Binding
/// success response to a Binding request, with the request's transaction ID, the source (IPv4
/// for IPv4-mapped sources) in `XOR-MAPPED-ADDRESS`, a valid `FINGERPRINT` exactly when the
/// request had one, and the documented size (at most 2.2 times the request); `Responder`
/// agrees with `respond` for a first request.
pub fn stun(data: &[u8]) {
    use ricochet_signaling::stun::{respond, Reply, Responder, StunLimits};
    use rtc_stun::attributes::ATTR_FINGERPRINT;
    use rtc_stun::fingerprint::FINGERPRINT;
    use rtc_stun::message::{Getter as _, Message, BINDING_REQUEST, BINDING_SUCCESS};
    use rtc_stun::xoraddr::XorMappedAddress;

    let mut r = Reader::new(data);
    let source = source_from(&mut r);
    let datagram = r.rest();
    let reply = respond(datagram, source);
    let handled = Responder::new(StunLimits::default()).handle(datagram, source, Instant::now());
    assert_eq!(
        handled, reply,
        "Responder and respond disagree on a first request"
    );
    let request = || {
        let mut m = Message::new();
        m.raw = datagram.to_vec();
        m.decode().map(|()| m)
    };
    match reply {
        Reply::Answer(bytes) => {
            let req = request().expect("answered a request that does not decode");
            assert_eq!(req.typ, BINDING_REQUEST);
            let mut resp = Message::new();
            resp.raw = bytes.clone();
            resp.decode().expect("the answer does not decode");
            assert_eq!(resp.typ, BINDING_SUCCESS);
            assert_eq!(resp.transaction_id, req.transaction_id);
            assert_eq!(&resp.transaction_id.0[..], &datagram[8..20]);
            let mut mapped = XorMappedAddress::default();
            mapped.get_from(&resp).expect("no XOR-MAPPED-ADDRESS");
            let ip = source.ip().to_canonical();
            assert_eq!((mapped.ip, mapped.port), (ip, source.port()));
            let fingerprinted = req.contains(ATTR_FINGERPRINT);
            assert_eq!(resp.contains(ATTR_FINGERPRINT), fingerprinted);
            if fingerprinted {
                FINGERPRINT
                    .check(&resp)
                    .expect("the answer's FINGERPRINT is wrong");
            }
            let expected = if ip.is_ipv4() { 32 } else { 44 } + if fingerprinted { 8 } else { 0 };
            assert_eq!(bytes.len(), expected);
            assert!(
                bytes.len() * 5 <= datagram.len() * 11,
                "amplification above 2.2"
            );
        }
        Reply::Ignored => {
            let req = request().expect("ignored a message that does not decode");
            assert_ne!(req.typ, BINDING_REQUEST);
        }
        Reply::Malformed => {}
        other => panic!("respond returned {other:?}"),
    }
}

/// `stun::ReplyLimiter` under limits and a sequence of (source, time step) from the input: in
/// every time window, a source is admitted at most its burst plus its rate times the window,
/// all sources together at most the global burst plus the global rate times the window, and the
/// source table never exceeds its bound.
pub fn stun_limiter(data: &[u8]) {
    use ricochet_signaling::stun::{Limit, ReplyLimiter, StunLimits};
    let mut r = Reader::new(data);
    let limits = StunLimits {
        per_source_per_second: u32::from(r.u8() % 64),
        per_source_burst: u32::from(r.u8() % 64),
        global_per_second: u32::from(r.u8()),
        max_sources: usize::from(r.u8() % 8),
    };
    let mut limiter = ReplyLimiter::new(limits);
    let t0 = Instant::now();
    let mut now = t0;
    // Per source key (IPv4 address or IPv6 /64): admission times.
    let mut admitted: std::collections::HashMap<[u8; 8], Vec<Duration>> = Default::default();
    let mut all = Vec::new();
    let mut events = 0;
    while !r.is_empty() && events < 128 {
        events += 1;
        let b = r.u8();
        let ip = if b & 0x80 == 0 {
            IpAddr::from([10, 0, 0, b & 0x0f])
        } else {
            // Four /64s, hosts varying within them.
            IpAddr::from([
                0x20,
                0x01,
                0x0d,
                0xb8,
                0,
                0,
                0,
                b & 3,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                (b >> 2) & 0x1f,
            ])
        };
        let key: [u8; 8] = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                [4, o[0], o[1], o[2], o[3], 0, 0, 0]
            }
            IpAddr::V6(v6) => v6.octets()[..8].try_into().expect("8 bytes"),
        };
        now += Duration::from_millis(u64::from(r.u8()) * u64::from(r.u8() % 4));
        match limiter.admit(ip, now) {
            Ok(()) => {
                admitted.entry(key).or_default().push(now - t0);
                all.push(now - t0);
            }
            Err(Limit::PerSource) => assert!(limits.per_source_per_second > 0),
            Err(Limit::Global) => assert!(limits.global_per_second > 0),
            Err(other) => panic!("undocumented limit {other:?}"),
        }
        assert!(limiter.sources() <= limits.max_sources.max(1));
    }
    // A bucket of `rate` and `burst` admits at most burst + rate * (t_j - t_i) events in any
    // window [t_i, t_j]: with f(k) = k - rate * t_k, f(j) - f(i) + 1 <= burst for all i <= j,
    // which one pass checks against the smallest f so far.
    let check = |times: &[Duration], rate: u32, burst: u32, what: &str| {
        if rate == 0 {
            return;
        }
        let rate = f64::from(rate);
        let mut lowest = f64::INFINITY;
        for (k, t) in times.iter().enumerate() {
            let f = k as f64 - rate * t.as_secs_f64();
            lowest = lowest.min(f);
            let most = f64::from(burst.max(1)) + 1e-3;
            assert!(
                f - lowest + 1.0 <= most,
                "{what}: {} admissions in a window where at most {most} fit",
                f - lowest + 1.0
            );
        }
    };
    for times in admitted.values() {
        check(
            times,
            limits.per_source_per_second,
            limits.per_source_burst,
            "one source",
        );
    }
    check(
        &all,
        limits.global_per_second,
        limits.global_per_second,
        "all sources",
    );
}

/// The gate in front of matchbox for session descriptions other members signal: whatever it
/// lets through parses with the SDP parser of matchbox's WebRTC stack and has what
/// `set_remote_description` checks first (a mid per media section, ICE credentials, a
/// fingerprint).
pub fn session_description(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if ricochet::net::signaller::usable_session_description(&text) {
        assert!(text.starts_with("v=0"));
        for needed in ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "\nm="] {
            assert!(text.contains(needed), "{needed} missing but accepted");
        }
        let sections = text.split("\nm=").skip(1);
        for s in sections {
            assert!(
                s.contains("a=mid:"),
                "a media section without a mid was accepted"
            );
        }
    }
}

/// Desync forensics fed by peers: a session with a desync against peer 1 (frame, interval and
/// its own checksums from the input) receives the control messages the rest of the input
/// decodes to, from peers 0 to 3, interleaved with its own sending. Everything it sends fits
/// the relay's 4 KiB frames, state chunks are at most 1 KiB, and every bundle it makes is about
/// peer 1 (the only investigation), names a frame in the window and holds states of at most
/// [`ricochet::session::forensics::MAX_STATE_BYTES`].
pub fn forensics(data: &[u8]) {
    use ricochet::session::forensics::{
        EncodedState, Forensics, Job, Resimulated, CHUNK_BYTES, MAX_STATE_BYTES,
    };
    use ricochet::wire::{self, Control, Packet};
    let mut r = Reader::new(data);
    let interval = u32::from(r.u8()).max(1);
    let checked = (r.u16() as i32) * 3;
    let mut f = Forensics::<u8>::new(interval, 2, "me".into(), [(1, "peer 1".into())]);
    f.start(1, checked);
    let from = (checked - interval as i32 + 1).max(0);
    let mut out = Vec::new();
    let check_sent = |sent: Vec<(u8, Control)>, out: &mut Vec<u8>| {
        for (to, msg) in sent {
            assert_eq!(to, 1, "sent to a peer without an investigation");
            wire::encode_control(&msg, out);
            assert!(
                out.len() <= 4096,
                "{} bytes: over the relay's frame limit",
                out.len()
            );
            if let Control::StateChunk { bytes, .. } = &msg {
                assert!(bytes.len() <= CHUNK_BYTES);
            }
        }
    };
    while !r.is_empty() {
        let from_peer = r.u8() % 4;
        let len = usize::from(r.u16() % 2048);
        let bytes = r.bytes(len);
        if let Ok(Packet::Control(msg)) = wire::decode(bytes) {
            f.receive(&from_peer, &msg);
        }
        while let Some(job) = f.next_job() {
            match job {
                Job::Checksums { peer, from: a, to } => {
                    assert_eq!((peer, a, to), (1, from, checked));
                    let sums = (a..=to).map(|x| x as u64 * 31).collect();
                    f.checksums_done(&peer, Some(sums), true);
                }
                Job::States { peer, frame } => {
                    assert!(
                        (from..=checked).contains(&frame),
                        "frame {frame} outside the window"
                    );
                    let state =
                        |x: i32| Some(EncodedState::json(format!("{{\"f\":{x}}}").into_bytes()));
                    f.states_done(
                        &peer,
                        Some(Resimulated {
                            before: Some((1, state(frame - 1))),
                            at: (2, state(frame)),
                            base_frame: from - 1,
                            base_state: None,
                            inputs: Vec::new(),
                            replay: None,
                        }),
                    );
                }
            }
        }
        check_sent(f.poll_transmit(), &mut out);
        while let Some(bundle) = f.poll_bundle() {
            assert!((from..=checked).contains(&bundle.frame));
            assert_eq!(bundle.remote.peer, "peer 1");
            for s in [&bundle.remote.state, &bundle.remote.before]
                .into_iter()
                .flatten()
            {
                assert!(s.bytes.len() <= MAX_STATE_BYTES);
            }
        }
    }
}

/// Match messages fed by peers: member 0's streams (members 1 and 2) receive the control
/// messages the input decodes to, from addresses 0 to 3 (itself and a stranger too),
/// interleaved with its own sends, polls on a clock the input moves, and reads. A refused send
/// queues nothing and is refused for the documented reason; it sends only to members, one
/// stream each, only messages it was given and only those within the first 64 not yet
/// acknowledged, within the data limit, and acks only of streams it was sent; it delivers
/// only members' messages, at most [`ricochet::messages::MAX_UNREAD`] unread.
pub fn match_messages(data: &[u8]) {
    use ricochet::messages::{
        MessageError, MessageStreams, Recipients, MAX_IN_FLIGHT, MAX_MESSAGE_DATA, MAX_QUEUED,
        MAX_UNREAD,
    };
    use ricochet::wire::{self, Control, Packet};
    use std::collections::HashMap;
    let mut r = Reader::new(data);
    let mut s = MessageStreams::<u8>::new(r.u64());
    s.add_member(1);
    s.add_member(2);
    let mut now = Instant::now();
    // Messages given for each member so far; the streams heard from each address; our stream
    // to each member.
    let mut queued: HashMap<u8, u64> = HashMap::new();
    let mut heard: HashMap<u8, Vec<u32>> = HashMap::new();
    let mut ours: HashMap<u8, u32> = HashMap::new();
    let mut out = Vec::new();
    while !r.is_empty() {
        match r.u8() % 4 {
            0 => {
                let from = r.u8() % 4;
                let len = usize::from(r.u16() % 2200);
                let bytes = r.bytes(len);
                if let Ok(Packet::Control(msg)) = wire::decode(bytes) {
                    if let Control::Message { stream, .. } = msg {
                        heard.entry(from).or_default().push(stream);
                    }
                    s.handle(&from, &msg);
                }
            }
            1 => {
                let to = match r.u8() % 5 {
                    0 => Recipients::Everyone,
                    1 => Recipients::One(1),
                    2 => Recipients::One(3),
                    3 => Recipients::Set(vec![2, 1, 2]),
                    _ => Recipients::Set(vec![]),
                };
                let op = r.u8();
                let len = usize::from(r.u16() % 2100);
                let before = [s.unacknowledged(&1), s.unacknowledged(&2)];
                let targets: Vec<u8> = match &to {
                    Recipients::Everyone => vec![1, 2],
                    Recipients::One(p) => vec![*p],
                    Recipients::Set(set) => {
                        let mut set = set.clone();
                        set.sort_unstable();
                        set.dedup();
                        set
                    }
                    _ => unreachable!("no other recipients are built here"),
                };
                match s.send(to, op, &vec![op; len]) {
                    Ok(()) => {
                        assert!(len <= MAX_MESSAGE_DATA && !targets.contains(&3));
                        for (i, p) in [1u8, 2].into_iter().enumerate() {
                            let more = usize::from(targets.contains(&p));
                            assert_eq!(s.unacknowledged(&p), before[i] + more);
                            *queued.entry(p).or_default() += more as u64;
                        }
                    }
                    Err(e) => {
                        match e {
                            MessageError::TooLarge { .. } => assert!(len > MAX_MESSAGE_DATA),
                            MessageError::UnknownRecipient { .. } => {
                                assert!(targets.contains(&3))
                            }
                            MessageError::QueueFull { .. } => {
                                assert!(before.iter().any(|&n| n >= MAX_IN_FLIGHT + MAX_QUEUED))
                            }
                            other => panic!("{other}"),
                        }
                        let after = [s.unacknowledged(&1), s.unacknowledged(&2)];
                        assert_eq!(before, after, "a refused send queued something");
                    }
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(r.u8()) * 4);
                while let Some((to, msg)) = s.poll_transmit(now) {
                    assert!(to == 1 || to == 2, "sent to a non-member {to}");
                    wire::encode_control(&msg, &mut out);
                    assert_eq!(wire::decode(&out), Ok(Packet::Control(msg.clone())));
                    match msg {
                        Control::Message {
                            stream, seq, data, ..
                        } => {
                            assert!(data.len() <= MAX_MESSAGE_DATA);
                            assert_eq!(*ours.entry(to).or_insert(stream), stream);
                            // The first unacknowledged message's number, and the window.
                            let given = queued.get(&to).copied().unwrap_or(0);
                            let base = given - s.unacknowledged(&to) as u64;
                            let seq = u64::from(seq);
                            assert!(
                                base <= seq && seq < (base + MAX_IN_FLIGHT as u64).min(given),
                                "seq {seq} outside {base}..{given}"
                            );
                        }
                        Control::MessageAck { stream, .. } => {
                            assert!(
                                heard.get(&to).is_some_and(|h| h.contains(&stream)),
                                "acked a stream {to} never sent"
                            );
                        }
                        other => panic!("sent {other:?}"),
                    }
                }
                let _ = s.poll_timeout();
            }
            _ => {
                let mut read = 0;
                while let Some(m) = s.poll_message() {
                    assert!(m.from == 1 || m.from == 2, "delivered from {}", m.from);
                    assert!(m.data.len() <= MAX_MESSAGE_DATA);
                    read += 1;
                }
                assert!(read <= MAX_UNREAD);
            }
        }
        for p in [1, 2] {
            assert!(s.unacknowledged(&p) <= MAX_IN_FLIGHT + MAX_QUEUED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_reach_past_the_checks() {
        // The guard passes some seeded inputs and rejects others: both sides are exercised.
        let tallies: Vec<_> = seeds::seeds("ggrs_guard")
            .iter()
            .map(|s| ggrs_guard_run(s))
            .collect();
        assert!(tallies.iter().any(|&(passed, _)| passed > 0), "{tallies:?}");
        assert!(
            tallies.iter().any(|&(_, rejected)| rejected > 0),
            "{tallies:?}"
        );
        // The path seeds go direct (automatic and direct-only), and never when forced on the
        // relay.
        let direct: Vec<bool> = seeds::seeds("path_header")
            .iter()
            .map(|s| path_header_run(s))
            .collect();
        assert_eq!(direct, [true, false, true]);
        // STUN seeds get answers for both address families.
        use ricochet_signaling::stun::{respond, Reply};
        let answered = seeds::seeds("stun")
            .iter()
            .filter(|s| {
                let mut r = Reader::new(s);
                let source = source_from(&mut r);
                matches!(respond(r.rest(), source), Reply::Answer(_))
            })
            .count();
        assert!(answered >= 6, "{answered}");
    }
}

/// A game for [`spectator_stream`]: its state is any 8 bytes (its checksum is them).
#[derive(Default)]
struct Tally {
    sum: u64,
    players: usize,
}

impl ricochet::Game for Tally {
    type Input = u16;
    type State = u64;
    fn advance(&mut self, inputs: &[(u16, ricochet::InputStatus)]) {
        self.players = inputs.len();
        for (i, _) in inputs {
            self.sum = self.sum.wrapping_mul(31).wrapping_add(u64::from(*i));
        }
    }
    fn save(&self) -> u64 {
        self.sum
    }
    fn load(&mut self, s: &u64) {
        self.sum = *s;
    }
    fn checksum(&self) -> u64 {
        self.sum
    }
    fn player_joined(&mut self, handle: usize) {
        self.players = self.players.max(handle + 1);
    }
    fn decode_state(&mut self, state: &ricochet::EncodedState) -> Result<(), String> {
        let bytes: [u8; 8] = state.bytes.as_slice().try_into().map_err(|_| "8 bytes")?;
        self.sum = u64::from_be_bytes(bytes);
        Ok(())
    }
}

/// What a spectator receives from the relay (`session::stream::Watcher`): any sequence of
/// records a hostile streaming player could send (the relay checks only their headers). The
/// watcher refuses what it cannot use, never panics, and its frame only moves forward between
/// keys.
pub fn spectator_stream(data: &[u8]) {
    use ricochet::session::stream::Watcher;
    let mut game = Tally::default();
    let mut w: Watcher<u16> = Watcher::new(1);
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let len = usize::from(r.u8());
        let record = r.bytes(len);
        let keys = w.stats().keys_loaded + w.stats().key_mismatches;
        let before = w.frame();
        let _ = w.receive(&mut game, record);
        if w.stats().keys_loaded + w.stats().key_mismatches == keys {
            if let (Some(a), Some(b)) = (before, w.frame()) {
                assert!(
                    b >= a,
                    "the watcher went back from {a} to {b} without a key"
                );
            }
        }
        for _ in 0..8 {
            if w.step(&mut game).is_none() {
                break;
            }
        }
    }
}
