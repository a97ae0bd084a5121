//! Prometheus metrics served at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a request, frame or connection was refused or cut off (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    BadRequest,
    UnknownMatch,
    MatchFull,
    OriginNotAllowed,
    ServerFull,
    TooManyConnectionsFromIp,
    TooManyMatches,
    ShuttingDown,
    Malformed,
    UnknownPeer,
    BadMeta,
    Oversize,
    RateLimited,
    TooSlow,
    IdleTimeout,
    CreateRateLimited,
    TooManyMatchesFromIp,
    JoinRateLimited,
    MatchJoinRateLimited,
    SignalRateLimited,
    MetaRateLimited,
    RejoinRefused,
    WrongPassword,
    MatchStarted,
    LobbyRefused,
    ReportRefused,
    AdminUnauthorized,
    ClusterUnavailable,
    /// A spectator join into a match that has the most spectators allowed.
    TooManySpectators,
    /// A frame a spectator may not send (a signal, metadata, lobby request or link report).
    SpectatorRefused,
}

impl Rejection {
    fn as_str(self) -> &'static str {
        match self {
            Rejection::BadRequest => "bad_request",
            Rejection::UnknownMatch => "unknown_match",
            Rejection::MatchFull => "match_full",
            Rejection::OriginNotAllowed => "origin_not_allowed",
            Rejection::ServerFull => "server_full",
            Rejection::TooManyConnectionsFromIp => "too_many_connections_from_ip",
            Rejection::TooManyMatches => "too_many_matches",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::Malformed => "malformed",
            Rejection::UnknownPeer => "unknown_peer",
            Rejection::BadMeta => "bad_meta",
            Rejection::Oversize => "oversize",
            Rejection::RateLimited => "rate_limited",
            Rejection::TooSlow => "too_slow",
            Rejection::IdleTimeout => "idle_timeout",
            Rejection::CreateRateLimited => "create_rate_limited",
            Rejection::TooManyMatchesFromIp => "too_many_matches_from_ip",
            Rejection::JoinRateLimited => "join_rate_limited",
            Rejection::MatchJoinRateLimited => "match_join_rate_limited",
            Rejection::SignalRateLimited => "signal_rate_limited",
            Rejection::MetaRateLimited => "meta_rate_limited",
            Rejection::RejoinRefused => "rejoin_refused",
            Rejection::WrongPassword => "wrong_password",
            Rejection::MatchStarted => "match_started",
            Rejection::LobbyRefused => "lobby_refused",
            Rejection::ReportRefused => "report_refused",
            Rejection::AdminUnauthorized => "admin_unauthorized",
            Rejection::ClusterUnavailable => "cluster_unavailable",
            Rejection::TooManySpectators => "too_many_spectators",
            Rejection::SpectatorRefused => "spectator_refused",
        }
    }
}

/// Kinds of frames received from clients (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageKind {
    Signal,
    KeepAlive,
    Extension,
    Invalid,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            MessageKind::Signal => "signal",
            MessageKind::KeepAlive => "keep_alive",
            MessageKind::Extension => "extension",
            MessageKind::Invalid => "invalid",
        }
    }
}

type Labels = [(&'static str, &'static str); 1];

/// The server's metrics; cheap to update from any task.
pub(crate) struct Metrics {
    registry: Registry,
    /// Open WebSocket connections (members of a match, and spectators).
    pub(crate) connections: Gauge,
    /// Spectators connected (`?spectate=1`), over every match.
    pub(crate) spectators: Gauge,
    /// WebSocket connections accepted since start.
    pub(crate) connections_total: Counter,
    /// Live matches.
    pub(crate) matches: Gauge,
    /// Memberships taken back by a rejoin since start.
    pub(crate) rejoins_total: Counter,
    /// Matches taken over from a dead node of the cluster.
    pub(crate) takeovers_total: Counter,
    /// Memberships whose connection dropped and that waited for a rejoin, since start.
    pub(crate) dropped_total: Counter,
    messages: Family<Labels, Counter>,
    rejections: Family<Labels, Counter>,
}

impl Metrics {
    /// The server's metrics, with a STUN responder's counters when one runs beside it.
    pub(crate) fn new(stun: Option<&crate::stun::StunStats>) -> Metrics {
        let mut registry = Registry::with_prefix("ricochet_signaling");
        if let Some(stun) = stun {
            stun.register(&mut registry);
        }
        let connections = Gauge::default();
        let connections_total = Counter::default();
        let matches = Gauge::default();
        let spectators = Gauge::default();
        let rejoins_total = Counter::default();
        let takeovers_total = Counter::default();
        let dropped_total = Counter::default();
        let messages = Family::<Labels, Counter>::default();
        let rejections = Family::<Labels, Counter>::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "WebSocket connections accepted since start",
            connections_total.clone(),
        );
        registry.register("matches", "Live matches", matches.clone());
        registry.register(
            "spectators",
            "Spectators connected, over every match (also counted in connections)",
            spectators.clone(),
        );
        registry.register(
            "rejoins",
            "Memberships taken back with a rejoin token since start",
            rejoins_total.clone(),
        );
        registry.register(
            "takeovers",
            "Matches taken over from a dead node of the cluster since start",
            takeovers_total.clone(),
        );
        registry.register(
            "dropped_connections",
            "Member connections that dropped without a close and waited for a rejoin, since start",
            dropped_total.clone(),
        );
        registry.register(
            "messages_received",
            "Frames received from clients, by kind",
            messages.clone(),
        );
        registry.register(
            "rejections",
            "Refused requests, frames and connections, by reason",
            rejections.clone(),
        );
        Metrics {
            registry,
            connections,
            connections_total,
            matches,
            spectators,
            rejoins_total,
            takeovers_total,
            dropped_total,
            messages,
            rejections,
        }
    }

    pub(crate) fn message(&self, kind: MessageKind) {
        self.messages
            .get_or_create(&[("kind", kind.as_str())])
            .inc();
    }

    pub(crate) fn reject(&self, reason: Rejection) {
        self.rejections
            .get_or_create(&[("reason", reason.as_str())])
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn render(&self) -> String {
        ricochet_server_kit::encode_metrics(&self.registry)
    }
}
