//! The (address × port) index space of a scan.
//!
//! Index `i` maps to address `i % addresses` and port `i / addresses`, so neighbouring
//! indices hit different hosts; exclusions are already subtracted from the address sets,
//! so every index in `0..size()` is an allowed probe.

use crate::error::SpecError;
use crate::intervals::IntervalSet;
use crate::permute::Permutation;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpace {
    v4: IntervalSet<u32>,
    v6: IntervalSet<u128>,
    ports: Vec<u16>,
    v4_count: u64,
    addresses: u64,
    size: u64,
}

impl TargetSpace {
    /// Builds a space; fails if it is empty or its size does not fit in 64 bits.
    pub fn new(
        v4: IntervalSet<u32>,
        v6: IntervalSet<u128>,
        ports: Vec<u16>,
    ) -> Result<Self, SpecError> {
        if ports.is_empty() {
            return Err(SpecError::NoPorts);
        }
        let v4_count = v4.count() as u64; // at most 2^32
        let v6_count = u64::try_from(v6.count()).map_err(|_| {
            SpecError::Invalid(
                "the IPv6 targets hold more than 2^64 addresses; name smaller prefixes".into(),
            )
        })?;
        let addresses = v4_count.checked_add(v6_count).ok_or_else(|| {
            SpecError::Invalid("too many addresses; name smaller prefixes".into())
        })?;
        let size = u128::from(addresses) * ports.len() as u128;
        let size = u64::try_from(size).map_err(|_| SpecError::TooLarge { probes: size })?;
        Ok(Self {
            v4,
            v6,
            ports,
            v4_count,
            addresses,
            size,
        })
    }

    /// Number of probes (address × port pairs).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn addresses(&self) -> u64 {
        self.addresses
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn v4(&self) -> &IntervalSet<u32> {
        &self.v4
    }

    pub fn v6(&self) -> &IntervalSet<u128> {
        &self.v6
    }

    pub fn has_v6(&self) -> bool {
        !self.v6.is_empty()
    }

    /// The probe at `index` (< `size()`).
    pub fn target(&self, index: u64) -> Option<(IpAddr, u16)> {
        if index >= self.size {
            return None;
        }
        let a = index % self.addresses;
        let port = *self.ports.get((index / self.addresses) as usize)?;
        let ip = if a < self.v4_count {
            IpAddr::V4(Ipv4Addr::from(self.v4.nth(a)?))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.v6.nth(a - self.v4_count)?))
        };
        Some((ip, port))
    }

    /// The index of the probe to `ip` on the `port_index`-th port: the inverse of
    /// [`TargetSpace::target`]. `None` when the address is not in the space.
    pub fn index_of(&self, ip: IpAddr, port_index: u64) -> Option<u64> {
        if port_index >= self.ports.len() as u64 {
            return None;
        }
        let a = match ip {
            IpAddr::V4(a) => self.v4.rank(u32::from(a))?,
            IpAddr::V6(a) => self.v4_count + self.v6.rank(u128::from(a))?,
        };
        Some(port_index * self.addresses + a)
    }

    /// The IPv4 probe at `index`: the SYN engine's hot path (no IpAddr, no Option chain).
    #[inline]
    pub fn target_v4(&self, index: u64) -> Option<(u32, u16)> {
        let a = index % self.addresses;
        let port = *self.ports.get((index / self.addresses) as usize)?;
        Some((self.v4.nth(a)?, port))
    }
}

/// From a reply's (address, port) back to the position, in the scan's permuted order,
/// of the probe it answers: what routes a reply to the shard that sent its probe.
#[derive(Debug, Clone)]
pub struct Locator<'a> {
    space: &'a TargetSpace,
    order: Permutation,
    /// Port → its index in the space's port list (`u32::MAX`: not scanned).
    port_index: Vec<u32>,
}

impl<'a> Locator<'a> {
    pub fn new(space: &'a TargetSpace, order: Permutation) -> Self {
        let mut port_index = vec![u32::MAX; 1 << 16];
        for (i, &p) in space.ports.iter().enumerate().rev() {
            port_index[usize::from(p)] = i as u32;
        }
        Self {
            space,
            order,
            port_index,
        }
    }

    /// The position of the probe to `ip:port`; `None` when the space has no such probe.
    pub fn position(&self, ip: IpAddr, port: u16) -> Option<u64> {
        let i = *self.port_index.get(usize::from(port))?;
        if i == u32::MAX {
            return None;
        }
        let index = self.space.index_of(ip, u64::from(i))?;
        (index < self.order.len()).then(|| self.order.position_of(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_inverts_the_order_and_the_space() {
        let space = TargetSpace::new(
            IntervalSet::from_ranges([(10u32, 20u32), (40, 44)]),
            IntervalSet::from_ranges([(7u128, 9u128)]),
            vec![22, 80, 443],
        )
        .expect("space");
        let order = Permutation::new(space.size(), 11);
        let locate = Locator::new(&space, order);
        for pos in 0..space.size() {
            let (ip, port) = space.target(order.at(pos)).expect("in the space");
            assert_eq!(locate.position(ip, port), Some(pos), "{ip}:{port}");
        }
        assert_eq!(locate.position(IpAddr::V4(Ipv4Addr::from(21u32)), 22), None);
        assert_eq!(locate.position(IpAddr::V4(Ipv4Addr::from(10u32)), 23), None);
        assert_eq!(
            locate.position(IpAddr::V6(Ipv6Addr::from(10u128)), 80),
            None
        );
    }
}
