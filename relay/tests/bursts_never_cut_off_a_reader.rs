//! Finding 7 of the hostile-client audit: one member could get the others cut off. An unpaced
//! burst of 100 small frames (within the documented 1,000 frames/s, burst 1,000) got the
//! *receiving* member closed with 4009 within milliseconds (3 of 6 tries; 9 of 9 at 500), and
//! with no byte-rate limit a member sending 4 KiB frames at the allowed frame rate (~4 MB/s)
//! evicted every member with a slower downlink. Now every member's queue holds each other
//! member's whole burst, and a byte rate bounds what a receiver must sustain.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use ricochet_protocol::relay::{close, ClientFrame, Opcode};
use tokio_tungstenite::tungstenite::Message;

/// Sends `frames` frames of `len` payload bytes with one flush: they reach the relay together.
async fn burst(c: &mut Client, frames: usize, len: usize) {
    for i in 0..frames {
        let mut payload = vec![0u8; len];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let wire = ClientFrame::broadcast(Opcode(1), &payload).to_vec();
        c.ws.feed(Message::Binary(wire.into())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_bursts_within_the_limits_leave_every_reader_connected() {
    let relay = Relay::default().await;
    // A 4-player match: one sender bursting, three members that only read.
    let (mut sender, _, _) = relay.join("burst", 1).await;
    let mut readers = Vec::new();
    for n in 2..=4 {
        let (r, _, _) = relay.join("burst", n).await;
        readers.push(r);
    }
    // (The readers' JOIN events arrive before the first burst; they are skipped below.)
    // Nine bursts of 500 small frames, then one of the whole documented burst (1,000), each
    // after the bucket has refilled.
    let mut sizes = vec![500usize; 9];
    sizes.push(ricochet_relay::DEFAULT_FRAME_BURST as usize);
    for (round, &n) in sizes.iter().enumerate() {
        burst(&mut sender, n, 60).await;
        for (i, r) in readers.iter_mut().enumerate() {
            let mut got = 0;
            while got < n {
                match r.next().await {
                    Seen::Frame(f) if f[0] == 1 => {
                        assert_eq!(&f[4..8], &(got as u32).to_be_bytes(), "order");
                        got += 1;
                    }
                    Seen::Frame(_) => {}
                    Seen::Closed(code) => {
                        panic!("reader {i} was cut off with {code:?} in burst {round}")
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1_050)).await;
    }
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "slow_reader"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_the_byte_rate_is_cut_off_not_its_receivers() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut sender, _, _) = relay.join("bytes", 1).await;
    let (mut reader, _, _) = relay.join("bytes", 2).await;
    sender.event().await; // JOIN of the reader
                          // 4 KiB frames as fast as they go: 1,000 of them are within the frame burst, but 4 MB is
                          // 30 times the byte burst.
    let frame = ClientFrame::broadcast(Opcode(1), &[7u8; 4000]).to_vec();
    let mut sent = 0;
    for _ in 0..1000 {
        if sender
            .ws
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert_eq!(sender.closed().await, Some(close::BYTE_RATE_LIMITED));
    // The reader gets what was accepted (the byte burst: 32 frames of 4,002 bytes fit in
    // 128 KiB), then the sender's LEAVE, and stays connected.
    let mut frames = 0;
    loop {
        let f = reader.frame().await;
        if f[0] == Opcode::LEAVE.0 {
            break;
        }
        frames += 1;
    }
    println!("{sent} frames sent before the close, {frames} delivered");
    assert_eq!(frames, ricochet_relay::DEFAULT_BYTE_BURST as usize / 4002);
    let (mut third, _, _) = relay.join("bytes", 3).await;
    third.send(1, b"hello").await;
    loop {
        let f = reader.frame().await;
        if f[0] == 1 {
            assert_eq!(&f[4..], b"hello");
            break;
        }
    }
    by.exchange(3).await;
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "slow_reader"), 0.0);
    assert_eq!(
        metric(&m, "relay_disconnects_total", "byte_rate_limited"),
        1.0
    );
}
