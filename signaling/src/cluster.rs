//! Several signaling nodes sharing their matches through Redis (`--redis redis://...`).
//!
//! Every match lives on one node, its **home**, where its members' connections end and which
//! runs it exactly as a lone node does (presence order, signals, lobby, tickets). Redis holds
//! which node is home to which match, which room names and quick-match queues point at which
//! match, the public listing, and a snapshot of every match that its home node publishes after
//! each change. A client may reach any node (a load balancer in front of them):
//!
//! - joining a match whose home is another live node, the node **forwards** the WebSocket to
//!   that node (it opens the same request there, passing the client's address in signed
//!   headers, and once the home node accepts, passes the bytes through both ways: the
//!   client's WebSocket ends at the home node); a refusal there (full, wrong password, ...) is
//!   answered to the client as is;
//! - joining a match whose home node died (its heartbeat key expired), the node **takes it
//!   over** from its snapshot: every rejoinable member is kept, away, for the rejoin grace, and
//!   the members coming back with their rejoin tokens (Ricochet's signaller does this by
//!   itself when its connection drops) find their seats, peer IDs and presence as they were;
//! - a room name or quick-match queue nobody holds is claimed in Redis (`SET NX`) before the
//!   match is made, so two nodes never make two matches of one name.
//!
//! A running match needs Redis for nothing but takeovers: its members' signals and presence
//! stay on its home node, so a Redis restart ends no match (each node publishes its matches
//! again every [`REFRESH`] and as soon as Redis answers again). Every key expires
//! ([`TTL_SECS`]) unless its node refreshes it, so a dead node's entries go by themselves.
//!
//! Keys (prefix `ricochet:`): `node:{node}` (its forwarding URL, expires after
//! [`NODE_TTL_SECS`] without a heartbeat), `home:{match}`, `snap:{match}` (JSON),
//! `room:{name}`, `quick:{room}|{size}|{properties}`, and the sorted set `public`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::Mac as _;
use hyper::upgrade::{OnUpgrade, Upgraded};
use redis::aio::ConnectionManager;
use ricochet_protocol::signaling::MatchId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::hmac_sha256;
use crate::registry::{Gone, QuickKey, Snapshot, Target};
use crate::server::Shared;

/// How long a node's heartbeat key lives; it is refreshed every second.
pub const NODE_TTL_SECS: u64 = 5;
/// How long a match's keys live unless its home node refreshes them.
pub const TTL_SECS: u64 = 30;
/// How often a node publishes every one of its matches again.
pub const REFRESH: Duration = Duration::from_secs(10);
/// How often changed matches are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Headers a forwarding node sets on the request to a match's home node.
pub(crate) const FORWARDED_FOR: &str = "x-ricochet-forwarded-for";
pub(crate) const FORWARD_AUTH: &str = "x-ricochet-forward-auth";
/// How old a forwarded request's signature may be, seconds.
const FORWARD_MAX_AGE_SECS: u64 = 30;

/// This node's place in the cluster.
pub(crate) struct Cluster {
    redis: ConnectionManager,
    /// This node's random ID.
    pub(crate) node: String,
    /// Where other nodes forward joins to this node (`ws://HOST:PORT`).
    url: String,
    secret: Vec<u8>,
}

/// Where a join goes.
pub(crate) enum Route {
    /// This node: the match is here (or is made here, with this ID for a new named room or
    /// quick-match group).
    Local(Option<MatchId>),
    /// Another node is the match's home: forward the WebSocket to this URL.
    Forward(String),
}

/// Where a match is, as [`Cluster::find`] finds it.
enum Found {
    Here,
    There(String),
    Nowhere,
}

/// Redis could not be reached (joins that need it are refused with 503).
#[derive(Debug, thiserror::Error)]
#[error("the cluster's Redis did not answer: {0}")]
pub(crate) struct ClusterError(#[from] redis::RedisError);

fn key(kind: &str, id: impl std::fmt::Display) -> String {
    format!("ricochet:{kind}:{id}")
}

fn quick_key((room, size, props): &QuickKey) -> String {
    let props = serde_json::to_string(props).unwrap_or_default();
    key("quick", format!("{room}|{size}|{props}"))
}

/// Takes over `snap:{id}` if its home node is gone: `{"mine", ""}` when this node is already
/// home, `{"alive", url}` when another live node is, `{"taken", snapshot}` when this node is
/// now home, `{"none", ""}` when there is no snapshot.
const TAKE_OVER: &str = r#"
local home = redis.call('GET', KEYS[1])
if home == ARGV[1] then return {'mine', ''} end
if home then
  local url = redis.call('GET', ARGV[2] .. home)
  if url then return {'alive', url} end
end
local snap = redis.call('GET', KEYS[2])
if not snap then return {'none', ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return {'taken', snap}
"#;

/// Claims name `KEYS[1]` for the new match `ARGV[1]` and makes this node (`ARGV[2]`) its home
/// (`KEYS[2]`), in one step, so that nobody sees the name without a home; or returns the match
/// the name points at: `{"claimed", id}` or `{"taken", id}`.
const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return {'claimed', ARGV[1]}
end
return {'taken', redis.call('GET', KEYS[1]) or ''}
"#;

/// Deletes `KEYS[i]` if it holds `ARGV[i]` (a match that is gone from its keys).
const DELETE_IF: &str = r#"
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[i] then redis.call('DEL', k) end
end
return 1
"#;

impl Cluster {
    /// Connects to Redis at `redis_url`; this node is forwarded to at `url`.
    pub(crate) async fn connect(
        redis_url: &str,
        url: String,
        secret: Vec<u8>,
    ) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(redis_url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_with_config(client, config).await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let cluster = Cluster {
            redis,
            node,
            url,
            secret,
        };
        cluster.heartbeat().await?;
        Ok(cluster)
    }

    async fn heartbeat(&self) -> Result<(), ClusterError> {
        let mut c = self.redis.clone();
        redis::pipe()
            .cmd("SET")
            .arg(key("node", &self.node))
            .arg(&self.url)
            .arg("EX")
            .arg(NODE_TTL_SECS)
            .ignore()
            .cmd("SADD")
            .arg("ricochet:nodes")
            .arg(&self.node)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Where a join of `target` goes; `fresh` is the ID a new match would get.
    pub(crate) async fn route(
        &self,
        shared: &Arc<Shared>,
        target: &Target,
        fresh: MatchId,
    ) -> Result<Route, ClusterError> {
        if shared.registry().holds(target) {
            return Ok(Route::Local(None));
        }
        let name_key = match target {
            Target::Id(id) => return self.route_id(shared, *id).await,
            Target::Name(name) => key("room", name),
            Target::Quick { room, size, props } => quick_key(&(room.clone(), *size, props.clone())),
        };
        let mut c = self.redis.clone();
        for _ in 0..4 {
            let (what, id): (String, String) = redis::Script::new(CLAIM)
                .key(&name_key)
                .key(key("home", fresh))
                .arg(fresh.to_string())
                .arg(&self.node)
                .arg(TTL_SECS)
                .invoke_async(&mut c)
                .await?;
            if what == "claimed" {
                return Ok(Route::Local(Some(fresh)));
            }
            let Ok(id) = id.parse::<MatchId>() else {
                continue;
            };
            match self.find(shared, id).await? {
                Found::Here => return Ok(Route::Local(None)),
                Found::There(url) => return Ok(Route::Forward(url)),
                Found::Nowhere => {
                    // The name points at a match that is gone (its node died and no member
                    // came back): free it and claim it again.
                    self.delete_if(&[(name_key.clone(), id.to_string())])
                        .await?;
                }
            }
        }
        Ok(Route::Local(None))
    }

    /// Where a spectator's join of `target` goes: like [`Cluster::route`], but a room name
    /// nobody holds is looked up, never claimed (a spectator makes no match; the node it lands
    /// on refuses it with `404 unknown_match`).
    pub(crate) async fn route_existing(
        &self,
        shared: &Arc<Shared>,
        target: &Target,
    ) -> Result<Route, ClusterError> {
        if shared.registry().holds(target) {
            return Ok(Route::Local(None));
        }
        let name_key = match target {
            Target::Id(id) => return self.route_id(shared, *id).await,
            Target::Name(name) => key("room", name),
            // Spectators never name a quick-match queue (`next` is refused with `spectate`).
            Target::Quick { .. } => return Ok(Route::Local(None)),
        };
        let mut c = self.redis.clone();
        let id: Option<String> = redis::cmd("GET").arg(&name_key).query_async(&mut c).await?;
        match id.and_then(|id| id.parse::<MatchId>().ok()) {
            Some(id) => self.route_id(shared, id).await,
            None => Ok(Route::Local(None)),
        }
    }

    /// The advertised URL of live node `node`.
    pub(crate) async fn node_url(&self, node: &str) -> Option<String> {
        if !node.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut c = self.redis.clone();
        redis::cmd("GET")
            .arg(key("node", node))
            .query_async::<Option<String>>(&mut c)
            .await
            .ok()
            .flatten()
    }

    /// The live nodes: `{"id", "url"}` each, sorted by ID.
    pub(crate) async fn nodes(&self) -> Result<Vec<serde_json::Value>, ClusterError> {
        let mut c = self.redis.clone();
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg("ricochet:nodes")
            .query_async(&mut c)
            .await?;
        ids.sort();
        let mut nodes = Vec::new();
        for id in ids {
            let url: Option<String> = redis::cmd("GET")
                .arg(key("node", &id))
                .query_async(&mut c)
                .await?;
            match url {
                Some(url) => nodes.push(serde_json::json!({ "id": id, "url": url })),
                // Its heartbeat expired: a dead node, forgotten.
                None => {
                    redis::cmd("SREM")
                        .arg("ricochet:nodes")
                        .arg(&id)
                        .query_async::<()>(&mut c)
                        .await?
                }
            }
        }
        Ok(nodes)
    }

    /// Where match `id` is: here, at its live home node, or here after taking it over.
    pub(crate) async fn route_id(
        &self,
        shared: &Arc<Shared>,
        id: MatchId,
    ) -> Result<Route, ClusterError> {
        Ok(match self.find(shared, id).await? {
            Found::There(url) => Route::Forward(url),
            // Here, or nowhere: the local registry answers (`404` for an unknown match).
            Found::Here | Found::Nowhere => Route::Local(None),
        })
    }

    /// Where match `id` is: here (also after taking it over from a dead node), on another live
    /// node, or nowhere.
    async fn find(&self, shared: &Arc<Shared>, id: MatchId) -> Result<Found, ClusterError> {
        if shared.registry().has_match(&id) {
            return Ok(Found::Here);
        }
        let mut c = self.redis.clone();
        let (what, value): (String, String) = redis::Script::new(TAKE_OVER)
            .key(key("home", id))
            .key(key("snap", id))
            .arg(&self.node)
            .arg("ricochet:node:")
            .arg(TTL_SECS)
            .invoke_async(&mut c)
            .await?;
        match what.as_str() {
            "alive" => Ok(Found::There(value)),
            "taken" => {
                match serde_json::from_str::<Snapshot>(&value) {
                    Ok(snap) => self.take_over(shared, snap),
                    Err(e) => {
                        tracing::warn!(%id, %e, "unreadable snapshot in Redis; not taken over")
                    }
                }
                Ok(if shared.registry().has_match(&id) {
                    Found::Here
                } else {
                    Found::Nowhere
                })
            }
            "mine" => {
                // This node claimed it a moment ago and its first join is being made now: wait
                // for it (a second), rather than make a second match of the same name.
                for _ in 0..50 {
                    if shared.registry().has_match(&id) {
                        return Ok(Found::Here);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Found::Nowhere)
            }
            _ => Ok(Found::Nowhere),
        }
    }

    /// Makes a dead node's match ours: its rejoinable members wait, away, for their rejoins.
    fn take_over(&self, shared: &Arc<Shared>, snap: Snapshot) {
        let grace = Duration::from_secs(crate::registry::rejoin_grace_secs(
            snap.rejoin_grace_secs,
            shared.config.rejoin_grace.as_secs(),
        ));
        if grace.is_zero() {
            return;
        }
        let id = snap.id;
        let away = shared.registry().restore(snap, std::time::Instant::now());
        tracing::info!(match_id = %id, members = away.len(), "took over a match from a dead node");
        shared.metrics.takeovers_total.inc();
        for (peer, conn) in away {
            let weak = Arc::downgrade(shared);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if let Some(shared) = weak.upgrade() {
                    shared.registry().leave(peer, conn);
                }
            });
        }
    }

    async fn delete_if(&self, pairs: &[(String, String)]) -> Result<(), ClusterError> {
        let mut c = self.redis.clone();
        let script = redis::Script::new(DELETE_IF);
        let mut invocation = script.prepare_invoke();
        for (k, v) in pairs {
            invocation.key(k).arg(v);
        }
        invocation.invoke_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Publishes the snapshots of changed matches and removes the keys of gone ones.
    pub(crate) async fn publish(
        &self,
        snaps: Vec<Snapshot>,
        gone: Vec<Gone>,
    ) -> Result<(), ClusterError> {
        let mut c = self.redis.clone();
        if !snaps.is_empty() {
            let mut pipe = redis::pipe();
            for snap in &snaps {
                let id = snap.id.to_string();
                let json = serde_json::to_string(snap).unwrap_or_default();
                pipe.cmd("SET")
                    .arg(key("snap", &id))
                    .arg(json)
                    .arg("EX")
                    .arg(TTL_SECS)
                    .ignore();
                pipe.cmd("SET")
                    .arg(key("home", &id))
                    .arg(&self.node)
                    .arg("EX")
                    .arg(TTL_SECS)
                    .ignore();
                if let Some(name) = &snap.name {
                    pipe.cmd("SET")
                        .arg(key("room", name))
                        .arg(&id)
                        .arg("EX")
                        .arg(TTL_SECS)
                        .ignore();
                }
                if let (Some(q), true) = (&snap.quick, snap.filling) {
                    pipe.cmd("SET")
                        .arg(quick_key(q))
                        .arg(&id)
                        .arg("EX")
                        .arg(TTL_SECS)
                        .ignore();
                }
                if snap.public {
                    pipe.cmd("ZADD")
                        .arg("ricochet:public")
                        .arg(0)
                        .arg(&id)
                        .ignore();
                }
            }
            pipe.query_async::<()>(&mut c).await?;
            // A quick-match group that filled up: its queue no longer points at it.
            let filled: Vec<(String, String)> = snaps
                .iter()
                .filter(|s| !s.filling)
                .filter_map(|s| s.quick.as_ref().map(|q| (quick_key(q), s.id.to_string())))
                .collect();
            if !filled.is_empty() {
                self.delete_if(&filled).await?;
            }
        }
        for g in gone {
            let id = g.id.to_string();
            let mut pairs = vec![(key("home", &id), self.node.clone())];
            if let Some(name) = &g.name {
                pairs.push((key("room", name), id.clone()));
            }
            if let Some(q) = &g.quick {
                pairs.push((quick_key(q), id.clone()));
            }
            self.delete_if(&pairs).await?;
            redis::pipe()
                .cmd("DEL")
                .arg(key("snap", &id))
                .ignore()
                .cmd("ZREM")
                .arg("ricochet:public")
                .arg(&id)
                .ignore()
                .query_async::<()>(&mut c)
                .await?;
        }
        Ok(())
    }

    /// One page of public matches across the cluster, from their snapshots: `(snapshots,
    /// next)` as `GET /matches` pages them.
    pub(crate) async fn list_public(
        &self,
        after: Option<MatchId>,
        scan: usize,
    ) -> Result<(Vec<Snapshot>, Option<MatchId>, bool), ClusterError> {
        let mut c = self.redis.clone();
        let start = after.map_or("-".to_owned(), |id| format!("({id}"));
        let ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg("ricochet:public")
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(scan + 1)
            .query_async(&mut c)
            .await?;
        let more = ids.len() > scan;
        let ids: Vec<String> = ids.into_iter().take(scan).collect();
        let last = ids.last().and_then(|t| t.parse().ok());
        if ids.is_empty() {
            return Ok((Vec::new(), None, false));
        }
        let keys: Vec<String> = ids.iter().map(|id| key("snap", id)).collect();
        let snaps: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut stale = Vec::new();
        let mut found = Vec::new();
        for (id, snap) in ids.iter().zip(snaps) {
            match snap.and_then(|s| serde_json::from_str::<Snapshot>(&s).ok()) {
                Some(s) => found.push(s),
                None => stale.push(id.clone()),
            }
        }
        if !stale.is_empty() {
            // Listed by a node that died: forgotten.
            redis::cmd("ZREM")
                .arg("ricochet:public")
                .arg(&stale)
                .query_async::<()>(&mut c)
                .await?;
        }
        Ok((found, last, more))
    }

    /// Signs the client's address for the home node (`FORWARD_AUTH`: Unix seconds, then the
    /// HMAC of the address and that time).
    fn forward_auth(&self, ip: std::net::IpAddr, secs: u64) -> String {
        let sig: String = hmac_sha256(
            &self.secret,
            format!("ricochet-forward-v1|{ip}|{secs}").as_bytes(),
        )
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        format!("{secs}.{sig}")
    }

    /// The client address a forwarding node vouches for, if the headers carry a valid,
    /// recent signature.
    pub(crate) fn forwarded_ip(&self, headers: &HeaderMap) -> Option<std::net::IpAddr> {
        let ip: std::net::IpAddr = headers.get(FORWARDED_FOR)?.to_str().ok()?.parse().ok()?;
        let auth = headers.get(FORWARD_AUTH)?.to_str().ok()?;
        let (secs, _) = auth.split_once('.')?;
        let secs: u64 = secs.parse().ok()?;
        let now = crate::server::now_unix_ms() / 1000;
        if now.abs_diff(secs) > FORWARD_MAX_AGE_SECS {
            return None;
        }
        // The two texts compared through their MACs: in constant time.
        let expected = self.forward_auth(ip, secs);
        let expected = hmac_sha256(&self.secret, expected.as_bytes())
            .finalize()
            .into_bytes();
        hmac_sha256(&self.secret, auth.as_bytes())
            .verify_slice(&expected)
            .ok()?;
        Some(ip)
    }

    /// Forwards a join to the match's home node at `url`: the same path and query, the client's
    /// address signed in headers, the client's own `Sec-WebSocket-Key`. A refusal there is the
    /// answer here; an accepted join is upgraded here (`upgrade`, the client's connection) and
    /// from then on this node passes the bytes through both ways, frames as they are: the
    /// client's masked frames are what the home node expects from a client, and the home
    /// node's unmasked frames what the client expects from a server. So a forwarded member
    /// costs this node no WebSocket state, no buffer while idle, and one task.
    pub(crate) async fn forward(
        &self,
        upgrade: Option<OnUpgrade>,
        url: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        ip: std::net::IpAddr,
    ) -> Response {
        let unreachable = || {
            crate::server::error(
                StatusCode::BAD_GATEWAY,
                ricochet_protocol::signaling::ErrorCode::ServerFull,
                "could not reach this match's node",
            )
        };
        let target = format!("{}{}", url.trim_end_matches('/'), path_and_query);
        let (Ok(uri), Some(key), Some(upgrade)) = (
            target.parse::<axum::http::Uri>(),
            headers.get(header::SEC_WEBSOCKET_KEY),
            upgrade,
        ) else {
            return unreachable();
        };
        let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) else {
            return unreachable();
        };
        let secs = crate::server::now_unix_ms() / 1000;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             {FORWARDED_FOR}: {ip}\r\n{FORWARD_AUTH}: {}\r\n",
            self.forward_auth(ip, secs)
        )
        .into_bytes();
        for (name, value) in [
            (header::SEC_WEBSOCKET_KEY, Some(key)),
            (header::ORIGIN, headers.get(header::ORIGIN)),
        ] {
            // A header value holds no CR or LF (hyper refused the request otherwise).
            if let Some(value) = value {
                request.extend_from_slice(name.as_str().as_bytes());
                request.extend_from_slice(b": ");
                request.extend_from_slice(value.as_bytes());
                request.extend_from_slice(b"\r\n");
            }
        }
        request.extend_from_slice(b"\r\n");
        // `wss://` is not supported between nodes (as before: no TLS client is built in).
        let plain = uri.scheme_str() == Some("ws");
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let handshake = async {
            if !plain {
                return Err(std::io::ErrorKind::Unsupported.into());
            }
            let mut upstream = tokio::net::TcpStream::connect((host, port)).await?;
            // Signaling is small frames written back to back (see the front door).
            upstream.set_nodelay(true)?;
            upstream.write_all(&request).await?;
            let answer = read_answer(&mut upstream).await?;
            Ok::<_, std::io::Error>((upstream, answer))
        };
        let (upstream, answer) =
            match tokio::time::timeout(FORWARD_CONNECT_TIMEOUT, handshake).await {
                Ok(Ok(done)) => done,
                _ => {
                    return crate::server::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ricochet_protocol::signaling::ErrorCode::ServerFull,
                        "this match's node did not answer; try again",
                    )
                }
            };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        if answer.status != StatusCode::SWITCHING_PROTOCOLS {
            // The home node's refusal, as it gave it.
            let mut out = (answer.status, answer.body).into_response();
            out.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(retry) = answer.retry_after {
                out.headers_mut().insert(header::RETRY_AFTER, retry);
            }
            return out;
        }
        if answer.accept.as_deref() != Some(accept.as_str()) {
            return crate::server::error(
                StatusCode::SERVICE_UNAVAILABLE,
                ricochet_protocol::signaling::ErrorCode::ServerFull,
                "this match's node did not answer; try again",
            );
        }
        let Ok(accept) = HeaderValue::from_str(&accept) else {
            return unreachable();
        };
        // What the home node sent after its answer (its first frames) goes first to the client.
        let early = answer.body;
        tokio::spawn(async move {
            // The client's connection, once hyper has sent it our 101; if it is gone already,
            // dropping `upstream` tells the home node (as a dropped connection).
            if let Ok(client) = upgrade.await {
                let _ = Splice::new(client, upstream, early).await;
            }
        });
        axum::http::Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(axum::body::Body::empty())
            .unwrap_or_else(|_| unreachable())
    }

    /// Runs the cluster's background work until the server stops: the heartbeat every second,
    /// changed matches published every 50 ms, every match again every [`REFRESH`] and as soon
    /// as Redis answers after failing.
    pub(crate) async fn run(self: Arc<Self>, shared: std::sync::Weak<Shared>) {
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        let mut refresh = tokio::time::interval(REFRESH);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let ok = self.heartbeat().await;
                    if let Err(e) = &ok {
                        if !failing {
                            tracing::warn!(%e, "Redis does not answer; running matches go on");
                        }
                    }
                    if ok.is_ok() && failing {
                        tracing::info!("Redis answers again; publishing every match");
                        if let Some(shared) = shared.upgrade() {
                            shared.registry().touch_all();
                        }
                    }
                    failing = ok.is_err();
                }
                _ = publish.tick() => {
                    let Some(s) = shared.upgrade() else { return };
                    let (snaps, gone) = s.registry().take_changes();
                    drop(s);
                    if snaps.is_empty() && gone.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.publish(snaps, gone).await {
                        tracing::debug!(%e, "could not publish matches; they go again when Redis answers");
                        failing = true;
                    }
                }
                _ = refresh.tick() => {
                    let Some(s) = shared.upgrade() else { return };
                    s.registry().touch_all();
                }
            }
        }
    }
}
/// How long a forwarding node waits for the home node's answer to a forwarded join.
const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest answer head a forwarding node reads from a home node.
const MAX_ANSWER_HEAD: usize = 16 * 1024;
/// The longest refusal body a forwarding node passes on.
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// How long a forwarded connection may stay half closed: one side ended (and the other was
/// told), the other has not yet.
const LINGER: Duration = Duration::from_secs(10);
/// The most bytes a forwarded connection moves at once, through a buffer on the stack: an
/// idle one holds no buffer at all.
const SPLICE_CHUNK: usize = 8 * 1024;

/// The home node's answer to a forwarded join.
struct Answer {
    status: StatusCode,
    /// `Sec-WebSocket-Accept` of an accepted join.
    accept: Option<String>,
    /// `Retry-After` of a refusal.
    retry_after: Option<HeaderValue>,
    /// A refusal's body; after an accepted join, what the home node sent after its answer
    /// (its first frames).
    body: Vec<u8>,
}

/// Reads the home node's answer to a forwarded join (an HTTP/1.1 response head, and a
/// refusal's body as long as its `Content-Length`).
async fn read_answer(upstream: &mut tokio::net::TcpStream) -> std::io::Result<Answer> {
    use std::io::{Error, ErrorKind};
    let bad = || Error::from(ErrorKind::InvalidData);
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_ANSWER_HEAD {
            return Err(bad());
        }
        buf.reserve(1024);
        if upstream.read_buf(&mut buf).await? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(bad)?;
    let (mut accept, mut retry_after, mut length, mut websocket) = (None, None, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "sec-websocket-accept" => accept = Some(value.to_owned()),
            "retry-after" => retry_after = HeaderValue::from_str(value).ok(),
            "content-length" => length = value.parse::<usize>().ok(),
            "upgrade" => websocket = value.eq_ignore_ascii_case("websocket"),
            _ => {}
        }
    }
    let mut body = buf.split_off(head_end);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        if !websocket {
            return Err(bad());
        }
        body.shrink_to_fit();
    } else {
        let length = length.unwrap_or(body.len()).min(MAX_ANSWER_BODY);
        while body.len() < length {
            body.reserve(length - body.len());
            if upstream.read_buf(&mut body).await? == 0 {
                break;
            }
        }
        body.truncate(length);
    }
    Ok(Answer {
        status,
        accept,
        retry_after,
        body,
    })
}

/// One end of a forwarded connection, as raw bytes.
trait RawIo: Unpin {
    fn read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>>;
    fn write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>>;
    /// Ends the writing half (a TCP FIN), after what was written.
    fn close_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl RawIo for tokio::net::TcpStream {
    fn read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        ready!(tokio::io::AsyncRead::poll_read(
            Pin::new(self),
            cx,
            &mut buf
        ))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(self), cx, buf)
    }

    fn close_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(self), cx)
    }
}

impl RawIo for Upgraded {
    fn read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let mut buf = hyper::rt::ReadBuf::new(buf);
        ready!(hyper::rt::Read::poll_read(
            Pin::new(self),
            cx,
            buf.unfilled()
        ))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(self), cx, buf)
    }

    fn close_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(self), cx)
    }
}

/// One direction of a forwarded connection.
#[derive(Default)]
struct Direction {
    /// Bytes read and not yet written (the other side was not ready for them); empty and
    /// unallocated otherwise.
    pending: Vec<u8>,
    written: usize,
    /// The reading side ended; the writing side is told once `pending` is written.
    ended: bool,
    /// The end was passed on: nothing more goes this way.
    done: bool,
}

impl Direction {
    /// Moves what `from` has to `to` until `from` has nothing ready or `to` takes no more;
    /// ready once `from` has ended and `to` was told.
    fn pump(
        &mut self,
        from: &mut impl RawIo,
        to: &mut impl RawIo,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        use std::io::ErrorKind::WriteZero;
        loop {
            while self.written < self.pending.len() {
                let n = ready!(to.write_some(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(WriteZero.into()));
                }
                self.written += n;
            }
            if self.pending.capacity() > 0 {
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.ended {
                ready!(to.close_write(cx))?;
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; SPLICE_CHUNK];
            let n = ready!(from.read_some(cx, &mut chunk))?;
            if n == 0 {
                self.ended = true;
                continue;
            }
            let mut at = 0;
            while at < n {
                match to.write_some(cx, &chunk[at..n]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(WriteZero.into())),
                    Poll::Ready(Ok(w)) => at += w,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        self.pending = chunk[at..n].to_vec();
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Passes a forwarded member's bytes between its client and the match's home node until both
/// have ended (or one failed, or one stayed half closed for [`LINGER`]). An end on one side
/// is passed on as an end on the other: a close frame and its answer go through as any
/// frame, and a connection that drops without one (the client's network, or the home node
/// dying) drops the other without one too, so that the home node keeps the member's place
/// for the rejoin grace and the client rejoins (Ricochet's signaller does so after a drop,
/// not after a close).
struct Splice {
    client: Upgraded,
    home: tokio::net::TcpStream,
    up: Direction,
    down: Direction,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Splice {
    /// `early`: what the home node sent after its answer, for the client first.
    fn new(client: Upgraded, home: tokio::net::TcpStream, early: Vec<u8>) -> Splice {
        Splice {
            client,
            home,
            up: Direction::default(),
            down: Direction {
                pending: early,
                ..Direction::default()
            },
            linger: None,
        }
    }
}

impl std::future::Future for Splice {
    type Output = std::io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.up.done {
            if let Poll::Ready(r) = this.up.pump(&mut this.client, &mut this.home, cx) {
                r?;
                this.up.done = true;
            }
        }
        if !this.down.done {
            if let Poll::Ready(r) = this.down.pump(&mut this.home, &mut this.client, cx) {
                r?;
                this.down.done = true;
            }
        }
        match (this.up.done, this.down.done) {
            (true, true) => Poll::Ready(Ok(())),
            (false, false) => Poll::Pending,
            _ => {
                let linger = this
                    .linger
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
                ready!(linger.as_mut().poll(cx));
                Poll::Ready(Ok(()))
            }
        }
    }
}
