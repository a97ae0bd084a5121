//! Every member receives a match's frames in one order: four members send concurrently and a
//! fifth only listens; each sender sees exactly the listener's sequence minus its own frames,
//! and each sender's frames arrive in the order it sent them.
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use ricochet_protocol::relay::{ClientFrame, Opcode, RelayFrame};
use tokio_tungstenite::tungstenite::Message;

const SENDERS: u16 = 4;
const PER_SENDER: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_see_one_order() {
    let mut cfg = config();
    cfg.set_frame_rate(100_000, 100_000).unwrap();
    cfg.set_byte_rate(1 << 30, 1 << 30).unwrap();
    // This test is about order, not the queue limit (see limits.rs).
    cfg.set_outbound_queue(100_000).unwrap();
    let relay = Relay::start(cfg).await;
    let (mut listener, _, _) = relay.join("order", 100).await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let (c, me, _) = relay.join("order", i as u128).await;
        senders.push((c, me));
    }
    // Drain the presence events so every queue starts at the same point.
    for _ in 0..SENDERS {
        listener.event().await;
    }
    for (i, (c, _)) in senders.iter_mut().enumerate() {
        for _ in (i as u16 + 1)..SENDERS {
            c.event().await;
        }
    }

    let total = SENDERS as usize * PER_SENDER as usize;
    let mut tasks = Vec::new();
    for (c, me) in senders {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = c.ws.split();
            let send = async {
                for seq in 0..PER_SENDER {
                    let frame = ClientFrame::broadcast(Opcode(7), &seq.to_be_bytes()).to_vec();
                    tx.send(Message::Binary(frame.into())).await.unwrap();
                    // Pace the senders so that their frames interleave at the relay.
                    if seq % 10 == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            };
            let recv = async {
                let mut seen = Vec::new();
                while seen.len() < total - PER_SENDER as usize {
                    match rx.next().await {
                        Some(Ok(Message::Binary(b))) => {
                            let f = RelayFrame::parse(&b).unwrap();
                            seen.push((
                                f.sender,
                                u32::from_be_bytes(f.payload.try_into().unwrap()),
                            ));
                        }
                        Some(Ok(_)) => {}
                        other => panic!("member {me}: {other:?}"),
                    }
                }
                seen
            };
            let ((), seen) = tokio::join!(send, recv);
            (me, seen)
        }));
    }
    let mut order = Vec::new();
    while order.len() < total {
        let f = listener.frame().await;
        let f = RelayFrame::parse(&f).unwrap();
        assert!(!f.targeted);
        order.push((f.sender, u32::from_be_bytes(f.payload.try_into().unwrap())));
    }
    // Each sender's frames in its own order.
    for s in 1..=SENDERS {
        let mine: Vec<u32> = order.iter().filter(|x| x.0 == s).map(|x| x.1).collect();
        assert_eq!(mine, (0..PER_SENDER).collect::<Vec<_>>());
    }
    // The senders interleaved (otherwise this proves little).
    let switches = order.windows(2).filter(|w| w[0].0 != w[1].0).count();
    assert!(switches > SENDERS as usize, "no interleaving: {switches}");
    for t in tasks {
        let (me, seen) = t.await.unwrap();
        let expected: Vec<_> = order.iter().copied().filter(|x| x.0 != me).collect();
        assert_eq!(seen, expected, "member {me} saw another order");
    }
}
