//! Relay tickets: proof, issued by the signaling server, that a peer may join a match on the
//! relay.
//!
//! A ticket is HMAC-SHA256 over (match, peer, seat, player limit, issue time, expiry) with a
//! secret shared by the signaling server and the relay, so the relay checks it without calling
//! back. Neither side reads the clock here: the current time (Unix seconds) is passed in.
//!
//! A ticket is bound to a **seat**: the place its holder has in the match on the signaling
//! server (0-based, below the match's player limit, which the ticket carries too), or
//! [`SPECTATOR_SEAT`] (255) for a spectator, who watches the match and holds no seat. The relay
//! admits one member per seat and at most `max_players` members per match; of two tickets for
//! the same seat, the one issued later (`issued_at_ms`) wins, so a replayed or older ticket can
//! never evict a live member, while a reconnecting client with a fresher ticket can. See
//! `docs/PROTOCOL.md` (§2, tickets) for the relay's rules.
//!
//! # Encoding
//! The ticket travels as unpadded base64url (RFC 4648 §5) of these bytes:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | version, always [`TICKET_VERSION`] (2) |
//! | 1 | 8 | expiry, Unix seconds, big-endian `u64` |
//! | 9 | 8 | issue time, Unix milliseconds, big-endian `u64` (orders tickets of one seat) |
//! | 17 | 16 | peer ID (the UUID the signaling server assigned), network byte order |
//! | 33 | 1 | seat, `0..max_players`, or [`SPECTATOR_SEAT`] (255) for a spectator |
//! | 34 | 1 | `max_players`, the match's player limit, `1..=255` |
//! | 35 | 1 | `n`, length of the match key in bytes (1..=[`MAX_MATCH_KEY_LEN`]) |
//! | 36 | n | match key, UTF-8 |
//! | 36+n | 32 | HMAC-SHA256 (key: the shared secret) of bytes `0..36+n` |
//!
//! ```
//! use ricochet_protocol::{PeerId, Ticket, TicketClaims};
//! let secret = b"a shared secret of at least 16 bytes";
//! let claims = TicketClaims {
//!     match_key: "friday-night".into(),
//!     peer: PeerId(uuid::Uuid::from_u128(7)),
//!     seat: 1,
//!     max_players: 2,
//!     issued_at_ms: 1_000_000_000,
//!     expires_at: 1_000_060,
//! };
//! let ticket = Ticket::issue(secret, &claims).unwrap();
//! assert_eq!(ticket.verify(secret, 1_000_000).unwrap(), claims);
//! assert!(ticket.verify(secret, 1_000_061).is_err()); // expired
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::PeerId;

/// The only ticket layout this version understands (version 1 had no seat and is refused).
pub const TICKET_VERSION: u8 = 2;
/// Longest match key a ticket can carry, in bytes.
pub const MAX_MATCH_KEY_LEN: usize = 255;
/// The seat of a spectator's ticket: it watches the match (the relay sends it the match's
/// stream, [`crate::relay::Opcode::STREAM`]) and holds no player seat. No player seat is ever
/// 255 (the player limit is at most 255, seats are below it).
pub const SPECTATOR_SEAT: u8 = 0xFF;
/// Shortest secret accepted for signing or verifying, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 1 + 8 + 8 + 16 + 1 + 1 + 1;
/// Longest encoded ticket, in characters; anything longer is rejected before decoding.
pub const MAX_TICKET_CHARS: usize = (HEADER_LEN + MAX_MATCH_KEY_LEN + MAC_LEN).div_ceil(3) * 4;

type HmacSha256 = Hmac<Sha256>;

/// What a ticket says: who may join which match on the relay, until when.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TicketClaims {
    /// The key the relay groups members by: the signaling server's match ID for that match.
    pub match_key: String,
    /// The peer ID the signaling server assigned to the holder.
    pub peer: PeerId,
    /// The holder's seat in the match, `0..max_players`: the relay admits one member per seat.
    /// [`SPECTATOR_SEAT`] for a spectator ([`TicketClaims::is_spectator`]).
    pub seat: u8,
    /// The match's player limit: the relay admits at most this many members to the match.
    pub max_players: u8,
    /// When the ticket was issued, Unix milliseconds. Of two tickets for one seat, the later
    /// one may replace a live member holding the earlier one; never the other way round.
    pub issued_at_ms: u64,
    /// Unix time in seconds after which the ticket is no longer accepted, and after which a
    /// relay membership admitted with it ends unless renewed with a later ticket.
    pub expires_at: u64,
}

impl TicketClaims {
    /// Whether the ticket admits a spectator ([`SPECTATOR_SEAT`]) rather than a player.
    pub fn is_spectator(&self) -> bool {
        self.seat == SPECTATOR_SEAT
    }
}

/// A signed, encoded relay ticket (unpadded base64url text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Ticket(String);

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The shared secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("ticket secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// The match key is empty or longer than [`MAX_MATCH_KEY_LEN`] bytes.
    #[error("match key must be 1..={MAX_MATCH_KEY_LEN} bytes, got {0}")]
    BadMatchKey(usize),
    /// The seat is not below the player limit, or the limit is 0.
    #[error("seat {seat} is not in 0..{max_players}")]
    BadSeat {
        /// The seat asked for.
        seat: u8,
        /// The player limit.
        max_players: u8,
    },
    /// The text is not base64url, is cut short, or its fields do not fit together.
    #[error("malformed ticket: {0}")]
    Malformed(&'static str),
    /// The ticket was made by a later (or unknown) version of the protocol.
    #[error("unsupported ticket version {0}")]
    UnsupportedVersion(u8),
    /// The signature does not match: the ticket was altered or signed with another secret.
    #[error("ticket signature does not verify")]
    BadSignature,
    /// The ticket was valid until `expires_at` (Unix seconds), which is before `now`.
    #[error("ticket expired at {expires_at}, now is {now}")]
    Expired {
        /// Expiry written in the ticket, Unix seconds.
        expires_at: u64,
        /// The time it was checked at, Unix seconds.
        now: u64,
    },
}

fn mac(secret: &[u8]) -> Result<HmacSha256, TicketError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TicketError::WeakSecret);
    }
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(secret).map_err(|_| TicketError::WeakSecret)
}

impl Ticket {
    /// Signs `claims` with `secret`.
    pub fn issue(secret: &[u8], claims: &TicketClaims) -> Result<Ticket, TicketError> {
        let key = claims.match_key.as_bytes();
        if key.is_empty() || key.len() > MAX_MATCH_KEY_LEN {
            return Err(TicketError::BadMatchKey(key.len()));
        }
        if (claims.seat >= claims.max_players && !claims.is_spectator()) || claims.max_players == 0
        {
            return Err(TicketError::BadSeat {
                seat: claims.seat,
                max_players: claims.max_players,
            });
        }
        let mut bytes = Vec::with_capacity(HEADER_LEN + key.len() + MAC_LEN);
        bytes.push(TICKET_VERSION);
        bytes.extend_from_slice(&claims.expires_at.to_be_bytes());
        bytes.extend_from_slice(&claims.issued_at_ms.to_be_bytes());
        bytes.extend_from_slice(claims.peer.0.as_bytes());
        bytes.push(claims.seat);
        bytes.push(claims.max_players);
        bytes.push(key.len() as u8);
        bytes.extend_from_slice(key);
        let mut mac = mac(secret)?;
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        Ok(Ticket(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps ticket text received from the wire; nothing is checked until [`Ticket::verify`].
    pub fn from_text(text: impl Into<String>) -> Ticket {
        Ticket(text.into())
    }

    /// The encoded text, as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the signature with `secret` and the expiry against `now` (Unix seconds), and
    /// returns the claims. The check of the signature is constant-time.
    pub fn verify(&self, secret: &[u8], now: u64) -> Result<TicketClaims, TicketError> {
        let claims = self.verify_signature(secret)?;
        if now > claims.expires_at {
            return Err(TicketError::Expired {
                expires_at: claims.expires_at,
                now,
            });
        }
        Ok(claims)
    }

    /// Checks the signature only and returns the claims, whatever their expiry.
    pub fn verify_signature(&self, secret: &[u8]) -> Result<TicketClaims, TicketError> {
        let mut mac = mac(secret)?;
        if self.0.len() > MAX_TICKET_CHARS {
            return Err(TicketError::Malformed("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| TicketError::Malformed("not base64url"))?;
        if bytes.len() < HEADER_LEN + 1 + MAC_LEN {
            return Err(TicketError::Malformed("too short"));
        }
        if bytes[0] != TICKET_VERSION {
            return Err(TicketError::UnsupportedVersion(bytes[0]));
        }
        let key_len = bytes[HEADER_LEN - 1] as usize;
        if key_len == 0 || bytes.len() != HEADER_LEN + key_len + MAC_LEN {
            return Err(TicketError::Malformed(
                "length does not match match key length",
            ));
        }
        let (signed, tag) = bytes.split_at(HEADER_LEN + key_len);
        mac.update(signed);
        mac.verify_slice(tag)
            .map_err(|_| TicketError::BadSignature)?;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&signed[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut peer = [0u8; 16];
        peer.copy_from_slice(&signed[17..33]);
        let (seat, max_players) = (signed[33], signed[34]);
        if (seat >= max_players && seat != SPECTATOR_SEAT) || max_players == 0 {
            return Err(TicketError::Malformed("seat is not below the player limit"));
        }
        let match_key = std::str::from_utf8(&signed[HEADER_LEN..])
            .map_err(|_| TicketError::Malformed("match key is not UTF-8"))?
            .to_owned();
        Ok(TicketClaims {
            match_key,
            peer: PeerId(uuid::Uuid::from_bytes(peer)),
            seat,
            max_players,
            issued_at_ms: u64_at(9),
            expires_at: u64_at(1),
        })
    }
}

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Domain separation of rejoin tokens from tickets (same secret, different messages).
const REJOIN_DOMAIN: &[u8] = b"ricochet-rejoin-v1";
/// Bytes of a rejoin token before encoding: match ID, peer ID, 16 bytes of MAC.
const REJOIN_LEN: usize = 16 + 16 + 16;

/// Issues the rejoin token of `peer` in match `match_id` (the 16 bytes of its
/// [`crate::signaling::MatchId`]): unpadded base64url of the match ID, the peer ID and the
/// first 16 bytes of HMAC-SHA256(secret, `"ricochet-rejoin-v1"` ‖ match ID ‖ peer ID). The
/// signaling server hands it out in its welcome; a client whose connection dropped presents it
/// (`?rejoin=`) to take its membership back within the server's grace period. It proves only
/// who the member is: the server accepts it while that membership exists.
pub fn issue_rejoin(
    secret: &[u8],
    match_id: &[u8; 16],
    peer: PeerId,
) -> Result<String, TicketError> {
    let mut mac = mac(secret)?;
    mac.update(REJOIN_DOMAIN);
    mac.update(match_id);
    mac.update(peer.0.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut bytes = Vec::with_capacity(REJOIN_LEN);
    bytes.extend_from_slice(match_id);
    bytes.extend_from_slice(peer.0.as_bytes());
    bytes.extend_from_slice(&tag[..16]);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks a rejoin token made by [`issue_rejoin`] with `secret`; returns the match ID bytes
/// and the peer it names.
pub fn verify_rejoin(secret: &[u8], token: &str) -> Result<([u8; 16], PeerId), TicketError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| TicketError::Malformed("not base64url"))?;
    if bytes.len() != REJOIN_LEN {
        return Err(TicketError::Malformed("a rejoin token is 48 bytes"));
    }
    let (ids, tag) = bytes.split_at(32);
    let mut mac = mac(secret)?;
    mac.update(REJOIN_DOMAIN);
    mac.update(ids);
    // Constant-time comparison of the truncated tag.
    mac.verify_truncated_left(tag)
        .map_err(|_| TicketError::BadSignature)?;
    let mut match_id = [0u8; 16];
    match_id.copy_from_slice(&ids[..16]);
    let peer =
        PeerId(uuid::Uuid::from_slice(&ids[16..]).map_err(|_| TicketError::Malformed("peer ID"))?);
    Ok((match_id, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejoin_tokens_verify_and_refuse_tampering() {
        let peer = PeerId(uuid::Uuid::from_u128(7));
        let token = issue_rejoin(SECRET, &[3; 16], peer).unwrap();
        assert_eq!(verify_rejoin(SECRET, &token).unwrap(), ([3; 16], peer));
        assert_eq!(
            verify_rejoin(b"another-secret-of-enough-length-0123", &token),
            Err(TicketError::BadSignature)
        );
        // Another peer's ID with this MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[20] ^= 1;
        assert_eq!(
            verify_rejoin(SECRET, &URL_SAFE_NO_PAD.encode(&bytes)),
            Err(TicketError::BadSignature)
        );
        for bad in ["", "!!", &token[..20]] {
            assert!(
                matches!(verify_rejoin(SECRET, bad), Err(TicketError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            issue_rejoin(b"short", &[0; 16], peer),
            Err(TicketError::WeakSecret)
        );
    }

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    fn claims() -> TicketClaims {
        TicketClaims {
            match_key: "m-1".into(),
            peer: PeerId(uuid::Uuid::from_u128(0xfeed)),
            seat: 3,
            max_players: 4,
            issued_at_ms: 40_000,
            expires_at: 100,
        }
    }

    #[test]
    fn round_trip() {
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        assert_eq!(t.verify(SECRET, 100).unwrap(), claims());
        assert_eq!(
            Ticket::from_text(t.as_str()).verify(SECRET, 0).unwrap(),
            claims()
        );
    }

    #[test]
    fn expired() {
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        assert_eq!(
            t.verify(SECRET, 101),
            Err(TicketError::Expired {
                expires_at: 100,
                now: 101
            })
        );
        assert!(t.verify_signature(SECRET).is_ok());
    }

    #[test]
    fn wrong_secret_and_tampering() {
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        assert_eq!(
            t.verify(b"another secret, 16+ bytes", 0),
            Err(TicketError::BadSignature)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(t.as_str()).unwrap();
        // Move the expiry far into the future.
        bytes[1] = 0xff;
        let forged = Ticket::from_text(URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(forged.verify(SECRET, 0), Err(TicketError::BadSignature));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for text in ["", "!!!!", "AAAA", &"A".repeat(MAX_TICKET_CHARS + 4)] {
            assert!(
                Ticket::from_text(text).verify(SECRET, 0).is_err(),
                "{text:?}"
            );
        }
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(t.as_str()).unwrap();
        bytes.pop();
        assert!(matches!(
            Ticket::from_text(URL_SAFE_NO_PAD.encode(&bytes)).verify(SECRET, 0),
            Err(TicketError::Malformed(_))
        ));
        bytes[0] = 9;
        assert_eq!(
            Ticket::from_text(URL_SAFE_NO_PAD.encode(&bytes)).verify(SECRET, 0),
            Err(TicketError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn rejects_weak_secret_and_bad_keys() {
        assert_eq!(
            Ticket::issue(b"short", &claims()),
            Err(TicketError::WeakSecret)
        );
        let mut c = claims();
        c.match_key = String::new();
        assert_eq!(Ticket::issue(SECRET, &c), Err(TicketError::BadMatchKey(0)));
        c.match_key = "x".repeat(256);
        assert_eq!(
            Ticket::issue(SECRET, &c),
            Err(TicketError::BadMatchKey(256))
        );
        c.match_key = "x".repeat(255);
        assert!(Ticket::issue(SECRET, &c).unwrap().verify(SECRET, 0).is_ok());
        c.seat = 4;
        assert_eq!(
            Ticket::issue(SECRET, &c),
            Err(TicketError::BadSeat {
                seat: 4,
                max_players: 4
            })
        );
    }

    #[test]
    fn a_signed_seat_beyond_the_limit_is_malformed() {
        // Signed with the right secret but inconsistent: never trusted.
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(t.as_str()).unwrap();
        bytes[33] = 9;
        let n = bytes.len() - MAC_LEN;
        let mut mac = mac(SECRET).unwrap();
        mac.update(&bytes[..n]);
        let tag = mac.finalize().into_bytes();
        bytes[n..].copy_from_slice(&tag);
        assert!(matches!(
            Ticket::from_text(URL_SAFE_NO_PAD.encode(&bytes)).verify(SECRET, 0),
            Err(TicketError::Malformed(_))
        ));
    }

    #[test]
    fn a_spectator_ticket_holds_no_seat() {
        let secret = b"0123456789abcdef0123";
        let mut c = claims();
        c.seat = SPECTATOR_SEAT;
        let t = Ticket::issue(secret, &c).unwrap();
        let back = t.verify(secret, c.expires_at).unwrap();
        assert!(back.is_spectator());
        assert_eq!(back, c);
        c.max_players = 0;
        assert!(Ticket::issue(secret, &c).is_err());
    }

    #[test]
    fn version_1_tickets_are_refused() {
        let t = Ticket::issue(SECRET, &claims()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(t.as_str()).unwrap();
        bytes[0] = 1;
        assert_eq!(
            Ticket::from_text(URL_SAFE_NO_PAD.encode(&bytes)).verify(SECRET, 0),
            Err(TicketError::UnsupportedVersion(1))
        );
    }
}
