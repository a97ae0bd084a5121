//! The page's options, from its query string.

/// Players in a match when the page does not say.
pub const DEFAULT_PLAYERS: usize = 2;
/// Most players the demo game has room for.
pub const MAX_PLAYERS: usize = ricochet_demo_game::MAX_PLAYERS;
/// Longest match name the signaling server accepts.
pub const MAX_MATCH_NAME: usize = 64;

/// What the page was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOptions {
    /// `match=NAME`: the match (named room or created match ID) to join; none shows the form.
    pub room: Option<String>,
    /// `players=N`: players in the match, 2 to 4.
    pub players: usize,
    /// `relay=force`: play over the relay only (no WebRTC, the other players never learn this
    /// browser's addresses).
    pub force_relay: bool,
    /// `autoplay=SEED`: seeded inputs instead of the keyboard.
    pub autoplay: Option<u64>,
    /// `frames=N`: record the checksum of frame `N - 1` (with `autoplay`, for tests).
    pub frames: Option<i32>,
    /// `stun=stun:HOST:PORT` (repeatable, may be percent-encoded): STUN servers for the direct
    /// path through NATs; none by default (host candidates only, enough on one network).
    pub stun: Vec<String>,
    /// `desync_interval=N`: compare checksums with the others every N frames (default 1; on a
    /// desync the forensics find the exact frame either way).
    pub desync_interval: u32,
    /// `spectate=1`: watch the match instead of playing (no seat; the relay sends the page
    /// the match's stream).
    pub spectate: bool,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions {
            room: None,
            players: DEFAULT_PLAYERS,
            force_relay: false,
            autoplay: None,
            frames: None,
            stun: Vec::new(),
            desync_interval: 1,
            spectate: false,
        }
    }
}

/// Whether `name` is a match name the signaling server accepts: 1 to 64 of `A-Z a-z 0-9 . _ ~ -`.
pub fn valid_match_name(name: &str) -> bool {
    (1..=MAX_MATCH_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

impl PageOptions {
    /// Parses a query string (`?a=b&c=d`, the leading `?` optional). Unknown keys are ignored
    /// (other tools may add their own); a bad value is an error naming it.
    pub fn parse(query: &str) -> Result<PageOptions, String> {
        let mut options = PageOptions::default();
        let query = query.strip_prefix('?').unwrap_or(query);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "match" if value.is_empty() => {}
                "match" => {
                    if !valid_match_name(value) {
                        return Err(format!(
                            "match name {value:?}: use 1 to {MAX_MATCH_NAME} letters, digits, \
                             '.', '_', '~' or '-'"
                        ));
                    }
                    options.room = Some(value.to_string());
                }
                "players" => {
                    options.players = value
                        .parse()
                        .ok()
                        .filter(|n| (2..=MAX_PLAYERS).contains(n))
                        .ok_or_else(|| {
                            format!("players={value}: a number from 2 to {MAX_PLAYERS}")
                        })?;
                }
                "relay" => match value {
                    "force" => options.force_relay = true,
                    "auto" | "" => options.force_relay = false,
                    _ => return Err(format!("relay={value}: use relay=force or relay=auto")),
                },
                "autoplay" => {
                    options.autoplay = Some(
                        value
                            .parse()
                            .map_err(|_| format!("autoplay={value}: a seed, 0 or more"))?,
                    );
                }
                "frames" => {
                    options.frames = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| format!("frames={value}: a number, 1 or more"))?,
                    );
                }
                "desync_interval" => {
                    options.desync_interval =
                        value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            format!("desync_interval={value}: a number, 1 or more")
                        })?;
                }
                "spectate" => match value {
                    "1" | "true" | "" => options.spectate = true,
                    "0" | "false" => options.spectate = false,
                    _ => return Err(format!("spectate={value}: use spectate=1 or spectate=0")),
                },
                "stun" => {
                    let url = percent_decode(value)
                        .filter(|u| u.starts_with("stun:") || u.starts_with("stuns:"))
                        .ok_or_else(|| format!("stun={value}: a URL like stun:HOST:PORT"))?;
                    options.stun.push(url);
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// Decodes `%XX` escapes (and `+` as a space); `None` if an escape is bad or the result is not
/// UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_servers_plain_or_percent_encoded() {
        let o =
            PageOptions::parse("?stun=stun:192.0.2.1:3478&stun=stun%3A192.0.2.2%3A3478").unwrap();
        assert_eq!(o.stun, ["stun:192.0.2.1:3478", "stun:192.0.2.2:3478"]);
        assert!(PageOptions::parse("?stun=http://x").is_err());
        assert!(PageOptions::parse("?stun=stun%3").is_err());
    }

    #[test]
    fn defaults_and_every_option() {
        assert_eq!(PageOptions::parse("").unwrap(), PageOptions::default());
        assert_eq!(PageOptions::parse("?match=").unwrap().room, None);
        let o = PageOptions::parse(
            "?match=friday-night&players=3&relay=force&autoplay=7&frames=600&desync_interval=10&spectate=1&x=1",
        )
        .unwrap();
        assert_eq!(
            o,
            PageOptions {
                room: Some("friday-night".into()),
                players: 3,
                force_relay: true,
                autoplay: Some(7),
                frames: Some(600),
                stun: Vec::new(),
                desync_interval: 10,
                spectate: true,
            }
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (query, named) in [
            ("match=a/b", "match name"),
            ("match=a%20b", "match name"),
            ("players=1", "players=1"),
            ("players=5", "players=5"),
            ("players=two", "players=two"),
            ("relay=sometimes", "relay=sometimes"),
            ("autoplay=-1", "autoplay=-1"),
            ("frames=0", "frames=0"),
            ("desync_interval=0", "desync_interval=0"),
            ("spectate=maybe", "spectate=maybe"),
        ] {
            let e = PageOptions::parse(query).unwrap_err();
            assert!(e.contains(named), "{query}: {e}");
        }
        assert!(PageOptions::parse(&format!("match={}", "a".repeat(65))).is_err());
        assert!(PageOptions::parse(&format!("match={}", "a".repeat(64))).is_ok());
    }
}
