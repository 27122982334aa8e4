//! What the settlement tests share: an engine on a fresh SQLite file with one market whose
//! grid matches the contract's, traders with real keys placing signed orders, a fast
//! settlement configuration, and waiting for the pipeline.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{keccak256, Address};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;

use hob::actors::settlement::SettlementHandle;
use hob::chain::eip712::SignedOrder;
use hob::chain::order::{to_signed_order, SigningTerms};
use hob::domain::{
    Amount, AssetId, Balance, Bps, MarketId, MarketSpec, NewOrder, OrderId, OrderType, PriceTicks, QtyLots, Side,
    StpMode, TimeInForce, UserId,
};
use hob::engine::{Engine, EngineConfig, PlaceOrder};
use hob::events::{Clock, EventStore, StreamId, SystemClock};
use hob::queue::inprocess::{DestinationConfig, InProcessQueue};
use hob::queue::operator_group;
use hob::settlement::payload::decode_operator_event;
use hob::settlement::policy::{Backoff, BatchPolicy};
use hob::settlement::{encode_order_auth, Chain, OperatorEvent, OperatorKey, SettlementConfig};
use hob::store::sqlite::SqliteEventStore;

pub type TestEngine = Engine<SqliteEventStore, InProcessQueue>;

/// The contract's id of the test market.
pub const CHAIN_MARKET: u32 = 1;
/// 0.001 of an 18-decimal base token per lot.
pub const BASE_LOT: u128 = 1_000_000_000_000_000;
/// Quote units per tick per lot.
pub const QUOTE_TICK: u128 = 10;

pub fn base() -> AssetId {
    AssetId::new("BASE").unwrap()
}

pub fn quote() -> AssetId {
    AssetId::new("QUOTE").unwrap()
}

pub fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BASE-QUOTE").unwrap(),
        base: base(),
        quote: quote(),
        base_lot: Amount(BASE_LOT),
        quote_tick: Amount(QUOTE_TICK),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000_000),
        min_notional: Amount(0),
        maker_fee: Bps(10),
        taker_fee: Bps(20),
    }
}

/// A key derived from `name`, so every test has its own accounts.
pub fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())).expect("a hash is a valid key")
}

pub fn user(key: &PrivateKeySigner) -> UserId {
    UserId(key.address().0 .0)
}

pub fn operator_key(name: &str) -> OperatorKey {
    OperatorKey::from_signer(key(name))
}

/// A trader of the test market.
pub struct Trader {
    pub key: PrivateKeySigner,
    pub user: UserId,
}

impl Trader {
    pub fn new(name: &str) -> Trader {
        let key = key(name);
        Trader { user: user(&key), key }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// A GTC limit order with its signed form, signed by `signer` (normally the trader).
    pub fn limit_signed_by(
        &self,
        signer: &PrivateKeySigner,
        domain: &Eip712Domain,
        side: Side,
        price: u64,
        qty: u64,
        nonce: u64,
    ) -> PlaceOrder {
        let order = NewOrder {
            id: OrderId(0),
            user: self.user,
            side,
            order_type: OrderType::Limit { price: PriceTicks(price) },
            qty: QtyLots(qty),
            tif: TimeInForce::Gtc,
            post_only: false,
            stp: StpMode::ExpireMaker,
        };
        let terms = SigningTerms { market: CHAIN_MARKET, max_fee: spec().max_fee_rate(false), nonce };
        let signed = to_signed_order(&order, terms).expect("signable");
        let signed = SignedOrder::sign(signer, signed, domain).expect("signs");
        PlaceOrder {
            market: spec().id,
            side,
            order_type: order.order_type,
            qty: order.qty,
            tif: order.tif,
            post_only: false,
            stp: StpMode::ExpireMaker,
            client_order_id: None,
            nonce,
            auth: Some(encode_order_auth(&signed)),
        }
    }

    pub fn limit(&self, domain: &Eip712Domain, side: Side, price: u64, qty: u64, nonce: u64) -> PlaceOrder {
        self.limit_signed_by(&self.key, domain, side, price, qty, nonce)
    }
}

/// An engine on a fresh file in `dir` whose settlement group is `operator`'s wallet.
pub fn start_engine(dir: &std::path::Path, operator: Address, clock: Arc<dyn Clock>) -> TestEngine {
    let store = Arc::new(SqliteEventStore::open(dir.join("hob.db")).unwrap());
    let queue = Arc::new(InProcessQueue::new(clock.clone(), DestinationConfig::default()));
    let config = EngineConfig {
        markets: vec![spec()],
        settlement_group: operator_group(UserId(operator.0 .0)),
        snapshot_every: 1_000,
        relay_poll: Duration::from_millis(20),
    };
    Engine::start(config, store, queue, clock)
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Settlement with short times: batches after 30 ms, polls every 20 ms, replaces after
/// `receipt_timeout`.
pub fn fast_config(key: OperatorKey, exchange: Address, chain_id: u64, receipt_timeout: Duration) -> SettlementConfig {
    let mut config = SettlementConfig::new(key, exchange, chain_id);
    config.batch = BatchPolicy { window_ms: 30, ..BatchPolicy::default() };
    config.poll_interval = Duration::from_millis(20);
    config.receipt_timeout = receipt_timeout;
    config.backoff = Backoff { base_ms: 20, max_ms: 200 };
    config
}

/// Polls `check` every 20 ms until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn balance(engine: &TestEngine, user: UserId, asset: AssetId) -> Balance {
    engine.user(user).await.unwrap().state.account().balance(asset)
}

/// Waits until the operator has settled or voided `trades` trades since its stream began and
/// holds no trade and no transaction.
pub async fn settled<C: Chain + 'static>(handle: &SettlementHandle<SqliteEventStore, C>, trades: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        // Between a failure and its restart the operator does not answer: not idle yet.
        let view = handle.inspect().await;
        if let Ok(v) = &view {
            let done = v.stats.settled_trades + v.stats.voided_trades;
            if done >= trades && v.pending_trades == 0 && v.batch.is_none() && v.in_flight.is_empty() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {trades} trades to settle; the operator: {view:?}, {:?}",
            handle.counters
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `user`'s settling balances are all final.
pub async fn nothing_settling(engine: &TestEngine, user: UserId, limit: Duration) {
    wait_until("nothing is settling", limit, || async {
        engine.user(user).await.unwrap().balances.iter().all(|(_, b)| b.settling.is_zero())
    })
    .await;
}

/// Every event of the operator's stream, decoded.
pub async fn operator_events(engine: &TestEngine, operator: Address) -> Vec<OperatorEvent> {
    let stream = StreamId::operator(UserId(operator.0 .0));
    let stored = engine.store().read_stream(&stream, 1).await.unwrap();
    stored
        .into_iter()
        .filter(|e| e.event_type != "actor.Consumed")
        .map(|e| decode_operator_event(&e.event_type, e.schema_version, e.payload).unwrap())
        .collect()
}
