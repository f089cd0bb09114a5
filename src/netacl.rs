//! Allowed networks (`receiver.allowed_networks`, `poll.register.allowed_networks`):
//! CIDR blocks (the `ipnet` crate's type, the only one in the crate) checked
//! against each peer address right after `accept()`. Pure: no IO.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Parses one CIDR block (`"10.0.0.0/8"`, `"::1/128"`) or a bare address
/// (a single host). Host bits are ignored, as Go's `net.ParseCIDR` does.
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    match s.parse::<IpNet>() {
        Ok(n) => Ok(n.trunc()),
        Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!("expected a network such as \"10.0.0.0/8\" or \"::1/128\", found {s:?}")
        }),
    }
}

/// Whether `peer` is in `net`; IPv4-mapped IPv6 addresses count as IPv4.
pub fn contains(net: &IpNet, peer: IpAddr) -> bool {
    net.contains(&peer.to_canonical())
}

/// A non-empty list of networks a peer must belong to.
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses CIDR blocks (`"10.0.0.0/8"`, `"::1/128"`) or bare addresses
    /// (taken as a single host). Fails on the first invalid entry, naming
    /// it, and on an empty list (which would refuse every peer: leave the
    /// key out to allow any peer instead).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        if entries.is_empty() {
            return Err(
                "an empty list would refuse every peer; leave the key out to allow any peer"
                    .to_owned(),
            );
        }
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_network(e.as_ref()).map_err(|e| format!("element {i}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(AllowedNetworks(nets))
    }

    /// Whether `peer` is in one of the networks. IPv4-mapped IPv6
    /// addresses (`::ffff:10.1.2.3`, as seen on a dual-stack `[::]`
    /// listener) are matched as the IPv4 address they carry.
    pub fn allows(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|n| contains(n, peer))
    }

    /// The networks, as written in canonical form.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

impl fmt::Debug for AllowedNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl fmt::Display for AllowedNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(nets: &[&str], peer: &str, allowed: bool) {
        let acl = AllowedNetworks::parse(nets).unwrap();
        assert_eq!(
            acl.allows(peer.parse().unwrap()),
            allowed,
            "{nets:?} {peer}"
        );
    }

    #[test]
    fn matches_v4_v6_and_mapped_addresses() {
        check(&["127.0.0.0/8"], "127.0.0.1", true);
        check(&["127.0.0.0/8"], "10.0.0.1", false);
        check(&["10.0.0.0/8", "::1/128"], "::1", true);
        check(&["10.0.0.0/8"], "::ffff:10.2.3.4", true);
        check(&["10.0.0.0/8"], "::ffff:127.0.0.1", false);
        check(&["192.168.1.7"], "192.168.1.7", true);
        check(&["192.168.1.7"], "192.168.1.8", false);
        // Host bits are ignored, as Go's net.ParseCIDR does.
        check(&["10.1.2.3/8"], "10.200.0.1", true);
    }

    #[test]
    fn refuses_empty_and_invalid() {
        assert!(AllowedNetworks::parse::<&str>(&[])
            .unwrap_err()
            .contains("empty list"));
        let e = AllowedNetworks::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(e.contains("element 1") && e.contains("10.0.0.0/33"), "{e}");
        assert!(AllowedNetworks::parse(&["localhost"]).is_err());
    }
}
