//! [`Spectator`]: a session that watches a match.

use ggrs::GgrsError;

use crate::game::{Game, GgrsConfig};
use crate::session::replay::Replay;
use crate::session::*;
use crate::wire::socket::{Bounds, GgrsSocket, PacketSocket};

/// How far ahead of a spectator the host's inputs may be, in frames (ggrs buffers 60).
const SPECTATOR_LEAD: i32 = 64;

/// A session that watches a match: it receives the host's confirmed inputs and simulates
/// them, sending none.
pub struct Spectator<G: Game, A: Address, S> {
    pub(crate) ggrs: ggrs::SpectatorSession<GgrsConfig<G, A>>,
    pub(crate) socket: GgrsSocket<A, S>,
    pub(crate) core: Core<G, A>,
}

impl<G: Game, A: Address, S: PacketSocket<A> + 'static> Spectator<G, A, S> {
    /// Receives packets and simulates the next frame if the host's inputs for it are here
    /// (several frames at once when behind, at the catch-up speed).
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        self.socket.set_bounds(Bounds {
            current_frame: self.core.frame,
            confirmed_frame: self.core.frame - 1,
            // The host may be ahead by up to ggrs's spectator buffer (60 frames).
            max_prediction: SPECTATOR_LEAD,
            players: self.ggrs.num_players(),
        });
        self.ggrs.poll_remote_clients();
        let before = self.core.frame;
        let outcome = match self.ggrs.advance_frame() {
            Ok(requests) => {
                self.core.handle(game, requests)?;
                if self.core.frame > before {
                    Advance::Advanced { rollback: 0 }
                } else {
                    Advance::Waiting
                }
            }
            Err(GgrsError::NotSynchronized) => Advance::Synchronizing,
            Err(GgrsError::PredictionThreshold) => Advance::Waiting,
            Err(e) => return Err(from_ggrs(e)),
        };
        // Every frame a spectator simulates is confirmed.
        self.core.confirm(self.core.frame - 1);
        // A spectator takes no part in match messages: any that arrive are dropped here
        // rather than held by the socket.
        drop(self.socket.take_messages());
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            self.core.ggrs_event(e);
        }
        self.socket.flush();
        Ok(outcome)
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// How many frames the spectator is behind the host.
    pub fn frames_behind_host(&self) -> usize {
        self.ggrs.frames_behind_host()
    }

    /// Takes the events that happened since the last call.
    pub fn events(&mut self) -> impl Iterator<Item = Event<A>> + '_ {
        self.core.events.drain(..)
    }

    /// Counters of this session.
    pub fn stats(&self) -> SessionStats {
        let mut stats = self.core.stats.clone();
        stats.socket = self.socket.stats();
        stats
    }

    /// The replay recorded so far, if recording was enabled.
    pub fn replay(&self) -> Option<&Replay> {
        self.core.replay.as_ref()
    }

    /// The checksum of frame `frame`, as for [`Session::checksum_at`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }
}
