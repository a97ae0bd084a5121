//! Two peers join a match through the real `ricochet-signaling`, connect to the real
//! `ricochet-relay` with the ticket it handed out, and play over `PathSocket`: starting on the
//! relay at once, moving to the direct WebRTC channel when it opens (automatic mode), or
//! staying on the relay (forced), with equal checksums either way.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use ricochet::link::{Path, PathConfig, PathMode};
use ricochet::net::path_socket::PathSocket;
use ricochet::net::relay_client::{RelaySocket, DEFAULT_CONNECT_TIMEOUT};
use ricochet::net::signaller::MatchInfo;
use ricochet::{Advance, FrameClock, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript};

use in_process::start_servers;

async fn play(mode: PathMode) -> Vec<Path> {
    let signaling = start_servers().await;
    let room = format!("{signaling}/path-{mode:?}");
    let mut peers = Vec::new();
    // Signaling connections that must stay open: leaving signaling leaves the match.
    let mut presence = Vec::new();
    for _ in 0..2 {
        let info = MatchInfo::default();
        let (mut webrtc, message_loop) = info.socket_builder(&room, &[]).build();
        tokio::spawn(message_loop);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (id, grant) = loop {
            if let (Some(id), Some(grant)) = (webrtc.id(), info.relay()) {
                break (id, grant);
            }
            assert!(Instant::now() < deadline, "no id or ticket from signaling");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let url = grant.relay_url.clone().expect("signaling knows the relay");
        let (relay, driver) = RelaySocket::connect(&url, &grant.ticket, DEFAULT_CONNECT_TIMEOUT)
            .await
            .unwrap();
        tokio::spawn(driver);
        // Forced relay: the game's packets never use WebRTC. (matchbox still negotiates a
        // connection through the signaller; hiding addresses completely needs a
        // signaling-only client, which is not built yet.)
        let webrtc = if mode == PathMode::ForceRelay {
            presence.push(webrtc);
            None
        } else {
            Some(webrtc)
        };
        let config = PathConfig {
            mode,
            ..PathConfig::default()
        };
        peers.push((id, info, PathSocket::new(webrtc, Some(relay), config)));
    }
    // Both are in the match; player order is peer-ID order on every machine.
    let mut ids: Vec<_> = peers.iter().map(|(id, _, _)| *id).collect();
    ids.sort();
    let mut sessions: Vec<_> = peers
        .into_iter()
        .enumerate()
        .map(|(i, (me, _, socket))| {
            let mut b = SessionBuilder::new()
                .with_desync_detection(Some(1))
                .unwrap();
            for (h, id) in ids.iter().enumerate() {
                b = if *id == me {
                    b.add_local_player(h)
                } else {
                    b.add_remote_player(h, *id)
                }
                .unwrap();
            }
            let handle = ids.iter().position(|id| *id == me).unwrap();
            (
                b.start_p2p::<Arena, _>(socket).unwrap(),
                Arena::new(2),
                InputScript::new(i as u64),
                FrameClock::new(60),
                handle,
            )
        })
        .collect();
    let target = 599;
    let started = Instant::now();
    while !sessions.iter().all(|s| s.0.checksum_at(target).is_some()) {
        assert!(started.elapsed() < Duration::from_secs(40), "stalled");
        for (session, game, script, clock, handle) in sessions.iter_mut() {
            let steps = clock.tick(web_time::Instant::now(), session.frames_ahead());
            if steps == 0 {
                session.poll();
            }
            for _ in 0..steps {
                let input = script.clone().next_input();
                session.add_local_input(*handle, input).unwrap();
                if let Advance::Advanced { .. } = session.advance(game).unwrap() {
                    script.next_input();
                }
            }
            clock.skip_frames(session.take_skip_frames());
            for e in session.events() {
                assert!(!matches!(e, ricochet::Event::Desync(_)), "{e:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let sums: Vec<_> = sessions.iter().map(|s| s.0.checksum_at(target)).collect();
    assert_eq!(sums[0], sums[1]);
    sessions
        .iter()
        .map(|(s, _, _, _, handle)| {
            let other = ids[1 - *handle];
            let stats = s.with_socket(|p| p.stats(&other)).unwrap();
            println!("{mode:?}: {stats:?} after {:?}", started.elapsed());
            stats.path
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_mode_moves_to_the_direct_channel() {
    assert_eq!(
        play(PathMode::Automatic).await,
        [Path::Direct, Path::Direct]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_relay_never_goes_direct() {
    assert_eq!(play(PathMode::ForceRelay).await, [Path::Relay, Path::Relay]);
}
