//! One seeded run: random traders drive the real engine (actors, outbox relay, consumers,
//! domain code) on the simulated disk and network, the process crashes at random writes and
//! restarts, and once everything has settled the invariants and replay equality are checked.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;

use super::chain::{self as sim_chain, ChainConfig, ChainNode, ChainWorld};
use super::checks::{self, Ledger, SimFailure};
use super::queue::{Chaos, ChaosQueue};
use super::rng::Rng;
use super::settlement_checks;
use super::store::{CrashPoint, CrashingStore};
use crate::domain::{
    Amount, AssetId, Bps, MarketId, MarketSpec, OrderId, OrderType, PriceTicks, QtyLots, Side, StpMode, TimeInForce,
    TimestampMs, UserId, WithdrawalAuth,
};
use crate::engine::{Engine, EngineConfig, EngineError, PlaceOrder};
use crate::events::{EventStore, ManualClock};
use crate::queue::inprocess::{DestinationConfig, InProcessQueue};
use crate::queue::{MARKET_QUEUE, SETTLEMENT_QUEUE, USER_QUEUE};
use crate::store::MemoryEventStore;

/// What one run does; the seed decides everything else.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub users: u8,
    /// Rounds of trader actions (each round: one to three traders act at once).
    pub steps: u32,
    /// Percent of rounds that plan a crash at a random write.
    pub crash_percent: u64,
    pub chaos: Chaos,
    /// The engine's snapshot interval (small, so snapshots and their crashes happen).
    pub snapshot_every: u64,
    /// Settlement on the simulated chain: in how many seeds, with how many faults.
    pub chain: ChainConfig,
}

impl SimConfig {
    /// The `hob sim` flags that make a run of this configuration (empty for the default),
    /// so a failure's replay command is exact.
    pub fn flags(&self) -> String {
        let default = SimConfig::default();
        let mut flags = String::new();
        if self.steps != default.steps {
            flags.push_str(&format!(" --steps {}", self.steps));
        }
        if self.chain.percent != default.chain.percent {
            flags.push_str(&format!(" --chain-percent {}", self.chain.percent));
        }
        if self.chain.fault_percent != default.chain.fault_percent {
            flags.push_str(&format!(" --chain-faults {}", self.chain.fault_percent));
        }
        flags
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            users: 4,
            steps: 40,
            crash_percent: 8,
            chaos: Chaos { delay_percent: 10, duplicate_percent: 10, max_delay: Duration::from_millis(30) },
            snapshot_every: 16,
            chain: ChainConfig::default(),
        }
    }
}

/// What a run that held every invariant did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    pub seed: u64,
    pub actions: u64,
    pub acknowledged_orders: u64,
    pub crashes: u64,
    pub trades: u64,
    pub events: u64,
    /// Whether the run settled on the simulated chain.
    pub chain: bool,
    /// Chain faults started.
    pub chain_faults: u64,
    /// Trades settled in a confirmed batch, and trades voided.
    pub settled_trades: u64,
    pub voided_trades: u64,
    /// SHA-256 over every stored event's stream, version, type and payload: two runs of one
    /// seed must agree on it.
    pub digest: [u8; 32],
}

pub(super) type SimEngine = Engine<CrashingStore, ChaosQueue>;

pub(super) fn asset(symbol: &str) -> Option<AssetId> {
    AssetId::new(symbol).ok()
}

pub(super) fn market_spec() -> Option<MarketSpec> {
    Some(MarketSpec {
        id: MarketId::new("SIM-USD").ok()?,
        base: asset("SIM")?,
        quote: asset("USD")?,
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(25),
    })
}

/// Trader `n`: its id is its key's address, so its orders and withdrawals can be signed.
pub(super) fn user(n: u8) -> UserId {
    UserId(sim_chain::trader_key(n).address().0 .0)
}

fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default()
}

/// The node: an engine, its store view and its queue. A crash drops all of it but the disk.
pub(super) struct Node {
    pub engine: SimEngine,
    pub store: Arc<CrashingStore>,
    pub queue: Arc<ChaosQueue>,
    pub chain: Option<ChainNode>,
}

pub(super) struct World {
    pub config: SimConfig,
    pub spec: MarketSpec,
    pub disk: Arc<MemoryEventStore>,
    pub clock: Arc<ManualClock>,
    pub rng: Rng,
    pub ledger: Ledger,
    /// Next nonce per user.
    pub nonces: Vec<u64>,
    pub report: SimReport,
    /// The simulated chain, in the seeds that settle.
    pub chain: Option<ChainWorld>,
}

impl World {
    async fn boot(&mut self) -> Result<Node, String> {
        let store = Arc::new(CrashingStore::new(self.disk.clone()));
        // Redelivery is part of the chaos, so no message may die of it.
        let queue_config = DestinationConfig { max_receives: 10_000, ..DestinationConfig::default() };
        let inner = InProcessQueue::new(self.clock.clone(), queue_config);
        let queue = Arc::new(ChaosQueue::new(inner, self.config.chaos, self.rng.fork()));
        let config = EngineConfig {
            markets: vec![self.spec.clone()],
            settlement_group: sim_chain::settlement_group(),
            snapshot_every: self.config.snapshot_every,
            relay_poll: Duration::from_millis(20),
        };
        let engine = Engine::start(config, store.clone(), queue.clone(), self.clock.clone());
        let chain = match &self.chain {
            Some(chain) => Some(chain.start(&engine).await?),
            None => None,
        };
        Ok(Node { engine, store, queue, chain })
    }

    /// The process dies: nothing more is written, every in-memory part is dropped, and a new
    /// process starts on the same disk a simulated second later.
    async fn restart(&mut self, node: Node) -> Result<Node, String> {
        node.store.kill();
        node.engine.shutdown();
        drop(node);
        // Let cancelled tasks and stopped actors drop their handles.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.clock.advance(TimeDelta::seconds(1));
        self.report.crashes += 1;
        self.boot().await
    }

    fn now_ms(&self) -> u64 {
        use crate::events::Clock;
        self.clock.now().timestamp_millis().max(0) as u64
    }
}

/// One trader action, decided before it runs (so concurrent actions are decided in order).
#[derive(Clone, Debug)]
enum Action {
    Deposit {
        user: UserId,
        asset: AssetId,
        amount: Amount,
    },
    Withdraw {
        user: UserId,
        asset: AssetId,
        amount: Amount,
    },
    /// On-chain: credited by the chain watcher once deep enough.
    ChainDeposit {
        user: UserId,
        asset: AssetId,
        amount: Amount,
    },
    /// Signed, executed on-chain by the settlement operator.
    RequestWithdrawal {
        user: UserId,
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        auth: WithdrawalAuth,
    },
    Place {
        user: UserId,
        order: PlaceOrder,
    },
    Cancel {
        user: UserId,
        order: OrderId,
    },
    Amend {
        user: UserId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
    },
    CancelAll {
        user: UserId,
    },
    Halt(bool),
}

const LOW_TICKS: u64 = 95;
const BAND_TICKS: u64 = 11;

fn decide(world: &mut World) -> Action {
    let n = world.rng.below(u64::from(world.config.users)) as u8;
    let who = user(n);
    let spec = world.spec.clone();
    let roll = world.rng.below(100);
    let known = |world: &mut World| -> Option<(UserId, OrderId)> {
        let all = &world.ledger.acked;
        if all.is_empty() {
            return None;
        }
        let i = world.rng.below(all.len() as u64) as usize;
        all.get(i).copied()
    };
    match roll {
        0..=14 => {
            let asset = if world.rng.chance(50) { spec.base } else { spec.quote };
            let amount = Amount(u128::from(world.rng.between(1, 200)) * 10_000);
            match world.chain {
                Some(_) => Action::ChainDeposit { user: who, asset, amount },
                None => Action::Deposit { user: who, asset, amount },
            }
        }
        15..=19 => {
            let asset = if world.rng.chance(50) { spec.base } else { spec.quote };
            let amount = Amount(u128::from(world.rng.between(1, 100)) * 1_000);
            match &mut world.chain {
                Some(chain) => match chain.withdrawal(n, who, asset, amount.0) {
                    Some((nonce, auth)) => Action::RequestWithdrawal { user: who, nonce, asset, amount, auth },
                    None => Action::CancelAll { user: who },
                },
                None => Action::Withdraw { user: who, asset, amount },
            }
        }
        20..=69 => {
            let side = if world.rng.chance(50) { Side::Buy } else { Side::Sell };
            let price = PriceTicks(LOW_TICKS + world.rng.below(BAND_TICKS));
            let order_type = match world.rng.below(10) {
                0 => OrderType::Market { worst_price: Some(price) },
                1 if side == Side::Sell => OrderType::Market { worst_price: None },
                _ => OrderType::Limit { price },
            };
            let now = world.now_ms();
            let tif = match world.rng.below(10) {
                0 if matches!(order_type, OrderType::Limit { .. }) => TimeInForce::Fok,
                1 => TimeInForce::Ioc,
                2 if matches!(order_type, OrderType::Limit { .. }) => {
                    let expiry = now + world.rng.between(1, 200);
                    // A signed order's expiry is in whole seconds (the contract's clock).
                    let expiry = if world.chain.is_some() { expiry.div_ceil(1_000) * 1_000 } else { expiry };
                    TimeInForce::Gtd(TimestampMs(expiry))
                }
                _ if matches!(order_type, OrderType::Market { .. }) => TimeInForce::Ioc,
                _ => TimeInForce::Gtc,
            };
            let nonce = &mut world.nonces[n as usize];
            // Now and then a client re-sends an old nonce: it must be refused.
            let nonce_used = if *nonce > 1 && world.rng.chance(5) {
                *nonce - 1
            } else {
                *nonce += 1;
                *nonce
            };
            let stp = match world.rng.below(3) {
                0 => StpMode::ExpireMaker,
                1 => StpMode::ExpireTaker,
                _ => StpMode::ExpireBoth,
            };
            let mut order = PlaceOrder {
                market: spec.id,
                side,
                order_type,
                qty: QtyLots(world.rng.between(1, 20)),
                tif,
                post_only: world.rng.chance(10),
                stp,
                client_order_id: None,
                nonce: nonce_used,
                auth: None,
            };
            // Settled trades need both users' signed orders.
            if let Some(chain) = &world.chain {
                order.auth = chain.sign(n, who, &spec, &order);
            }
            Action::Place { user: who, order }
        }
        70..=84 => match known(world) {
            Some((owner, order)) => Action::Cancel { user: owner, order },
            None => Action::CancelAll { user: who },
        },
        // A signed order is never amended (its signature is for its terms): cancel instead.
        85..=94 if world.chain.is_some() => match known(world) {
            Some((owner, order)) => Action::Cancel { user: owner, order },
            None => Action::CancelAll { user: who },
        },
        85..=94 => match known(world) {
            Some((owner, order)) => Action::Amend {
                user: owner,
                order,
                price: PriceTicks(LOW_TICKS + world.rng.below(BAND_TICKS)),
                qty: QtyLots(world.rng.between(1, 20)),
            },
            None => Action::CancelAll { user: who },
        },
        95..=97 => Action::CancelAll { user: who },
        _ => Action::Halt(world.rng.chance(50)),
    }
}

/// What running an action tells the ledger.
enum Outcome {
    Placed(UserId, OrderId),
    Other,
}

async fn run(
    engine: &SimEngine,
    chain: Option<&ChainWorld>,
    market: MarketId,
    action: Action,
) -> Result<Outcome, EngineError> {
    match action {
        Action::ChainDeposit { user, asset, amount } => {
            if let Some(chain) = chain {
                chain.deposit(user, asset, amount.0);
            }
            Ok(Outcome::Other)
        }
        Action::RequestWithdrawal { user, nonce, asset, amount, auth } => {
            engine.request_withdrawal(user, nonce, asset, amount, auth).await.map(|_| Outcome::Other)
        }
        Action::Deposit { user, asset, amount } => engine.deposit(user, asset, amount).await.map(|_| Outcome::Other),
        Action::Withdraw { user, asset, amount } => engine.withdraw(user, asset, amount).await.map(|_| Outcome::Other),
        Action::Place { user, order } => engine.place(user, order).await.map(|id| Outcome::Placed(user, id)),
        Action::Cancel { user, order } => engine.cancel(user, market, order).await.map(|_| Outcome::Other),
        Action::Amend { user, order, price, qty } => {
            engine.amend(user, market, order, price, qty).await.map(|_| Outcome::Other)
        }
        Action::CancelAll { user } => engine.cancel_all(user, Some(market)).await.map(|_| Outcome::Other),
        Action::Halt(halted) => engine.set_halted(market, halted).await.map(|_| Outcome::Other),
    }
}

/// Lets the pipeline run until every outbox record is published and the queues are empty,
/// moving the simulated clock so delayed messages come back. Fails after `limit` rounds.
/// With a chain, each round mines a block, and settlement must be idle too.
pub(super) async fn quiesce(world: &World, node: &Node, limit: u32) -> Result<(), String> {
    let mut calm = 0;
    let mut busy_chain = None;
    for _ in 0..limit {
        let unpublished = node.store.disk().fetch_unpublished(1).await.map_err(|e| e.to_string())?.len();
        let mut busy: usize = [MARKET_QUEUE, USER_QUEUE].iter().map(|d| node.queue.inner().depth(d)).sum();
        if let (Some(chain), Some(chain_node)) = (&world.chain, &node.chain) {
            busy += node.queue.inner().depth(SETTLEMENT_QUEUE);
            busy_chain = chain.settle_round(chain_node).await;
        }
        calm = if unpublished == 0 && busy == 0 && busy_chain.is_none() { calm + 1 } else { 0 };
        if calm >= 3 {
            return Ok(());
        }
        world.clock.advance(TimeDelta::milliseconds(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unpublished = node.store.disk().fetch_unpublished(8).await.map_err(|e| e.to_string())?;
    let depths: Vec<(&str, usize)> =
        [MARKET_QUEUE, USER_QUEUE, SETTLEMENT_QUEUE].iter().map(|d| (*d, node.queue.inner().depth(d))).collect();
    Err(format!(
        "the pipeline did not settle within {limit} rounds: queue depths {depths:?}, {} unpublished outbox records ({:?}), settlement: {}",
        unpublished.len(),
        unpublished.iter().map(|r| &r.record.destination).collect::<Vec<_>>(),
        busy_chain.as_deref().unwrap_or("idle")
    ))
}

async fn simulate(seed: u64, config: SimConfig) -> Result<SimReport, SimFailure> {
    let flags = config.flags();
    let fail = |step: u32, message: String| SimFailure { seed, step, message, flags: flags.clone() };
    let Some(spec) = market_spec() else { return Err(fail(0, "the simulated market's spec is invalid".into())) };
    let mut rng = Rng::new(seed);
    let chain = rng.chance(config.chain.percent).then(|| ChainWorld::new(&spec, config.users));
    let mut world = World {
        nonces: vec![0; usize::from(config.users)],
        chain,
        config,
        spec,
        disk: Arc::new(MemoryEventStore::new()),
        clock: Arc::new(ManualClock::new(epoch())),
        rng,
        ledger: Ledger::default(),
        report: SimReport { seed, ..SimReport::default() },
    };
    if let Some(chain) = &world.chain {
        let traders: Vec<UserId> = (0..world.config.users).map(user).collect();
        chain.prepare(&traders).await;
        world.report.chain = true;
    }
    let mut node = world.boot().await.map_err(|e| fail(0, e))?;
    let market = world.spec.id;
    for step in 0..world.config.steps {
        if world.rng.chance(world.config.crash_percent) {
            let point = match world.rng.below(5) {
                0 | 1 => CrashPoint::BeforeAppend(world.rng.below(4) as u32),
                2 | 3 => CrashPoint::AfterAppend(world.rng.below(4) as u32),
                _ => CrashPoint::MidSnapshot,
            };
            node.store.plan(point);
        }
        let actors = world.rng.between(1, 3);
        let actions: Vec<Action> = (0..actors).map(|_| decide(&mut world)).collect();
        world.report.actions += actions.len() as u64;
        let chain = world.chain.as_ref();
        let results = join_all(actions.into_iter().map(|a| run(&node.engine, chain, market, a))).await;
        for result in results {
            match result {
                Ok(Outcome::Placed(user, order)) => world.ledger.acked.push((user, order)),
                Ok(Outcome::Other) => {}
                // Refusals are the traders' mistakes; failures are the crash's doing.
                Err(_) => {}
            }
        }
        if let (Some(chain), Some(chain_node), false) = (&mut world.chain, &mut node.chain, node.store.is_dead()) {
            let traders: Vec<(UserId, u64)> =
                (0..world.config.users).map(|n| (user(n), world.nonces[usize::from(n)])).collect();
            let faults = world.config.chain.fault_percent;
            let stepped = chain.step(step, &mut world.rng, faults, &traders, chain_node, &node.engine).await;
            // A restart the crash cut short is redone by the node's restart below.
            if let Err(e) = stepped {
                if !node.store.is_dead() {
                    return Err(fail(step, e));
                }
            }
        }
        world.clock.advance(TimeDelta::milliseconds(world.rng.between(0, 40) as i64));
        tokio::time::sleep(Duration::from_millis(world.rng.between(0, 30))).await;
        if node.store.is_dead() {
            node = world.restart(node).await.map_err(|e| fail(step, e))?;
        }
    }
    let steps = world.config.steps;
    // The last crash may be planned but not hit: clear it by a clean restart if it would.
    if node.store.is_dead() {
        node = world.restart(node).await.map_err(|e| fail(steps, e))?;
    }
    if let Some(chain) = &mut world.chain {
        chain.calm(&node.engine).await;
    }
    let settle = quiesce(&world, &node, 3_000).await;
    if node.store.is_dead() {
        // A planned crash hit while settling: one more restart, with no plan.
        node = world.restart(node).await.map_err(|e| fail(steps, e))?;
        quiesce(&world, &node, 3_000).await.map_err(|e| fail(steps, e))?;
    } else {
        settle.map_err(|e| fail(steps, e))?;
    }
    world.report.acknowledged_orders = world.ledger.acked.len() as u64;
    checks::check_all(&mut world, &node).await.map_err(|e| fail(world.config.steps, e))?;
    let (settled, voided) = settlement_checks::check(&world).await.map_err(|e| fail(world.config.steps, e))?;
    (world.report.settled_trades, world.report.voided_trades) = (settled, voided);

    // Replay equality: a fresh process on the same disk holds exactly what the live one does.
    let live = checks::visible(&world, &node).await.map_err(|e| fail(world.config.steps, e))?;
    node.engine.shutdown();
    drop(node);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The fresh process replays users and markets; its chain actors would only idle.
    let chain = world.chain.take();
    let fresh = world.boot().await.map_err(|e| fail(world.config.steps, e));
    world.chain = chain;
    let fresh = fresh?;
    let replayed = checks::visible(&world, &fresh).await.map_err(|e| fail(world.config.steps, e))?;
    if live != replayed {
        return Err(fail(
            world.config.steps,
            format!("replayed state differs from the live state:\n{live:?}\n{replayed:?}"),
        ));
    }
    fresh.engine.shutdown();
    if let Some(chain) = &world.chain {
        world.report.chain_faults = chain.fault_count;
    }
    let (events, trades, digest) = checks::digest(&world.disk);
    world.report.events = events;
    world.report.trades = trades;
    world.report.digest = digest;
    Ok(world.report)
}

/// Runs one seed on its own single-threaded runtime with a paused clock: timers fire as soon
/// as nothing else can run, so a run takes milliseconds and its interleaving depends on the
/// seed alone.
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<SimReport, SimFailure> {
    let config = config.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => return Err(SimFailure { seed, step: 0, message: format!("no runtime: {e}"), flags: config.flags() }),
    };
    let system = actix_rt::System::with_tokio_rt(move || runtime);
    system.block_on(simulate(seed, config))
}
