//! `ricochet-relay`: serves the relay on one port (WebSocket at `/`, `/health`, `/metrics`).
//!
//! Every flag can also be set from an environment variable prefixed `RICOCHET_RELAY_`
//! (`--max-connections` from `RICOCHET_RELAY_MAX_CONNECTIONS`), so that one environment can
//! configure both servers without one's address or limits reaching the other; the ticket
//! secret is the one shared variable, `RICOCHET_SECRET`, since both servers must hold the
//! same secret.
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
    #[arg(long, env = "RICOCHET_RELAY_ADDR", default_value = "127.0.0.1:3537")]
    addr: SocketAddr,
    /// Ticket secret shared with the signaling server (at least 16 bytes); the one variable
    /// both servers read.
    #[arg(long, env = "RICOCHET_SECRET", hide_env_values = true)]
    secret: String,
    /// Largest client frame, header included, in bytes.
    #[arg(long, env = "RICOCHET_RELAY_MAX_FRAME_LEN", default_value_t = ricochet_relay::DEFAULT_MAX_FRAME_LEN)]
    max_frame_len: usize,
    /// Frames per second one client may send on average.
    #[arg(long, env = "RICOCHET_RELAY_FRAMES_PER_SECOND", default_value_t = ricochet_relay::DEFAULT_FRAMES_PER_SECOND)]
    frames_per_second: u32,
    /// Frames one client may send in a burst above its rate.
    #[arg(long, env = "RICOCHET_RELAY_FRAME_BURST", default_value_t = ricochet_relay::DEFAULT_FRAME_BURST)]
    frame_burst: u32,
    /// Bytes per second one client may send on average (frames, pings and pongs).
    #[arg(long, env = "RICOCHET_RELAY_BYTES_PER_SECOND", default_value_t = ricochet_relay::DEFAULT_BYTES_PER_SECOND)]
    bytes_per_second: u32,
    /// Bytes one client may send in a burst above its byte rate.
    #[arg(long, env = "RICOCHET_RELAY_BYTE_BURST", default_value_t = ricochet_relay::DEFAULT_BYTE_BURST)]
    byte_burst: u32,
    /// Outbound queue per client, in frames per other member of its match (a client that
    /// falls further behind is cut off).
    #[arg(long, env = "RICOCHET_RELAY_OUTBOUND_QUEUE", default_value_t = ricochet_relay::DEFAULT_OUTBOUND_QUEUE)]
    outbound_queue: usize,
    /// Outbound queue per client, in bytes per other member of its match.
    #[arg(long, env = "RICOCHET_RELAY_OUTBOUND_QUEUE_BYTES", default_value_t = ricochet_relay::DEFAULT_OUTBOUND_QUEUE_BYTES)]
    outbound_queue_bytes: usize,
    /// Most members in one match.
    #[arg(long, env = "RICOCHET_RELAY_MAX_MEMBERS", default_value_t = ricochet_relay::DEFAULT_MAX_MEMBERS_PER_MATCH)]
    max_members: usize,
    /// Most spectators in one match (they do not count toward its players; 0 refuses them).
    #[arg(long, env = "RICOCHET_RELAY_MAX_SPECTATORS_PER_MATCH", default_value_t = ricochet_relay::DEFAULT_MAX_SPECTATORS_PER_MATCH)]
    max_spectators_per_match: usize,
    /// Bytes of stream inputs a match keeps after its latest key for late spectators (past
    /// it, nothing is kept until the next key).
    #[arg(long, env = "RICOCHET_RELAY_MAX_STREAM_BACKLOG_BYTES", default_value_t = ricochet_relay::DEFAULT_MAX_STREAM_BACKLOG_BYTES)]
    max_stream_backlog_bytes: usize,
    /// Most simultaneous connections from one IP address.
    #[arg(long, env = "RICOCHET_RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = ricochet_relay::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Most simultaneous connections in total.
    #[arg(long, env = "RICOCHET_RELAY_MAX_CONNECTIONS", default_value_t = ricochet_relay::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds without hearing from a client before it is disconnected.
    #[arg(long, env = "RICOCHET_RELAY_IDLE_TIMEOUT_SECS", default_value_t = ricochet_relay::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C, keep serving members this many seconds while /health says
    /// draining and new connections are refused, then close them with 1001 (a relay pool's
    /// signaling moves their matches to another relay meanwhile).
    #[arg(long, env = "RICOCHET_RELAY_DRAIN_SECS", default_value_t = 0)]
    drain_secs: u64,
    /// Seconds of silence from a client after which the relay pings it (checked this often).
    #[arg(long, env = "RICOCHET_RELAY_PING_INTERVAL_SECS", default_value_t = ricochet_relay::DEFAULT_PING_INTERVAL.as_secs())]
    ping_interval_secs: u64,
    /// Dedicated single-threaded shard threads carrying the matches; 0 = run them on the
    /// main multi-threaded runtime.
    #[arg(long, env = "RICOCHET_RELAY_SHARDS", default_value_t = ricochet_relay::DEFAULT_SHARDS)]
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

/// The environment variables this binary read before they were prefixed per binary, and
/// what it reads instead (a warning names any that is still set).
const RENAMED_ENV_VARS: &[(&str, &str)] = &[
    ("RICOCHET_ADDR", "RICOCHET_RELAY_ADDR"),
    ("RICOCHET_MAX_FRAME_LEN", "RICOCHET_RELAY_MAX_FRAME_LEN"),
    (
        "RICOCHET_FRAMES_PER_SECOND",
        "RICOCHET_RELAY_FRAMES_PER_SECOND",
    ),
    ("RICOCHET_FRAME_BURST", "RICOCHET_RELAY_FRAME_BURST"),
    ("RICOCHET_OUTBOUND_QUEUE", "RICOCHET_RELAY_OUTBOUND_QUEUE"),
    ("RICOCHET_MAX_MEMBERS", "RICOCHET_RELAY_MAX_MEMBERS"),
    (
        "RICOCHET_MAX_CONNECTIONS_PER_IP",
        "RICOCHET_RELAY_MAX_CONNECTIONS_PER_IP",
    ),
    ("RICOCHET_MAX_CONNECTIONS", "RICOCHET_RELAY_MAX_CONNECTIONS"),
    (
        "RICOCHET_IDLE_TIMEOUT_SECS",
        "RICOCHET_RELAY_IDLE_TIMEOUT_SECS",
    ),
    (
        "RICOCHET_PING_INTERVAL_SECS",
        "RICOCHET_RELAY_PING_INTERVAL_SECS",
    ),
    ("RICOCHET_SHARDS", "RICOCHET_RELAY_SHARDS"),
];

impl Args {
    /// The relay's settings from the flags; an unusable value is refused naming its flag.
    fn config(&self) -> Result<Config, ricochet_relay::ConfigError> {
        let mut config = Config::new(self.secret.as_bytes())?;
        config
            .set_max_frame_len(self.max_frame_len)?
            .set_frame_rate(self.frames_per_second, self.frame_burst)?
            .set_byte_rate(self.bytes_per_second, self.byte_burst)?
            .set_outbound_queue(self.outbound_queue)?
            .set_outbound_queue_bytes(self.outbound_queue_bytes)?
            .set_max_members_per_match(self.max_members)?
            .set_max_spectators_per_match(self.max_spectators_per_match)?
            .set_max_stream_backlog_bytes(self.max_stream_backlog_bytes)?
            .set_max_connections_per_ip(self.max_connections_per_ip)?
            .set_max_connections(self.max_connections)?
            .set_idle_timeout(Duration::from_secs(self.idle_timeout_secs))?
            .set_drain(Duration::from_secs(self.drain_secs))?
            .set_ping_interval(Duration::from_secs(self.ping_interval_secs))?
            .set_shards(self.shards)?
            .set_http_header_timeout(Duration::from_secs(self.http_header_timeout_secs))?
            .set_http_idle_timeout(Duration::from_secs(self.http_idle_timeout_secs))?
            .set_max_request_head(self.max_request_head)?
            .set_max_tcp_connections(self.max_tcp_connections)?
            .set_max_tcp_connections_per_ip(self.max_tcp_connections_per_ip)?;
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ricochet_server_kit::init_logging("ricochet_relay=info,ricochet_server_kit=info");
    let args = Args::parse();
    ricochet_server_kit::warn_renamed_env_vars(RENAMED_ENV_VARS);
    let config = args.config()?;
    ricochet_server_kit::raise_and_log_open_file_limit(config.max_tcp_connections());
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "relay listening");
    ricochet_relay::run(listener, config, ricochet_server_kit::shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every flag's variable carries the binary's prefix, except the shared ticket secret.
    #[test]
    fn every_environment_variable_is_prefixed_for_this_binary() {
        ricochet_server_kit::check_env_vars(&Args::command(), "RICOCHET_RELAY_", RENAMED_ENV_VARS)
            .unwrap();
    }

    #[test]
    fn flags_make_a_valid_config_and_bad_ones_name_the_flag() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ricochet-relay", "--secret", "a test secret of 16+ bytes"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv).unwrap().config()
        };
        let config = parse(&["--max-connections", "10", "--shards", "2"]).unwrap();
        assert_eq!((config.max_connections(), config.shards()), (10, 2));
        assert_eq!(
            (
                config.max_spectators_per_match(),
                config.max_stream_backlog_bytes()
            ),
            (
                ricochet_relay::DEFAULT_MAX_SPECTATORS_PER_MATCH,
                ricochet_relay::DEFAULT_MAX_STREAM_BACKLOG_BYTES
            )
        );
        let config = parse(&[
            "--max-spectators-per-match",
            "0",
            "--max-stream-backlog-bytes",
            "4096",
        ])
        .unwrap();
        assert_eq!(
            (
                config.max_spectators_per_match(),
                config.max_stream_backlog_bytes()
            ),
            (0, 4096)
        );
        for (flags, says) in [
            (
                &["--frames-per-second", "0"][..],
                "--frames-per-second must be greater than zero",
            ),
            (
                &["--max-members", "0"],
                "--max-members must be in 1..=65535, got 0",
            ),
            (
                &["--max-spectators-per-match", "70000"],
                "--max-spectators-per-match must be in 0..=65000, got 70000",
            ),
            (
                &["--ping-interval-secs", "0"],
                "--ping-interval-secs must be greater than zero",
            ),
            (
                &["--max-tcp-connections", "5"],
                "--max-tcp-connections (5) must be at least --max-connections (20000)",
            ),
        ] {
            assert_eq!(parse(flags).unwrap_err().to_string(), says, "{flags:?}");
        }
        let short = Args::try_parse_from(["ricochet-relay", "--secret", "short"]).unwrap();
        assert_eq!(
            short.config().unwrap_err().to_string(),
            "--secret must be at least 16 bytes"
        );
    }
}
