//! Presence: WELCOME lists the members already there, JOIN and LEAVE reach the others (in
//! order with game frames), a second connection for the same peer replaces the first, and a
//! match is gone when its last member leaves.
mod common;

use common::*;
use ricochet_protocol::relay::{close, RelayEvent};

#[tokio::test]
async fn join_leave_welcome_and_match_lifetime() {
    let relay = Relay::default().await;
    let (mut a, na, members) = relay.join("p", 1).await;
    assert!(members.is_empty());
    let (mut b, nb, members) = relay.join("p", 2).await;
    assert_eq!(members, vec![(na, peer(1))]);
    assert_eq!(
        a.event().await,
        RelayEvent::Join {
            member: nb,
            peer: peer(2)
        }
    );

    let (c, nc, members) = relay.join("p", 3).await;
    assert_eq!(members, vec![(na, peer(1)), (nb, peer(2))]);
    assert_eq!(
        a.event().await,
        RelayEvent::Join {
            member: nc,
            peer: peer(3)
        }
    );
    assert_eq!(
        b.event().await,
        RelayEvent::Join {
            member: nc,
            peer: peer(3)
        }
    );

    // Another match sees none of this.
    let (mut other, _, members) = relay.join("p-other", 1).await;
    assert!(
        members.is_empty(),
        "same peer ID in another match is a different member"
    );

    drop(c);
    assert_eq!(
        a.event().await,
        RelayEvent::Leave {
            member: nc,
            peer: peer(3)
        }
    );
    assert_eq!(
        b.event().await,
        RelayEvent::Leave {
            member: nc,
            peer: peer(3)
        }
    );

    // Peer 2 reconnects: the old connection is closed with REPLACED, the others see
    // LEAVE then JOIN with a new member number.
    let (_b2, nb2, members) = relay.join("p", 2).await;
    assert_ne!(nb2, nb);
    assert_eq!(members, vec![(na, peer(1))]);
    assert_eq!(b.closed().await, Some(close::REPLACED));
    assert_eq!(
        a.event().await,
        RelayEvent::Leave {
            member: nb,
            peer: peer(2)
        }
    );
    assert_eq!(
        a.event().await,
        RelayEvent::Join {
            member: nb2,
            peer: peer(2)
        }
    );
    other
        .silent_for(std::time::Duration::from_millis(100))
        .await;

    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_matches", ""), 2.0);
    assert_eq!(metric(&m, "relay_members", ""), 3.0);
    drop(a);
    drop(_b2);
    drop(other);
    // All gone: the matches disappear.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = relay.metrics().await;
        if metric(&m, "relay_matches", "") == 0.0 && metric(&m, "relay_members", "") == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "matches not forgotten:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A new member of the same key starts a fresh match.
    let (_a, _, members) = relay.join("p", 1).await;
    assert!(members.is_empty());
}
