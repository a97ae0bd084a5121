//! The `Match` handle against in-process servers: it is created synchronously, makes no
//! progress until its driver runs, reports who is present while joining, wakes `ready()` when
//! the match has its players, hands over the joined match once, and ends its driver (closing
//! every connection, which the other members see) when whoever owns the match drops it: the
//! handle before the match is taken, the session after.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::Duration;

use ricochet::link::{PathConfig, PathMode};
use ricochet::net::{JoinError, JoinOptions, Match, MatchStatus, TakeError};
use ricochet::protocol::PeerId;
use ricochet::SessionBuilder;
use ricochet_demo_game::Arena;

const WAIT: Duration = Duration::from_secs(10);

fn options(signaling: &str, room: &str, mode: PathMode) -> JoinOptions {
    let mut o = JoinOptions::new(signaling, room, 2);
    o.path = PathConfig {
        mode,
        ..PathConfig::default()
    };
    o.timeout = WAIT;
    o
}

/// Waits until `handle` lists `n` members present.
async fn present(handle: &Match, n: usize) -> Vec<PeerId> {
    tokio::time::timeout(WAIT, async {
        loop {
            let p = handle.present();
            if p.len() == n {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} members never present: {:?}", handle.status()))
}

async fn lifecycle(mode: PathMode) {
    let signaling = in_process::start_servers().await;
    let room = format!("handle-{mode:?}");

    // Nothing happens before the driver runs. The first member makes the room, with a rejoin
    // grace of its own.
    let mut first = options(&signaling, &room, mode);
    first.rejoin_grace = Some(Duration::from_secs(7));
    let (a, a_driver) = Match::new(first).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.id().is_none(), "no connection without the driver");
    assert!(matches!(
        a.status(),
        MatchStatus::Joining {
            present: 0,
            wanted: 2
        }
    ));
    let a_driver = tokio::spawn(a_driver);
    present(&a, 1).await;
    assert!(a.id().is_some());
    assert!(!a.is_ready());

    let (mut b, b_driver) = Match::new(options(&signaling, &room, mode)).unwrap();
    let b_driver = tokio::spawn(b_driver);
    // Woken, not polled: both become ready once both are in and on the relay.
    tokio::time::timeout(WAIT, b.ready())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, a.ready())
        .await
        .unwrap()
        .unwrap();
    for m in [&a, &b] {
        assert_eq!(
            m.info().rejoin_grace(),
            Some(Duration::from_secs(7)),
            "the room's grace, for both"
        );
    }
    assert!(matches!(b.status(), MatchStatus::Ready));

    // The match is taken once; the session owns it from then on.
    let joined = b.take_joined().unwrap();
    assert!(matches!(
        b.take_joined(),
        Err(TakeError::Failed(JoinError::Gone))
    ));
    assert_eq!(joined.players.len(), 2);
    let b_id = joined.me;
    let session = joined
        .start::<Arena>(SessionBuilder::new().with_input_delay(2).unwrap())
        .unwrap();
    // Dropping the handle after the match was taken ends nothing.
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_driver.is_finished(), "the session still owns the match");
    assert!(a.present().contains(&b_id));

    // Dropping the session leaves the match: the driver ends and the others see it.
    drop(session);
    tokio::time::timeout(WAIT, b_driver)
        .await
        .expect("the driver ends when the session is dropped")
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while a.present().contains(&b_id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the other member sees the player leave");

    // Dropping a handle whose match was never taken ends its driver too.
    drop(a);
    tokio::time::timeout(WAIT, a_driver)
        .await
        .expect("the driver ends when the handle is dropped")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_match_handle_lives_and_leaves_with_its_owner_direct() {
    lifecycle(PathMode::Automatic).await;
}

#[tokio::test]
async fn a_match_handle_lives_and_leaves_with_its_owner_forced_to_the_relay() {
    lifecycle(PathMode::ForceRelay).await;
}

#[tokio::test]
async fn bad_options_fail_at_once_and_a_timeout_names_who_was_there() {
    let err = Match::new(JoinOptions::new("http://x", "r", 2)).unwrap_err();
    assert!(matches!(err, JoinError::Options(_)), "{err}");
    let err = Match::new(JoinOptions::new("ws://x", "r", 1)).unwrap_err();
    assert!(matches!(err, JoinError::Options(_)), "{err}");

    let signaling = in_process::start_servers().await;
    let mut o = options(&signaling, "alone", PathMode::ForceRelay);
    o.timeout = Duration::from_millis(500);
    let (handle, driver) = Match::new(o).unwrap();
    let result = tokio::time::timeout(WAIT, driver).await.unwrap();
    match result {
        Err(JoinError::Timeout {
            present: 1,
            wanted: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(handle.error(), Some(JoinError::Timeout { .. })));
    assert!(handle.ready().await.is_err());
}

/// With `JoinOptions::lobby`, the players are the roster the host starts with: two ready
/// members play, a third that was not ready is told it is not a player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_start_fixes_the_players() {
    let signaling = in_process::start_servers().await;
    let lobby = |_: usize| {
        let mut o = options(&signaling, "lobby-handle", PathMode::ForceRelay);
        o.players = 4;
        o.lobby = true;
        o
    };
    let mut handles = Vec::new();
    for i in 0..3 {
        let (handle, driver) = Match::new(lobby(i)).unwrap();
        let driver = tokio::spawn(driver);
        // In join order, so the first is the host.
        present(&handle, i + 1).await;
        handles.push((handle, driver));
    }
    let ids: Vec<PeerId> = handles.iter().map(|(h, _)| h.id().unwrap()).collect();
    assert!(handles[0].0.info().snapshot().is_host());
    // Three present, none ready: nobody is ready to play yet, whatever `players` says.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handles.iter().all(|(h, _)| !h.is_ready()));
    handles[0].0.info().set_ready(true);
    handles[1].0.info().set_ready(true);
    tokio::time::timeout(WAIT, async {
        while handles[0].0.info().snapshot().lobby.unwrap().ready.len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    handles[0].0.info().start();
    let mut roster = vec![ids[0], ids[1]];
    roster.sort();
    for (handle, _) in handles.iter_mut().take(2) {
        tokio::time::timeout(WAIT, handle.ready())
            .await
            .unwrap()
            .unwrap();
        let joined = handle.take_joined().unwrap();
        assert_eq!(joined.players, roster);
        assert_eq!(joined.players[joined.handle], joined.me);
    }
    // The third's handle stays alive while its driver finishes: a dropped handle ends the
    // driver with Ok (its owner left), which would hide the refusal on a slow machine.
    let (_third_handle, third) = handles.pop().unwrap();
    match tokio::time::timeout(WAIT, third).await.unwrap().unwrap() {
        Err(JoinError::NotInRoster { roster: r }) => {
            let mut r = r;
            r.sort();
            assert_eq!(r, roster);
        }
        other => panic!("the unready member joined: {other:?}"),
    }
}
