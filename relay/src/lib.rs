//! Ricochet relay server (work in progress).
