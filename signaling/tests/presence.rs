//! Presence: a joiner gets every member with metadata; the others get join, leave and metadata
//! events; nothing is sent when nothing changed.
mod common;

use common::*;
use ricochet_protocol::signaling::{Member, ServerMessage};
use serde_json::json;

#[tokio::test]
async fn initial_list_join_leave_and_metadata() {
    let server = start(config()).await;
    let meta_a = json!({"name": "ann", "color": "red"});
    let url_a = server.url(&format!(
        "/presence?meta={}",
        urlencode(&meta_a.to_string())
    ));
    let mut a = join(&url_a).await;
    let (w, _) = welcome(&mut a.ws).await;
    let ServerMessage::Welcome { members, name, .. } = w else {
        unreachable!()
    };
    assert_eq!(name.as_deref(), Some("presence"));
    assert_eq!(
        members,
        vec![Member {
            peer: a.id,
            meta: Some(meta_a.clone())
        }]
    );

    // B joins without metadata: B sees A (with A's metadata) then itself.
    let mut b = join(&server.url("/presence")).await;
    let (w, _) = welcome(&mut b.ws).await;
    let ServerMessage::Welcome { members, .. } = w else {
        unreachable!()
    };
    assert_eq!(
        members,
        vec![
            Member {
                peer: a.id,
                meta: Some(meta_a.clone())
            },
            Member {
                peer: b.id,
                meta: None
            }
        ]
    );
    expect_joined(&mut a.ws, b.id).await;

    // B sets metadata with its first message: A hears about it once.
    let meta_b = json!({"name": "bob"});
    let set = json!({"Ricochet": {"type": "set_meta", "meta": meta_b}}).to_string();
    send_text(&mut b.ws, &set).await;
    assert_eq!(
        recv_ext(&mut a.ws).await,
        ServerMessage::PeerMeta(Member {
            peer: b.id,
            meta: Some(meta_b.clone())
        })
    );
    // The same metadata again changes nothing, so nothing is sent.
    send_text(&mut b.ws, &set).await;
    silent(&mut a.ws, 200).await;
    silent(&mut b.ws, 50).await;

    // C sees both with current metadata.
    let mut c = join(&server.url("/presence")).await;
    let (w, _) = welcome(&mut c.ws).await;
    let ServerMessage::Welcome { members, .. } = w else {
        unreachable!()
    };
    assert_eq!(members.len(), 3);
    assert_eq!(members[1].meta, Some(meta_b));
    expect_joined(&mut a.ws, c.id).await;
    expect_joined(&mut b.ws, c.id).await;

    // B leaves: A and C get PeerLeft + peer_left, nothing else.
    b.ws.close(None).await.unwrap();
    expect_left(&mut a.ws, b.id).await;
    expect_left(&mut c.ws, b.id).await;
    silent(&mut a.ws, 200).await;
    silent(&mut c.ws, 50).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn idle_members_get_nothing() {
    let server = start(config()).await;
    let mut a = join(&server.url("/quiet")).await;
    welcome(&mut a.ws).await;
    send_text(&mut a.ws, "\"KeepAlive\"").await;
    silent(&mut a.ws, 300).await;
    server.stop().await.unwrap();
}
