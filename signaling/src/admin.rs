//! The operator console: `/admin` (a page) and `/admin/api/...` (JSON), answered only to
//! requests that carry the admin token (`Authorization: Bearer TOKEN`).
//!
//! - `GET /admin`: the console page. It holds no data: it asks for the token and reads the API
//!   with it, so the page itself can be served to anyone once the console is on.
//! - `GET /admin/api/state?limit=N`: totals and the `N` (default 200, at most 5,000) oldest
//!   matches with their members, lobby, relay and reported links.
//! - `POST /admin/api/matches/{id}/close`: ends every membership of the match (close code
//!   4100) and forgets it.
//! - `POST /admin/api/matches/{id}/members/{peer}/remove`: removes one member (close 4101; the
//!   others see it leave).
//!
//! Without `--admin-token` every one of these answers `403 admin_disabled`. A missing or wrong
//! token is `401 unauthorized` (compared in constant time); an address that sends wrong
//! tokens faster than one a second (a burst of 10) is answered `429` without a check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use hmac::Mac as _;

use crate::hmac_sha256;
use ricochet_protocol::signaling::{ErrorCode, MatchId};
use ricochet_protocol::PeerId;
use ricochet_server_kit::{ip_prefix, RateMap};

use crate::metrics::Rejection;
use crate::server::{error, Shared};

/// The console page.
const PAGE: &str = include_str!("admin.html");
/// Matches listed by default, and at most.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 5000;

/// What checking the token needs: a random key to compare HMACs under (so the comparison
/// takes the same time whatever the guess), and the wrong guesses per address.
pub(crate) struct AdminAuth {
    key: [u8; 32],
    expected: Option<Vec<u8>>,
    failures: Mutex<RateMap<std::net::IpAddr>>,
}

impl AdminAuth {
    pub(crate) fn new(token: Option<&str>) -> AdminAuth {
        let key: [u8; 32] = rand::random();
        AdminAuth {
            expected: token.map(|t| {
                hmac_sha256(&key, t.as_bytes())
                    .finalize()
                    .into_bytes()
                    .to_vec()
            }),
            key,
            failures: Mutex::new(RateMap::new(1.0, 10.0, 10_000)),
        }
    }
}

/// The answer to every `/admin` request while the console is off.
fn disabled() -> Response {
    error(
        StatusCode::FORBIDDEN,
        ErrorCode::AdminDisabled,
        "the operator console is off: start ricochet-signaling with --admin-token TOKEN (or \
         RICOCHET_SIGNALING_ADMIN_TOKEN)",
    )
}

/// The refusal to send, or `None` if the request may use the console.
fn refusal(shared: &Shared, headers: &HeaderMap, addr: SocketAddr) -> Option<Response> {
    let auth = &shared.admin;
    let Some(expected) = &auth.expected else {
        return Some(disabled());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if hmac_sha256(&auth.key, given.as_bytes())
        .verify_slice(expected)
        .is_ok()
    {
        return None;
    }
    shared.metrics.reject(Rejection::AdminUnauthorized);
    let allowed = auth
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(ip_prefix(addr.ip()), Instant::now());
    if !allowed {
        return Some(error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many wrong admin tokens from this address: wait a second",
        ));
    }
    tracing::warn!(ip = %addr.ip(), "operator console: missing or wrong admin token");
    Some(error(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "missing or wrong admin token: send it as Authorization: Bearer TOKEN",
    ))
}

/// `GET /admin`: the page (when the console is on).
pub(crate) async fn page(State(shared): State<Arc<Shared>>) -> Response {
    if shared.admin.expected.is_none() {
        return disabled();
    }
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct StateQuery {
    limit: Option<usize>,
    /// In a cluster: the node whose view to show (its ID); this node's by default.
    node: Option<String>,
}

/// In a cluster, `?node=ID` of another node: the same request is made there (same method, path
/// and token) and its answer is this one's. `None`: answer here.
async fn elsewhere(
    shared: &Shared,
    node: Option<&str>,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let cluster = shared.cluster.as_ref()?;
    let node = node.filter(|n| *n != cluster.node)?;
    let Some(url) = cluster.node_url(node).await else {
        return Some(error(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownPeer,
            "no live node of the cluster has this ID",
        ));
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Some(match http_request(&url, method, path, auth).await {
        Some((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => error(
            StatusCode::BAD_GATEWAY,
            ErrorCode::ClusterUnavailable,
            "that node did not answer",
        ),
    })
}

/// A plain HTTP/1.1 request to another node (`ws://HOST:PORT` as it advertises itself): its
/// status and body, or `None` if it did not answer within 5 s.
async fn http_request(url: &str, method: &str, path: &str, auth: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = url
        .trim_start_matches("ws://")
        .trim_start_matches("wss://")
        .trim_end_matches('/');
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.take(8 * 1024 * 1024).read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out);
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

#[derive(serde::Deserialize)]
pub(crate) struct NodeQuery {
    node: Option<String>,
}

/// `GET /admin/api/state`.
pub(crate) async fn state(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    query: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, addr) {
        return refused;
    }
    let limit = match query {
        Ok(Query(StateQuery {
            node: Some(node), ..
        })) if shared.cluster.as_ref().is_some_and(|c| c.node != node) => {
            let path = format!("/admin/api/state?{}", uri.query().unwrap_or_default())
                .replace(&format!("node={node}"), "");
            if let Some(there) = elsewhere(&shared, Some(&node), "GET", &path, &headers).await {
                return there;
            }
            DEFAULT_LIMIT
        }
        Ok(Query(q)) => q.limit.unwrap_or(DEFAULT_LIMIT),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("bad query: {}", e.body_text()),
            )
        }
    };
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("limit must be in 1..={MAX_LIMIT}, got {limit}"),
        );
    }
    let view = shared
        .registry()
        .admin_view(&shared.ticketing, limit, Instant::now());
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    if let Some(cluster) = &shared.cluster {
        // Which node this is, and the others (the page switches between them).
        body["node"] = serde_json::json!(cluster.node);
        body["nodes"] = serde_json::json!(cluster.nodes().await.unwrap_or_default());
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `POST /admin/api/matches/{id}/close`.
pub(crate) async fn close_match(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(on): Query<NodeQuery>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, addr) {
        return refused;
    }
    let path = format!("/admin/api/matches/{id}/close");
    if let Some(there) = elsewhere(&shared, on.node.as_deref(), "POST", &path, &headers).await {
        return there;
    }
    let Ok(id) = id.parse::<MatchId>() else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "not a match id (32 hex digits)",
        );
    };
    let closed = shared.registry().close_match(id);
    match closed {
        Some(members) => {
            Json(serde_json::json!({ "closed": id, "members": members })).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownMatch,
            "no match has this id",
        ),
    }
}

/// `POST /admin/api/matches/{id}/members/{peer}/remove`.
pub(crate) async fn remove_member(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, peer)): Path<(String, String)>,
    Query(on): Query<NodeQuery>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers, addr) {
        return refused;
    }
    let path = format!("/admin/api/matches/{id}/members/{peer}/remove");
    if let Some(there) = elsewhere(&shared, on.node.as_deref(), "POST", &path, &headers).await {
        return there;
    }
    let (Ok(id), Ok(peer)) = (id.parse::<MatchId>(), peer.parse::<uuid::Uuid>()) else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "expected /admin/api/matches/MATCH_ID/members/PEER_ID/remove",
        );
    };
    if shared.registry().remove_member(id, PeerId(peer)) {
        Json(serde_json::json!({ "removed": PeerId(peer) })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownPeer,
            "no such member in this match",
        )
    }
}
