//! A STUN Binding responder (RFC 8489 §3, the part NAT traversal needs): a peer sends a Binding
//! request to the server's UDP port and gets back, in `XOR-MAPPED-ADDRESS`, the address the
//! request came from as the server saw it, which is the peer's server-reflexive ICE candidate.
//!
//! With it, `ricochet-signaling --stun-addr HOST:PORT` and `ricochet-relay` are all an operator
//! runs for NAT traversal with relay fallback. Encoding and decoding are the `rtc-stun` crate's
//! (the webrtc-rs family the peers' ICE agent also uses).
//!
//! [`respond`] is the whole protocol, without I/O; [`serve`] is the UDP driver around it. Every
//! datagram is either answered (a Binding request), ignored (well-formed STUN that is not a
//! Binding request: responses, indications, other methods) or counted as malformed; nothing a
//! datagram contains can stop the responder.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use std::time::Duration;

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

/// What [`respond`] makes of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A Binding request: send these bytes (a Binding success response) back to the source.
    Answer(Vec<u8>),
    /// Well-formed STUN that is not a Binding request; nothing to send.
    Ignored,
    /// Not STUN, or STUN that does not decode (bad lengths, bad `FINGERPRINT`); nothing to send.
    Malformed,
}

/// Answers one datagram received from `source`: a Binding request gets a Binding success
/// response with the request's transaction ID, `XOR-MAPPED-ADDRESS` = `source` (IPv4-mapped IPv6
/// sources are reported as IPv4) and a `FINGERPRINT`.
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
    if request.contains(ATTR_FINGERPRINT) && FINGERPRINT.check(&request).is_err() {
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
    let setters: [Box<dyn Setter>; 4] = [
        Box::new(request.transaction_id),
        Box::new(BINDING_SUCCESS),
        Box::new(mapped),
        Box::new(FINGERPRINT),
    ];
    match response.build(&setters) {
        Ok(()) => Reply::Answer(response.raw),
        // Encoding an address we were handed cannot fail; if the crate ever says otherwise,
        // the request still gets no answer rather than a broken one.
        Err(_) => Reply::Malformed,
    }
}

#[derive(Debug, Default)]
struct Counters {
    answered: Counter,
    ignored: Counter,
    malformed: Counter,
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

    fn count(&self, reply: &Reply) {
        let counter = match reply {
            Reply::Answer(_) => &self.0.answered,
            Reply::Ignored => &self.0.ignored,
            Reply::Malformed => &self.0.malformed,
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
    }
}

/// Answers STUN Binding requests on `socket` until `shutdown` completes, counting into `stats`.
/// Receive and send errors are logged and survived (UDP has no connection to lose); the only
/// error returned is one reading the socket's own address at start.
pub async fn serve(
    socket: UdpSocket,
    stats: StunStats,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let addr = socket.local_addr()?;
    tracing::info!(%addr, "STUN responder listening");
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
        let reply = respond(&buf[..len], source);
        stats.count(&reply);
        match reply {
            Reply::Answer(bytes) => {
                if let Err(e) = socket.send_to(&bytes, source).await {
                    tracing::debug!(%source, error = %e, "STUN answer not sent");
                }
            }
            Reply::Ignored => {
                tracing::trace!(%source, "STUN message ignored (not a Binding request)")
            }
            Reply::Malformed => tracing::debug!(%source, len, "malformed STUN datagram dropped"),
        }
    }
    tracing::info!(
        answered = stats.answered(),
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
            FINGERPRINT.check(&resp).unwrap();
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
