//! Ricochet signaling server (work in progress).
