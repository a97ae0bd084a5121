//! Finding 3: one address filled the whole match table with `POST /matches` and everyone else
//! got `503 too_many_matches`. Now each address has a creation rate and a share of live matches
//! (both answered `429`), so another address can still create while the first is refused.
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::*;
use ricochet_protocol::signaling::{CreatedMatch, HttpError};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const C: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn create(server: &Server, from: IpAddr) -> (u16, String, String) {
    http_full_from(
        from,
        server.addr,
        "POST",
        "/matches",
        Some(r#"{"public":true,"max_players":2}"#),
    )
    .await
}

fn code(body: &str) -> String {
    let e: HttpError = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    serde_json::to_value(e.error)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn one_address_is_held_to_its_creation_rate_with_the_default_limits() {
    let server = start(config()).await;
    // As fast as it can: the burst (10) gets through, then 429 with Retry-After.
    let started = Instant::now();
    let mut created = 0;
    let mut refused = 0;
    for _ in 0..40 {
        let (status, head, body) = create(&server, A).await;
        match status {
            201 => {
                serde_json::from_str::<CreatedMatch>(&body).unwrap();
                created += 1;
            }
            429 => {
                assert_eq!(code(&body), "create_rate_limited", "{body}");
                assert!(
                    head.to_ascii_lowercase().contains("\r\nretry-after: 1"),
                    "{head}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // 10 at once, then 2 per second.
    let allowed = 10 + (2.0 * elapsed).ceil() as usize;
    assert!(
        (10..=allowed).contains(&created),
        "{created} created in {elapsed:.2} s (at most {allowed})"
    );
    assert_eq!(created + refused, 40);
    // Another address is not limited by the first one's use.
    let (status, _, body) = create(&server, B).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn one_address_creates_until_refused_and_another_still_can() {
    // A small table (64) and a fast rate, so the per-address share (32) is reached quickly.
    let mut cfg = config();
    cfg.set_max_matches(64)
        .unwrap()
        .set_create_rate_per_ip(1000, 1000)
        .unwrap()
        .set_max_created_matches_per_ip(32)
        .unwrap();
    let server = start(cfg).await;
    let mut created = 0;
    for attempt in 0..200 {
        let (status, _, body) = create(&server, A).await;
        match status {
            201 => created += 1,
            429 => {
                assert_eq!(code(&body), "too_many_matches_from_ip", "{body}");
                assert!(body.contains("32 live matches"), "{body}");
                assert_eq!(created, 32, "refused after {attempt} attempts");
            }
            // Without the per-address share, this address would fill the table and get 503.
            other => panic!("attempt {attempt}: {other} {body}"),
        }
    }
    assert_eq!(created, 32);
    // The table is not exhausted: the second address creates its own share.
    for n in 0..32 {
        let (status, _, body) = create(&server, B).await;
        assert_eq!(status, 201, "B's creation {n}: {body}");
    }
    // Now the table is full for everyone: the server-wide cap still answers 503.
    let (status, _, body) = create(&server, C).await;
    assert_eq!((status, code(&body).as_str()), (503, "too_many_matches"));
    // The refusals are counted.
    let (_, metrics) = http(server.addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains(
            r#"ricochet_signaling_rejections_total{reason="too_many_matches_from_ip"} 168"#
        ),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_removed_match_no_longer_counts_against_its_creator() {
    let mut cfg = config();
    cfg.set_max_created_matches_per_ip(2)
        .unwrap()
        .set_unjoined_match_ttl(Duration::from_secs(1))
        .unwrap();
    let server = start(cfg).await;
    let (status, _, body) = create(&server, A).await;
    assert_eq!(status, 201, "{body}");
    let joined: CreatedMatch = serde_json::from_str(&body).unwrap();
    assert_eq!(create(&server, A).await.0, 201);
    let (status, _, body) = create(&server, A).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (429, "too_many_matches_from_ip")
    );
    // One is joined and left (removed when emptied), the other expires unjoined.
    let mut member = join(&server.url(&joined.path)).await;
    welcome(&mut member.ws).await;
    member.ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(create(&server, A).await.0, 201);
    assert_eq!(create(&server, A).await.0, 201);
    assert_eq!(create(&server, A).await.0, 429);
    server.stop().await.unwrap();
}
