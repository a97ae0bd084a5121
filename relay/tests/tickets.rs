//! Without a valid ticket there is no membership: missing, garbage, wrongly signed and expired
//! tickets are closed with their code, and nothing reaches the match they name.
mod common;

use common::*;
use ricochet_protocol::relay::close;
use ricochet_protocol::{Ticket, TicketClaims};

#[tokio::test]
async fn ticket_failures_close_with_a_reason() {
    let relay = Relay::default().await;
    let mut by = Bystanders::new(&relay, "victim").await;
    by.exchange(3).await;

    let signed = |secret: &[u8], expires_at: u64| {
        Ticket::issue(
            secret,
            &TicketClaims {
                match_key: "victim".into(),
                peer: peer(66),
                seat: 5,
                max_players: 16,
                issued_at_ms: 0,
                expires_at,
            },
        )
        .unwrap()
        .to_string()
    };
    let cases = [
        (format!("ws://{}/", relay.addr), close::TICKET_MISSING),
        (
            format!("ws://{}/?other=1", relay.addr),
            close::TICKET_MISSING,
        ),
        (relay.url("not-a-ticket"), close::TICKET_INVALID),
        (relay.url(""), close::TICKET_INVALID),
        (
            relay.url(&signed(b"some other secret 1234", unix_now() + 60)),
            close::TICKET_INVALID,
        ),
        (
            relay.url(&signed(SECRET, unix_now() - 10)),
            close::TICKET_EXPIRED,
        ),
    ];
    for (url, code) in cases {
        let mut c = Client::connect(&url).await;
        // Whatever it sends is not forwarded.
        let _ = futures_util::SinkExt::send(
            &mut c.ws,
            tokio_tungstenite::tungstenite::Message::Binary(vec![1, 0, 0xAA].into()),
        )
        .await;
        assert_eq!(c.closed().await, Some(code), "{url}");
        by.exchange(2).await;
    }
    // A valid ticket for the same match works.
    let mut ok = Client::connect(&relay.url(&signed(SECRET, unix_now() + 60))).await;
    assert!(matches!(
        ok.event().await,
        ricochet_protocol::relay::RelayEvent::Welcome { .. }
    ));
    let m = relay.metrics().await;
    assert_eq!(metric(&m, "relay_disconnects_total", "ticket_missing"), 2.0);
    assert_eq!(metric(&m, "relay_disconnects_total", "ticket_invalid"), 3.0);
    assert_eq!(metric(&m, "relay_disconnects_total", "ticket_expired"), 1.0);
}
