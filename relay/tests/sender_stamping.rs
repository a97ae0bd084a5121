//! The sender field is set by the relay from the authenticated connection: whatever bytes a
//! client puts in its frame, receivers see its real member number, and the relay's own
//! sender number cannot be claimed.
mod common;

use common::*;
use ricochet_protocol::relay::{Opcode, RelayFrame, RELAY_MEMBER};

#[tokio::test]
async fn sender_cannot_be_forged() {
    let relay = Relay::default().await;
    let (mut a, na, _) = relay.join("s", 1).await;
    let (mut b, nb, _) = relay.join("s", 2).await;
    a.event().await;
    assert_ne!(na, nb);

    // b writes a relay-style header claiming to be a, and then the relay's number.
    let [hi, lo] = na.to_be_bytes();
    b.send_raw(vec![5, 0, hi, lo, b'x']).await;
    let [hi, lo] = RELAY_MEMBER.to_be_bytes();
    b.send_raw(vec![5, 0, hi, lo, b'y']).await;
    for tail in [b'x', b'y'] {
        let f = a.frame().await;
        let f = RelayFrame::parse(&f).unwrap();
        assert_eq!(f.sender, nb, "sender must be b's real number");
        assert_eq!(f.opcode, Opcode(5));
        // The claimed header bytes arrive as opaque payload.
        assert_eq!(f.payload.last(), Some(&tail));
    }
    // A client cannot send relay events (WELCOME/JOIN/LEAVE) to others either.
    b.send(0xF1, &[0; 16]).await;
    assert!(matches!(
        b.event().await,
        ricochet_protocol::relay::RelayEvent::Error { .. }
    ));
    a.silent_for(std::time::Duration::from_millis(200)).await;
}
