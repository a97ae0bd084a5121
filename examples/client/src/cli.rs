//! The command-line flags that say which match to join and how (feature `cli`), shared by
//! `ricochet-bot` and `ricochet-native`: flatten [`JoinArgs`] into a binary's `clap::Parser`
//! with `#[command(flatten)]` and call [`JoinArgs::join_options`].

use std::time::Duration;

use ricochet::link::{PathConfig, PathMode};
use ricochet::net::connect::JoinOptions;
use ricochet::net::IceServer;

/// The signaling server `scripts/run` starts.
pub const DEFAULT_SIGNALING: &str = "ws://127.0.0.1:3536";
/// The match joined without `--match` (a binary may give its own default with
/// `#[command(mut_arg("match_name", |a| a.default_value("...")))]`).
pub const DEFAULT_MATCH: &str = "demo";
/// Players in the match without `--players`.
pub const DEFAULT_PLAYERS: usize = 2;
/// How long the direct (ICE) attempt may take without `--ice-timeout-ms`, in ms.
pub const DEFAULT_ICE_TIMEOUT_MS: u64 = 3000;

/// Which match to join, through which servers, over which paths.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct JoinArgs {
    /// Signaling server base URL (no match name).
    #[arg(long, env = "RICOCHET_SIGNALING", default_value = DEFAULT_SIGNALING)]
    pub signaling: String,
    /// Name of the match (room) to join: everyone who gives the same name plays together.
    #[arg(
        long = "match",
        visible_alias = "room",
        value_name = "NAME",
        default_value = DEFAULT_MATCH
    )]
    pub match_name: String,
    /// Players in the match; the game starts when all of them are there.
    #[arg(long, default_value_t = DEFAULT_PLAYERS)]
    pub players: usize,
    /// Send every packet through the relay and make no WebRTC connection at all (no other
    /// player learns this machine's addresses).
    #[arg(long)]
    pub force_relay: bool,
    /// How long the direct (ICE) attempt may take before a peer is relay-only, in ms.
    #[arg(long, default_value_t = DEFAULT_ICE_TIMEOUT_MS)]
    pub ice_timeout_ms: u64,
    /// A STUN server (`stun:HOST:PORT`) for the direct path; repeat for more. None by default
    /// (host candidates only, enough on one network).
    #[arg(long, value_name = "URL")]
    pub stun: Vec<String>,
    /// A TURN server (`turn:HOST:PORT`), repeatable, used with `--ice-username` and
    /// `--ice-credential`.
    #[arg(long, value_name = "URL")]
    pub turn: Vec<String>,
    /// TURN user name.
    #[arg(long, env = "RICOCHET_ICE_USERNAME")]
    pub ice_username: Option<String>,
    /// TURN credential.
    #[arg(long, env = "RICOCHET_ICE_CREDENTIAL")]
    pub ice_credential: Option<String>,
    /// The match's rejoin grace in seconds, if this player's join makes the match (its first
    /// member): how long signaling keeps a dropped player's place, at most the server's
    /// `--rejoin-grace-secs` (0: no rejoining). Default: the server's.
    #[arg(long, value_name = "SECS")]
    pub rejoin_grace_secs: Option<u64>,
}

impl JoinArgs {
    /// The options for [`ricochet::net::connect::join`]: the STUN servers, then one ICE server for
    /// all the TURN URLs (with the user name and credential), if any. The timeout is
    /// [`ricochet::net::connect::DEFAULT_JOIN_TIMEOUT`]; binaries with a timeout flag set
    /// `timeout` themselves.
    pub fn join_options(&self) -> JoinOptions {
        let mut options = JoinOptions::new(&self.signaling, &self.match_name, self.players);
        options.path = PathConfig {
            mode: if self.force_relay {
                PathMode::ForceRelay
            } else {
                PathMode::Automatic
            },
            ice_timeout: Duration::from_millis(self.ice_timeout_ms),
            ..PathConfig::default()
        };
        options.rejoin_grace = self.rejoin_grace_secs.map(Duration::from_secs);
        options.ice_servers = self.stun.iter().map(IceServer::stun).collect();
        if !self.turn.is_empty() {
            options.ice_servers.push(IceServer {
                urls: self.turn.clone(),
                username: self.ice_username.clone(),
                credential: self.ice_credential.clone(),
            });
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};
    use ricochet::net::connect::DEFAULT_JOIN_TIMEOUT;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        join: JoinArgs,
    }

    #[derive(Parser, Debug)]
    #[command(mut_arg("match_name", |a| a.default_value("bots")))]
    struct OtherDefault {
        #[command(flatten)]
        join: JoinArgs,
    }

    fn parse(args: &[&str]) -> Result<JoinArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|c| c.join)
    }

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
        OtherDefault::command().debug_assert();
    }

    #[test]
    fn defaults_join_the_demo_match_directly() {
        // Only when the environment does not name a server (as in `cargo test` here).
        if std::env::var_os("RICOCHET_SIGNALING").is_some()
            || std::env::var_os("RICOCHET_ICE_USERNAME").is_some()
        {
            return;
        }
        let args = parse(&[]).unwrap();
        let options = args.join_options();
        assert_eq!(options.signaling_url, DEFAULT_SIGNALING);
        assert_eq!(options.room, "demo");
        assert_eq!(options.players, 2);
        assert_eq!(options.path.mode, PathMode::Automatic);
        assert_eq!(options.path.ice_timeout, Duration::from_millis(3000));
        assert!(options.ice_servers.is_empty());
        assert_eq!(options.timeout, DEFAULT_JOIN_TIMEOUT);
        assert_eq!(options.room_url(), "ws://127.0.0.1:3536/demo");
    }

    #[test]
    fn match_and_room_name_the_same_match() {
        assert_eq!(parse(&["--match", "a"]).unwrap().match_name, "a");
        assert_eq!(parse(&["--room", "b"]).unwrap().match_name, "b");
        assert!(parse(&["--match", "a", "--room", "b"]).is_err());
    }

    #[test]
    fn a_binary_can_give_its_own_default_match() {
        let args = OtherDefault::try_parse_from(["test"]).unwrap().join;
        assert_eq!(args.match_name, "bots");
        let args = OtherDefault::try_parse_from(["test", "--room", "x"])
            .unwrap()
            .join;
        assert_eq!(args.match_name, "x");
    }

    #[test]
    fn flags_reach_the_join_options() {
        let args = parse(&[
            "--signaling",
            "ws://192.0.2.1:4000/",
            "--match",
            "m",
            "--players",
            "3",
            "--force-relay",
            "--ice-timeout-ms",
            "250",
            "--stun",
            "stun:a:1",
            "--stun",
            "stun:b:2",
            "--turn",
            "turn:c:3",
            "--turn",
            "turn:d:4",
            "--ice-username",
            "u",
            "--ice-credential",
            "p",
        ])
        .unwrap();
        let options = args.join_options();
        assert_eq!(options.room_url(), "ws://192.0.2.1:4000/m");
        assert_eq!(options.players, 3);
        assert_eq!(options.path.mode, PathMode::ForceRelay);
        assert_eq!(options.path.ice_timeout, Duration::from_millis(250));
        assert_eq!(
            options.ice_servers,
            [
                IceServer::stun("stun:a:1"),
                IceServer::stun("stun:b:2"),
                IceServer {
                    urls: vec!["turn:c:3".into(), "turn:d:4".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                },
            ]
        );
    }

    #[test]
    fn bad_numbers_are_errors() {
        assert!(parse(&["--players", "two"]).is_err());
        assert!(parse(&["--ice-timeout-ms", "-1"]).is_err());
    }
}
