//! What both servers answer on `GET /health` and `GET /metrics`.

use prometheus_client::registry::Registry;

/// The body of a `200` answer to `GET /health` (both servers answer it while they accept
/// connections).
pub const HEALTH_BODY: &str = "ok";

/// The `Content-Type` of `GET /metrics`: the OpenMetrics text format that
/// [`encode_metrics`] writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` in the OpenMetrics text format, for a `GET /metrics` answer.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// use prometheus_client::registry::Registry;
///
/// let mut registry = Registry::with_prefix("demo");
/// let hits = Counter::<u64>::default();
/// registry.register("hits", "Requests served", hits.clone());
/// hits.inc();
/// let text = ricochet_server_kit::encode_metrics(&registry);
/// assert!(text.contains("demo_hits_total 1"), "{text}");
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn encode_metrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
