//! Ricochet: peer-to-peer rollback and lockstep netcode.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use ricochet_protocol as protocol;
