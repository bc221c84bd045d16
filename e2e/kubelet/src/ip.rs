//! Pod IP allocation from a loopback range.
//!
//! On Linux the whole of 127.0.0.0/8 is routed to `lo`, so a process can
//! bind 127.1.0.5:9090 without any setup. Every pod gets its own address
//! from the configured range (default 127.1.0.0/16), which is what lets two
//! pods listen on the same port, as they would in a cluster.
//!
//! Addresses are handed out round-robin (the next free one after the last
//! handed out), so a released address is not reused at once while probes or
//! clients of the old pod may still be connecting to it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::{Error, Result};

/// Allocates loopback addresses to pods (keyed by pod UID).
#[derive(Debug, Clone)]
pub struct IpAllocator {
    first: u32,
    count: u32,
    cursor: u32,
    owners: BTreeMap<String, Ipv4Addr>,
    used: BTreeMap<Ipv4Addr, String>,
}

impl IpAllocator {
    /// An allocator over `cidr`, which must lie inside 127.0.0.0/8. The
    /// network and broadcast addresses of the range are never handed out.
    pub fn new(cidr: &str) -> Result<Self> {
        let (addr, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| Error::Config(format!("pod CIDR {cidr:?} is not ADDRESS/PREFIX")))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| Error::Config(format!("pod CIDR {cidr:?}: {e}")))?;
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| Error::Config(format!("pod CIDR {cidr:?}: prefix must be 8..=30")))?;
        if addr.octets()[0] != 127 {
            return Err(Error::Config(format!(
                "pod CIDR {cidr:?} is not inside 127.0.0.0/8 (only loopback addresses work without setup)"
            )));
        }
        let mask = u32::MAX << (32 - prefix);
        let network = u32::from(addr) & mask;
        let size = 1u32 << (32 - prefix);
        Ok(Self {
            first: network + 1,
            count: size - 2,
            cursor: 0,
            owners: BTreeMap::new(),
            used: BTreeMap::new(),
        })
    }

    /// The address of `owner`, allocating one if it has none yet. `None`
    /// when the range is exhausted.
    pub fn allocate(&mut self, owner: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.owners.get(owner) {
            return Some(*ip);
        }
        for step in 0..self.count {
            let offset = (self.cursor + step) % self.count;
            let ip = Ipv4Addr::from(self.first + offset);
            if !self.used.contains_key(&ip) {
                self.cursor = (offset + 1) % self.count;
                self.bind(owner, ip);
                return Some(ip);
            }
        }
        None
    }

    /// Gives `owner` a specific address (a pod that already reports one, seen
    /// again after a restart of the kubelet). False when the address is out
    /// of range or taken by someone else.
    pub fn claim(&mut self, owner: &str, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        match self.used.get(&ip) {
            Some(current) => current == owner,
            None => {
                self.release(owner);
                self.bind(owner, ip);
                true
            }
        }
    }

    /// Frees the address of `owner`, if any.
    pub fn release(&mut self, owner: &str) {
        if let Some(ip) = self.owners.remove(owner) {
            self.used.remove(&ip);
        }
    }

    /// The address `owner` holds.
    pub fn get(&self, owner: &str) -> Option<Ipv4Addr> {
        self.owners.get(owner).copied()
    }

    /// How many addresses are handed out.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n >= self.first && n < self.first + self.count
    }

    fn bind(&mut self, owner: &str, ip: Ipv4Addr) {
        self.owners.insert(owner.to_string(), ip);
        self.used.insert(ip, owner.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_distinct_addresses_skipping_the_network_address() {
        let mut a = IpAllocator::new("127.1.0.0/16").unwrap();
        assert_eq!(a.allocate("p1"), Some(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(a.allocate("p2"), Some(Ipv4Addr::new(127, 1, 0, 2)));
        assert_eq!(
            a.allocate("p1"),
            Some(Ipv4Addr::new(127, 1, 0, 1)),
            "stable per owner"
        );
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn released_addresses_are_reused_only_after_the_rest() {
        let mut a = IpAllocator::new("127.9.9.0/30").unwrap(); // two usable
        let one = a.allocate("a").unwrap();
        let two = a.allocate("b").unwrap();
        assert_ne!(one, two);
        assert_eq!(a.allocate("c"), None, "exhausted");
        a.release("a");
        assert_eq!(a.allocate("c"), Some(one));
        assert_eq!(a.get("a"), None);
    }

    #[test]
    fn round_robin_does_not_reuse_a_just_released_address() {
        let mut a = IpAllocator::new("127.1.0.0/24").unwrap();
        let first = a.allocate("a").unwrap();
        a.release("a");
        let next = a.allocate("b").unwrap();
        assert_ne!(first, next);
    }

    #[test]
    fn claim_adopts_free_in_range_addresses_only() {
        let mut a = IpAllocator::new("127.1.0.0/16").unwrap();
        assert!(a.claim("a", Ipv4Addr::new(127, 1, 3, 4)));
        assert!(a.claim("a", Ipv4Addr::new(127, 1, 3, 4)), "idempotent");
        assert!(!a.claim("b", Ipv4Addr::new(127, 1, 3, 4)), "taken");
        assert!(!a.claim("b", Ipv4Addr::new(127, 2, 0, 1)), "out of range");
        assert!(
            !a.claim("b", Ipv4Addr::new(127, 1, 0, 0)),
            "network address"
        );
        assert_eq!(a.get("a"), Some(Ipv4Addr::new(127, 1, 3, 4)));
    }

    #[test]
    fn rejects_ranges_outside_loopback_and_bad_prefixes() {
        assert!(IpAllocator::new("10.0.0.0/16").is_err());
        assert!(IpAllocator::new("127.1.0.0/31").is_err());
        assert!(IpAllocator::new("127.1.0.0").is_err());
        assert!(IpAllocator::new("127.1.0.300/16").is_err());
    }
}
