//! Moving packets between peers.
//!
//! A path to other peers is anything that implements [`PacketSocket`]: it sends and receives
//! unreliable, unordered datagrams addressed by a peer address. The seeded simulator
//! ([`crate::sim`]) is one; the direct WebRTC and relay paths are others.
//!
//! [`GgrsSocket`] turns a [`PacketSocket`] into the [`ggrs::NonBlockingSocket`] a session needs,
//! with Ricochet's own compact encoding ([`crate::wire`]). Unlike `matchbox_socket`'s own ggrs
//! socket, which panics (`expect`) on a packet it cannot decode, it counts and drops
//! undecodable packets, so nothing a remote peer sends can crash the game. It also carries
//! Ricochet's control messages (desync reports) beside ggrs's traffic, which is why the session
//! keeps a second handle to it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::wire::{self, Control, Packet};

/// Most control messages held for the session between two frames; a peer flooding them
/// cannot grow memory past this.
pub const MAX_QUEUED_CONTROL: usize = 256;

/// An unreliable, unordered datagram path to peers addressed by `A`.
pub trait PacketSocket<A> {
    /// Sends one datagram to `to`. Delivery is not guaranteed.
    fn send_packet(&mut self, to: &A, packet: &[u8]);
    /// Appends every datagram received since the last call to `out`, with its sender.
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>);
    /// The session has sent everything for now (it calls this once per `advance` or
    /// `poll`). A socket that batches packets sends them now; the default does nothing.
    fn flush(&mut self) {}
}

impl<A, T: PacketSocket<A> + ?Sized> PacketSocket<A> for Box<T> {
    fn send_packet(&mut self, to: &A, packet: &[u8]) {
        (**self).send_packet(to, packet)
    }
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>) {
        (**self).receive_packets(out)
    }
    fn flush(&mut self) {
        (**self).flush()
    }
}

/// Packet counters of a [`GgrsSocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes sent (payload of the datagrams, without lower-layer headers).
    pub bytes_sent: u64,
    /// Packets received and decoded.
    pub packets_received: u64,
    /// Bytes received (including malformed packets).
    pub bytes_received: u64,
    /// Packets dropped because they could not be decoded.
    pub malformed_packets: u64,
    /// Ricochet control messages received (also counted in `packets_received`).
    pub control_packets_received: u64,
    /// Control messages dropped because the session had not collected earlier ones yet.
    pub control_overflow: u64,
    /// Well-formed ggrs messages dropped because their frame numbers or connection claims
    /// could not be true (they could otherwise trip ggrs's internal assertions).
    pub rejected_packets: u64,
    /// ggrs messages passed on without a disconnection report that ggrs could not have
    /// handled (see `Bounds`).
    pub edited_packets: u64,
}

/// What the session tells its socket so that it can check ggrs messages before ggrs sees
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The frame the session simulates next.
    pub current_frame: i32,
    /// ggrs's last confirmed frame: it keeps inputs from the frame before it on.
    pub confirmed_frame: i32,
    /// The prediction window, in frames.
    pub max_prediction: i32,
    /// Number of players.
    pub players: usize,
}

/// How far (in frames) a peer's frame numbers may lie beyond our current frame in acks and
/// connection reports.
pub const MAX_FRAMES_AHEAD: i32 = 256;
/// How far beyond our current frame plus the prediction window a peer's inputs may reach.
/// An honest peer's inputs reach at most our frame plus the prediction window plus both
/// sides' input delays ([`crate::session::MAX_INPUT_DELAY`] each), and a little more while we
/// catch up; ggrs's input queue holds 128 frames, which a single crafted message could
/// otherwise overrun (32 + 2 × 16 + 16 stays well inside).
pub const MAX_INPUT_LEAD: i32 = 2 * crate::session::MAX_INPUT_DELAY as i32 + 16;
/// Largest decoded size of the inputs in one message, in bytes.
pub const MAX_DECODED_INPUTS: usize = 16 * 1024;

/// Walks ggrs's encoding of a batch of inputs (an RLE bitfield, as the `bitfield-rle` crate
/// writes it, of delta-encoded inputs each prefixed by a little-endian `u16` length) and
/// returns how many inputs it holds. ggrs decodes this with code that indexes past the end of
/// a truncated varint and allocates whatever length the runs claim, so it must not see a
/// stream that this function refuses.
fn count_inputs(rle: &[u8]) -> Result<usize, &'static str> {
    // Walk the runs without materialising them: `need` bytes of the current entry remain to
    // skip, or (when `header` is Some) the entry's 2-byte length is being read.
    let mut pos = 0;
    let mut total = 0usize;
    let mut count = 0usize;
    let mut header: Option<(u8, Option<u8>)> = Some((0, None)); // (bytes read, first byte)
    let mut need = 0usize;
    while pos < rle.len() {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *rle.get(pos).ok_or("truncated run header")?;
            pos += 1;
            if shift > 35 {
                return Err("run header too long");
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let repeat = value & 1 == 1;
        let run = if repeat { value >> 2 } else { value >> 1 };
        // In u64 first: on 32-bit targets (wasm) a usize sum could wrap.
        if (total as u64).saturating_add(run) > MAX_DECODED_INPUTS as u64 {
            return Err("inputs decode to too many bytes");
        }
        let mut len = run as usize;
        total += len;
        let fill = if value & 2 != 0 { 255u8 } else { 0 };
        let literal = if repeat {
            None
        } else {
            let end = pos.checked_add(len).ok_or("literal run past the end")?;
            let bytes = rle.get(pos..end).ok_or("literal run past the end")?;
            pos += len;
            Some(bytes)
        };
        let mut at = 0;
        while len > 0 {
            if let Some((read, first)) = header {
                let byte = literal.map_or(fill, |l| l[at]);
                at += 1;
                len -= 1;
                match (read, first) {
                    (0, _) => header = Some((1, Some(byte))),
                    (_, Some(lo)) => {
                        need = u16::from_le_bytes([lo, byte]) as usize;
                        header = None;
                        count += 1;
                    }
                    _ => unreachable!("a header's second byte always follows its first"),
                }
            } else {
                let skip = need.min(len);
                need -= skip;
                len -= skip;
                at += skip;
            }
            if header.is_none() && need == 0 {
                header = Some((0, None));
            }
        }
    }
    match header {
        Some((0, _)) => Ok(count),
        Some(_) => Err("truncated input length"),
        None => Err("input runs past the end"),
    }
}

/// What the socket remembers to check ggrs messages before ggrs sees them.
struct Guard<A> {
    /// Set by the session before every poll; some checks need it.
    bounds: Option<Bounds>,
    /// Calls to `set_bounds` so far: the guard's notion of time.
    polls: u64,
    /// Player handle -> the remote address playing it (`None`: a local player). Empty for a
    /// spectator session, whose only peer is the host.
    roster: Vec<Option<A>>,
    /// Per player, the disconnection frame already accepted.
    disconnected_at: Vec<Option<i32>>,
    /// Quality-report timestamps we sent.
    pings: VecDeque<u128>,
    /// Per peer: the last frame of input accepted from it, and the poll it arrived in.
    last_input: HashMap<A, (i32, u64)>,
}

/// A player whose inputs arrived within this many polls (frames) is not believed to have
/// disconnected when another peer says so (half a second at 60 Hz).
pub const FRESH_POLLS: u64 = 30;

impl<A: Clone + Eq + Hash> Guard<A> {
    /// Why `view` cannot be a message from an honest peer, if it cannot.
    ///
    /// Returns whether `view` was edited: a report that a player disconnected is removed from
    /// an `Input` message (the rest is kept) when it names a local player, a player whose
    /// inputs reached us within [`FRESH_POLLS`] (ggrs would believe it and drop that player,
    /// so one hostile peer could kick the others), or a frame older than the inputs ggrs
    /// still holds (ggrs would roll back past them: an assertion failure). A player who is
    /// really gone stops sending, after which the reports are believed.
    fn check(&mut self, from: &A, view: &mut wire::MessageView) -> Result<bool, &'static str> {
        // Checks that need nothing but the message and what we sent.
        let mut input_count = 0;
        match &view.body {
            // Ricochet runs its own desync detection; ggrs's, left off, asserts on a report.
            wire::BodyView::ChecksumReport { .. } => {
                return Err("ggrs checksum reports are not used")
            }
            // ggrs turns the echoed timestamp into a round-trip time and multiplies it: only an
            // echo of a timestamp we really sent is believable.
            wire::BodyView::QualityReply { pong } if !self.pings.contains(pong) => {
                return Err("quality reply echoes a ping we never sent")
            }
            wire::BodyView::QualityReport {
                frame_advantage, ..
            } if i32::from(*frame_advantage).abs() > MAX_FRAMES_AHEAD => {
                return Err("frame advantage out of range")
            }
            wire::BodyView::Input(input) => {
                // ggrs decodes these bytes with code that panics or allocates without bound.
                input_count = count_inputs(&input.bytes)?;
                // ggrs files inputs by address: a spectator's would land on a handle beyond
                // the players (an assertion failure).
                let from_player = self.roster.iter().any(|a| a.as_ref() == Some(from));
                if !self.roster.is_empty() && !from_player {
                    return Err("input from an address that plays no player");
                }
            }
            _ => {}
        }
        let Some(bounds) = self.bounds else {
            return Ok(false);
        };
        let Bounds {
            current_frame,
            confirmed_frame,
            max_prediction,
            players,
        } = bounds;
        let limit = current_frame.saturating_add(MAX_FRAMES_AHEAD);
        match &mut view.body {
            wire::BodyView::Input(input) => {
                if input.start_frame < 0 || input.start_frame > limit {
                    return Err("input start frame out of range");
                }
                if input.ack_frame < -1 || input.ack_frame > limit {
                    return Err("input ack frame out of range");
                }
                let count = input_count as i64;
                let lead = current_frame as i64 + max_prediction as i64 + MAX_INPUT_LEAD as i64;
                let last = input.start_frame as i64 + count - 1;
                if last > lead {
                    return Err("inputs reach too far ahead");
                }
                let mut edited = false;
                if !input.disconnect_requested && !self.roster.is_empty() {
                    if input.peer_connect_status.len() != players {
                        return Err("wrong number of connection statuses");
                    }
                    edited = self.filter_disconnect_reports(from, input, limit, confirmed_frame)?;
                }
                // ggrs takes inputs only if they continue what it has; so does this record
                // of who is still sending.
                let seen = self.last_input.entry(from.clone()).or_insert((-1, 0));
                if count > 0 && input.start_frame <= seen.0 + 1 && last as i32 > seen.0 {
                    *seen = (last as i32, self.polls);
                }
                Ok(edited)
            }
            wire::BodyView::InputAck { ack_frame } if *ack_frame < -1 || *ack_frame > limit => {
                Err("ack frame out of range")
            }
            _ => Ok(false),
        }
    }

    fn filter_disconnect_reports(
        &mut self,
        from: &A,
        input: &mut wire::InputView,
        limit: i32,
        confirmed_frame: i32,
    ) -> Result<bool, &'static str> {
        self.disconnected_at
            .resize(input.peer_connect_status.len(), None);
        let oldest = confirmed_frame.max(0);
        let mut edited = false;
        for (player, status) in input.peer_connect_status.iter_mut().enumerate() {
            let (disconnected, last_frame) = *status;
            if last_frame < -1 || last_frame > limit {
                return Err("connection status frame out of range");
            }
            if !disconnected {
                continue;
            }
            let still_here = match self.roster.get(player) {
                Some(None) => true,
                Some(Some(addr)) if addr != from => self
                    .last_input
                    .get(addr)
                    .is_some_and(|&(_, poll)| self.polls.saturating_sub(poll) <= FRESH_POLLS),
                _ => false,
            };
            match self.disconnected_at[player] {
                // Already known (ggrs acted on it then): repeating it changes nothing.
                Some(known) if last_frame >= known => {}
                _ if still_here || last_frame < oldest => {
                    status.0 = false;
                    edited = true;
                }
                _ => self.disconnected_at[player] = Some(last_frame),
            }
        }
        Ok(edited)
    }
}

/// Quality-report timestamps remembered to check the echoes (ggrs sends one report per peer
/// every 200 ms, so this covers several seconds with four peers).
const PINGS_REMEMBERED: usize = 64;
/// Variant index of `Input` in ggrs's `MessageBody` (the first kind that needs checks).
const INPUT_VARIANT: u8 = 2;
/// Variant index of `QualityReport` in ggrs's `MessageBody`.
const QUALITY_REPORT_VARIANT: u8 = 4;
/// Variant index of `ChecksumReport` in ggrs's `MessageBody` (the last kind that needs
/// checks; `KeepAlive` after it carries nothing).
const CHECKSUM_REPORT_VARIANT: u8 = 6;

struct Inner<A, S> {
    socket: S,
    guard: Guard<A>,
    scratch: Vec<u8>,
    received: Vec<(A, Vec<u8>)>,
    control: VecDeque<(A, Control)>,
    stats: SocketStats,
}

/// A [`PacketSocket`] made into a [`ggrs::NonBlockingSocket`], shareable between ggrs and the
/// Ricochet session (cloning gives another handle to the same socket).
pub struct GgrsSocket<A, S> {
    inner: Arc<Mutex<Inner<A, S>>>,
}

impl<A, S> Clone for GgrsSocket<A, S> {
    fn clone(&self) -> Self {
        GgrsSocket {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Clone, S: PacketSocket<A>> GgrsSocket<A, S> {
    /// Wraps `socket`.
    pub fn new(socket: S) -> Self {
        GgrsSocket {
            inner: Arc::new(Mutex::new(Inner {
                socket,
                guard: Guard {
                    bounds: None,
                    polls: 0,
                    roster: Vec::new(),
                    disconnected_at: Vec::new(),
                    pings: VecDeque::with_capacity(PINGS_REMEMBERED),
                    last_input: HashMap::new(),
                },
                scratch: Vec::with_capacity(256),
                received: Vec::new(),
                control: VecDeque::new(),
                stats: SocketStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<A, S>> {
        crate::lock(&self.inner)
    }

    /// Sets the limits against which received ggrs messages are checked (the session calls
    /// this before every frame). Without bounds, messages are only decoded, not checked.
    pub fn set_bounds(&self, bounds: Bounds) {
        let mut inner = self.lock();
        inner.guard.bounds = Some(bounds);
        inner.guard.polls += 1;
    }

    /// Tells the socket which remote address plays each player handle (`None` for local
    /// players), so that it can refuse a peer's claim that a player who is visibly still
    /// here has disconnected.
    pub fn set_roster(&self, roster: Vec<Option<A>>) {
        self.lock().guard.roster = roster;
    }

    /// Counters so far.
    pub fn stats(&self) -> SocketStats {
        self.lock().stats
    }

    /// Sends a control message to `to`.
    pub fn send_control(&self, to: &A, msg: &Control) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        wire::encode_control(msg, &mut inner.scratch);
        inner.stats.packets_sent += 1;
        inner.stats.bytes_sent += inner.scratch.len() as u64;
        inner.socket.send_packet(to, &inner.scratch);
    }

    /// Takes the control messages received so far.
    pub fn take_control(&self) -> Vec<(A, Control)> {
        self.lock().control.drain(..).collect()
    }

    /// The last frame of input accepted from `peer` (`None` before its first input).
    pub fn last_input_frame(&self, peer: &A) -> Option<i32>
    where
        A: Eq + Hash,
    {
        self.lock()
            .guard
            .last_input
            .get(peer)
            .map(|(frame, _)| *frame)
    }

    /// Flushes the wrapped socket (see [`PacketSocket::flush`]).
    pub fn flush(&self) {
        self.lock().socket.flush();
    }

    /// Runs `f` on the wrapped socket (for path statistics and the like).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().socket)
    }
}

impl<A, S> ggrs::NonBlockingSocket<A> for GgrsSocket<A, S>
where
    A: Clone + PartialEq + Eq + Hash,
    S: PacketSocket<A>,
{
    fn send_to(&mut self, msg: &ggrs::Message, addr: &A) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match wire::encode_ggrs(msg, &mut inner.scratch) {
            Ok(()) => {
                if inner.scratch.get(2) == Some(&QUALITY_REPORT_VARIANT) {
                    if let Ok(wire::MessageView {
                        body: wire::BodyView::QualityReport { ping, .. },
                        ..
                    }) = wire::decode_view(&inner.scratch)
                    {
                        let pings = &mut inner.guard.pings;
                        if pings.len() == PINGS_REMEMBERED {
                            pings.pop_front();
                        }
                        pings.push_back(ping);
                    }
                }
                inner.stats.packets_sent += 1;
                inner.stats.bytes_sent += inner.scratch.len() as u64;
                inner.socket.send_packet(addr, &inner.scratch);
            }
            Err(err) => tracing::error!(%err, "could not encode a ggrs message; dropped"),
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(A, ggrs::Message)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.received.clear();
        inner.socket.receive_packets(&mut inner.received);
        let mut messages = Vec::with_capacity(inner.received.len());
        for (from, bytes) in inner.received.drain(..) {
            inner.stats.bytes_received += bytes.len() as u64;
            let mut bytes = bytes;
            // Only these ggrs messages carry values ggrs trusts; the rest need no second look.
            let checked_kind = matches!(
                bytes.get(2),
                Some(&(INPUT_VARIANT..=CHECKSUM_REPORT_VARIANT))
            );
            if checked_kind && bytes[..2] != wire::CONTROL_PREFIX {
                {
                    if let Ok(mut view) = wire::decode_view(&bytes) {
                        match inner.guard.check(&from, &mut view) {
                            Ok(false) => {}
                            Ok(true) => {
                                inner.stats.edited_packets += 1;
                                let mut edited = Vec::with_capacity(bytes.len());
                                if wire::encode_view(&view, &mut edited).is_ok() {
                                    bytes = edited;
                                }
                            }
                            Err(reason) => {
                                inner.stats.rejected_packets += 1;
                                tracing::debug!(
                                    reason,
                                    "dropped a ggrs message that cannot be honest"
                                );
                                continue;
                            }
                        }
                    }
                }
            }
            match wire::decode(&bytes) {
                Ok(Packet::Ggrs(msg)) => {
                    inner.stats.packets_received += 1;
                    messages.push((from, msg));
                }
                Ok(Packet::Control(msg)) => {
                    inner.stats.packets_received += 1;
                    inner.stats.control_packets_received += 1;
                    if inner.control.len() < MAX_QUEUED_CONTROL {
                        inner.control.push_back((from, msg));
                    } else {
                        inner.stats.control_overflow += 1;
                    }
                }
                Err(err) => {
                    inner.stats.malformed_packets += 1;
                    tracing::debug!(%err, len = bytes.len(), "dropped an undecodable packet");
                }
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_batches_are_measured_without_trusting_them() {
        // Two literal inputs of 2 bytes each: [len=2][a b][len=2][c d] as one literal run.
        let decoded = [2u8, 0, 1, 2, 2, 0, 3, 4];
        let mut rle = vec![(decoded.len() as u8) << 1];
        rle.extend_from_slice(&decoded);
        assert_eq!(count_inputs(&rle), Ok(2));
        assert_eq!(count_inputs(&[]), Ok(0));
        // A run claiming 2^34 zero bytes, a truncated header, a literal past the end.
        assert!(count_inputs(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(count_inputs(&[0x81]).is_err());
        assert!(count_inputs(&[20, 1, 2]).is_err());
        // Lengths that run past the decoded bytes.
        assert!(count_inputs(&[6, 9, 0, 1]).is_err());
        // A half-read length.
        assert!(count_inputs(&[2, 9]).is_err());
        // Inputs spread over literal and repeat runs: [len=3][0 0 0] as a literal of the
        // header then a repeat of three zero bytes, then [len=1][ff] as literal + repeat.
        let rle = [4, 3, 0, 3 << 2 | 1, 4, 1, 0, 1 << 2 | 3];
        assert_eq!(count_inputs(&rle), Ok(2));
    }
}
