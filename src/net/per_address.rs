//! Connections per remote address: one address (an IPv6 /64, which one
//! subscriber usually has whole) cannot take every slot of a listener.
//! A permit is a drop guard: however a session ends, its count goes down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct PerAddress {
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's share of its address's allowance.
pub struct AddressPermit {
    slots: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit: limit.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection from `ip`, unless it has the
    /// limit already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPermit> {
        let key = grouping(ip);
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressPermit {
            slots: Arc::clone(self),
            key,
        })
    }

    /// Connections from `ip` (its group) now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.counts
            .lock()
            .map(|counts| counts.get(&grouping(ip)).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.slots.counts.lock()
            && let Some(count) = counts.get_mut(&self.key)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The unit an allowance is counted in: an IPv4 address, or an IPv6 /64
/// (an IPv4-mapped IPv6 address counts as its IPv4 address).
fn grouping(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_and_it_comes_back_when_connections_end() {
        let slots = PerAddress::new(2);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let a = slots.try_acquire(ip).expect("first");
        let _b = slots.try_acquire(ip).expect("second");
        assert!(slots.try_acquire(ip).is_none(), "third refused");
        assert!(
            slots.try_acquire(other).is_some(),
            "another address is not affected"
        );
        drop(a);
        assert_eq!(slots.count(ip), 1);
        assert!(slots.try_acquire(ip).is_some(), "a slot came back");
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let slots = PerAddress::new(1);
        let _a = slots
            .try_acquire("2001:db8:1:2::1".parse().expect("ip"))
            .expect("first");
        assert!(
            slots
                .try_acquire("2001:db8:1:2:ffff::9".parse().expect("ip"))
                .is_none()
        );
        assert!(
            slots
                .try_acquire("2001:db8:1:3::1".parse().expect("ip"))
                .is_some()
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        let _m = slots.try_acquire(mapped).expect("mapped");
        assert!(
            slots
                .try_acquire("192.0.2.7".parse().expect("ip"))
                .is_none()
        );
    }
}
