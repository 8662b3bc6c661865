//! Alerts as pure logic: the events the service tells people about, the rules that pick
//! which events go to which channel and when, each channel's message format and
//! signature, and the retry schedule. No sockets and no clock: the service's delivery
//! loop feeds these functions the time and sends what they return, so every format and
//! every rule is testable on its own.

pub mod channel;
pub mod event;
pub mod export;
pub mod ocsf;
pub mod patterns;
pub mod rule;
pub mod sign;
pub mod syslog;

pub use channel::{Channel, ChannelKind, EmailSettings, Outgoing};
pub use event::{Event, EventKind, Severity};
pub use rule::{AlertRule, QuietHours};

/// Bad input in a channel or rule; the message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("{0}")]
    Invalid(String),
}

/// The delay before retry number `attempt` (1 = the first retry): exponential from
/// `base_ms`, capped at `cap_ms`, with jitter so receivers that come back are not hit by
/// every sender at the same instant. `jitter` is a random number in `[0, 1)`; the delay
/// falls in the upper half of the exponential step ("equal jitter"), so it never
/// collapses to nothing.
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64, jitter: f64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(40));
    let step = exp.min(cap_ms).max(1);
    let jitter = jitter.clamp(0.0, 1.0);
    step / 2 + ((step - step / 2) as f64 * jitter) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter_and_a_cap() {
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.0), 500);
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.999), 999);
        assert_eq!(backoff_ms(2, 1000, 60_000, 0.0), 1000);
        assert_eq!(backoff_ms(4, 1000, 60_000, 0.0), 4000);
        for attempt in 1..100 {
            let d = backoff_ms(attempt, 1000, 60_000, 0.7);
            assert!((500..=60_000).contains(&d), "attempt {attempt}: {d}");
        }
        assert_eq!(backoff_ms(30, 1000, 60_000, 0.0), 30_000);
        assert_eq!(backoff_ms(u32::MAX, u64::MAX, u64::MAX, 1.0), u64::MAX);
    }
}
