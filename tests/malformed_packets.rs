//! Nothing a remote peer sends can crash or stall the local game: random bytes and
//! corrupted copies of real packets are counted and dropped, and the match goes on.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use ricochet::sim::{LinkConditions, SimAddr, SimNetwork, SimSocket};

use ricochet::{GgrsSocket, PacketSocket};
use ricochet_demo_game::Arena;
use ricochet_tests::{assert_agree, peers, step, MatchConfig, FRAME};

/// Random bytes straight into the ggrs adapter.
#[test]
fn random_bytes_never_panic_the_adapter() {
    struct Garbage(rand::rngs::StdRng);
    impl PacketSocket<u8> for Garbage {
        fn send_packet(&mut self, _: &u8, _: &[u8]) {}
        fn receive_packets(&mut self, out: &mut Vec<(u8, Vec<u8>)>) {
            for _ in 0..100 {
                let len = self.0.gen_range(0..300);
                let mut bytes: Vec<u8> = (0..len).map(|_| self.0.gen()).collect();
                // Half the time, start like a real ggrs message or a control message.
                if len > 3 && self.0.gen_bool(0.5) {
                    bytes[2] = self.0.gen_range(0..8);
                }
                if len > 3 && self.0.gen_bool(0.2) {
                    bytes[0] = 0;
                    bytes[1] = 0;
                }
                out.push((1, bytes));
            }
        }
    }
    let mut socket = GgrsSocket::new(Garbage(rand::rngs::StdRng::seed_from_u64(5)));
    let mut decoded = 0;
    for _ in 0..1000 {
        decoded += ggrs::NonBlockingSocket::receive_all_messages(&mut socket).len();
    }
    let stats = socket.stats();
    assert!(stats.malformed_packets > 90_000, "{stats:?}");
    println!(
        "100,000 random packets: {} malformed, {decoded} decoded as ggrs, {} as control",
        stats.malformed_packets, stats.control_packets_received
    );
}

/// A peer whose outgoing traffic is laced with garbage and corrupted packets.
struct Hostile {
    inner: SimSocket,
    rng: rand::rngs::StdRng,
    /// Also send copies with a few bits flipped: well-formed messages with wrong values.
    bit_flips: bool,
}

impl PacketSocket<SimAddr> for Hostile {
    fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
        self.inner.send_packet(to, packet);
        // A corrupted copy of every real packet: random bytes flipped, cut or extended.
        let mut bad = packet.to_vec();
        match self.rng.gen_range(if self.bit_flips { 0 } else { 1 }..3) {
            0 => {
                for _ in 0..self.rng.gen_range(1..4) {
                    let i = self.rng.gen_range(0..bad.len());
                    bad[i] ^= 1 << self.rng.gen_range(0..8);
                }
            }
            1 => bad.truncate(self.rng.gen_range(0..bad.len())),
            _ => bad.extend((0..self.rng.gen_range(1..20)).map(|_| self.rng.gen::<u8>())),
        }
        self.inner.send_packet(to, &bad);
        // And pure noise.
        let noise: Vec<u8> = (0..self.rng.gen_range(0..200))
            .map(|_| self.rng.gen())
            .collect();
        self.inner.send_packet(to, &noise);
    }
    fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
        self.inner.receive_packets(out)
    }
}

#[test]
fn match_survives_a_peer_sending_garbage() {
    survive(false);
}

/// Copies with a few bits flipped decode into well-formed messages with wrong frame numbers,
/// lengths and connection claims: the adapter must keep the impossible ones from ggrs, whose
/// assertions they would trip.
#[test]
fn match_survives_a_peer_sending_corrupted_messages() {
    survive(true);
}

fn survive(bit_flips: bool) {
    let cfg = MatchConfig::new(
        3,
        LinkConditions::with_latency(Duration::from_millis(20)).loss(0.02),
        1200,
    );
    let net = SimNetwork::new(9, cfg.conditions);
    // Peers 0 and 1 are honest; peer 2's transport adds garbage to everything it sends.
    // A plausible lie (an ack a few frames too far, say) cannot be told from the truth; it
    // makes the liar stall itself, and the honest peers drop it after the disconnect timeout
    // and play on. That timeout runs on the wall clock, so it is short here.
    let timeouts = |b: ricochet::SessionBuilder<SimAddr>| {
        b.with_disconnect_timeouts(Duration::from_secs(2), Duration::from_millis(500))
            .unwrap()
    };
    let mut all = peers(&cfg, &net, &|_| Arena::new(3), timeouts);
    let hostile_socket = Hostile {
        inner: net.socket(2),
        rng: rand::rngs::StdRng::seed_from_u64(1),
        bit_flips,
    };
    let b = ricochet::SessionBuilder::new()
        .with_players(3)
        .unwrap()
        .add_remote_player(0, 0)
        .unwrap()
        .add_remote_player(1, 1)
        .unwrap()
        .add_local_player(2)
        .unwrap()
        .with_desync_detection(Some(1))
        .unwrap();
    all[2].session = timeouts(b)
        .start_p2p::<Arena, _>(Box::new(hostile_socket) as ricochet_tests::PeerSocket)
        .unwrap();
    let mut pending = vec![None; 3];
    let target = cfg.frames - 1;
    let mut hostile_dropped = false;
    let mut at_target = [None; 2];
    for tick in 0..40_000 {
        let advanced = step(&mut all, &mut pending);
        for p in &mut all[..2] {
            hostile_dropped |= p
                .events_seen
                .iter()
                .any(|e| matches!(e, ricochet::Event::Disconnected { peer: 2, .. }));
        }
        net.advance(FRAME);
        // Taken when it is confirmed: an honest peer left alone (the two dropped each other)
        // runs on at its own pace, and its log of checksums forgets frames that old.
        for (seen, p) in at_target.iter_mut().zip(&all[..2]) {
            *seen = seen.or_else(|| p.session.checksum_at(target));
        }
        if at_target.iter().all(Option::is_some) {
            break;
        }
        if advanced == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            tick < 39_999,
            "honest peers stalled: {:?}",
            all.iter()
                .map(|p| (p.session.current_frame(), p.session.confirmed_frame()))
                .collect::<Vec<_>>()
        );
    }
    let honest: Vec<_> = all[..2]
        .iter()
        .zip(at_target)
        .map(|(p, checksum)| ricochet_tests::PeerReport {
            checksum: checksum.expect("taken above"),
            rollbacks: p.session.stats().rollbacks,
            max_rollback: p.session.stats().max_rollback,
            desyncs: p.desyncs.clone(),
            forensics: Vec::new(),
            frames: p.session.current_frame(),
            waits: p.session.stats().waits,
        })
        .collect();
    for (i, p) in all.iter().enumerate().take(2) {
        let s = p.session.stats().socket;
        println!(
            "honest peer {i}: dropped {} undecodable and {} impossible packets, edited {}, decoded {}; desyncs {:?}",
            s.malformed_packets, s.rejected_packets, s.edited_packets, s.packets_received, p.desyncs
        );
    }
    println!("hostile peer disconnected by the honest ones: {hostile_dropped}");
    if bit_flips {
        // A corrupted copy of peer 2's input taken by one honest peer and the real one by
        // the other is equivocation: no peer-to-peer protocol can stop a peer from telling
        // two peers different things, but it must be detected.
        if honest[0].checksum != honest[1].checksum {
            assert!(
                honest[0].desyncs.iter().any(|d| d.peer == 1)
                    && honest[1].desyncs.iter().any(|d| d.peer == 0),
                "honest peers diverged without a desync report"
            );
        }
    } else {
        // Garbage alone is always dropped: nobody is disconnected, the honest peers agree
        // with each other (peer 2 may disagree: a cut copy of its input can decode as one).
        let honest: Vec<_> = honest
            .into_iter()
            .map(|mut r| {
                r.desyncs.retain(|d| d.peer != 2);
                r
            })
            .collect();
        assert_agree("honest peers beside a garbage-sending one", &honest);
        assert!(!hostile_dropped);
        for p in &all[..2] {
            assert!(p.session.stats().socket.malformed_packets > 1000);
        }
    }
}
