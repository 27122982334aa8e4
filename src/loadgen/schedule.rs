//! Open-loop send times. Every order's send time is fixed before the run from the target rate
//! alone, never from when earlier answers came back: a client that falls behind sends what is
//! due at once and its latency still counts from the planned time, so a stall shows up in the
//! figures instead of silently lowering the offered load (coordinated omission).

use std::time::Duration;

/// How a client's send times are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Evenly spaced, each client shifted by a fraction of the gap so clients interleave.
    Uniform,
    /// Exponential gaps (a Poisson process): bursts happen, as with independent traders.
    Poisson,
}

/// The simulation's deterministic generator (SplitMix64): the same seed gives the same
/// schedule and the same orders, so a run can be repeated exactly.
pub use crate::sim::Rng;

/// The send times of one client, as offsets from the start of the run, up to (excluding) `end`.
///
/// `rate_per_sec` is this client's share of the offered rate; `phase` in `[0, 1)` shifts a
/// uniform schedule by that fraction of its gap. A rate that is not positive plans nothing.
pub fn send_times(rate_per_sec: f64, arrivals: Arrivals, phase: f64, seed: u64, end: Duration) -> Vec<Duration> {
    if !(rate_per_sec > 0.0 && rate_per_sec.is_finite()) {
        return Vec::new();
    }
    let gap_s = 1.0 / rate_per_sec;
    let end_s = end.as_secs_f64();
    let mut times = Vec::with_capacity((end_s * rate_per_sec) as usize + 1);
    match arrivals {
        Arrivals::Uniform => {
            let first = gap_s * phase.clamp(0.0, 1.0 - f64::EPSILON);
            let mut n = 0u64;
            loop {
                let at = first + n as f64 * gap_s;
                if at >= end_s {
                    break;
                }
                times.push(Duration::from_secs_f64(at));
                n += 1;
            }
        }
        Arrivals::Poisson => {
            let mut rng = Rng::new(seed);
            let mut at = 0.0;
            loop {
                at += -rng.unit().ln() * gap_s;
                if at >= end_s {
                    break;
                }
                times.push(Duration::from_secs_f64(at));
            }
        }
    }
    times
}

#[cfg(test)]
mod tests {
    // Test code unwraps because a failure should fail the test.
    use super::*;

    #[test]
    fn a_uniform_schedule_is_evenly_spaced_from_its_phase() {
        let times = send_times(100.0, Arrivals::Uniform, 0.5, 1, Duration::from_millis(50));
        let ms: Vec<f64> = times.iter().map(|t| (t.as_secs_f64() * 1e3 * 1e3).round() / 1e3).collect();
        assert_eq!(ms, vec![5.0, 15.0, 25.0, 35.0, 45.0]);
    }

    #[test]
    fn a_poisson_schedule_offers_the_rate_on_average_and_is_reproducible() {
        let times = send_times(1_000.0, Arrivals::Poisson, 0.0, 7, Duration::from_secs(20));
        let n = times.len() as f64;
        assert!((19_000.0..21_000.0).contains(&n), "{n} sends planned for 20,000 expected");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "times are in order");
        assert_eq!(times, send_times(1_000.0, Arrivals::Poisson, 0.0, 7, Duration::from_secs(20)));
        assert_ne!(times, send_times(1_000.0, Arrivals::Poisson, 0.0, 8, Duration::from_secs(20)));
    }

    #[test]
    fn no_rate_plans_nothing() {
        assert!(send_times(0.0, Arrivals::Uniform, 0.0, 1, Duration::from_secs(1)).is_empty());
        assert!(send_times(f64::NAN, Arrivals::Poisson, 0.0, 1, Duration::from_secs(1)).is_empty());
    }
}
