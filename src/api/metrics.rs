//! Prometheus metrics (`GET /metrics`, text format). Events are counted where they happen
//! (orders, latencies, WebSocket traffic, rate limiting); gauges of the engine's state
//! (mailbox depths, outbox lag, queue depths, actor counters) are read at scrape time, so a
//! scrape costs the engine nothing between scrapes.
//!
//! Each server has its own registry, so several servers in one process (tests) do not share
//! counters.
//!
//! Every metric is registered at start, so each name is in the first scrape (the alert rules
//! and the dashboard in `ops/observability/` name them; `tests/ops_artifacts.rs` checks that
//! they all exist). The settlement family reads 0 with `hob_settlement_operator_up 0` until a
//! settlement operator is watched (`Metrics::watch_settlement`).

use std::sync::Mutex;

use futures_util::future::BoxFuture;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Orders by `result` (`accepted`, `rejected`, `error`) and `code` (the rejection code).
    pub orders: IntCounterVec,
    /// From the API receiving a place to the engine's acknowledgement (funds locked, order
    /// durably queued for its market).
    pub order_ack_seconds: Histogram,
    /// From placement to the market's decision on it, measured by the market-data feed: the
    /// placement time is the one encoded in the order id (engine clock ms << 20), the decision
    /// time that of the market's `accepted` event, so the resolution is one millisecond.
    pub match_latency_seconds: Histogram,
    /// HTTP responses by status class (`2xx`, `4xx`, ...).
    pub http_responses: IntCounterVec,
    /// Requests and messages refused by a rate limit, by `scope` (`ip`, `user`).
    pub rate_limited: IntCounterVec,
    pub ws_clients: IntGauge,
    pub ws_connections: IntCounter,
    /// WebSocket connections dropped, by `reason` (`slow_consumer`, `idle`, `too_large`, ...).
    pub ws_dropped: IntCounterVec,
    pub ws_messages_in: IntCounter,
    /// Messages queued to clients (pushes and replies).
    pub ws_messages_out: IntCounter,
    /// Scrape-time gauges.
    pub mailbox_depth: IntGaugeVec,
    pub mailbox_depth_max: IntGaugeVec,
    pub outbox_unpublished: IntGauge,
    pub queue_depth: IntGaugeVec,
    pub dead_letters: IntGaugeVec,
    pub actor_events: IntGaugeVec,
    pub projection: IntGaugeVec,
    pub feed_version: IntGaugeVec,
    pub private_feeds: IntGauge,
    /// 1 while a market is halted (its feed saw `market.Halted` and no `market.Resumed`).
    pub market_halted: IntGaugeVec,
    /// Settlement, read from the watched operator at scrape time.
    pub settlement: SettlementMetrics,
    probes: Mutex<Vec<std::sync::Arc<dyn SettlementProbe>>>,
}

/// The settlement operator's figures; counters are totals from its stream (they survive a
/// restart), gauges its state now.
pub struct SettlementMetrics {
    pub operator_up: IntGauge,
    pub batches_settled: IntCounter,
    pub trades_settled: IntCounter,
    pub batches_failed: IntCounter,
    pub trades_voided: IntCounter,
    pub chain_errors: IntCounter,
    pub alerts: IntCounter,
    pub pending_trades: IntGauge,
    pub in_flight: IntGauge,
    pub nonce_gap: IntGauge,
}

/// What one settlement operator reports at a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettlementSample {
    /// Whether its actor is running (false between a failure and the supervisor's restart).
    pub up: bool,
    pub batches_settled: u64,
    pub trades_settled: u64,
    pub batches_failed: u64,
    pub trades_voided: u64,
    pub chain_errors: u64,
    pub alerts: u64,
    pub pending_trades: u64,
    pub in_flight: u64,
    /// Nonces the operator signed and stored that the node holds neither mined nor in its
    /// mempool: dropped transactions; while it stays above 0, everything after them is stuck.
    pub nonce_gap: u64,
}

/// A settlement operator the metrics read at scrape time (see `api::settlement_probe`).
pub trait SettlementProbe: Send + Sync {
    fn sample(&self) -> BoxFuture<'_, SettlementSample>;
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("hob")
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        // 100 us to ~13 s.
        let latency = exponential_buckets(0.000_1, 2.0, 18)?;
        let m = Metrics {
            orders: IntCounterVec::new(opts("orders_total", "Orders placed, by result and code"), &["result", "code"])?,
            order_ack_seconds: Histogram::with_opts(
                HistogramOpts::new("order_ack_seconds", "Place request to engine acknowledgement")
                    .namespace("hob")
                    .buckets(latency.clone()),
            )?,
            match_latency_seconds: Histogram::with_opts(
                HistogramOpts::new("match_latency_seconds", "Placement to the market's decision (1 ms resolution)")
                    .namespace("hob")
                    .buckets(latency),
            )?,
            http_responses: IntCounterVec::new(
                opts("http_responses_total", "HTTP responses by status class"),
                &["class"],
            )?,
            rate_limited: IntCounterVec::new(
                opts("rate_limited_total", "Requests refused by a rate limit"),
                &["scope"],
            )?,
            ws_clients: IntGauge::with_opts(opts("ws_clients", "Open WebSocket connections"))?,
            ws_connections: IntCounter::with_opts(opts("ws_connections_total", "WebSocket connections accepted"))?,
            ws_dropped: IntCounterVec::new(
                opts("ws_dropped_total", "WebSocket connections dropped by the server"),
                &["reason"],
            )?,
            ws_messages_in: IntCounter::with_opts(opts("ws_messages_in_total", "WebSocket messages received"))?,
            ws_messages_out: IntCounter::with_opts(opts("ws_messages_out_total", "WebSocket messages queued"))?,
            mailbox_depth: IntGaugeVec::new(
                opts("mailbox_depth", "Messages waiting at actors, summed by kind"),
                &["kind"],
            )?,
            mailbox_depth_max: IntGaugeVec::new(
                opts("mailbox_depth_max", "Deepest actor mailbox, by kind"),
                &["kind"],
            )?,
            outbox_unpublished: IntGauge::with_opts(opts(
                "outbox_unpublished",
                "Outbox records not yet published (outbox lag), counted up to 10000",
            ))?,
            queue_depth: IntGaugeVec::new(opts("queue_depth", "Messages in each queue destination"), &["destination"])?,
            dead_letters: IntGaugeVec::new(
                opts("dead_letters", "Dead letters in each queue destination"),
                &["destination"],
            )?,
            actor_events: IntGaugeVec::new(opts("actor_events", "Actor counters since start, by event"), &["event"])?,
            projection: IntGaugeVec::new(opts("projection", "Projection loop counters since start"), &["counter"])?,
            feed_version: IntGaugeVec::new(
                opts("feed_version", "Market stream version the market-data feed is at"),
                &["market"],
            )?,
            private_feeds: IntGauge::with_opts(opts("private_feeds", "Users with a live private feed"))?,
            market_halted: IntGaugeVec::new(opts("market_halted", "1 while the market is halted"), &["market"])?,
            settlement: SettlementMetrics::new()?,
            probes: Mutex::new(Vec::new()),
            registry,
        };
        m.register()?;
        // Known label values start at 0, so their series exist before the first event (a
        // rate over a missing series is no data, not 0).
        for scope in ["ip", "user"] {
            m.rate_limited.with_label_values(&[scope]);
        }
        for class in ["2xx", "4xx", "5xx"] {
            m.http_responses.with_label_values(&[class]);
        }
        Ok(m)
    }

    fn register(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.orders.clone()))?;
        r.register(Box::new(self.order_ack_seconds.clone()))?;
        r.register(Box::new(self.match_latency_seconds.clone()))?;
        r.register(Box::new(self.http_responses.clone()))?;
        r.register(Box::new(self.rate_limited.clone()))?;
        r.register(Box::new(self.ws_clients.clone()))?;
        r.register(Box::new(self.ws_connections.clone()))?;
        r.register(Box::new(self.ws_dropped.clone()))?;
        r.register(Box::new(self.ws_messages_in.clone()))?;
        r.register(Box::new(self.ws_messages_out.clone()))?;
        r.register(Box::new(self.mailbox_depth.clone()))?;
        r.register(Box::new(self.mailbox_depth_max.clone()))?;
        r.register(Box::new(self.outbox_unpublished.clone()))?;
        r.register(Box::new(self.queue_depth.clone()))?;
        r.register(Box::new(self.dead_letters.clone()))?;
        r.register(Box::new(self.actor_events.clone()))?;
        r.register(Box::new(self.projection.clone()))?;
        r.register(Box::new(self.feed_version.clone()))?;
        r.register(Box::new(self.private_feeds.clone()))?;
        r.register(Box::new(self.market_halted.clone()))?;
        let s = &self.settlement;
        for gauge in [&s.operator_up, &s.pending_trades, &s.in_flight, &s.nonce_gap] {
            r.register(Box::new(gauge.clone()))?;
        }
        for counter in
            [&s.batches_settled, &s.trades_settled, &s.batches_failed, &s.trades_voided, &s.chain_errors, &s.alerts]
        {
            r.register(Box::new(counter.clone()))?;
        }
        Ok(())
    }

    /// Reads `probe` at every scrape from now on (one line where the server starts an
    /// operator).
    pub fn watch_settlement(&self, probe: std::sync::Arc<dyn SettlementProbe>) {
        // A poisoned lock means a panic while pushing; the list is still a list.
        self.probes.lock().unwrap_or_else(|e| e.into_inner()).push(probe);
    }

    /// Samples the watched operators (summed) into the settlement metrics.
    pub async fn refresh_settlement(&self) {
        let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut total = SettlementSample::default();
        let mut up = probes.len() as u64;
        for probe in &probes {
            let s = probe.sample().await;
            up -= u64::from(!s.up);
            total.batches_settled += s.batches_settled;
            total.trades_settled += s.trades_settled;
            total.batches_failed += s.batches_failed;
            total.trades_voided += s.trades_voided;
            total.chain_errors += s.chain_errors;
            total.alerts += s.alerts;
            total.pending_trades += s.pending_trades;
            total.in_flight += s.in_flight;
            total.nonce_gap += s.nonce_gap;
        }
        let m = &self.settlement;
        m.operator_up.set(gauge_value(up));
        advance(&m.batches_settled, total.batches_settled);
        advance(&m.trades_settled, total.trades_settled);
        advance(&m.batches_failed, total.batches_failed);
        advance(&m.trades_voided, total.trades_voided);
        advance(&m.chain_errors, total.chain_errors);
        advance(&m.alerts, total.alerts);
        m.pending_trades.set(gauge_value(total.pending_trades));
        m.in_flight.set(gauge_value(total.in_flight));
        m.nonce_gap.set(gauge_value(total.nonce_gap));
    }

    /// Counts a place by its outcome.
    pub fn order(&self, result: &str, code: &str) {
        self.orders.with_label_values(&[result, code]).inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

impl SettlementMetrics {
    fn new() -> Result<SettlementMetrics, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGauge::with_opts(opts(name, help));
        let counter = |name: &str, help: &str| IntCounter::with_opts(opts(name, help));
        Ok(SettlementMetrics {
            operator_up: gauge("settlement_operator_up", "Settlement operators running (0: none watched or stopped)")?,
            batches_settled: counter("settlement_batches_settled_total", "Settlement batches confirmed on chain")?,
            trades_settled: counter("settlement_trades_settled_total", "Trades settled on chain")?,
            batches_failed: counter("settlement_batches_failed_total", "Settlement batches that failed on chain")?,
            trades_voided: counter("settlement_trades_voided_total", "Trades the contract refused (voided)")?,
            chain_errors: counter("settlement_chain_errors_total", "Chain node errors seen by the operator")?,
            alerts: counter("settlement_alerts_total", "Settlement alerts raised")?,
            pending_trades: gauge("settlement_pending_trades", "Trades waiting for a settlement batch")?,
            in_flight: gauge("settlement_in_flight", "Settlement transactions sent and not yet mined")?,
            nonce_gap: gauge("settlement_nonce_gap", "Signed nonces the chain node holds neither mined nor pending")?,
        })
    }
}

/// Moves a counter up to `total` (a figure that only grows at its source); never down.
fn advance(counter: &IntCounter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// Saturating conversion for gauges.
pub fn gauge_value(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}
