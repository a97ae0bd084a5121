//! The lobby (password, host, ready, start, host handoff, late join), labels with listing
//! filters, and quick-match groups that keep different required properties apart.
mod common;

use common::*;
use ricochet_protocol::signaling::{
    CreatedMatch, ErrorCode, Lobby, MatchId, MatchInfo, MatchList, ServerMessage,
};
use ricochet_protocol::PeerId;
use serde_json::{json, Value};

async fn create(server: &Server, body: Value) -> CreatedMatch {
    let (status, text) = http(server.addr, "POST", "/matches", Some(&body.to_string())).await;
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn list(server: &Server, query: &str) -> Vec<MatchInfo> {
    let (status, text) = http(server.addr, "GET", &format!("/matches{query}"), None).await;
    assert_eq!(status, 200, "{text}");
    let page: MatchList = serde_json::from_str(&text).unwrap();
    page.matches
}

/// Joins and returns the client with its welcome's lobby and match ID.
async fn enter(url: &str) -> (Client, Option<Lobby>, MatchId) {
    let mut c = join(url).await;
    let (w, _) = welcome(&mut c.ws).await;
    let ServerMessage::Welcome {
        lobby, match_id, ..
    } = w
    else {
        unreachable!()
    };
    (c, lobby, match_id)
}

async fn send(c: &mut Client, msg: Value) {
    send_text(&mut c.ws, &json!({ "Ricochet": msg }).to_string()).await;
}

async fn expect_error(c: &mut Client, code: ErrorCode) -> String {
    match recv_ext(&mut c.ws).await {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

/// Both mark themselves ready, and both hear both.
async fn both_ready(a: &mut Client, b: &mut Client) {
    for x in [&mut *a, &mut *b] {
        send(x, json!({"type": "set_ready", "ready": true})).await;
    }
    for _ in 0..2 {
        for x in [&mut *a, &mut *b] {
            assert!(matches!(
                recv_ext(&mut x.ws).await,
                ServerMessage::PeerReady { .. }
            ));
        }
    }
}

async fn expect_ready(c: &mut Client, peer: PeerId, ready: bool) {
    assert_eq!(
        recv_ext(&mut c.ws).await,
        ServerMessage::PeerReady { peer, ready }
    );
}

#[tokio::test]
async fn a_password_keeps_out_who_does_not_know_it_and_is_never_echoed() {
    let server = start(config()).await;
    let secret = "swordfish & chips";
    let m = create(&server, json!({"password": secret, "max_players": 4})).await;
    assert!(m.locked);
    let url = server.url(&format!("/{}", m.id));
    for bad in [
        url.clone(),
        format!("{url}?password=swordfish"),
        format!("{url}?password="),
    ] {
        let (status, body) = refused(&bad).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "wrong_password");
        assert!(!body.to_string().contains("swordfish"), "{body}");
    }
    let (_a, lobby, id) = enter(&format!("{url}?password={}", urlencode(secret))).await;
    assert_eq!(id, m.id);
    assert!(lobby.is_some());
    // Listed as locked, and the listing does not leak the password either.
    let (_, text) = http(server.addr, "GET", "/matches", None).await;
    assert!(!text.contains("swordfish"), "{text}");
    assert!(list(&server, "").await[0].locked);
    // Bad passwords at creation are refused without echoing them.
    let (status, text) = http(
        server.addr,
        "POST",
        "/matches",
        Some(&json!({"password": "x".repeat(65)}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("xxxxx"), "{text}");
    // Guessing costs join tokens: the address's join rate limits it like joining.
    let mut refused_429 = false;
    for i in 0..40 {
        let (status, _) = refused(&format!("{url}?password=guess{i}")).await;
        if status == 429 {
            refused_429 = true;
            break;
        }
        assert_eq!(status, 403);
    }
    assert!(refused_429, "password guesses were not rate limited");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_host_starts_once_enough_are_ready_and_the_roster_is_fixed() {
    let server = start(config()).await;
    let m = create(&server, json!({"max_players": 4, "min_players": 3})).await;
    assert_eq!(m.min_players, 3);
    let url = server.url(&format!("/{}", m.id));
    let (mut a, lobby, _) = enter(&url).await;
    let lobby = lobby.unwrap();
    assert_eq!(lobby.host, Some(a.id));
    assert_eq!((lobby.min_players, lobby.started), (3, false));
    let (mut b, _, _) = enter(&url).await;
    expect_joined(&mut a.ws, b.id).await;
    let (mut c, lobby, _) = enter(&url).await;
    assert_eq!(lobby.unwrap().host, Some(a.id));
    expect_joined(&mut a.ws, c.id).await;
    expect_joined(&mut b.ws, c.id).await;

    // Only the host starts, and only with min_players ready.
    send(&mut b, json!({"type": "start"})).await;
    expect_error(&mut b, ErrorCode::NotHost).await;
    send(&mut a, json!({"type": "set_ready", "ready": true})).await;
    let id = a.id;
    for x in [&mut a, &mut b, &mut c] {
        expect_ready(x, id, true).await;
    }
    send(&mut b, json!({"type": "set_ready", "ready": true})).await;
    let id = b.id;
    for x in [&mut a, &mut b, &mut c] {
        expect_ready(x, id, true).await;
    }
    send(&mut a, json!({"type": "start"})).await;
    let why = expect_error(&mut a, ErrorCode::NotEnoughReady).await;
    assert!(
        why.contains("2 members are ready") && why.contains("needs 3"),
        "{why}"
    );
    // Setting what is already set tells nobody anything.
    send(&mut b, json!({"type": "set_ready", "ready": true})).await;
    silent(&mut a.ws, 200).await;
    send(&mut c, json!({"type": "set_ready", "ready": true})).await;
    let id = c.id;
    for x in [&mut a, &mut b, &mut c] {
        expect_ready(x, id, true).await;
    }
    // A fourth joins but is not ready: not in the roster.
    let (mut d, _, _) = enter(&url).await;
    for x in [&mut a, &mut b, &mut c] {
        expect_joined(&mut x.ws, d.id).await;
    }
    send(&mut a, json!({"type": "start"})).await;
    let roster = vec![a.id, b.id, c.id];
    for x in [&mut a, &mut b, &mut c, &mut d] {
        assert_eq!(
            recv_ext(&mut x.ws).await,
            ServerMessage::Started {
                roster: roster.clone()
            }
        );
    }
    send(&mut a, json!({"type": "start"})).await;
    expect_error(&mut a, ErrorCode::AlreadyStarted).await;
    send(&mut d, json!({"type": "set_ready", "ready": true})).await;
    expect_error(&mut d, ErrorCode::AlreadyStarted).await;
    // Started, no late join: the match takes nobody now, though it has a free seat... after d
    // leaves.
    d.ws.close(None).await.unwrap();
    expect_left(&mut a.ws, d.id).await;
    let (status, body) = refused(&url).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("match_started"))
    );
    let listed = list(&server, "").await;
    assert!(listed[0].started);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn late_join_lets_members_in_after_the_start_and_they_see_the_roster() {
    let server = start(config()).await;
    let m = create(&server, json!({"late_join": true})).await;
    assert!(m.late_join);
    let url = server.url(&format!("/{}", m.id));
    let (mut a, _, _) = enter(&url).await;
    let (mut b, _, _) = enter(&url).await;
    expect_joined(&mut a.ws, b.id).await;
    both_ready(&mut a, &mut b).await;
    send(&mut a, json!({"type": "start"})).await;
    for x in [&mut a, &mut b] {
        assert!(matches!(
            recv_ext(&mut x.ws).await,
            ServerMessage::Started { .. }
        ));
    }
    let (_late, lobby, _) = enter(&url).await;
    let lobby = lobby.unwrap();
    assert!(lobby.started && lobby.late_join);
    assert_eq!(lobby.roster, Some(vec![a.id, b.id]));
    assert_eq!(lobby.ready, vec![a.id, b.id]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn when_the_host_leaves_the_next_member_hosts() {
    let server = start(config()).await;
    let url = server.url("/handoff");
    let (mut a, lobby, _) = enter(&url).await;
    assert_eq!(lobby.unwrap().host, Some(a.id));
    let (mut b, _, _) = enter(&url).await;
    expect_joined(&mut a.ws, b.id).await;
    let (mut c, lobby, _) = enter(&url).await;
    assert_eq!(lobby.unwrap().host, Some(a.id));
    expect_joined(&mut a.ws, c.id).await;
    expect_joined(&mut b.ws, c.id).await;
    // A non-host leaving changes no host.
    c.ws.close(None).await.unwrap();
    expect_left(&mut a.ws, c.id).await;
    expect_left(&mut b.ws, c.id).await;
    silent(&mut b.ws, 200).await;
    a.ws.close(None).await.unwrap();
    expect_left(&mut b.ws, a.id).await;
    assert_eq!(
        recv_ext(&mut b.ws).await,
        ServerMessage::Host { peer: b.id }
    );
    // The new host can start (with two ready: the named room's minimum).
    let (mut d, lobby, _) = enter(&url).await;
    assert_eq!(lobby.unwrap().host, Some(b.id));
    expect_joined(&mut b.ws, d.id).await;
    both_ready(&mut b, &mut d).await;
    send(&mut d, json!({"type": "start"})).await;
    expect_error(&mut d, ErrorCode::NotHost).await;
    send(&mut b, json!({"type": "start"})).await;
    assert_eq!(
        recv_ext(&mut d.ws).await,
        ServerMessage::Started {
            roster: vec![b.id, d.id]
        }
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ready_changes_share_the_metadata_budget() {
    let server = start(config()).await;
    let url = server.url("/flappy");
    let (mut a, _, _) = enter(&url).await;
    let mut limited = false;
    for i in 0..20 {
        send(&mut a, json!({"type": "set_ready", "ready": i % 2 == 0})).await;
        match recv_ext(&mut a.ws).await {
            ServerMessage::PeerReady { .. } => {}
            ServerMessage::Error { code, .. } => {
                assert_eq!(code, ErrorCode::MetaRateLimited);
                limited = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(limited, "ready could be toggled without limit");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quick_match_groups_only_players_whose_properties_agree() {
    let server = start(config()).await;
    let v2 = server.url("/arena?next=2&mode=duel&version=2");
    let v3 = server.url("/arena?next=2&version=3&mode=duel");
    let (mut a, lobby, ma) = enter(&v2).await;
    assert!(lobby.is_none(), "quick-match groups have no lobby");
    let (mut b, _, mb) = enter(&v3).await;
    assert_ne!(ma, mb, "version 2 and version 3 were grouped");
    silent(&mut a.ws, 200).await;
    let (c, _, mc) = enter(&v2).await;
    assert_eq!(mc, ma);
    expect_joined(&mut a.ws, c.id).await;
    let (d, _, md) = enter(&server.url("/arena?next=2&mode=duel&version=3")).await;
    assert_eq!(md, mb);
    expect_joined(&mut b.ws, d.id).await;
    // The group's properties are its labels.
    let mut e = join(&server.url("/arena?next=2&mode=duel&version=4")).await;
    match recv_ext(&mut e.ws).await {
        ServerMessage::Welcome { labels, .. } => {
            assert_eq!(labels.get("version").map(String::as_str), Some("4"));
            assert_eq!(labels.get("mode").map(String::as_str), Some("duel"));
        }
        other => panic!("{other:?}"),
    }
    // No lobby requests in a quick-match group.
    send(&mut a, json!({"type": "set_ready", "ready": true})).await;
    expect_error(&mut a, ErrorCode::NoLobby).await;
    // Properties follow the label rules.
    let (status, body) = refused(&server.url("/arena?next=2&Version=3")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_listing_filters_by_labels() {
    let server = start(config()).await;
    let duel3 = create(
        &server,
        json!({"labels": {"game": "dots", "version": "3", "mode": "duel", "region": "eu", "text": "casual, no rush"}}),
    )
    .await;
    assert_eq!(duel3.labels["region"], "eu");
    let duel2 = create(
        &server,
        json!({"labels": {"game": "dots", "version": "2", "mode": "duel"}}),
    )
    .await;
    let ffa3 = create(
        &server,
        json!({"labels": {"game": "dots", "version": "3", "mode": "ffa"}}),
    )
    .await;
    let ids = |v: Vec<MatchInfo>| {
        let mut ids: Vec<MatchId> = v.into_iter().map(|m| m.id).collect();
        ids.sort();
        ids
    };
    let mut all = vec![duel3.id, duel2.id, ffa3.id];
    all.sort();
    assert_eq!(ids(list(&server, "?game=dots").await), all);
    assert_eq!(
        ids(list(&server, "?mode=duel&version=3").await),
        vec![duel3.id]
    );
    let mut v3 = vec![duel3.id, ffa3.id];
    v3.sort();
    assert_eq!(ids(list(&server, "?version=3").await), v3);
    assert!(list(&server, "?version=4").await.is_empty());
    assert!(list(&server, "?text=casual%2C%20no%20rush").await.len() == 1);
    assert_eq!(list(&server, "?mode=ffa").await[0].labels["version"], "3");
    // Bad labels at creation and bad filter keys are refused.
    for bad in [
        json!({"labels": {"Mode": "x"}}),
        json!({"labels": {"mode": "x".repeat(129)}}),
        json!({"labels": (0..9).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"labels": {"mode": 3}}),
        json!({"min_players": 5, "max_players": 4}),
        json!({"min_players": 1}),
    ] {
        let (status, text) = http(server.addr, "POST", "/matches", Some(&bad.to_string())).await;
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, _) = http(server.addr, "GET", "/matches?Mode=duel", None).await;
    assert_eq!(status, 400);
    server.stop().await.unwrap();
}
