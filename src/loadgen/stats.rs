//! What a run counts: orders sent, acknowledged and refused (by error code), and two latency
//! histograms (HDR, microseconds): from each order's *scheduled* send time to its answer (the
//! figure the report leads with; it includes any time the client fell behind), and from the
//! actual send to the answer (the server's service time alone).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold exactly; longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constants that satisfy hdrhistogram's rules (low >= 1,
    // high >= 2 * low, at most 5 significant figures).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(MAX_LATENCY_US).clamp(1, MAX_LATENCY_US)
}

/// One client's orders between send and answer: when each was planned and when it went out.
#[derive(Debug, Default)]
pub struct InFlight {
    /// By order index: (scheduled, sent, counted in the report).
    orders: Vec<Option<(Instant, Instant, bool)>>,
}

/// The latencies of one answered order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    pub from_schedule: Duration,
    pub from_send: Duration,
    pub measured: bool,
}

impl InFlight {
    pub fn sent(&mut self, index: usize, scheduled: Instant, sent: Instant, measured: bool) {
        if self.orders.len() <= index {
            self.orders.resize(index + 1, None);
        }
        self.orders[index] = Some((scheduled, sent, measured));
    }

    /// The order's latencies, once; `None` for an index never sent or already answered.
    pub fn answered(&mut self, index: usize, at: Instant) -> Option<Answered> {
        let (scheduled, sent, measured) = self.orders.get_mut(index)?.take()?;
        Some(Answered {
            from_schedule: at.saturating_duration_since(scheduled),
            from_send: at.saturating_duration_since(sent),
            measured,
        })
    }

    /// Orders sent and not answered that count in the report.
    pub fn outstanding_measured(&self) -> u64 {
        self.orders.iter().flatten().filter(|o| o.2).count() as u64
    }

    pub fn outstanding(&self) -> usize {
        self.orders.iter().flatten().count()
    }
}

/// The run's counters and histograms (orders scheduled in the warm-up are not counted).
#[derive(Debug)]
pub struct Recorder {
    pub sent: u64,
    pub acked: u64,
    pub errors: BTreeMap<String, u64>,
    pub not_sent: u64,
    /// When the last counted answer came.
    pub last_answer: Option<Instant>,
    pub from_schedule: Histogram<u64>,
    pub from_send: Histogram<u64>,
    /// Since the progress line last read it.
    pub window: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            sent: 0,
            acked: 0,
            errors: BTreeMap::new(),
            not_sent: 0,
            last_answer: None,
            from_schedule: histogram(),
            from_send: histogram(),
            window: histogram(),
        }
    }
}

impl Recorder {
    pub fn sent(&mut self, measured: bool) {
        if measured {
            self.sent += 1;
        }
    }

    /// An answer: `Ok` for a result, `Err(code)` for an error.
    pub fn answered(&mut self, answered: Answered, at: Instant, outcome: Result<(), &str>) {
        if !answered.measured {
            return;
        }
        self.last_answer = Some(self.last_answer.map_or(at, |last| last.max(at)));
        match outcome {
            Ok(()) => self.acked += 1,
            Err(code) => *self.errors.entry(code.to_owned()).or_default() += 1,
        }
        let (scheduled, sent) = (micros(answered.from_schedule), micros(answered.from_send));
        self.from_schedule.saturating_record(scheduled);
        self.from_send.saturating_record(sent);
        self.window.saturating_record(scheduled);
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The window's p99 in microseconds (0 when empty); starts a new window.
    pub fn take_window_p99_us(&mut self) -> u64 {
        let p99 = if self.window.is_empty() { 0 } else { self.window.value_at_quantile(0.99) };
        self.window.reset();
        p99
    }
}

#[cfg(test)]
#[path = "../../unit_tests/loadgen/stats.rs"]
mod tests;
