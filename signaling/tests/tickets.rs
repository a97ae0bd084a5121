//! Relay tickets: each member gets the relay URL and a ticket for its match; valid tickets verify,
//! tampered, expired and other-match tickets do not; renewal works over the same socket.
mod common;

use common::*;
use ricochet_protocol::signaling::{RelayGrant, ServerMessage};
use ricochet_protocol::{Ticket, TicketError};
use serde_json::json;

fn grant(m: ServerMessage) -> RelayGrant {
    match m {
        ServerMessage::Ticket(g) => g,
        other => panic!("not a ticket: {other:?}"),
    }
}

#[tokio::test]
async fn members_get_verifiable_tickets_for_their_match() {
    let server = start(config()).await;
    let mut a = join(&server.url("/ticketed")).await;
    let (w, t) = welcome(&mut a.ws).await;
    let ServerMessage::Welcome { match_id, .. } = w else {
        unreachable!()
    };
    let g = grant(t);
    assert_eq!(g.relay_url.as_deref(), Some("ws://relay.test:3537"));
    assert_eq!(g.match_id, match_id);
    let now = g.expires_at - 60;
    // Valid: the claims name this match and this peer, with the default 60 s lifetime.
    let claims = g.ticket.verify(SECRET, now).unwrap();
    assert_eq!(claims.match_key, match_id.to_string());
    assert_eq!(claims.peer, a.id);
    assert_eq!(claims.expires_at, g.expires_at);

    // Expired.
    assert!(matches!(
        g.ticket.verify(SECRET, g.expires_at + 1),
        Err(TicketError::Expired { .. })
    ));
    // Wrong secret.
    assert_eq!(
        g.ticket.verify(b"some other secret of 16+ bytes", now),
        Err(TicketError::BadSignature)
    );
    // Tampered: flip one character of the encoded ticket.
    let mut text = g.ticket.as_str().to_owned();
    let last = text.pop().unwrap();
    text.push(if last == 'A' { 'B' } else { 'A' });
    assert!(Ticket::from_text(text).verify(SECRET, now).is_err());

    // Wrong match: B in another match gets a ticket whose match key is B's match, so a relay
    // checking A's match key refuses it.
    let mut b = join(&server.url("/elsewhere")).await;
    let (_, tb) = welcome(&mut b.ws).await;
    let gb = grant(tb);
    let claims_b = gb.ticket.verify(SECRET, now).unwrap();
    assert_ne!(claims_b.match_key, claims.match_key);
    assert_eq!(claims_b.peer, b.id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quick_match_tickets_name_the_group_not_the_room() {
    let server = start(config()).await;
    let url = server.url("/q?next=2");
    let mut ids = Vec::new();
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut c = join(&url).await;
        let (_, t) = welcome(&mut c.ws).await;
        ids.push(grant(t).ticket.verify_signature(SECRET).unwrap().match_key);
        open.push(c); // keep the socket open for the rest of the test
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_ne!(ids[0], ids[2]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tickets_renew_over_the_same_socket() {
    let mut cfg = config();
    cfg.set_ticket_ttl(std::time::Duration::from_secs(5))
        .unwrap();
    let server = start(cfg).await;
    let mut a = join(&server.url("/renew")).await;
    let (_, t) = welcome(&mut a.ws).await;
    let first = grant(t);
    assert_eq!(
        first
            .ticket
            .verify(SECRET, first.expires_at - 5)
            .unwrap()
            .expires_at,
        first.expires_at
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    send_text(
        &mut a.ws,
        &json!({"Ricochet": {"type": "renew_ticket"}}).to_string(),
    )
    .await;
    let second = grant(recv_ext(&mut a.ws).await);
    assert!(second.expires_at > first.expires_at);
    assert_eq!(second.match_id, first.match_id);
    let claims = second.ticket.verify(SECRET, second.expires_at).unwrap();
    assert_eq!(claims.peer, a.id);
    server.stop().await.unwrap();
}
