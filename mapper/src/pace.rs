//! Pacing with governor. The limiter is asked once per batch, not per packet: at a
//! million packets a second a per-packet check would cost more than the packet.
//!
//! A scan's rate may change while it runs (a coordinator shares one budget among the
//! workers of a scan and moves it as they come and go), so the engines pace through a
//! [`Throttle`] that follows a [`RateHandle`]; a per-network politeness cap applies on
//! top of it. The DNS querier and the grab pool keep a fixed [`Pacer`].

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pacer {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    batch: u32,
}

impl Pacer {
    /// `rate` packets per second (≥ 1); batches sized so there are ~1000 checks a second.
    pub fn new(rate: u64) -> Self {
        let rate = u32::try_from(rate.max(1)).unwrap_or(u32::MAX);
        let batch = (rate / 1000).clamp(1, crate::packet_io::MAX_BATCH as u32);
        let per_sec = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        // Room for two batches lets a late wake-up catch up without a burst.
        let burst = NonZeroU32::new((batch * 2).min(rate)).unwrap_or(NonZeroU32::MIN);
        let burst = burst.max(NonZeroU32::new(batch).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)),
            clock: DefaultClock::default(),
            batch,
        }
    }

    pub fn batch(&self) -> usize {
        self.batch as usize
    }

    /// Takes `n` (≤ batch) permits now, or says how long until they would be there.
    fn try_take(&self, n: usize) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(n as u32) else {
            return Ok(());
        };
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // n above the burst: cannot happen with n ≤ batch; never block forever.
            Err(_) => Ok(()),
        }
    }

    /// Blocks until `n` (≤ batch) more packets may go.
    pub fn wait(&self, n: usize) {
        while let Err(wait) = self.try_take(n) {
            nap(wait);
        }
    }

    /// Async form for the connect engine: one permit.
    pub async fn ready(&self) {
        self.limiter.until_ready().await;
    }
}

/// Sleeps for a wait the limiter asked for; spins politely below the timer's resolution.
fn nap(wait: Duration) {
    if wait > Duration::from_micros(100) {
        std::thread::sleep(wait);
    } else {
        std::thread::yield_now();
    }
}

/// The longest a throttled sender sleeps before it looks again at its rate and at the
/// stop flag: a new rate or a stop is seen within this, however low the rate was.
pub const RATE_STEP: Duration = Duration::from_millis(10);

/// A probe rate (per second) that can be changed while a run uses it: cloned handles
/// share one value. 0 pauses the run until the rate is raised again. Serialized as the
/// plain number, so settings that carry one stay plain data; a deserialized handle is a
/// new one, shared with nobody.
#[derive(Debug, Clone, Default)]
pub struct RateHandle(Arc<AtomicU64>);

impl RateHandle {
    pub fn new(rate: u64) -> Self {
        Self(Arc::new(AtomicU64::new(rate)))
    }

    /// Every run paced by this handle follows within [`RATE_STEP`] (plus one batch).
    pub fn set(&self, rate: u64) {
        self.0.store(rate, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

impl From<u64> for RateHandle {
    fn from(rate: u64) -> Self {
        Self::new(rate)
    }
}

impl Serialize for RateHandle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

impl<'de> Deserialize<'de> for RateHandle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Self::new)
    }
}

/// The network a destination belongs to for the politeness cap: its IPv4 /24 or its
/// IPv6 /64, one key space for both (the tag bit keeps them apart).
#[inline]
pub fn net_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => net_key_v4(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) >> 64,
    }
}

#[inline]
pub fn net_key_v4(addr: u32) -> u128 {
    (1u128 << 64) | u128::from(addr >> 8)
}

/// After this many admissions the per-network state drops the networks it no longer
/// needs to remember: memory follows the networks probed in the last moment, not the
/// whole scan's.
const TRIM_EVERY: u32 = 16_384;

/// At most `cap` probes a second to any one network, in bursts of a tenth of that.
#[derive(Debug)]
struct NetCap {
    limiter: RateLimiter<u128, HashMapStateStore<u128>, DefaultClock>,
    clock: DefaultClock,
    since_trim: u32,
}

impl NetCap {
    fn new(cap: u32) -> Self {
        let per_sec = NonZeroU32::new(cap).unwrap_or(NonZeroU32::MIN);
        // A small burst keeps a network's probes spread over the second, not bunched at
        // its start, while neighbours in the permuted order rarely wait on each other.
        let burst = NonZeroU32::new(cap / 10).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::hashmap(Quota::per_second(per_sec).allow_burst(burst)),
            clock: DefaultClock::default(),
            since_trim: 0,
        }
    }

    /// Takes one permit for `key` now, or says how long until there is one.
    fn try_take(&mut self, key: u128) -> Result<(), Duration> {
        self.since_trim += 1;
        if self.since_trim >= TRIM_EVERY {
            self.since_trim = 0;
            // Only networks still inside their burst window stay; the map's capacity is
            // kept, so a long scan stops allocating once it has warmed up.
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The engines' pacing: a global rate that follows a [`RateHandle`] (looked at once per
/// batch, and every [`RATE_STEP`] while waiting), with an optional per-network cap on
/// top. Owned by the one sending loop of a run.
#[derive(Debug)]
pub struct Throttle {
    rate: RateHandle,
    /// The rate `pacer` was built for.
    built: u64,
    /// `None` while paused (rate 0).
    pacer: Option<Pacer>,
    net: Option<NetCap>,
    paused: Duration,
}

impl Throttle {
    /// `per_net`: probes per second to any one IPv4 /24 or IPv6 /64 (0 or `None`: no cap).
    pub fn new(rate: RateHandle, per_net: Option<u32>) -> Self {
        let built = rate.get();
        Self {
            pacer: (built > 0).then(|| Pacer::new(built)),
            built,
            rate,
            net: per_net.filter(|&c| c > 0).map(NetCap::new),
            paused: Duration::ZERO,
        }
    }

    /// Follows the handle. A new limiter starts with its burst available: a change costs
    /// at most two batches early, and it is rare next to the batches paced.
    fn follow(&mut self) {
        let rate = self.rate.get();
        if rate != self.built {
            self.built = rate;
            self.pacer = (rate > 0).then(|| Pacer::new(rate));
        }
    }

    /// How many probes to put in the next batch at the current rate (1 while paused).
    pub fn batch(&mut self) -> usize {
        self.follow();
        self.pacer.as_ref().map_or(1, Pacer::batch)
    }

    /// Time spent paused so far: not sending time.
    pub fn paused(&self) -> Duration {
        self.paused
    }

    pub fn has_net_cap(&self) -> bool {
        self.net.is_some()
    }

    /// Blocks until `n` more probes may go at the global rate, waiting out a pause.
    /// False: `halted` said to stop first (nothing was taken then).
    pub fn wait(&mut self, n: usize, halted: &dyn Fn() -> bool) -> bool {
        let mut left = n;
        while left > 0 {
            self.follow();
            let Some(pacer) = &self.pacer else {
                if halted() {
                    return false;
                }
                let since = Instant::now();
                std::thread::sleep(RATE_STEP);
                self.paused += since.elapsed();
                continue;
            };
            // A batch filled before the rate dropped may be above the new burst.
            let take = left.min(pacer.batch());
            match pacer.try_take(take) {
                Ok(()) => left -= take,
                Err(wait) => {
                    if wait > RATE_STEP && halted() {
                        return false;
                    }
                    nap(wait.min(RATE_STEP));
                }
            }
        }
        true
    }

    /// One permit for a probe to `addr` under the per-network cap, if there is one and
    /// the network is under it now. False: the probe must wait ([`Throttle::wait_net`]).
    #[inline]
    pub fn admit_v4(&mut self, addr: u32) -> bool {
        match &mut self.net {
            None => true,
            Some(net) => net.try_take(net_key_v4(addr)).is_ok(),
        }
    }

    /// Blocks until the network of `ip` may have one more probe, and takes that permit.
    /// False: `halted` said to stop first.
    pub fn wait_net(&mut self, ip: IpAddr, halted: &dyn Fn() -> bool) -> bool {
        let Some(net) = &mut self.net else {
            return true;
        };
        let key = net_key(ip);
        while let Err(wait) = net.try_take(key) {
            if halted() {
                return false;
            }
            nap(wait.min(RATE_STEP));
        }
        true
    }

    /// Async form for the connect engine: the network's permit, then one at the global
    /// rate. False: `stop` was raised first.
    pub async fn ready(&mut self, ip: IpAddr, stop: &AtomicBool) -> bool {
        if let Some(net) = &mut self.net {
            let key = net_key(ip);
            while let Err(wait) = net.try_take(key) {
                if stop.load(Relaxed) {
                    return false;
                }
                tokio::time::sleep(wait.min(RATE_STEP)).await;
            }
        }
        loop {
            self.follow();
            let Some(pacer) = &self.pacer else {
                if stop.load(Relaxed) {
                    return false;
                }
                let since = Instant::now();
                tokio::time::sleep(RATE_STEP).await;
                self.paused += since.elapsed();
                continue;
            };
            match pacer.try_take(1) {
                Ok(()) => return true,
                Err(wait) => {
                    if stop.load(Relaxed) {
                        return false;
                    }
                    // Tokio's timer rounds up to a millisecond; the burst of two batches
                    // (two milliseconds of probes) absorbs that.
                    tokio::time::sleep(wait.min(RATE_STEP)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        let v4 = |s: &str| net_key(IpAddr::V4(s.parse::<Ipv4Addr>().expect("v4")));
        let v6 = |s: &str| net_key(IpAddr::V6(s.parse::<Ipv6Addr>().expect("v6")));
        assert_eq!(v4("198.18.7.1"), v4("198.18.7.254"));
        assert_ne!(v4("198.18.7.1"), v4("198.18.8.1"));
        assert_eq!(v6("2001:2::1"), v6("2001:2::ffff:1"));
        assert_ne!(v6("2001:2::1"), v6("2001:2:0:1::1"));
        // The tag keeps an IPv4 /24 from colliding with a low IPv6 /64.
        assert_ne!(v4("0.0.1.0"), v6("0:0:0:1::"));
        assert_eq!(
            net_key_v4(u32::from(Ipv4Addr::new(198, 18, 7, 9))),
            v4("198.18.7.9")
        );
    }

    #[test]
    fn a_rate_handle_serializes_as_its_number() {
        let h = RateHandle::new(1234);
        let json = serde_json::to_string(&h).expect("json");
        assert_eq!(json, "1234");
        let back: RateHandle = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.get(), 1234);
        back.set(7);
        assert_eq!(h.get(), 1234, "a deserialized handle shares nothing");
        let shared = h.clone();
        shared.set(0);
        assert_eq!(h.get(), 0, "clones share the value");
    }

    #[test]
    fn a_throttle_follows_its_handle_and_waits_out_a_pause() {
        let rate = RateHandle::new(1_000_000);
        let mut t = Throttle::new(rate.clone(), None);
        assert_eq!(t.batch(), crate::packet_io::MAX_BATCH);
        rate.set(100);
        assert_eq!(t.batch(), 1, "seen at the next batch");
        rate.set(0);
        let raiser = {
            let rate = rate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(120));
                rate.set(1_000_000);
            })
        };
        let began = Instant::now();
        assert!(t.wait(1, &|| false), "the pause ends, not the run");
        assert!(began.elapsed() >= Duration::from_millis(100));
        assert!(t.paused() >= Duration::from_millis(100));
        let _ = raiser.join();
        rate.set(0);
        let stop = AtomicBool::new(true);
        assert!(!t.wait(1, &|| stop.load(Relaxed)), "a stop ends a pause");
    }

    #[test]
    fn the_network_cap_holds_one_network_back_and_not_the_others() {
        let mut t = Throttle::new(RateHandle::new(1_000_000), Some(100));
        let net = u32::from(Ipv4Addr::new(198, 18, 0, 0));
        // The burst: a tenth of the cap.
        let admitted = (0..50).filter(|i| t.admit_v4(net + i)).count();
        assert_eq!(admitted, 10);
        assert!(t.admit_v4(net + 256), "the next /24 has its own budget");
        let began = Instant::now();
        assert!(t.wait_net(IpAddr::V4(Ipv4Addr::from(net + 3)), &|| false));
        assert!(
            began.elapsed() >= Duration::from_millis(5),
            "waited for the next permit (10 ms at 100/s)"
        );
        assert!(
            !t.wait_net(IpAddr::V4(Ipv4Addr::from(net)), &|| true),
            "a stop ends the wait"
        );
        let mut uncapped = Throttle::new(RateHandle::new(1_000_000), None);
        assert!((0..1000).all(|i| uncapped.admit_v4(net + i)));
    }
}
