//! Open connections counted in total and per client address, under caps: the bookkeeping
//! behind the front door's TCP caps and both servers' WebSocket caps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::address::ip_prefix;

/// Caps on open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCaps {
    /// Most open connections in total.
    pub total: usize,
    /// Most open connections from one address ([`ip_prefix`]: an IPv4 address or an IPv6 /64).
    pub per_address: usize,
}

/// Which cap a connection was over. The per-address cap is checked first, so a client over
/// both is told about its own share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The address already has [`SlotCaps::per_address`] connections open.
    PerAddress,
    /// The server already has [`SlotCaps::total`] connections open.
    Total,
}

/// Open connections per address and in total, as pure bookkeeping: no lock, no clock. Every
/// address is counted under its [`ip_prefix`]; an address whose count drops to zero is
/// forgotten, so memory follows the addresses connected now.
///
/// Used as is where the caller already holds a lock (the signaling registry), and inside
/// [`ConnectionSlots`] elsewhere.
///
/// ```
/// use std::net::IpAddr;
/// use ricochet_server_kit::{AddressCounts, SlotCaps, SlotRefusal};
///
/// let caps = SlotCaps { total: 3, per_address: 2 };
/// let a: IpAddr = "192.0.2.1".parse().unwrap();
/// let mut counts = AddressCounts::default();
/// counts.try_add(a, caps).unwrap();
/// counts.try_add(a, caps).unwrap();
/// assert_eq!(counts.try_add(a, caps), Err(SlotRefusal::PerAddress));
/// counts.remove(a);
/// assert_eq!((counts.total(), counts.of(a)), (1, 1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct AddressCounts {
    per_address: HashMap<IpAddr, usize>,
    total: usize,
}

impl AddressCounts {
    /// Open connections in total.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Open connections from `ip`'s address ([`ip_prefix`]).
    pub fn of(&self, ip: IpAddr) -> usize {
        self.per_address.get(&ip_prefix(ip)).copied().unwrap_or(0)
    }

    /// Addresses with at least one open connection.
    pub fn addresses(&self) -> usize {
        self.per_address.len()
    }

    /// Whether one more connection from `ip` fits under `caps` (nothing is counted).
    pub fn check(&self, ip: IpAddr, caps: SlotCaps) -> Result<(), SlotRefusal> {
        if self.of(ip) >= caps.per_address {
            return Err(SlotRefusal::PerAddress);
        }
        if self.total >= caps.total {
            return Err(SlotRefusal::Total);
        }
        Ok(())
    }

    /// Counts one more connection from `ip`, whatever the caps (after a [`check`](Self::check)).
    pub fn add(&mut self, ip: IpAddr) {
        *self.per_address.entry(ip_prefix(ip)).or_insert(0) += 1;
        self.total += 1;
    }

    /// [`check`](Self::check), then [`add`](Self::add).
    pub fn try_add(&mut self, ip: IpAddr, caps: SlotCaps) -> Result<(), SlotRefusal> {
        self.check(ip, caps)?;
        self.add(ip);
        Ok(())
    }

    /// Counts one connection from `ip` less (nothing happens if none was counted).
    pub fn remove(&mut self, ip: IpAddr) {
        let key = ip_prefix(ip);
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
            self.total -= 1;
        }
    }
}

/// [`AddressCounts`] shared between tasks, handing out a [`ConnectionSlot`] per connection
/// that gives its place back when dropped. Clones share the counts.
///
/// ```
/// use std::net::IpAddr;
/// use ricochet_server_kit::{ConnectionSlots, SlotCaps, SlotRefusal};
///
/// let slots = ConnectionSlots::new(SlotCaps { total: 1, per_address: 1 });
/// let a: IpAddr = "192.0.2.1".parse().unwrap();
/// let b: IpAddr = "192.0.2.2".parse().unwrap();
/// let held = slots.try_take(a).unwrap();
/// assert_eq!(slots.try_take(b).unwrap_err(), SlotRefusal::Total);
/// drop(held);
/// assert!(slots.try_take(b).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    counts: Arc<Mutex<AddressCounts>>,
    caps: SlotCaps,
}

impl ConnectionSlots {
    /// Nothing counted yet, under `caps`.
    pub fn new(caps: SlotCaps) -> Self {
        ConnectionSlots {
            counts: Arc::default(),
            caps,
        }
    }

    /// The caps in force.
    pub fn caps(&self) -> SlotCaps {
        self.caps
    }

    fn counts(&self) -> MutexGuard<'_, AddressCounts> {
        // The counts stay consistent even if a holder panicked: every change is one call.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more connection from `ip`, or which cap it is over. Both counts change
    /// under one lock, so the caps hold exactly.
    pub fn try_take(&self, ip: IpAddr) -> Result<ConnectionSlot, SlotRefusal> {
        self.counts().try_add(ip, self.caps)?;
        Ok(ConnectionSlot {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Open connections in total.
    pub fn total(&self) -> usize {
        self.counts().total()
    }

    /// Open connections from `ip`'s address ([`ip_prefix`]).
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.counts().of(ip)
    }

    /// Addresses with at least one open connection.
    pub fn addresses(&self) -> usize {
        self.counts().addresses()
    }
}

/// One connection's place under a [`ConnectionSlots`]' caps, given back when dropped: keep it
/// as long as the connection is open.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<Mutex<AddressCounts>>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// The client address it was taken for.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_address_and_in_total() {
        let slots = ConnectionSlots::new(SlotCaps {
            total: 3,
            per_address: 2,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.try_take(a).unwrap();
        let a2 = slots.try_take(a).unwrap();
        assert_eq!(slots.try_take(a).unwrap_err(), SlotRefusal::PerAddress);
        let b1 = slots.try_take(b).unwrap();
        assert_eq!(slots.try_take(b).unwrap_err(), SlotRefusal::Total);
        assert_eq!(
            (slots.total(), slots.from_ip(a), slots.from_ip(b)),
            (3, 2, 1)
        );
        drop(a1);
        let b2 = slots.try_take(b).unwrap();
        drop((a2, b1, b2));
        assert_eq!((slots.total(), slots.addresses()), (0, 0));
        // IPv6 addresses count per /64.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        let tight = ConnectionSlots::new(SlotCaps {
            total: 3,
            per_address: 1,
        });
        let _x = tight.try_take(v6a).unwrap();
        assert_eq!(tight.try_take(v6b).unwrap_err(), SlotRefusal::PerAddress);
    }

    #[test]
    fn the_per_address_cap_is_checked_first_and_removal_is_safe() {
        let caps = SlotCaps {
            total: 1,
            per_address: 1,
        };
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let mut counts = AddressCounts::default();
        counts.try_add(a, caps).unwrap();
        // Over both caps: the address is told about its own share.
        assert_eq!(counts.check(a, caps), Err(SlotRefusal::PerAddress));
        counts.remove(a);
        counts.remove(a);
        assert_eq!((counts.total(), counts.addresses()), (0, 0));
        // A mapped IPv4 address is the same address.
        counts.add("::ffff:198.51.100.7".parse().unwrap());
        assert_eq!(counts.of(a), 1);
    }
}
