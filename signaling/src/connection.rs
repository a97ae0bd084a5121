//! One task per WebSocket: forwards queued frames out, handles frames in, enforces the idle
//! timeout and the message rate, and leaves the match when it ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use ricochet_protocol::signaling::{
    check_meta, ClientFrame, ClientMessage, ErrorCode, ServerFrame, ServerMessage,
};
use ricochet_protocol::PeerId;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::{MessageKind, Rejection};
use crate::registry::{Joined, LobbyRefusal, Outbound, Routed};
use crate::server::{now_unix_ms, Shared};

/// A send to a client that takes longer than this means the client is gone or not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// WebSocket close codes (RFC 6455 §7.4.1).
mod close_code {
    pub(super) const NORMAL: u16 = 1000;
    pub(super) const GOING_AWAY: u16 = 1001;
    pub(super) const POLICY: u16 = 1008;
    pub(super) const TOO_BIG: u16 = 1009;
}

/// A member's place in the registry; leaving the match happens when this is dropped, whatever
/// ended the connection (including a failed upgrade).
pub(crate) struct Membership {
    shared: Arc<Shared>,
    peer: PeerId,
    /// This connection's number in the registry (see [`crate::registry::Registry::leave`]).
    conn: u64,
    rx: mpsc::Receiver<Outbound>,
    /// Bytes in `rx`, counted by the registry; what is taken out is subtracted here.
    queued: Arc<AtomicUsize>,
    /// The connection dropped without a close (lost network, killed process): the member
    /// waits out the rejoin grace instead of leaving at once.
    dropped: bool,
    /// A spectator's connection: it may send only `KeepAlive` and `renew_ticket`.
    spectator: bool,
}

impl Membership {
    pub(crate) fn new(shared: Arc<Shared>, joined: Joined) -> Membership {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Membership {
            shared,
            peer: joined.peer,
            conn: joined.conn,
            rx: joined.rx,
            queued: joined.queued,
            dropped: false,
            spectator: joined.spectator,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let server_grace = self.shared.config.rejoin_grace.as_secs();
        let (peer, conn) = (self.peer, self.conn);
        // The match's own grace (never more than the server's); none if either is 0.
        let away = (self.dropped && server_grace > 0 && !*self.shared.shutdown.borrow())
            .then(|| self.shared.registry().dropped(peer, conn, server_grace))
            .flatten();
        if let Some(grace_secs) = away {
            let grace = Duration::from_secs(grace_secs);
            self.shared.metrics.dropped_total.inc();
            tracing::info!(
                grace_secs,
                "connection dropped; the place is kept for a rejoin"
            );
            let shared = self.shared.clone();
            // Outside a runtime (never in the server) the member leaves now.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    shared.registry().leave(peer, conn);
                })),
                Err(_) => self.shared.registry().leave(peer, conn),
            }
        } else {
            self.shared.registry().leave(peer, conn);
            tracing::info!("left");
        }
        if self.shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

enum Flow {
    Continue,
    Close(u16, &'static str),
    /// The client closed with 1001 "going away": a browser page unloading (a reload, or
    /// navigating away). Like a dropped connection, a rejoinable member keeps its place for
    /// the grace, so that a reloaded page takes its seat back.
    GoingAway,
}

/// Runs one member's connection to its end.
pub(crate) async fn serve_connection(mut socket: WebSocket, mut membership: Membership) {
    let shared = membership.shared.clone();
    let config = &shared.config;
    let mut shutdown = shared.shutdown.clone();
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut limit = ricochet_server_kit::TokenBucket::new(
        config.messages_per_second,
        config.message_burst,
        Instant::now().into_std(),
    );
    // A member's relay ticket is renewed unasked at half its lifetime, so a client on the relay
    // always holds one it can pass to the relay (Opcode RENEW) before its membership there
    // expires; a client that leaves signaling gets no more, and its relay membership ends.
    let renew_every = (config.ticket_ttl / 2).max(Duration::from_millis(500));
    let mut renew = tokio::time::interval_at(Instant::now() + renew_every, renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            _ = renew.tick() => {
                if let Some(text) = fresh_ticket(&membership) {
                    if !send(&mut socket, Message::Text(text)).await {
                        break None;
                    }
                }
            }
            out = membership.rx.recv() => match out {
                Some(text) => {
                    membership.queued.fetch_sub(text.len(), Ordering::Relaxed);
                    if !send(&mut socket, Message::Text(text)).await {
                        break None;
                    }
                }
                // The registry dropped our queue: the operator ended the membership, a rejoin
                // took it to a new connection, or we were cut off as too slow.
                None => {
                    // One look under the lock (a guard held across a second `registry()`
                    // call would deadlock the server).
                    let (kicked, replaced) = {
                        let mut registry = shared.registry();
                        let kicked = registry.kicked(membership.peer, membership.conn);
                        (kicked, registry.replaced(membership.peer, membership.conn))
                    };
                    break Some(match kicked {
                        Some(code) if code == crate::registry::CLOSE_MATCH_CLOSED => {
                            (code, "match closed by the operator")
                        }
                        Some(code) if code == crate::registry::CLOSE_MATCH_ENDED => {
                            (code, "match ended")
                        }
                        Some(code) => (code, "removed by the operator"),
                        None if replaced => (close_code::NORMAL, "replaced by a rejoin"),
                        None => (close_code::POLICY, "too slow: outbound queue overflowed"),
                    });
                }
            },
            incoming = socket.recv() => match incoming {
                None => break None,
                Some(Err(e)) => {
                    // tungstenite reports a message over `max_message_size` as a capacity error.
                    let text = e.to_string();
                    if text.contains("Space limit exceeded") || text.contains("too long") {
                        shared.metrics.reject(Rejection::Oversize);
                        tracing::info!("message over the size limit");
                        break Some((close_code::TOO_BIG, "message too big"));
                    }
                    tracing::debug!(error = %e, "websocket error");
                    break None;
                }
                Some(Ok(message)) => {
                    let now = Instant::now();
                    idle.as_mut().reset(now + config.idle_timeout);
                    if !limit.take(now.into_std()) {
                        shared.metrics.reject(Rejection::RateLimited);
                        tracing::info!("message rate exceeded");
                        break Some((close_code::POLICY, "message rate exceeded"));
                    }
                    match handle(&mut socket, &membership, message).await {
                        Flow::Continue => {}
                        Flow::Close(code, reason) => break Some((code, reason)),
                        Flow::GoingAway => break None,
                    }
                }
            },
            () = &mut idle => {
                shared.metrics.reject(Rejection::IdleTimeout);
                break Some((close_code::NORMAL, "idle timeout"));
            }
            () = shutting_down(&mut shutdown) => {
                break Some((close_code::GOING_AWAY, "server shutting down"));
            }
        }
    };
    // No close from either side: the connection dropped. (A client that closes and resets
    // its connection while the server is writing to it looks the same: the close frame it
    // sent cannot be read after the failed write.)
    membership.dropped = end.is_none();
    if let Some((code, reason)) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // Then read (and drop) what the client still sends until its own close, so the TCP
        // connection does not end with its data unread: that resets the connection, and a
        // client that keeps sending (the one closed for its message rate) would lose our close
        // frame with the reset and never learn why.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if !send(&mut socket, Message::Close(Some(frame))).await {
                return;
            }
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    drop(membership);
}

/// Completes once the server starts shutting down.
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop {
            return;
        }
        if rx.changed().await.is_err() {
            // The server is gone without a signal: nothing more to wait for.
            return std::future::pending().await;
        }
    }
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn reply_error(socket: &mut WebSocket, code: ErrorCode, message: String) -> Flow {
    let text = ServerFrame::Ricochet(ServerMessage::Error { code, message }).to_json();
    if send(socket, Message::Text(text.into())).await {
        Flow::Continue
    } else {
        Flow::Close(close_code::NORMAL, "")
    }
}

/// A `Ticket` message with a fresh ticket for this member's seat (`None` once it has left).
fn fresh_ticket(membership: &Membership) -> Option<Utf8Bytes> {
    let shared = &membership.shared;
    let grant = shared
        .registry()
        .grant(membership.peer, &shared.ticketing, now_unix_ms())?;
    Some(
        ServerFrame::Ricochet(ServerMessage::Ticket(grant))
            .to_json()
            .into(),
    )
}

async fn handle(socket: &mut WebSocket, membership: &Membership, message: Message) -> Flow {
    let shared = &membership.shared;
    let me = membership.peer;
    let text = match message {
        Message::Text(text) => text,
        Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
        Message::Close(Some(frame)) if frame.code == close_code::GOING_AWAY => {
            return Flow::GoingAway
        }
        Message::Close(_) => return Flow::Close(close_code::NORMAL, ""),
        Message::Binary(_) => {
            shared.metrics.message(MessageKind::Invalid);
            shared.metrics.reject(Rejection::Malformed);
            return reply_error(
                socket,
                ErrorCode::Malformed,
                "binary frames are not used".into(),
            )
            .await;
        }
    };
    let frame = match ClientFrame::from_json(text.as_str()) {
        Ok(frame) => frame,
        Err(e) => {
            shared.metrics.message(MessageKind::Invalid);
            shared.metrics.reject(Rejection::Malformed);
            tracing::debug!(error = %e, "malformed frame");
            return reply_error(socket, ErrorCode::Malformed, e.to_string()).await;
        }
    };
    if membership.spectator {
        if let Some(what) = refused_to_spectators(&frame) {
            shared.metrics.message(match frame {
                ClientFrame::Signal { .. } => MessageKind::Signal,
                _ => MessageKind::Extension,
            });
            shared.metrics.reject(Rejection::SpectatorRefused);
            return reply_error(
                socket,
                ErrorCode::BadRequest,
                format!(
                    "a spectator may not send {what}: it watches the match and may send only \
                     KeepAlive and renew_ticket"
                ),
            )
            .await;
        }
    }
    match frame {
        ClientFrame::Signal { receiver, data } => {
            shared.metrics.message(MessageKind::Signal);
            // The sender is stamped here: a client cannot claim to be someone else.
            let out = ServerFrame::Signal { sender: me, data }.to_json();
            let routed =
                shared
                    .registry()
                    .route_signal(me, receiver, out.into(), Instant::now().into_std());
            match routed {
                // A dropped signal's receiver was cut off; the sender hears `PeerLeft`.
                Routed::Delivered | Routed::Dropped => Flow::Continue,
                Routed::Throttled => {
                    shared.metrics.reject(Rejection::SignalRateLimited);
                    let c = &shared.config;
                    reply_error(
                        socket,
                        ErrorCode::SignalRateLimited,
                        format!(
                            "signal to {receiver} not delivered: you may send each member at most \
                             {} signals ({} bytes) at once, then {} signals ({} bytes) per second",
                            c.signal_burst, c.signal_byte_burst, c.signal_rate, c.signal_byte_rate
                        ),
                    )
                    .await
                }
                Routed::UnknownPeer => {
                    shared.metrics.reject(Rejection::UnknownPeer);
                    reply_error(
                        socket,
                        ErrorCode::UnknownPeer,
                        format!("peer {receiver} is not in your match"),
                    )
                    .await
                }
                Routed::Gone => Flow::Close(close_code::POLICY, "removed"),
            }
        }
        ClientFrame::KeepAlive => {
            shared.metrics.message(MessageKind::KeepAlive);
            Flow::Continue
        }
        ClientFrame::Ricochet(msg) => {
            shared.metrics.message(MessageKind::Extension);
            match msg {
                ClientMessage::SetMeta { meta } => {
                    if let Err(e) = check_meta(&meta, shared.config.max_meta_size) {
                        shared.metrics.reject(Rejection::BadMeta);
                        let code = match e {
                            ricochet_protocol::signaling::MetaError::TooLarge { .. } => {
                                ErrorCode::MetaTooLarge
                            }
                            _ => ErrorCode::BadMeta,
                        };
                        return reply_error(socket, code, e.to_string()).await;
                    }
                    let set = shared
                        .registry()
                        .set_meta(me, meta, Instant::now().into_std());
                    if set.is_err() {
                        shared.metrics.reject(Rejection::MetaRateLimited);
                        let c = &shared.config;
                        return reply_error(
                            socket,
                            ErrorCode::MetaRateLimited,
                            format!(
                                "metadata not changed: at most {} changes at once, then {} per \
                                 second",
                                c.meta_burst, c.meta_rate
                            ),
                        )
                        .await;
                    }
                    Flow::Continue
                }
                ClientMessage::RenewTicket => match fresh_ticket(membership) {
                    Some(text) => {
                        if send(socket, Message::Text(text)).await {
                            Flow::Continue
                        } else {
                            Flow::Close(close_code::NORMAL, "")
                        }
                    }
                    None => {
                        reply_error(
                            socket,
                            ErrorCode::TicketUnavailable,
                            "ticket could not be issued".into(),
                        )
                        .await
                    }
                },
                ClientMessage::SetReady { ready } => {
                    let done = shared
                        .registry()
                        .set_ready(me, ready, Instant::now().into_std());
                    lobby_reply(socket, shared, done).await
                }
                ClientMessage::Links {
                    links,
                    relay_packets,
                } => {
                    let n = links.len();
                    let kept = shared.registry().report_links(
                        me,
                        links,
                        relay_packets,
                        Instant::now().into_std(),
                    );
                    if kept.is_err() {
                        shared.metrics.reject(Rejection::ReportRefused);
                        return reply_error(
                            socket,
                            ErrorCode::ReportRefused,
                            format!(
                                "link report not kept: at most one per second, with at most {} \
                                 links (this one had {n})",
                                ricochet_protocol::signaling::MAX_LINK_REPORTS
                            ),
                        )
                        .await;
                    }
                    Flow::Continue
                }
                ClientMessage::Start => {
                    let done = shared.registry().start(me);
                    lobby_reply(socket, shared, done).await
                }
                // Future client messages this server does not know.
                #[allow(unreachable_patterns)]
                _ => reply_error(socket, ErrorCode::BadRequest, "unsupported message".into()).await,
            }
        }
        #[allow(unreachable_patterns)]
        _ => Flow::Continue,
    }
}

/// What a spectator sent that it may not send (it may send only `KeepAlive` and
/// `renew_ticket`), named for the error; `None` if it may.
fn refused_to_spectators(frame: &ClientFrame) -> Option<&'static str> {
    match frame {
        ClientFrame::KeepAlive | ClientFrame::Ricochet(ClientMessage::RenewTicket) => None,
        ClientFrame::Signal { .. } => Some("signals (it never connects to the players)"),
        ClientFrame::Ricochet(ClientMessage::SetMeta { .. }) => Some("set_meta"),
        ClientFrame::Ricochet(ClientMessage::SetReady { .. }) => Some("set_ready"),
        ClientFrame::Ricochet(ClientMessage::Start) => Some("start"),
        ClientFrame::Ricochet(ClientMessage::Links { .. }) => Some("links"),
        // Whatever later versions add: refused until it is known to be harmless.
        #[allow(unreachable_patterns)]
        _ => Some("this message"),
    }
}

/// Tells the sender why its lobby request was refused (nothing changed, nobody else hears).
async fn lobby_reply(
    socket: &mut WebSocket,
    shared: &Shared,
    done: Result<(), LobbyRefusal>,
) -> Flow {
    let Err(why) = done else {
        return Flow::Continue;
    };
    let c = &shared.config;
    let (code, message) = match why {
        LobbyRefusal::NotHost => (
            ErrorCode::NotHost,
            "only the host (the member present longest) can start the match".to_owned(),
        ),
        LobbyRefusal::NotEnoughReady { ready, needed } => (
            ErrorCode::NotEnoughReady,
            format!("{ready} members are ready, the match needs {needed} to start"),
        ),
        LobbyRefusal::AlreadyStarted => (
            ErrorCode::AlreadyStarted,
            "the match has already started".to_owned(),
        ),
        LobbyRefusal::NoLobby => (
            ErrorCode::NoLobby,
            "a quick-match group has no lobby: it starts when it is full".to_owned(),
        ),
        LobbyRefusal::RateLimited => {
            shared.metrics.reject(Rejection::MetaRateLimited);
            return reply_error(
                socket,
                ErrorCode::MetaRateLimited,
                format!(
                    "ready not changed: ready and metadata changes together at most {} at once, \
                     then {} per second",
                    c.meta_burst, c.meta_rate
                ),
            )
            .await;
        }
    };
    shared.metrics.reject(Rejection::LobbyRefused);
    reply_error(socket, code, message).await
}
