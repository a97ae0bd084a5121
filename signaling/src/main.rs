//! `ricochet-signaling`: runs the Ricochet signaling server (see the library docs for routes).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ricochet_signaling::{Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};
use tracing_subscriber::EnvFilter;

/// Ricochet signaling server: matchbox-compatible signaling with matches, presence and relay
/// tickets.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RICOCHET_ADDR", default_value = "127.0.0.1:3536")]
    addr: SocketAddr,
    /// WebSocket URL of the relay, handed to members with their tickets.
    #[arg(long, env = "RICOCHET_RELAY_URL")]
    relay_url: Option<String>,
    /// Secret shared with the relay for signing tickets (at least 16 bytes); random if unset.
    #[arg(long, env = "RICOCHET_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Directory of static files to serve (e.g. the browser example).
    #[arg(long = "static", env = "RICOCHET_STATIC")]
    static_dir: Option<PathBuf>,
    /// Allowed WebSocket `Origin`s, comma-separated; empty allows all.
    #[arg(long, env = "RICOCHET_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Maximum open WebSocket connections.
    #[arg(long, env = "RICOCHET_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Maximum open WebSocket connections per client IP.
    #[arg(long, env = "RICOCHET_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
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
    #[arg(long, env = "RICOCHET_MAX_MESSAGE_SIZE", default_value_t = ricochet_signaling::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: usize,
    /// Disconnect a client silent for this many seconds.
    #[arg(long, env = "RICOCHET_IDLE_TIMEOUT_SECS", default_value_t = ricochet_signaling::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// Lifetime of relay tickets, seconds.
    #[arg(long, env = "RICOCHET_TICKET_TTL_SECS", default_value_t = ricochet_signaling::DEFAULT_TICKET_TTL.as_secs())]
    ticket_ttl_secs: u64,
    /// Player limit of named rooms and default for created matches (2..=16).
    #[arg(long, env = "RICOCHET_MAX_PLAYERS", default_value_t = ricochet_signaling::DEFAULT_MAX_PLAYERS)]
    max_players: u8,
    /// Maximum live matches.
    #[arg(long, env = "RICOCHET_MAX_MATCHES", default_value_t = ricochet_signaling::DEFAULT_MAX_MATCHES)]
    max_matches: usize,
    /// Also answer STUN Binding requests on this UDP address (e.g. `0.0.0.0:3478`).
    #[arg(long, env = "RICOCHET_STUN_ADDR")]
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
    #[arg(long, env = "RICOCHET_MESSAGES_PER_SECOND", default_value_t = ricochet_signaling::DEFAULT_MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// Messages a client may send at once above the sustained rate.
    #[arg(long, env = "RICOCHET_MESSAGE_BURST", default_value_t = ricochet_signaling::DEFAULT_MESSAGE_BURST)]
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let secret = match args.secret {
        Some(s) => s.into_bytes(),
        None => {
            let s = ricochet_signaling::random_secret();
            tracing::warn!(secret = %s, "no --secret given: generated one; give the relay the same");
            s.into_bytes()
        }
    };
    let config = Config {
        relay_url: args.relay_url,
        secret,
        static_dir: args.static_dir,
        allowed_origins: args.allowed_origins,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_tcp_connections: args.max_tcp_connections,
        max_tcp_connections_per_ip: args.max_tcp_connections_per_ip,
        http_header_timeout: Duration::from_secs(args.http_header_timeout_secs),
        http_idle_timeout: Duration::from_secs(args.http_idle_timeout_secs),
        max_request_head: args.max_request_head,
        max_message_size: args.max_message_size,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        ticket_ttl: Duration::from_secs(args.ticket_ttl_secs),
        max_players: args.max_players,
        max_matches: args.max_matches,
        messages_per_second: args.messages_per_second,
        message_burst: args.message_burst,
        create_rate_per_ip: args.create_rate_per_ip,
        create_burst_per_ip: args.create_burst_per_ip,
        max_created_matches_per_ip: args.max_created_matches_per_ip,
        join_rate_per_ip: args.join_rate_per_ip,
        join_burst_per_ip: args.join_burst_per_ip,
        match_join_rate: args.match_join_rate,
        match_join_burst: args.match_join_burst,
        signal_rate: args.signal_rate,
        signal_burst: args.signal_burst,
        signal_byte_rate: args.signal_byte_rate,
        signal_byte_burst: args.signal_byte_burst,
        meta_rate: args.meta_rate,
        meta_burst: args.meta_burst,
        max_tracked_addresses: args.max_tracked_addresses,
        ..Config::default()
    };
    ricochet_server_kit::raise_and_log_open_file_limit(config.max_tcp_connections);
    let stun = match args.stun_addr {
        Some(addr) => Some(
            tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("cannot bind the STUN port {addr}"))?,
        ),
        None => None,
    };
    // After the STUN port, so that accepting connections means both are ready.
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let stats = ricochet_signaling::stun::StunStats::default();
    let stun_limits = ricochet_signaling::stun::StunLimits {
        per_source_per_second: args.stun_per_source_per_second,
        per_source_burst: args.stun_per_source_burst,
        global_per_second: args.stun_global_per_second,
        max_sources: args.stun_max_sources,
    };
    ricochet_signaling::run_with_stun(listener, stun, stun_limits, stats, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
