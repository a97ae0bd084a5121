//! The demo game's client loop, shared by `ricochet-bot`, the native window and the browser.
//!
//! [`Play`] owns one player's running match of *Ricochet Arena*: the session over the joined
//! match's [`PathSocket`](ricochet::net::path_socket::PathSocket), the game state and a
//! [`FrameClock`]. Call [`Play::tick`] every animation frame with the local input; it advances
//! as many 60 Hz frames as are due. [`Play::overlay`] gives the lines the examples draw over
//! the game (each player's path, RTT and loss, the rollback depth and input delay), and
//! [`Play::status`] a JSON report for tests and tools.
//!
//! Chat: [`Play::send_chat`] sends a line to every other player as a match message
//! ([`CHAT_OP`], UTF-8, at most [`MAX_CHAT_CHARS`] characters), and [`Play::chat`] lists the
//! lines sent and received, each with its sender's handle.
//!
//! [`controls`] turns the keyboard and mouse into the game's input for the window and the
//! browser; with the feature `cli`, `cli::JoinArgs` gives the binaries their join flags.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod controls;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use ricochet::link::CandidateType;
use ricochet::link::Path;
use ricochet::messages::{MessageError, Recipients};
use ricochet::net::connect::Joined;
use ricochet::net::path_socket::PathSocket;
use ricochet::net::MatchInfo;
use ricochet::protocol::PeerId;
use ricochet::session::DEFAULT_INPUT_DELAY;
use ricochet::{
    Advance, DesyncReport, Event, ForensicBundle, FrameClock, Session, SessionBuilder, SessionError,
};
use ricochet_demo_game::{Arena, Input};
use web_time::Instant;

/// Confirmed frames whose checksums [`Play::status`] lists: every this many frames.
pub const STATUS_CHECKSUM_EVERY: i32 = 100;

/// The op code of a chat line among the demo's clients: a match message whose data is the line
/// as UTF-8, at most [`MAX_CHAT_CHARS`] characters (the op the JavaScript client's example
/// chats with too, `clients/js/example`).
pub const CHAT_OP: u8 = 2;
/// Most characters (Unicode scalar values) in a chat line: 800 bytes of UTF-8 at most, well
/// inside a match message's 2,048.
pub const MAX_CHAT_CHARS: usize = 200;
/// Chat lines [`Play`] keeps (the latest); older ones are forgotten.
pub const CHAT_KEPT: usize = 100;

/// A line of the match's chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Counts the match's chat lines from 0 as this player saw them (sent and received), so
    /// that a front end can tell which lines it has shown.
    pub number: u64,
    /// The sender's player handle (this player's own for lines it sent).
    pub from: usize,
    /// The line: at most [`MAX_CHAT_CHARS`] characters, without control characters.
    pub text: String,
}

/// Why [`Play::send_chat`] sent nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatError {
    /// The line is empty, or only white space.
    Empty,
    /// The line is longer than [`MAX_CHAT_CHARS`] characters.
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// The session refused the message (e.g. a full queue to a player who stopped
    /// acknowledging).
    Message(MessageError),
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::Empty => write!(f, "nothing to send"),
            ChatError::TooLong { chars } => write!(
                f,
                "a chat line has at most {MAX_CHAT_CHARS} characters, not {chars}"
            ),
            ChatError::Message(e) => write!(f, "the chat line was not sent: {e}"),
        }
    }
}

impl std::error::Error for ChatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChatError::Message(e) => Some(e),
            _ => None,
        }
    }
}

/// A received chat line's data as shown: UTF-8 (invalid sequences replaced), control
/// characters (line breaks included) as spaces, trimmed, cut at [`MAX_CHAT_CHARS`] characters.
pub fn chat_text(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_CHAT_CHARS)
        .collect()
}

/// One player's running match of the demo game.
pub struct Play {
    session: Session<Arena, PeerId, PathSocket>,
    /// Who is who: this player's peer ID and handle, and the players in handle order.
    roster: Roster,
    game: Arena,
    clock: FrameClock,
    input_delay: usize,
    last_rollback: u32,
    started: Instant,
    first_frame: Option<Duration>,
    first_confirmed: Option<Duration>,
    desyncs: Vec<DesyncReport<PeerId>>,
    /// Desync forensics bundles received ([`Event::DesyncForensics`]).
    forensics: Vec<ForensicBundle>,
    /// Players disconnected from the session, with the frame it was at (and not back).
    disconnected: Vec<(PeerId, i32)>,
    /// Players who took their seats back, with the first frame of the epoch they came back in
    /// (`None`: this player itself).
    rejoined: Vec<(Option<PeerId>, i32)>,
    /// What signaling says about the match: who is still in it.
    info: MatchInfo,
    /// When [`Play::tick`] last ran.
    last_tick: Option<Instant>,
    /// When this player last reported its links to signaling (the operator console).
    reported: Option<Instant>,
    /// The chat lines sent and received.
    chat: Chat,
}

/// The latest [`CHAT_KEPT`] chat lines, and how many there were.
#[derive(Default)]
struct Chat {
    lines: VecDeque<ChatLine>,
    /// Chat lines so far (the next line's number).
    count: u64,
}

impl Chat {
    fn push(&mut self, from: usize, text: String) {
        if self.lines.len() == CHAT_KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(ChatLine {
            number: self.count,
            from,
            text,
        });
        self.count += 1;
    }
}

/// How often a player reports its links (paths, round-trip times) to signaling for the
/// operator console.
pub const LINK_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// This player's peer ID and handle, and the players in handle order.
struct Roster {
    me: PeerId,
    handle: usize,
    players: Vec<PeerId>,
}

impl Play {
    /// Starts the demo game on a joined match with the default settings (input delay
    /// [`DEFAULT_INPUT_DELAY`], desync detection on every confirmed frame).
    pub fn start(joined: Joined) -> Result<Play, SessionError> {
        let builder = SessionBuilder::new()
            .with_input_delay(DEFAULT_INPUT_DELAY)?
            .with_desync_detection(Some(1))?;
        Play::start_with(joined, builder, DEFAULT_INPUT_DELAY)
    }

    /// Starts the demo game with `builder`'s settings; `input_delay` is what the builder was
    /// given, for the overlay.
    pub fn start_with(
        joined: Joined,
        builder: SessionBuilder<PeerId>,
        input_delay: usize,
    ) -> Result<Play, SessionError> {
        Play::begin(joined, builder, input_delay, false)
    }

    /// [`Play::start_with`] for a player taking back its seat in a running match (joined
    /// with [`JoinOptions::rejoin`](ricochet::net::JoinOptions::rejoin)): the game starts from
    /// the state the others send once they have moved to a new epoch.
    pub fn rejoin_with(
        joined: Joined,
        builder: SessionBuilder<PeerId>,
        input_delay: usize,
    ) -> Result<Play, SessionError> {
        Play::begin(joined, builder, input_delay, true)
    }

    fn begin(
        joined: Joined,
        builder: SessionBuilder<PeerId>,
        input_delay: usize,
        rejoin: bool,
    ) -> Result<Play, SessionError> {
        let started = Instant::now() - joined.elapsed;
        let players = joined.players.len();
        let info = joined.info.clone();
        let roster = Roster {
            me: joined.me,
            handle: joined.handle,
            players: joined.players.clone(),
        };
        // The demo's matches let late joiners in.
        let builder = builder.with_late_join(true);
        let session = if rejoin {
            joined.start_rejoin::<Arena>(builder)?
        } else {
            joined.start::<Arena>(builder)?
        };
        let clock = FrameClock::for_settings(session.settings());
        Ok(Play {
            session,
            roster,
            game: Arena::new(players),
            clock,
            input_delay,
            last_rollback: 0,
            started,
            first_frame: None,
            first_confirmed: None,
            desyncs: Vec::new(),
            forensics: Vec::new(),
            disconnected: Vec::new(),
            rejoined: Vec::new(),
            last_tick: None,
            info,
            reported: None,
            chat: Chat::default(),
        })
    }

    /// Advances the frames due at `now` (0 when ahead of the others or waiting for them),
    /// each with `input` as this player's input.
    ///
    /// After a gap longer than the disconnect timeout since the last call (a page whose
    /// timers were frozen in the background, a process stopped in a debugger) the others
    /// have dropped this player: it asks for its seat again ([`Session::rejoin_anew`]) and is
    /// back once they send the state.
    pub fn tick(&mut self, now: Instant, input: Input) -> Result<(), SessionError> {
        let gap = self
            .last_tick
            .replace(now)
            .map(|t| now.saturating_duration_since(t));
        if gap.is_some_and(|g| g > self.session.settings().disconnect_timeout())
            && self.session.is_running()
            && !self.session.is_rejoining()
        {
            self.session.rejoin_anew()?;
            self.clock = FrameClock::for_settings(self.session.settings());
        }
        let steps = self.clock.tick(now, self.session.frames_ahead());
        if steps == 0 {
            self.session.poll();
        }
        for _ in 0..steps {
            self.session.add_local_input(self.roster.handle, input)?;
            if let Advance::Advanced { rollback } = self.session.advance(&mut self.game)? {
                self.last_rollback = rollback;
                self.first_frame
                    .get_or_insert_with(|| self.started.elapsed());
            }
        }
        self.clock.skip_frames(self.session.take_skip_frames());
        if self
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= LINK_REPORT_INTERVAL)
        {
            self.reported = Some(now);
            let (links, relayed) = self.session.link_report();
            self.info.report_links(links, relayed);
        }
        // A player taking a seat in a running match confirms its first frame in its epoch.
        let first = if self.session.is_rejoining() {
            None
        } else {
            Some(self.session.rejoin_stats().map_or(0, |r| r.frame))
        };
        if self.first_confirmed.is_none()
            && first.is_some_and(|f| self.session.confirmed_frame() >= f)
        {
            self.first_confirmed = Some(self.started.elapsed());
        }
        for event in self.session.events() {
            match event {
                Event::Desync(report) => self.desyncs.push(report),
                Event::DesyncForensics(bundle) => self.forensics.push(*bundle),
                Event::Disconnected { peer, frame } => self.disconnected.push((peer, frame)),
                Event::Rebased {
                    frame, rejoined, ..
                } => {
                    // A player who is back was not lost; a late joiner is a new player.
                    if let Some(peer) = rejoined {
                        self.disconnected.retain(|(p, _)| *p != peer);
                        if !self.roster.players.contains(&peer) {
                            self.roster.players.push(peer);
                        }
                    }
                    self.rejoined.push((rejoined, frame));
                }
                Event::Message {
                    from,
                    op: CHAT_OP,
                    data,
                    ..
                } => {
                    let text = chat_text(&data);
                    if !text.is_empty() {
                        self.chat.push(from, text);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends `text` (trimmed) to every other player as a chat line ([`CHAT_OP`]) and adds it
    /// to [`Play::chat`]. It goes out with the next [`Play::tick`] and arrives once, in order,
    /// over whichever path each pair is on. An empty line, one longer than
    /// [`MAX_CHAT_CHARS`] characters, or one the session refuses is sent to no one.
    pub fn send_chat(&mut self, text: &str) -> Result<(), ChatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatError::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_CHAT_CHARS {
            return Err(ChatError::TooLong { chars });
        }
        self.session
            .send_message(Recipients::Everyone, CHAT_OP, text.as_bytes())
            .map_err(ChatError::Message)?;
        // Shown as the others will show it.
        self.chat
            .push(self.roster.handle, chat_text(text.as_bytes()));
        Ok(())
    }

    /// The latest [`CHAT_KEPT`] chat lines, oldest first: those this player sent and those it
    /// received, in the order it sent or received them.
    pub fn chat(&self) -> impl ExactSizeIterator<Item = &ChatLine> {
        self.chat.lines.iter()
    }

    /// The game state to draw.
    pub fn arena(&self) -> &Arena {
        &self.game
    }

    /// This player's handle (index in the arena's players).
    pub fn handle(&self) -> usize {
        self.roster.handle
    }

    /// The players' peer IDs in handle order.
    pub fn players(&self) -> &[PeerId] {
        &self.roster.players
    }

    /// The session, for everything else it reports.
    pub fn session(&self) -> &Session<Arena, PeerId, PathSocket> {
        &self.session
    }

    /// Mutable access to the socket, e.g. for
    /// [`PathSocket::set_direct_blocked`](ricochet::net::path_socket::PathSocket::set_direct_blocked).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut PathSocket) -> R) -> R {
        self.session.with_socket(f)
    }

    /// This player's rejoin token, once signaling gave it: keep it to take the seat back
    /// after a crash or a reload ([`Play::rejoin_with`]).
    pub fn rejoin_token(&self) -> Option<String> {
        self.info.rejoin_token()
    }

    /// The current frame.
    pub fn frame(&self) -> i32 {
        self.session.current_frame()
    }

    /// The checksum of confirmed frame `frame`, while the session remembers it.
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.session.checksum_at(frame)
    }

    /// Desyncs detected so far.
    pub fn desyncs(&self) -> &[DesyncReport<PeerId>] {
        &self.desyncs
    }

    /// The desync forensics bundles so far (one per peer this player disagreed with).
    pub fn forensics(&self) -> &[ForensicBundle] {
        &self.forensics
    }

    /// Fault injection for forensics tests: from now on this player's simulation of `frame`
    /// goes wrong ([`Arena::planted_desync`]).
    pub fn plant_desync(&mut self, frame: u32) {
        self.game.planted_desync = Some(frame);
    }

    /// Players disconnected from the session so far and not back, with the frame it was at:
    /// from there on the match plays on without their inputs.
    pub fn disconnected(&self) -> &[(PeerId, i32)] {
        &self.disconnected
    }

    /// Players who took their seats back, with the first frame of the epoch they came back in
    /// (`None`: this player itself, after a crash or a reload).
    pub fn rejoined(&self) -> &[(Option<PeerId>, i32)] {
        &self.rejoined
    }

    /// Time from joining to the first frame simulated, and to the first frame confirmed
    /// (every player's input known).
    pub fn time_to_first_frame(&self) -> (Option<Duration>, Option<Duration>) {
        (self.first_frame, self.first_confirmed)
    }

    /// The overlay's text: one line per player (path, RTT, loss), then the rollback depth,
    /// input delay and frame.
    pub fn overlay(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (h, peer) in self.roster.players.iter().enumerate() {
            let who = format!("P{}", h + 1);
            if h == self.roster.handle {
                lines.push(format!("{who} you"));
                continue;
            }
            let line = match self.session.link_stats(peer) {
                Some(link) => format!(
                    "{who} {:<6} {:>4} loss {:>2}%{}",
                    path_name(link.path.path),
                    link.rtt_ms
                        .map_or_else(|| "--".to_string(), |rtt| format!("{rtt}ms")),
                    (link.path.loss * 100.0).round() as u32,
                    match self.disconnected.iter().find(|(p, _)| p == peer) {
                        // The match goes on without this player: say since when.
                        Some((_, frame)) => format!(" gone at {frame}"),
                        None if self.has_left(peer) => " left".to_string(),
                        None => String::new(),
                    }
                ),
                None => format!("{who} connecting"),
            };
            lines.push(line);
        }
        lines.push(format!(
            "rollback {} delay {} frame {}",
            self.last_rollback,
            self.input_delay,
            self.session.current_frame()
        ));
        if !self.desyncs.is_empty() {
            lines.push(format!("DESYNC x{}", self.desyncs.len()));
        }
        lines
    }

    /// A JSON report: `peer`, `handle`, `frame`, `confirmed`, `checksums` of remembered
    /// confirmed frames every [`STATUS_CHECKSUM_EVERY`] (frame → hex), `last_checksum`,
    /// `desyncs`, `rollbacks`, `max_rollback`, `paths` and `links` per remote peer (path, RTT,
    /// loss, counters, ICE candidate types as `local/remote`, e.g. `host/srflx`),
    /// `path_switches`, `direct_failures`, `disconnected` (players the session disconnected,
    /// each `{"peer", "frame"}`: the match went on without them from that frame, and they
    /// did not come back), `epoch` and `rejoined` (players who took their seats back, this one
    /// included, each `{"peer", "frame"}` with the first frame of the epoch they came back
    /// in), `rejoin` (on a player that took a seat in a running match: `epoch`, `frame`,
    /// `state_bytes` received and `transfer_ms` from the answer to the state checked; its
    /// `time_to_first_confirmed_ms` counts to its first confirmed frame there), `left` (the players who left the
    /// match, by signaling and the relay: their path shows as `left`, and the closing of their channel is among the
    /// `direct_failures`), `time_to_first_frame_ms`, `time_to_first_confirmed_ms`, `elapsed_ms`
    /// (since joining began: 60 frames take 1,000 ms when nothing stalls), `malformed_packets`,
    /// `relay` (`null` without one: `reconnects`, `dropped_while_down`, `stream_sent` (spectator
    /// stream records sent, as the match's streaming player), `down` (why, while
    /// reconnecting), `closed` (why, once given up)), `chat` (the latest [`CHAT_KEPT`] chat
    /// lines, each `{"from": handle, "text"}`, this player's own included).
    pub fn status(&self) -> serde_json::Value {
        let stats = self.session.stats();
        let mut checksums = BTreeMap::new();
        let confirmed = self.session.confirmed_frame();
        let mut frame = confirmed - confirmed.rem_euclid(STATUS_CHECKSUM_EVERY);
        while frame >= 0 {
            match self.session.checksum_at(frame) {
                Some(c) => checksums.insert(frame.to_string(), format!("{c:016x}")),
                None => break,
            };
            frame -= STATUS_CHECKSUM_EVERY;
        }
        let mut paths = serde_json::Map::new();
        let mut links = serde_json::Map::new();
        let mut switches = 0;
        let mut failures = Vec::new();
        let mut left = Vec::new();
        for peer in self.remote_peers() {
            // A player who left has no path: its channel closing is not the direct path
            // failing (and what comes after is not play over the relay).
            let gone = self.has_left(peer);
            if gone {
                left.push(peer.to_string());
            }
            let Some(link) = self.session.link_stats(peer) else {
                paths.insert(peer.to_string(), if gone { "left" } else { "relay" }.into());
                continue;
            };
            switches += link.path.switches;
            if let Some(f) = link.path.last_failure {
                failures.push(format!("{peer}: {f:?}"));
            }
            let path = if gone {
                "left"
            } else {
                path_name(link.path.path)
            };
            paths.insert(peer.to_string(), path.into());
            links.insert(
                peer.to_string(),
                serde_json::json!({
                    "path": path_name(link.path.path),
                    "rtt_ms": link.rtt_ms,
                    "loss": link.path.loss,
                    "packets_sent": link.path.packets_sent,
                    "packets_received": link.path.packets_received,
                    "bytes_sent": link.path.bytes_sent,
                    "bytes_received": link.path.bytes_received,
                    "duplicates": link.path.duplicates,
                    "relay_copies": link.path.relay_copies,
                    "switches": link.path.switches,
                    "candidates": link.path.candidates.map(|(local, remote)| {
                        format!("{}/{}", candidate_name(local), candidate_name(remote))
                    }),
                }),
            );
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        serde_json::json!({
            "peer": self.roster.me.to_string(),
            "handle": self.roster.handle,
            "frame": self.session.current_frame(),
            "confirmed": confirmed,
            "checksums": checksums,
            "last_checksum": self.session.last_confirmed_checksum()
                .map(|(f, c)| serde_json::json!([f, format!("{c:016x}")])),
            "desyncs": self.desyncs.len(),
            "forensics": self.forensics.iter().map(|b| b.frame).collect::<Vec<_>>(),
            "rollbacks": stats.rollbacks,
            "max_rollback": stats.max_rollback,
            "paths": paths,
            "links": links,
            "path_switches": switches,
            "direct_failures": failures,
            "left": left,
            "present": self.info.peers().len(),
            "signaling_reconnects": self.info.snapshot().reconnects,
            "disconnected": self
                .disconnected
                .iter()
                .map(|(peer, frame)| serde_json::json!({ "peer": peer.to_string(), "frame": frame }))
                .collect::<Vec<_>>(),
            "epoch": self.session.epoch(),
            "rejoined": self
                .rejoined
                .iter()
                .map(|(peer, frame)| serde_json::json!({
                    "peer": peer.map_or(self.roster.me, |p| p).to_string(),
                    "frame": frame,
                }))
                .collect::<Vec<_>>(),
            "rejoin": self.session.rejoin_stats().map(|r| serde_json::json!({
                "epoch": r.epoch,
                "frame": r.frame,
                "state_bytes": r.state_bytes,
                "transfer_ms": r.transfer.as_millis() as u64,
            })),
            "time_to_first_frame_ms": ms(self.first_frame),
            "time_to_first_confirmed_ms": ms(self.first_confirmed),
            "elapsed_ms": ms(Some(self.started.elapsed())),
            "malformed_packets": stats.socket.malformed_packets,
            "relay": self.with_socket(|s| s.relay().map(|r| {
                let st = r.stats();
                serde_json::json!({
                    "reconnects": st.reconnects,
                    "dropped_while_down": st.dropped_while_down,
                    "stream_sent": st.stream_sent,
                    "down": r.down(),
                    "closed": r.closed(),
                })
            })),
            "chat": self
                .chat
                .lines
                .iter()
                .map(|l| serde_json::json!({ "from": l.from, "text": l.text }))
                .collect::<Vec<_>>(),
        })
    }

    /// Whether signaling says `peer` has left the match.
    /// Signaling says the player left, and the relay does not have it either: a player whose
    /// signaling connection dropped (e.g. with matchbox's socket, which owns it) but who still
    /// plays over the relay has not left.
    fn has_left(&self, peer: &PeerId) -> bool {
        !self.info.peers().contains(peer)
            && !self.with_socket(|s| s.relay().is_some_and(|r| r.peers().contains(peer)))
    }

    fn remote_peers(&self) -> impl Iterator<Item = &PeerId> {
        let me = self.roster.me;
        self.roster.players.iter().filter(move |p| **p != me)
    }
}

/// ICE's short names for candidate types.
fn candidate_name(kind: CandidateType) -> &'static str {
    match kind {
        CandidateType::Host => "host",
        CandidateType::ServerReflexive => "srflx",
        CandidateType::PeerReflexive => "prflx",
        CandidateType::Relay => "relay",
    }
}

fn path_name(path: Path) -> &'static str {
    match path {
        Path::Direct => "direct",
        Path::Relay => "relay",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_utf8_on_one_line_and_bounded() {
        assert_eq!(chat_text("héllo ⚡".as_bytes()), "héllo ⚡");
        assert_eq!(chat_text(b"  two\nlines\t\r "), "two lines");
        assert_eq!(chat_text(b"bad \xFF byte"), "bad \u{FFFD} byte");
        assert_eq!(chat_text(b"\n\n"), "");
        let long = "é".repeat(MAX_CHAT_CHARS + 5);
        assert_eq!(chat_text(long.as_bytes()).chars().count(), MAX_CHAT_CHARS);
        // The longest line fits a match message.
        assert!("\u{10FFFF}".repeat(MAX_CHAT_CHARS).len() <= ricochet::messages::MAX_MESSAGE_DATA);
    }

    #[test]
    fn chat_keeps_the_latest_lines_numbered() {
        let mut chat = Chat::default();
        for i in 0..CHAT_KEPT + 3 {
            chat.push(i % 2, i.to_string());
        }
        assert_eq!(chat.lines.len(), CHAT_KEPT);
        assert_eq!(chat.lines[0].number, 3);
        assert_eq!(chat.lines[0].text, "3");
        assert_eq!(chat.lines.back().unwrap().number, CHAT_KEPT as u64 + 2);
    }

    #[test]
    fn chat_errors_say_why() {
        assert_eq!(ChatError::Empty.to_string(), "nothing to send");
        assert!(ChatError::TooLong { chars: 201 }
            .to_string()
            .contains("at most 200 characters, not 201"));
    }
}
