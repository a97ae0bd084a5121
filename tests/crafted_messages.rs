//! Well-formed ggrs messages with hostile values, sent from the places ggrs trusts most: a
//! spectator's address, the host a spectator watches, and before the handshake ends. Each
//! once crashed a session (found in review); each must now be dropped and counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ricochet::sim::{LinkConditions, SimAddr, SimNetwork, SimSocket};
use ricochet::wire::{encode_view, BodyView, InputView, MessageView};
use ricochet::{Advance, PacketSocket, SessionBuilder};
use ricochet_demo_game::{Arena, Input};
use ricochet_tests::FRAME;

/// Packets waiting to be delivered, with the address they claim to come from.
type Injected = Arc<Mutex<Vec<(SimAddr, Vec<u8>)>>>;

/// A socket that also delivers packets the test injects.
#[derive(Clone)]
struct Injecting {
    inner: SimSocket,
    queue: Injected,
}

impl PacketSocket<SimAddr> for Injecting {
    fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
        self.inner.send_packet(to, packet)
    }
    fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
        self.inner.receive_packets(out);
        out.append(&mut self.queue.lock().unwrap());
    }
}

fn packet(magic: u16, body: BodyView) -> Vec<u8> {
    let mut out = Vec::new();
    encode_view(&MessageView { magic, body }, &mut out).unwrap();
    out
}

fn input(start_frame: i32, bytes: Vec<u8>, statuses: usize) -> BodyView {
    BodyView::Input(InputView {
        peer_connect_status: vec![(false, -1); statuses],
        disconnect_requested: false,
        start_frame,
        ack_frame: -1,
        bytes,
    })
}

/// Two players and a spectator at address 9; the test sends `evil` to the host as if from
/// `evil_from`, and to the spectator as if from the host, every frame.
fn run(evil_from: SimAddr, evil: Vec<Vec<u8>>) -> (u64, u64) {
    let net = SimNetwork::new(3, LinkConditions::with_latency(Duration::from_millis(10)));
    let host_queue = Arc::new(Mutex::new(Vec::new()));
    let spectator_queue = Arc::new(Mutex::new(Vec::new()));
    let mut host = SessionBuilder::new()
        .add_local_player(0)
        .unwrap()
        .add_remote_player(1, 1)
        .unwrap()
        .add_spectator(9)
        .start_p2p::<Arena, _>(Injecting {
            inner: net.socket(0),
            queue: host_queue.clone(),
        })
        .unwrap();
    let mut guest = SessionBuilder::new()
        .add_remote_player(0, 0)
        .unwrap()
        .add_local_player(1)
        .unwrap()
        .start_p2p::<Arena, _>(net.socket(1))
        .unwrap();
    let mut spectator = SessionBuilder::new()
        .start_spectator::<Arena, _>(
            0,
            Injecting {
                inner: net.socket(9),
                queue: spectator_queue.clone(),
            },
        )
        .unwrap();
    let (mut g0, mut g1, mut g9) = (Arena::new(2), Arena::new(2), Arena::new(2));
    let mut spectated = 0;
    for _ in 0..2000 {
        for p in &evil {
            host_queue.lock().unwrap().push((evil_from, p.clone()));
            spectator_queue.lock().unwrap().push((0, p.clone()));
        }
        host.add_local_input(0, Input { buttons: 8, aim: 1 })
            .unwrap();
        host.advance(&mut g0).unwrap();
        guest
            .add_local_input(1, Input { buttons: 4, aim: 2 })
            .unwrap();
        guest.advance(&mut g1).unwrap();
        if let Advance::Advanced { .. } = spectator.advance(&mut g9).unwrap() {
            spectated += 1;
        }
        net.advance(FRAME);
        if host.current_frame() >= 300 && spectated >= 250 {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        host.current_frame() >= 300,
        "host stalled at {}",
        host.current_frame()
    );
    assert!(
        spectated >= 250,
        "spectator stalled after {spectated} frames"
    );
    let dropped = |s: ricochet::SocketStats| s.rejected_packets + s.malformed_packets;
    (
        dropped(host.stats().socket),
        dropped(spectator.stats().socket),
    )
}

#[test]
fn input_from_a_spectator_address_is_dropped() {
    // ggrs would file it under a handle past the players and assert.
    let (host, _) = run(9, vec![packet(7, input(0, vec![6, 1, 0, 7], 2))]);
    assert!(host > 100, "host dropped {host}");
}

#[test]
fn spectators_check_what_the_host_sends() {
    // A truncated RLE header panics ggrs's decoder; a run claiming 2^40 bytes would be
    // allocated; a pong we never sent overflows ggrs's round-trip arithmetic.
    let evil = vec![
        packet(7, input(0, vec![0x81], 2)),
        packet(7, input(0, vec![0x81, 0x80, 0x80, 0x80, 0x80, 0x40], 2)),
        packet(7, BodyView::QualityReply { pong: 1 }),
    ];
    let (host, spectator) = run(1, evil);
    assert!(
        host > 100 && spectator > 100,
        "dropped: host {host}, spectator {spectator}"
    );
}

#[test]
fn ggrs_checksum_reports_are_dropped() {
    // Ricochet leaves ggrs's own desync detection off; ggrs asserts on a report then.
    let evil = vec![packet(
        7,
        BodyView::ChecksumReport {
            checksum: 1,
            frame: 10,
        },
    )];
    let (host, spectator) = run(1, evil);
    assert!(
        host > 100 && spectator > 100,
        "dropped: host {host}, spectator {spectator}"
    );
}
