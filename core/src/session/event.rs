//! What the game reads from a session: [`Advance`], [`Event`], [`SessionStats`], [`PeerStats`].

use std::fmt::Debug;
use std::time::Duration;

use crate::messages::MessageStats;
use crate::session::desync::DesyncReport;
use crate::session::forensics::ForensicBundle;
use crate::wire::socket::SocketStats;

/// What one call to `advance` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The game advanced one frame; if it first rolled back, `rollback` is how many frames
    /// were re-simulated.
    Advanced {
        /// Frames rolled back and re-simulated before this frame (0 = none).
        rollback: u32,
    },
    /// Still exchanging handshakes with the peers: nothing was simulated.
    Synchronizing,
    /// Waiting for remote inputs (the prediction window is full, or a lockstep frame is not
    /// confirmed yet): no new frame was simulated, though inputs that arrived may have
    /// corrected past frames by a rollback (counted in [`SessionStats`]). Call again next
    /// step.
    Waiting,
}

/// Something the game may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<A> {
    /// Handshake progress with a peer.
    Synchronizing {
        /// The peer.
        peer: A,
        /// Handshake round trips done.
        count: u32,
        /// Round trips needed.
        total: u32,
    },
    /// The handshake with a peer is done.
    Synchronized {
        /// The peer.
        peer: A,
    },
    /// No packets from a peer for a while; it will be disconnected after `timeout`.
    Interrupted {
        /// The peer.
        peer: A,
        /// Time left before it is disconnected.
        timeout: Duration,
    },
    /// Packets from an interrupted peer flow again.
    Resumed {
        /// The peer.
        peer: A,
    },
    /// A peer was disconnected; its inputs are all-zero (status `Disconnected`) from now on.
    Disconnected {
        /// The peer.
        peer: A,
        /// The frame this session was at when the peer was disconnected: from about there on,
        /// its players' inputs are the all-zero input with status `Disconnected`. Every other
        /// participant gets its own event, so none of them plays on without knowing.
        frame: i32,
    },
    /// The match moved to a new session epoch at `frame` so that a player could take its
    /// seat again (see [`crate::session::rejoin`]): every player gets it, the returning one
    /// too. The game's state is the confirmed one before `frame`; frames this player had
    /// predicted past it were rewound, as in a rollback.
    Rebased {
        /// The new epoch (1 after the first rejoin).
        epoch: u32,
        /// Its first frame.
        frame: i32,
        /// Frames this player went back (0 for the returning player).
        rewound: i32,
        /// The returning player's peer (`None` on the returning player itself).
        rejoined: Option<A>,
    },
    /// A rejoin did not complete on this side (the reason says why). The returning player
    /// asks again, with a new request, when its side fails or the state does not arrive
    /// within the disconnect timeout; the others go on without it meanwhile.
    RejoinFailed {
        /// Why.
        reason: crate::session::rejoin::RejoinError,
    },
    /// A peer computed a different state for a confirmed frame.
    Desync(DesyncReport<A>),
    /// The desync with a peer, investigated: the exact first frame that differs and both
    /// peers' states there and at the frame before (see [`crate::session::forensics`]).
    /// Save it ([`ForensicBundle::to_json`]) and read it with `ricochet-desync`.
    DesyncForensics(Box<ForensicBundle>),
    /// A match message from another player ([`Session::send_message`](crate::Session::send_message)):
    /// each arrives exactly once, in the order its sender sent it.
    Message {
        /// The sender's player handle (the lowest, if its peer plays several).
        from: usize,
        /// The sender's peer.
        peer: A,
        /// The application's op code.
        op: u8,
        /// The application's data.
        data: Vec<u8>,
    },
}

/// Counters of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames advanced (the frame the next `advance` simulates).
    pub frame: i32,
    /// Last frame whose inputs from every player are known.
    pub confirmed_frame: i32,
    /// Number of rollbacks.
    pub rollbacks: u64,
    /// Frames re-simulated by rollbacks, in all.
    pub rollback_frames: u64,
    /// Deepest rollback, in frames.
    pub max_rollback: u32,
    /// Calls to `advance` that had to wait for remote inputs.
    pub waits: u64,
    /// Desyncs detected.
    pub desyncs: u64,
    /// Packet counters of the transport (malformed packets included).
    pub socket: SocketStats,
    /// Counters of the match messages (peer-to-peer sessions).
    pub messages: MessageStats,
}

/// Per-peer connection quality as ggrs measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Round-trip time in milliseconds.
    pub rtt_ms: u64,
    /// Inputs sent but not yet acknowledged.
    pub send_queue: usize,
    /// How many frames we are behind this peer (negative: ahead).
    pub local_frames_behind: i32,
    /// How many frames this peer is behind us (negative: ahead).
    pub remote_frames_behind: i32,
}
