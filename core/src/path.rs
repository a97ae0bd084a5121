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
        if self.path == Path::Relay && self.holdoff_until.is_some_and(|t| now < t) {
            return;
        }
        if self.path == Path::Relay {
            self.direct_since = Some(now);
        }
        self.switch(Path::Direct);
    }

    /// Whether this side is short of the peer's direct packets: the channel is open and has
    /// carried traffic, but nothing came over it for [`PathConfig::hedge_after`]. Packets to
    /// the peer then carry the request for copies over the relay.
    pub fn wants_copies(&self, now: Instant) -> bool {
        self.config.mode == PathMode::Automatic
            && self.channel == Channel::Open
            && self
                .last_direct_rx
                .is_some_and(|t| now.saturating_duration_since(t) >= self.config.hedge_after)
    }

    /// A packet from the peer asked for copies over the relay (its direct side is quiet).
    pub fn on_copies_requested(&mut self, now: Instant) {
        self.copies_until = Some(now + COPIES_HOLD);
    }

    /// Time passes: checks the ICE deadline and the direct channel's silence.
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
    }

    /// The next time [`PeerPath::poll`] has something to check, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        match self.channel {
            Channel::Connecting { deadline } => Some(deadline),
            Channel::Open if self.path == Path::Direct => {
                self.last_direct_rx.map(|t| t + self.config.direct_silence)
            }
            _ => None,
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
            // Open but not yet proven: both, so nothing waits on the proof.
            (Path::Relay, Channel::Open) if self.last_direct_rx.is_none() => Route {
                relay: relay_allowed,
                direct: true,
            },
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
        p.on_direct_received(ms(t0, 420));
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
        p.on_direct_received(ms(t0, 5010));
        assert_eq!(p.path(), Path::Direct);
    }

    #[test]
    fn silent_direct_path_goes_back_to_relay_and_returns() {
        let t0 = Instant::now();
        let mut p = PeerPath::new(PathConfig::default(), t0);
        p.on_channel_open(ms(t0, 100));
        p.on_direct_received(ms(t0, 110));
        for t in (120..2000).step_by(16) {
            p.on_direct_received(ms(t0, t));
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
        p.on_direct_received(ms(t0, 3100));
        assert_eq!(p.path(), Path::Relay, "held off");
        p.on_direct_received(ms(t0, 4992));
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
            p.on_direct_received(ms(t0, t));
            assert_eq!(p.path(), Path::Direct);
            // Silent for a second: back to the relay.
            t += 1000;
            p.poll(ms(t0, t));
            assert_eq!(p.path(), Path::Relay);
            // Probes get through; find when direct is used again.
            let failed_at = t;
            while p.path() == Path::Relay {
                t += 100;
                p.on_direct_received(ms(t0, t));
            }
            holdoffs.push(t - failed_at);
        }
        assert_eq!(holdoffs, [2000, 4000, 8000, 16000, 32000, 32000]);
        // Ten seconds of good direct traffic: the hold-off starts over.
        for _ in 0..700 {
            t += 16;
            p.on_direct_received(ms(t0, t));
            p.poll(ms(t0, t));
        }
        t += 1000;
        p.poll(ms(t0, t));
        assert_eq!(p.path(), Path::Relay);
        let failed_at = t;
        while p.path() == Path::Relay {
            t += 100;
            p.on_direct_received(ms(t0, t));
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
        p.on_direct_received(ms(t0, 80));
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
        p.on_direct_received(t0);
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
        p.on_direct_received(t0);
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
            p.on_direct_received(ms(t0, t));
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
            p.on_direct_received(ms(t0, t));
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
}
