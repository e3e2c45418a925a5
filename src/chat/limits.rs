//! Per-connection chat limits: rooms per connection and the message rate (a token bucket).

use std::time::Instant;

pub use crate::config::ChatLimits;

/// A token bucket: starts full (`burst` tokens), refills at `rate` per second.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    tokens: f64,
    updated: Option<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            tokens: f64::INFINITY,
            updated: None,
        }
    }
}

impl RateLimiter {
    /// Take one token at `now`; false when none is left.
    pub fn try_take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = self.updated.map_or(0.0, |then| {
            now.saturating_duration_since(then).as_secs_f64()
        });
        self.tokens = (self.tokens.min(burst) + elapsed * rate).min(burst);
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_of_twenty_then_ten_per_second() {
        let mut bucket = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(bucket.try_take(t0, 10.0, 20.0), "message {i} of the burst");
        }
        assert!(!bucket.try_take(t0, 10.0, 20.0));
        assert!(bucket.try_take(t0 + Duration::from_millis(100), 10.0, 20.0));
        assert!(!bucket.try_take(t0 + Duration::from_millis(150), 10.0, 20.0));
        let later = t0 + Duration::from_secs(60);
        let taken = (0..30)
            .filter(|_| bucket.try_take(later, 10.0, 20.0))
            .count();
        assert_eq!(taken, 20, "the bucket never holds more than the burst");
    }
}
