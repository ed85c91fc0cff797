//! Time as the limiter reads it, and the pause before retrying a conflicted write.

use std::time::Duration;

/// Milliseconds since the Unix epoch, as the limiter reads time. One trait so tests can set it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The system clock (every instance's, synchronised by NTP: skew of a few ms admits at most
/// `rate x skew` more, a fraction of one request at the default rates).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// A pause before retrying a conflicted write ("full jitter"): a random time up to
/// `round_trip << min(attempt, 6)` (the round trip at least 5 ms), at most 1 s. Scaled by the
/// round trip the caller just measured, so callers that collided spread over as many write
/// times as there are of them, whatever the store's latency.
pub fn backoff(attempt: u32, round_trip: Duration) -> Duration {
    let base = round_trip.max(Duration::from_millis(5));
    let ceiling = (base * (1u32 << attempt.min(6))).min(Duration::from_secs(1));
    let r = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    ceiling.mul_f64(r as f64 / 1_000_000.0)
}
