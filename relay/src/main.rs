//! `ricochet-relay`: serves the relay on one port (WebSocket at `/`, `/health`, `/metrics`).
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ricochet_relay::Config;

/// Ricochet relay server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RICOCHET_ADDR", default_value = "127.0.0.1:3537")]
    addr: SocketAddr,
    /// Ticket secret shared with the signaling server (at least 16 bytes).
    #[arg(long, env = "RICOCHET_SECRET", hide_env_values = true)]
    secret: String,
    /// Largest client frame, header included, in bytes.
    #[arg(long, env = "RICOCHET_MAX_FRAME_LEN", default_value_t = ricochet_relay::DEFAULT_MAX_FRAME_LEN)]
    max_frame_len: usize,
    /// Frames per second one client may send on average.
    #[arg(long, env = "RICOCHET_FRAMES_PER_SECOND", default_value_t = ricochet_relay::DEFAULT_FRAMES_PER_SECOND)]
    frames_per_second: u32,
    /// Frames one client may send in a burst above its rate.
    #[arg(long, env = "RICOCHET_FRAME_BURST", default_value_t = ricochet_relay::DEFAULT_FRAME_BURST)]
    frame_burst: u32,
    /// Bytes per second one client may send on average (frames, pings and pongs).
    #[arg(long, env = "RICOCHET_RELAY_BYTES_PER_SECOND", default_value_t = ricochet_relay::DEFAULT_BYTES_PER_SECOND)]
    bytes_per_second: u32,
    /// Bytes one client may send in a burst above its byte rate.
    #[arg(long, env = "RICOCHET_RELAY_BYTE_BURST", default_value_t = ricochet_relay::DEFAULT_BYTE_BURST)]
    byte_burst: u32,
    /// Outbound queue per client, in frames per other member of its match (a client that
    /// falls further behind is cut off).
    #[arg(long, env = "RICOCHET_OUTBOUND_QUEUE", default_value_t = ricochet_relay::DEFAULT_OUTBOUND_QUEUE)]
    outbound_queue: usize,
    /// Outbound queue per client, in bytes per other member of its match.
    #[arg(long, env = "RICOCHET_RELAY_OUTBOUND_QUEUE_BYTES", default_value_t = ricochet_relay::DEFAULT_OUTBOUND_QUEUE_BYTES)]
    outbound_queue_bytes: usize,
    /// Most members in one match.
    #[arg(long, env = "RICOCHET_MAX_MEMBERS", default_value_t = ricochet_relay::DEFAULT_MAX_MEMBERS_PER_MATCH)]
    max_members: usize,
    /// Most simultaneous connections from one IP address.
    #[arg(long, env = "RICOCHET_MAX_CONNECTIONS_PER_IP", default_value_t = ricochet_relay::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Most simultaneous connections in total.
    #[arg(long, env = "RICOCHET_MAX_CONNECTIONS", default_value_t = ricochet_relay::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds without hearing from a client before it is disconnected.
    #[arg(long, env = "RICOCHET_IDLE_TIMEOUT_SECS", default_value_t = ricochet_relay::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// Seconds of silence from a client after which the relay pings it (checked this often).
    #[arg(long, env = "RICOCHET_PING_INTERVAL_SECS", default_value_t = ricochet_relay::DEFAULT_PING_INTERVAL.as_secs())]
    ping_interval_secs: u64,
    /// Dedicated single-threaded shard threads carrying the matches; 0 = run them on the
    /// main multi-threaded runtime.
    #[arg(long, env = "RICOCHET_SHARDS", default_value_t = ricochet_relay::DEFAULT_SHARDS)]
    shards: usize,
    /// Seconds an HTTP client has to send a complete request head.
    #[arg(long, env = "RICOCHET_RELAY_HTTP_HEADER_TIMEOUT_SECS", default_value_t = ricochet_relay::DEFAULT_HTTP_HEADER_TIMEOUT.as_secs())]
    http_header_timeout_secs: u64,
    /// Seconds an HTTP connection (not yet a WebSocket) may stay silent before it is closed.
    #[arg(long, env = "RICOCHET_RELAY_HTTP_IDLE_TIMEOUT_SECS", default_value_t = ricochet_relay::DEFAULT_HTTP_IDLE_TIMEOUT.as_secs())]
    http_idle_timeout_secs: u64,
    /// Largest HTTP request head (request line and headers), in bytes.
    #[arg(long, env = "RICOCHET_RELAY_MAX_REQUEST_HEAD", default_value_t = ricochet_relay::DEFAULT_MAX_REQUEST_HEAD)]
    max_request_head: usize,
    /// Most open TCP connections in total (HTTP and WebSocket; at least --max-connections).
    #[arg(long, env = "RICOCHET_RELAY_MAX_TCP_CONNECTIONS", default_value_t = ricochet_relay::DEFAULT_MAX_TCP_CONNECTIONS)]
    max_tcp_connections: usize,
    /// Most open TCP connections from one address (at least --max-connections-per-ip).
    #[arg(long, env = "RICOCHET_RELAY_MAX_TCP_CONNECTIONS_PER_IP", default_value_t = ricochet_relay::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP)]
    max_tcp_connections_per_ip: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ricochet_relay=info,ricochet_server_kit=info".into()),
        )
        .init();
    let a = Args::parse();
    let mut config = Config::new(a.secret.into_bytes())?;
    config
        .set_max_frame_len(a.max_frame_len)?
        .set_frame_rate(a.frames_per_second, a.frame_burst)?
        .set_byte_rate(a.bytes_per_second, a.byte_burst)?
        .set_outbound_queue(a.outbound_queue)?
        .set_outbound_queue_bytes(a.outbound_queue_bytes)?
        .set_max_members_per_match(a.max_members)?
        .set_max_connections_per_ip(a.max_connections_per_ip)?
        .set_max_connections(a.max_connections)?
        .set_idle_timeout(Duration::from_secs(a.idle_timeout_secs))?
        .set_ping_interval(Duration::from_secs(a.ping_interval_secs))?
        .set_shards(a.shards)?
        .set_http_header_timeout(Duration::from_secs(a.http_header_timeout_secs))?
        .set_http_idle_timeout(Duration::from_secs(a.http_idle_timeout_secs))?
        .set_max_request_head(a.max_request_head)?
        .set_max_tcp_connections(a.max_tcp_connections)?
        .set_max_tcp_connections_per_ip(a.max_tcp_connections_per_ip)?;
    ricochet_server_kit::raise_and_log_open_file_limit(a.max_tcp_connections);
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("binding {}", a.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "relay listening");
    ricochet_relay::run(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}
