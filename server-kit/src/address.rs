//! The unit per-address limits count in.

use std::net::{IpAddr, Ipv6Addr};

/// The key under which per-address limits count a client: its IPv4 address (also when it
/// arrives as an IPv4-mapped IPv6 address, `::ffff:a.b.c.d`), or the /64 prefix of its IPv6
/// address (one subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would give one client 2^64 separate allowances).
///
/// ```
/// use std::net::IpAddr;
/// use ricochet_server_kit::ip_prefix;
///
/// let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
/// assert_eq!(ip_prefix(a), ip_prefix(b));
/// let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
/// assert_eq!(ip_prefix(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
/// ```
pub fn ip_prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_is_kept_and_v6_is_cut_to_64_bits() {
        let v4: IpAddr = "198.51.100.3".parse().unwrap();
        assert_eq!(ip_prefix(v4), v4);
        let v6: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().unwrap();
        assert_eq!(ip_prefix(v6), "2001:db8:aa:bb::".parse::<IpAddr>().unwrap());
        let other: IpAddr = "2001:db8:aa:bc:1:2:3:4".parse().unwrap();
        assert_ne!(ip_prefix(v6), ip_prefix(other));
        let loopback: IpAddr = "::1".parse().unwrap();
        assert_eq!(ip_prefix(loopback), "::".parse::<IpAddr>().unwrap());
    }
}
