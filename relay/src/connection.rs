//! One client connection: the task that reads its frames, forwards them into its match, and
//! writes its outbound queue to the socket in batches.
//!
//! A player's game frames are forwarded to the other players, its STREAM records to the
//! match's stream. A spectator may send RENEW and nothing else: every other frame is answered
//! with [`ErrorCode::NotAllowed`] and goes nowhere. Both are held to the same rate and size
//! limits.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ricochet_protocol::relay::{close, ClientFrame, ErrorCode, Opcode, StreamRecord};
use ricochet_protocol::{Ticket, TicketClaims, TicketError};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, Duration};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use crate::matches::{error_frame, Inbox, JoinError, Membership};
use crate::Shared;
use ricochet_server_kit::TokenBucket;

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

/// What a RENEW frame's ticket (`payload`, its text) must be to extend a membership admitted
/// with `current`: valid at `now`, for the same match, peer and seat, and issued later.
pub(crate) fn check_renewal(
    payload: &[u8],
    current: &TicketClaims,
    secret: &[u8],
    now: u64,
) -> Result<TicketClaims, &'static str> {
    let text = std::str::from_utf8(payload).map_err(|_| "not text")?;
    let fresh = Ticket::from_text(text)
        .verify(secret, now)
        .map_err(|e| match e {
            TicketError::Expired { .. } => "expired",
            _ => "invalid",
        })?;
    if fresh.match_key != current.match_key
        || fresh.peer != current.peer
        || fresh.seat != current.seat
    {
        return Err("another seat");
    }
    if fresh.issued_at_ms <= current.issued_at_ms {
        return Err("not newer");
    }
    Ok(fresh)
}

/// When a membership admitted with a ticket expiring at `expires_at` (Unix seconds) ends, as
/// a tokio instant: the first second after it.
fn expiry_instant(expires_at: u64) -> tokio::time::Instant {
    let left = expires_at
        .saturating_add(1)
        .saturating_sub(crate::unix_now());
    // Far-future expiries (tests, benchmarks) are capped to a day at a time; a renewal or the
    // next check moves it.
    tokio::time::Instant::now() + Duration::from_secs(left.min(86_400))
}

/// What to do with one well-formed client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    /// A RENEW: check this ticket text.
    Renew(&'a [u8]),
    /// Refuse it with this error (and count it under this reason); nothing is forwarded.
    Refuse(ErrorCode, &'static str),
    /// A player's STREAM record: offer it to the match's stream.
    Stream(StreamRecord<'a>),
    /// A player's game frame: forward it to its target or to the other players.
    Forward,
}

/// Decides what a frame from a player (or, with `spectator`, from a spectator) is: a
/// spectator may send only an untargeted RENEW; a player a RENEW, a STREAM record (untargeted,
/// well-formed) or game frames.
pub(crate) fn classify<'a>(f: &ClientFrame<'a>, spectator: bool) -> Action<'a> {
    if f.opcode == Opcode::RENEW && f.target.is_none() {
        return Action::Renew(f.payload);
    }
    if spectator {
        return Action::Refuse(ErrorCode::NotAllowed, "not_allowed");
    }
    if f.opcode == Opcode::STREAM {
        return match StreamRecord::parse(f.payload) {
            Ok(record) if f.target.is_none() => Action::Stream(record),
            _ => Action::Refuse(ErrorCode::Malformed, "malformed"),
        };
    }
    if f.opcode.is_reserved() {
        return Action::Refuse(ErrorCode::ReservedOpcode, "reserved_opcode");
    }
    Action::Forward
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
    let limits = cfg.match_limits();
    let spectator = claims.is_spectator();
    let membership = match shared.matches.join(&claims, &limits, metrics) {
        Ok(m) => m,
        Err(JoinError::Full) => {
            info!("match full");
            metrics.disconnect("match_full");
            send_close(&mut ws, close::MATCH_FULL, "match full").await;
            return;
        }
        Err(JoinError::SeatTaken) => {
            info!("seat held by a newer ticket");
            metrics.disconnect("seat_taken");
            send_close(&mut ws, close::SEAT_TAKEN, "seat_taken").await;
            return;
        }
    };
    let mut claims = claims;
    let Membership {
        game,
        number,
        mut rx,
        tx,
        kick,
    } = membership;
    tracing::Span::current().record("member", number);
    info!(spectator, "joined");

    let mut bucket = TokenBucket::new(cfg.frames_per_second, cfg.frame_burst, Instant::now());
    let mut byte_bucket = TokenBucket::new(cfg.bytes_per_second, cfg.byte_burst, Instant::now());
    // The membership ends when its ticket expires, unless a RENEW brings a later one.
    let expiry = tokio::time::sleep_until(expiry_instant(claims.expires_at));
    let mut expiry = std::pin::pin!(expiry);
    // The loosest bound a member's queue has (every possible member sending): replies to a
    // member's own bad frames never evict a member that reads.
    let (reply_frames, reply_bytes) = if spectator {
        limits.queues.spectator_bound(cfg.max_members_per_match)
    } else {
        limits.queues.bound(cfg.max_members_per_match)
    };
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
        if !tx.push(b, reply_frames, reply_bytes) {
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
            () = &mut expiry => {
                if crate::unix_now() > claims.expires_at {
                    break (Some(close::TICKET_EXPIRED), "ticket_expired");
                }
                // A far-future expiry was capped: wait again.
                expiry.as_mut().reset(expiry_instant(claims.expires_at));
            }
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
                        if !byte_bucket.take_n(data.len() as f64, now) {
                            break (Some(close::BYTE_RATE_LIMITED), "byte_rate_limited");
                        }
                        frames_in += 1;
                        bytes_in += data.len() as u64;
                        let f = match ClientFrame::parse(&data) {
                            Ok(f) => f,
                            Err(_) => {
                                metrics.drop_frame("malformed");
                                reply(error_frame(ErrorCode::Malformed, data.first().copied().unwrap_or(0)));
                                continue;
                            }
                        };
                        match classify(&f, spectator) {
                            Action::Renew(ticket) => {
                                match check_renewal(ticket, &claims, &cfg.secret, crate::unix_now()) {
                                    Ok(fresh) if game.renewed(number, fresh.issued_at_ms) => {
                                        debug!(expires_at = fresh.expires_at, "renewed");
                                        metrics.renewals.inc();
                                        expiry.as_mut().reset(expiry_instant(fresh.expires_at));
                                        claims = fresh;
                                    }
                                    Ok(_) => {}
                                    Err(why) => {
                                        debug!(why, "renewal refused");
                                        metrics.drop_frame("renewal_refused");
                                        reply(error_frame(ErrorCode::TicketRefused, Opcode::RENEW.0));
                                    }
                                }
                            }
                            Action::Refuse(code, reason) => {
                                metrics.drop_frame(reason);
                                reply(error_frame(code, f.opcode.0));
                            }
                            Action::Stream(record) => {
                                game.stream(&shared.matches, number, &record, f.payload, metrics);
                            }
                            Action::Forward => {
                                if let Err(code) = game.forward(&shared.matches, number, f.opcode, f.target, f.payload, metrics) {
                                    metrics.drop_frame("unknown_target");
                                    reply(error_frame(code, f.opcode.0));
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Text(_))) => break (Some(close::UNSUPPORTED_DATA), "text_frame"),
                    // Control frames count against both rate limits: a client flooding pings
                    // (whose pongs tungstenite queues) is cut off like one flooding frames.
                    Some(Ok(Message::Ping(p) | Message::Pong(p))) => {
                        if !bucket.take(now) {
                            break (Some(close::RATE_LIMITED), "rate_limited");
                        }
                        if !byte_bucket.take_n(p.len() as f64, now) {
                            break (Some(close::BYTE_RATE_LIMITED), "byte_rate_limited");
                        }
                    }
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
    rx: &mut Inbox,
    metrics: &crate::metrics::Metrics,
) -> Result<u64, ()> {
    let mut frames = 1u64;
    let mut bytes = first.len() as u64;
    ws.feed(Message::Binary(first)).await.map_err(|_| ())?;
    while frames < MAX_BATCH as u64 {
        match rx.try_recv() {
            Some(b) => {
                frames += 1;
                bytes += b.len() as u64;
                ws.feed(Message::Binary(b)).await.map_err(|_| ())?;
            }
            None => break,
        }
    }
    // Counted as written once handed to the socket.
    metrics.frames_out.inc_by(frames);
    metrics.bytes_out.inc_by(bytes);
    ws.flush().await.map_err(|_| ())?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::PeerId;

    const SECRET: &[u8] = b"connection test secret, 16+ bytes";

    fn claims(seat: u8, issued_at_ms: u64, expires_at: u64) -> TicketClaims {
        TicketClaims {
            match_key: "m".into(),
            peer: PeerId(uuid::Uuid::from_u128(1)),
            seat,
            max_players: 4,
            issued_at_ms,
            expires_at,
        }
    }

    fn text(c: &TicketClaims) -> Vec<u8> {
        Ticket::issue(SECRET, c)
            .unwrap()
            .as_str()
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn a_spectator_may_send_renew_and_nothing_else() {
        use ricochet_protocol::relay::{StreamKind, StreamRecord};
        let key = StreamRecord {
            kind: StreamKind::Key,
            frame: 7,
            count: 0,
            body: b"state",
        }
        .to_vec();
        let frames = [
            ClientFrame::broadcast(Opcode(1), b"inputs"),
            ClientFrame::broadcast(Opcode(0xEF), b""),
            ClientFrame::to_member(Opcode(1), 0, b"to a player"),
            ClientFrame::broadcast(Opcode::STREAM, &key),
            ClientFrame::broadcast(Opcode::STREAM, b"not a record"),
            ClientFrame::to_member(Opcode::STREAM, 0, &key),
            ClientFrame::broadcast(Opcode::WELCOME, b""),
            ClientFrame::to_member(Opcode::RENEW, 0, b"ticket"),
        ];
        for f in &frames {
            assert_eq!(
                classify(f, true),
                Action::Refuse(ErrorCode::NotAllowed, "not_allowed"),
                "{f:?}"
            );
        }
        let renew = ClientFrame::broadcast(Opcode::RENEW, b"ticket");
        assert_eq!(classify(&renew, true), Action::Renew(b"ticket"));
        // The same frames from a player.
        let player: Vec<_> = frames.iter().map(|f| classify(f, false)).collect();
        assert_eq!(
            player,
            [
                Action::Forward,
                Action::Forward,
                Action::Forward,
                Action::Stream(StreamRecord::parse(&key).unwrap()),
                Action::Refuse(ErrorCode::Malformed, "malformed"),
                Action::Refuse(ErrorCode::Malformed, "malformed"),
                Action::Refuse(ErrorCode::ReservedOpcode, "reserved_opcode"),
                Action::Refuse(ErrorCode::ReservedOpcode, "reserved_opcode"),
            ]
        );
        assert_eq!(classify(&renew, false), Action::Renew(b"ticket"));
    }

    #[test]
    fn only_a_later_valid_ticket_for_the_same_seat_renews() {
        let current = claims(1, 1_000, 100);
        let later = claims(1, 2_000, 160);
        assert_eq!(
            check_renewal(&text(&later), &current, SECRET, 120),
            Ok(later.clone())
        );
        let cases: [(Vec<u8>, &str); 6] = [
            (text(&claims(1, 1_000, 160)), "not newer"),
            (text(&claims(1, 500, 160)), "not newer"),
            (text(&claims(2, 2_000, 160)), "another seat"),
            (text(&claims(1, 2_000, 110)), "expired"),
            (b"garbage".to_vec(), "invalid"),
            (vec![0xff, 0xfe], "not text"),
        ];
        for (payload, why) in cases {
            assert_eq!(
                check_renewal(&payload, &current, SECRET, 120),
                Err(why),
                "{why}"
            );
        }
        let other_match = TicketClaims {
            match_key: "n".into(),
            ..later.clone()
        };
        assert_eq!(
            check_renewal(&text(&other_match), &current, SECRET, 120),
            Err("another seat")
        );
        assert_eq!(
            check_renewal(&text(&later), &current, b"another secret of 16+ bytes", 120),
            Err("invalid")
        );
    }
}
