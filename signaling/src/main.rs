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
    /// Sustained messages per second per client; beyond the burst the client is disconnected.
    #[arg(long, env = "RICOCHET_MESSAGES_PER_SECOND", default_value_t = ricochet_signaling::DEFAULT_MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// Messages a client may send at once above the sustained rate.
    #[arg(long, env = "RICOCHET_MESSAGE_BURST", default_value_t = ricochet_signaling::DEFAULT_MESSAGE_BURST)]
    message_burst: u32,
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
        max_message_size: args.max_message_size,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        ticket_ttl: Duration::from_secs(args.ticket_ttl_secs),
        max_players: args.max_players,
        max_matches: args.max_matches,
        messages_per_second: args.messages_per_second,
        message_burst: args.message_burst,
        ..Config::default()
    };
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
    ricochet_signaling::run_with_stun(listener, stun, stats, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
