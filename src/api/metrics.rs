//! Prometheus metrics (`GET /metrics`, text format). Events are counted where they happen
//! (orders, latencies, WebSocket traffic, rate limiting); gauges of the engine's state
//! (mailbox depths, outbox lag, queue depths, actor counters) are read at scrape time, so a
//! scrape costs the engine nothing between scrapes.
//!
//! Each server has its own registry, so several servers in one process (tests) do not share
//! counters.

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
            registry,
        };
        m.register()?;
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
        Ok(())
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

/// Saturating conversion for gauges.
pub fn gauge_value(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}
