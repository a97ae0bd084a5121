//! A STUN Binding responder (RFC 8489 §3, the part NAT traversal needs): a peer sends a Binding
//! request to the server's UDP port and gets back, in `XOR-MAPPED-ADDRESS`, the address the
//! request came from as the server saw it, which is the peer's server-reflexive ICE candidate.
//!
//! With it, `ricochet-signaling --stun-addr HOST:PORT` and `ricochet-relay` are all an operator
//! runs for NAT traversal with relay fallback. Encoding and decoding are the `rtc-stun` crate's
//! (the webrtc-rs family the peers' ICE agent also uses).
//!
//! [`respond`] is the whole protocol, without I/O; [`Responder`] adds the reply limits
//! ([`ReplyLimiter`], time passed in); [`serve`] is the UDP driver around them. Every datagram
//! is either answered (a Binding request), refused by a limit, ignored (well-formed STUN that is
//! not a Binding request: responses, indications, other methods) or counted as malformed;
//! nothing a datagram contains can stop the responder.
//!
//! # Amplification
//! UDP source addresses can be forged, so whoever can send a Binding request "from" a victim
//! makes the responder send the reply to the victim. The reply is kept as small as RFC 8489
//! allows (header and `XOR-MAPPED-ADDRESS`; `FINGERPRINT` only when the request carried one,
//! which a basic server may do, §13), but it is still larger than the smallest request (20
//! bytes): 32 bytes for an IPv4 source (1.6×), 44 for IPv6 (2.2×). So the replies are limited:
//! per source ([`StunLimits::per_source_per_second`], [`StunLimits::per_source_burst`]; an IPv4
//! address, or an IPv6 `/64`, since a whole `/64` usually reaches one host), in a table of at
//! most [`StunLimits::max_sources`] sources, and in all ([`StunLimits::global_per_second`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use ricochet_server_kit::{ip_prefix, RateMap, TokenBucket};
use rtc_stun::attributes::ATTR_FINGERPRINT;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::message::{is_stun_message, Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

use crate::Error;

/// The IANA port for STUN over UDP, for operators who want the usual one.
pub const DEFAULT_STUN_PORT: u16 = rtc_stun::DEFAULT_PORT;
/// Largest datagram read; anything longer arrives truncated and is counted as malformed.
pub const MAX_DATAGRAM_SIZE: usize = 1500;
/// Pause after a failed `recv_from` before reading again, so a persistent socket error does not
/// spin a core.
const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Default sustained replies per second to one source (an IPv4 address or an IPv6 `/64`). An
/// ICE agent sends one Binding request per local address and STUN server, retransmitting a
/// few times, so this is far above what a real client needs.
pub const DEFAULT_PER_SOURCE_PER_SECOND: u32 = 20;
/// Default replies one source may get at once above the sustained rate.
pub const DEFAULT_PER_SOURCE_BURST: u32 = 40;
/// Default replies per second to all sources together (with a burst of one second's worth).
pub const DEFAULT_GLOBAL_PER_SECOND: u32 = 20_000;
/// Default number of sources whose reply budget is remembered at once.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;

/// What [`respond`] (or [`Responder::handle`]) makes of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A Binding request: send these bytes (a Binding success response) back to the source.
    Answer(Vec<u8>),
    /// A Binding request that a reply limit refused ([`Responder::handle`] only); nothing to
    /// send.
    Limited(Limit),
    /// Well-formed STUN that is not a Binding request; nothing to send.
    Ignored,
    /// Not STUN, or STUN that does not decode (bad lengths, bad `FINGERPRINT`); nothing to send.
    Malformed,
}

/// Which limit refused a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The source used up its own budget ([`StunLimits::per_source_per_second`] and burst),
    /// or is new while the table of sources is full of active ones
    /// ([`StunLimits::max_sources`]).
    PerSource,
    /// All sources together used up [`StunLimits::global_per_second`].
    Global,
}

impl Limit {
    /// The `limit` label of the `stun_replies_limited` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PerSource => "per_source",
            Limit::Global => "global",
        }
    }
}

/// Answers one datagram received from `source`: a Binding request gets a Binding success
/// response with the request's transaction ID, `XOR-MAPPED-ADDRESS` = `source` (IPv4-mapped IPv6
/// sources are reported as IPv4) and, if the request carried one, a `FINGERPRINT`. No limit is
/// applied here (see [`Responder`]).
pub fn respond(datagram: &[u8], source: SocketAddr) -> Reply {
    // The two top bits of every STUN message are zero (RFC 8489 §5), and the cookie is fixed.
    if !is_stun_message(datagram) || datagram[0] & 0xC0 != 0 {
        return Reply::Malformed;
    }
    let mut request = Message::new();
    request.raw = datagram.to_vec();
    if request.decode().is_err() {
        return Reply::Malformed;
    }
    // Trailing bytes after the declared length are not part of a STUN message.
    if request.raw.len() != rtc_stun::message::MESSAGE_HEADER_SIZE + request.length as usize {
        return Reply::Malformed;
    }
    let fingerprinted = request.contains(ATTR_FINGERPRINT);
    if fingerprinted && FINGERPRINT.check(&request).is_err() {
        return Reply::Malformed;
    }
    if request.typ != BINDING_REQUEST {
        return Reply::Ignored;
    }
    let mapped = XorMappedAddress {
        ip: source.ip().to_canonical(),
        port: source.port(),
    };
    let mut response = Message::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(request.transaction_id),
        Box::new(BINDING_SUCCESS),
        Box::new(mapped),
    ];
    // A basic server may use FINGERPRINT but must not require it (RFC 8489 §13); a client
    // that uses the mechanism sends one and checks ours, one that does not (webrtc-rs,
    // libwebrtc towards a STUN server) ignores it. Adding it only then keeps the reply small.
    if fingerprinted {
        setters.push(Box::new(FINGERPRINT));
    }
    match response.build(&setters) {
        Ok(()) => Reply::Answer(response.raw),
        // Encoding an address we were handed cannot fail; if the crate ever says otherwise,
        // the request still gets no answer rather than a broken one.
        Err(_) => Reply::Malformed,
    }
}

/// The reply limits of the responder. A rate of 0 turns that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunLimits {
    /// Sustained replies per second to one source (an IPv4 address or an IPv6 `/64`).
    pub per_source_per_second: u32,
    /// Replies one source may get at once above the sustained rate (at least 1 is used).
    pub per_source_burst: u32,
    /// Replies per second to all sources together; the burst is one second's worth.
    pub global_per_second: u32,
    /// Most sources remembered at once (at least 1). A source is forgotten once its budget
    /// is full again (idle for burst ÷ rate seconds); while the table is full of active
    /// sources, new sources get no reply (counted as [`Limit::PerSource`]).
    pub max_sources: usize,
}

impl Default for StunLimits {
    fn default() -> Self {
        StunLimits {
            per_source_per_second: DEFAULT_PER_SOURCE_PER_SECOND,
            per_source_burst: DEFAULT_PER_SOURCE_BURST,
            global_per_second: DEFAULT_GLOBAL_PER_SECOND,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

/// The responder's reply limits: a token bucket per source (`ricochet_server_kit::RateMap`,
/// keyed by [`ricochet_server_kit::ip_prefix`]: an IPv4 address, or the `/64` of an IPv6 one,
/// since a forger aiming at one host could otherwise spread its requests over the host's whole
/// `/64`), in a table of bounded size, and one bucket for all sources together. Reads no
/// clock: `now` is passed in.
#[derive(Debug)]
pub struct ReplyLimiter {
    limits: StunLimits,
    sources: Option<RateMap<IpAddr>>,
    global: Option<TokenBucket>,
}

impl ReplyLimiter {
    /// A limiter with nothing remembered yet.
    pub fn new(limits: StunLimits) -> Self {
        let sources = (limits.per_source_per_second > 0).then(|| {
            RateMap::new(
                f64::from(limits.per_source_per_second),
                f64::from(limits.per_source_burst.max(1)),
                limits.max_sources,
            )
        });
        ReplyLimiter {
            limits,
            sources,
            global: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> StunLimits {
        self.limits
    }

    /// Sources remembered now.
    pub fn sources(&self) -> usize {
        self.sources.as_ref().map_or(0, RateMap::len)
    }

    /// Whether a reply to `source` may be sent at `now`; if so, it is counted against the
    /// source's budget and the global one.
    pub fn admit(&mut self, source: IpAddr, now: Instant) -> Result<(), Limit> {
        // Per source first: a single flooding source must not spend the global budget.
        if let Some(sources) = &mut self.sources {
            if !sources.allow(ip_prefix(source), now) {
                return Err(Limit::PerSource);
            }
        }
        let rate = self.limits.global_per_second;
        if rate > 0 {
            let global = self
                .global
                .get_or_insert_with(|| TokenBucket::new(rate, rate, now));
            if !global.take(now) {
                return Err(Limit::Global);
            }
        }
        Ok(())
    }
}

/// [`respond`] with the reply limits: the whole responder, without I/O.
#[derive(Debug)]
pub struct Responder {
    limiter: ReplyLimiter,
}

impl Responder {
    /// A responder under `limits`.
    pub fn new(limits: StunLimits) -> Self {
        Responder {
            limiter: ReplyLimiter::new(limits),
        }
    }

    /// The limiter (for its table size).
    pub fn limiter(&self) -> &ReplyLimiter {
        &self.limiter
    }

    /// What to do with `datagram` from `source`, received at `now`: [`respond`]'s answer,
    /// unless a limit refuses it ([`Reply::Limited`]).
    pub fn handle(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) -> Reply {
        match respond(datagram, source) {
            Reply::Answer(bytes) => match self.limiter.admit(source.ip(), now) {
                Ok(()) => Reply::Answer(bytes),
                Err(limit) => Reply::Limited(limit),
            },
            other => other,
        }
    }
}

type LimitLabels = [(&'static str, &'static str); 1];

#[derive(Debug, Default)]
struct Counters {
    answered: Counter,
    ignored: Counter,
    malformed: Counter,
    limited: Family<LimitLabels, Counter>,
    sources: Gauge,
}

/// Counts of what the responder did, shared between [`serve`] and whoever reads them (cheap to
/// clone; all clones see the same counts).
#[derive(Debug, Clone, Default)]
pub struct StunStats(Arc<Counters>);

impl StunStats {
    /// Binding requests answered.
    pub fn answered(&self) -> u64 {
        self.0.answered.get()
    }

    /// Well-formed STUN datagrams that were not Binding requests.
    pub fn ignored(&self) -> u64 {
        self.0.ignored.get()
    }

    /// Datagrams that were not STUN or did not decode.
    pub fn malformed(&self) -> u64 {
        self.0.malformed.get()
    }

    /// Binding requests left unanswered because `limit` refused the reply.
    pub fn limited_by(&self, limit: Limit) -> u64 {
        self.0
            .limited
            .get_or_create(&[("limit", limit.as_str())])
            .get()
    }

    /// Binding requests left unanswered because a reply limit refused them.
    pub fn limited(&self) -> u64 {
        [Limit::PerSource, Limit::Global]
            .into_iter()
            .map(|l| self.limited_by(l))
            .sum()
    }

    /// Sources whose reply budget the responder remembers now.
    pub fn sources(&self) -> u64 {
        self.0.sources.get().max(0) as u64
    }

    fn count(&self, reply: &Reply) {
        let counter = match reply {
            Reply::Answer(_) => &self.0.answered,
            Reply::Ignored => &self.0.ignored,
            Reply::Malformed => &self.0.malformed,
            Reply::Limited(limit) => {
                self.0
                    .limited
                    .get_or_create(&[("limit", limit.as_str())])
                    .inc();
                return;
            }
        };
        counter.inc();
    }

    /// Adds the counters to the server's `/metrics`.
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "stun_requests_answered",
            "STUN Binding requests answered",
            self.0.answered.clone(),
        );
        registry.register(
            "stun_datagrams_ignored",
            "Well-formed STUN datagrams that were not Binding requests",
            self.0.ignored.clone(),
        );
        registry.register(
            "stun_datagrams_malformed",
            "Datagrams on the STUN port that were not STUN or did not decode",
            self.0.malformed.clone(),
        );
        // Every label present from the start, so a dashboard sees zeros rather than nothing.
        for limit in [Limit::PerSource, Limit::Global] {
            let _ = self.0.limited.get_or_create(&[("limit", limit.as_str())]);
        }
        registry.register(
            "stun_replies_limited",
            "STUN Binding requests left unanswered by a reply limit, by limit",
            self.0.limited.clone(),
        );
        registry.register(
            "stun_sources",
            "Sources whose STUN reply budget is remembered",
            self.0.sources.clone(),
        );
    }
}

/// Answers STUN Binding requests on `socket` under `limits` until `shutdown` completes,
/// counting into `stats`. Receive and send errors are logged and survived (UDP has no
/// connection to lose); the only error returned is one reading the socket's own address at
/// start.
pub async fn serve(
    socket: UdpSocket,
    limits: StunLimits,
    stats: StunStats,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let addr = socket.local_addr()?;
    tracing::info!(
        %addr,
        per_source_per_second = limits.per_source_per_second,
        per_source_burst = limits.per_source_burst,
        global_per_second = limits.global_per_second,
        max_sources = limits.max_sources,
        "STUN responder listening"
    );
    let mut responder = Responder::new(limits);
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    tokio::pin!(shutdown);
    loop {
        let (len, source) = tokio::select! {
            () = &mut shutdown => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "STUN receive failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let reply = responder.handle(&buf[..len], source, Instant::now());
        stats.count(&reply);
        stats
            .0
            .sources
            .set(responder.limiter().sources().try_into().unwrap_or(i64::MAX));
        match reply {
            Reply::Answer(bytes) => {
                if let Err(e) = socket.send_to(&bytes, source).await {
                    tracing::debug!(%source, error = %e, "STUN answer not sent");
                }
            }
            Reply::Limited(limit) => {
                tracing::trace!(%source, limit = limit.as_str(), "STUN reply limited")
            }
            Reply::Ignored => {
                tracing::trace!(%source, "STUN message ignored (not a Binding request)")
            }
            Reply::Malformed => tracing::debug!(%source, len, "malformed STUN datagram dropped"),
        }
    }
    tracing::info!(
        answered = stats.answered(),
        limited = stats.limited(),
        ignored = stats.ignored(),
        malformed = stats.malformed(),
        "STUN responder stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng as _};
    use rtc_stun::message::{Getter as _, TransactionId, BINDING_ERROR};

    fn request(typ: rtc_stun::message::MessageType, fingerprint: bool) -> Message {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(TransactionId::new()), Box::new(typ)];
        if fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        m.build(&setters).unwrap();
        m
    }

    fn decode(bytes: Vec<u8>) -> Message {
        let mut m = Message::new();
        m.raw = bytes;
        m.decode().unwrap();
        m
    }

    #[test]
    fn binding_request_gets_the_source_address_back() {
        for (source, fingerprint) in [
            ("198.51.100.7:40000".parse().unwrap(), true),
            ("[2001:db8::1]:5".parse().unwrap(), false),
        ] {
            let req = request(BINDING_REQUEST, fingerprint);
            let Reply::Answer(bytes) = respond(&req.raw, source) else {
                panic!("no answer");
            };
            let resp = decode(bytes);
            assert_eq!(resp.typ, BINDING_SUCCESS);
            assert_eq!(resp.transaction_id, req.transaction_id);
            // A FINGERPRINT, valid, exactly when the request had one.
            assert_eq!(resp.contains(ATTR_FINGERPRINT), fingerprint);
            if fingerprint {
                FINGERPRINT.check(&resp).unwrap();
            }
            let mut mapped = XorMappedAddress::default();
            mapped.get_from(&resp).unwrap();
            assert_eq!(SocketAddr::new(mapped.ip, mapped.port), source);
        }
    }

    #[test]
    fn ipv4_mapped_sources_are_reported_as_ipv4() {
        let req = request(BINDING_REQUEST, true);
        let Reply::Answer(bytes) = respond(&req.raw, "[::ffff:203.0.113.9]:1234".parse().unwrap())
        else {
            panic!("no answer");
        };
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&decode(bytes)).unwrap();
        assert_eq!(
            mapped.ip,
            "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        );
    }

    #[test]
    fn non_requests_are_ignored_and_damage_is_malformed() {
        let source: SocketAddr = "192.0.2.1:9".parse().unwrap();
        for typ in [BINDING_SUCCESS, BINDING_ERROR] {
            assert_eq!(respond(&request(typ, true).raw, source), Reply::Ignored);
        }
        let good = request(BINDING_REQUEST, true).raw;
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut top_bits = good.clone();
        top_bits[0] |= 0x80;
        for bad in [
            &b""[..],
            &good[..19],
            &good[..good.len() - 1],
            &bad_crc,
            &trailing,
            &top_bits,
        ] {
            assert_eq!(respond(bad, source), Reply::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn replies_are_as_small_as_the_protocol_allows() {
        // (source, request has FINGERPRINT) -> request and reply sizes; docs/PROTOCOL.md §4.1
        // quotes these numbers.
        let v4: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        for (source, fingerprint, request_len, reply_len) in [
            (v4, false, 20, 32),
            (v6, false, 20, 44),
            (v4, true, 28, 40),
            (v6, true, 28, 52),
        ] {
            let req = request(BINDING_REQUEST, fingerprint);
            assert_eq!(req.raw.len(), request_len);
            let Reply::Answer(bytes) = respond(&req.raw, source) else {
                panic!("no answer");
            };
            assert_eq!(bytes.len(), reply_len, "{source} fingerprint={fingerprint}");
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn limits(per_source: u32, burst: u32, global: u32, max_sources: usize) -> StunLimits {
        StunLimits {
            per_source_per_second: per_source,
            per_source_burst: burst,
            global_per_second: global,
            max_sources,
        }
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::new(limits(20, 40, 0, 16));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!((0..100).filter(|_| l.admit(a, t0).is_ok()).count(), 40);
        assert_eq!(l.admit(a, t0), Err(Limit::PerSource));
        // Another source is not affected.
        assert_eq!(l.admit(b, t0), Ok(()));
        // Half a second later: 10 more, not 11.
        assert_eq!(
            (0..100).filter(|_| l.admit(a, at(t0, 500)).is_ok()).count(),
            10
        );
        // Over 10 s of a flood at 1,000 requests per second: 20 a second.
        let answered = (0..10_000)
            .filter(|i| l.admit(a, at(t0, 500 + i)).is_ok())
            .count();
        assert!((199..=201).contains(&answered), "{answered}");
        // A clock that goes backwards refills nothing.
        assert_eq!(l.admit(a, t0), Err(Limit::PerSource));
    }

    #[test]
    fn ipv6_sources_share_a_budget_per_64_and_mapped_ipv4_is_ipv4() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::new(limits(1, 2, 0, 16));
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:0:1:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!(l.admit(a, t0), Ok(()));
        assert_eq!(l.admit(same_64, t0), Ok(()));
        assert_eq!(l.admit(same_64, t0), Err(Limit::PerSource));
        assert_eq!(l.admit(other_64, t0), Ok(()));
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(l.admit(v4, t0), Ok(()));
        assert_eq!(l.admit(mapped, t0), Ok(()));
        assert_eq!(l.admit(v4, t0), Err(Limit::PerSource));
        assert_eq!(l.sources(), 3);
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_idle_sources() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::new(limits(10, 10, 0, 4));
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        for i in 0..4 {
            assert_eq!(l.admit(ip(i), t0), Ok(()));
        }
        // Full of active sources: a new one gets nothing, the known ones carry on.
        assert_eq!(l.admit(ip(9), at(t0, 10)), Err(Limit::PerSource));
        assert_eq!(l.admit(ip(0), at(t0, 10)), Ok(()));
        assert_eq!(l.sources(), 4);
        // Within the sweep interval (burst ÷ rate) nothing is swept, even if idle.
        assert_eq!(l.admit(ip(9), at(t0, 500)), Err(Limit::PerSource));
        // Once their buckets are full again (1 s at 10/s for 10), idle sources are dropped.
        assert_eq!(l.admit(ip(9), at(t0, 1_200)), Ok(()));
        assert_eq!(l.sources(), 1);
        // The bound holds however many sources come by.
        for i in 0..=255u8 {
            let _ = l.admit(IpAddr::from([10, 1, 0, i]), at(t0, 1_300));
            assert!(l.sources() <= 4);
        }
    }

    #[test]
    fn the_global_cap_holds_over_many_sources() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::new(limits(1_000, 1_000, 100, 100_000));
        // 1,000 sources asking once every 10 ms for 2 s: 100 at once, then 100 a second.
        let mut answered = 0;
        let mut limited_globally = 0;
        for step in 0..200u64 {
            for i in 0..1_000u32 {
                match l.admit(IpAddr::from(i.to_be_bytes()), at(t0, step * 10)) {
                    Ok(()) => answered += 1,
                    Err(Limit::Global) => limited_globally += 1,
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        assert!((298..=301).contains(&answered), "{answered}");
        assert_eq!(answered + limited_globally, 200_000);
        // A zero rate turns a limit off.
        let mut off = ReplyLimiter::new(limits(0, 0, 0, 0));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| off.admit(a, t0).is_ok()));
        assert_eq!(off.sources(), 0);
    }

    #[test]
    fn the_responder_limits_only_answers() {
        let t0 = Instant::now();
        let mut r = Responder::new(limits(1, 1, 0, 16));
        let source: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let req = request(BINDING_REQUEST, false).raw;
        assert!(matches!(r.handle(&req, source, t0), Reply::Answer(_)));
        assert_eq!(r.handle(&req, source, t0), Reply::Limited(Limit::PerSource));
        // Garbage and non-requests spend no budget and are classified as before.
        assert_eq!(r.handle(b"junk", source, t0), Reply::Malformed);
        let resp = request(BINDING_SUCCESS, false).raw;
        assert_eq!(r.handle(&resp, source, t0), Reply::Ignored);
        assert!(matches!(
            r.handle(&req, source, at(t0, 1_000)),
            Reply::Answer(_)
        ));
    }

    #[test]
    fn random_and_mutated_datagrams_never_panic() {
        let source: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let good = request(BINDING_REQUEST, true).raw;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..20_000 {
            let mut d = if rng.gen_bool(0.5) {
                good.clone()
            } else {
                // A valid header with a random body and length.
                let mut d = good[..20].to_vec();
                let body: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
                d.extend_from_slice(&body);
                d
            };
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..d.len());
                if i != 4 && i != 5 && i != 6 && i != 7 {
                    d[i] = rng.gen();
                }
            }
            d.truncate(rng.gen_range(0..=d.len()));
            let _ = respond(&d, source);
        }
    }
}
