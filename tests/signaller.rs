//! Two native `matchbox_socket` peers with Ricochet's signaller join a match on a real
//! `ricochet-signaling`: their WebRTC data channel opens and carries data, and each learns the
//! match, its members and a relay ticket that the relay's secret verifies.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use matchbox_socket::{Packet, PeerState, WebRtcSocket};
use ricochet::net::signaller::MatchInfo;
use ricochet::protocol::Ticket;

use in_process::{start_signaling, SECRET};

fn socket(url: &str, info: &MatchInfo) -> WebRtcSocket {
    let (socket, message_loop) = info.socket_builder(url, &[]).build();
    tokio::spawn(message_loop);
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_connect_and_receive_match_and_relay_ticket() {
    // Signaling only: the relay URL is handed out, never dialled.
    let signaling = start_signaling("ws://127.0.0.1:3537/").await;
    let url = format!("{signaling}/friday-night");
    let infos = [MatchInfo::default(), MatchInfo::default()];
    let mut sockets: Vec<_> = infos.iter().map(|i| socket(&url, i)).collect();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut connected = [None, None];
    while connected.iter().any(Option::is_none) {
        for (i, s) in sockets.iter_mut().enumerate() {
            for (peer, state) in s.update_peers() {
                if state == PeerState::Connected {
                    connected[i] = Some(peer);
                }
            }
        }
        assert!(Instant::now() < deadline, "data channel never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Data flows both ways over the direct channel.
    for (from, to) in [(0, 1), (1, 0)] {
        let peer = connected[from].unwrap();
        sockets[from]
            .channel_mut(0)
            .send(Packet::copy_from_slice(b"ricochet"), peer);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((_, p)) = sockets[to].channel_mut(0).receive().into_iter().next() {
                assert_eq!(&p[..], b"ricochet");
                break;
            }
            assert!(Instant::now() < deadline, "no data from {from} to {to}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Each knows the match, both members, and holds a ticket the relay would accept.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let a = infos[0].snapshot();
    let b = infos[1].snapshot();
    let ids = [sockets[0].id().unwrap(), sockets[1].id().unwrap()];
    assert!(a.match_id.is_some());
    assert_eq!(a.match_id, b.match_id);
    assert_eq!(a.name.as_deref(), Some("friday-night"));
    for (i, state) in [&a, &b].into_iter().enumerate() {
        let me = ids[i];
        let mut members: Vec<_> = state.members.iter().map(|m| m.peer).collect();
        members.sort();
        let mut expected = vec![me, connected[i].unwrap()];
        expected.sort();
        assert_eq!(members, expected, "peer {i}");
        let grant = state.relay.clone().expect("relay ticket");
        assert_eq!(grant.relay_url.as_deref(), Some("ws://127.0.0.1:3537/"));
        let claims = Ticket::from_text(grant.ticket.as_str())
            .verify(SECRET, now)
            .unwrap();
        assert_eq!(claims.peer, me);
        assert_eq!(Some(claims.match_key), state.match_id);
    }
}

/// Waits until `check` holds for `info`'s state.
async fn until(
    info: &MatchInfo,
    what: &str,
    check: impl Fn(&ricochet::net::signaller::MatchState) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(&info.snapshot()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            info.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_through_the_signaller_ready_start_and_the_roster() {
    let signaling = start_signaling("ws://127.0.0.1:3537/").await;
    let url = format!("{signaling}/lobby-night");
    let infos = [MatchInfo::default(), MatchInfo::default()];
    let host = socket(&url, &infos[0]);
    until(&infos[0], "the welcome", |s| s.lobby.is_some()).await;
    let guest = socket(&url, &infos[1]);
    for info in &infos {
        until(info, "both members", |s| s.members.len() == 2).await;
    }
    let (a, b) = (infos[0].id().unwrap(), infos[1].id().unwrap());
    assert!(infos[0].snapshot().is_host());
    assert!(!infos[1].snapshot().is_host());
    // The guest cannot start; the host cannot start before two are ready.
    infos[1].start();
    until(&infos[1], "not_host", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("NotHost"))
    })
    .await;
    infos[0].set_ready(true);
    infos[0].start();
    until(&infos[0], "not_enough_ready", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("NotEnoughReady"))
    })
    .await;
    infos[1].set_ready(true);
    for info in &infos {
        until(info, "both ready", |s| {
            s.lobby.as_ref().unwrap().ready == vec![a, b]
        })
        .await;
    }
    infos[0].start();
    for info in &infos {
        until(info, "the start", |s| s.roster() == Some(&[a, b][..])).await;
    }
    drop((host, guest));
}
