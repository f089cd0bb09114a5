//! Allowed networks for the TCP push receivers (`[receiver]
//! allowed_networks`): a list of CIDR blocks checked against each peer
//! address right after `accept()`. Pure: no IO.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

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
        let mut nets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref().trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(a) => IpNet::from(a),
                    Err(_) => {
                        return Err(format!(
                            "element {i}: expected a network such as \"10.0.0.0/8\" or \"::1/128\", found {e:?}"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(AllowedNetworks(nets))
    }

    /// Whether `peer` is in one of the networks. IPv4-mapped IPv6
    /// addresses (`::ffff:10.1.2.3`, as seen on a dual-stack `[::]`
    /// listener) are matched as the IPv4 address they carry.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|n| n.contains(&peer))
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
