//! `ricochet-signaling`: runs the Ricochet signaling server (see the library docs for routes).
//!
//! Every flag can also be set from an environment variable prefixed `RICOCHET_SIGNALING_`
//! (`--max-connections` from `RICOCHET_SIGNALING_MAX_CONNECTIONS`), so that one environment can
//! configure both servers without one's address or limits reaching the other; the ticket
//! secret is the one shared variable, `RICOCHET_SECRET`, since both servers must hold the
//! same secret.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ricochet_signaling::{Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};

/// Ricochet signaling server: matchbox-compatible signaling with matches, presence and relay
/// tickets.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "RICOCHET_SIGNALING_ADDR",
        default_value = "127.0.0.1:3536"
    )]
    addr: SocketAddr,
    /// WebSocket URL of the relay, handed to members with their tickets; several (repeat the
    /// flag, or comma-separated in the variable) make a pool: each match gets the relay with
    /// the fewest matches among those that answer, and moves when its relay stops answering.
    #[arg(long, env = "RICOCHET_SIGNALING_RELAY_URL", value_delimiter = ',')]
    relay_url: Vec<String>,
    /// Secret shared with the relay for signing tickets (at least 16 bytes); random if unset.
    /// The one variable both servers read.
    #[arg(long, env = "RICOCHET_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Directory of static files to serve (e.g. the browser example).
    #[arg(long = "static", env = "RICOCHET_SIGNALING_STATIC")]
    static_dir: Option<PathBuf>,
    /// Allowed WebSocket `Origin`s, comma-separated; empty allows all.
    #[arg(
        long,
        env = "RICOCHET_SIGNALING_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Maximum open WebSocket connections.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Maximum open WebSocket connections per client IP.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Maximum open TCP connections, HTTP and WebSocket (at least --max-connections).
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_TCP_CONNECTIONS", default_value_t = ricochet_signaling::DEFAULT_MAX_TCP_CONNECTIONS)]
    max_tcp_connections: usize,
    /// Maximum open TCP connections per client address (at least --max-connections-per-ip).
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_TCP_CONNECTIONS_PER_IP", default_value_t = ricochet_signaling::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP)]
    max_tcp_connections_per_ip: usize,
    /// Seconds an HTTP client has to send a complete request head.
    #[arg(long, env = "RICOCHET_SIGNALING_HTTP_HEADER_TIMEOUT_SECS", default_value_t = ricochet_signaling::DEFAULT_HTTP_HEADER_TIMEOUT.as_secs())]
    http_header_timeout_secs: u64,
    /// Seconds an HTTP connection (not yet a WebSocket) may stay silent before it is closed.
    #[arg(long, env = "RICOCHET_SIGNALING_HTTP_IDLE_TIMEOUT_SECS", default_value_t = ricochet_signaling::DEFAULT_HTTP_IDLE_TIMEOUT.as_secs())]
    http_idle_timeout_secs: u64,
    /// Largest HTTP request head (request line and headers), bytes.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_REQUEST_HEAD", default_value_t = ricochet_signaling::DEFAULT_MAX_REQUEST_HEAD)]
    max_request_head: usize,
    /// Largest message accepted from a client, bytes.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_MESSAGE_SIZE", default_value_t = ricochet_signaling::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: usize,
    /// Disconnect a client silent for this many seconds.
    #[arg(long, env = "RICOCHET_SIGNALING_IDLE_TIMEOUT_SECS", default_value_t = ricochet_signaling::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// Seconds a member whose connection dropped keeps its place for a rejoin (0: none).
    #[arg(long, env = "RICOCHET_SIGNALING_REJOIN_GRACE_SECS", default_value_t = ricochet_signaling::DEFAULT_REJOIN_GRACE.as_secs())]
    rejoin_grace_secs: u64,
    /// Bearer token of the operator console at /admin (at least 16 characters); unset: the
    /// console is off.
    #[arg(long, env = "RICOCHET_SIGNALING_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Redis URL of a cluster of signaling nodes sharing their matches (redis://HOST:PORT);
    /// unset: a lone node with its state in memory.
    #[arg(long, env = "RICOCHET_SIGNALING_REDIS")]
    redis: Option<String>,
    /// With --redis: the ws://HOST:PORT the other nodes reach this node at.
    #[arg(long, env = "RICOCHET_SIGNALING_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Lifetime of relay tickets, seconds.
    #[arg(long, env = "RICOCHET_SIGNALING_TICKET_TTL_SECS", default_value_t = ricochet_signaling::DEFAULT_TICKET_TTL.as_secs())]
    ticket_ttl_secs: u64,
    /// Player limit of named rooms and default for created matches (2..=16).
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_PLAYERS", default_value_t = ricochet_signaling::DEFAULT_MAX_PLAYERS)]
    max_players: u8,
    /// Maximum live matches.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_MATCHES", default_value_t = ricochet_signaling::DEFAULT_MAX_MATCHES)]
    max_matches: usize,
    /// Maximum spectators (`?spectate=1`) of one match; 0 refuses every spectator.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_SPECTATORS_PER_MATCH", default_value_t = ricochet_signaling::DEFAULT_MAX_SPECTATORS_PER_MATCH)]
    max_spectators_per_match: usize,
    /// Also answer STUN Binding requests on this UDP address (e.g. `0.0.0.0:3478`).
    #[arg(long, env = "RICOCHET_SIGNALING_STUN_ADDR")]
    stun_addr: Option<SocketAddr>,
    /// STUN replies per second to one source (IPv4 address or IPv6 /64); 0 = no limit.
    #[arg(long, env = "RICOCHET_SIGNALING_STUN_PER_SOURCE_PER_SECOND", default_value_t = ricochet_signaling::stun::DEFAULT_PER_SOURCE_PER_SECOND)]
    stun_per_source_per_second: u32,
    /// STUN replies one source may get at once above its sustained rate.
    #[arg(long, env = "RICOCHET_SIGNALING_STUN_PER_SOURCE_BURST", default_value_t = ricochet_signaling::stun::DEFAULT_PER_SOURCE_BURST)]
    stun_per_source_burst: u32,
    /// STUN replies per second to all sources together; 0 = no limit.
    #[arg(long, env = "RICOCHET_SIGNALING_STUN_GLOBAL_PER_SECOND", default_value_t = ricochet_signaling::stun::DEFAULT_GLOBAL_PER_SECOND)]
    stun_global_per_second: u32,
    /// Most STUN sources whose reply budget is remembered at once.
    #[arg(long, env = "RICOCHET_SIGNALING_STUN_MAX_SOURCES", default_value_t = ricochet_signaling::stun::DEFAULT_MAX_SOURCES)]
    stun_max_sources: usize,
    /// Sustained messages per second per client; beyond the burst the client is disconnected.
    #[arg(long, env = "RICOCHET_SIGNALING_MESSAGES_PER_SECOND", default_value_t = ricochet_signaling::DEFAULT_MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// Messages a client may send at once above the sustained rate.
    #[arg(long, env = "RICOCHET_SIGNALING_MESSAGE_BURST", default_value_t = ricochet_signaling::DEFAULT_MESSAGE_BURST)]
    message_burst: u32,
    /// `POST /matches` per second per client address (IPv4 address or IPv6 /64); beyond the
    /// burst: 429 `create_rate_limited`.
    #[arg(long, env = "RICOCHET_SIGNALING_CREATE_RATE_PER_IP", default_value_t = ricochet_signaling::DEFAULT_CREATE_RATE_PER_IP)]
    create_rate_per_ip: u32,
    /// `POST /matches` a client address may make at once.
    #[arg(long, env = "RICOCHET_SIGNALING_CREATE_BURST_PER_IP", default_value_t = ricochet_signaling::DEFAULT_CREATE_BURST_PER_IP)]
    create_burst_per_ip: u32,
    /// Live created matches per client address; beyond: 429 `too_many_matches_from_ip`.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_CREATED_MATCHES_PER_IP", default_value_t = ricochet_signaling::DEFAULT_MAX_CREATED_MATCHES_PER_IP)]
    max_created_matches_per_ip: usize,
    /// WebSocket joins per second per client address; beyond the burst: 429 `join_rate_limited`.
    #[arg(long, env = "RICOCHET_SIGNALING_JOIN_RATE_PER_IP", default_value_t = ricochet_signaling::DEFAULT_JOIN_RATE_PER_IP)]
    join_rate_per_ip: u32,
    /// WebSocket joins a client address may make at once.
    #[arg(long, env = "RICOCHET_SIGNALING_JOIN_BURST_PER_IP", default_value_t = ricochet_signaling::DEFAULT_JOIN_BURST_PER_IP)]
    join_burst_per_ip: u32,
    /// Joins per second into one match, from every address; beyond the burst: 429
    /// `match_join_rate_limited`.
    #[arg(long, env = "RICOCHET_SIGNALING_MATCH_JOIN_RATE", default_value_t = ricochet_signaling::DEFAULT_MATCH_JOIN_RATE)]
    match_join_rate: u32,
    /// Joins into one match at once.
    #[arg(long, env = "RICOCHET_SIGNALING_MATCH_JOIN_BURST", default_value_t = ricochet_signaling::DEFAULT_MATCH_JOIN_BURST)]
    match_join_burst: u32,
    /// Signals per second from one member to one other member; beyond the burst the sender gets
    /// a `signal_rate_limited` error.
    #[arg(long, env = "RICOCHET_SIGNALING_SIGNAL_RATE", default_value_t = ricochet_signaling::DEFAULT_SIGNAL_RATE)]
    signal_rate: u32,
    /// Signals from one member to one other member at once.
    #[arg(long, env = "RICOCHET_SIGNALING_SIGNAL_BURST", default_value_t = ricochet_signaling::DEFAULT_SIGNAL_BURST)]
    signal_burst: u32,
    /// Signal bytes per second from one member to one other member.
    #[arg(long, env = "RICOCHET_SIGNALING_SIGNAL_BYTE_RATE", default_value_t = ricochet_signaling::DEFAULT_SIGNAL_BYTE_RATE)]
    signal_byte_rate: u32,
    /// Signal bytes from one member to one other member at once (at least --max-message-size).
    #[arg(long, env = "RICOCHET_SIGNALING_SIGNAL_BYTE_BURST", default_value_t = ricochet_signaling::DEFAULT_SIGNAL_BYTE_BURST)]
    signal_byte_burst: u32,
    /// Metadata changes per second per member; beyond the burst: a `meta_rate_limited` error.
    #[arg(long, env = "RICOCHET_SIGNALING_META_RATE", default_value_t = ricochet_signaling::DEFAULT_META_RATE)]
    meta_rate: u32,
    /// Metadata changes a member may make at once.
    #[arg(long, env = "RICOCHET_SIGNALING_META_BURST", default_value_t = ricochet_signaling::DEFAULT_META_BURST)]
    meta_burst: u32,
    /// Client addresses each per-address rate limit remembers at once.
    #[arg(long, env = "RICOCHET_SIGNALING_MAX_TRACKED_ADDRESSES", default_value_t = ricochet_signaling::DEFAULT_MAX_TRACKED_ADDRESSES)]
    max_tracked_addresses: usize,
}

/// The environment variables this binary read before they were prefixed per binary, and
/// what it reads instead (a warning names any that is still set).
const RENAMED_ENV_VARS: &[(&str, &str)] = &[
    ("RICOCHET_ADDR", "RICOCHET_SIGNALING_ADDR"),
    ("RICOCHET_RELAY_URL", "RICOCHET_SIGNALING_RELAY_URL"),
    ("RICOCHET_STATIC", "RICOCHET_SIGNALING_STATIC"),
    (
        "RICOCHET_ALLOWED_ORIGINS",
        "RICOCHET_SIGNALING_ALLOWED_ORIGINS",
    ),
    (
        "RICOCHET_MAX_CONNECTIONS",
        "RICOCHET_SIGNALING_MAX_CONNECTIONS",
    ),
    (
        "RICOCHET_MAX_CONNECTIONS_PER_IP",
        "RICOCHET_SIGNALING_MAX_CONNECTIONS_PER_IP",
    ),
    (
        "RICOCHET_MAX_MESSAGE_SIZE",
        "RICOCHET_SIGNALING_MAX_MESSAGE_SIZE",
    ),
    (
        "RICOCHET_IDLE_TIMEOUT_SECS",
        "RICOCHET_SIGNALING_IDLE_TIMEOUT_SECS",
    ),
    (
        "RICOCHET_TICKET_TTL_SECS",
        "RICOCHET_SIGNALING_TICKET_TTL_SECS",
    ),
    ("RICOCHET_MAX_PLAYERS", "RICOCHET_SIGNALING_MAX_PLAYERS"),
    ("RICOCHET_MAX_MATCHES", "RICOCHET_SIGNALING_MAX_MATCHES"),
    ("RICOCHET_STUN_ADDR", "RICOCHET_SIGNALING_STUN_ADDR"),
    (
        "RICOCHET_MESSAGES_PER_SECOND",
        "RICOCHET_SIGNALING_MESSAGES_PER_SECOND",
    ),
    ("RICOCHET_MESSAGE_BURST", "RICOCHET_SIGNALING_MESSAGE_BURST"),
];

impl Args {
    /// The server's settings from the flags, with `secret`; an unusable value is refused
    /// naming its flag.
    fn config(&self, secret: Vec<u8>) -> Result<Config, ricochet_signaling::ConfigError> {
        let mut config = Config::new(secret)?;
        config
            .set_relay_urls(self.relay_url.clone())?
            .set_static_dir(self.static_dir.clone())
            .set_allowed_origins(self.allowed_origins.clone())
            .set_max_connections(self.max_connections)?
            .set_max_connections_per_ip(self.max_connections_per_ip)?
            .set_max_tcp_connections(self.max_tcp_connections)?
            .set_max_tcp_connections_per_ip(self.max_tcp_connections_per_ip)?
            .set_http_header_timeout(Duration::from_secs(self.http_header_timeout_secs))?
            .set_http_idle_timeout(Duration::from_secs(self.http_idle_timeout_secs))?
            .set_max_request_head(self.max_request_head)?
            .set_max_message_size(self.max_message_size)?
            .set_idle_timeout(Duration::from_secs(self.idle_timeout_secs))?
            .set_rejoin_grace(Duration::from_secs(self.rejoin_grace_secs))?
            .set_admin_token(self.admin_token.as_deref())?
            .set_cluster(self.redis.as_deref(), self.advertise_url.as_deref())?
            .set_ticket_ttl(Duration::from_secs(self.ticket_ttl_secs))?
            .set_max_players(self.max_players)?
            .set_max_matches(self.max_matches)?
            .set_max_spectators_per_match(self.max_spectators_per_match)
            .set_message_rate(self.messages_per_second, self.message_burst)?
            .set_create_rate_per_ip(self.create_rate_per_ip, self.create_burst_per_ip)?
            .set_max_created_matches_per_ip(self.max_created_matches_per_ip)?
            .set_join_rate_per_ip(self.join_rate_per_ip, self.join_burst_per_ip)?
            .set_match_join_rate(self.match_join_rate, self.match_join_burst)?
            .set_signal_rate(self.signal_rate, self.signal_burst)?
            .set_signal_byte_rate(self.signal_byte_rate, self.signal_byte_burst)?
            .set_meta_rate(self.meta_rate, self.meta_burst)?
            .set_max_tracked_addresses(self.max_tracked_addresses)?
            .set_stun_limits(ricochet_signaling::stun::StunLimits {
                per_source_per_second: self.stun_per_source_per_second,
                per_source_burst: self.stun_per_source_burst,
                global_per_second: self.stun_global_per_second,
                max_sources: self.stun_max_sources,
            })?;
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_server_kit::init_logging("info");
    let args = Args::parse();
    ricochet_server_kit::warn_renamed_env_vars(RENAMED_ENV_VARS);
    let secret = match &args.secret {
        Some(s) => s.clone().into_bytes(),
        None => {
            let s = ricochet_signaling::random_secret();
            tracing::warn!(secret = %s, "no --secret given: generated one; give the relay the same");
            s.into_bytes()
        }
    };
    let config = args.config(secret)?;
    ricochet_server_kit::raise_and_log_open_file_limit(config.max_tcp_connections());
    let stun = match args.stun_addr {
        Some(addr) => Some(
            tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("cannot bind the STUN port {addr}"))?,
        ),
        None => None,
    };
    // After the STUN port, so that accepting connections means both are ready.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let mut listeners = ricochet_signaling::Listeners::new(listener);
    if let Some(stun) = stun {
        listeners = listeners.with_stun(stun);
    }
    ricochet_signaling::run(listeners, config, ricochet_server_kit::shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every flag's variable carries the binary's prefix, except the shared ticket secret.
    #[test]
    fn every_environment_variable_is_prefixed_for_this_binary() {
        ricochet_server_kit::check_env_vars(
            &Args::command(),
            "RICOCHET_SIGNALING_",
            RENAMED_ENV_VARS,
        )
        .unwrap();
    }

    #[test]
    fn flags_make_a_valid_config_and_bad_ones_name_the_flag() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ricochet-signaling"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
                .unwrap()
                .config(b"a test secret of 16+ bytes".to_vec())
        };
        let config = parse(&["--max-players", "4", "--relay-url", "wss://relay.example/"]).unwrap();
        assert_eq!(config.max_players(), 4);
        assert_eq!(config.relay_url(), Some("wss://relay.example/"));
        assert_eq!(
            config.max_spectators_per_match(),
            ricochet_signaling::DEFAULT_MAX_SPECTATORS_PER_MATCH
        );
        let config = parse(&["--max-spectators-per-match", "3"]).unwrap();
        assert_eq!(config.max_spectators_per_match(), 3);
        for (flags, says) in [
            (
                &["--max-players", "1"][..],
                "--max-players must be in 2..=16, got 1",
            ),
            (
                &["--ticket-ttl-secs", "0"],
                "--ticket-ttl-secs must be at least 1 second, got 0ns",
            ),
            (
                &["--meta-burst", "0"],
                "--meta-burst must be greater than zero",
            ),
            (
                &["--stun-max-sources", "0"],
                "--stun-max-sources must be greater than zero",
            ),
            (
                &["--relay-url", "relay.example:3537"],
                "--relay-url must be a ws:// or wss:// URL with a host, got \"relay.example:3537\"",
            ),
            (
                &["--max-tcp-connections-per-ip", "10"],
                "--max-tcp-connections-per-ip (10) must be at least --max-connections-per-ip (64)",
            ),
        ] {
            assert_eq!(parse(flags).unwrap_err().to_string(), says, "{flags:?}");
        }
    }
}
