//! The end-of-run report, as JSON (`--json`) and as text for people.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::loadgen::schedule::Arrivals;
use crate::loadgen::stats::Recorder;

/// Latency quantiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// One run's figures. Counts cover the orders scheduled after the warm-up only.
/// `sent == acked + errors + in_flight_at_end`; `scheduled == sent + not_sent`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub market: String,
    pub clients: usize,
    pub arrivals: Arrivals,
    pub offered_rate_per_s: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub scheduled: u64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Sent, never answered before the run stopped waiting.
    pub in_flight_at_end: u64,
    /// Scheduled, never sent (the client's connection was gone).
    pub not_sent: u64,
    /// Acknowledged orders per second, over the measured window or, when answers kept coming
    /// after it ended, until the last answer.
    pub achieved_acks_per_s: f64,
    /// The seconds `achieved_acks_per_s` is taken over.
    pub answered_over_s: f64,
    /// Scheduled send -> the server's answer: the open-loop figure.
    pub ack_latency: Latency,
    /// Actual send -> answer: the server alone, without the client's own lateness.
    pub service_latency: Latency,
}

impl Report {
    pub fn new(settings: ReportSettings, scheduled: u64, in_flight_at_end: u64, recorder: &Recorder) -> Report {
        let errors = recorder.errors_total();
        let over_s = settings.answered_over_s.max(settings.duration_s);
        let achieved = if over_s > 0.0 { recorder.acked as f64 / over_s } else { 0.0 };
        Report {
            market: settings.market,
            clients: settings.clients,
            arrivals: settings.arrivals,
            offered_rate_per_s: settings.offered_rate_per_s,
            duration_s: settings.duration_s,
            warmup_s: settings.warmup_s,
            scheduled,
            sent: recorder.sent,
            acked: recorder.acked,
            errors,
            errors_by_code: recorder.errors.clone(),
            in_flight_at_end,
            not_sent: recorder.not_sent,
            achieved_acks_per_s: (achieved * 10.0).round() / 10.0,
            answered_over_s: (over_s * 1_000.0).round() / 1_000.0,
            ack_latency: Latency::of(&recorder.from_schedule),
            service_latency: Latency::of(&recorder.from_send),
        }
    }
}

/// The run's settings, as the report states them.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSettings {
    pub market: String,
    pub clients: usize,
    pub arrivals: Arrivals,
    pub offered_rate_per_s: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// From the end of the warm-up to the last counted answer.
    pub answered_over_s: f64,
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1_000.0)
}

fn latency_line(f: &mut fmt::Formatter<'_>, name: &str, l: &Latency) -> fmt::Result {
    writeln!(
        f,
        "  {name:<16} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p99_9_us),
        ms(l.max_us)
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hob loadgen: {} clients on {}, {:.0} orders/s offered ({:?}), {:.1} s measured after {:.1} s warm-up",
            self.clients, self.market, self.offered_rate_per_s, self.arrivals, self.duration_s, self.warmup_s
        )?;
        writeln!(
            f,
            "  orders           scheduled {}  sent {}  acked {}  errors {}  in flight at end {}  not sent {}",
            self.scheduled, self.sent, self.acked, self.errors, self.in_flight_at_end, self.not_sent
        )?;
        writeln!(f, "  throughput       {:.1} acks/s (over {:.1} s)", self.achieved_acks_per_s, self.answered_over_s)?;
        for (code, n) in &self.errors_by_code {
            writeln!(f, "  error            {code}: {n}")?;
        }
        latency_line(f, "ack latency", &self.ack_latency)?;
        latency_line(f, "service time", &self.service_latency)?;
        writeln!(f, "  (ack latency runs from each order's scheduled send time; service time from the actual send)")
    }
}
