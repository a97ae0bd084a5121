//! HTTP side: routes, the checks made before a WebSocket upgrade, and [`serve`] (what
//! [`crate::run`] runs).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::Rng as _;
use ricochet_protocol::signaling::{
    check_labels, check_meta, parse_meta, valid_label_key, CreateMatch, CreatedMatch, ErrorCode,
    HttpError, Labels, MatchId, MAX_MATCH_PLAYERS, MAX_PASSWORD_LEN, MIN_QUICK_MATCH_SIZE,
};
use ricochet_protocol::PeerId;
use ricochet_server_kit::ip_prefix;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tracing::Instrument as _;

use crate::connection::{serve_connection, Membership};
use crate::metrics::{Metrics, Rejection};
use crate::registry::{Limits, NewMatch, Refusal, Registry, Target, Ticketing};
use crate::{Config, Error};

/// Longest room name, in characters.
pub(crate) const MAX_ROOM_NAME_LEN: usize = 64;
/// Largest `POST /matches` body, in bytes.
const MAX_CREATE_BODY: usize = 4 * 1024;
/// Upper bound on what tungstenite may buffer for one slow client before failing, in bytes.
const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// `GET /matches` page size without `?limit=`.
pub(crate) const DEFAULT_LIST_LIMIT: usize = 50;
/// Largest `?limit=` of `GET /matches`.
pub(crate) const MAX_LIST_LIMIT: usize = 200;

/// State shared by every handler and connection.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ticketing: Ticketing,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Open connection tasks, and a wake-up for when it drops to zero.
    pub(crate) active: AtomicUsize,
    pub(crate) idle: Notify,
    static_files: Option<ServeDir>,
    /// The operator console's token check.
    pub(crate) admin: crate::admin::AdminAuth,
    /// This node's cluster, with `--redis`.
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// Locks the registry; a panic elsewhere while holding it does not take the server down.
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unix time in milliseconds.
pub(crate) fn now_unix_ms() -> u64 {
    ricochet_server_kit::now_unix_ms()
}

/// Serves signaling on `listener` until `shutdown` completes, then closes every WebSocket
/// (close code 1001) and returns once all connections are gone; a STUN responder's counters,
/// if any, go into `/metrics`. `config` has passed [`Config::validate`].
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    stun: Option<&crate::stun::StunStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new(stun));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let limits = Limits {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        max_matches: config.max_matches,
        max_players: config.max_players,
        outbound_queue: config.outbound_queue.max(4),
    };
    let ticketing = Ticketing::new(
        config.secret.clone(),
        config.relay_urls.clone(),
        config.ticket_ttl.as_secs().max(1),
    )
    .with_rejoin_grace(config.rejoin_grace.as_secs());
    let cluster = match (&config.redis_url, &config.advertise_url) {
        (Some(redis), Some(url)) => Some(Arc::new(
            crate::cluster::Cluster::connect(redis, url.clone(), config.secret.clone())
                .await
                .map_err(|e| Error::Cluster(e.to_string()))?,
        )),
        _ => None,
    };
    let static_files = config
        .static_dir
        .as_ref()
        .map(|dir| ServeDir::new(dir).append_index_html_on_directories(true));
    let mut registry = Registry::new(limits, &config, metrics.clone());
    if cluster.is_some() {
        registry.track_changes();
    }
    let shared = Arc::new(Shared {
        registry: Mutex::new(registry),
        metrics,
        ticketing,
        shutdown: shutdown_rx,
        active: AtomicUsize::new(0),
        idle: Notify::new(),
        static_files: static_files.clone(),
        admin: crate::admin::AdminAuth::new(config.admin_token.as_deref()),
        cluster: cluster.clone(),
        config,
    });
    if let Some(cluster) = cluster {
        tracing::info!(node = %cluster.node, "part of a cluster of signaling nodes on Redis");
        tokio::spawn(cluster.run(Arc::downgrade(&shared)));
    }
    let api = Router::new()
        .route("/matches", get(list_matches).post(create_match))
        .layer(DefaultBodyLimit::max(MAX_CREATE_BODY))
        .layer(cors(&shared.config.allowed_origins));
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/admin", get(crate::admin::page))
        .route("/admin/api/state", get(crate::admin::state))
        .route(
            "/admin/api/matches/{id}/close",
            axum::routing::post(crate::admin::close_match),
        )
        .route(
            "/admin/api/matches/{id}/members/{peer}/remove",
            axum::routing::post(crate::admin::remove_member),
        )
        .route("/{room}", get(room))
        .merge(api)
        .with_state(shared.clone());
    if let Some(files) = static_files {
        app = app.fallback_service(files);
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "signaling server listening");
    }
    if shared.ticketing.relay_urls.len() > 1 {
        tokio::spawn(check_relays(shared.clone()));
    }
    // The front door bounds every connection until it is a WebSocket (TCP caps in total and per
    // address, header and idle timeouts, request head size) and sets TCP_NODELAY: signaling is
    // many small frames written back to back (IdAssigned, welcome, ticket; NewPeer,
    // peer_joined), which Nagle would hold for the client's delayed ACK.
    let door = ricochet_server_kit::FrontDoor::new(shared.config.front_door())?;
    door.serve(
        listener,
        move |addr: SocketAddr| {
            let app = app.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // What `ConnectInfo<SocketAddr>` extractors read.
                req.extensions_mut().insert(ConnectInfo(addr));
                tower_service::Service::call(&mut app.clone(), req)
            })
        },
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing WebSockets");
            let _ = shutdown_tx.send(true);
        },
    )
    .await;
    // HTTP connections are done; wait for the WebSocket tasks, which saw the signal too.
    loop {
        let idle = shared.idle.notified();
        if shared.active.load(Ordering::Acquire) == 0 {
            break;
        }
        idle.await;
    }
    tracing::info!("signaling server stopped");
    Ok(())
}

/// How often each relay of a pool is checked.
pub(crate) const RELAY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Checks every relay of the pool each [`RELAY_CHECK_INTERVAL`] until shutdown: a `ws://`
/// relay is healthy when `GET /health` answers 200 within the interval (a draining relay
/// answers 503), a `wss://` one when it accepts a TCP connection. Matches on a relay that
/// stops answering get another in their next tickets.
async fn check_relays(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        for (i, url) in shared.ticketing.relay_urls.iter().enumerate() {
            let ok = tokio::time::timeout(RELAY_CHECK_INTERVAL, relay_answers(url))
                .await
                .unwrap_or(false);
            let was = shared.ticketing.healthy[i].swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    tracing::info!(relay = %url, "relay answers again");
                } else {
                    tracing::warn!(relay = %url, "relay does not answer; its matches move");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RELAY_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Whether the relay at `url` answers its health check.
async fn relay_answers(url: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return false,
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let Ok(mut tcp) = tokio::net::TcpStream::connect(&addr).await else {
        return false;
    };
    if tls {
        return true;
    }
    let request = format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.is_ok() && &head[9..12] == b"200"
}

/// CORS for the HTTP API, so a browser game served from elsewhere can list and create matches:
/// the Origin allowlist if there is one, else any origin.
fn cors(allowed: &[String]) -> CorsLayer {
    let origins = if allowed.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(allowed.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
}

pub(crate) fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = HttpError {
        error: code,
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

fn refusal(shared: &Shared, r: Refusal) -> Response {
    shared.metrics.reject(r.rejection());
    match r {
        Refusal::UnknownMatch => error(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownMatch,
            "no match has this id",
        ),
        Refusal::MatchFull { players, max } => error(
            StatusCode::CONFLICT,
            ErrorCode::MatchFull,
            format!("match is full ({players}/{max} players)"),
        ),
        Refusal::ServerFull => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerFull,
            "server is at its connection limit",
        ),
        Refusal::TooManyConnectionsFromIp => error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyConnectionsFromIp,
            "too many connections from this address",
        ),
        Refusal::TooManyMatches => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyMatches,
            "server is at its match limit",
        ),
        Refusal::CreateRateLimited => retry_later(error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::CreateRateLimited,
            format!(
                "this address creates matches too fast: at most {} at once, then {} per second",
                shared.config.create_burst_per_ip, shared.config.create_rate_per_ip
            ),
        )),
        Refusal::TooManyMatchesFromIp => error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyMatchesFromIp,
            format!(
                "this address already has {} live matches it created, the most allowed; a match \
                 stops counting when it is removed (when its last player leaves, or {} s after \
                 creation if nobody joined it)",
                shared.config.max_created_matches_per_ip,
                shared.config.unjoined_match_ttl.as_secs()
            ),
        ),
        Refusal::JoinRateLimited => retry_later(error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::JoinRateLimited,
            format!(
                "this address joins too fast: at most {} joins at once, then {} per second",
                shared.config.join_burst_per_ip, shared.config.join_rate_per_ip
            ),
        )),
        Refusal::RejoinRefused => error(
            StatusCode::NOT_FOUND,
            ErrorCode::RejoinRefused,
            "this rejoin token names no membership here (it left, its grace ran out, or the \
             token is not this server's): join afresh",
        ),
        Refusal::WrongPassword => error(
            StatusCode::FORBIDDEN,
            ErrorCode::WrongPassword,
            "this match needs a password: pass it as ?password=, percent-encoded",
        ),
        Refusal::MatchStarted => error(
            StatusCode::CONFLICT,
            ErrorCode::MatchStarted,
            "this match has started and takes no members after the start",
        ),
        Refusal::TooManySpectators { max: 0 } => error(
            StatusCode::CONFLICT,
            ErrorCode::MatchFull,
            "this server takes no spectators (--max-spectators-per-match 0)",
        ),
        Refusal::TooManySpectators { max } => error(
            StatusCode::CONFLICT,
            ErrorCode::MatchFull,
            format!("this match has too many spectators (the most is {max})"),
        ),
        Refusal::MatchJoinRateLimited => retry_later(error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::MatchJoinRateLimited,
            format!(
                "this match is joined too fast: at most {} joins at once, then {} per second",
                shared.config.match_join_burst, shared.config.match_join_rate
            ),
        )),
    }
}

/// Adds `Retry-After: 1` (every rate is at least one per second, so a token is back by then).
fn retry_later(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn health() -> &'static str {
    ricochet_server_kit::HEALTH_BODY
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            ricochet_server_kit::OPENMETRICS_CONTENT_TYPE,
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// The query of `GET /matches`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListQuery {
    after: Option<MatchId>,
    limit: usize,
    open_only: bool,
    /// Label filters: every other parameter, `key=value`.
    labels: Labels,
}

/// Parses `limit`, `after` and `open`; every other parameter is a label filter whose key must
/// be a valid label key. Any parameter twice is an error.
fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, String> {
    let mut query = ListQuery {
        after: None,
        limit: DEFAULT_LIST_LIMIT,
        open_only: false,
        labels: Labels::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key.as_str()) {
            return Err(format!("query parameter {key:?} is given more than once"));
        }
        match key.as_str() {
            "limit" => {
                query.limit = match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "limit must be a whole number in 1..={MAX_LIST_LIMIT}, got {value:?}"
                        ))
                    }
                }
            }
            "after" => {
                query.after = Some(value.parse::<MatchId>().map_err(|e| {
                    format!("after must be a match id from a previous page's next: {e}")
                })?)
            }
            "open" => {
                query.open_only = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("open must be true or false, got {value:?}")),
                }
            }
            _ if valid_label_key(key) => {
                query.labels.insert(key.clone(), value.clone());
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {key:?}: GET /matches takes limit, after, open and \
                     label filters key=value (keys of 1..=32 characters of a-z 0-9 _ - .)"
                ))
            }
        }
        seen.push(key.as_str());
    }
    check_labels(&query.labels).map_err(|e| format!("label filters: {e}"))?;
    Ok(query)
}

/// A listing page as sent: the shape of [`ricochet_protocol::signaling::MatchList`], encoded
/// from the registry's shared metadata without copying it.
#[derive(Serialize)]
struct PageBody<'a> {
    matches: Vec<EntryBody<'a>>,
    next: Option<MatchId>,
}

#[derive(Serialize)]
struct EntryBody<'a> {
    id: MatchId,
    players: u8,
    max_players: u8,
    metadata: Option<&'a Value>,
    min_players: u8,
    labels: &'a Labels,
    locked: bool,
    started: bool,
    /// Spectators watching it (not among its `players`).
    spectators: usize,
}

/// `GET /matches?limit=N&after=ID&open=true`: one page of public created matches in ID order.
/// The registry lock is held only to look at a bounded number of matches; the page is encoded
/// after it is released.
async fn list_matches(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let bad = |message: String| {
        shared.metrics.reject(Rejection::BadRequest);
        error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    };
    let pairs = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(pairs)) => pairs,
        Err(e) => return bad(format!("invalid query string: {}", e.body_text())),
    };
    let query = match parse_list_query(&pairs) {
        Ok(q) => q,
        Err(message) => return bad(message),
    };
    if let Some(cluster) = &shared.cluster {
        return list_cluster(&shared, cluster, &query).await;
    }
    let page =
        shared
            .registry()
            .list_public(query.after, query.limit, query.open_only, &query.labels);
    Json(PageBody {
        matches: page
            .matches
            .iter()
            .map(|m| EntryBody {
                id: m.id,
                players: m.players,
                max_players: m.max_players,
                metadata: m.metadata.as_deref(),
                min_players: m.min_players,
                labels: &m.labels,
                locked: m.locked,
                started: m.started,
                spectators: m.spectators,
            })
            .collect(),
        next: page.next,
    })
    .into_response()
}

/// `GET /matches` in a cluster: the public matches of every node, from their snapshots.
async fn list_cluster(
    shared: &Shared,
    cluster: &crate::cluster::Cluster,
    query: &ListQuery,
) -> Response {
    let (snaps, last, more) = match cluster
        .list_public(query.after, crate::registry::MAX_LIST_SCAN)
        .await
    {
        Ok(found) => found,
        Err(e) => return cluster_unavailable(shared, &e),
    };
    let mut next = more.then_some(last).flatten();
    let mut matches = Vec::new();
    for s in &snaps {
        if matches.len() >= query.limit {
            next = Some(s.id);
            break;
        }
        let players = s.members.len() as u8;
        if query.open_only && players >= s.max_players {
            continue;
        }
        if query.labels.iter().any(|(k, v)| s.labels.get(k) != Some(v)) {
            continue;
        }
        matches.push(EntryBody {
            id: s.id,
            players,
            max_players: s.max_players,
            metadata: s.metadata.as_ref(),
            min_players: s.lobby.as_ref().map_or(s.max_players, |l| l.min_players),
            labels: &s.labels,
            locked: s
                .lobby
                .as_ref()
                .is_some_and(crate::registry::LobbyState::locked),
            started: s
                .lobby
                .as_ref()
                .is_some_and(crate::registry::LobbyState::started),
            spectators: s.spectators,
        });
    }
    // `next` is the last match looked at on this page, as on a lone node.
    if next.is_none() && more {
        next = last;
    }
    Json(PageBody { matches, next }).into_response()
}

fn cluster_unavailable(shared: &Shared, e: &crate::cluster::ClusterError) -> Response {
    tracing::warn!(%e, "a request needed Redis");
    shared.metrics.reject(Rejection::ClusterUnavailable);
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ClusterUnavailable,
        "the cluster's shared state (Redis) does not answer; running matches go on, try again",
    )
}

async fn create_match(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<Json<CreateMatch>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let bad = |message: String| {
        shared.metrics.reject(Rejection::BadRequest);
        error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    };
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return bad(format!("invalid body: {}", e.body_text())),
    };
    let max_players = req.max_players.unwrap_or(shared.config.max_players);
    if !(MIN_QUICK_MATCH_SIZE..=MAX_MATCH_PLAYERS).contains(&max_players) {
        return bad(format!("max_players must be in 2..=16, got {max_players}"));
    }
    if let Some(meta) = &req.metadata {
        if let Err(e) = check_meta(meta, shared.config.max_meta_size) {
            return bad(format!("metadata: {e}"));
        }
    }
    let min_players = req.min_players.unwrap_or(MIN_QUICK_MATCH_SIZE);
    if !(MIN_QUICK_MATCH_SIZE..=max_players).contains(&min_players) {
        return bad(format!(
            "min_players must be in 2..={max_players} (max_players), got {min_players}"
        ));
    }
    if let Some(p) = &req.password {
        if p.is_empty() || p.len() > MAX_PASSWORD_LEN {
            // The password itself is never echoed.
            return bad(format!(
                "password must be 1..={MAX_PASSWORD_LEN} bytes, got {}",
                p.len()
            ));
        }
    }
    if let Err(e) = check_labels(&req.labels) {
        return bad(format!("labels: {e}"));
    }
    let server_grace = shared.config.rejoin_grace.as_secs();
    if let Some(grace) = req.rejoin_grace_secs.filter(|g| *g > server_grace) {
        return bad(grace_out_of_range(server_grace, grace));
    }
    let rejoin_grace_secs = req.rejoin_grace_secs.unwrap_or(server_grace);
    let id = MatchId::from_bytes(rand::thread_rng().gen());
    let locked = req.password.is_some();
    let (public, labels, late_join) = (req.public, req.labels.clone(), req.late_join);
    let created = shared.registry().create(
        id,
        NewMatch {
            public,
            max_players,
            min_players,
            metadata: req.metadata,
            password: req.password,
            labels: req.labels,
            late_join,
            rejoin_grace_secs: req.rejoin_grace_secs,
        },
        ip_prefix(addr.ip()),
        Instant::now(),
    );
    if let Err(r) = created {
        return refusal(&shared, r);
    }
    if let Some(cluster) = &shared.cluster {
        // Published before the answer, so that a join of this ID on another node finds it.
        let (snaps, gone) = shared.registry().take_changes();
        if let Err(e) = cluster.publish(snaps, gone).await {
            shared.registry().expire_unjoined(id);
            return cluster_unavailable(&shared, &e);
        }
    }
    let ttl = shared.config.unjoined_match_ttl;
    let weak = Arc::downgrade(&shared);
    tokio::spawn(async move {
        tokio::time::sleep(ttl).await;
        if let Some(shared) = weak.upgrade() {
            shared.registry().expire_unjoined(id);
        }
    });
    tracing::info!(
        match_id = %id,
        public,
        max_players,
        min_players,
        locked,
        rejoin_grace_secs,
        "match created"
    );
    (
        StatusCode::CREATED,
        Json(CreatedMatch {
            id,
            path: format!("/{id}"),
            max_players,
            public,
            min_players,
            labels,
            locked,
            late_join,
            rejoin_grace_secs,
        }),
    )
        .into_response()
}

fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Whether the join asks to watch (`?spectate=1` or `true`; `0`, `false` or absent: to play).
fn spectating(query: &HashMap<String, String>) -> Result<bool, (ErrorCode, String)> {
    match query.get("spectate").map(String::as_str) {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err((
            ErrorCode::BadRequest,
            format!("spectate must be 1 or true (0 or false: join as a player), got {other:?}"),
        )),
    }
}

/// The rejoin grace a join asks for the match it makes (`?rejoin_grace_secs=N`, whole seconds
/// in `0..=server_secs`); `None` if it asks for none. A join into an existing match keeps that
/// match's grace (its welcome says which).
fn requested_grace(
    query: &HashMap<String, String>,
    server_secs: u64,
) -> Result<Option<u64>, (ErrorCode, String)> {
    let Some(text) = query.get("rejoin_grace_secs") else {
        return Ok(None);
    };
    if spectating(query).unwrap_or(true) {
        return Err((
            ErrorCode::BadRequest,
            "rejoin_grace_secs cannot be combined with spectate: a spectator makes no match".into(),
        ));
    }
    match text.parse::<u64>() {
        Ok(secs) if secs <= server_secs => Ok(Some(secs)),
        _ => Err((
            ErrorCode::BadRequest,
            grace_out_of_range(server_secs, format!("{text:?}")),
        )),
    }
}

/// Why a `rejoin_grace_secs` (of `POST /matches` or a join) is refused.
fn grace_out_of_range(server_secs: u64, got: impl std::fmt::Display) -> String {
    format!(
        "rejoin_grace_secs must be a whole number in 0..={server_secs} (this server's \
         --rejoin-grace-secs), got {got}"
    )
}

/// Parses the room path and query into a join target, metadata, and whether the join is a
/// spectator's (`?spectate=1`: a named room or a match ID, without `next` or `meta`).
fn parse_join(
    room: &str,
    query: &HashMap<String, String>,
    max_meta: usize,
) -> Result<(Target, Option<serde_json::Value>, bool), (ErrorCode, String)> {
    let bad = |code: ErrorCode, message: String| Err((code, message));
    let spectate = spectating(query)?;
    if spectate && query.contains_key("next") {
        return bad(
            ErrorCode::BadNext,
            "next cannot be combined with spectate: a spectator watches an existing match,              named by its room name or match id"
                .into(),
        );
    }
    if spectate && query.contains_key("meta") {
        return bad(
            ErrorCode::BadRequest,
            "meta cannot be combined with spectate: a spectator has no metadata".into(),
        );
    }
    let next = match query.get("next") {
        None => None,
        Some(text) => match text.parse::<u8>() {
            Ok(n) if (MIN_QUICK_MATCH_SIZE..=MAX_MATCH_PLAYERS).contains(&n) => Some(n),
            _ => {
                return bad(
                    ErrorCode::BadNext,
                    format!("next must be a whole number in 2..=16, got {text:?}"),
                )
            }
        },
    };
    let meta = match query.get("meta") {
        None => None,
        Some(text) => match parse_meta(text, max_meta) {
            Ok(v) => Some(v),
            Err(e @ ricochet_protocol::signaling::MetaError::TooLarge { .. }) => {
                return bad(ErrorCode::MetaTooLarge, e.to_string())
            }
            Err(e) => return bad(ErrorCode::BadMeta, e.to_string()),
        },
    };
    let target = if let Ok(id) = room.parse::<MatchId>() {
        if next.is_some() {
            return bad(
                ErrorCode::BadNext,
                "next cannot be combined with a match id".into(),
            );
        }
        Target::Id(id)
    } else if valid_room_name(room) {
        match next {
            Some(size) => Target::Quick {
                room: room.to_owned(),
                size,
                props: quick_properties(query).map_err(|m| (ErrorCode::BadRequest, m))?,
            },
            None => Target::Name(room.to_owned()),
        }
    } else {
        return bad(
            ErrorCode::BadRoom,
            format!("room name must be 1..={MAX_ROOM_NAME_LEN} characters of A-Z a-z 0-9 . _ ~ -"),
        );
    };
    Ok((target, meta, spectate))
}

/// Query parameters of a join that are not required properties of a quick match.
const JOIN_PARAMETERS: [&str; 7] = [
    "next",
    "meta",
    "rejoinable",
    "rejoin",
    "password",
    "spectate",
    "rejoin_grace_secs",
];

/// A quick-match join's required properties: every parameter that is not one of
/// [`JOIN_PARAMETERS`], under the label rules.
fn quick_properties(query: &HashMap<String, String>) -> Result<Labels, String> {
    let props: Labels = query
        .iter()
        .filter(|(k, _)| !JOIN_PARAMETERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_labels(&props).map_err(|e| format!("quick-match properties: {e}"))?;
    Ok(props)
}

async fn room(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // In a cluster, the connection itself (the extractor below takes it): a join forwarded
    // to another node passes its bytes through (see `Cluster::forward`).
    let raw_upgrade = shared
        .cluster
        .as_ref()
        .and_then(|_| parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned());
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(_) => {
            if let Some(mut files) = shared.static_files.clone() {
                return match files.try_call(Request::from_parts(parts, body)).await {
                    Ok(resp) => resp.into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                };
            }
            return error(
                StatusCode::UPGRADE_REQUIRED,
                ErrorCode::UpgradeRequired,
                "this is a WebSocket endpoint: connect with a WebSocket client",
            );
        }
    };
    if *shared.shutdown.borrow() {
        shared.metrics.reject(Rejection::ShuttingDown);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "server is shutting down",
        );
    }
    if !shared.config.allowed_origins.is_empty() {
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        if !origin.is_some_and(|o| shared.config.allowed_origins.iter().any(|a| a == o)) {
            shared.metrics.reject(Rejection::OriginNotAllowed);
            return error(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
                "origin not allowed",
            );
        }
    }
    let query = match Query::<HashMap<String, String>>::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q,
        Err(e) => {
            shared.metrics.reject(Rejection::BadRequest);
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("invalid query string: {}", e.body_text()),
            );
        }
    };
    // A join forwarded by another node of the cluster carries the client's address, signed.
    let forwarded = shared
        .cluster
        .as_ref()
        .and_then(|c| c.forwarded_ip(&parts.headers));
    let ip: IpAddr = forwarded.unwrap_or(addr.ip());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| format!("/{room}"), |p| p.as_str().to_owned());
    // The join's target and metadata (a rejoin ignores both: its token names the match).
    let parsed = parse_join(&room, &query, shared.config.max_meta_size).and_then(
        |(target, meta, spectate)| {
            let grace = requested_grace(&query, shared.config.rejoin_grace.as_secs())?;
            Ok((target, meta, spectate, grace))
        },
    );
    if query.contains_key("rejoin") && spectating(&query).unwrap_or(true) {
        shared.metrics.reject(Rejection::BadRequest);
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "rejoin cannot be combined with spectate: a spectator has no membership to take back; \
             connect again with spectate=1",
        );
    }
    // The ID the cluster claimed for a new named room or quick-match group made here.
    let mut claimed = None;
    if let Some(cluster) = &shared.cluster {
        // The match may live on another node: forward there, or take it over if that node died.
        let target = match query.get("rejoin") {
            Some(token) => shared
                .ticketing
                .verify_rejoin(token)
                .map(|(match_id, _)| Target::Id(match_id)),
            None => parsed.as_ref().ok().map(|(t, ..)| t.clone()),
        };
        let watching = parsed.as_ref().is_ok_and(|(_, _, spectate, _)| *spectate);
        let joining = !query.contains_key("rejoin");
        if joining
            && forwarded.is_none()
            && !shared
                .registry()
                .take_join_token(ip_prefix(ip), Instant::now())
        {
            return refusal(&shared, Refusal::JoinRateLimited);
        }
        if let Some(target) = target {
            let fresh = MatchId::from_bytes(rand::thread_rng().gen());
            // A spectator never makes a match: its room name is looked up, not claimed.
            let route = if watching {
                cluster.route_existing(&shared, &target).await
            } else {
                cluster.route(&shared, &target, fresh).await
            };
            match route {
                Ok(crate::cluster::Route::Forward(url)) => {
                    return cluster
                        .forward(raw_upgrade, &url, &path_and_query, &parts.headers, ip)
                        .await
                }
                Ok(crate::cluster::Route::Local(id)) => claimed = id,
                Err(e) => return cluster_unavailable(&shared, &e),
            }
        }
    }
    if let Some(token) = query.get("rejoin") {
        // A member whose connection dropped takes its membership back; the room path and
        // any other parameter are ignored (the token names the match).
        let rejoined =
            shared
                .registry()
                .rejoin(token, ip_prefix(ip), &shared.ticketing, now_unix_ms());
        return match rejoined {
            Ok(joined) => {
                let span = tracing::info_span!(
                    "connection",
                    peer = %joined.peer,
                    %ip,
                    match_id = %joined.match_id,
                );
                span.in_scope(|| tracing::info!("rejoined"));
                upgrade(
                    ws,
                    Membership::new(shared.clone(), joined),
                    &shared.config,
                    span,
                )
            }
            Err(r) => refusal(&shared, r),
        };
    }
    let (target, meta, spectate, grace) = match parsed {
        Ok(t) => t,
        Err((code, message)) => {
            shared.metrics.reject(Rejection::BadRequest);
            return error(StatusCode::BAD_REQUEST, code, message);
        }
    };
    let joined = {
        let (peer_id, match_id) = {
            let mut rng = rand::thread_rng();
            (
                PeerId(uuid::Uuid::from_bytes(uuid_v4(rng.gen()))),
                // A new room or quick-match group takes the ID the cluster claimed for it.
                claimed.unwrap_or_else(|| MatchId::from_bytes(rng.gen())),
            )
        };
        // Ricochet's clients can take their membership back after a dropped connection and
        // say so; stock matchbox clients leave at once when their connection ends.
        let rejoinable = query
            .get("rejoinable")
            .is_some_and(|v| v == "1" || v == "true");
        if spectate {
            // `rejoinable` is ignored: a spectator that loses its connection connects again.
            shared.registry().spectate(
                &target,
                ip_prefix(ip),
                query.get("password").map(String::as_str),
                peer_id,
                &shared.ticketing,
                now_unix_ms(),
                Instant::now(),
            )
        } else {
            shared.registry().join(
                &target,
                ip_prefix(ip),
                query.get("password").map(String::as_str),
                meta,
                (rejoinable, grace),
                (peer_id, match_id),
                &shared.ticketing,
                now_unix_ms(),
                Instant::now(),
            )
        }
    };
    let joined = match joined {
        Ok(j) => j,
        Err(r) => return refusal(&shared, r),
    };
    let span = tracing::info_span!(
        "connection",
        peer = %joined.peer,
        %ip,
        match_id = %joined.match_id,
    );
    if joined.spectator {
        span.in_scope(|| tracing::info!(room = %room, "spectating"));
    } else {
        span.in_scope(|| tracing::info!(room = %room, "joined"));
    }
    upgrade(
        ws,
        Membership::new(shared.clone(), joined),
        &shared.config,
        span,
    )
}

/// Completes the WebSocket upgrade of a member's connection with the server's limits.
fn upgrade(
    ws: WebSocketUpgrade,
    membership: Membership,
    config: &Config,
    span: tracing::Span,
) -> Response {
    ws.read_buffer_size(config.read_buffer_size)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(config.max_message_size)
        .max_frame_size(config.max_message_size)
        .on_upgrade(move |socket| serve_connection(socket, membership).instrument(span))
}

/// Sets the version and variant bits of 16 random bytes, making a UUID v4.
fn uuid_v4(mut bytes: [u8; 16]) -> [u8; 16] {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn join_targets() {
        assert_eq!(
            parse_join("friday-night", &q(&[]), 512).unwrap().0,
            Target::Name("friday-night".into())
        );
        assert_eq!(
            parse_join("lobby", &q(&[("next", "4")]), 512).unwrap().0,
            Target::Quick {
                room: "lobby".into(),
                size: 4,
                props: Labels::new(),
            }
        );
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_join(id, &q(&[]), 512).unwrap().0,
            Target::Id(id.parse().unwrap())
        );
        for next in ["0", "1", "17", "-2", "two", "", "300"] {
            assert!(
                parse_join("lobby", &q(&[("next", next)]), 512).is_err(),
                "{next}"
            );
        }
        assert!(parse_join(id, &q(&[("next", "2")]), 512).is_err());
        for name in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(parse_join(name, &q(&[]), 512).is_err(), "{name:?}");
        }
        assert!(parse_join("r", &q(&[("meta", "[1]")]), 512).is_err());
        assert!(parse_join("r", &q(&[("meta", r#"{"n":"ann"}"#)]), 8).is_err());
        assert!(parse_join("r", &q(&[("meta", r#"{"n":"ann"}"#)]), 512)
            .unwrap()
            .1
            .is_some());
    }

    #[test]
    fn spectator_joins() {
        let id = "0123456789abcdef0123456789abcdef";
        for (room, query) in [
            ("friday-night", &[("spectate", "1")][..]),
            ("friday-night", &[("spectate", "true"), ("rejoinable", "1")]),
            (id, &[("spectate", "1"), ("password", "p")]),
        ] {
            let (target, meta, spectate) = parse_join(room, &q(query), 512).unwrap();
            assert!(spectate && meta.is_none(), "{query:?}");
            assert_eq!(target, parse_join(room, &q(&[]), 512).unwrap().0);
        }
        for off in ["0", "false"] {
            assert!(!parse_join("r", &q(&[("spectate", off)]), 512).unwrap().2);
        }
        for (query, code) in [
            (&[("spectate", "1"), ("next", "2")][..], ErrorCode::BadNext),
            (&[("spectate", "yes")], ErrorCode::BadRequest),
            (&[("spectate", "")], ErrorCode::BadRequest),
            (&[("spectate", "1"), ("meta", "{}")], ErrorCode::BadRequest),
        ] {
            assert_eq!(
                parse_join("r", &q(query), 512).unwrap_err().0,
                code,
                "{query:?}"
            );
        }
        // Not a quick-match property either.
        assert_eq!(
            quick_properties(&q(&[("spectate", "0"), ("mode", "duel")])).unwrap(),
            Labels::from([("mode".to_owned(), "duel".to_owned())])
        );
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_queries() {
        assert_eq!(
            parse_list_query(&[]).unwrap(),
            ListQuery {
                after: None,
                limit: DEFAULT_LIST_LIMIT,
                open_only: false,
                labels: Labels::new(),
            }
        );
        let id = "0123456789ABCDEF0123456789abcdef";
        assert_eq!(
            parse_list_query(&pairs(&[("limit", "200"), ("after", id), ("open", "true")])).unwrap(),
            ListQuery {
                after: Some(id.parse().unwrap()),
                limit: 200,
                open_only: true,
                labels: Labels::new(),
            }
        );
        // Every other parameter is a label filter.
        assert_eq!(
            parse_list_query(&pairs(&[("mode", "duel"), ("version", "3")]))
                .unwrap()
                .labels,
            Labels::from([
                ("mode".to_owned(), "duel".to_owned()),
                ("version".to_owned(), "3".to_owned())
            ])
        );
        assert!(
            !parse_list_query(&pairs(&[("open", "false")]))
                .unwrap()
                .open_only
        );
        for (bad, says) in [
            (&[("limit", "0")][..], "limit must be"),
            (&[("limit", "201")], "limit must be"),
            (&[("limit", "-1")], "limit must be"),
            (&[("limit", "99999999999999999999999")], "limit must be"),
            (&[("limit", "")], "limit must be"),
            (&[("after", "")], "after must be a match id"),
            (&[("after", "é")], "after must be a match id"),
            (&[("after", &"g".repeat(32))], "after must be a match id"),
            (&[("open", "1")], "open must be true or false"),
            (&[("Offset", "3")], "unknown query parameter"),
            (&[("a b", "3")], "unknown query parameter"),
            (&[("mode", &"x".repeat(129))], "label filters"),
            (&[("mode", "a"), ("mode", "b")], "more than once"),
            (&[("open", "true"), ("open", "true")], "more than once"),
        ] {
            let err = parse_list_query(&pairs(bad)).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
