//! Matches survive their connections to the servers dropping. A TCP proxy sits between the
//! players and an in-process relay or signaling server and cuts every connection on the
//! players' side mid-match, either holding the server's side open (half-open: the server
//! learns nothing, as after a NAT rebinding or a dead Wi-Fi link) or closing it too (the
//! server sees the connection drop without a close). Two players of the demo game play 900
//! frames through it; the match finishes with equal checksums and nobody disconnected.
//!
//! - Relay, half-open: the relay refuses the ticket the players hold (close 4005: their seats
//!   are still held by tickets as recent), so each asks signaling for a fresh one, which takes
//!   its seat over.
//! - Signaling, half-open and dropped: each signaller takes its membership back with the
//!   rejoin token of its welcome; the others never see it leave, and the fresh tickets that
//!   keep the relay memberships alive (2 s tickets here) keep coming.

#[path = "support/in_process.rs"]
mod in_process;
#[path = "support/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use ricochet::link::{PathConfig, PathMode};
use ricochet::net::path_socket::PathSocket;
use ricochet::net::signaller::MatchInfo;
use ricochet::net::{JoinOptions, Match};
use ricochet::protocol::PeerId;
use ricochet::{Advance, FrameClock, Session, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript};

use proxy::Proxy;

/// The frame both players must have confirmed before the cut, and the last frame played.
const CUT_AT: i32 = 300;
const TARGET: i32 = 899;

/// The address of a `ws://HOST:PORT/` URL.
fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// One player: its session and what signaling says, with the game and its inputs.
struct Player {
    session: Session<Arena, PeerId, PathSocket>,
    info: MatchInfo,
    game: Arena,
    script: InputScript,
    clock: FrameClock,
    handle: usize,
}

/// Two players join `room` through `signaling` in `mode` and play to [`TARGET`]; `cut` runs
/// once both have confirmed [`CUT_AT`]. Every frame after the cut, each player must still see
/// both members in its match (no one left). Returns the players at the end, their checksums
/// at [`TARGET`] checked equal and no desync or disconnection seen.
async fn play(signaling: &str, room: &str, mode: PathMode, cut: impl FnOnce()) -> Vec<Player> {
    let mut handles = Vec::new();
    for _ in 0..2 {
        let mut options = JoinOptions::new(signaling, room, 2);
        options.path = PathConfig {
            mode,
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
        let (me, info) = (joined.handle, joined.info.clone());
        let builder = SessionBuilder::new()
            .with_desync_detection(Some(1))
            .unwrap();
        players.push(Player {
            session: joined.start::<Arena>(builder).unwrap(),
            info,
            game: Arena::new(2),
            script: InputScript::new(me as u64 + 1),
            clock: FrameClock::new(60),
            handle: me,
        });
    }

    let mut cut = Some(cut);
    let started = Instant::now();
    while !players
        .iter()
        .all(|p| p.session.checksum_at(TARGET).is_some())
    {
        assert!(started.elapsed() < Duration::from_secs(40), "stalled");
        if cut.is_some()
            && players
                .iter()
                .all(|p| p.session.confirmed_frame() >= CUT_AT)
        {
            (cut.take().unwrap())();
        }
        for p in players.iter_mut() {
            if cut.is_none() {
                assert_eq!(
                    p.info.peers().len(),
                    2,
                    "a player left: {:?}",
                    p.info.snapshot()
                );
            }
            let steps = p
                .clock
                .tick(web_time::Instant::now(), p.session.frames_ahead());
            if steps == 0 {
                p.session.poll();
            }
            for _ in 0..steps {
                p.session
                    .add_local_input(p.handle, p.script.clone().next_input())
                    .unwrap();
                if let Advance::Advanced { .. } = p.session.advance(&mut p.game).unwrap() {
                    p.script.next_input();
                }
            }
            p.clock.skip_frames(p.session.take_skip_frames());
            for e in p.session.events() {
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
    assert!(cut.is_none(), "the cut happened");
    assert_eq!(
        players[0].session.checksum_at(TARGET),
        players[1].session.checksum_at(TARGET)
    );
    players
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_relay_connection_is_replaced_with_a_fresh_ticket_and_play_goes_on() {
    let relay = addr_of(&in_process::start_relay().await);
    let proxy = Proxy::start(relay).await;
    let signaling = in_process::start_signaling(&format!("ws://{}/", proxy.addr)).await;
    let players = play(&signaling, "relay-half-open", PathMode::ForceRelay, || {
        proxy.cut(true)
    })
    .await;
    assert_eq!(proxy.held(), 2, "both old connections held open");
    for p in &players {
        let stats = p.session.with_socket(|s| s.relay().unwrap().stats());
        println!("{stats:?}");
        assert_eq!(stats.reconnects, 1, "{stats:?}");
        assert!(
            stats.tickets_requested >= 1,
            "the held seat needed a fresh ticket: {stats:?}"
        );
    }
}

/// Signaling with 2 s tickets behind a proxy; the relay direct.
async fn signaling_behind_a_proxy() -> (Proxy, String) {
    let relay = in_process::start_relay().await;
    let server = in_process::start_signaling_with(&relay, |c| {
        c.set_ticket_ttl(Duration::from_secs(2)).unwrap();
    })
    .await;
    let proxy = Proxy::start(addr_of(&server)).await;
    let url = format!("ws://{}", proxy.addr);
    (proxy, url)
}

/// Both signallers took their memberships back once, and the relay memberships, which end at
/// their 2 s tickets' expiry unless renewed, lived through the 10 s after the cut.
fn check_rejoined(players: &[Player]) {
    for p in players {
        let state = p.info.snapshot();
        let relay = p.session.with_socket(|s| s.relay().unwrap().stats());
        println!("reconnects {}, relay {relay:?}", state.reconnects);
        assert_eq!(state.reconnects, 1, "{state:?}");
        assert_eq!(state.members.len(), 2, "{state:?}");
        assert_eq!(
            relay.reconnects, 0,
            "the relay connections never dropped: {relay:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_signaling_connection_is_rejoined_and_tickets_keep_coming() {
    let (proxy, signaling) = signaling_behind_a_proxy().await;
    let players = play(
        &signaling,
        "signaling-half-open",
        PathMode::ForceRelay,
        || proxy.cut(true),
    )
    .await;
    assert_eq!(proxy.held(), 2);
    check_rejoined(&players);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_signaling_connection_under_matchbox_is_rejoined_and_nobody_leaves() {
    let (proxy, signaling) = signaling_behind_a_proxy().await;
    let players = play(&signaling, "signaling-dropped", PathMode::Automatic, || {
        proxy.cut(false)
    })
    .await;
    assert_eq!(proxy.held(), 0);
    check_rejoined(&players);
}
