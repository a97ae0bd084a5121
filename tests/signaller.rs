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
