//! What both servers' `Config` types share: one error type for a setting that cannot be used,
//! and the checks their validating setters are made of.
//!
//! Every setting is named in errors by the binary flag that sets it (`--max-connections`),
//! which is also the setter's name without `set_` and with `-` for `_` wherever one setter sets
//! one value (`Config::set_max_connections`); a setter that takes a rate and a burst names
//! whichever of its two flags is wrong.

use std::time::Duration;

/// A server setting that cannot be used. The [`setting`](ConfigError::setting) is the flag that
/// sets it, without the leading `--`; the message starts with the flag.
///
/// ```
/// use ricochet_server_kit::{nonzero, ConfigError};
///
/// let e = nonzero(0usize, "max-connections").unwrap_err();
/// assert_eq!(e, ConfigError::Zero { setting: "max-connections" });
/// assert_eq!(e.to_string(), "--max-connections must be greater than zero");
/// assert_eq!(e.setting(), "max-connections");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The shared ticket secret is too short to sign with.
    #[error("--{setting} must be at least {min} bytes")]
    WeakSecret {
        /// The flag (`secret`).
        setting: &'static str,
        /// The shortest accepted secret, in bytes.
        min: usize,
    },
    /// A limit that must be at least 1, or a duration that must be positive, was zero.
    #[error("--{setting} must be greater than zero")]
    Zero {
        /// The flag.
        setting: &'static str,
    },
    /// A value below its minimum.
    #[error("--{setting} must be at least {min}, got {value}")]
    TooSmall {
        /// The flag.
        setting: &'static str,
        /// The smallest accepted value.
        min: u64,
        /// The value given.
        value: u64,
    },
    /// A value outside its accepted range.
    #[error("--{setting} must be in {min}..={max}, got {value}")]
    OutOfRange {
        /// The flag.
        setting: &'static str,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
        /// The value given.
        value: u64,
    },
    /// Anything else: a malformed value, or one that does not fit with another setting (the
    /// problem names the other flag and both values).
    #[error("--{setting} {problem}")]
    Invalid {
        /// The flag.
        setting: &'static str,
        /// What is wrong, as the rest of a sentence starting with the flag.
        problem: String,
    },
}

impl ConfigError {
    /// The flag that sets the offending value, without the leading `--`.
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::WeakSecret { setting, .. }
            | ConfigError::Zero { setting }
            | ConfigError::TooSmall { setting, .. }
            | ConfigError::OutOfRange { setting, .. }
            | ConfigError::Invalid { setting, .. } => setting,
        }
    }
}

/// `value`, unless it is zero (`0`, [`Duration::ZERO`]): then [`ConfigError::Zero`] naming
/// `setting`.
pub fn nonzero<T: PartialEq + Default>(value: T, setting: &'static str) -> Result<T, ConfigError> {
    if value == T::default() {
        Err(ConfigError::Zero { setting })
    } else {
        Ok(value)
    }
}

/// `value`, if it lies in `min..=max`; else [`ConfigError::OutOfRange`] naming `setting`.
pub fn in_range<T>(value: T, min: T, max: T, setting: &'static str) -> Result<T, ConfigError>
where
    T: PartialOrd + Copy + Into<u64>,
{
    if value < min || value > max {
        Err(ConfigError::OutOfRange {
            setting,
            min: min.into(),
            max: max.into(),
            value: value.into(),
        })
    } else {
        Ok(value)
    }
}

/// [`in_range`] for `usize` values (sizes, counts).
pub fn in_range_usize(
    value: usize,
    min: usize,
    max: usize,
    setting: &'static str,
) -> Result<usize, ConfigError> {
    if value < min || value > max {
        Err(ConfigError::OutOfRange {
            setting,
            min: min as u64,
            max: max as u64,
            value: value as u64,
        })
    } else {
        Ok(value)
    }
}

/// `value`, if it is at least `min`; else [`ConfigError::TooSmall`] naming `setting`.
pub fn at_least(value: usize, min: usize, setting: &'static str) -> Result<usize, ConfigError> {
    if value < min {
        Err(ConfigError::TooSmall {
            setting,
            min: min as u64,
            value: value as u64,
        })
    } else {
        Ok(value)
    }
}

/// `timeout`, if it is at least one second (for settings counted in whole seconds, such as
/// ticket lifetimes); else [`ConfigError::Invalid`] naming `setting`.
pub fn whole_seconds(timeout: Duration, setting: &'static str) -> Result<Duration, ConfigError> {
    if timeout < Duration::from_secs(1) {
        Err(ConfigError::Invalid {
            setting,
            problem: format!("must be at least 1 second, got {timeout:?}"),
        })
    } else {
        Ok(timeout)
    }
}

/// The shared ticket secret, if it has at least `min` bytes; else
/// [`ConfigError::WeakSecret`] (setting `secret`). The secret itself never appears in the error.
pub fn secret(secret: impl Into<Vec<u8>>, min: usize) -> Result<Vec<u8>, ConfigError> {
    let secret = secret.into();
    if secret.len() < min {
        Err(ConfigError::WeakSecret {
            setting: "secret",
            min,
        })
    } else {
        Ok(secret)
    }
}

/// Checks that a TCP connection cap (`tcp`, set by `--{tcp_setting}`) is at least the
/// WebSocket cap it sits in front of (`ws`, set by `--{ws_setting}`): below it, the WebSocket
/// cap's own answer (429 or 503 with a reason) could never be given.
pub fn tcp_cap_covers(
    tcp: usize,
    tcp_setting: &'static str,
    ws: usize,
    ws_setting: &'static str,
) -> Result<(), ConfigError> {
    if tcp < ws {
        Err(ConfigError::Invalid {
            setting: tcp_setting,
            problem: format!("({tcp}) must be at least --{ws_setting} ({ws})"),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_names_its_flag() {
        assert_eq!(
            nonzero(Duration::ZERO, "idle-timeout-secs")
                .unwrap_err()
                .to_string(),
            "--idle-timeout-secs must be greater than zero"
        );
        assert_eq!(nonzero(3u32, "x"), Ok(3));
        assert_eq!(
            in_range(1u8, 2, 16, "max-players").unwrap_err().to_string(),
            "--max-players must be in 2..=16, got 1"
        );
        assert_eq!(in_range(16u8, 2, 16, "max-players"), Ok(16));
        assert_eq!(
            in_range_usize(3, 4, 8, "max-frame-len")
                .unwrap_err()
                .setting(),
            "max-frame-len"
        );
        assert_eq!(
            at_least(100, 256, "max-message-size")
                .unwrap_err()
                .to_string(),
            "--max-message-size must be at least 256, got 100"
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(500), "ticket-ttl-secs")
                .unwrap_err()
                .to_string(),
            "--ticket-ttl-secs must be at least 1 second, got 500ms"
        );
        let weak = secret(b"short".to_vec(), 16).unwrap_err();
        assert_eq!(weak.to_string(), "--secret must be at least 16 bytes");
        assert!(!format!("{weak:?}").contains("short"));
        assert_eq!(secret(vec![7; 16], 16), Ok(vec![7; 16]));
        assert_eq!(
            tcp_cap_covers(10, "max-tcp-connections", 20, "max-connections")
                .unwrap_err()
                .to_string(),
            "--max-tcp-connections (10) must be at least --max-connections (20)"
        );
        assert_eq!(
            tcp_cap_covers(20, "max-tcp-connections", 20, "max-connections"),
            Ok(())
        );
    }
}
