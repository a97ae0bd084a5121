//! `ricochet-relay` and `ricochet-signaling` started inside the test process, as tokio tasks on
//! free loopback ports, for the tests that drive the core's clients directly. (The end-to-end
//! tests start the real binaries instead: `ricochet_tests::processes`.)
#![allow(
    dead_code,
    reason = "each test binary that includes this uses a part of it"
)]

/// The secret both servers share: tickets from signaling verify at the relay.
pub const SECRET: &[u8] = b"in-process-test-secret-0123456789";

/// Starts a relay with [`SECRET`] and the default limits; returns its URL, `ws://HOST:PORT/`.
pub async fn start_relay() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ricochet_relay::Config::new(SECRET.to_vec()).unwrap();
    tokio::spawn(ricochet_relay::run(
        listener,
        config,
        std::future::pending::<()>(),
    ));
    format!("ws://{addr}/")
}

/// Starts a signaling server with [`SECRET`] that hands out `relay_url`; returns its base
/// URL, `ws://HOST:PORT`.
pub async fn start_signaling(relay_url: &str) -> String {
    start_signaling_with(relay_url, |_| {}).await
}

/// [`start_signaling`] with the configuration changed by `configure`; returns its address.
pub async fn start_signaling_with(
    relay_url: &str,
    configure: impl FnOnce(&mut ricochet_signaling::Config),
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ricochet_signaling::Config::new(SECRET.to_vec()).unwrap();
    config.set_relay_url(Some(relay_url)).unwrap();
    configure(&mut config);
    tokio::spawn(ricochet_signaling::run(
        listener,
        config,
        std::future::pending::<()>(),
    ));
    format!("ws://{addr}")
}

/// Starts a relay and a signaling server that hands out its URL; returns signaling's base URL.
pub async fn start_servers() -> String {
    let relay_url = start_relay().await;
    start_signaling(&relay_url).await
}
