//! Stateless reply validation (masscan's syn-cookie idea): the sequence number and the
//! source port of every probe are a keyed SipHash of the flow, so a reply can be checked
//! with no per-target state, and forged or stray packets are counted, not believed.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

#[derive(Debug, Clone, Copy)]
pub struct CookieKey {
    k0: u64,
    k1: u64,
}

/// What a probe to one (destination, port) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    pub seq: u32,
    pub source_port: u16,
}

impl CookieKey {
    pub fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// A fresh key from the OS; a key per run means replies to another run fail checks.
    pub fn random() -> Self {
        Self::new(crate::entropy::random_u64(), crate::entropy::random_u64())
    }

    /// `ports_base..ports_base+ports_count` is the source-port range (count ≥ 1).
    #[inline]
    pub fn cookie(
        &self,
        src: u32,
        dst: u32,
        dport: u16,
        ports_base: u16,
        ports_count: u16,
    ) -> Cookie {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u64((u64::from(src) << 32) | u64::from(dst));
        h.write_u16(dport);
        let v = h.finish();
        let count = u64::from(ports_count.max(1));
        Cookie {
            seq: v as u32,
            source_port: ports_base.wrapping_add(((v >> 32) % count) as u16),
        }
    }

    /// Sixteen more bytes of the same flow, for the fields a UDP protocol echoes (DNS
    /// id, STUN transaction id, …): a domain byte keeps them apart from the cookie.
    pub fn token(&self, src: u32, dst: u32, dport: u16) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, half) in out.chunks_mut(8).enumerate() {
            let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
            h.write_u8(0xa0 + i as u8);
            h.write_u64((u64::from(src) << 32) | u64::from(dst));
            h.write_u16(dport);
            half.copy_from_slice(&h.finish().to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_depend_on_every_field_and_key() {
        let k = CookieKey::new(1, 2);
        let base = k.cookie(1, 2, 80, 61000, 1024);
        assert_ne!(base, k.cookie(1, 3, 80, 61000, 1024));
        assert_ne!(base, k.cookie(9, 2, 80, 61000, 1024));
        assert_ne!(base, k.cookie(1, 2, 81, 61000, 1024));
        assert_ne!(base, CookieKey::new(1, 3).cookie(1, 2, 80, 61000, 1024));
        assert_eq!(base, k.cookie(1, 2, 80, 61000, 1024));
        assert!((61000..62024).contains(&base.source_port));
    }
}
