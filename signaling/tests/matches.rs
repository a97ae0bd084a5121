//! Matches: by name, by server-generated ID, public listing, private matches, player limits,
//! removal when empty, and `?next=N` quick-match groups.
mod common;

use common::*;
use ricochet_protocol::signaling::{
    CreatedMatch, MatchId, MatchInfo, MatchList, ServerFrame, ServerMessage,
};
use serde_json::{json, Value};

fn match_id(w: &ServerMessage) -> MatchId {
    match w {
        ServerMessage::Welcome { match_id, .. } => *match_id,
        other => panic!("not a welcome: {other:?}"),
    }
}

async fn create(server: &Server, body: Value) -> CreatedMatch {
    let (status, text) = http(server.addr, "POST", "/matches", Some(&body.to_string())).await;
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The first page of `GET /matches`, which is the whole listing here.
async fn list(server: &Server) -> Vec<MatchInfo> {
    let (status, text) = http(server.addr, "GET", "/matches", None).await;
    assert_eq!(status, 200);
    let page: MatchList = serde_json::from_str(&text).unwrap();
    assert_eq!(page.next, None, "{text}");
    page.matches
}

#[tokio::test]
async fn named_match_groups_everyone_with_that_name() {
    let server = start(config()).await;
    let mut a = join(&server.url("/friday-night")).await;
    let (wa, _) = welcome(&mut a.ws).await;
    let mut b = join(&server.url("/friday-night")).await;
    let (wb, _) = welcome(&mut b.ws).await;
    assert_eq!(match_id(&wa), match_id(&wb));
    expect_joined(&mut a.ws, b.id).await;
    let mut other = join(&server.url("/saturday")).await;
    let (wo, _) = welcome(&mut other.ws).await;
    assert_ne!(match_id(&wa), match_id(&wo));
    // Named matches are not listed.
    assert!(list(&server).await.is_empty());
    // When everyone leaves, the match is gone: the name makes a fresh match next time.
    // Leaving closes the connection (a dropped one keeps its place for the rejoin grace).
    a.ws.close(None).await.unwrap();
    b.ws.close(None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut again = join(&server.url("/friday-night")).await;
    let (wn, _) = welcome(&mut again.ws).await;
    assert_ne!(match_id(&wn), match_id(&wa));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn created_matches_by_id_public_and_private() {
    let server = start(config()).await;
    let public = create(
        &server,
        json!({"max_players": 2, "metadata": {"mode": "duel"}}),
    )
    .await;
    let private = create(&server, json!({"public": false})).await;
    assert_eq!(public.path, format!("/{}", public.id));
    assert_ne!(public.id, private.id);
    assert_eq!(public.id.to_string().len(), 32);

    let listed = list(&server).await;
    assert_eq!(
        listed.len(),
        1,
        "private matches are not listed: {listed:?}"
    );
    assert_eq!(listed[0].id, public.id);
    assert_eq!(listed[0].players, 0);
    assert_eq!(listed[0].max_players, 2);
    assert_eq!(listed[0].metadata, Some(json!({"mode": "duel"})));

    // Join by ID: the welcome carries that ID, no name.
    let mut a = join(&server.url(&public.path)).await;
    let (w, _) = welcome(&mut a.ws).await;
    assert!(
        matches!(&w, ServerMessage::Welcome { match_id, name: None, max_players: 2, .. } if *match_id == public.id),
        "{w:?}"
    );
    let mut b = join(&server.url(&public.path)).await;
    welcome(&mut b.ws).await;
    expect_joined(&mut a.ws, b.id).await;
    assert_eq!(list(&server).await[0].players, 2);

    // Full: refused before the upgrade, with a clear reason.
    let (status, body) = refused(&server.url(&public.path)).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "match_full");
    assert!(body["message"].as_str().unwrap().contains("2/2"), "{body}");

    // The private match can be joined by its ID.
    let mut p = join(&server.url(&private.path)).await;
    welcome(&mut p.ws).await;

    // Empty: removed, and its ID no longer joins.
    // Leaving closes the connection (a dropped one keeps its place for the rejoin grace).
    a.ws.close(None).await.unwrap();
    b.ws.close(None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(list(&server).await.is_empty());
    let (status, body) = refused(&server.url(&public.path)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_match");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_ids_and_bad_create_bodies_are_refused() {
    let server = start(config()).await;
    let (status, body) = refused(&server.url("/0123456789abcdef0123456789abcdef")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_match"))
    );
    for bad in [
        "{",
        r#"{"max_players": 1}"#,
        r#"{"max_players": 17}"#,
        r#"{"max_players": "four"}"#,
        r#"{"metadata": [1, 2]}"#,
        r#"{"surprise": true}"#,
    ] {
        let (status, text) = http(server.addr, "POST", "/matches", Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "bad_request");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn named_rooms_have_a_player_limit() {
    let mut cfg = config();
    cfg.set_max_players(2).unwrap();
    let server = start(cfg).await;
    let _a = join(&server.url("/small")).await;
    let _b = join(&server.url("/small")).await;
    let (status, body) = refused(&server.url("/small")).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("match_full")));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quick_match_forms_separate_groups_of_n() {
    let server = start(config()).await;
    let url = server.url("/lobby?next=2");
    let mut a = join(&url).await;
    let (wa, _) = welcome(&mut a.ws).await;
    let mut b = join(&url).await;
    let (wb, _) = welcome(&mut b.ws).await;
    let mut c = join(&url).await;
    let (wc, _) = welcome(&mut c.ws).await;
    let mut d = join(&url).await;
    let (wd, _) = welcome(&mut d.ws).await;
    assert_eq!(match_id(&wa), match_id(&wb));
    assert_eq!(match_id(&wc), match_id(&wd));
    assert_ne!(match_id(&wa), match_id(&wc));
    expect_joined(&mut a.ws, b.id).await;
    expect_joined(&mut c.ws, d.id).await;
    // A different N under the same name is a different queue, and plain `/lobby` is not a group.
    let mut e = join(&server.url("/lobby?next=3")).await;
    let (we, _) = welcome(&mut e.ws).await;
    let mut f = join(&server.url("/lobby")).await;
    let (wf, _) = welcome(&mut f.ws).await;
    assert_ne!(match_id(&we), match_id(&wa));
    assert_ne!(match_id(&wf), match_id(&we));
    // Nobody got anything else (groups don't leak to each other).
    for ws in [
        &mut a.ws, &mut b.ws, &mut c.ws, &mut d.ws, &mut e.ws, &mut f.ws,
    ] {
        silent(ws, 100).await;
    }
    // A leaves: only B hears.
    a.ws.close(None).await.unwrap();
    expect_left(&mut b.ws, a.id).await;
    silent(&mut c.ws, 100).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn next_out_of_range_is_a_clear_http_error() {
    let server = start(config()).await;
    for next in ["0", "1", "17", "100", "-2", "two", ""] {
        let (status, body) = refused(&server.url(&format!("/lobby?next={next}"))).await;
        assert_eq!(status, 400, "next={next}");
        assert_eq!(body["error"], "bad_next");
        assert!(
            body["message"].as_str().unwrap().contains("2..=16"),
            "{body}"
        );
    }
    // 2 and 16 are fine.
    let mut a = join(&server.url("/lobby?next=16")).await;
    assert!(matches!(recv(&mut a.ws).await, ServerFrame::Ricochet(_)));
    let _b = join(&server.url("/lobby?next=2")).await;
    server.stop().await.unwrap();
}
