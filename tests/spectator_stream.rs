//! The spectator stream on the simulator: the streaming player's records, replayed by
//! [`Watcher`]s, give the players' checksums; a spectator that starts late starts at the next
//! key; when the streaming player vanishes the next one takes over and the watchers go on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricochet::session::stream::Watcher;
use ricochet::sim::{LinkConditions, SimAddr, SimNetwork};
use ricochet::{PacketSocket, SessionBuilder};
use ricochet_demo_game::{Arena, Input};
use ricochet_tests::{step, Peer, PeerSocket, FRAME};

/// Every record a player streamed, with who streamed it, in the order sent.
type Records = Arc<Mutex<Vec<(SimAddr, Vec<u8>)>>>;

/// A simulated socket that keeps what the session streams.
struct Tap {
    inner: ricochet::sim::SimSocket,
    me: SimAddr,
    records: Records,
}

impl PacketSocket<SimAddr> for Tap {
    fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
        self.inner.send_packet(to, packet)
    }
    fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
        self.inner.receive_packets(out)
    }
    fn send_stream(&mut self, record: &[u8]) {
        self.records
            .lock()
            .unwrap()
            .push((self.me, record.to_vec()));
    }
}

fn players(n: usize, net: &SimNetwork, records: &Records, timeout: Duration) -> Vec<Peer> {
    (0..n)
        .map(|me| {
            let mut b = SessionBuilder::new()
                .with_players(n)
                .unwrap()
                .with_desync_detection(Some(10))
                .unwrap()
                .with_disconnect_timeouts(timeout, timeout / 2)
                .unwrap();
            for h in 0..n {
                b = if h == me {
                    b.add_local_player(h).unwrap()
                } else {
                    b.add_remote_player(h, h as SimAddr).unwrap()
                };
            }
            let socket = Tap {
                inner: net.socket(me as SimAddr),
                me: me as SimAddr,
                records: records.clone(),
            };
            Peer {
                session: b.start_p2p(Box::new(socket) as PeerSocket).unwrap(),
                game: Arena::new(n),
                script: ricochet_demo_game::InputScript::new(7000 + me as u64),
                desyncs: Vec::new(),
                events_seen: Vec::new(),
            }
        })
        .collect()
}

/// A spectator: the records it has read so far and its game.
struct Spectator {
    from: usize,
    watcher: Watcher<Input>,
    game: Arena,
}

impl Spectator {
    fn new(from: usize) -> Self {
        Spectator {
            from,
            watcher: Watcher::new(10),
            game: Arena::new(0),
        }
    }

    /// Reads what was streamed since last time (every record, as the relay would forward
    /// them if it did not drop the second streamer's), and plays what it can.
    fn follow(&mut self, records: &Records) {
        let all = records.lock().unwrap();
        for (_, r) in &all[self.from..] {
            self.watcher.receive(&mut self.game, r).unwrap();
        }
        self.from = all.len();
        drop(all);
        while self.watcher.step(&mut self.game).is_some() {}
    }
}

/// Runs `n` players until every one still playing has confirmed `target`, stopping to drive
/// player 0 from frame `vanish` on if given; a spectator from the start and one from `late`.
fn run(
    n: usize,
    target: i32,
    late: i32,
    vanish: Option<i32>,
) -> (Vec<Peer>, Spectator, Spectator, Records) {
    let net = SimNetwork::new(
        11,
        LinkConditions::with_latency(Duration::from_millis(30))
            .jitter(Duration::from_millis(5))
            .loss(0.02),
    );
    let records: Records = Arc::default();
    let timeout = if vanish.is_some() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    let mut peers = players(n, &net, &records, timeout);
    let mut pending = vec![None; n];
    let mut early = Spectator::new(0);
    let mut late_one: Option<Spectator> = None;
    for tick in 0..200_000u64 {
        let playing = match vanish {
            Some(at) if peers[0].session.current_frame() >= at => 1,
            _ => 0,
        };
        let advanced = step(&mut peers[playing..], &mut pending[playing..]);
        net.advance(FRAME);
        early.follow(&records);
        if late_one.is_none() && peers[n - 1].session.current_frame() >= late {
            late_one = Some(Spectator::new(records.lock().unwrap().len()));
        }
        if let Some(s) = &mut late_one {
            s.follow(&records);
        }
        if peers[playing..]
            .iter()
            .all(|p| p.session.checksum_at(target).is_some())
            && early.watcher.checksum_at(target).is_some()
            && late_one
                .as_ref()
                .is_some_and(|s| s.watcher.checksum_at(target).is_some())
        {
            break;
        }
        assert!(
            tick < 199_999,
            "the match or a spectator never reached frame {target}"
        );
        if advanced == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let late_one = late_one.unwrap();
    (peers, early, late_one, records)
}

fn streamers(records: &Records) -> Vec<SimAddr> {
    let mut who: Vec<SimAddr> = records.lock().unwrap().iter().map(|(a, _)| *a).collect();
    who.dedup();
    who
}

#[test]
fn spectators_replay_the_stream_to_the_players_checksums() {
    let (target, late) = (899, 400);
    let (peers, early, late_one, records) = run(3, target, late, None);
    let expected = peers[0].session.checksum_at(target);
    for p in &peers {
        assert_eq!(p.session.checksum_at(target), expected);
    }
    assert_eq!(early.watcher.checksum_at(target), expected);
    assert_eq!(late_one.watcher.checksum_at(target), expected);
    // Every checked frame the spectator played agrees with the players.
    for f in (9..=target).step_by(10) {
        if let Some(c) = early.watcher.checksum_at(f) {
            assert_eq!(Some(c), peers[1].session.checksum_at(f), "frame {f}");
        }
    }
    let (e, l) = (early.watcher.stats(), late_one.watcher.stats());
    assert_eq!(e.key_mismatches + l.key_mismatches, 0, "{e:?} {l:?}");
    assert_eq!(e.keys_loaded, 1, "the early spectator starts once: {e:?}");
    assert!(e.keys_checked >= 2, "later keys are checked: {e:?}");
    // The late one starts at the first key after it came, not from frame 0.
    assert!(l.frames < e.frames, "{e:?} {l:?}");
    assert_eq!(
        streamers(&records),
        vec![0],
        "only the lowest handle streams"
    );
    // One record per confirmed frame from the first key (after the first saved state, frame
    // 15) and a key every 300 frames, whatever the spectators.
    let n = records.lock().unwrap().len() as i32;
    assert!(
        (target - 40..target + 10).contains(&n),
        "{n} records for {target} frames"
    );
}

#[test]
fn the_next_player_streams_when_the_streaming_one_vanishes() {
    let target = 899;
    let (peers, early, late_one, records) = run(3, target, 600, Some(300));
    let expected = peers[1].session.checksum_at(target);
    assert!(expected.is_some());
    assert_eq!(peers[2].session.checksum_at(target), expected);
    assert_eq!(early.watcher.checksum_at(target), expected);
    assert_eq!(late_one.watcher.checksum_at(target), expected);
    assert_eq!(streamers(&records), vec![0, 1]);
    let e = early.watcher.stats();
    assert_eq!(e.key_mismatches, 0, "{e:?}");
}
