//! [`SyncTest`]: a single-machine session that proves a game deterministic.

use crate::game::{Game, GgrsConfig, PodInput};
use crate::session::*;

/// A single-machine session that proves a game deterministic: each frame is rolled back and
/// re-simulated `check_distance` frames, and the checksums must agree.
pub struct SyncTest<G: Game, A: Address> {
    pub(crate) ggrs: ggrs::SyncTestSession<GgrsConfig<G, A>>,
    pub(crate) core: Core<G, A>,
    pub(crate) check_distance: i32,
}

impl<G: Game, A: Address> SyncTest<G, A> {
    /// Queues the input of player `handle` for the next frame.
    pub fn add_local_input(&mut self, handle: usize, input: G::Input) -> Result<(), SessionError> {
        self.ggrs
            .add_local_input(handle, PodInput(input))
            .map_err(from_ggrs)
    }

    /// Runs one frame with its re-simulations. Fails with
    /// [`SessionError::NotDeterministic`] naming the first frame whose checksum differed.
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        let requests = self.ggrs.advance_frame().map_err(from_ggrs)?;
        let rollback = self.core.handle(game, requests)?;
        // Frames older than the check distance are never re-simulated again.
        self.core.confirm(self.core.frame - 1 - self.check_distance);
        Ok(Advance::Advanced { rollback })
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// Counters (rollbacks here are the sync test's own re-simulations).
    pub fn stats(&self) -> SessionStats {
        self.core.stats.clone()
    }

    /// The checksum of frame `frame` once it is older than the check distance, as for
    /// [`Session::checksum_at`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }
}
