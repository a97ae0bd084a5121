//! One client connection: the task that reads its frames, forwards them into its match, and
//! writes its outbound queue to the socket in batches.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ricochet_protocol::relay::{close, ClientFrame, ErrorCode};
use ricochet_protocol::{Ticket, TicketClaims, TicketError};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Duration};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use crate::matches::{error_frame, JoinError, Membership};
use crate::rate::TokenBucket;
use crate::Shared;

/// Most frames written per flush; the rest wait for the next batch.
const MAX_BATCH: usize = 256;
/// A connection as the shard sees it.
type WebSocket = WebSocketStream<TcpStream>;

/// How long a close frame may take to send.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of checking the ticket presented on the upgrade request.
pub(crate) type Admission = Result<TicketClaims, (u16, &'static str)>;

/// Checks a ticket (or its absence) at `now` (Unix seconds).
pub(crate) fn admit(ticket: Option<&str>, secret: &[u8], now: u64) -> Admission {
    let Some(text) = ticket else {
        return Err((close::TICKET_MISSING, "ticket_missing"));
    };
    match Ticket::from_text(text).verify(secret, now) {
        Ok(claims) => Ok(claims),
        Err(TicketError::Expired { .. }) => Err((close::TICKET_EXPIRED, "ticket_expired")),
        Err(_) => Err((close::TICKET_INVALID, "ticket_invalid")),
    }
}

async fn send_close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, async {
        ws.send(Message::Close(Some(frame))).await?;
        // Wait for the client's close so it reads ours before the TCP connection ends.
        while let Some(msg) = ws.next().await {
            if matches!(msg?, Message::Close(_)) {
                break;
            }
        }
        Ok::<(), WsError>(())
    })
    .await;
}

/// Runs one connection to its end.
pub(crate) async fn serve(
    mut ws: WebSocket,
    shared: Arc<Shared>,
    admission: Admission,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = &shared.metrics;
    let claims = match admission {
        Ok(c) => c,
        Err((code, reason)) => {
            info!(reason, "refused");
            metrics.disconnect(reason);
            send_close(&mut ws, code, reason).await;
            return;
        }
    };
    let cfg = &shared.config;
    let membership = match shared.matches.join(
        &claims.match_key,
        claims.peer,
        cfg.max_members_per_match,
        cfg.outbound_queue,
        metrics,
    ) {
        Ok(m) => m,
        Err(JoinError::Full) => {
            info!("match full");
            metrics.disconnect("match_full");
            send_close(&mut ws, close::MATCH_FULL, "match full").await;
            return;
        }
    };
    let Membership {
        game,
        number,
        mut rx,
        tx,
        kick,
    } = membership;
    tracing::Span::current().record("member", number);
    info!("joined");

    let mut bucket = TokenBucket::new(cfg.frames_per_second, cfg.frame_burst, Instant::now());
    // Spread the connections' housekeeping ticks over the interval, so that thousands of
    // connections made together do not all wake (and ping) in the same millisecond.
    let phase = cfg
        .ping_interval
        .mul_f64(f64::from((number as u32).wrapping_mul(2_654_435_761) % 1000) / 1000.0);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, cfg.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let (mut frames_in, mut bytes_in, mut batches) = (0u64, 0u64, 0u64);
    let reply = |b: Bytes| {
        if tx.try_send(b).is_err() {
            kick.kick(close::SLOW_READER);
        }
    };

    // Kick and shutdown are waited on by futures that live as long as the connection: polling
    // fresh ones on every turn of the loop would register and unregister a waiter, under a
    // lock shared by every connection, for every frame.
    let mut kicked = std::pin::pin!(kick.kicked());
    let mut stopped = std::pin::pin!(shutdown.changed());
    let (code, reason): (Option<u16>, &'static str) = loop {
        tokio::select! {
            biased;
            code = &mut kicked => break (Some(code), match code {
                close::SLOW_READER => "slow_reader",
                close::REPLACED => "replaced",
                _ => "kicked",
            }),
            _ = &mut stopped => break (Some(close::GOING_AWAY), "shutdown"),
            Some(first) = rx.recv() => {
                let written = tokio::select! {
                    biased;
                    r = write_batch(&mut ws, first, &mut rx, metrics) => r,
                    code = &mut kicked => {
                        // Stuck writing to a reader that does not read: drop the socket.
                        debug!(code, "kicked while writing");
                        break (Some(code), "slow_reader");
                    }
                };
                match written {
                    Ok(frames) => {
                        batches += 1;
                        // The histogram takes a lock: sample one batch in 16.
                        if batches % 16 == 0 {
                            metrics.queue_depth.observe(frames as f64);
                        }
                    }
                    Err(()) => break (None, "write_error"),
                }
            }
            msg = ws.next() => {
                let now = Instant::now();
                last_heard = now;
                match msg {
                    Some(Ok(Message::Binary(data))) => {
                        if data.len() > cfg.max_frame_len {
                            break (Some(close::MESSAGE_TOO_BIG), "oversize");
                        }
                        if !bucket.take(now) {
                            break (Some(close::RATE_LIMITED), "rate_limited");
                        }
                        frames_in += 1;
                        bytes_in += data.len() as u64;
                        match ClientFrame::parse(&data) {
                            Err(_) => {
                                metrics.drop_frame("malformed");
                                reply(error_frame(ErrorCode::Malformed, data.first().copied().unwrap_or(0)));
                            }
                            Ok(f) if f.opcode.is_reserved() => {
                                metrics.drop_frame("reserved_opcode");
                                reply(error_frame(ErrorCode::ReservedOpcode, f.opcode.0));
                            }
                            Ok(f) => {
                                if let Err(code) = game.forward(&shared.matches, number, f.opcode, f.target, f.payload, metrics) {
                                    metrics.drop_frame("unknown_target");
                                    reply(error_frame(code, f.opcode.0));
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Text(_))) => break (Some(close::UNSUPPORTED_DATA), "text_frame"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break (None, "closed"),
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(WsError::Capacity(e))) => {
                        debug!(error = %e, "message over the WebSocket limit");
                        break (Some(close::MESSAGE_TOO_BIG), "oversize");
                    }
                    Some(Err(WsError::Protocol(e))) => {
                        debug!(error = %e, "WebSocket protocol error");
                        break (Some(close::PROTOCOL_ERROR), "protocol_error");
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "read error");
                        break (None, "read_error");
                    }
                }
            }
            _ = ticker.tick() => {
                metrics.frames_in.inc_by(std::mem::take(&mut frames_in));
                metrics.bytes_in.inc_by(std::mem::take(&mut bytes_in));
                let quiet = last_heard.elapsed();
                if quiet >= cfg.idle_timeout {
                    break (Some(close::IDLE_TIMEOUT), "idle_timeout");
                }
                // A client that keeps sending is evidently there: ping only quiet ones.
                if quiet >= cfg.ping_interval && timeout(CLOSE_TIMEOUT, ws.send(Message::Ping(Bytes::new()))).await.is_err() {
                    break (None, "write_error");
                }
            }
        }
    };
    metrics.frames_in.inc_by(frames_in);
    metrics.bytes_in.inc_by(bytes_in);
    shared.matches.leave(&game, number, metrics);
    metrics.disconnect(reason);
    info!(reason, "left");
    if let Some(code) = code {
        send_close(&mut ws, code, reason).await;
    }
}

/// Writes `first` and whatever else is queued (up to [`MAX_BATCH`]) with one flush; returns
/// how many frames that was.
async fn write_batch(
    ws: &mut WebSocket,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
    metrics: &crate::metrics::Metrics,
) -> Result<u64, ()> {
    let mut frames = 1u64;
    let mut bytes = first.len() as u64;
    ws.feed(Message::Binary(first)).await.map_err(|_| ())?;
    while frames < MAX_BATCH as u64 {
        match rx.try_recv() {
            Ok(b) => {
                frames += 1;
                bytes += b.len() as u64;
                ws.feed(Message::Binary(b)).await.map_err(|_| ())?;
            }
            Err(_) => break,
        }
    }
    // Counted as written once handed to the socket.
    metrics.frames_out.inc_by(frames);
    metrics.bytes_out.inc_by(bytes);
    ws.flush().await.map_err(|_| ())?;
    Ok(frames)
}
