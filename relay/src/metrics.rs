//! Prometheus metrics, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub(crate) reason: &'static str,
}

/// Every metric the relay exports.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) connections: Gauge,
    pub(crate) members: Gauge,
    pub(crate) matches: Gauge,
    pub(crate) frames_in: Counter,
    pub(crate) frames_out: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) dropped: Family<Reason, Counter>,
    pub(crate) disconnects: Family<Reason, Counter>,
    pub(crate) rejected: Family<Reason, Counter>,
    pub(crate) queue_depth: Histogram,
    pub(crate) renewals: Counter,
    /// Spectators in all matches.
    pub(crate) spectators: Gauge,
    /// STREAM records forwarded to the spectators (each counted once).
    pub(crate) stream_records: Counter,
    /// STREAM frames queued for spectators (live records and join backlogs).
    pub(crate) stream_deliveries: Counter,
    /// STREAM records dropped because they did not continue the stream (duplicates from a
    /// second streaming player, records after a gap, old keys).
    pub(crate) stream_dropped: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("relay");
        let m = Metrics {
            connections: Gauge::default(),
            members: Gauge::default(),
            matches: Gauge::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            dropped: Family::default(),
            disconnects: Family::default(),
            rejected: Family::default(),
            queue_depth: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            renewals: Counter::default(),
            spectators: Gauge::default(),
            stream_records: Counter::default(),
            stream_deliveries: Counter::default(),
            stream_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register("members", "Members in all matches", m.members.clone());
        registry.register("matches", "Live matches", m.matches.clone());
        registry.register(
            "frames_in",
            "Frames received from clients",
            m.frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames written to clients",
            m.frames_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Frame bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Frame bytes written to clients",
            m.bytes_out.clone(),
        );
        registry.register(
            "frames_dropped",
            "Client frames refused, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "disconnects",
            "Closed member connections, by reason",
            m.disconnects.clone(),
        );
        registry.register(
            "upgrades_rejected",
            "WebSocket upgrades refused before the handshake, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "ticket_renewals",
            "Memberships extended by a RENEW frame with a later ticket",
            m.renewals.clone(),
        );
        registry.register(
            "spectators",
            "Spectators in all matches",
            m.spectators.clone(),
        );
        registry.register(
            "stream_records",
            "STREAM records forwarded to spectators",
            m.stream_records.clone(),
        );
        registry.register(
            "stream_deliveries",
            "STREAM frames queued for spectators, join backlogs included",
            m.stream_deliveries.clone(),
        );
        registry.register(
            "stream_records_dropped",
            "STREAM records dropped as duplicate or out of order",
            m.stream_dropped.clone(),
        );
        registry.register(
            "queue_depth",
            "Frames waiting in a client's outbound queue when its writer drains it",
            m.queue_depth.clone(),
        );
        Metrics { registry, ..m }
    }

    pub(crate) fn disconnect(&self, reason: &'static str) {
        self.disconnects.get_or_create(&Reason { reason }).inc();
    }

    pub(crate) fn drop_frame(&self, reason: &'static str) {
        self.dropped.get_or_create(&Reason { reason }).inc();
    }

    pub(crate) fn encode(&self) -> String {
        ricochet_server_kit::encode_metrics(&self.registry)
    }
}
