//! Pacing with governor. The limiter is asked once per batch, not per packet: at a
//! million packets a second a per-packet check would cost more than the packet.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

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

    /// Blocks until `n` (≤ batch) more packets may go.
    pub fn wait(&self, n: usize) {
        let Some(n) = NonZeroU32::new(n as u32) else {
            return;
        };
        loop {
            match self.limiter.check_n(n) {
                Ok(Ok(())) => return,
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    if wait > Duration::from_micros(100) {
                        std::thread::sleep(wait);
                    } else {
                        std::thread::yield_now();
                    }
                }
                // n above the burst: cannot happen with n ≤ batch; never block forever.
                Err(_) => return,
            }
        }
    }

    /// Async form for the connect engine: one permit.
    pub async fn ready(&self) {
        self.limiter.until_ready().await;
    }
}
