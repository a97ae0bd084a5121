//! Finding 5 of the hostile-client audit, at the relay: tickets were bearer tokens with no seat
//! behind them. Now a ticket names a seat and the match's player limit: a replayed or older
//! ticket never evicts the member holding its seat (4005), a later one does (a reconnect,
//! 4004), a 2-player match never has a third member, and a membership ends when its ticket
//! expires (4002) unless the client renewed it over its relay connection.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ricochet_protocol::relay::{close, ErrorCode, Opcode, RelayEvent};

async fn welcome(c: &mut Client) -> u16 {
    match c.event().await {
        RelayEvent::Welcome { you, .. } => you,
        e => panic!("expected WELCOME, got {e:?}"),
    }
}

#[tokio::test]
async fn a_replayed_or_older_ticket_never_evicts_the_seat_holder_a_later_one_does() {
    let relay = Relay::default().await;
    // Tickets are issued in order: `older` first.
    let older = ticket_with("m", 1, 0, 2, 60);
    let holder_ticket = ticket_with("m", 1, 0, 2, 60);
    let mut holder = Client::connect(&relay.url(&holder_ticket)).await;
    welcome(&mut holder).await;
    let mut other = Client::connect(&relay.url(&ticket_with("m", 2, 1, 2, 60))).await;
    welcome(&mut other).await;
    holder.event().await; // JOIN of other

    // The same ticket again: refused, the holder stays.
    let mut replay = Client::connect(&relay.url(&holder_ticket)).await;
    assert_eq!(replay.closed().await, Some(close::SEAT_TAKEN));
    // An older ticket for the same seat and peer: refused.
    let mut old = Client::connect(&relay.url(&older)).await;
    assert_eq!(old.closed().await, Some(close::SEAT_TAKEN));
    holder.send(1, b"still here").await;
    assert_eq!(&other.frame().await[4..], b"still here");

    // A later ticket for the seat (the holder reconnecting) takes it over.
    let mut back = Client::connect(&relay.url(&ticket_with("m", 1, 0, 2, 60))).await;
    welcome(&mut back).await;
    assert_eq!(holder.closed().await, Some(close::REPLACED));
    assert!(matches!(other.event().await, RelayEvent::Leave { .. }));
    assert!(matches!(other.event().await, RelayEvent::Join { .. }));
    back.send(1, b"back").await;
    assert_eq!(&other.frame().await[4..], b"back");
}

#[tokio::test]
async fn a_two_player_match_never_has_a_third_member() {
    let relay = Relay::default().await;
    let mut a = Client::connect(&relay.url(&ticket_with("duel", 1, 0, 2, 60))).await;
    welcome(&mut a).await;
    let mut b = Client::connect(&relay.url(&ticket_with("duel", 2, 1, 2, 60))).await;
    welcome(&mut b).await;
    // Sixteen other peers' tickets for this match (as if harvested): a 2-player match has
    // seats 0 and 1 only, each ticket is later than the last and takes seat 1 over, and the
    // match never has more than two members.
    let mut joined = Vec::new();
    for n in 10..26u128 {
        let mut c = Client::connect(&relay.url(&ticket_with("duel", n, 1, 2, 60))).await;
        if let Seen::Frame(_) = c.next().await {
            joined.push(c);
        }
        let members = metric(&relay.metrics().await, "relay_members", "");
        assert!(members <= 2.0, "{members} members in a 2-player match");
    }
    // A ticket claiming a larger limit for the same match does not raise it.
    let mut big = Client::connect(&relay.url(&ticket_with("duel", 99, 5, 16, 60))).await;
    assert_eq!(big.closed().await, Some(close::MATCH_FULL));
    // Seat 0 was never touched.
    a.send(1, b"seat 0").await;
    let last = joined.last_mut().unwrap();
    loop {
        let f = last.frame().await;
        if f[0] == 1 {
            assert_eq!(&f[4..], b"seat 0");
            break;
        }
    }
}

#[tokio::test]
async fn a_membership_ends_when_its_ticket_expires_unless_renewed() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "by").await;
    // Two members whose tickets are valid for 2 s more; one renews with a later ticket.
    let start = Instant::now();
    let mut lapsing = Client::connect(&relay.url(&ticket_with("exp", 1, 0, 4, 2))).await;
    welcome(&mut lapsing).await;
    let mut renewing = Client::connect(&relay.url(&ticket_with("exp", 2, 1, 4, 2))).await;
    welcome(&mut renewing).await;
    lapsing.event().await; // JOIN of renewing
    renewing
        .send(Opcode::RENEW.0, ticket_with("exp", 2, 1, 4, 60).as_bytes())
        .await;
    // Renewals that must be refused: another seat, an older ticket, garbage.
    let older = ticket_with("exp", 2, 1, 4, 60);
    renewing
        .send(Opcode::RENEW.0, ticket_with("exp", 2, 3, 4, 60).as_bytes())
        .await;
    let refused = |f: Vec<u8>| {
        assert_eq!(f[0], Opcode::ERROR.0, "{f:?}");
        assert_eq!(f[4], ErrorCode::TicketRefused.to_byte());
    };
    refused(renewing.frame().await);
    renewing.send(Opcode::RENEW.0, b"not a ticket").await;
    refused(renewing.frame().await);
    let newest = ticket_with("exp", 2, 1, 4, 60);
    renewing.send(Opcode::RENEW.0, newest.as_bytes()).await;
    renewing.send(Opcode::RENEW.0, older.as_bytes()).await;
    refused(renewing.frame().await);
    // The lapsing member keeps sending, and is closed at its ticket's expiry all the same.
    let code = loop {
        lapsing.send(1, b"x").await;
        match tokio::time::timeout(Duration::from_millis(200), lapsing.next()).await {
            Ok(Seen::Closed(code)) => break code,
            Ok(Seen::Frame(_)) | Err(_) => {}
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never expired");
    };
    let lived = start.elapsed();
    assert_eq!(code, Some(close::TICKET_EXPIRED));
    assert!(
        lived >= Duration::from_secs(1) && lived < Duration::from_millis(3_500),
        "{lived:?}"
    );
    // The renewed one is still a member past its first ticket's lifetime.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    by.exchange(2).await;
    let mut other = Client::connect(&relay.url(&ticket_with("exp", 3, 2, 4, 60))).await;
    welcome(&mut other).await;
    renewing.send(1, b"renewed").await;
    loop {
        let f = other.frame().await;
        if f[0] == 1 {
            assert_eq!(&f[4..], b"renewed");
            break;
        }
    }
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "ticket_expired"), 1.0);
    assert_eq!(metric(&m, "relay_ticket_renewals_total", ""), 2.0);
}
