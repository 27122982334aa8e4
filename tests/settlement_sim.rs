//! The settlement pipeline on the simulated chain (`settlement::sim`), end to end through the
//! engine: signed orders placed, matched, batched, settled, and the users' settling funds
//! made available; and every way settlement can go wrong, each with the recovery the design
//! promises. The simulated chain behaves like anvil where it matters (checked by the Chain
//! conformance suite against both); the same scenarios run on a real anvil in
//! `settlement_anvil.rs`.

mod settlement_support;

use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::{Transaction as _, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, Bytes};
use alloy::sol_types::Eip712Domain;

use hob::actors::settlement::SettlementHandle;
use hob::chain::eip712::domain;
use hob::domain::{Amount, MarketStatus, Side};
use hob::events::EventStore;
use hob::queue::{DestinationConfig, MARKET_QUEUE};
use hob::settlement::chain::{CallRequest, TxHash};
use hob::settlement::conformance::ChainControl;
use hob::settlement::nonce::{NonceEvent, TxPurpose};
use hob::settlement::{
    Chain, ChainError, NonceCounts, OperatorEvent, OperatorKey, Sent, SettlementConfig, SimChain, TxReceipt, VoidReason,
};
use hob::store::sqlite::SqliteEventStore;
use settlement_support::*;

const CHAIN_ID: u64 = 31_337;
const LIMIT: Duration = Duration::from_secs(10);
const ALICE_QUOTE: u128 = 1_000_000_000;
const BOB_BASE: u128 = 100 * BASE_LOT;

struct Sim {
    _dir: tempfile::TempDir,
    engine: TestEngine,
    chain: Arc<SimChain>,
    handle: SettlementHandle<SqliteEventStore, SimChain>,
    operator: OperatorKey,
    domain: Eip712Domain,
    alice: Trader,
    bob: Trader,
}

impl Sim {
    async fn start(name: &str, automine: bool, tune: impl FnOnce(&mut SettlementConfig)) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let operator = operator_key(&format!("{name}/operator"));
        let exchange = Address::repeat_byte(0xEE);
        let chain = Arc::new(SimChain::new(CHAIN_ID, exchange, [operator.address()]));
        chain.set_automine(automine).await;
        let engine = start_engine(dir.path(), operator.address(), system_clock());
        let mut config = fast_config(operator.clone(), exchange, CHAIN_ID, Duration::from_millis(150));
        tune(&mut config);
        let handle = engine.start_settlement(config, chain.clone()).await.unwrap();
        let (alice, bob) = (Trader::new(&format!("{name}/alice")), Trader::new(&format!("{name}/bob")));
        engine.deposit(alice.user, quote(), Amount(ALICE_QUOTE)).await.unwrap();
        engine.deposit(bob.user, base(), Amount(BOB_BASE)).await.unwrap();
        Sim { _dir: dir, engine, chain, handle, operator, domain: domain(CHAIN_ID, exchange), alice, bob }
    }

    /// Bob rests a sell of 10 lots at 100 (nonce 1); Alice takes `qty` of it (nonce 1).
    async fn trade(&self, qty: u64) {
        self.engine.place(self.bob.user, self.bob.limit(&self.domain, Side::Sell, 100, 10, 1)).await.unwrap();
        self.engine.place(self.alice.user, self.alice.limit(&self.domain, Side::Buy, 100, qty, 1)).await.unwrap();
    }

    async fn events(&self) -> Vec<OperatorEvent> {
        operator_events(&self.engine, self.operator.address()).await
    }

    async fn in_flight(&self) -> usize {
        self.handle.inspect().await.unwrap().in_flight.len()
    }
}

/// What Alice pays for `qty` lots at 100 as the taker (20 bps), and what Bob nets as the maker
/// (10 bps), in quote units.
fn amounts(qty: u64) -> (u128, u128) {
    let notional = 100 * qty as u128 * QUOTE_TICK;
    (notional + notional * 20 / 10_000, notional - notional * 10 / 10_000)
}

#[actix_rt::test]
async fn a_matched_trade_settles_and_both_users_funds_become_available() {
    let sim = Sim::start("happy", true, |_| {}).await;
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    nothing_settling(&sim.engine, sim.bob.user, LIMIT).await;

    let (paid, netted) = amounts(4);
    let alice = balance(&sim.engine, sim.alice.user, base()).await;
    assert_eq!((alice.available, alice.settling), (Amount(4 * BASE_LOT), Amount(0)));
    assert_eq!(balance(&sim.engine, sim.alice.user, quote()).await.available, Amount(ALICE_QUOTE - paid));
    let bob = balance(&sim.engine, sim.bob.user, quote()).await;
    assert_eq!((bob.available, bob.settling), (Amount(netted), Amount(0)));
    assert_eq!(sim.chain.next_batch_index(), 1, "one batch settled on-chain");

    let events = sim.events().await;
    let confirmed = events.iter().filter(|e| matches!(e, OperatorEvent::SettlementConfirmed { .. })).count();
    assert_eq!(confirmed, 1);
    assert_eq!(sim.chain.mined_by(sim.operator.address()), vec![(0, Some(Address::repeat_byte(0xEE)), true)]);
    assert_eq!(sim.handle.alerts.count(), 0);
}

#[actix_rt::test]
async fn a_refused_signature_voids_the_trade_restores_both_users_halts_the_market_and_alerts() {
    let sim = Sim::start("badsig", true, |_| {}).await;
    sim.chain.refuse_signatures_of(sim.alice.address());
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    nothing_settling(&sim.engine, sim.bob.user, LIMIT).await;

    // Both users have what they had before the trade: Alice's quote (fee included) back,
    // Bob's 4 lots back as available beside his order's remaining 6 lots.
    let alice = balance(&sim.engine, sim.alice.user, quote()).await;
    assert_eq!(alice.available, Amount(ALICE_QUOTE));
    let bob = balance(&sim.engine, sim.bob.user, base()).await;
    assert_eq!((bob.available, bob.locked), (Amount(BOB_BASE - 6 * BASE_LOT), Amount(6 * BASE_LOT)));
    assert_eq!(balance(&sim.engine, sim.bob.user, quote()).await.total(), Some(Amount(0)));

    let voided: Vec<_> = sim
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            OperatorEvent::TradeVoided { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(voided, vec![VoidReason::BadSignature]);
    wait_until("the market halts", LIMIT, || async {
        sim.engine.market(spec().id, 1, None).await.unwrap().status == MarketStatus::Halted
    })
    .await;
    let kinds: Vec<_> = sim.handle.alerts.recent().iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec!["trade_voided", "market_halted"]);
    assert!(sim.chain.mined_by(sim.operator.address()).is_empty(), "nothing was sent: the estimate refused it");
}

#[actix_rt::test]
async fn a_batch_that_keeps_failing_is_rolled_forward() {
    let sim = Sim::start("rollforward", true, |c| c.max_failures = 3).await;
    sim.chain.set_paused(true);
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;

    let events = sim.events().await;
    let failures = events.iter().filter(|e| matches!(e, OperatorEvent::AttemptFailed { .. })).count();
    assert_eq!(failures, 3);
    assert!(events.iter().any(|e| matches!(e, OperatorEvent::TradeVoided { reason: VoidReason::GaveUp, .. })));
    assert!(matches!(events.last(), Some(OperatorEvent::SettlementFailed { .. })));
    assert_eq!(balance(&sim.engine, sim.alice.user, quote()).await.available, Amount(ALICE_QUOTE));
    wait_until("the market halts", LIMIT, || async {
        sim.engine.market(spec().id, 1, None).await.unwrap().status == MarketStatus::Halted
    })
    .await;
    assert!(sim.handle.alerts.recent().iter().any(|a| a.kind == "settlement_failed"));
}

#[actix_rt::test]
async fn an_unreachable_node_is_retried_with_backoff_and_the_same_transaction_settles() {
    let sim = Sim::start("transient", true, |_| {}).await;
    sim.chain.fail_sends(3);
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;
    let signed =
        sim.events().await.into_iter().filter(|e| matches!(e, OperatorEvent::Nonce(NonceEvent::Signed { .. })));
    assert_eq!(signed.count(), 1, "one transaction, sent until the node took it");
    assert!(sim.chain.sends() >= 4);
    assert_eq!(sim.chain.mined_by(sim.operator.address()).len(), 1);
    assert!(sim.handle.counters.chain_errors.load(std::sync::atomic::Ordering::Relaxed) >= 3);
}

#[actix_rt::test]
async fn an_overdue_transaction_is_replaced_at_the_same_nonce_with_a_higher_fee() {
    let sim = Sim::start("bump", false, |c| c.stuck_after_attempts = 5).await;
    sim.trade(4).await;
    wait_until("a replacement is signed", LIMIT, || async {
        sim.handle.inspect().await.unwrap().in_flight.first().is_some_and(|s| s.attempts.len() >= 2)
    })
    .await;
    let view = sim.handle.inspect().await.unwrap();
    let slot = &view.in_flight[0];
    assert_eq!(slot.nonce, 0, "the same nonce");
    assert!(slot.attempts[1].0 * 10 >= slot.attempts[0].0 * 11, "at least 10% more: {:?}", slot.attempts);
    sim.chain.mine(1).await;
    settled(&sim.handle, 1, LIMIT).await;
    assert_eq!(sim.chain.mined_by(sim.operator.address()).len(), 1, "one of the two was mined");
    assert_eq!(sim.chain.next_batch_index(), 1);
}

#[actix_rt::test]
async fn a_stuck_nonce_is_consumed_by_a_self_transfer_and_the_batch_goes_out_at_a_fresh_nonce() {
    let sim = Sim::start("stuck", false, |c| c.stuck_after_attempts = 2).await;
    sim.trade(4).await;
    wait_until("the stuck nonce gets a self-transfer", LIMIT, || async {
        let view = sim.handle.inspect().await.unwrap();
        view.in_flight.len() == 2 && view.in_flight[0].attempts.last().map(|a| a.1) == Some(TxPurpose::Filler)
    })
    .await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 1, LIMIT).await;
    let operator = sim.operator.address();
    let mined = sim.chain.mined_by(operator);
    assert_eq!(mined[0], (0, Some(operator), true), "nonce 0: the zero-value self-transfer");
    assert_eq!(mined[1], (1, Some(Address::repeat_byte(0xEE)), true), "nonce 1: the batch");
    assert_eq!(sim.chain.next_batch_index(), 1);
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
}

#[actix_rt::test]
async fn a_restarted_operator_neither_reuses_nor_skips_a_nonce() {
    let mut sim = Sim::start("restart", false, |c| c.receipt_timeout = Duration::from_secs(60)).await;
    sim.trade(4).await;
    wait_until("the batch is sent", LIMIT, || async { sim.in_flight().await == 1 }).await;
    sim.handle.stop();
    let config = fast_config(sim.operator.clone(), Address::repeat_byte(0xEE), CHAIN_ID, Duration::from_secs(60));
    sim.handle = sim.engine.start_settlement(config, sim.chain.clone()).await.unwrap();
    assert_eq!(sim.handle.inspect().await.unwrap().next_nonce, 1, "the new operator knows nonce 0 is taken");
    sim.chain.mine(1).await;
    settled(&sim.handle, 1, LIMIT).await;

    // A second trade after the restart takes the next nonce.
    sim.engine.place(sim.alice.user, sim.alice.limit(&sim.domain, Side::Buy, 100, 2, 2)).await.unwrap();
    wait_until("the second batch is sent", LIMIT, || async { sim.in_flight().await == 1 }).await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 2, LIMIT).await;
    let nonces: Vec<u64> = sim.chain.mined_by(sim.operator.address()).iter().map(|m| m.0).collect();
    assert_eq!(nonces, vec![0, 1]);
    assert_eq!(sim.chain.next_batch_index(), 2);
}

#[actix_rt::test]
async fn a_batch_index_taken_by_another_batch_is_taken_up() {
    let sim = Sim::start("reindex", true, |_| {}).await;
    sim.chain.settle_elsewhere();
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;
    let confirmed = sim.events().await.into_iter().find_map(|e| match e {
        OperatorEvent::SettlementConfirmed { chain_index, .. } => Some(chain_index),
        _ => None,
    });
    assert_eq!(confirmed, Some(1), "settled as the contract's batch 1, after the other batch 0");
    assert_eq!(sim.chain.next_batch_index(), 2);
    assert_eq!(sim.handle.alerts.count(), 0);
}

#[actix_rt::test]
async fn a_reorged_out_settlement_is_sent_again_and_confirmed_in_the_new_chain() {
    let sim = Sim::start("reorg", true, |c| c.confirmations = 2).await;
    sim.trade(4).await;
    wait_until("the batch is mined", LIMIT, || async { sim.chain.next_batch_index() == 1 }).await;
    sim.chain.reorg(1).await;
    assert_eq!(sim.chain.next_batch_index(), 0, "the reorg took the settlement out");
    wait_until("it is sent and mined again", LIMIT, || async { sim.chain.next_batch_index() == 1 }).await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 1, LIMIT).await;
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    assert_eq!(sim.chain.mined_by(sim.operator.address()).len(), 1);
}

#[actix_rt::test]
async fn an_order_invalidated_on_chain_voids_its_trade_and_is_cancelled_without_a_halt() {
    let sim = Sim::start("invalidated", true, |_| {}).await;
    // Alice's buy of 10 rests first, so she is the maker; then she invalidates nonce 1.
    sim.engine.place(sim.alice.user, sim.alice.limit(&sim.domain, Side::Buy, 100, 10, 1)).await.unwrap();
    sim.chain.invalidate_nonces(sim.alice.address(), 2);
    sim.engine.place(sim.bob.user, sim.bob.limit(&sim.domain, Side::Sell, 100, 4, 1)).await.unwrap();
    settled(&sim.handle, 1, LIMIT).await;
    wait_until("alice's order is cancelled and her quote restored", LIMIT, || async {
        let b = balance(&sim.engine, sim.alice.user, quote()).await;
        b.available == Amount(ALICE_QUOTE) && b.locked.is_zero()
    })
    .await;
    assert_eq!(balance(&sim.engine, sim.bob.user, base()).await.available, Amount(BOB_BASE));
    let market = sim.engine.market(spec().id, 1, None).await.unwrap();
    assert_eq!((market.status, market.resting_orders), (MarketStatus::Open, 0));
    assert_eq!(sim.handle.alerts.count(), 0, "the user's own doing is no alert");
}

#[actix_rt::test]
async fn an_operator_that_loses_its_stream_to_another_writer_stops_and_is_rebuilt_from_it() {
    use hob::events::{AppendRequest, EventStore, NewEvent, StreamId, SystemClock};
    use hob::settlement::payload::encode_operator_event;

    let sim = Sim::start("conflict", true, |_| {}).await;
    sim.trade(4).await;
    settled(&sim.handle, 1, LIMIT).await;

    // Another writer appends to the operator's stream behind its back.
    let stream = StreamId::operator(hob::domain::UserId(sim.operator.address().0 .0));
    let version = sim.engine.store().stream_version(&stream).await.unwrap();
    let e = encode_operator_event(&OperatorEvent::ChainIndexSynced { next: 1 });
    let foreign = NewEvent::new(&SystemClock, uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), e.event_type, 1, e.payload);
    let append = AppendRequest {
        stream,
        expected_version: version,
        events: vec![foreign],
        outbox: vec![],
        idempotency_key: None,
    };
    sim.engine.store().append(append).await.unwrap();

    // The operator's next append conflicts: it stops, and is rebuilt with the foreign event.
    sim.engine.place(sim.alice.user, sim.alice.limit(&sim.domain, Side::Buy, 100, 2, 2)).await.unwrap();
    settled(&sim.handle, 2, LIMIT).await;
    let restarts = sim.engine.registry().deps().counters.restarts.load(std::sync::atomic::Ordering::Relaxed);
    assert!(restarts >= 1, "the supervisor rebuilt the operator");
    assert_eq!(sim.chain.next_batch_index(), 2);
    assert_eq!(
        sim.handle.inspect().await.unwrap().version,
        sim.engine
            .store()
            .stream_version(&StreamId::operator(hob::domain::UserId(sim.operator.address().0 .0)))
            .await
            .unwrap()
    );
}

/// The simulated chain, mining whatever is pooled just before a self-transfer arrives: the
/// settlement a stuck-nonce self-transfer means to replace is mined first after all.
struct MinedUnderTheFiller {
    inner: Arc<SimChain>,
    operator: Address,
}

impl Chain for MinedUnderTheFiller {
    async fn chain_id(&self) -> Result<u64, ChainError> {
        self.inner.chain_id().await
    }
    async fn nonce_counts(&self, address: Address) -> Result<NonceCounts, ChainError> {
        self.inner.nonce_counts(address).await
    }
    async fn gas_price(&self) -> Result<u128, ChainError> {
        self.inner.gas_price().await
    }
    async fn block_number(&self) -> Result<u64, ChainError> {
        self.inner.block_number().await
    }
    async fn send_raw(&self, raw: Bytes) -> Result<Sent, ChainError> {
        let tx = TxEnvelope::decode_2718(&mut &raw[..]).expect("a signed transaction");
        if tx.to() == Some(self.operator) {
            self.inner.mine(1).await;
        }
        self.inner.send_raw(raw).await
    }
    async fn receipt(&self, hash: TxHash) -> Result<Option<TxReceipt>, ChainError> {
        self.inner.receipt(hash).await
    }
    async fn is_known(&self, hash: TxHash) -> Result<bool, ChainError> {
        self.inner.is_known(hash).await
    }
    async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, ChainError> {
        self.inner.estimate_gas(call).await
    }
    async fn call(&self, call: &CallRequest) -> Result<Bytes, ChainError> {
        self.inner.call(call).await
    }
}

#[actix_rt::test]
async fn a_settlement_mined_just_before_its_stuck_nonce_is_consumed_is_confirmed_never_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_key("raced/operator");
    let exchange = Address::repeat_byte(0xEE);
    let sim = Arc::new(SimChain::new(CHAIN_ID, exchange, [operator.address()]));
    sim.set_automine(false).await;
    let chain = Arc::new(MinedUnderTheFiller { inner: sim.clone(), operator: operator.address() });
    let engine = start_engine(dir.path(), operator.address(), system_clock());
    let mut config = fast_config(operator.clone(), exchange, CHAIN_ID, Duration::from_millis(150));
    config.stuck_after_attempts = 1;
    let handle = engine.start_settlement(config, chain.clone()).await.unwrap();
    let (alice, bob) = (Trader::new("raced/alice"), Trader::new("raced/bob"));
    engine.deposit(alice.user, quote(), Amount(ALICE_QUOTE)).await.unwrap();
    engine.deposit(bob.user, base(), Amount(BOB_BASE)).await.unwrap();
    let domain = domain(CHAIN_ID, exchange);
    engine.place(bob.user, bob.limit(&domain, Side::Sell, 100, 10, 1)).await.unwrap();
    engine.place(alice.user, alice.limit(&domain, Side::Buy, 100, 4, 1)).await.unwrap();

    // Overdue once = stuck: the self-transfer finds the settlement mined under it, and the
    // batch, refused at its old index, must wait for that settlement instead of moving on.
    wait_until("the batch settles", LIMIT, || async { sim.next_batch_index() >= 1 }).await;
    sim.set_automine(true).await;
    settled(&handle, 1, LIMIT).await;
    assert_eq!(sim.next_batch_index(), 1, "settled once, not again under the next index");
    let events = operator_events(&engine, operator.address()).await;
    assert!(!events.iter().any(|e| matches!(e, OperatorEvent::TradeVoided { .. })));
    assert!(!events.iter().any(|e| matches!(e, OperatorEvent::ChainIndexSynced { next } if *next > 0)));
    nothing_settling(&engine, alice.user, LIMIT).await;
}

#[actix_rt::test]
async fn the_settlement_metrics_read_the_running_operator_and_its_chain() {
    // given an operator that settles one trade and has the contract void another's
    let sim = Sim::start("metrics", true, |_| {}).await;
    let Sim { _dir, engine, chain, handle, operator: _, domain, alice, bob } = sim;
    let handle = Arc::new(handle);
    let metrics = hob::api::metrics::Metrics::new().unwrap();
    metrics.watch_settlement(Arc::new(hob::api::settlement_probe::OperatorProbe::new(handle.clone(), chain.clone())));
    engine.place(bob.user, bob.limit(&domain, Side::Sell, 100, 10, 1)).await.unwrap();
    engine.place(alice.user, alice.limit(&domain, Side::Buy, 100, 4, 1)).await.unwrap();
    settled(&handle, 1, LIMIT).await;
    chain.refuse_signatures_of(alice.address());
    engine.place(alice.user, alice.limit(&domain, Side::Buy, 100, 2, 2)).await.unwrap();
    settled(&handle, 2, LIMIT).await;
    // when the metrics are refreshed, as a scrape does
    metrics.refresh_settlement().await;
    let text = metrics.render().unwrap();
    // then they show what the operator's stream and the chain say
    for line in [
        "hob_settlement_operator_up 1",
        "hob_settlement_batches_settled_total 1",
        "hob_settlement_trades_settled_total 1",
        "hob_settlement_trades_voided_total 1",
        "hob_settlement_pending_trades 0",
        "hob_settlement_in_flight 0",
        "hob_settlement_nonce_gap 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    assert!(!text.lines().any(|l| l == "hob_settlement_alerts_total 0"), "the void raised an alert:\n{text}");
    // and a stopped operator reads as down, its totals kept
    handle.stop();
    wait_until("the operator stops", LIMIT, || async { !handle.running() }).await;
    metrics.refresh_settlement().await;
    let text = metrics.render().unwrap();
    assert!(text.lines().any(|l| l == "hob_settlement_operator_up 0"), "{text}");
    assert!(text.lines().any(|l| l == "hob_settlement_trades_voided_total 1"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// confirm-before-commit
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn in_confirm_before_commit_mode_more_commands_than_the_queue_redelivers_queue_behind_a_trade_and_all_reach_the_book(
) {
    // given a market in confirm-before-commit mode whose first trade waits for a block
    let sim = Sim::start("confirm-queue", false, |c| c.receipt_timeout = Duration::from_secs(60)).await;
    sim.engine.set_confirm_before_commit(spec().id, true);
    sim.trade(1).await;
    wait_until("the trade's settlement is sent", LIMIT, || async { sim.chain.pooled() == 1 }).await;
    // when more orders than the market queue delivers a record before dead-lettering it
    // queue up behind that trade (they rest: bids below the ask)
    let behind = DestinationConfig::default().max_receives as usize + 2;
    for nonce in 2..2 + behind as u64 {
        sim.engine.place(sim.alice.user, sim.alice.limit(&sim.domain, Side::Buy, 90, 1, nonce)).await.unwrap();
    }
    // (at least: one loaded `make test` never saw exactly this count within the limit; any
    // count from here on is still more commands than `max_receives` behind the trade)
    wait_until("they are all queued", LIMIT, || async { sim.engine.queue().depth(MARKET_QUEUE) > behind }).await;
    sim.chain.set_automine(true).await;
    sim.chain.mine(1).await;
    // then each reaches the book in turn, none becomes a dead letter, and the outbox drains
    settled(&sim.handle, 1, LIMIT).await;
    wait_until("every order rests", LIMIT, || async {
        sim.engine.market(spec().id, 1, None).await.unwrap().resting_orders == 1 + behind
    })
    .await;
    assert_eq!(sim.engine.queue().stats(MARKET_QUEUE).unwrap().dead_letters, 0);
    wait_until("the outbox drains", LIMIT, || async {
        sim.engine.store().fetch_unpublished(1).await.unwrap().is_empty()
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Several batches in flight (the pipeline)
// ---------------------------------------------------------------------------------------------

impl Sim {
    /// Bob rests a sell of 10 lots at 100 (nonce 1); then each buyer takes one lot, its own
    /// batch going out before the next buyer places (mining is off, so all stay in flight).
    async fn batches_in_flight(&self, buyers: &[(&Trader, u64)]) {
        self.engine.place(self.bob.user, self.bob.limit(&self.domain, Side::Sell, 100, 10, 1)).await.unwrap();
        for (n, (buyer, nonce)) in buyers.iter().enumerate() {
            self.engine.place(buyer.user, buyer.limit(&self.domain, Side::Buy, 100, 1, *nonce)).await.unwrap();
            wait_until("the batch is sent", LIMIT, || async {
                let view = self.handle.inspect().await.unwrap();
                view.open_batches == n + 1 && view.in_flight.len() > n
            })
            .await;
        }
    }

    /// (batch, the contract's index) of every confirmation, in stream order.
    async fn confirmations(&self) -> Vec<(u64, u64)> {
        let events = self.events().await;
        events
            .into_iter()
            .filter_map(|e| match e {
                OperatorEvent::SettlementConfirmed { batch, chain_index, .. } => Some((batch, chain_index)),
                _ => None,
            })
            .collect()
    }

    /// Every settlement transaction signed: (nonce, batch, the contract's index).
    async fn batch_transactions(&self) -> Vec<(u64, u64, u64)> {
        let events = self.events().await;
        events
            .into_iter()
            .filter_map(|e| match e {
                OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt }) => match attempt.purpose {
                    TxPurpose::Batch { batch, chain_index } => Some((nonce, batch, chain_index)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

#[actix_rt::test]
async fn three_batches_in_flight_at_consecutive_nonces_settle_in_order_in_one_block() {
    // given mining off and three one-trade batches sent one after the other
    let sim = Sim::start("pipeline", false, |c| c.receipt_timeout = Duration::from_secs(60)).await;
    sim.batches_in_flight(&[(&sim.alice, 1), (&sim.alice, 2), (&sim.alice, 3)]).await;
    // then all three are in flight at nonces 0, 1, 2 as the contract's batches 0, 1, 2
    assert_eq!(sim.batch_transactions().await, vec![(0, 1, 0), (1, 2, 1), (2, 3, 2)]);
    assert_eq!(sim.handle.inspect().await.unwrap().open_batches, 3);
    // when one block mines them all
    sim.chain.mine(1).await;
    // then they confirm in order, and both users' funds are final
    settled(&sim.handle, 3, LIMIT).await;
    assert_eq!(sim.confirmations().await, vec![(1, 0), (2, 1), (3, 2)]);
    assert_eq!(sim.chain.next_batch_index(), 3);
    let exchange = Some(Address::repeat_byte(0xEE));
    assert_eq!(
        sim.chain.mined_by(sim.operator.address()),
        vec![(0, exchange, true), (1, exchange, true), (2, exchange, true)]
    );
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    nothing_settling(&sim.engine, sim.bob.user, LIMIT).await;
    assert_eq!(balance(&sim.engine, sim.alice.user, base()).await.available, Amount(3 * BASE_LOT));
}

#[actix_rt::test]
async fn a_batch_reverting_between_two_in_flight_voids_only_its_trade_and_the_next_is_renumbered_and_sent_again() {
    // given three batches in flight, the middle one Carol's
    let sim = Sim::start("pipeline-revert", false, |c| c.receipt_timeout = Duration::from_secs(60)).await;
    let carol = Trader::new("pipeline-revert/carol");
    sim.engine.deposit(carol.user, quote(), Amount(ALICE_QUOTE)).await.unwrap();
    sim.batches_in_flight(&[(&sim.alice, 1), (&carol, 1), (&sim.alice, 2)]).await;
    // when the contract refuses Carol's signature by the time the block is mined
    sim.chain.refuse_signatures_of(carol.address());
    sim.chain.set_automine(true).await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 3, LIMIT).await;
    // then batch 1 settled as index 0, batch 2 reverted, batch 3 reverted behind it (its index
    // no longer followed) and went out again at a fresh nonce as index 1
    assert_eq!(sim.confirmations().await, vec![(1, 0), (3, 1)]);
    assert_eq!(sim.batch_transactions().await, vec![(0, 1, 0), (1, 2, 1), (2, 3, 2), (3, 3, 1)]);
    let outcomes: Vec<(u64, bool)> = sim.chain.mined_by(sim.operator.address()).iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(outcomes, vec![(0, true), (1, false), (2, false), (3, true)]);
    assert_eq!(sim.chain.next_batch_index(), 2);
    // and only Carol's trade was voided: her quote is back, Alice's two lots are hers
    let events = sim.events().await;
    let voided: Vec<(u64, VoidReason)> = events
        .iter()
        .filter_map(|e| match e {
            OperatorEvent::TradeVoided { batch, reason, .. } => Some((batch.unwrap_or(0), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(voided, vec![(2, VoidReason::BadSignature)]);
    let failed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            OperatorEvent::AttemptFailed { batch, .. } => Some(*batch),
            _ => None,
        })
        .collect();
    assert!(!failed.contains(&3), "reverting behind batch 2 is not batch 3's failure: {failed:?}");
    nothing_settling(&sim.engine, carol.user, LIMIT).await;
    assert_eq!(balance(&sim.engine, carol.user, quote()).await.available, Amount(ALICE_QUOTE));
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    assert_eq!(balance(&sim.engine, sim.alice.user, base()).await.available, Amount(2 * BASE_LOT));
}

#[actix_rt::test]
async fn a_stuck_first_nonce_with_batches_behind_it_is_consumed_and_all_three_go_out_again_in_order() {
    // given three batches in flight and the first nonce stuck (two attempts, none mined)
    // A receipt timeout long enough for all three to go out before the first is overdue.
    let sim = Sim::start("pipeline-stuck", false, |c| {
        c.stuck_after_attempts = 2;
        c.receipt_timeout = Duration::from_millis(600);
    })
    .await;
    sim.batches_in_flight(&[(&sim.alice, 1), (&sim.alice, 2), (&sim.alice, 3)]).await;
    wait_until("the first nonce gets a self-transfer", LIMIT, || async {
        let view = sim.handle.inspect().await.unwrap();
        view.in_flight.first().and_then(|s| s.attempts.last()).map(|a| a.1) == Some(TxPurpose::Filler)
    })
    .await;
    // then the nonces behind it were left alone: one attempt each, not overdue on their own
    let view = sim.handle.inspect().await.unwrap();
    let behind: Vec<usize> =
        view.in_flight.iter().filter(|s| s.nonce == 1 || s.nonce == 2).map(|s| s.attempts.len()).collect();
    assert_eq!(behind, vec![1, 1]);
    // when the block mines the self-transfer and the two batches behind it
    sim.chain.set_automine(true).await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 3, LIMIT).await;
    // then those two reverted (wrong index); batch 1 had gone out again at a fresh nonce as
    // the same index, and the two followed it re-numbered: nothing voided, nothing settled twice
    let operator = sim.operator.address();
    let outcomes: Vec<(u64, bool)> = sim.chain.mined_by(operator).iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(outcomes, vec![(0, true), (1, false), (2, false), (3, true), (4, true), (5, true)]);
    assert_eq!(sim.chain.mined_by(operator)[0].1, Some(operator), "nonce 0: the self-transfer");
    let resent: Vec<(u64, u64, u64)> = sim.batch_transactions().await.into_iter().filter(|t| t.0 >= 3).collect();
    assert_eq!(resent, vec![(3, 1, 0), (4, 2, 1), (5, 3, 2)]);
    assert_eq!(sim.confirmations().await, vec![(1, 0), (2, 1), (3, 2)]);
    assert_eq!(sim.chain.next_batch_index(), 3);
    assert!(!sim.events().await.iter().any(|e| matches!(e, OperatorEvent::TradeVoided { .. })));
    nothing_settling(&sim.engine, sim.alice.user, LIMIT).await;
    assert_eq!(balance(&sim.engine, sim.alice.user, base()).await.available, Amount(3 * BASE_LOT));
}

#[actix_rt::test]
async fn an_operator_restarted_with_three_batches_in_flight_recovers_them_from_its_stream() {
    // given three batches in flight
    let mut sim = Sim::start("pipeline-restart", false, |c| c.receipt_timeout = Duration::from_secs(60)).await;
    sim.batches_in_flight(&[(&sim.alice, 1), (&sim.alice, 2), (&sim.alice, 3)]).await;
    // when the operator is stopped and started again
    sim.handle.stop();
    let mut config = fast_config(sim.operator.clone(), Address::repeat_byte(0xEE), CHAIN_ID, Duration::from_secs(60));
    config.max_in_flight = 4;
    sim.handle = sim.engine.start_settlement(config, sim.chain.clone()).await.unwrap();
    // then it knows all three from its stream: nonces 0-2 taken, three batches open
    let view = sim.handle.inspect().await.unwrap();
    assert_eq!((view.next_nonce, view.open_batches, view.in_flight.len()), (3, 3, 3));
    sim.chain.set_automine(true).await;
    sim.chain.mine(1).await;
    settled(&sim.handle, 3, LIMIT).await;
    // and a trade after the restart takes the next nonce and index
    sim.engine.place(sim.alice.user, sim.alice.limit(&sim.domain, Side::Buy, 100, 1, 4)).await.unwrap();
    settled(&sim.handle, 4, LIMIT).await;
    let nonces: Vec<u64> = sim.chain.mined_by(sim.operator.address()).iter().map(|m| m.0).collect();
    assert_eq!(nonces, vec![0, 1, 2, 3], "none reused, none skipped");
    assert_eq!(sim.confirmations().await, vec![(1, 0), (2, 1), (3, 2), (4, 3)]);
    assert_eq!(sim.chain.next_batch_index(), 4);
}
