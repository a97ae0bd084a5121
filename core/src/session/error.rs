//! [`SessionError`].

use std::fmt::Debug;

use ggrs::GgrsError;

use crate::session::replay::ReplayError;

/// Errors of session setup and of the frame loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A builder setting is out of range or inconsistent.
    #[error("invalid session configuration: {0}")]
    InvalidConfig(String),
    /// A sync test found that re-simulating a frame gave a different checksum: the game is not
    /// deterministic. Frames are numbered as in [`DesyncReport`](crate::session::DesyncReport): `frame` is the first frame
    /// whose resulting state differed.
    #[error("sync test: frame {frame} gave a different checksum when re-simulated (game is not deterministic)")]
    NotDeterministic {
        /// The first frame whose checksum differed.
        frame: i32,
    },
    /// The spectator fell so far behind the host that it cannot catch up.
    #[error("spectator fell too far behind the host")]
    SpectatorTooFarBehind,
    /// ggrs asked to load a state that was never saved (a bug in Ricochet or ggrs).
    #[error("ggrs asked to load frame {0}, which was never saved")]
    MissingState(i32),
    /// A call the session cannot serve now (for example input for a handle that is not local).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// ggrs refused a call or a setting (for example input for a handle that is not local);
    /// its error is kept as the source.
    #[error("ggrs refused: {0}")]
    Ggrs(#[source] GgrsError),
    /// Replay recording failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

pub(crate) fn from_ggrs(err: GgrsError) -> SessionError {
    match err {
        GgrsError::MismatchedChecksum {
            current_frame,
            mismatched_frames,
        } => SessionError::NotDeterministic {
            // ggrs numbers a saved state by the frame about to run; Ricochet names a frame by
            // the state after its inputs, as desync reports do.
            frame: mismatched_frames.into_iter().min().unwrap_or(current_frame) - 1,
        },
        GgrsError::SpectatorTooFarBehind => SessionError::SpectatorTooFarBehind,
        other => SessionError::Ggrs(other),
    }
}
