//! `--find-max`: runs at rising offered rates until one is not sustained, and names the
//! highest that was. Sustained means ack p99 (from the scheduled send) under the limit, and
//! nearly every scheduled order answered with a result: a server that falls behind shows
//! both as rising latency and as orders still in flight when the run stops waiting.

use serde::Serialize;

use crate::loadgen::report::Report;
use crate::loadgen::{run, LoadConfig, LoadgenError};

/// The rates tried: `first`, `first + step`, ... up to `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Steps {
    pub first_per_s: f64,
    pub step_per_s: f64,
    pub max_per_s: f64,
    pub p99_limit_us: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FindMaxReport {
    pub p99_limit_ms: f64,
    /// The highest offered rate sustained, if any.
    pub max_sustained_rate_per_s: Option<f64>,
    pub steps: Vec<Report>,
}

/// Whether a run sustained its offered rate: p99 under the limit and at least 99% of the
/// scheduled orders acknowledged.
pub fn sustains(report: &Report, p99_limit_us: u64) -> bool {
    report.scheduled > 0
        && report.ack_latency.count > 0
        && report.ack_latency.p99_us < p99_limit_us
        && report.acked as f64 >= 0.99 * report.scheduled as f64
}

/// The rates `steps` names, in order.
pub fn rates(steps: &Steps) -> Vec<f64> {
    let mut rates = Vec::new();
    if !(steps.first_per_s > 0.0 && steps.step_per_s > 0.0) {
        return rates;
    }
    let mut rate = steps.first_per_s;
    while rate <= steps.max_per_s && rates.len() < 1_000 {
        rates.push(rate);
        rate += steps.step_per_s;
    }
    rates
}

/// Runs `base` at each rate of `steps` (fresh traders each time) until one is not sustained.
pub async fn find_max(base: &LoadConfig, steps: &Steps) -> Result<FindMaxReport, LoadgenError> {
    let mut report = FindMaxReport {
        p99_limit_ms: steps.p99_limit_us as f64 / 1_000.0,
        max_sustained_rate_per_s: None,
        steps: Vec::new(),
    };
    for (i, rate) in rates(steps).into_iter().enumerate() {
        let config = LoadConfig { rate_per_s: rate, seed: base.seed.wrapping_add(i as u64 * 7_919), ..base.clone() };
        let outcome = run(&config).await?;
        let ok = sustains(&outcome.report, steps.p99_limit_us);
        if base.progress {
            eprintln!("{}", outcome.report);
        }
        report.steps.push(outcome.report);
        if !ok {
            break;
        }
        report.max_sustained_rate_per_s = Some(rate);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    // Test code unwraps because a failure should fail the test.
    use super::*;

    #[test]
    fn the_rates_step_up_to_the_cap() {
        let steps = Steps { first_per_s: 1_000.0, step_per_s: 2_000.0, max_per_s: 6_000.0, p99_limit_us: 10_000 };
        assert_eq!(rates(&steps), vec![1_000.0, 3_000.0, 5_000.0]);
        assert!(rates(&Steps { step_per_s: 0.0, ..steps }).is_empty());
    }
}
