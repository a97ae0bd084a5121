//! The STUN responder over real UDP: a client encodes Binding requests with the `rtc-stun` crate
//! (as the peers' ICE agent does) and gets its own address back; garbage datagrams are counted and
//! change nothing; the responder stops with the signaling server; the binary's `--stun-addr`
//! works.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use ricochet_signaling::stun::{serve, Limit, StunLimits, StunStats};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::message::{
    Getter as _, Message, Setter, TransactionId, BINDING_REQUEST, BINDING_SUCCESS,
    CLASS_INDICATION, METHOD_BINDING,
};
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn binding_request() -> Message {
    let mut m = Message::new();
    let setters: [Box<dyn Setter>; 3] = [
        Box::new(TransactionId::new()),
        Box::new(BINDING_REQUEST),
        Box::new(FINGERPRINT),
    ];
    m.build(&setters).unwrap();
    m
}

/// Sends a Binding request from `client` to `server` and returns the mapped address it got.
async fn ask(client: &UdpSocket, server: SocketAddr) -> SocketAddr {
    let request = binding_request();
    client.send_to(&request.raw, server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = tokio::time::timeout(ANSWER_TIMEOUT, client.recv_from(&mut buf))
        .await
        .expect("no STUN answer")
        .unwrap();
    assert_eq!(from, server);
    let mut response = Message::new();
    response.raw = buf[..len].to_vec();
    response.decode().unwrap();
    assert_eq!(response.typ, BINDING_SUCCESS);
    assert_eq!(response.transaction_id, request.transaction_id);
    FINGERPRINT.check(&response).unwrap();
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&response).unwrap();
    SocketAddr::new(mapped.ip, mapped.port)
}

/// Waits until the responder has counted `n` datagrams in all.
async fn counted(stats: &StunStats, n: u64) {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    while stats.answered() + stats.limited() + stats.ignored() + stats.malformed() < n {
        assert!(tokio::time::Instant::now() < deadline, "responder stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn binding_requests_get_the_source_address_and_garbage_is_counted() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    let stats = StunStats::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(socket, StunLimits::default(), stats.clone(), async {
        let _ = stopped.await;
    }));

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(ask(&client, server).await, client.local_addr().unwrap());
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(ask(&other, server).await, other.local_addr().unwrap());

    // Garbage: nothing, random bytes, a cut request, a huge datagram, HTTP.
    let valid = binding_request().raw;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        (0..100u8).map(|i| i.wrapping_mul(37)).collect(),
        valid[..valid.len() - 3].to_vec(),
        vec![0x00; 9000],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for g in &garbage {
        client.send_to(g, server).await.unwrap();
    }
    // Well-formed non-requests: a Binding indication and a Binding success response.
    for typ in [
        rtc_stun::message::MessageType::new(METHOD_BINDING, CLASS_INDICATION),
        BINDING_SUCCESS,
    ] {
        let mut m = Message::new();
        let setters: [Box<dyn Setter>; 2] = [Box::new(TransactionId::new()), Box::new(typ)];
        m.build(&setters).unwrap();
        client.send_to(&m.raw, server).await.unwrap();
    }
    counted(&stats, 2 + garbage.len() as u64 + 2).await;
    assert_eq!(stats.malformed(), garbage.len() as u64);
    assert_eq!(stats.ignored(), 2);
    // Nothing was answered to any of it ...
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf))
            .await
            .is_err(),
        "the responder answered garbage or a non-request"
    );
    // ... and the responder still works.
    assert_eq!(ask(&client, server).await, client.local_addr().unwrap());
    assert_eq!(stats.answered(), 3);

    stop.send(()).unwrap();
    tokio::time::timeout(ANSWER_TIMEOUT, task)
        .await
        .expect("responder did not stop")
        .unwrap()
        .unwrap();
    // The port is free again: the socket was closed.
    UdpSocket::bind(server).await.unwrap();
}

/// `GET /metrics` over a plain TCP connection.
async fn metrics_text(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn the_responder_stops_with_the_signaling_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    let config =
        ricochet_signaling::Config::new(b"test secret shared with the relay".to_vec()).unwrap();
    let http = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ricochet_signaling::run(
        ricochet_signaling::Listeners::new(listener).with_stun(socket),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(ask(&client, server).await, client.local_addr().unwrap());
    // The counts are in /metrics.
    let metrics = metrics_text(http).await;
    assert!(
        metrics.contains("ricochet_signaling_stun_requests_answered_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ricochet_signaling_stun_datagrams_malformed_total 0"));
    assert!(
        metrics.contains(r#"ricochet_signaling_stun_replies_limited_total{limit="per_source"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("ricochet_signaling_stun_sources 1"),
        "{metrics}"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(ANSWER_TIMEOUT, task)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    UdpSocket::bind(server).await.unwrap();
}

#[tokio::test]
async fn a_bad_config_stops_the_responder_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    let mut config =
        ricochet_signaling::Config::new(b"test secret shared with the relay".to_vec()).unwrap();
    // Settings that do not fit together: a TCP cap below the WebSocket cap.
    config.set_max_tcp_connections(10).unwrap();
    let result = tokio::time::timeout(
        ANSWER_TIMEOUT,
        ricochet_signaling::run(
            ricochet_signaling::Listeners::new(listener).with_stun(socket),
            config,
            std::future::pending(),
        ),
    )
    .await
    .expect("run hung after a config error");
    match result {
        Err(ricochet_signaling::Error::Config(e)) => {
            assert_eq!(e.setting(), "max-tcp-connections")
        }
        other => panic!("{other:?}"),
    }
    UdpSocket::bind(server).await.unwrap();
}

/// Starts a responder under `limits` on a fresh loopback port of `ip`; returns its address,
/// its counts and what stops it.
async fn start(
    ip: &str,
    limits: StunLimits,
) -> (
    SocketAddr,
    StunStats,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ricochet_signaling::Error>>,
) {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    let server = socket.local_addr().unwrap();
    let stats = StunStats::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(socket, limits, stats.clone(), async {
        let _ = stopped.await;
    }));
    (server, stats, stop, task)
}

/// How many of `sent` requests the responder never read, once its counts have settled.
async fn dropped(stats: &StunStats, sent: u64) -> u64 {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = stats.answered() + stats.limited() + stats.ignored() + stats.malformed();
        if now == last || now >= sent {
            return sent - now;
        }
        last = now;
    }
}

/// A Binding request without attributes (what webrtc-rs and browsers send to a STUN server).
fn bare_binding_request() -> Message {
    let mut m = Message::new();
    let setters: [Box<dyn Setter>; 2] = [Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
    m.build(&setters).unwrap();
    m
}

#[tokio::test]
async fn a_flood_from_one_source_gets_its_limit_while_others_are_answered() {
    let limits = StunLimits {
        per_source_per_second: 20,
        per_source_burst: 40,
        ..StunLimits::default()
    };
    let (server, stats, stop, task) = start("127.0.0.1", limits).await;
    let flooder = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    // Count the replies the flooder gets while it floods.
    let replies = {
        let flooder = flooder.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let mut n = 0u64;
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), flooder.recv_from(&mut buf)).await
            {
                n += 1;
            }
            n
        })
    };
    let started = tokio::time::Instant::now();
    let flood_for = Duration::from_millis(1500);
    let request = bare_binding_request().raw;
    let mut sent = 0u64;
    let mut other_answered = false;
    while started.elapsed() < flood_for {
        for _ in 0..50 {
            flooder.send_to(&request, server).await.unwrap();
            sent += 1;
        }
        // Another source, mid-flood, is still answered.
        if !other_answered && started.elapsed() > Duration::from_millis(700) {
            let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
            assert_eq!(ask(&other, server).await, other.local_addr().unwrap());
            other_answered = true;
        }
        tokio::task::yield_now().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let got = replies.await.unwrap();
    eprintln!("flood: {got} replies to {sent} requests in {elapsed:.2} s");
    assert!(other_answered);
    assert!(
        sent > 2_000,
        "the flood was too slow to test anything: {sent}"
    );
    // At most the burst plus the rate over the flood (and a little for timing).
    let most = 40.0 + 20.0 * (elapsed + 0.1);
    assert!(
        (got as f64) <= most && got >= 40,
        "{got} replies to {sent} requests in {elapsed:.2} s (limit {most:.0})"
    );
    // Every request the responder read was answered or refused by the per-source limit (a
    // loopback socket may drop some of a flood before the responder reads them).
    assert_eq!(stats.answered(), got + 1);
    assert!(stats.limited_by(Limit::PerSource) >= sent / 2);
    assert_eq!(
        stats.answered() + stats.limited(),
        sent + 1 - dropped(&stats, sent + 1).await
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_global_cap_limits_all_sources_together() {
    let limits = StunLimits {
        global_per_second: 10,
        ..StunLimits::default()
    };
    let (server, stats, stop, task) = start("127.0.0.1", limits).await;
    let mut clients = Vec::new();
    for i in 1..=4u8 {
        clients.push(
            UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, i), 0))
                .await
                .unwrap(),
        );
    }
    // 4 sources × 10 requests, each well inside its own budget: 10 answered in all.
    let request = bare_binding_request().raw;
    for client in &clients {
        for _ in 0..10 {
            client.send_to(&request, server).await.unwrap();
        }
    }
    counted(&stats, 40).await;
    assert!(stats.answered() <= 11, "{}", stats.answered());
    assert_eq!(stats.answered() + stats.limited_by(Limit::Global), 40);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Sends `request` to `server` from `client` and returns the reply's length, after reading the
/// reply the way webrtc-rs's gatherer does (decode, `XOR-MAPPED-ADDRESS`, nothing else): it
/// must give the client's own address, with or without `FINGERPRINT`.
async fn reply_len(client: &UdpSocket, server: SocketAddr, request: &[u8]) -> usize {
    client.send_to(request, server).await.unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = tokio::time::timeout(ANSWER_TIMEOUT, client.recv_from(&mut buf))
        .await
        .expect("no STUN answer")
        .unwrap();
    let mut reply = Message::new();
    reply.raw = buf[..len].to_vec();
    reply.decode().unwrap();
    assert_eq!(reply.typ, BINDING_SUCCESS);
    assert_eq!(&reply.transaction_id.0[..], &request[8..20]);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&reply).unwrap();
    assert_eq!(
        SocketAddr::new(mapped.ip, mapped.port),
        client.local_addr().unwrap()
    );
    len
}

#[tokio::test]
async fn the_reply_to_request_ratio_is_what_the_docs_say() {
    // docs/PROTOCOL.md §4.1: 20 -> 32 bytes (IPv4), 20 -> 44 (IPv6); with FINGERPRINT
    // 28 -> 40 and 28 -> 52.
    let bare = bare_binding_request().raw;
    let fingerprinted = binding_request().raw;
    assert_eq!((bare.len(), fingerprinted.len()), (20, 28));
    let (server, _, stop, task) = start("127.0.0.1", StunLimits::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(reply_len(&client, server, &bare).await, 32);
    assert_eq!(reply_len(&client, server, &fingerprinted).await, 40);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    // IPv6, where the machine has it.
    let Ok(probe) = UdpSocket::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback: IPv6 sizes checked by the unit tests only");
        return;
    };
    drop(probe);
    let (server, _, stop, task) = start("::1", StunLimits::default()).await;
    let client = UdpSocket::bind("[::1]:0").await.unwrap();
    assert_eq!(reply_len(&client, server, &bare).await, 44);
    assert_eq!(reply_len(&client, server, &fingerprinted).await, 52);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_answers_on_stun_addr() {
    // Free ports: bound and released (the next bind by the child is immediate).
    let stun_addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tcp_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _server = Child(
        Command::new(env!("CARGO_BIN_EXE_ricochet-signaling"))
            .args(["--addr", &tcp_addr.to_string()])
            .args(["--stun-addr", &stun_addr.to_string()])
            .env("RICOCHET_SECRET", "test secret shared with the relay")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The HTTP side listening means the UDP socket (bound first) is ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(tcp_addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(ask(&client, stun_addr).await, client.local_addr().unwrap());
}

#[test]
fn an_unusable_stun_addr_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ricochet-signaling"))
        .args(["--addr", "127.0.0.1:0", "--stun-addr", &addr.to_string()])
        .env("RICOCHET_SECRET", "test secret shared with the relay")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot bind the STUN port"), "{err}");
}
