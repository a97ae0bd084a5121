//! The relay client reconnects when its connection drops while the relay still holds its
//! membership: a TCP proxy between the players and an in-process relay cuts every connection
//! on the players' side and keeps the relay's side open (half-open, as after a NAT rebinding
//! or a dead Wi-Fi link). The relay refuses the ticket the players hold (close 4005: their seat
//! is still held by a ticket as recent), so each asks signaling for a fresh one, which takes
//! its seat over, and the match plays on with equal checksums and nobody disconnected.

#[path = "support/in_process.rs"]
mod in_process;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ricochet::link::{PathConfig, PathMode};
use ricochet::net::{JoinOptions, Match};
use ricochet::{Advance, FrameClock, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream`; [`Proxy::cut`] closes the client side of every connection made
/// so far and keeps the upstream side open and silent.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u32>,
    /// Upstream sockets of cut connections, held open.
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u32);
        let held = Arc::new(Mutex::new(Vec::new()));
        let (cuts, kept) = (cut.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mut cut = cuts.subscribe();
                let kept = kept.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => kept.lock().unwrap().push(server),
                    }
                });
            }
        });
        Proxy { addr, cut, held }
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_relay_connection_is_replaced_with_a_fresh_ticket_and_play_goes_on() {
    let relay_url = in_process::start_relay().await;
    let relay_addr = relay_url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = Proxy::start(relay_addr).await;
    let signaling = in_process::start_signaling(&format!("ws://{}/", proxy.addr)).await;

    let mut handles = Vec::new();
    for _ in 0..2 {
        let mut options = JoinOptions::new(&signaling, "half-open", 2);
        options.path = PathConfig {
            mode: PathMode::ForceRelay,
            ..PathConfig::default()
        };
        options.timeout = Duration::from_secs(10);
        let (handle, driver) = Match::new(options).unwrap();
        tokio::spawn(driver);
        handles.push(handle);
    }
    let mut players = Vec::new();
    for handle in &mut handles {
        tokio::time::timeout(Duration::from_secs(10), handle.ready())
            .await
            .unwrap()
            .unwrap();
        let joined = handle.take_joined().unwrap();
        let me = joined.handle;
        let session = joined
            .start::<Arena>(
                SessionBuilder::new()
                    .with_desync_detection(Some(1))
                    .unwrap(),
            )
            .unwrap();
        players.push((
            session,
            Arena::new(2),
            InputScript::new(me as u64 + 1),
            FrameClock::new(60),
            me,
        ));
    }

    let (cut_at, target) = (300, 899);
    let mut cut = false;
    let started = Instant::now();
    while !players.iter().all(|p| p.0.checksum_at(target).is_some()) {
        assert!(started.elapsed() < Duration::from_secs(40), "stalled");
        if !cut && players.iter().all(|p| p.0.confirmed_frame() >= cut_at) {
            cut = true;
            proxy.cut();
        }
        for (session, game, script, clock, handle) in players.iter_mut() {
            let steps = clock.tick(web_time::Instant::now(), session.frames_ahead());
            if steps == 0 {
                session.poll();
            }
            for _ in 0..steps {
                session
                    .add_local_input(*handle, script.clone().next_input())
                    .unwrap();
                if let Advance::Advanced { .. } = session.advance(game).unwrap() {
                    script.next_input();
                }
            }
            clock.skip_frames(session.take_skip_frames());
            for e in session.events() {
                assert!(
                    !matches!(
                        e,
                        ricochet::Event::Desync(_) | ricochet::Event::Disconnected { .. }
                    ),
                    "{e:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    assert!(cut);
    assert_eq!(
        players[0].0.checksum_at(target),
        players[1].0.checksum_at(target)
    );
    assert_eq!(
        proxy.held.lock().unwrap().len(),
        2,
        "both old connections held open"
    );
    for (session, ..) in &players {
        let stats = session.with_socket(|s| s.relay().unwrap().stats());
        println!("{stats:?} after {:?}", started.elapsed());
        assert_eq!(stats.reconnects, 1, "{stats:?}");
        assert!(
            stats.tickets_requested >= 1,
            "the held seat needed a fresh ticket: {stats:?}"
        );
    }
}
