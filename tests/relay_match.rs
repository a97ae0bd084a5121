//! Peers play the demo game with every packet going through a real `ricochet-relay` on
//! loopback (the path a match takes when NAT traversal fails, or when a player forces the
//! relay to hide their address): every peer confirms the same checksum, and tickets for
//! another match, or forged ones, get nowhere.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::Duration;

use ricochet::net::relay_client::{RelayClientError, RelaySocket, DEFAULT_CONNECT_TIMEOUT};
use ricochet::protocol::{PeerId, Ticket, TicketClaims};
use ricochet::{Advance, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript};

use in_process::{start_relay, SECRET};

fn ticket(secret: &[u8], match_key: &str, peer: PeerId) -> Ticket {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Ticket::issue(
        secret,
        &TicketClaims {
            match_key: match_key.into(),
            peer,
            // The tests' peer IDs end in their index.
            seat: (peer.0.as_u128() % 16) as u8,
            max_players: 16,
            issued_at_ms: now * 1000,
            expires_at: now + 60,
        },
    )
    .unwrap()
}

async fn play_over_relay(players: usize, frames: i32) {
    let url = start_relay().await;
    let ids: Vec<PeerId> = (0..players)
        .map(|i| PeerId(uuid::Uuid::from_u128(0x1000 + i as u128)))
        .collect();
    let mut sockets = Vec::new();
    for id in &ids {
        let (socket, driver) = RelaySocket::connect(
            &url,
            &ticket(SECRET, "match-a", *id),
            DEFAULT_CONNECT_TIMEOUT,
        )
        .await
        .unwrap();
        tokio::spawn(driver);
        sockets.push(socket);
    }
    // Everyone sees everyone (joins arrive through the relay).
    for _ in 0..200 {
        if sockets.iter().all(|s| s.peers().len() == players - 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut peers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(me, socket)| {
            let mut b = SessionBuilder::new().with_players(players).unwrap();
            for (h, id) in ids.iter().enumerate() {
                b = if h == me {
                    b.add_local_player(h)
                } else {
                    b.add_remote_player(h, *id)
                }
                .unwrap();
            }
            let session = b
                .with_desync_detection(Some(1))
                .unwrap()
                .start_p2p::<Arena, _>(socket)
                .unwrap();
            (
                session,
                Arena::new(players),
                InputScript::new(77 + me as u64),
                ricochet::FrameClock::new(60),
            )
        })
        .collect();
    let target = frames - 1;
    let started = std::time::Instant::now();
    // Paced like a game: fixed 60 Hz steps from the wall clock.
    while !peers.iter().all(|p| p.0.checksum_at(target).is_some()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "match over the relay stalled"
        );
        for (me, (session, game, script, clock)) in peers.iter_mut().enumerate() {
            let steps = clock.tick(web_time::Instant::now(), session.frames_ahead());
            if steps == 0 {
                session.poll();
            }
            for _ in 0..steps {
                let input = script.clone().next_input();
                session.add_local_input(me, input).unwrap();
                if let Advance::Advanced { .. } = session.advance(game).unwrap() {
                    script.next_input();
                }
            }
            clock.skip_frames(session.take_skip_frames());
            for e in session.events() {
                assert!(!matches!(e, ricochet::Event::Desync(_)), "{e:?}");
                if std::env::var_os("RELAY_DEBUG").is_some() {
                    eprintln!("peer {me}: {e:?}");
                }
            }
        }
        // Let the drivers and the relay move the packets.
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let sums: Vec<_> = peers
        .iter()
        .map(|(s, _, _, _)| s.checksum_at(target).unwrap())
        .collect();
    println!(
        "{players} peers over the relay, {frames} frames in {:?}: checksums {sums:x?}",
        started.elapsed()
    );
    for (i, p) in peers.iter().enumerate() {
        let (closed, stats) = p.0.with_socket(|r| (r.closed(), r.stats()));
        println!("peer {i}: relay connection {closed:?}, {stats:?}");
    }
    assert!(sums.windows(2).all(|w| w[0] == w[1]));
    for (s, _, _, _) in &peers {
        let stats = s.with_socket(|r| r.stats());
        assert!(stats.packets_received > frames as u64 / 2, "{stats:?}");
        assert_eq!(stats.refused, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_play_over_the_relay() {
    play_over_relay(2, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_peers_play_over_the_relay() {
    play_over_relay(4, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tickets_are_refused_with_the_relays_reason() {
    let url = start_relay().await;
    let peer = PeerId(uuid::Uuid::from_u128(5));
    let forged = ticket(b"not-the-relays-secret-0123456789", "match-a", peer);
    let err = RelaySocket::connect(&url, &forged, DEFAULT_CONNECT_TIMEOUT)
        .await
        .err()
        .expect("forged ticket accepted");
    assert!(
        matches!(err, RelayClientError::Closed { code: 4001, .. }),
        "{err}"
    );
    let err = RelaySocket::connect("ws://127.0.0.1:1/", &forged, Duration::from_secs(2))
        .await
        .err()
        .expect("connected to nothing");
    assert!(matches!(err, RelayClientError::Connect(_)), "{err}");
}
