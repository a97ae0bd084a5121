//! A join forwarded to its match's home node (two nodes on a real `redis-server`): the
//! forwarding node passes the client's bytes through, so the forwarded client is a member of
//! the home node in every way: its frames, the home node's refusals, close frames and close
//! codes, a size-limit close, and a dropped connection all go through as they are.
mod common;

use common::*;
use futures_util::SinkExt as _;
use ricochet_protocol::signaling::ServerMessage;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A node of the cluster on `redis`, with rooms of two.
async fn node(redis: &Redis) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = config();
    cfg.set_max_players(2).unwrap();
    cfg.set_cluster(
        Some(&format!("redis://127.0.0.1:{}", redis.1)),
        Some(&format!("ws://{addr}")),
    )
    .unwrap();
    start_on(listener, cfg).await
}

/// The match ID of a welcome.
fn match_of(welcome: &ServerMessage) -> String {
    match welcome {
        ServerMessage::Welcome { match_id, .. } => match_id.to_string(),
        other => panic!("not a welcome: {other:?}"),
    }
}

#[tokio::test]
async fn a_forwarded_client_is_a_member_of_the_home_node_in_every_way() {
    let Some(redis) = redis().await else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let one = node(&redis).await;
    let two = node(&redis).await;

    // A makes the room on node one; B reaches node two and is forwarded there.
    let mut a = join(&one.url("/fwd-room")).await;
    let (wa, _) = welcome(&mut a.ws).await;
    let mut b = join(&two.url("/fwd-room")).await;
    let (wb, _) = welcome(&mut b.ws).await;
    assert_eq!(match_of(&wa), match_of(&wb));
    expect_joined(&mut a.ws, b.id).await;

    // Signals both ways; a ping through the forwarding node is answered by the home node.
    signal(&mut b.ws, a.id, json!({"sdp": "offer"})).await;
    expect_signal(&mut a.ws, b.id, json!({"sdp": "offer"})).await;
    signal(&mut a.ws, b.id, json!({"sdp": "answer"})).await;
    expect_signal(&mut b.ws, a.id, json!({"sdp": "answer"})).await;
    b.ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    signal(&mut b.ws, a.id, json!({"after": "ping"})).await;
    expect_signal(&mut a.ws, b.id, json!({"after": "ping"})).await;

    // The home node's refusal is the answer through either node, status and body.
    let direct = refused(&one.url("/fwd-room")).await;
    assert_eq!(direct.0, 409, "{direct:?}");
    assert_eq!(refused(&two.url("/fwd-room")).await, direct);

    // A message over the size limit: the home node closes with 1009, and B leaves.
    b.ws.send(Message::text("x".repeat(9 * 1024)))
        .await
        .unwrap();
    assert_eq!(closed(&mut b.ws).await, Some(1009));
    expect_left(&mut a.ws, b.id).await;

    // A rejoinable client whose connection drops (no close frame) keeps its place at the
    // home node for the rejoin grace: its peer hears nothing.
    let mut c = join(&two.url("/fwd-room?rejoinable=1")).await;
    welcome(&mut c.ws).await;
    expect_joined(&mut a.ws, c.id).await;
    drop(c);
    silent(&mut a.ws, 500).await;

    // A forwarded client that closes normally leaves at once, and its connection ends as a
    // direct client's does.
    let mut d = join(&two.url("/fwd-other")).await;
    welcome(&mut d.ws).await;
    let mut e = join(&one.url("/fwd-other")).await;
    welcome(&mut e.ws).await;
    expect_joined(&mut d.ws, e.id).await;
    let bye = || CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    e.ws.close(Some(bye())).await.unwrap();
    let forwarded = closed(&mut e.ws).await;
    expect_left(&mut d.ws, e.id).await;
    d.ws.close(Some(bye())).await.unwrap();
    assert_eq!(forwarded, closed(&mut d.ws).await);

    // The home node shutting down closes its forwarded members with its own close code.
    let mut f = join(&two.url("/fwd-third")).await;
    welcome(&mut f.ws).await;
    let mut g = join(&one.url("/fwd-third")).await;
    welcome(&mut g.ws).await;
    expect_joined(&mut f.ws, g.id).await;
    let stopping = tokio::spawn(async move { two.stop().await });
    assert_eq!(closed(&mut g.ws).await, Some(1001));
    stopping.await.unwrap().unwrap();
    one.stop().await.unwrap();
}
