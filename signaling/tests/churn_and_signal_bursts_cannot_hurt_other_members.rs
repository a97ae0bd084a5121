//! Finding 6: one address joined and left a room thousands of times a second, flooding its
//! members with `NewPeer`/`PeerLeft`; and four members sending signals within their message
//! burst got a reading fifth member cut off as too slow. Now joins are rate limited per address
//! and per match (refused with `429` before the upgrade), and each sender has a budget per
//! receiver that the receiver's queue always has room for (excess signals are refused to the
//! sender).
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use ricochet_protocol::signaling::{ErrorCode, ServerFrame, ServerMessage};
use ricochet_protocol::PeerId;
use tokio_tungstenite::tungstenite::Message;

use common::*;

fn local(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// The default configuration without the rejoin grace. A churner closes while the server is
/// still writing its welcome, which resets the connection: the server cannot tell that from a
/// dropped connection and would keep each place for the grace (counted against the churner's
/// address like an open connection). These tests count the presence events of joins and
/// leaves as they happen.
fn churn_config() -> ricochet_signaling::Config {
    let mut c = config();
    c.set_rejoin_grace(Duration::ZERO).unwrap();
    c
}

/// Joins and leaves `path` from `from` as fast as it can until `until`; returns (accepted,
/// refusal codes).
async fn churn(
    server: std::net::SocketAddr,
    from: IpAddr,
    path: &str,
    until: Instant,
) -> (usize, Vec<String>) {
    let (mut accepted, mut refused) = (0, Vec::new());
    while Instant::now() < until {
        match join_from(from, server, path).await {
            Ok(mut c) => {
                accepted += 1;
                let _ = c.ws.close(None).await;
            }
            Err((status, body)) => {
                assert_eq!(status, 429, "{body}");
                refused.push(body["error"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    (accepted, refused)
}

/// How many refusals had each code.
fn tally(codes: &[String]) -> std::collections::BTreeMap<&str, usize> {
    let mut t = std::collections::BTreeMap::new();
    for c in codes {
        *t.entry(c.as_str()).or_insert(0) += 1;
    }
    t
}

/// Counts the `NewPeer` and `PeerLeft` a member receives until nothing arrives for `quiet`.
async fn count_presence(ws: &mut Ws, quiet: Duration) -> (usize, usize) {
    let (mut joined, mut left) = (0, 0);
    while let Ok(Some(msg)) = tokio::time::timeout(quiet, ws.next()).await {
        if let Message::Text(t) = msg.expect("member socket failed") {
            match ServerFrame::from_json(t.as_str()).unwrap() {
                ServerFrame::NewPeer(_) => joined += 1,
                ServerFrame::PeerLeft(_) => left += 1,
                _ => {}
            }
        }
    }
    (joined, left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_from_one_address_is_refused_beyond_its_join_rate() {
    // The default limits: 5 joins per second per address (20 at once).
    let server = start(churn_config()).await;
    let mut member = join_from(local(1), server.addr, "/churn").await.unwrap();
    welcome(&mut member.ws).await;
    let churning = Duration::from_secs(3);
    let started = Instant::now();
    let attacker = churn(server.addr, local(2), "/churn", started + churning);
    let member_side = count_presence(&mut member.ws, Duration::from_millis(1500));
    let ((accepted, refused), (joined, left)) = tokio::join!(attacker, member_side);
    let elapsed = started.elapsed().min(churning).as_secs_f64() + 0.2;
    let bound = 20 + (5.0 * elapsed).ceil() as usize;
    let codes = tally(&refused);
    eprintln!(
        "one address, {churning:?}: {accepted} joins accepted, refused {codes:?}; the member saw {joined} NewPeer, {left} PeerLeft"
    );
    // The match's burst (20, one used by the member) and the address's (20) overlap; past
    // them, the address's rate (5/s, below the match's 10/s) is what holds it back.
    assert!(
        (19..=bound).contains(&accepted),
        "{accepted} accepted (bound {bound})"
    );
    assert!(
        codes.get("join_rate_limited").is_some_and(|n| *n > 0),
        "{codes:?}"
    );
    assert_eq!(
        codes
            .keys()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .filter(|c| !["join_rate_limited", "match_join_rate_limited"].contains(c))
            .count(),
        0,
        "{codes:?}"
    );
    assert_eq!((joined, left), (accepted, accepted));
    // The member is still there and working.
    let mut other = join_from(local(3), server.addr, "/churn").await.unwrap();
    expect_joined(&mut member.ws, other.id).await;
    welcome(&mut other.ws).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_from_many_addresses_is_bounded_by_the_match_join_rate() {
    // The default limits: 10 joins per second into one match (20 at once), whoever joins.
    // Eight addresses could join 40 times a second between them.
    let server = start(churn_config()).await;
    let mut member = join_from(local(1), server.addr, "/busy").await.unwrap();
    welcome(&mut member.ws).await;
    let churning = Duration::from_secs(3);
    let started = Instant::now();
    let attackers: Vec<_> = (10..18)
        .map(|n| {
            let (addr, until) = (server.addr, started + churning);
            tokio::spawn(async move { churn(addr, local(n), "/busy", until).await })
        })
        .collect();
    let (joined, left) = count_presence(&mut member.ws, Duration::from_millis(1500)).await;
    let (mut accepted, mut refused) = (0, Vec::new());
    for a in attackers {
        let (n, r) = a.await.unwrap();
        accepted += n;
        refused.extend(r);
    }
    let elapsed = started.elapsed().min(churning).as_secs_f64() + 0.2;
    // The member's own join took one of the 20.
    let bound = 19 + (10.0 * elapsed).ceil() as usize;
    let codes = tally(&refused);
    eprintln!(
        "8 addresses, {churning:?}: {accepted} joins accepted, refused {codes:?}; the member saw {joined} NewPeer, {left} PeerLeft (bound {bound} each)"
    );
    assert!(accepted <= bound, "{accepted} accepted (bound {bound})");
    assert!(accepted >= 19, "{accepted} accepted");
    assert_eq!((joined, left), (accepted, accepted));
    assert!(
        codes.get("match_join_rate_limited").is_some_and(|n| *n > 0),
        "{codes:?}"
    );
    // Other matches are not affected by this one's limit.
    let mut elsewhere = join_from(local(20), server.addr, "/quiet").await.unwrap();
    welcome(&mut elsewhere.ws).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_bursting_signals_at_a_reading_fifth_do_not_get_it_cut_off() {
    let cfg = config();
    let (message_burst, signal_burst) = (cfg.message_burst() as usize, cfg.signal_burst() as usize);
    let server = start(cfg).await;
    let mut receiver = join(&server.url("/burst")).await;
    welcome(&mut receiver.ws).await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        let mut s = join(&server.url("/burst")).await;
        welcome(&mut s.ws).await;
        expect_joined(&mut receiver.ws, s.id).await;
        senders.push(s);
    }
    // Everyone has seen everyone join.
    for i in 0..senders.len() {
        let later: Vec<PeerId> = senders[i + 1..].iter().map(|s| s.id).collect();
        for id in later {
            expect_joined(&mut senders[i].ws, id).await;
        }
    }
    // Each sender sends its whole message burst (400) of ICE-candidate-sized signals to the
    // receiver at once, and reads what the server answers it.
    let started = Instant::now();
    let to = receiver.id;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let (mut sink, mut stream) = s.ws.split();
                let writer = async {
                    for n in 0..message_burst {
                        let data =
                            serde_json::json!({"IceCandidate": format!("{n}:{}", "c".repeat(180))});
                        let text = serde_json::json!({"Signal": {"receiver": to, "data": data}});
                        sink.send(Message::text(text.to_string())).await.unwrap();
                    }
                };
                let reader = async {
                    let mut refused = 0;
                    while let Ok(Some(msg)) =
                        tokio::time::timeout(Duration::from_secs(2), stream.next()).await
                    {
                        match msg.expect("sender socket failed") {
                            Message::Text(t) => match ServerFrame::from_json(t.as_str()).unwrap() {
                                ServerFrame::Ricochet(ServerMessage::Error { code, .. }) => {
                                    assert_eq!(code, ErrorCode::SignalRateLimited);
                                    refused += 1;
                                }
                                other => panic!("sender got {other:?}"),
                            },
                            Message::Close(c) => panic!("sender closed: {c:?}"),
                            _ => {}
                        }
                    }
                    refused
                };
                let ((), refused) = tokio::join!(writer, reader);
                (s.id, refused, sink.reunite(stream).unwrap())
            })
        })
        .collect();
    // The receiver reads, one frame per millisecond (1,000 frames/s).
    let mut received = std::collections::HashMap::<PeerId, usize>::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), receiver.ws.next()).await {
            Err(_) => break,
            Ok(None) => panic!("receiver's socket ended"),
            Ok(Some(msg)) => match msg.expect("receiver socket failed") {
                Message::Text(t) => match ServerFrame::from_json(t.as_str()).unwrap() {
                    ServerFrame::Signal { sender, .. } => *received.entry(sender).or_default() += 1,
                    other => panic!("receiver got {other:?}"),
                },
                Message::Close(c) => panic!("the receiver was cut off: {c:?}"),
                _ => {}
            },
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut sockets = Vec::new();
    for task in tasks {
        let (id, refused, ws) = task.await.unwrap();
        let delivered = received.get(&id).copied().unwrap_or(0);
        eprintln!("sender {id}: {delivered} delivered, {refused} refused");
        // Every signal was either delivered or refused to its sender, none lost.
        assert_eq!(delivered + refused, message_burst);
        // The burst, plus what the budget refilled (8 per second) while sending.
        assert!(
            delivered >= signal_burst
                && delivered <= signal_burst + (8.0 * elapsed).ceil() as usize,
            "{delivered} delivered in {elapsed:.2} s"
        );
        sockets.push((id, ws));
    }
    // Nobody was cut off: the receiver still signals each sender.
    for (id, ws) in &mut sockets {
        signal(&mut receiver.ws, *id, serde_json::json!("still here")).await;
        expect_signal(ws, receiver.id, serde_json::json!("still here")).await;
    }
    let (_, metrics) = http(server.addr, "GET", "/metrics", None).await;
    assert!(!metrics.contains(r#"reason="too_slow""#), "{metrics}");
    assert!(
        metrics.contains(r#"reason="signal_rate_limited""#),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metadata_changes_beyond_the_rate_are_refused_to_the_sender_only() {
    // The default limits: 4 changes at once, then 1 per second.
    let server = start(churn_config()).await;
    let mut a = join(&server.url("/meta")).await;
    welcome(&mut a.ws).await;
    let mut b = join(&server.url("/meta")).await;
    welcome(&mut b.ws).await;
    expect_joined(&mut a.ws, b.id).await;
    for n in 0..5 {
        let text = serde_json::json!({"Ricochet": {"type": "set_meta", "meta": {"n": n}}});
        send_text(&mut b.ws, &text.to_string()).await;
    }
    match recv_ext(&mut b.ws).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, ErrorCode::MetaRateLimited);
            assert!(message.contains("at most 4 changes at once"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for n in 0..4 {
        match recv_ext(&mut a.ws).await {
            ServerMessage::PeerMeta(m) => assert_eq!(m.meta, Some(serde_json::json!({"n": n}))),
            other => panic!("{other:?}"),
        }
    }
    silent(&mut a.ws, 300).await;
    // A second later there is budget again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let text = serde_json::json!({"Ricochet": {"type": "set_meta", "meta": {"n": 9}}});
    send_text(&mut b.ws, &text.to_string()).await;
    match recv_ext(&mut a.ws).await {
        ServerMessage::PeerMeta(m) => assert_eq!(m.meta, Some(serde_json::json!({"n": 9}))),
        other => panic!("{other:?}"),
    }
    server.stop().await.unwrap();
}
