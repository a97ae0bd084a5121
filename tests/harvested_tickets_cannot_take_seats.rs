//! Finding 5 of the hostile-client audit, across both servers: joining and leaving a named room
//! 16 times harvested 16 tickets whose relay connections filled the relay match, so the two
//! legitimate members got `4003 match full` while signaling showed 2 members; and a ticket
//! kept working after its holder left signaling. Now signaling binds every ticket to the seat
//! its holder has (the lowest free one), so harvested tickets all name the same free seat and
//! hold at most that one on the relay until a real player takes it with a later ticket; and a
//! relay membership ends at its ticket's expiry once its holder stops getting fresh ones.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ricochet::protocol::relay::{close, ClientFrame, Opcode, RelayEvent, RelayFrame};
use ricochet::protocol::signaling::{ServerFrame, ServerMessage};
use ricochet::protocol::Ticket;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const WAIT: Duration = Duration::from_secs(5);

async fn start(ticket_ttl: Duration) -> (String, String) {
    let relay_url = in_process::start_relay().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ricochet_signaling::Config::new(in_process::SECRET.to_vec()).unwrap();
    config
        .set_relay_url(Some(relay_url.clone()))
        .unwrap()
        .set_ticket_ttl(ticket_ttl)
        .unwrap();
    tokio::spawn(ricochet_signaling::run(
        listener,
        config,
        std::future::pending::<()>(),
    ));
    (format!("ws://{addr}"), relay_url)
}

/// Joins `room` on signaling and waits for the member's first ticket.
async fn join_signaling(signaling: &str, room: &str) -> (Ws, Ticket) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{signaling}/{room}"))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        if let Some(Ok(Message::Text(text))) = msg {
            if let Ok(ServerFrame::Ricochet(ServerMessage::Ticket(grant))) =
                ServerFrame::from_json(text.as_str())
            {
                return (ws, grant.ticket);
            }
        } else {
            panic!("signaling ended: {msg:?}");
        }
    }
}

/// What the relay did with a ticket.
enum Relay {
    Welcomed(Box<Ws>),
    Closed(Option<u16>),
}

async fn join_relay(relay_url: &str, ticket: &Ticket) -> Relay {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{relay_url}?ticket={ticket}"))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Binary(b))) => {
            let f = RelayFrame::parse(&b).unwrap();
            assert!(matches!(f.event(), Ok(Some(RelayEvent::Welcome { .. }))));
            Relay::Welcomed(Box::new(ws))
        }
        Some(Ok(Message::Close(c))) => Relay::Closed(c.map(|c| u16::from(c.code))),
        other => panic!("unexpected answer from the relay: {other:?}"),
    }
}

fn welcomed(r: Relay) -> Ws {
    match r {
        Relay::Welcomed(ws) => *ws,
        Relay::Closed(code) => panic!("refused by the relay with {code:?}"),
    }
}

/// Sends a broadcast game frame and waits until `to` receives it.
async fn exchange(from: &mut Ws, to: &mut Ws, payload: &[u8]) {
    let wire = ClientFrame::broadcast(Opcode(1), payload).to_vec();
    from.send(Message::Binary(wire.into())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, to.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) if b[0] == 1 => {
                assert_eq!(&b[4..], payload);
                return;
            }
            Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvested_tickets_hold_at_most_the_free_seat_and_never_lock_players_out() {
    let (signaling, relay_url) = start(Duration::from_secs(60)).await;
    // Two players are in the room on signaling (seats 0 and 1) but not on the relay yet.
    let (_a_sig, a_ticket) = join_signaling(&signaling, "harvest").await;
    let (_b_sig, b_ticket) = join_signaling(&signaling, "harvest").await;
    // The attacker joins and leaves 16 times, keeping each ticket, and uses them all first.
    let mut harvested = Vec::new();
    for _ in 0..16 {
        let (mut ws, t) = join_signaling(&signaling, "harvest").await;
        // Leaving closes the connection (a dropped one keeps its place for the rejoin grace).
        let _ = ws.close(None).await;
        harvested.push(t);
        // Leaving is seen by signaling once the close reaches it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut attackers = Vec::new();
    let (mut admitted, mut refused) = (0, 0);
    for t in &harvested {
        match join_relay(&relay_url, t).await {
            Relay::Welcomed(ws) => {
                admitted += 1;
                attackers.push(ws);
            }
            Relay::Closed(code) => {
                assert_eq!(code, Some(close::SEAT_TAKEN));
                refused += 1;
            }
        }
    }
    println!("harvested tickets: {admitted} admitted (each replacing the last), {refused} refused");
    // Every harvested ticket named seat 2, each later than the one before: each replaced
    // the previous one, so the attacker never held more than that one seat.
    let mut a = welcomed(join_relay(&relay_url, &a_ticket).await);
    let mut b = welcomed(join_relay(&relay_url, &b_ticket).await);
    exchange(&mut a, &mut b, b"a to b").await;
    exchange(&mut b, &mut a, b"b to a").await;
    // A real third player takes seat 2 with a later ticket; the attacker's member goes.
    let (_c_sig, c_ticket) = join_signaling(&signaling, "harvest").await;
    let mut c = welcomed(join_relay(&relay_url, &c_ticket).await);
    exchange(&mut c, &mut a, b"c to a").await;
    exchange(&mut a, &mut c, b"a to c").await;
    let last = attackers
        .last_mut()
        .expect("one harvested ticket held seat 2");
    let code = loop {
        match tokio::time::timeout(WAIT, last.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, Some(close::REPLACED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_stops_working_once_its_holder_left_signaling() {
    // Tickets live 2 s; signaling hands members a fresh one every second.
    let (signaling, relay_url) = start(Duration::from_secs(2)).await;
    let (stay_sig, stay_ticket) = join_signaling(&signaling, "lapse").await;
    let (leave_sig, leave_ticket) = join_signaling(&signaling, "lapse").await;
    let stay = welcomed(join_relay(&relay_url, &stay_ticket).await);
    let mut left = welcomed(join_relay(&relay_url, &leave_ticket).await);
    let joined = Instant::now();
    drop(leave_sig);
    // The one still in signaling passes on each fresh ticket over its relay connection as it
    // arrives (what `RelaySocket::renew_from` does), four times.
    let renewer = tokio::spawn(async move {
        let (mut sig, mut stay) = (stay_sig, stay);
        let mut renewals = 0;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, sig.next()).await {
            if let Message::Text(text) = msg {
                if let Ok(ServerFrame::Ricochet(ServerMessage::Ticket(g))) =
                    ServerFrame::from_json(text.as_str())
                {
                    let renew = ClientFrame::broadcast(Opcode::RENEW, g.ticket.as_str().as_bytes());
                    stay.send(Message::Binary(renew.to_vec().into()))
                        .await
                        .unwrap();
                    renewals += 1;
                    if renewals == 4 {
                        break;
                    }
                }
            }
        }
        (sig, stay, renewals)
    });
    // The one that left keeps sending; the relay ends its membership at its ticket's expiry.
    let code = loop {
        let wire = ClientFrame::broadcast(Opcode(1), b"still here?").to_vec();
        if left.send(Message::Binary(wire.into())).await.is_err() {
            break None;
        }
        match tokio::time::timeout(Duration::from_millis(100), left.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c.map(|c| u16::from(c.code)),
            Ok(None | Some(Err(_))) => break None,
            _ => {}
        }
        assert!(joined.elapsed() < Duration::from_secs(6), "never expired");
    };
    let lived = joined.elapsed();
    println!("the member that left signaling was closed with {code:?} after {lived:?}");
    assert_eq!(code, Some(close::TICKET_EXPIRED));
    assert!(lived <= Duration::from_millis(3_500), "{lived:?}");
    // The renewing member is still there after 4 s, twice its first ticket's lifetime.
    let (_sig, mut stay, renewals) = renewer.await.unwrap();
    assert_eq!(renewals, 4);
    assert!(joined.elapsed() >= Duration::from_millis(3_500));
    let (_c_sig, c_ticket) = join_signaling(&signaling, "lapse").await;
    let mut c = welcomed(join_relay(&relay_url, &c_ticket).await);
    exchange(&mut stay, &mut c, b"renewed").await;
}
