//! Token buckets keyed by client IP or by user. A bucket holds up to `burst` tokens and
//! refills at `rate_per_sec`; a request takes one token or is refused with how long until
//! one is back (HTTP 429 + `Retry-After`). Time is passed in, so the arithmetic is tested
//! without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets remembered before idle ones (full again) are forgotten: a full bucket behaves
/// exactly like a new one, so forgetting it changes nothing but memory.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct TokenBuckets<K> {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq> TokenBuckets<K> {
    pub fn new(rate_per_sec: u32, burst: u32) -> TokenBuckets<K> {
        TokenBuckets {
            rate_per_sec: f64::from(rate_per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`, or says how long until one is available.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means a panic elsewhere mid-update of one f64 pair; usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = bucket.refilled(now, self.rate_per_sec, self.burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate_per_sec))
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let buckets = TokenBuckets::new(10, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.check("ip", t0), Ok(()));
        }
        let wait = buckets.check("ip", t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(buckets.check("other", t0), Ok(()), "buckets are per key");
        assert_eq!(buckets.check("ip", t0 + Duration::from_millis(100)), Ok(()));
        assert!(buckets.check("ip", t0 + Duration::from_millis(100)).is_err());
        // idle time refills at most to the burst
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(buckets.check("ip", later), Ok(()));
        }
        assert!(buckets.check("ip", later).is_err());
    }
}
