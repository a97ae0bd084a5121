//! A frame with a target member reaches that member alone, flagged as targeted; a target that
//! is not in the match (or is the sender) is refused with an ERROR and nothing is forwarded.
mod common;

use common::*;
use ricochet_protocol::relay::{ErrorCode, Opcode, RelayEvent, RelayFrame};
use std::time::Duration;

#[tokio::test]
async fn targeted_frames_reach_only_their_target() {
    let relay = Relay::default().await;
    let (mut a, na, _) = relay.join("t", 1).await;
    let (mut b, nb, _) = relay.join("t", 2).await;
    let (mut c, nc, _) = relay.join("t", 3).await;
    a.event().await;
    a.event().await;
    b.event().await;

    a.send_to(nb, 9, b"for b only").await;
    let f = b.frame().await;
    let f = RelayFrame::parse(&f).unwrap();
    assert_eq!((f.opcode, f.targeted, f.sender), (Opcode(9), true, na));
    assert_eq!(f.payload, b"for b only");

    // c gets nothing; the next frame c sees is a later broadcast.
    a.send(10, b"for all").await;
    let f = c.frame().await;
    let f = RelayFrame::parse(&f).unwrap();
    assert_eq!(
        (f.opcode, f.targeted, f.payload),
        (Opcode(10), false, &b"for all"[..])
    );
    let f = b.frame().await;
    assert_eq!(RelayFrame::parse(&f).unwrap().opcode, Opcode(10));

    // Unknown target and self-target are refused to the sender only.
    for target in [nc + 100, na] {
        a.send_to(target, 11, b"nobody").await;
        assert_eq!(
            a.event().await,
            RelayEvent::Error {
                code: ErrorCode::UnknownTarget,
                opcode: Opcode(11)
            }
        );
    }
    b.silent_for(Duration::from_millis(200)).await;
    c.silent_for(Duration::from_millis(50)).await;
}
