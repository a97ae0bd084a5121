//! Every limit holds, and while one trips, another match's traffic goes on intact: frame size
//! (1009), frames per second (4008), members per match (4003), connections per IP (HTTP 429),
//! the outbound queue of a reader that does not read (4009), and the idle timeout (4010).
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use ricochet_protocol::relay::{close, RelayEvent};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn oversize_frame_closes_with_1009() {
    let mut cfg = config();
    cfg.set_max_frame_len(1024).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut a, _, _) = relay.join("big", 1).await;
    let (mut b, _, _) = relay.join("big", 2).await;
    a.event().await;
    // Exactly at the limit is fine.
    a.send(1, &[0; 1022]).await;
    assert_eq!(b.frame().await.len(), 4 + 1022);
    by.exchange(2).await;
    a.send(1, &[0; 1023]).await;
    assert_eq!(a.closed().await, Some(close::MESSAGE_TOO_BIG));
    assert!(matches!(b.event().await, RelayEvent::Leave { .. }));
    // Far above the WebSocket layer's own limit: still closed, nothing else harmed.
    let (mut c, _, _) = relay.join("big", 3).await;
    let _ = c.ws.send(Message::Binary(vec![1u8; 200_000].into())).await;
    assert!(matches!(
        c.closed().await,
        Some(close::MESSAGE_TOO_BIG) | None
    ));
    by.exchange(5).await;
}

#[tokio::test]
async fn flood_is_cut_off_with_4008() {
    let mut cfg = config();
    cfg.set_frame_rate(100, 20).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut a, _, _) = relay.join("flood", 1).await;
    let (mut b, _, _) = relay.join("flood", 2).await;
    a.event().await;
    let flood = tokio::spawn(async move {
        for i in 0..1000u32 {
            if a.ws
                .send(Message::Binary(vec![1, 0, i as u8].into()))
                .await
                .is_err()
            {
                break;
            }
        }
        a.closed().await
    });
    by.exchange(10).await;
    assert_eq!(flood.await.unwrap(), Some(close::RATE_LIMITED));
    // b got at most the burst, then the LEAVE.
    let mut got = 0;
    loop {
        let f = b.frame().await;
        if f[0] == 0xF2 {
            break;
        }
        got += 1;
    }
    assert!(got <= 21, "{got} frames passed a burst of 20");
    by.exchange(5).await;
}

#[tokio::test]
async fn full_match_refuses_with_4003() {
    let mut cfg = config();
    cfg.set_max_members_per_match(2).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (_a, _, _) = relay.join("full", 1).await;
    let (_b, _, _) = relay.join("full", 2).await;
    let mut c = Client::connect(&relay.url(&ticket("full", 3))).await;
    assert_eq!(c.closed().await, Some(close::MATCH_FULL));
    by.exchange(5).await;
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let mut cfg = config();
    cfg.set_max_connections_per_ip(3).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await; // 2 connections
    let (_a, _, _) = relay.join("ip", 1).await; // 3rd
    match tokio_tungstenite::connect_async(relay.url(&ticket("ip", 2))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    by.exchange(5).await;
    drop(_a);
    // The slot is given back when the connection ends.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if tokio_tungstenite::connect_async(relay.url(&ticket("ip", 2)))
            .await
            .is_ok()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    by.exchange(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_that_falls_behind_is_cut_off_with_4009() {
    let mut cfg = config();
    cfg.set_frame_rate(1_000_000, 1_000_000).unwrap();
    cfg.set_byte_rate(1 << 30, 1 << 30).unwrap();
    cfg.set_outbound_queue(64).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut sender, _, _) = relay.join("slow", 1).await;
    let (mut fast, _, _) = relay.join("slow", 2).await;
    let (mut slow, nslow, _) = relay.join("slow", 3).await;
    sender.event().await;
    sender.event().await;
    fast.event().await;
    // The slow member never reads; 4 KiB frames fill its socket buffers, then its queue.
    const N: usize = 6_000;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let fast_reader = tokio::spawn(async move {
        let mut frames = 0;
        let mut left = None;
        while frames < N {
            let f = fast.frame().await;
            if f[0] == 0xF2 {
                left = Some(u16::from_be_bytes([f[2], f[3]]));
            } else {
                frames += 1;
                counter.store(frames, Ordering::Release);
            }
        }
        (frames, left)
    });
    let mut frame = vec![1u8, 0];
    frame.extend_from_slice(&[7u8; 4000]);
    for sent in 0..N {
        // Keep the reader that reads within half a queue of the sender.
        while sent >= received.load(Ordering::Acquire) + 32 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        sender
            .ws
            .send(Message::Binary(frame.clone().into()))
            .await
            .unwrap();
    }
    by.exchange(5).await;
    let (frames, left) = tokio::time::timeout(Duration::from_secs(20), fast_reader)
        .await
        .unwrap()
        .unwrap();
    // The reader that keeps up got everything, and saw the slow one leave.
    assert_eq!(frames, N);
    assert_eq!(left, Some(nslow));
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "slow_reader"), 1.0);
    // The slow one, reading at last, finds its connection closed.
    let mut code = None;
    while let Ok(seen) = tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
        if let Seen::Closed(c) = seen {
            code = c;
            break;
        }
    }
    assert!(matches!(code, Some(close::SLOW_READER) | None), "{code:?}");
    by.exchange(5).await;
}

#[tokio::test]
async fn silent_or_half_open_client_is_dropped_after_idle_timeout_with_4010() {
    let mut cfg = config();
    cfg.set_idle_timeout(Duration::from_millis(600)).unwrap();
    cfg.set_ping_interval(Duration::from_millis(100)).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut a, _, _) = relay.join("idle", 1).await;
    // b answers pings only when it reads: here it does not read at all (half-open).
    let (mut b, nb, _) = relay.join("idle", 2).await;
    let start = tokio::time::Instant::now();
    assert_eq!(
        a.event().await,
        RelayEvent::Join {
            member: nb,
            peer: peer(2)
        }
    );
    // a keeps reading (and so answers pings): it stays; b is dropped.
    for _ in 0..5 {
        by.exchange(1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ev = a.event().await;
    assert_eq!(
        ev,
        RelayEvent::Leave {
            member: nb,
            peer: peer(2)
        }
    );
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(b.closed().await, Some(close::IDLE_TIMEOUT));
    by.exchange(3).await;
    a.silent_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn total_connections_are_capped_with_503() {
    let mut cfg = config();
    cfg.set_max_connections(2).unwrap();
    let relay = Relay::start(cfg).await;
    let mut by = Bystanders::new(&relay, "by").await; // 2 connections: the cap
    match tokio_tungstenite::connect_async(relay.url(&ticket("cap", 1))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    by.exchange(5).await;
    // Health and metrics are still served.
    assert_eq!(http_get(relay.addr, "/health").await.0, 200);
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_upgrades_rejected_total", "capacity"), 1.0);
}
