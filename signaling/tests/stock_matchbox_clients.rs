//! Unmodified `matchbox_socket` 0.15 clients (the crate as published) find each other through
//! this server, open WebRTC data channels over loopback and exchange messages, while Ricochet's
//! extension messages flow on the same sockets (stock clients ignore them).
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use matchbox_socket::{Packet, PeerId, PeerState, RtcIceServerConfig, WebRtcSocket};
use ricochet_protocol::signaling::ServerMessage;

/// A stock reliable socket with no ICE servers (host candidates suffice on loopback).
fn stock_socket(url: &str) -> WebRtcSocket {
    let (socket, message_loop) = WebRtcSocket::builder(url)
        .ice_server(RtcIceServerConfig {
            urls: vec![],
            username: None,
            credential: None,
        })
        .add_reliable_channel()
        .build();
    tokio::spawn(message_loop);
    socket
}

/// Polls every socket until each has `want` connected peers; returns each socket's peers.
async fn connect_all(sockets: &mut [WebRtcSocket], want: usize) -> Vec<Vec<PeerId>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peers: Vec<Vec<PeerId>> = vec![Vec::new(); sockets.len()];
    loop {
        for (i, s) in sockets.iter_mut().enumerate() {
            for (peer, state) in s.update_peers() {
                match state {
                    PeerState::Connected => peers[i].push(peer),
                    PeerState::Disconnected => peers[i].retain(|p| *p != peer),
                }
            }
        }
        if peers.iter().all(|p| p.len() == want) {
            return peers;
        }
        assert!(
            Instant::now() < deadline,
            "peers never connected: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `text` from socket `from` to `to` and waits until socket `at` receives it.
async fn exchange(sockets: &mut [WebRtcSocket], from: usize, to: PeerId, at: usize) {
    let text = format!("hello from socket {from}");
    sockets[from]
        .channel_mut(0)
        .send(Packet::copy_from_slice(text.as_bytes()), to);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = sockets[at].channel_mut(0).receive();
        if let Some((_, packet)) = got.into_iter().next() {
            assert_eq!(&packet[..], text.as_bytes());
            return;
        }
        assert!(Instant::now() < deadline, "message never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stock_clients_open_a_data_channel() {
    let server = start(config()).await;
    // A raw observer joins first: it sees the stock clients' presence events, proving the
    // extension messages flow in this room (the stock clients get welcome, ticket, ...).
    let mut observer = join(&server.url("/stock")).await;
    welcome(&mut observer.ws).await;

    let mut sockets = vec![stock_socket(&server.url("/stock"))];
    // Let the first join before the second so the offer direction is fixed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sockets[0].id().is_none() {
        assert!(Instant::now() < deadline, "no IdAssigned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sockets.push(stock_socket(&server.url("/stock")));
    let peers = connect_all(&mut sockets, 1).await;
    let a = sockets[0].id().unwrap();
    let b = sockets[1].id().unwrap();
    assert_eq!(peers, vec![vec![b], vec![a]]);

    exchange(&mut sockets, 0, b, 1).await;
    exchange(&mut sockets, 1, a, 0).await;

    for expected in [a, b] {
        expect_joined(&mut observer.ws, expected).await;
    }
    // The stock clients ignored every extension message (welcome, ticket, peer_joined) without
    // dropping their signaling sockets: they are still there for the observer to see leave.
    drop(sockets);
    for _ in 0..2 {
        match recv(&mut observer.ws).await {
            ricochet_protocol::signaling::ServerFrame::PeerLeft(p) => assert!(p == a || p == b),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            recv_ext(&mut observer.ws).await,
            ServerMessage::PeerLeft { .. }
        ));
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stock_clients_with_next_2_form_two_pairs() {
    let server = start(config()).await;
    let url = server.url("/pairs?next=2");
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(stock_socket(&url));
        let i = sockets.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sockets[i].id().is_none() {
            assert!(Instant::now() < deadline, "no IdAssigned");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let peers = connect_all(&mut sockets, 1).await;
    let ids: Vec<PeerId> = sockets.iter_mut().map(|s| s.id().unwrap()).collect();
    // Arrival order: 0+1 and 2+3.
    assert_eq!(peers[0], vec![ids[1]]);
    assert_eq!(peers[1], vec![ids[0]]);
    assert_eq!(peers[2], vec![ids[3]]);
    assert_eq!(peers[3], vec![ids[2]]);
    exchange(&mut sockets, 0, ids[1], 1).await;
    exchange(&mut sockets, 3, ids[2], 2).await;
    // Half a second later nobody has gained a cross-pair connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut counts = HashMap::new();
    for (i, s) in sockets.iter_mut().enumerate() {
        let changes = s.update_peers();
        assert!(changes.is_empty(), "socket {i}: unexpected {changes:?}");
        counts.insert(i, s.connected_peers().count());
    }
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
    drop(sockets);
    server.stop().await.unwrap();
}
