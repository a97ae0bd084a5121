//! Per-peer path choice between the direct WebRTC data channel and the relay, without I/O.
//!
//! A remote peer is reachable over the relay from the moment it is present, so a match never
//! waits on ICE. [`PeerPath`] decides, for every packet, where it goes:
//!
//! - **Relay** while the direct channel is being set up. Once the data channel opens, packets
//!   go both ways (relay and direct) until a packet arrives over the direct channel, which
//!   proves it carries traffic in both directions; then **Direct** only.
//! - Back to **Relay** when the direct channel stops delivering (nothing received over it for
//!   [`PathConfig::direct_silence`]), closes, or the ICE attempt fails or takes longer than
//!   [`PathConfig::ice_timeout`] (webrtc-rs alone takes 25 s or more to declare failure).
//! - **Both ends agree.** Each packet says whether its sender is ready for the direct path (it
//!   hears the peer directly and is not holding off, [`PeerPath::ready`]); a side uses the
//!   direct path only while it is ready *and* the peer's newest packet said the peer is
//!   ([`PeerPath::on_peer_state`]). When one side gives the direct path up, its next packet
//!   tells the other, which follows ([`DirectFailure::PeerFellBack`]): the two ends of a pair
//!   disagree for at most one packet's trip, never for a whole match.
//! - Before that, a direct path that has gone quiet for [`PathConfig::hedge_after`] is covered:
//!   the side that hears nothing asks for copies over the relay (a flag in each packet's header,
//!   [`PeerPath::wants_copies`]) and sends its own packets both ways, and the side asked sends
//!   both ways until [`COPIES_HOLD`] after the last request. A data channel that stalls for a
//!   second under loss then costs the game a few frames of prediction, not a second of waiting.
//! - While on the relay with the channel still open, one packet in
//!   [`PathConfig::probe_every`] is also sent directly, so that a direct path that comes back
//!   is noticed (by the other side receiving it) and used again, once a hold-off has passed
//!   ([`PathConfig::return_holdoff`], doubling with each silence up to 32 s and starting over
//!   after 10 s of good direct traffic), so that a path that keeps stalling under loss does not
//!   make the match flap between paths.
//!
//! Time is passed in (`now`); nothing here reads a clock.

use std::time::Duration;

use web_time::Instant;

/// Default time the ICE attempt may take before the peer is declared relay-only.
pub const DEFAULT_ICE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time without any packet over the direct channel after which it is considered dead.
pub const DEFAULT_DIRECT_SILENCE: Duration = Duration::from_millis(1000);
/// Default share of packets also sent directly while on the relay (one in this many).
pub const DEFAULT_PROBE_EVERY: u32 = 8;
/// Default time a direct path that went silent stays unused before a probe that gets through
/// may bring it back; doubled after each silence, up to [`MAX_RETURN_HOLDOFF`], and reset
/// once the direct path has held for [`STABLE_DIRECT`].
pub const DEFAULT_RETURN_HOLDOFF: Duration = Duration::from_secs(2);
/// Default silence on the direct channel after which packets also go over the relay (and
/// copies are asked for), while the path stays direct. At 60 packets a second this is nine
/// packets in a row: not loss, a stall.
pub const DEFAULT_HEDGE_AFTER: Duration = Duration::from_millis(150);
/// How long packets still go both ways after the peer last asked for copies.
pub const COPIES_HOLD: Duration = Duration::from_millis(500);
/// Longest hold-off before returning to a direct path that keeps going silent.
pub const MAX_RETURN_HOLDOFF: Duration = Duration::from_secs(32);
/// How long a direct path must carry traffic before its hold-off starts over.
pub const STABLE_DIRECT: Duration = Duration::from_secs(10);

/// Which way packets to a peer travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Through the relay server.
    Relay,
    /// Over the WebRTC data channel, peer to peer.
    Direct,
}

/// What the game allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMode {
    /// Direct when it works, the relay otherwise (the default).
    #[default]
    Automatic,
    /// Always the relay: no WebRTC connection is attempted, so no player learns another's IP
    /// address.
    ForceRelay,
    /// Never the relay: the peer is unreachable until the direct channel opens.
    DirectOnly,
}

/// Why the direct path was given up (the last reason is kept for the game to show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectFailure {
    /// ICE did not find a working pair of candidates within the timeout.
    IceTimeout,
    /// The WebRTC stack reported that ICE failed.
    IceFailed,
    /// The data channel closed.
    ChannelClosed,
    /// The data channel stopped delivering packets.
    Silent,
    /// The peer said it no longer uses the direct path (its side went silent, closed or is
    /// holding off), so this side follows it to the relay.
    PeerFellBack,
}

/// Timing settings of [`PeerPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConfig {
    /// What the game allows.
    pub mode: PathMode,
    /// How long the ICE attempt may take.
    pub ice_timeout: Duration,
    /// Silence on the direct channel after which it is considered dead.
    pub direct_silence: Duration,
    /// While on the relay with an open channel, send one packet in this many directly too.
    pub probe_every: u32,
    /// After the direct path went silent, how long to stay on the relay before a probe that
    /// gets through brings it back (doubling with each silence, so a path that keeps
    /// stalling, e.g. under heavy loss, does not make the match flap between paths).
    pub return_holdoff: Duration,
    /// Silence on the direct channel after which packets also go over the relay and copies
    /// are asked for, while the path stays direct (see the module docs).
    pub hedge_after: Duration,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            mode: PathMode::Automatic,
            ice_timeout: DEFAULT_ICE_TIMEOUT,
            direct_silence: DEFAULT_DIRECT_SILENCE,
            probe_every: DEFAULT_PROBE_EVERY,
            return_holdoff: DEFAULT_RETURN_HOLDOFF,
            hedge_after: DEFAULT_HEDGE_AFTER,
        }
    }
}

/// Where to send one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Send it over the relay.
    pub relay: bool,
    /// Send it over the direct channel.
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// ICE is running; the deadline is when we give up on it.
    Connecting { deadline: Instant },
    /// The data channel is open.
    Open,
    /// The attempt failed or the channel closed; only a new attempt can bring it back.
    Down,
}

/// The path state of one remote peer.
#[derive(Debug, Clone)]
pub struct PeerPath {
    config: PathConfig,
    channel: Channel,
    path: Path,
    last_direct_rx: Option<Instant>,
    switches: u32,
    last_failure: Option<DirectFailure>,
    sent: u32,
    /// After a silence: not back to direct before this.
    holdoff_until: Option<Instant>,
    /// The next silence's hold-off.
    holdoff: Duration,
    /// Since when the path has been direct.
    direct_since: Option<Instant>,
    /// The peer asked for copies over the relay: send both ways until then.
    copies_until: Option<Instant>,
    /// What the peer's newest packet said: it is ready for the direct path.
    peer_ready: bool,
    /// Whether the peer has ever said so (until then an open channel carries every packet
    /// both ways, so that the peer's proof comes quickly).
    peer_ever_ready: bool,
}

impl PeerPath {
    /// A peer that has just become present at `now`; a direct attempt starts now unless the
    /// mode forces the relay.
    pub fn new(config: PathConfig, now: Instant) -> Self {
        let channel = match config.mode {
            PathMode::ForceRelay => Channel::Down,
            _ => Channel::Connecting {
                deadline: now + config.ice_timeout,
            },
        };
        PeerPath {
            config,
            channel,
            path: Path::Relay,
            last_direct_rx: None,
            switches: 0,
            last_failure: None,
            sent: 0,
            holdoff_until: None,
            holdoff: config.return_holdoff,
            direct_since: None,
            copies_until: None,
            peer_ready: false,
            peer_ever_ready: false,
        }
    }

    /// The path packets take now.
    pub fn path(&self) -> Path {
        self.path
    }

    /// How many times the path changed.
    pub fn switches(&self) -> u32 {
        self.switches
    }

    /// Why the direct path was last given up, if it was.
    pub fn last_failure(&self) -> Option<DirectFailure> {
        self.last_failure
    }

    /// Whether the peer can be reached at all (in direct-only mode, not before the channel
    /// carries traffic).
    pub fn reachable(&self) -> bool {
        self.config.mode != PathMode::DirectOnly || self.path == Path::Direct
    }

    fn switch(&mut self, to: Path) {
        if self.path != to {
            self.path = to;
            self.switches += 1;
        }
    }

    fn fail(&mut self, why: DirectFailure) {
        self.last_failure = Some(why);
        self.switch(Path::Relay);
    }

    /// A new direct attempt starts (after a failure, when the signaling brings a new offer).
    pub fn on_attempt(&mut self, now: Instant) {
        if self.config.mode != PathMode::ForceRelay {
            self.channel = Channel::Connecting {
                deadline: now + self.config.ice_timeout,
            };
        }
    }

    /// The data channel opened.
    pub fn on_channel_open(&mut self, _now: Instant) {
        if self.config.mode != PathMode::ForceRelay {
            self.channel = Channel::Open;
        }
    }

    /// The WebRTC stack reported that ICE failed.
    pub fn on_ice_failed(&mut self, _now: Instant) {
        if self.channel != Channel::Down {
            self.channel = Channel::Down;
            self.fail(DirectFailure::IceFailed);
        }
    }

    /// The data channel closed.
    pub fn on_channel_closed(&mut self, _now: Instant) {
        if self.channel != Channel::Down {
            self.channel = Channel::Down;
            self.fail(DirectFailure::ChannelClosed);
        }
    }

    /// A packet from this peer arrived over the direct channel.
    pub fn on_direct_received(&mut self, now: Instant) {
        if self.config.mode == PathMode::ForceRelay {
            return;
        }
        self.last_direct_rx = Some(now);
        self.channel = Channel::Open;
        self.update(now);
    }

    /// The peer's newest packet (over either path) said whether the peer is ready for the
    /// direct path (see [`PeerPath::ready`]; the `FLAG_DIRECT_READY` header bit).
    pub fn on_peer_state(&mut self, now: Instant, peer_ready: bool) {
        self.peer_ready = peer_ready;
        self.peer_ever_ready |= peer_ready;
        self.update(now);
    }

    /// Whether this side is ready for the direct path: the channel is open, a packet came
    /// over it within [`PathConfig::direct_silence`], and no hold-off runs. Every packet to
    /// the peer says so; the path is direct while both sides are ready.
    pub fn ready(&self, now: Instant) -> bool {
        self.config.mode != PathMode::ForceRelay
            && self.channel == Channel::Open
            && self
                .last_direct_rx
                .is_some_and(|t| now.saturating_duration_since(t) < self.config.direct_silence)
            && self.holdoff_until.is_none_or(|t| now >= t)
    }

    /// What the peer's newest packet said about its side (see [`PeerPath::on_peer_state`]).
    pub fn peer_ready(&self) -> bool {
        self.peer_ready
    }

    /// Moves to the direct path when both sides are ready, and off it when the peer is not.
    fn update(&mut self, now: Instant) {
        match self.path {
            Path::Relay if self.peer_ready && self.ready(now) => {
                self.direct_since = Some(now);
                self.switch(Path::Direct);
            }
            // (This side's own silence is `poll`'s, with its hold-off.)
            Path::Direct if !self.peer_ready => self.fail(DirectFailure::PeerFellBack),
            _ => {}
        }
    }

    /// Whether this side is short of the peer's direct packets: the channel is open and has
    /// carried traffic, but nothing came over it for [`PathConfig::hedge_after`]. Packets to
    /// the peer then carry the request for copies over the relay.
    pub fn wants_copies(&self, now: Instant) -> bool {
        self.config.mode == PathMode::Automatic
            && self.path == Path::Direct
            && self.channel == Channel::Open
            && self
                .last_direct_rx
                .is_some_and(|t| now.saturating_duration_since(t) >= self.config.hedge_after)
    }

    /// The settings.
    pub fn config(&self) -> PathConfig {
        self.config
    }

    /// Whether the peer's last request for copies still holds at `now`.
    pub fn copies_requested(&self, now: Instant) -> bool {
        self.copies_until.is_some_and(|t| now < t)
    }

    /// When [`PeerPath::wants_copies`] turns true if nothing arrives directly before then
    /// (the caller checks at that moment, to ask at once).
    pub fn copies_wanted_at(&self) -> Option<Instant> {
        if self.config.mode != PathMode::Automatic
            || self.path != Path::Direct
            || self.channel != Channel::Open
        {
            return None;
        }
        self.last_direct_rx.map(|t| t + self.config.hedge_after)
    }

    /// A packet from the peer asked for copies over the relay (its direct side is quiet).
    pub fn on_copies_requested(&mut self, now: Instant) {
        self.copies_until = Some(now + COPIES_HOLD);
    }

    /// Time passes: checks the ICE deadline, the direct channel's silence and the hold-off.
    pub fn poll(&mut self, now: Instant) {
        match self.channel {
            Channel::Connecting { deadline } if now >= deadline => {
                self.channel = Channel::Down;
                self.fail(DirectFailure::IceTimeout);
            }
            Channel::Open if self.path == Path::Direct => {
                let silent = self
                    .last_direct_rx
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.config.direct_silence);
                if silent {
                    self.fail(DirectFailure::Silent);
                    self.holdoff_until = Some(now + self.holdoff);
                    self.holdoff = (self.holdoff * 2).min(MAX_RETURN_HOLDOFF);
                } else if self
                    .direct_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= STABLE_DIRECT)
                {
                    self.holdoff = self.config.return_holdoff;
                }
            }
            _ => {}
        }
        self.update(now);
    }

    /// The next time [`PeerPath::poll`] has something to check, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        match self.channel {
            Channel::Connecting { deadline } => Some(deadline),
            Channel::Open if self.path == Path::Direct => {
                self.last_direct_rx.map(|t| t + self.config.direct_silence)
            }
            Channel::Open => self.holdoff_until.filter(|_| self.peer_ready),
            Channel::Down => None,
        }
    }

    /// Where the next packet to this peer goes.
    pub fn route(&mut self, now: Instant) -> Route {
        self.poll(now);
        self.sent = self.sent.wrapping_add(1);
        let relay_allowed = self.config.mode != PathMode::DirectOnly;
        match (self.path, self.channel) {
            // Direct, with copies over the relay while either side hears nothing directly.
            (Path::Direct, _) => Route {
                relay: relay_allowed
                    && (self.wants_copies(now) || self.copies_until.is_some_and(|t| now < t)),
                direct: true,
            },
            // Open but not yet proven both ways: both, so nothing waits on the proof.
            (Path::Relay, Channel::Open)
                if self.last_direct_rx.is_none() || !self.peer_ever_ready =>
            {
                Route {
                    relay: relay_allowed,
                    direct: true,
                }
            }
            // Fell back with the channel still open: probe it now and then.
            (Path::Relay, Channel::Open) => Route {
                relay: relay_allowed,
                direct: !relay_allowed || self.sent.is_multiple_of(self.config.probe_every.max(1)),
            },
            (Path::Relay, _) => Route {
                relay: relay_allowed,
                direct: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A packet from a peer that is ready for the direct path arrives over the direct channel.
    fn rx(p: &mut PeerPath, at: Instant) {
        p.on_direct_received(at);
        p.on_peer_state(at, true);
    }

    #[test]
    fn relay_first_then_direct_once_traffic_flows() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        assert_eq!(
            p.route(t0),
            Route {
                relay: true,
                direct: false
            }
        );
        p.on_channel_open(ms(t0, 400));
        assert_eq!(
            p.route(ms(t0, 401)),
            Route {
                relay: true,
                direct: true
            }
        );
        assert_eq!(p.path(), Path::Relay);
        rx(&mut p, ms(t0, 420));
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(
            p.route(ms(t0, 421)),
            Route {
                relay: false,
                direct: true
            }
        );
        assert_eq!(p.switches(), 1);
        assert_eq!(p.last_failure(), None);
    }

    #[test]
    fn ice_timeout_falls_back_and_keeps_playing() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.poll(ms(t0, 2999));
        assert_eq!(p.last_failure(), None);
        p.poll(ms(t0, 3000));
        assert_eq!(p.last_failure(), Some(DirectFailure::IceTimeout));
        assert_eq!(
            p.route(ms(t0, 3001)),
            Route {
                relay: true,
                direct: false
            }
        );
        assert_eq!(p.poll_at(), None);
        // A late open still upgrades to direct once traffic arrives.
        p.on_channel_open(ms(t0, 5000));
        rx(&mut p, ms(t0, 5010));
        assert_eq!(p.path(), Path::Direct);
    }

    #[test]
    fn silent_direct_path_goes_back_to_relay_and_returns() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 100));
        rx(&mut p, ms(t0, 110));
        for t in (120..2000).step_by(16) {
            rx(&mut p, ms(t0, t));
            assert!(p.route(ms(t0, t)).direct);
        }
        // The direct path dies mid-match: within a second, packets go by relay.
        assert_eq!(p.poll_at(), Some(ms(t0, 1992 + 1000)));
        p.poll(ms(t0, 2991));
        assert_eq!(p.path(), Path::Direct);
        p.poll(ms(t0, 2992));
        assert_eq!(p.path(), Path::Relay);
        assert_eq!(p.last_failure(), Some(DirectFailure::Silent));
        // Probes keep going over the open channel; one that gets through after the hold-off
        // (2 s) brings the direct path back.
        let probes = (0..16).filter(|_| p.route(ms(t0, 3000)).direct).count();
        assert_eq!(probes, 2);
        rx(&mut p, ms(t0, 3100));
        assert_eq!(p.path(), Path::Relay, "held off");
        rx(&mut p, ms(t0, 4992));
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(p.switches(), 3);
    }

    #[test]
    fn a_direct_path_that_keeps_stalling_is_held_off_longer_each_time() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 0));
        let mut t = 10;
        let mut holdoffs = Vec::new();
        for _ in 0..6 {
            rx(&mut p, ms(t0, t));
            assert_eq!(p.path(), Path::Direct);
            // Silent for a second: back to the relay.
            t += 1000;
            p.poll(ms(t0, t));
            assert_eq!(p.path(), Path::Relay);
            // Probes get through; find when direct is used again.
            let failed_at = t;
            while p.path() == Path::Relay {
                t += 100;
                rx(&mut p, ms(t0, t));
            }
            holdoffs.push(t - failed_at);
        }
        assert_eq!(holdoffs, [2000, 4000, 8000, 16000, 32000, 32000]);
        // Ten seconds of good direct traffic: the hold-off starts over.
        for _ in 0..700 {
            t += 16;
            rx(&mut p, ms(t0, t));
            p.poll(ms(t0, t));
        }
        t += 1000;
        p.poll(ms(t0, t));
        assert_eq!(p.path(), Path::Relay);
        let failed_at = t;
        while p.path() == Path::Relay {
            t += 100;
            rx(&mut p, ms(t0, t));
        }
        assert_eq!(t - failed_at, 2000);
    }

    #[test]
    fn failures_reported() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_ice_failed(ms(t0, 50));
        assert_eq!(p.last_failure(), Some(DirectFailure::IceFailed));
        p.on_attempt(ms(t0, 60));
        p.on_channel_open(ms(t0, 70));
        rx(&mut p, ms(t0, 80));
        p.on_channel_closed(ms(t0, 90));
        assert_eq!(p.path(), Path::Relay);
        assert_eq!(p.last_failure(), Some(DirectFailure::ChannelClosed));
    }

    #[test]
    fn modes() {
        let t0 = Instant::now();
        let force = PathConfig {
            mode: PathMode::ForceRelay,
            ..PathConfig::default()
        };
        let mut p = PeerPath::new(force, t0);
        p.on_channel_open(t0);
        rx(&mut p, t0);
        assert_eq!(p.path(), Path::Relay);
        assert_eq!(
            p.route(t0),
            Route {
                relay: true,
                direct: false
            }
        );
        assert_eq!(p.poll_at(), None);

        let direct = PathConfig {
            mode: PathMode::DirectOnly,
            ..PathConfig::default()
        };
        let mut p = PeerPath::new(direct, t0);
        assert!(!p.reachable());
        assert_eq!(
            p.route(t0),
            Route {
                relay: false,
                direct: false
            }
        );
        p.on_channel_open(t0);
        assert_eq!(
            p.route(t0),
            Route {
                relay: false,
                direct: true
            }
        );
        rx(&mut p, t0);
        assert!(p.reachable());
        // Direct only: a quiet channel gets no copies over the relay, and asks for none.
        assert!(!p.wants_copies(ms(t0, 500)));
        p.on_copies_requested(ms(t0, 500));
        assert_eq!(
            p.route(ms(t0, 500)),
            Route {
                relay: false,
                direct: true
            }
        );
    }

    /// A direct path whose packets flow, at 60 a second from `from` to `to` (ms after `t0`).
    fn direct_traffic(p: &mut PeerPath, t0: Instant, from: u64, to: u64) {
        for t in (from..to).step_by(16) {
            rx(p, ms(t0, t));
            assert_eq!(
                p.route(ms(t0, t)),
                Route {
                    relay: false,
                    direct: true
                },
                "at {t} ms"
            );
        }
    }

    #[test]
    fn a_quiet_direct_path_is_covered_by_copies_over_the_relay() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        assert!(
            !p.wants_copies(t0),
            "nothing is asked of an unproven channel"
        );
        p.on_channel_open(ms(t0, 100));
        direct_traffic(&mut p, t0, 110, 1000);
        // The last packet of 110, 126, ... below 1000; quiet for less than 150 ms after it:
        // direct only.
        let last = 990;
        assert!(!p.wants_copies(ms(t0, last + 149)));
        assert!(!p.route(ms(t0, last + 149)).relay);
        // Then this side asks for copies and sends its own both ways, still on the direct path.
        assert!(p.wants_copies(ms(t0, last + 150)));
        for t in [last + 150, last + 600, last + 999] {
            assert_eq!(
                p.route(ms(t0, t)),
                Route {
                    relay: true,
                    direct: true
                },
                "at {t} ms"
            );
        }
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(p.switches(), 1);
        // The channel delivers again: direct only, no switch happened.
        direct_traffic(&mut p, t0, last + 1000, last + 2000);
        assert_eq!(p.switches(), 1);
        assert_eq!(p.last_failure(), None);
    }

    #[test]
    fn copies_asked_for_go_both_ways_for_half_a_second() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 100));
        direct_traffic(&mut p, t0, 110, 1000);
        // The peer hears nothing directly from us, though we hear it.
        p.on_copies_requested(ms(t0, 1000));
        for t in (1000..1500).step_by(16) {
            rx(&mut p, ms(t0, t));
            assert!(!p.wants_copies(ms(t0, t)));
            assert_eq!(
                p.route(ms(t0, t)),
                Route {
                    relay: true,
                    direct: true
                },
                "at {t} ms"
            );
        }
        // No further request: direct only again.
        direct_traffic(&mut p, t0, 1500, 2000);
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(p.switches(), 1);

        // On the relay (forced), requests change nothing.
        let force = PathConfig {
            mode: PathMode::ForceRelay,
            ..PathConfig::default()
        };
        let mut p = PeerPath::new(force, t0);
        p.on_copies_requested(t0);
        assert_eq!(
            p.route(t0),
            Route {
                relay: true,
                direct: false
            }
        );
    }

    #[test]
    fn direct_needs_both_sides_ready() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 100));
        p.on_direct_received(ms(t0, 110));
        assert!(p.ready(ms(t0, 110)));
        assert_eq!(p.path(), Path::Relay, "the peer has not said it hears us");
        assert_eq!(
            p.route(ms(t0, 120)),
            Route {
                relay: true,
                direct: true
            },
            "both ways until the peer has proven the channel too"
        );
        p.on_peer_state(ms(t0, 130), true);
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(p.switches(), 1);
    }

    #[test]
    fn the_peer_falling_back_takes_this_side_along_without_a_holdoff() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 0));
        direct_traffic(&mut p, t0, 10, 500);
        // The peer's newest packet: it no longer uses the direct path (it hears us fine).
        p.on_direct_received(ms(t0, 500));
        p.on_peer_state(ms(t0, 500), false);
        assert_eq!(p.path(), Path::Relay);
        assert_eq!(p.last_failure(), Some(DirectFailure::PeerFellBack));
        // Probing, not both ways: the channel was proven.
        let probes = (0..16).filter(|_| p.route(ms(t0, 510)).direct).count();
        assert_eq!(probes, 2);
        // The peer is ready again: back at once (its own hold-off was the one that counted).
        rx(&mut p, ms(t0, 700));
        assert_eq!(p.path(), Path::Direct);
        assert_eq!(p.switches(), 3);
    }

    /// Two ends of a pair, A and B, exchanging one packet each way every 16 ms with a 10 ms
    /// trip, with the direct channel from `B` to `A` cut between `cut` and `heal` ms. Returns
    /// the longest time (ms) the two ends were on different paths.
    fn pair(cut: u64, heal: u64, until: u64) -> (u64, PeerPath, PeerPath) {
        let t0 = Instant::now();
        let mut a = PeerPath::new(PathConfig::default(), t0);
        let mut b = PeerPath::new(PathConfig::default(), t0);
        a.on_channel_open(t0);
        b.on_channel_open(t0);
        // In flight: (arrival ms, to A?, over direct?, sender ready).
        let mut flight: Vec<(u64, bool, bool, bool)> = Vec::new();
        let (mut disagree_since, mut longest) = (None, 0);
        for t in 0..until {
            let now = ms(t0, t);
            flight.retain(|&(at, to_a, direct, ready)| {
                if at != t {
                    return true;
                }
                let p = if to_a { &mut a } else { &mut b };
                if direct {
                    p.on_direct_received(now);
                }
                p.on_peer_state(now, ready);
                false
            });
            a.poll(now);
            b.poll(now);
            if t % 16 == 0 {
                for (from_a, p) in [(true, &mut a), (false, &mut b)] {
                    let ready = p.ready(now);
                    let route = p.route(now);
                    let cut_now = !from_a && (cut..heal).contains(&t);
                    if route.direct && !cut_now {
                        flight.push((t + 10, !from_a, true, ready));
                    }
                    if route.relay {
                        flight.push((t + 10, !from_a, false, ready));
                    }
                }
            }
            if a.path() != b.path() {
                let since = *disagree_since.get_or_insert(t);
                longest = longest.max(t - since);
            } else {
                disagree_since = None;
            }
        }
        (longest, a, b)
    }

    #[test]
    fn the_two_ends_agree_when_one_direction_dies() {
        // One direction of the direct channel dies at 2 s and comes back at 5 s.
        let (longest, a, b) = pair(2000, 5000, 12_000);
        assert!(longest <= 40, "disagreed for {longest} ms");
        assert_eq!(a.path(), Path::Direct);
        assert_eq!(b.path(), Path::Direct);
        assert_eq!(a.last_failure(), Some(DirectFailure::Silent));
        assert_eq!(b.last_failure(), Some(DirectFailure::PeerFellBack));
        assert_eq!(a.switches(), b.switches());
        // For good: both end on the relay.
        let (longest, a, b) = pair(2000, u64::MAX, 12_000);
        assert!(longest <= 40, "disagreed for {longest} ms");
        assert_eq!((a.path(), b.path()), (Path::Relay, Path::Relay));
    }
}
