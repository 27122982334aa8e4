//! `hob loadgen`: many WebSocket clients placing signed orders at a target rate, open loop, and
//! a report of throughput and ack latency. See README.md, "Load generator".
//!
//! A run: read the server's signing domain and the market's grid (`setup`), fund and log in
//! one trader per client, plan every client's send times (`schedule`) and orders (`mix`),
//! sign them all up front (`orders`), connect, then let each client send on schedule and
//! record answers (`client`, `stats`) until the schedule ends and the last answers are in or
//! the drain time is up; finally the `report`. `find_max` repeats runs at rising rates.
//! Everything runs on the caller's actix system thread (awc is single-threaded).

pub mod client;
pub mod find_max;
pub mod mix;
pub mod orders;
pub mod pacer;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod setup;
pub mod spawn;
pub mod stats;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use futures_util::future::{join, join_all};
use rust_decimal::Decimal;
use tokio::sync::Notify;

use crate::loadgen::client::{ClientPlan, ClientRun};
use crate::loadgen::mix::OrderMix;
use crate::loadgen::report::{Report, ReportSettings};
use crate::loadgen::schedule::{send_times, Arrivals};
use crate::loadgen::setup::{MarketTerms, Rest};
use crate::loadgen::stats::Recorder;

pub use report::Latency;
pub use spawn::SpawnedServer;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("bad load settings: {0}")]
    Config(String),
    /// Talking to the server (REST, WebSocket, signing), as the trading client reports it.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error("starting hob serve: {0}")]
    Spawn(String),
}

/// One run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadConfig {
    /// The server's HTTP base, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub clients: usize,
    /// Orders per second offered, all clients together.
    pub rate_per_s: f64,
    /// The measured window, after the warm-up.
    pub duration: Duration,
    /// Orders are sent but not counted for this long first.
    pub warmup: Duration,
    pub market: String,
    /// Orders are placed around this price (a decimal on the market's grid).
    pub mid: String,
    pub arrivals: Arrivals,
    pub seed: u64,
    /// How long to wait for the last answers after the last scheduled send.
    pub drain: Duration,
    pub progress: bool,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            url: "http://127.0.0.1:8080".into(),
            clients: 16,
            rate_per_s: 1_000.0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            market: "BTC-USDT".into(),
            mid: "100".into(),
            arrivals: Arrivals::Poisson,
            seed: 1,
            drain: Duration::from_secs(5),
            progress: false,
        }
    }
}

/// One trader of a run.
#[derive(Clone, Debug)]
pub struct ClientSummary {
    pub address: String,
    /// Its session token (Bearer), to look its orders up afterwards.
    pub token: String,
    pub run: ClientRun,
}

/// A run's report and, per client, what it saw.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub clients: Vec<ClientSummary>,
}

/// Orders up to 5 ticks either side of the mid; 60% IOC (see `mix`).
fn order_mix(terms: &MarketTerms, mid: &str) -> Result<OrderMix, LoadgenError> {
    let mid =
        Decimal::from_str(mid.trim()).map_err(|_| LoadgenError::Config(format!("--mid {mid:?} is not a decimal")))?;
    let mut mix = OrderMix {
        mid_ticks: orders::mid_ticks(terms, mid)?,
        rest_ticks: 3,
        cross_ticks: 5,
        ioc_percent: 60,
        min_lots: 1,
        max_lots: 1,
    };
    mix.min_lots = orders::min_lots(terms, mix.lowest_price_ticks())?;
    mix.max_lots = mix.min_lots.saturating_mul(3);
    Ok(mix)
}

fn check(config: &LoadConfig) -> Result<(), LoadgenError> {
    if config.clients == 0 {
        return Err(LoadgenError::Config("--clients must be at least 1".into()));
    }
    if !(config.rate_per_s > 0.0 && config.rate_per_s.is_finite()) {
        return Err(LoadgenError::Config("--rate must be a positive number of orders per second".into()));
    }
    if config.duration.is_zero() {
        return Err(LoadgenError::Config("--duration must be positive".into()));
    }
    Ok(())
}

/// Funds for `orders` orders of at most `max_lots` at most `max_ticks`, twice over.
fn funding(terms: &MarketTerms, orders: usize, max_lots: u64, max_ticks: u64) -> (String, String) {
    let qty = Decimal::from(orders as u64) * Decimal::from(max_lots) * terms.lot_size;
    let base = (qty * Decimal::TWO).ceil().max(Decimal::ONE);
    let quote = (qty * Decimal::from(max_ticks) * terms.tick_size * Decimal::TWO).ceil().max(Decimal::ONE);
    (base.to_string(), quote.to_string())
}

/// Runs one load test against `config.url`. Must run on an actix system (awc).
pub async fn run(config: &LoadConfig) -> Result<Outcome, LoadgenError> {
    check(config)?;
    let rest = Rest::new(&config.url);
    let terms = rest.market_terms(&config.market).await?;
    let mix = order_mix(&terms, &config.mid)?;

    let per_client = config.rate_per_s / config.clients as f64;
    let horizon = config.warmup + config.duration;
    let due: Vec<Vec<Duration>> = (0..config.clients)
        .map(|i| {
            let phase = i as f64 / config.clients as f64;
            send_times(per_client, config.arrivals, phase, config.seed.wrapping_add(i as u64), horizon)
        })
        .collect();
    let keys: Vec<PrivateKeySigner> = (0..config.clients).map(|_| PrivateKeySigner::random()).collect();

    // Funds and sessions, all clients at once.
    let max_ticks = mix.mid_ticks + mix.rest_ticks.max(mix.cross_ticks);
    let tokens = join_all(keys.iter().zip(&due).map(|(key, due)| {
        let (rest, terms) = (&rest, &terms);
        let (base, quote) = funding(terms, due.len(), mix.max_lots, max_ticks);
        async move {
            rest.faucet(key.address(), &terms.base, &base).await?;
            rest.faucet(key.address(), &terms.quote, &quote).await?;
            Ok::<String, LoadgenError>(rest.login(key).await?)
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<String>, LoadgenError>>()?;

    let requests = sign_all(&terms, &keys, &mix, config.seed, &due)?;
    let ws_url = rest.ws_url();
    let connections = join_all(tokens.iter().map(|t| client::connect(&ws_url, t)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, LoadgenError>>()?;

    let wakers: Vec<Arc<Notify>> = due.iter().map(|_| Arc::new(Notify::new())).collect();
    // A short lead so every client's first send is in the future when it starts.
    let start = Instant::now() + Duration::from_millis(100);
    let pacer = pacer::Pacer::start(start, &due, wakers.clone());
    let plans: Vec<ClientPlan> = requests
        .into_iter()
        .zip(due)
        .map(|(requests, due)| ClientPlan { requests, due, warmup: config.warmup })
        .collect();
    let scheduled: u64 = plans.iter().map(ClientPlan::measured).sum();
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let drain_until = start + horizon + config.drain;
    let done = Rc::new(Cell::new(false));
    let drives = async {
        let runs = join_all(
            connections
                .into_iter()
                .zip(plans)
                .zip(wakers)
                .map(|((conn, plan), wake)| client::drive(conn, plan, start, drain_until, recorder.clone(), wake)),
        )
        .await;
        done.set(true);
        runs
    };
    let label = format!("{:.0}/s", config.rate_per_s);
    let progress = async {
        if config.progress {
            progress::show(recorder.clone(), done.clone(), label, start).await;
        }
    };
    let (runs, ()) = join(drives, progress).await;
    drop(pacer);

    let in_flight_at_end = runs.iter().map(|r| r.in_flight_at_end).sum();
    let measured_from = start + config.warmup;
    let last_answer = recorder.borrow().last_answer;
    let answered_over_s = last_answer.map_or(0.0, |at| at.saturating_duration_since(measured_from).as_secs_f64());
    let settings = ReportSettings {
        market: config.market.clone(),
        clients: config.clients,
        arrivals: config.arrivals,
        offered_rate_per_s: config.rate_per_s,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        answered_over_s,
    };
    let report = Report::new(settings, scheduled, in_flight_at_end, &recorder.borrow());
    let clients = keys
        .iter()
        .zip(tokens)
        .zip(runs)
        .map(|((key, token), run)| ClientSummary { address: key.address().to_checksum(None), token, run })
        .collect();
    Ok(Outcome { report, clients })
}

/// A client's index and its signed requests.
type SignedClient = (usize, Vec<String>);

/// Signs every client's orders, on as many threads as there are cores.
fn sign_all(
    terms: &MarketTerms,
    keys: &[PrivateKeySigner],
    mix: &OrderMix,
    seed: u64,
    due: &[Vec<Duration>],
) -> Result<Vec<Vec<String>>, LoadgenError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(keys.len()).max(1);
    let jobs: Vec<(usize, &PrivateKeySigner, usize)> =
        keys.iter().zip(due).enumerate().map(|(i, (k, d))| (i, k, d.len())).collect();
    let chunk = jobs.len().div_ceil(threads).max(1);
    let signed: Vec<Result<Vec<SignedClient>, LoadgenError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&(i, key, count)| {
                            let order_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                            orders::plan_requests(terms, key, mix, order_seed, count).map(|r| (i, r))
                        })
                        .collect::<Result<Vec<_>, LoadgenError>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::client::ClientError::Sign("a signing thread panicked".into()).into())
                })
            })
            .collect()
    });
    let mut all = vec![Vec::new(); keys.len()];
    for part in signed {
        for (i, requests) in part? {
            all[i] = requests;
        }
    }
    Ok(all)
}
