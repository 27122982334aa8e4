//! The settlement pipeline against a real EVM node: anvil, installed by `make tools`. Orders
//! signed with the users' keys are placed through the engine, matched, and settled by the
//! operator on the real `HobExchange`; the tests break the chain the ways production breaks
//! (mining paused, a transaction dropped, a nonce stuck, a bad signature, a restart, a reorg,
//! a batch index taken, an order invalidated on-chain) and check the recovery, down to the
//! vault balances.
//!
//! One anvil serves the whole file. Tests change its mining mode, so they run one at a time
//! (`SERIAL`); each deploys its own exchange and tokens and uses its own keys.

mod settlement_support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::anvil::ReorgOptions;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;

use hob::actors::settlement::SettlementHandle;
use hob::chain::batch::{encode_batch, TradeToSettle};
use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712::{self, SignedOrder};
use hob::chain::order::{ORDER_TYPE_LIMIT, SIDE_BUY, SIDE_SELL, TIF_GTC};
use hob::chain::tools;
use hob::domain::{Amount, AssetId, Bps, MarketStatus, PriceTicks, QtyLots, Side};
use hob::events::EventStore;
use hob::settlement::chain::TxHash;
use hob::settlement::conformance::{self, ChainControl, Fixture};
use hob::settlement::nonce::{NonceEvent, Resolution, TxPurpose};
use hob::settlement::{OperatorEvent, OperatorKey, RpcChain, SettlementConfig, VoidReason};
use hob::store::sqlite::SqliteEventStore;
use settlement_support::*;

const LIMIT: Duration = Duration::from_secs(20);
const ALICE_QUOTE: u128 = 1_000_000_000;
const BOB_BASE: u128 = 100 * BASE_LOT;
const ESCAPE_PERIOD_S: u64 = 86_400;

// ---------------------------------------------------------------------------------------------
// One anvil for the file, one test at a time
// ---------------------------------------------------------------------------------------------

fn anvil() -> &'static AnvilInstance {
    static ANVIL: OnceLock<AnvilInstance> = OnceLock::new();
    ANVIL.get_or_init(|| {
        let anvil = tools::anvil().unwrap_or_else(|e| panic!("{e}")).try_spawn().expect("anvil starts");
        stop_with_this_process(anvil.child().id());
        anvil
    })
}

/// Statics are never dropped: a watchdog shell kills anvil, by its pid, once this test
/// process is gone. A thread waits for the shell, so it is reaped if it ends first.
fn stop_with_this_process(anvil_pid: u32) {
    let mut watchdog = Command::new("sh")
        .args([
            "-c",
            r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill "$1" 2>/dev/null"#,
            &std::process::id().to_string(),
            &anvil_pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh runs the anvil watchdog");
    std::thread::spawn(move || watchdog.wait());
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// anvil's own methods as the conformance suite's control.
struct AnvilControl(DynProvider);

impl ChainControl for AnvilControl {
    async fn set_automine(&self, on: bool) {
        self.0.anvil_set_auto_mine(on).await.expect("evm_setAutomine");
    }

    async fn mine(&self, blocks: u64) {
        self.0.anvil_mine(Some(blocks), None).await.expect("anvil_mine");
    }

    async fn drop_tx(&self, hash: TxHash) {
        self.0.anvil_drop_transaction(hash).await.expect("anvil_dropTransaction");
    }

    async fn reorg(&self, depth: u64) {
        self.0.anvil_reorg(ReorgOptions { depth, tx_block_pairs: vec![] }).await.expect("anvil_reorg");
    }
}

fn provider(key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(anvil().endpoint_url()).erased()
}

async fn exec<P: Provider, D: alloy::contract::CallDecoder>(call: alloy::contract::CallBuilder<P, D>) {
    let pending = call.send().await.unwrap_or_else(|e| panic!("transaction refused: {e}"));
    let receipt = pending.get_receipt().await.expect("a receipt");
    assert!(receipt.status(), "reverted: {receipt:?}");
}

// ---------------------------------------------------------------------------------------------
// A venue: one exchange, one market, an operator, two funded traders, an engine
// ---------------------------------------------------------------------------------------------

struct Venue {
    _dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
    admin: DynProvider,
    control: AnvilControl,
    chain: Arc<RpcChain>,
    chain_id: u64,
    exchange: Address,
    base: Address,
    quote: Address,
    fee_collector: Address,
    domain: Eip712Domain,
    operator: OperatorKey,
    engine: TestEngine,
    handle: SettlementHandle<SqliteEventStore, RpcChain>,
    alice: Trader,
    bob: Trader,
}

async fn fund(admin: &DynProvider, who: Address) {
    admin.anvil_set_balance(who, U256::from(10u128.pow(21))).await.expect("funding");
}

impl Venue {
    /// Deploys, registers the market, funds Alice with quote and Bob with base on both
    /// sides (on-chain in the vault, off-chain in the engine), and starts settlement.
    async fn start(name: &str, tune: impl FnOnce(&mut SettlementConfig)) -> Venue {
        let serial = SERIAL.lock().await;
        let admin_key = key(&format!("{name}/admin"));
        let admin = provider(&admin_key);
        let control = AnvilControl(admin.clone());
        control.set_automine(true).await;
        fund(&admin, admin_key.address()).await;
        let fee_collector = key(&format!("{name}/fees")).address();
        let base = *TestToken::deploy(admin.clone(), "Base".into(), "BASE".into(), 18).await.unwrap().address();
        let quote = *TestToken::deploy(admin.clone(), "Quote".into(), "QUOTE".into(), 6).await.unwrap().address();
        let exchange = *HobExchange::deploy(admin.clone(), fee_collector, ESCAPE_PERIOD_S).await.unwrap().address();
        let operator = operator_key(&format!("{name}/operator"));
        fund(&admin, operator.address()).await;
        let ex = HobExchange::new(exchange, admin.clone());
        exec(ex.setOperator(operator.address(), true)).await;
        exec(ex.registerMarket(CHAIN_MARKET, base, quote, BASE_LOT, QUOTE_TICK)).await;
        let chain_id = admin.get_chain_id().await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let engine = start_engine(dir.path(), operator.address(), system_clock());
        let chain = Arc::new(RpcChain::connect_http(anvil().endpoint_url().as_str()).unwrap());
        let mut config = fast_config(operator.clone(), exchange, chain_id, Duration::from_secs(30));
        tune(&mut config);
        let handle = engine.start_settlement(config, chain.clone()).await.unwrap();
        let venue = Venue {
            _dir: dir,
            _serial: serial,
            admin,
            control,
            chain,
            chain_id,
            exchange,
            base,
            quote,
            fee_collector,
            domain: eip712::domain(chain_id, exchange),
            operator,
            engine,
            handle,
            alice: Trader::new(&format!("{name}/alice")),
            bob: Trader::new(&format!("{name}/bob")),
        };
        venue.deposit(&venue.alice, venue.quote, ALICE_QUOTE).await;
        venue.deposit(&venue.bob, venue.base, BOB_BASE).await;
        venue
    }

    fn token_of(&self, asset: AssetId) -> Address {
        if asset == base() {
            self.base
        } else {
            self.quote
        }
    }

    fn asset_of(&self, token: Address) -> AssetId {
        if token == self.base {
            base()
        } else {
            quote()
        }
    }

    /// Mints, approves and deposits into the vault, and credits the engine the same (the
    /// chain watcher that would do it is not built yet).
    async fn deposit(&self, trader: &Trader, token: Address, amount: u128) {
        fund(&self.admin, trader.address()).await;
        let p = provider(&trader.key);
        let t = TestToken::new(token, p.clone());
        exec(t.mint(trader.address(), U256::from(amount))).await;
        exec(t.approve(self.exchange, U256::from(amount))).await;
        exec(HobExchange::new(self.exchange, p.clone()).deposit(token, U256::from(amount))).await;
        self.engine.deposit(trader.user, self.asset_of(token), Amount(amount)).await.unwrap();
    }

    async fn vault(&self, user: Address, token: Address) -> u128 {
        let balance = HobExchange::new(self.exchange, self.admin.clone()).balances(user, token).call().await.unwrap();
        balance.to::<u128>()
    }

    async fn next_batch_index(&self) -> u64 {
        HobExchange::new(self.exchange, self.admin.clone()).nextBatchIndex().call().await.unwrap()
    }

    /// Bob rests a sell of 10 lots at 100 (nonce 1); Alice takes 4 of it (nonce 1).
    async fn trade(&self) {
        self.engine.place(self.bob.user, self.bob.limit(&self.domain, Side::Sell, 100, 10, 1)).await.unwrap();
        self.engine.place(self.alice.user, self.alice.limit(&self.domain, Side::Buy, 100, 4, 1)).await.unwrap();
    }

    async fn events(&self) -> Vec<OperatorEvent> {
        operator_events(&self.engine, self.operator.address()).await
    }

    async fn in_flight(&self) -> Vec<hob::actors::settlement::InFlightView> {
        self.handle.inspect().await.unwrap().in_flight
    }

    /// Every user's vault balance equals their off-chain total (available + locked +
    /// settling, with nothing settling), and the fee collector holds exactly the fees.
    async fn assert_vault_equals_ledger(&self, fees: u128) {
        self.assert_vault_equals_ledger_of(&[&self.alice, &self.bob], fees).await;
    }

    async fn assert_vault_equals_ledger_of(&self, traders: &[&Trader], fees: u128) {
        for trader in traders {
            nothing_settling(&self.engine, trader.user, LIMIT).await;
            for asset in [base(), quote()] {
                let off_chain = balance(&self.engine, trader.user, asset).await.total().unwrap().0;
                let on_chain = self.vault(trader.address(), self.token_of(asset)).await;
                assert_eq!(on_chain, off_chain, "{asset} of {}", trader.user);
            }
        }
        assert_eq!(self.vault(self.fee_collector, self.quote).await, fees, "fees");
    }
}

/// Alice (taker, 20 bps) and Bob (maker, 10 bps) on 4 lots at 100: notional 4,000.
const FEES_OF_ONE_TRADE: u128 = 4_000 * 20 / 10_000 + 4_000 * 10 / 10_000;

// ---------------------------------------------------------------------------------------------
// The port itself
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn anvil_passes_the_chain_conformance_suite() {
    let v = Venue::start("conformance", |_| {}).await;
    // Its own key, so the operator's nonces are untouched.
    let key = operator_key("conformance/suite");
    fund(&v.admin, key.address()).await;
    exec(HobExchange::new(v.exchange, v.admin.clone()).setOperator(key.address(), true)).await;
    conformance::run_all(v.chain.as_ref(), &v.control, &Fixture { key: &key, exchange: v.exchange }).await;
}

// ---------------------------------------------------------------------------------------------
// Settling
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_signed_trade_settles_on_chain_and_the_vault_equals_the_ledgers() {
    let v = Venue::start("happy", |_| {}).await;
    v.trade().await;
    settled(&v.handle, 1, LIMIT).await;
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;
    assert_eq!(balance(&v.engine, v.alice.user, base()).await.available, Amount(4 * BASE_LOT));
    assert_eq!(v.next_batch_index().await, 1);
    let gas = v.events().await.into_iter().find_map(|e| match e {
        OperatorEvent::Nonce(NonceEvent::Final { resolution: Resolution::Mined { gas_used, success, .. }, .. }) => {
            Some((gas_used, success))
        }
        _ => None,
    });
    assert!(gas.is_some_and(|(g, ok)| ok && g > 21_000), "{gas:?}");
    assert_eq!(v.handle.alerts.count(), 0);
}

#[actix_rt::test]
async fn in_confirm_before_commit_mode_a_command_waits_for_the_previous_trades_to_settle() {
    let v = Venue::start("confirm-mode", |_| {}).await;
    v.engine.set_confirm_before_commit(spec().id, true);
    v.engine.place(v.bob.user, v.bob.limit(&v.domain, Side::Sell, 100, 10, 1)).await.unwrap();
    v.engine.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 4, 1)).await.unwrap();
    v.engine.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 3, 2)).await.unwrap();
    settled(&v.handle, 2, LIMIT).await;

    // When the second trade was matched, the first had already settled on-chain.
    let store = v.engine.store();
    let market = store.read_stream(&hob::events::StreamId::market(spec().id), 1).await.unwrap();
    let traded_at: Vec<_> = market.iter().filter(|e| e.event_type == "market.Traded").map(|e| e.occurred_at).collect();
    assert_eq!(traded_at.len(), 2);
    let operator = hob::events::StreamId::operator(hob::domain::UserId(v.operator.address().0 .0));
    let confirmations = store.read_stream(&operator, 1).await.unwrap();
    let first_settled_at =
        confirmations.iter().find(|e| e.event_type == "operator.SettlementConfirmed").map(|e| e.occurred_at).unwrap();
    assert!(
        first_settled_at <= traded_at[1],
        "trade 2 matched at {} before trade 1 settled at {first_settled_at}",
        traded_at[1]
    );
    assert_eq!(v.next_batch_index().await, 2, "one batch per command");
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE * 7 / 4).await;
}

#[actix_rt::test]
async fn with_mining_paused_an_overdue_settlement_is_replaced_with_a_higher_fee() {
    let v = Venue::start("bump", |c| {
        c.receipt_timeout = Duration::from_millis(400);
        c.stuck_after_attempts = 10;
    })
    .await;
    v.control.set_automine(false).await;
    v.trade().await;
    wait_until("a replacement at the same nonce", LIMIT, || async {
        v.in_flight().await.first().is_some_and(|s| s.attempts.len() >= 2)
    })
    .await;
    let slot = v.in_flight().await.remove(0);
    let (first, second) = (slot.attempts[0].0, slot.attempts[1].0);
    assert!(second * 10 >= first * 11, "a bump of at least 10%: {first} -> {second}");
    // The node holds the replacement, not the original, at that nonce.
    let signed: Vec<(u64, TxHash, u128)> = v
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt }) => {
                Some((nonce, attempt.hash, attempt.gas_price))
            }
            _ => None,
        })
        .collect();
    assert!(signed.iter().all(|(n, _, _)| *n == slot.nonce));
    let newest = signed.last().unwrap().1;
    let pooled = v.admin.get_transaction_by_hash(newest).await.unwrap();
    assert!(pooled.is_some(), "the replacement is in the mempool");
    v.control.set_automine(true).await;
    v.control.mine(1).await;
    settled(&v.handle, 1, LIMIT).await;
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;
    assert!(v.handle.counters.fee_bumps.load(Ordering::Relaxed) >= 1);
}

#[actix_rt::test]
async fn a_dropped_settlement_is_sent_again_and_settles() {
    let v = Venue::start("dropped", |_| {}).await;
    v.control.set_automine(false).await;
    v.trade().await;
    wait_until("the batch is sent", LIMIT, || async { !v.in_flight().await.is_empty() }).await;
    let hash = v
        .events()
        .await
        .into_iter()
        .find_map(|e| match e {
            OperatorEvent::Nonce(NonceEvent::Signed { attempt, .. }) => Some(attempt.hash),
            _ => None,
        })
        .unwrap();
    v.control.drop_tx(hash).await;
    wait_until("it is sent again", LIMIT, || async { v.handle.counters.resends.load(Ordering::Relaxed) >= 1 }).await;
    assert!(v.admin.get_transaction_by_hash(hash).await.unwrap().is_some(), "the same transaction is back");
    v.control.mine(1).await;
    settled(&v.handle, 1, LIMIT).await;
    v.control.set_automine(true).await;
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;
}

#[actix_rt::test]
async fn a_stuck_nonce_is_consumed_by_a_zero_value_self_transfer_and_the_batch_resent() {
    let v = Venue::start("stuck", |c| {
        c.receipt_timeout = Duration::from_millis(400);
        c.stuck_after_attempts = 2;
    })
    .await;
    v.control.set_automine(false).await;
    v.trade().await;
    wait_until("the stuck nonce holds a self-transfer and the batch a fresh nonce", LIMIT, || async {
        let slots = v.in_flight().await;
        slots.len() == 2
            && slots[0].attempts.last().map(|a| a.1) == Some(TxPurpose::Filler)
            && matches!(slots[1].attempts.last().map(|a| a.1), Some(TxPurpose::Batch { .. }))
    })
    .await;
    let stuck = v.in_flight().await[0].nonce;
    v.control.set_automine(true).await;
    v.control.mine(1).await;
    settled(&v.handle, 1, LIMIT).await;
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;

    // What the chain mined at the stuck nonce: the self-transfer, worth nothing.
    let mined = v.events().await.into_iter().find_map(|e| match e {
        OperatorEvent::Nonce(NonceEvent::Final { nonce, resolution: Resolution::Mined { hash, .. } })
            if nonce == stuck =>
        {
            Some(hash)
        }
        _ => None,
    });
    let tx = v.admin.get_transaction_by_hash(mined.unwrap()).await.unwrap().unwrap();
    use alloy::consensus::Transaction as _;
    assert_eq!((tx.inner.to(), tx.inner.value()), (Some(v.operator.address()), U256::ZERO));
    assert!(v.handle.counters.self_transfers.load(Ordering::Relaxed) >= 1);
}

#[actix_rt::test]
async fn a_batch_with_a_bad_signature_voids_that_trade_settles_the_rest_halts_the_market_and_alerts() {
    // A window long enough for both trades to share one batch.
    let v = Venue::start("badsig", |c| c.batch.window_ms = 1_000).await;
    let (carol, dave) = (Trader::new("badsig/carol"), Trader::new("badsig/dave"));
    v.deposit(&carol, v.base, 10 * BASE_LOT).await;
    v.deposit(&dave, v.quote, ALICE_QUOTE).await;
    // Alice's buy is signed by Mallory's key; Dave's is his own.
    let mallory = key("badsig/mallory");
    v.engine.place(v.bob.user, v.bob.limit(&v.domain, Side::Sell, 100, 4, 1)).await.unwrap();
    let forged = v.alice.limit_signed_by(&mallory, &v.domain, Side::Buy, 100, 4, 1);
    v.engine.place(v.alice.user, forged).await.unwrap();
    v.engine.place(carol.user, carol.limit(&v.domain, Side::Sell, 100, 5, 1)).await.unwrap();
    v.engine.place(dave.user, dave.limit(&v.domain, Side::Buy, 100, 5, 1)).await.unwrap();
    settled(&v.handle, 2, LIMIT).await;

    let events = v.events().await;
    let voided: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OperatorEvent::TradeVoided { reason, batch, trade, .. } => Some((*reason, *batch, trade.taker_user)),
            _ => None,
        })
        .collect();
    assert_eq!(voided, vec![(VoidReason::BadSignature, None, v.alice.user)], "Alice's trade only");
    let settled_batches: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            OperatorEvent::SettlementConfirmed { trades, .. } => Some(trades.len()),
            _ => None,
        })
        .collect();
    assert_eq!(settled_batches, vec![1], "the rest settled in one batch");
    wait_until("the market halts", LIMIT, || async {
        v.engine.market(spec().id, 1, None).await.unwrap().status == MarketStatus::Halted
    })
    .await;
    let kinds: Vec<_> = v.handle.alerts.recent().iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec!["trade_voided", "market_halted"]);

    // Alice and Bob are back where they were; Carol and Dave traded; the vault agrees.
    assert_eq!(balance(&v.engine, v.alice.user, quote()).await.available, Amount(ALICE_QUOTE));
    assert_eq!(balance(&v.engine, v.bob.user, base()).await.available, Amount(BOB_BASE));
    assert_eq!(v.vault(dave.address(), v.base).await, 5 * BASE_LOT);
    let fees = 5_000 * 20 / 10_000 + 5_000 * 10 / 10_000;
    v.assert_vault_equals_ledger_of(&[&v.alice, &v.bob, &carol, &dave], fees).await;
}

#[actix_rt::test]
async fn an_operator_restarted_mid_flight_neither_reuses_nor_skips_a_nonce() {
    let mut v = Venue::start("restart", |_| {}).await;
    let first_nonce = v.admin.get_transaction_count(v.operator.address()).await.unwrap();
    v.control.set_automine(false).await;
    v.trade().await;
    wait_until("the batch is sent", LIMIT, || async { v.in_flight().await.len() == 1 }).await;
    v.handle.stop();
    let config = fast_config(v.operator.clone(), v.exchange, v.chain_id, Duration::from_secs(30));
    v.handle = v.engine.start_settlement(config, v.chain.clone()).await.unwrap();
    assert_eq!(v.handle.inspect().await.unwrap().next_nonce, first_nonce + 1);
    v.control.set_automine(true).await;
    v.control.mine(1).await;
    settled(&v.handle, 1, LIMIT).await;

    v.engine.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 2, 2)).await.unwrap();
    settled(&v.handle, 2, LIMIT).await;
    let nonces: Vec<u64> = v
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            OperatorEvent::Nonce(NonceEvent::Signed { nonce, .. }) => Some(nonce),
            _ => None,
        })
        .collect();
    assert_eq!(nonces, vec![first_nonce, first_nonce + 1], "one transaction per nonce, none skipped");
    assert_eq!(v.admin.get_transaction_count(v.operator.address()).await.unwrap(), first_nonce + 2);
    assert_eq!(v.next_batch_index().await, 2);
    let notional = 100 * 6 * QUOTE_TICK;
    v.assert_vault_equals_ledger(notional * 20 / 10_000 + 4_000 * 10 / 10_000 + 2_000 * 10 / 10_000).await;
}

#[actix_rt::test]
async fn a_settlement_reorged_out_before_its_confirmations_is_sent_again_and_confirmed() {
    let v = Venue::start("reorg", |c| c.confirmations = 2).await;
    v.trade().await;
    wait_until("the batch is mined once", LIMIT, || async { v.next_batch_index().await == 1 }).await;
    assert_eq!(v.handle.inspect().await.unwrap().stats.settled_trades, 0, "one block is not enough");
    v.control.reorg(1).await;
    assert_eq!(v.next_batch_index().await, 0, "the reorg took the settlement out");
    wait_until("it is mined again", LIMIT, || async { v.next_batch_index().await == 1 }).await;
    v.control.mine(1).await;
    settled(&v.handle, 1, LIMIT).await;
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;
}

#[actix_rt::test]
async fn a_batch_index_taken_by_another_operator_is_taken_up() {
    let v = Venue::start("index", |_| {}).await;
    // A second operator with its own traders settles a batch ahead of ours, in the same
    // block, paying more.
    let other = key("index/other-operator");
    fund(&v.admin, other.address()).await;
    exec(HobExchange::new(v.exchange, v.admin.clone()).setOperator(other.address(), true)).await;
    let (carol, dave) = (Trader::new("index/carol"), Trader::new("index/dave"));
    v.deposit(&carol, v.quote, 1_000_000).await;
    v.deposit(&dave, v.base, 10 * BASE_LOT).await;
    let order = |t: &Trader, side: u8| {
        let o = eip712::Order {
            trader: t.address(),
            market: CHAIN_MARKET,
            side,
            orderType: ORDER_TYPE_LIMIT,
            timeInForce: TIF_GTC,
            postOnly: false,
            price: 100,
            quantity: 1,
            maxFeeBps: 0,
            nonce: 1,
            expiry: 0,
        };
        SignedOrder::sign(&t.key, o, &v.domain).unwrap()
    };
    let theirs = TradeToSettle {
        maker: order(&dave, SIDE_SELL),
        taker: order(&carol, SIDE_BUY),
        price: PriceTicks(100),
        qty: QtyLots(1),
        maker_fee: Bps(0),
        taker_fee: Bps(0),
    };
    let data = encode_batch(&[theirs]).unwrap().data;

    v.control.set_automine(false).await;
    v.trade().await;
    wait_until("our batch is sent as index 0", LIMIT, || async { v.in_flight().await.len() == 1 }).await;
    let price = v.admin.get_gas_price().await.unwrap() * 10;
    let other_provider = provider(&other);
    let ex = HobExchange::new(v.exchange, other_provider.clone());
    let _pending = ex.settleBatch(0, data).gas_price(price).gas(1_000_000).send().await.unwrap();
    v.control.mine(1).await;
    v.control.set_automine(true).await;
    settled(&v.handle, 1, LIMIT).await;

    let confirmed = v.events().await.into_iter().find_map(|e| match e {
        OperatorEvent::SettlementConfirmed { chain_index, .. } => Some(chain_index),
        _ => None,
    });
    assert_eq!(confirmed, Some(1), "ours settled as index 1, after theirs");
    assert_eq!(v.next_batch_index().await, 2);
    assert_eq!(v.handle.alerts.count(), 0, "nothing in our batch was at fault");
    v.assert_vault_equals_ledger(FEES_OF_ONE_TRADE).await;
}

#[actix_rt::test]
async fn an_order_whose_nonce_was_invalidated_on_chain_cannot_settle_its_trade_is_voided_and_it_is_cancelled() {
    let v = Venue::start("invalidated", |_| {}).await;
    v.engine.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 10, 1)).await.unwrap();
    wait_until("alice's order rests", LIMIT, || async {
        v.engine.market(spec().id, 1, None).await.unwrap().resting_orders == 1
    })
    .await;
    let alice = provider(&v.alice.key);
    exec(HobExchange::new(v.exchange, alice.clone()).invalidateNoncesBelow(2)).await;
    v.engine.place(v.bob.user, v.bob.limit(&v.domain, Side::Sell, 100, 4, 1)).await.unwrap();
    settled(&v.handle, 1, LIMIT).await;

    let voided = v.events().await.into_iter().find_map(|e| match e {
        OperatorEvent::TradeVoided { reason, order, .. } => Some((reason, order)),
        _ => None,
    });
    assert!(matches!(voided, Some((VoidReason::NonceInvalidated, Some(_)))), "{voided:?}");
    wait_until("alice's order is cancelled", LIMIT, || async {
        v.engine.market(spec().id, 1, None).await.unwrap().resting_orders == 0
    })
    .await;
    assert_eq!(v.engine.market(spec().id, 1, None).await.unwrap().status, MarketStatus::Open);
    v.assert_vault_equals_ledger(0).await;
    assert_eq!(balance(&v.engine, v.alice.user, quote()).await.available, Amount(ALICE_QUOTE));
}

// ---------------------------------------------------------------------------------------------
// Several batches in flight
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn three_batches_in_flight_at_consecutive_nonces_land_in_one_block_in_order_and_the_vault_equals_the_ledgers() {
    // given mining paused and three one-lot trades, each batch sent before the next trade
    let v = Venue::start("pipeline", |_| {}).await;
    let first_nonce = v.admin.get_transaction_count(v.operator.address()).await.unwrap();
    v.control.set_automine(false).await;
    v.engine.place(v.bob.user, v.bob.limit(&v.domain, Side::Sell, 100, 10, 1)).await.unwrap();
    for n in 0..3u64 {
        v.engine.place(v.alice.user, v.alice.limit(&v.domain, Side::Buy, 100, 1, n + 1)).await.unwrap();
        wait_until("the batch is sent", LIMIT, || async { v.in_flight().await.len() == n as usize + 1 }).await;
    }
    // then all three are in flight at consecutive nonces as consecutive batch indices
    let signed: Vec<(u64, u64)> = v
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt }) => match attempt.purpose {
                TxPurpose::Batch { chain_index, .. } => Some((nonce, chain_index)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(signed, vec![(first_nonce, 0), (first_nonce + 1, 1), (first_nonce + 2, 2)]);
    // when one block mines them
    v.control.set_automine(true).await;
    v.control.mine(1).await;
    settled(&v.handle, 3, LIMIT).await;
    // then every one settled, in index order, none reverted
    let mined: Vec<(u64, bool)> = v
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            OperatorEvent::SettlementConfirmed { chain_index, block, .. } => Some((chain_index, block > 0)),
            _ => None,
        })
        .collect();
    assert_eq!(mined, vec![(0, true), (1, true), (2, true)]);
    assert_eq!(v.next_batch_index().await, 3);
    assert_eq!(v.admin.get_transaction_count(v.operator.address()).await.unwrap(), first_nonce + 3);
    // and the vault equals the ledgers (once the users applied the confirmations): 3 lots
    // moved, fees of three 1,000-notional trades
    v.assert_vault_equals_ledger(3 * (1_000 * 20 / 10_000 + 1_000 * 10 / 10_000)).await;
    assert_eq!(balance(&v.engine, v.alice.user, base()).await.available, Amount(3 * BASE_LOT));
    assert_eq!(v.handle.alerts.count(), 0);
}
