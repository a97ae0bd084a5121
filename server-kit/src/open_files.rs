//! The process's open-file limit (`RLIMIT_NOFILE`): every TCP connection holds a descriptor.

/// The open-file limit before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// Soft limit found at start, in descriptors.
    pub before: u64,
    /// Soft limit in force now, in descriptors.
    pub now: u64,
    /// Hard limit (the most the soft limit can be raised to without privileges).
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard limit, so that the server's TCP connection
/// caps, rather than the descriptor table, bound its connections. Binaries call it at start
/// and log the result; it changes nothing if the soft limit is already the hard one.
///
/// Errors: the limit could not be read or set (the returned error says which), or the
/// platform has no `RLIMIT_NOFILE` ([`std::io::ErrorKind::Unsupported`]).
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<OpenFileLimit> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    let mut now = soft;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
        now = getrlimit(Resource::RLIMIT_NOFILE)
            .map_err(std::io::Error::from)?
            .0;
    }
    // `rlim_t` is `u64` on Linux but not on every Unix.
    #[allow(clippy::useless_conversion)]
    Ok(OpenFileLimit {
        before: u64::from(soft),
        now: u64::from(now),
        hard: u64::from(hard),
    })
}

/// Raises the soft open-file limit to the hard limit (not available on this platform).
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> std::io::Result<OpenFileLimit> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this platform has no RLIMIT_NOFILE",
    ))
}

/// Descriptors a server needs besides its client sockets (listener, STUN socket, runtime,
/// log files), in descriptors.
pub const FD_HEADROOM: u64 = 64;

/// [`raise_open_file_limit`], with the outcome logged: an `info` event with the limits, and a
/// `warn` when the soft limit is below `max_tcp_connections` + [`FD_HEADROOM`] (then running
/// out of descriptors, rather than the TCP cap, is what stops new connections: `accept`
/// fails, and the front door backs off and logs it at most every few seconds).
pub fn raise_and_log_open_file_limit(max_tcp_connections: usize) -> Option<OpenFileLimit> {
    match raise_open_file_limit() {
        Ok(limit) => {
            tracing::info!(
                before = limit.before,
                now = limit.now,
                hard = limit.hard,
                "open-file limit (RLIMIT_NOFILE)"
            );
            let needed = (max_tcp_connections as u64).saturating_add(FD_HEADROOM);
            if limit.now < needed {
                tracing::warn!(
                    limit = limit.now,
                    max_tcp_connections,
                    "the open-file limit is below the TCP connection cap plus {FD_HEADROOM}: \
                     raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower the cap"
                );
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit (RLIMIT_NOFILE)");
            None
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise_open_file_limit().expect("raise RLIMIT_NOFILE");
        assert!(limit.before <= limit.now, "{limit:?}");
        assert_eq!(limit.now, limit.hard, "{limit:?}");
        // Raising again changes nothing.
        let again = raise_open_file_limit().unwrap();
        assert_eq!((again.before, again.now), (limit.now, limit.now));
    }
}
