//! Spectators (`?spectate=1`): they watch an existing match without being members. They get
//! their peer ID, a welcome with the players and a spectator's relay ticket (seat 255), and the
//! players' extension presence events; the players never hear of them; they may send nothing but
//! `KeepAlive` and `renew_ticket`; they are capped per match, listed as a count, and closed when
//! their match ends.
mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt as _;
use ricochet_protocol::signaling::{
    CreatedMatch, ErrorCode, MatchId, MatchList, RelayGrant, ServerFrame, ServerMessage,
};
use ricochet_protocol::ticket::SPECTATOR_SEAT;
use ricochet_protocol::{PeerId, TicketClaims};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "operator-token-0123456789";

/// Named rooms of two players.
fn duel() -> ricochet_signaling::Config {
    let mut c = config();
    c.set_max_players(2).unwrap();
    c
}

/// The claims of a ticket, checked with the test secret.
fn claims(grant: &RelayGrant) -> TicketClaims {
    grant
        .ticket
        .verify(SECRET, grant.expires_at)
        .expect("the ticket verifies with the shared secret")
}

fn grant(m: ServerMessage) -> RelayGrant {
    match m {
        ServerMessage::Ticket(g) => g,
        other => panic!("not a ticket: {other:?}"),
    }
}

/// Joins as a player and reads its welcome and ticket; returns the client and its match.
async fn play(url: &str) -> (Client, MatchId) {
    let mut c = join(url).await;
    let (w, _) = welcome(&mut c.ws).await;
    let ServerMessage::Welcome { match_id, .. } = w else {
        unreachable!()
    };
    (c, match_id)
}

/// What a spectator receives on connecting: its ID, the welcome's members and match, and the
/// claims of its ticket (checked: a spectator's, for this match and peer).
struct Watching {
    client: Client,
    members: Vec<PeerId>,
    match_id: MatchId,
    max_players: u8,
    claims: TicketClaims,
}

async fn watch(url: &str) -> Watching {
    let mut client = join(url).await;
    let ServerMessage::Welcome {
        match_id,
        max_players,
        members,
        rejoin,
        ..
    } = recv_ext(&mut client.ws).await
    else {
        panic!("expected a welcome after IdAssigned")
    };
    assert_eq!(rejoin, None, "a spectator has no membership to take back");
    let members: Vec<PeerId> = members.iter().map(|m| m.peer).collect();
    assert!(!members.contains(&client.id), "a spectator is not a member");
    let g = grant(recv_ext(&mut client.ws).await);
    assert_eq!(g.match_id, match_id);
    assert_eq!(g.relay_url.as_deref(), Some("ws://relay.test:3537"));
    let claims = claims(&g);
    assert!(claims.is_spectator(), "{claims:?}");
    assert_eq!(claims.seat, SPECTATOR_SEAT);
    assert_eq!(claims.peer, client.id);
    assert_eq!(claims.match_key, match_id.to_string());
    assert_eq!(claims.max_players, max_players);
    Watching {
        client,
        members,
        match_id,
        max_players,
        claims,
    }
}

async fn send_ext(ws: &mut Ws, msg: Value) {
    send_text(ws, &json!({ "Ricochet": msg }).to_string()).await;
}

async fn expect_error(ws: &mut Ws, code: ErrorCode) -> String {
    match recv_ext(ws).await {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_spectator_of_a_two_player_room_watches_and_the_players_never_hear_of_it() {
    let server = start(duel()).await;
    let url = server.url("/duel-room");
    let (mut a, match_id) = play(&url).await;

    // A spectator of a room with one player: it takes no seat.
    let mut early = watch(&server.url("/duel-room?spectate=1&rejoinable=1")).await;
    assert_eq!(early.members, vec![a.id]);
    assert_eq!((early.match_id, early.max_players), (match_id, 2));
    silent(&mut a.ws, 200).await;

    // The second player still joins: the room fills with two players.
    let (mut b, b_match) = play(&url).await;
    assert_eq!(b_match, match_id);
    expect_joined(&mut a.ws, b.id).await;
    // The spectator hears of it through the extension only: no NewPeer, no WebRTC.
    match recv(&mut early.client.ws).await {
        ServerFrame::Ricochet(ServerMessage::PeerJoined(m)) => assert_eq!(m.peer, b.id),
        other => panic!("expected peer_joined, got {other:?}"),
    }
    let (status, body) = refused(&url).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("match_full")));

    // A spectator of the full room gets both players in its welcome.
    let mut late = watch(&server.url("/duel-room?spectate=true")).await;
    assert_eq!(late.members, vec![a.id, b.id]);
    assert_eq!(late.claims.max_players, 2);
    assert_ne!(late.client.id, early.client.id);
    silent(&mut a.ws, 200).await;
    silent(&mut b.ws, 0).await;

    // The lobby: both ready, the host starts; the spectators see it all and are in no roster.
    for p in [&mut a, &mut b] {
        send_ext(&mut p.ws, json!({"type": "set_ready", "ready": true})).await;
    }
    for ws in [
        &mut a.ws,
        &mut b.ws,
        &mut early.client.ws,
        &mut late.client.ws,
    ] {
        for _ in 0..2 {
            assert!(matches!(
                recv_ext(ws).await,
                ServerMessage::PeerReady { ready: true, .. }
            ));
        }
    }
    send_ext(&mut a.ws, json!({"type": "start"})).await;
    for ws in [
        &mut a.ws,
        &mut b.ws,
        &mut early.client.ws,
        &mut late.client.ws,
    ] {
        assert_eq!(
            recv_ext(ws).await,
            ServerMessage::Started {
                roster: vec![a.id, b.id]
            }
        );
    }

    // Metadata changes reach spectators too.
    send_ext(
        &mut b.ws,
        json!({"type": "set_meta", "meta": {"name": "bob"}}),
    )
    .await;
    assert!(matches!(
        recv_ext(&mut a.ws).await,
        ServerMessage::PeerMeta(m) if m.peer == b.id
    ));
    for s in [&mut early, &mut late] {
        assert!(matches!(
            recv_ext(&mut s.client.ws).await,
            ServerMessage::PeerMeta(m) if m.peer == b.id
        ));
    }

    // A renewed ticket is a spectator's ticket again.
    send_ext(&mut late.client.ws, json!({"type": "renew_ticket"})).await;
    let renewed = claims(&grant(recv_ext(&mut late.client.ws).await));
    assert!(renewed.is_spectator());
    assert_eq!(renewed.peer, late.client.id);
    assert!(renewed.issued_at_ms > late.claims.issued_at_ms);

    // A spectator leaving tells no one.
    late.client.ws.close(None).await.unwrap();
    silent(&mut a.ws, 300).await;
    silent(&mut b.ws, 0).await;
    silent(&mut early.client.ws, 0).await;

    // A player leaving: the spectator gets peer_left and no matchbox PeerLeft.
    b.ws.close(None).await.unwrap();
    expect_left(&mut a.ws, b.id).await;
    assert_eq!(
        recv(&mut early.client.ws).await,
        ServerFrame::Ricochet(ServerMessage::PeerLeft { peer: b.id })
    );
    silent(&mut early.client.ws, 200).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn spectating_a_match_that_does_not_exist_is_refused() {
    let server = start(config()).await;
    let (status, body) = refused(&server.url("/nobody-here?spectate=1")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_match");
    let (status, body) = refused(&server.url(&format!("/{}?spectate=1", "ab".repeat(16)))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_match"))
    );
    // The refused spectator made no room: the first player is alone in a fresh one.
    let mut a = join(&server.url("/nobody-here")).await;
    let (w, _) = welcome(&mut a.ws).await;
    let ServerMessage::Welcome { members, .. } = w else {
        unreachable!()
    };
    assert_eq!(members.len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn parameters_that_do_not_fit_a_spectator_are_refused() {
    let server = start(config()).await;
    let (_a, _) = play(&server.url("/lobby")).await;
    for (query, status, code) in [
        ("next=2&spectate=1", 400, "bad_next"),
        ("spectate=1&next=2", 400, "bad_next"),
        ("spectate=true&next=4&mode=duel", 400, "bad_next"),
        ("spectate=yes", 400, "bad_request"),
        ("spectate=1&meta=%7B%7D", 400, "bad_request"),
        ("spectate=1&rejoin=abc", 400, "bad_request"),
    ] {
        let (got, body) = refused(&server.url(&format!("/lobby?{query}"))).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{query}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("spectate"),
            "{query}: {body}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn what_a_spectator_sends_is_refused_and_reaches_no_one() {
    let server = start(config()).await;
    let (mut a, _) = play(&server.url("/watched")).await;
    let (mut b, _) = play(&server.url("/watched")).await;
    expect_joined(&mut a.ws, b.id).await;
    let mut s = watch(&server.url("/watched?spectate=1")).await;

    signal(&mut s.client.ws, a.id, json!({"Offer": "v=0"})).await;
    let message = expect_error(&mut s.client.ws, ErrorCode::BadRequest).await;
    assert!(message.contains("spectator"), "{message}");
    for msg in [
        json!({"type": "set_meta", "meta": {"name": "eve"}}),
        json!({"type": "set_ready", "ready": true}),
        json!({"type": "start"}),
        json!({"type": "links", "links": [], "relay_packets": 0}),
    ] {
        send_ext(&mut s.client.ws, msg.clone()).await;
        expect_error(&mut s.client.ws, ErrorCode::BadRequest).await;
    }
    send_text(&mut s.client.ws, "\"KeepAlive\"").await;
    silent(&mut s.client.ws, 200).await;
    silent(&mut a.ws, 0).await;
    silent(&mut b.ws, 0).await;

    // Nor can a player reach the spectator.
    signal(&mut a.ws, s.client.id, json!({"Offer": "v=0"})).await;
    expect_error(&mut a.ws, ErrorCode::UnknownPeer).await;
    silent(&mut s.client.ws, 200).await;

    // Signals between the players still flow.
    signal(&mut a.ws, b.id, json!({"Offer": "v=0"})).await;
    expect_signal(&mut b.ws, a.id, json!({"Offer": "v=0"})).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_flooding_spectator_is_closed_alone() {
    let mut cfg = config();
    cfg.set_message_rate(10, 20).unwrap();
    let server = start(cfg).await;
    let (mut a, _) = play(&server.url("/flood")).await;
    let mut s = watch(&server.url("/flood?spectate=1")).await;
    for _ in 0..200 {
        if s.client
            .ws
            .send(Message::text("\"KeepAlive\""))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(closed(&mut s.client.ws).await, Some(1008));
    silent(&mut a.ws, 300).await;
    server.stop().await.unwrap();
}

/// `GET /metrics` text.
async fn metrics(server: &Server) -> String {
    http(server.addr, "GET", "/metrics", None).await.1
}

#[tokio::test]
async fn spectators_are_capped_per_match_counted_and_listed() {
    let mut cfg = config();
    cfg.set_max_spectators_per_match(2)
        .set_admin_token(Some(TOKEN))
        .unwrap();
    let server = start(cfg).await;
    let (status, text) = http(
        server.addr,
        "POST",
        "/matches",
        Some(r#"{"max_players": 2}"#),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let created: CreatedMatch = serde_json::from_str(&text).unwrap();
    let id = created.id;
    // A created match nobody has joined yet can be watched by its ID.
    let s1 = watch(&server.url(&format!("/{id}?spectate=1"))).await;
    assert!(s1.members.is_empty());
    let (mut a, _) = play(&server.url(&format!("/{id}"))).await;
    let s2 = watch(&server.url(&format!("/{id}?spectate=1"))).await;
    assert_eq!(s2.members, vec![a.id]);

    let (status, body) = refused(&server.url(&format!("/{id}?spectate=1"))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("match_full")));
    assert!(
        body["message"].as_str().unwrap().contains("spectators"),
        "{body}"
    );
    // The cap is on spectators only: the second player still gets in.
    let (mut b, _) = play(&server.url(&format!("/{id}"))).await;
    expect_joined(&mut a.ws, b.id).await;

    // The listing, the console and the metrics count them.
    let (status, text) = http(server.addr, "GET", "/matches", None).await;
    assert_eq!(status, 200, "{text}");
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["matches"][0]["spectators"], 2, "{raw}");
    assert_eq!(raw["matches"][0]["players"], 2, "{raw}");
    // Clients that do not know the field still read the listing.
    let page: MatchList = serde_json::from_str(&text).unwrap();
    assert_eq!(page.matches[0].players, 2);
    let (status, view) = http_bearer(server.addr, "GET", "/admin/api/state", Some(TOKEN)).await;
    assert_eq!(status, 200, "{view}");
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["totals"]["spectators"], 2, "{view}");
    assert_eq!(view["totals"]["clients"], 2, "{view}");
    assert_eq!(view["matches"][0]["spectators"], 2, "{view}");
    assert_eq!(view["matches"][0]["members"].as_array().unwrap().len(), 2);
    let text = metrics(&server).await;
    assert!(text.contains("ricochet_signaling_spectators 2"), "{text}");
    assert!(text.contains("ricochet_signaling_connections 4"), "{text}");
    assert!(
        text.contains(r#"ricochet_signaling_rejections_total{reason="too_many_spectators"} 1"#),
        "{text}"
    );

    // One leaves: a place is free again.
    let mut s1 = s1;
    s1.client.ws.close(None).await.unwrap();
    let mut freed = false;
    for _ in 0..50 {
        if metrics(&server)
            .await
            .contains("ricochet_signaling_spectators 1")
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the spectator that left was not removed");
    let _s3 = watch(&server.url(&format!("/{id}?spectate=1"))).await;
    silent(&mut a.ws, 200).await;
    silent(&mut b.ws, 0).await;
    drop(s2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_locked_match_needs_its_password_to_be_watched() {
    let server = start(config()).await;
    let (status, text) = http(
        server.addr,
        "POST",
        "/matches",
        Some(r#"{"password": "swordfish"}"#),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<CreatedMatch>(&text).unwrap().id;
    for query in ["spectate=1", "spectate=1&password=trout"] {
        let (status, body) = refused(&server.url(&format!("/{id}?{query}"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("wrong_password"))
        );
    }
    watch(&server.url(&format!("/{id}?spectate=1&password=swordfish"))).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn spectators_are_closed_when_their_match_ends() {
    let server = start(config()).await;
    let (mut a, match_id) = play(&server.url("/short-lived")).await;
    let mut s = watch(&server.url("/short-lived?spectate=1")).await;
    assert_eq!(s.match_id, match_id);
    // The last player leaves: the match is gone, the spectator is told and closed.
    a.ws.close(None).await.unwrap();
    let message = expect_error(&mut s.client.ws, ErrorCode::UnknownMatch).await;
    assert!(message.contains("ended"), "{message}");
    assert_eq!(closed(&mut s.client.ws).await, Some(4102));
    // The room's name makes a fresh match, without spectators.
    let (_b, again) = play(&server.url("/short-lived")).await;
    assert_ne!(again, match_id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_operator_closes_spectators_with_their_match() {
    let mut cfg = config();
    cfg.set_admin_token(Some(TOKEN)).unwrap();
    let server = start(cfg).await;
    let (mut a, match_id) = play(&server.url("/closing")).await;
    let mut s = watch(&server.url("/closing?spectate=1")).await;
    let mut t = watch(&server.url("/closing?spectate=1")).await;
    // Removing a spectator: only it is closed, nobody hears of it.
    let (status, body) = http_bearer(
        server.addr,
        "POST",
        &format!(
            "/admin/api/matches/{match_id}/members/{}/remove",
            t.client.id
        ),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(closed(&mut t.client.ws).await, Some(4101));
    silent(&mut a.ws, 200).await;
    let (status, body) = http_bearer(
        server.addr,
        "POST",
        &format!("/admin/api/matches/{match_id}/close"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(closed(&mut a.ws).await, Some(4100));
    assert_eq!(closed(&mut s.client.ws).await, Some(4100));
    server.stop().await.unwrap();
}

/// A signaling node of the cluster on `redis`.
async fn node(redis: &Redis) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = config();
    cfg.set_cluster(
        Some(&format!("redis://127.0.0.1:{}", redis.1)),
        Some(&format!("ws://{addr}")),
    )
    .unwrap();
    start_on(listener, cfg).await
}

#[tokio::test]
async fn in_a_cluster_spectators_reach_the_home_node_and_claim_no_name() {
    let Some(redis) = redis().await else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let one = node(&redis).await;
    let two = node(&redis).await;
    let (mut a, match_id) = play(&one.url("/cluster-room")).await;
    // Through the other node: forwarded to the room's home node.
    let s = watch(&two.url("/cluster-room?spectate=1")).await;
    assert_eq!((s.match_id, s.members.clone()), (match_id, vec![a.id]));
    silent(&mut a.ws, 200).await;

    // A name nobody holds: refused, and not claimed (a player of that name on the other node
    // gets a fresh room at once).
    let (status, body) = refused(&two.url("/cluster-nobody?spectate=1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_match"))
    );
    let started = std::time::Instant::now();
    let (_b, _) = play(&one.url("/cluster-nobody")).await;
    assert!(started.elapsed() < Duration::from_millis(900));

    // The listing of every node counts the spectators of a public match (from its snapshot).
    let (status, text) = http(one.addr, "POST", "/matches", Some("{}")).await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<CreatedMatch>(&text).unwrap().id;
    let (_c, _) = play(&one.url(&format!("/{id}"))).await;
    let _t = watch(&two.url(&format!("/{id}?spectate=1"))).await;
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (_, text) = http(two.addr, "GET", "/matches", None).await;
        listed = serde_json::from_str(&text).unwrap();
        if listed["matches"][0]["spectators"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed["matches"][0]["spectators"], 1, "{listed}");
    assert_eq!(listed["matches"][0]["players"], 1, "{listed}");
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}
