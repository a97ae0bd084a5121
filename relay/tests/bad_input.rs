//! Bad input never panics the relay and never touches another match: short and garbage
//! frames and reserved opcodes are refused with an ERROR (the connection stays usable), text
//! frames close with 1003, and a connection dropped mid-frame just leaves.
mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use ricochet_protocol::relay::{close, ErrorCode, Opcode, RelayEvent};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn garbage_frames_are_refused_and_counted() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut a, _, _) = relay.join("bad", 1).await;
    let (mut b, _, _) = relay.join("bad", 2).await;
    a.event().await;

    let cases: Vec<(Vec<u8>, ErrorCode, u8)> = vec![
        (vec![], ErrorCode::Malformed, 0),
        (vec![3], ErrorCode::Malformed, 3),
        (vec![3, 1], ErrorCode::Malformed, 3),
        (vec![3, 1, 0], ErrorCode::Malformed, 3),
        (vec![3, 0x80, 1, 2], ErrorCode::Malformed, 3),
        (vec![3, 0xFF], ErrorCode::Malformed, 3),
        (vec![0xF0, 0], ErrorCode::ReservedOpcode, 0xF0),
        (vec![0xF3, 0, 1], ErrorCode::ReservedOpcode, 0xF3),
        (vec![0xFA, 1, 0, 0], ErrorCode::ReservedOpcode, 0xFA),
        (vec![0xFF, 0, 0xDE, 0xAD], ErrorCode::ReservedOpcode, 0xFF),
    ];
    for (bytes, code, opcode) in &cases {
        a.send_raw(bytes.clone()).await;
        assert_eq!(
            a.event().await,
            RelayEvent::Error {
                code: *code,
                opcode: Opcode(*opcode)
            },
            "{bytes:?}"
        );
        by.exchange(1).await;
    }
    // Pseudo-random garbage: never forwarded unless well-formed, never fatal.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 9) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i * 7)) as u8).collect();
        a.send_raw(bytes).await;
    }
    by.exchange(3).await;
    // The connection still works.
    a.send(4, b"still here").await;
    loop {
        let f = b.frame().await;
        if f[0] == 4 {
            assert_eq!(&f[4..], b"still here");
            break;
        }
    }
    let m = relay.metrics().await;
    assert!(metric(&m, "relay_frames_dropped_total", "reserved_opcode") >= 4.0);
    assert!(metric(&m, "relay_frames_dropped_total", "malformed") >= 6.0);
}

#[tokio::test]
async fn text_frame_closes_with_1003() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "by").await;
    let (mut a, _, _) = relay.join("text", 1).await;
    let (mut b, na, _) = relay.join("text", 2).await;
    let _ = na;
    a.event().await;
    a.ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(a.closed().await, Some(close::UNSUPPORTED_DATA));
    assert!(matches!(b.event().await, RelayEvent::Leave { .. }));
    by.exchange(3).await;
}

#[tokio::test]
async fn raw_garbage_and_cut_connections_do_not_hurt() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "by").await;
    // Not HTTP at all.
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    s.write_all(&[0xFF; 1000]).await.unwrap();
    drop(s);
    // A WebSocket member whose TCP connection dies mid-frame.
    let (mut a, _, _) = relay.join("cut", 1).await;
    let (mut b, na, _) = relay.join("cut", 2).await;
    let _ = (&mut b, na);
    a.event().await;
    let tcp = match a.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(t) => t,
        _ => unreachable!(),
    };
    // A masked binary frame header announcing 100 bytes, then only 3 of them.
    tcp.write_all(&[0x82, 0x80 | 100, 1, 2, 3, 4, 9, 9, 9])
        .await
        .unwrap();
    drop(a);
    assert!(matches!(b.event().await, RelayEvent::Leave { .. }));
    by.exchange(3).await;
    assert_eq!(http_get(relay.addr, "/health").await.0, 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
