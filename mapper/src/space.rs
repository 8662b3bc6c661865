//! The (address × port) index space of a scan.
//!
//! Index `i` maps to address `i % addresses` and port `i / addresses`, so neighbouring
//! indices hit different hosts; exclusions are already subtracted from the address sets,
//! so every index in `0..size()` is an allowed probe.

use crate::error::SpecError;
use crate::intervals::IntervalSet;
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

    /// The IPv4 probe at `index`: the SYN engine's hot path (no IpAddr, no Option chain).
    #[inline]
    pub fn target_v4(&self, index: u64) -> Option<(u32, u16)> {
        let a = index % self.addresses;
        let port = *self.ports.get((index / self.addresses) as usize)?;
        Some((self.v4.nth(a)?, port))
    }
}
