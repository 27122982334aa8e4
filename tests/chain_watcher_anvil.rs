//! Deposits and withdrawals against a real EVM node (anvil, installed by `make tools`): users
//! approve and deposit on the real `HobExchange`, the `ChainWatcherActor` credits them after
//! N confirmations, exactly once, across restarts and reorgs.
//!
//! One anvil serves the whole file. Tests revert its chain and mine blocks, so they run one
//! at a time (`SERIAL`); each deploys its own exchange and tokens and uses its own keys.
//! Polls are driven by the tests (`poll_now`), so what a poll sees is exactly the chain the
//! test built.
//!
//! Test code unwraps: a failure should fail the test.

mod settlement_support;

#[path = "support/anvil.rs"]
mod anvil;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use hob::actors::chain_watcher::{ChainWatcherHandle, WatcherConfig};
use hob::actors::settlement::SettlementHandle;
use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::deposits::{encode_transfer_record, encode_watcher_event, TransferRecord, WatcherEvent};
use hob::chain::eip712::{self, Withdrawal};
use hob::domain::Side;
use hob::domain::{Amount, AssetId, DepositId, UserEvent};
use hob::engine::EngineError;
use hob::events::user_payload::decode_user_event;
use hob::events::{AppendRequest, EventStore, NewEvent, OutboxRecord, StreamId, SystemClock};
use hob::queue::{user_group, USER_QUEUE};
use hob::settlement::withdrawals::{encode_withdrawal_auth, SignedWithdrawal};
use hob::settlement::OperatorKey;
use hob::settlement::RpcChain;
use hob::store::sqlite::SqliteEventStore;
use settlement_support::*;

const LIMIT: Duration = Duration::from_secs(20);
const ESCAPE_PERIOD_S: u64 = 86_400;
const CONFIRMATIONS: u64 = 3;

// ---------------------------------------------------------------------------------------------
// One anvil for the file, one test at a time
// ---------------------------------------------------------------------------------------------

fn anvil() -> &'static AnvilInstance {
    anvil::anvil()
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn provider(key: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(anvil().endpoint_url()).erased()
}

async fn exec<P: Provider, D: alloy::contract::CallDecoder>(call: alloy::contract::CallBuilder<P, D>) {
    let pending = call.send().await.unwrap_or_else(|e| panic!("transaction refused: {e}"));
    let receipt = pending.get_receipt().await.expect("a receipt");
    assert!(receipt.status(), "reverted: {receipt:?}");
}

async fn fund(admin: &DynProvider, who: Address) {
    admin.anvil_set_balance(who, U256::from(10u128.pow(21))).await.expect("funding");
}

// ---------------------------------------------------------------------------------------------
// A venue: one exchange, its tokens, an engine, and a watcher over them
// ---------------------------------------------------------------------------------------------

struct Venue {
    dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
    admin: DynProvider,
    chain: Arc<RpcChain>,
    chain_id: u64,
    exchange: Address,
    base: Address,
    quote: Address,
    operator: OperatorKey,
    engine: TestEngine,
    alice: Trader,
    bob: Trader,
}

impl Venue {
    async fn start(name: &str) -> Venue {
        let serial = SERIAL.lock().await;
        let admin_key = key(&format!("{name}/admin"));
        let admin = provider(&admin_key);
        admin.anvil_set_auto_mine(true).await.unwrap();
        fund(&admin, admin_key.address()).await;
        let fee_collector = key(&format!("{name}/fees")).address();
        let base = *TestToken::deploy(admin.clone(), "Base".into(), "BASE".into(), 18).await.unwrap().address();
        let quote = *TestToken::deploy(admin.clone(), "Quote".into(), "QUOTE".into(), 6).await.unwrap().address();
        let exchange = *HobExchange::deploy(admin.clone(), fee_collector, ESCAPE_PERIOD_S).await.unwrap().address();
        let operator = operator_key(&format!("{name}/operator"));
        let chain_id = admin.get_chain_id().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let engine = start_engine(dir.path(), operator.address(), system_clock());
        let chain = Arc::new(RpcChain::connect_http(anvil().endpoint_url().as_str()).unwrap());
        Venue {
            dir,
            _serial: serial,
            admin,
            chain,
            chain_id,
            exchange,
            base,
            quote,
            operator,
            engine,
            alice: Trader::new(&format!("{name}/alice")),
            bob: Trader::new(&format!("{name}/bob")),
        }
    }

    /// A watcher from the exchange's deployment on, polled only when a test says so.
    async fn config(&self) -> WatcherConfig {
        let tokens = BTreeMap::from([(self.base, base()), (self.quote, quote())]);
        let mut config = WatcherConfig::new(self.chain_id, self.exchange, tokens);
        config.start_block = self.admin.get_block_number().await.unwrap();
        config.confirmations = CONFIRMATIONS;
        config.poll_interval = Duration::from_secs(3_600);
        config
    }

    async fn watcher(&self, config: WatcherConfig) -> ChainWatcherHandle<SqliteEventStore, RpcChain> {
        self.engine.start_chain_watcher(config, self.chain.clone()).await.unwrap()
    }

    /// Mints, approves and deposits into the vault, on-chain only; returns the block and the
    /// deposit's id (its `Deposited` log is the receipt's last).
    async fn deposit(&self, trader: &Trader, token: Address, amount: u128) -> (u64, DepositId) {
        fund(&self.admin, trader.address()).await;
        let p = provider(&trader.key);
        let t = TestToken::new(token, p.clone());
        exec(t.mint(trader.address(), U256::from(amount))).await;
        exec(t.approve(self.exchange, U256::from(amount))).await;
        let pending =
            HobExchange::new(self.exchange, p.clone()).deposit(token, U256::from(amount)).send().await.unwrap();
        let receipt = pending.get_receipt().await.unwrap();
        assert!(receipt.status());
        let log = receipt.inner.logs().last().unwrap();
        let deposit = DepositId { tx: receipt.transaction_hash.0, log_index: log.log_index.unwrap() };
        (receipt.block_number.unwrap(), deposit)
    }

    /// Makes the operator an operator of the exchange, registers the market and starts
    /// settlement (which also executes withdrawals).
    async fn start_settlement(&self) -> SettlementHandle<SqliteEventStore, RpcChain> {
        fund(&self.admin, self.operator.address()).await;
        let ex = HobExchange::new(self.exchange, self.admin.clone());
        exec(ex.setOperator(self.operator.address(), true)).await;
        exec(ex.registerMarket(CHAIN_MARKET, self.base, self.quote, BASE_LOT, QUOTE_TICK)).await;
        let config = fast_config(self.operator.clone(), self.exchange, self.chain_id, Duration::from_secs(30));
        self.engine.start_settlement(config, self.chain.clone()).await.unwrap()
    }

    /// Deposits on-chain and waits until the watcher credited it.
    async fn deposit_credited(
        &self,
        watcher: &ChainWatcherHandle<SqliteEventStore, RpcChain>,
        trader: &Trader,
        token: Address,
        amount: u128,
    ) {
        let asset = if token == self.base { base() } else { quote() };
        let before = self.available(trader, asset).await.0;
        self.deposit(trader, token, amount).await;
        self.mine(CONFIRMATIONS).await;
        assert_eq!(watcher.poll_now().await.unwrap().credited, 1);
        self.wait_available(trader, asset, before + amount).await;
    }

    /// `signer`'s signature over `trader`'s withdrawal.
    fn withdrawal(
        &self,
        trader: &Trader,
        signer: &PrivateKeySigner,
        token: Address,
        amount: u128,
        nonce: u64,
    ) -> SignedWithdrawal {
        let w = Withdrawal { user: trader.address(), token, amount: U256::from(amount), nonce, expiry: 0 };
        SignedWithdrawal::sign(signer, w, &eip712::domain(self.chain_id, self.exchange)).unwrap()
    }

    async fn request(&self, trader: &Trader, signed: &SignedWithdrawal, asset: AssetId) -> Result<(), EngineError> {
        let amount = Amount(signed.withdrawal.amount.to::<u128>());
        let nonce = signed.withdrawal.nonce;
        self.engine
            .request_withdrawal(trader.user, nonce, asset, amount, encode_withdrawal_auth(signed))
            .await
            .map(|_| ())
    }

    /// Waits until the user has no withdrawal in flight.
    async fn withdrawals_answered(&self, trader: &Trader) {
        wait_until("the withdrawals are answered", LIMIT, || async {
            let view = self.engine.user(trader.user).await.unwrap();
            let none = view.state.transfers().pending_withdrawals().next().is_none();
            none
        })
        .await;
    }

    async fn wallet(&self, who: Address, token: Address) -> u128 {
        TestToken::new(token, self.admin.clone()).balanceOf(who).call().await.unwrap().to::<u128>()
    }

    /// The user's stream's withdrawal outcomes: (nonce, completed?, reason).
    async fn withdrawal_outcomes(&self, trader: &Trader) -> Vec<(u64, bool, String)> {
        let stored = self.engine.store().read_stream(&StreamId::user(trader.user), 1).await.unwrap();
        stored
            .into_iter()
            .filter(|e| e.event_type.starts_with("user.Withdrawal"))
            .filter_map(|e| match decode_user_event(&e.event_type, e.schema_version, e.payload).unwrap() {
                UserEvent::WithdrawalCompleted { nonce, .. } => Some((nonce, true, String::new())),
                UserEvent::WithdrawalFailed { nonce, reason, .. } => Some((nonce, false, reason)),
                _ => None,
            })
            .collect()
    }

    async fn mine(&self, blocks: u64) {
        self.admin.anvil_mine(Some(blocks), None).await.unwrap();
    }

    async fn vault(&self, user: Address, token: Address) -> u128 {
        let balance = HobExchange::new(self.exchange, self.admin.clone()).balances(user, token).call().await.unwrap();
        balance.to::<u128>()
    }

    async fn available(&self, trader: &Trader, asset: AssetId) -> Amount {
        balance(&self.engine, trader.user, asset).await.available
    }

    /// Waits until the user queue has delivered what the watcher stored.
    async fn wait_available(&self, trader: &Trader, asset: AssetId, amount: u128) {
        wait_until(&format!("{asset} available is {amount}"), LIMIT, || async {
            self.available(trader, asset).await == Amount(amount)
        })
        .await;
    }

    /// The deposits credited in the user's stream, in order.
    async fn credits(&self, trader: &Trader) -> Vec<(DepositId, AssetId, Amount)> {
        credits_in(self.engine.store().as_ref(), trader).await
    }
}

async fn credits_in(store: &SqliteEventStore, trader: &Trader) -> Vec<(DepositId, AssetId, Amount)> {
    let stored = store.read_stream(&StreamId::user(trader.user), 1).await.unwrap();
    stored
        .into_iter()
        .filter(|e| e.event_type == "user.DepositCredited")
        .map(|e| match decode_user_event(&e.event_type, e.schema_version, e.payload).unwrap() {
            UserEvent::DepositCredited { deposit, asset, amount } => (deposit, asset, amount),
            other => panic!("not a credit: {other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Deposits
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_deposit_is_credited_once_it_is_n_blocks_deep_and_only_once() {
    let v = Venue::start("deposit-depth").await;
    let watcher = v.watcher(v.config().await).await;
    // Given Alice's deposit just mined (1 deep),
    v.deposit(&v.alice, v.quote, 5_000).await;
    // when the watcher reads the chain before it is 3 deep,
    for _ in 1..CONFIRMATIONS {
        watcher.poll_now().await.unwrap();
        assert_eq!(v.available(&v.alice, quote()).await, Amount(0), "credited before {CONFIRMATIONS} confirmations");
        v.mine(1).await;
    }
    // then nothing is credited; at 3 deep, it is.
    let report = watcher.poll_now().await.unwrap();
    assert_eq!(report.credited, 1, "{report:?}");
    v.wait_available(&v.alice, quote(), 5_000).await;
    // Reading again, and deeper, changes nothing.
    v.mine(5).await;
    assert_eq!(watcher.poll_now().await.unwrap().credited, 0);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(v.credits(&v.alice).await.len(), 1);
    assert_eq!(v.available(&v.alice, quote()).await.0, v.vault(v.alice.address(), v.quote).await);
}

#[actix_rt::test]
async fn a_redelivered_credit_is_applied_once() {
    let v = Venue::start("deposit-redelivered").await;
    let deposit = DepositId { tx: [7; 32], log_index: 2 };
    // Given a credit applied,
    let first = v.engine.credit_deposit(v.alice.user, deposit, quote(), Amount(10)).await.unwrap();
    assert_eq!(first.events.len(), 1);
    // when the same deposit id arrives again (even with another amount),
    let again = v.engine.credit_deposit(v.alice.user, deposit, quote(), Amount(99)).await.unwrap();
    // then nothing happens.
    assert!(again.events.is_empty(), "{again:?}");
    assert_eq!(v.available(&v.alice, quote()).await, Amount(10));
}

#[actix_rt::test]
async fn a_watcher_restarted_midway_neither_misses_nor_doubles_a_deposit() {
    let v = Venue::start("deposit-restart").await;
    let config = v.config().await;
    let first = v.watcher(config.clone()).await;
    // Given one deposit credited by a first watcher,
    v.deposit(&v.alice, v.quote, 1_000).await;
    v.mine(CONFIRMATIONS).await;
    assert_eq!(first.poll_now().await.unwrap().credited, 1);
    first.stop();
    drop(first);
    // and, while no watcher runs, a second deposit of Alice's and one of Bob's,
    v.deposit(&v.alice, v.quote, 2_000).await;
    v.deposit(&v.bob, v.base, 3_000).await;
    v.mine(CONFIRMATIONS).await;
    // when a new watcher starts from the same stream,
    let second = v.watcher(config.clone()).await;
    let view = second.inspect().await.unwrap().unwrap();
    assert!(view.stored_next_block > config.start_block, "the cursor was stored: {view:?}");
    // then it credits exactly the two it had not.
    assert_eq!(second.poll_now().await.unwrap().credited, 2);
    v.wait_available(&v.alice, quote(), 3_000).await;
    v.wait_available(&v.bob, base(), 3_000).await;
    assert_eq!(second.poll_now().await.unwrap().credited, 0);
    assert_eq!(v.credits(&v.alice).await.len(), 2);
    assert_eq!(v.credits(&v.bob).await.len(), 1);
}

#[actix_rt::test]
async fn a_crash_between_the_watchers_append_and_the_users_neither_loses_nor_doubles_a_deposit() {
    let v = Venue::start("deposit-crash").await;
    let config = v.config().await;
    let (block, deposit) = v.deposit(&v.alice, v.quote, 4_000).await;
    v.mine(CONFIRMATIONS).await;
    let Venue { dir, engine, alice, chain, .. } = v;
    engine.shutdown();
    drop(engine);
    // Given the watcher's append stored (the credit and its user-queue record, exactly as the
    // watcher commits them) and the process gone before the user applied it,
    {
        let store = SqliteEventStore::open(dir.path().join("hob.db")).unwrap();
        let credit =
            WatcherEvent::DepositCredited { deposit, block, user: alice.user, asset: quote(), amount: Amount(4_000) };
        let (event_type, version, payload) = encode_watcher_event(&credit);
        let record = TransferRecord::Deposit { deposit, asset: quote(), amount: Amount(4_000) };
        let id = uuid::Uuid::now_v7();
        store
            .append(AppendRequest {
                stream: StreamId::chain(config.chain_id),
                expected_version: 0,
                events: vec![NewEvent::new(&SystemClock, id, id, event_type, version, payload)],
                outbox: vec![OutboxRecord {
                    destination: USER_QUEUE.into(),
                    group: user_group(alice.user),
                    payload: encode_transfer_record(&record),
                }],
                idempotency_key: None,
            })
            .await
            .unwrap();
    }
    // when the engine restarts on the file and its watcher reads the same range again,
    let engine = start_engine(dir.path(), Address::ZERO, system_clock());
    let watcher = engine.start_chain_watcher(config.clone(), chain.clone()).await.unwrap();
    assert_eq!(watcher.poll_now().await.unwrap().credited, 0, "the watcher's stream already holds it");
    // then the relay delivers the stored record and Alice is credited once,
    wait_until("the stored credit is applied", LIMIT, || async {
        balance(&engine, alice.user, quote()).await.available == Amount(4_000)
    })
    .await;
    // and once more after another restart.
    drop(watcher);
    engine.shutdown();
    drop(engine);
    let engine = start_engine(dir.path(), Address::ZERO, system_clock());
    let watcher = engine.start_chain_watcher(config, chain).await.unwrap();
    assert_eq!(watcher.poll_now().await.unwrap().credited, 0);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(balance(&engine, alice.user, quote()).await.available, Amount(4_000));
    assert_eq!(credits_in(engine.store().as_ref(), &alice).await.len(), 1);
}

#[actix_rt::test]
async fn a_deposit_reorged_away_before_n_confirmations_is_never_credited() {
    let v = Venue::start("deposit-reorg").await;
    let watcher = v.watcher(v.config().await).await;
    // Given a deposit seen 2 deep, short of 3,
    fund(&v.admin, v.alice.address()).await;
    let before = v.admin.anvil_snapshot().await.unwrap();
    v.deposit(&v.alice, v.quote, 7_000).await;
    v.mine(1).await;
    assert_eq!(watcher.poll_now().await.unwrap().credited, 0);
    // when the chain reorganises without it and grows well past the depth,
    assert!(v.admin.anvil_revert(before).await.unwrap(), "evm_revert");
    v.mine(2 * CONFIRMATIONS).await;
    // then it is never credited,
    assert_eq!(watcher.poll_now().await.unwrap().credited, 0);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(v.available(&v.alice, quote()).await, Amount(0));
    assert_eq!(v.vault(v.alice.address(), v.quote).await, 0);
    // and a deposit on the new chain is credited as usual.
    v.deposit(&v.alice, v.quote, 8_000).await;
    v.mine(CONFIRMATIONS).await;
    assert_eq!(watcher.poll_now().await.unwrap().credited, 1);
    v.wait_available(&v.alice, quote(), 8_000).await;
}

#[actix_rt::test]
async fn a_deposit_of_a_token_no_market_trades_is_recorded_and_not_credited() {
    let v = Venue::start("deposit-unknown-token").await;
    let odd = *TestToken::deploy(v.admin.clone(), "Odd".into(), "ODD".into(), 18).await.unwrap().address();
    let watcher = v.watcher(v.config().await).await;
    v.deposit(&v.alice, odd, 1).await;
    v.mine(CONFIRMATIONS).await;
    let report = watcher.poll_now().await.unwrap();
    assert_eq!((report.credited, report.ignored), (0, 1));
    let stored = v.engine.store().read_stream(&StreamId::chain(v.chain_id), 1).await.unwrap();
    assert!(stored.iter().any(|e| e.event_type == "chain.DepositIgnored" && e.payload["reason"] == "unknown_token"));
    assert!(v.credits(&v.alice).await.is_empty());
    let _ = v.base;
}

// ---------------------------------------------------------------------------------------------
// Withdrawals
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn deposit_trade_settle_withdraw_leaves_the_vault_equal_to_the_ledgers() {
    let v = Venue::start("withdraw-happy").await;
    let handle = v.start_settlement().await;
    let watcher = v.watcher(v.config().await).await;
    let domain = eip712::domain(v.chain_id, v.exchange);
    // Given Alice's quote and Bob's base deposited on-chain and credited by the watcher,
    v.deposit_credited(&watcher, &v.alice, v.quote, 1_000_000).await;
    v.deposit_credited(&watcher, &v.bob, v.base, 10 * BASE_LOT).await;
    // and a trade of 4 lots at 100 settled,
    v.engine.place(v.bob.user, v.bob.limit(&domain, Side::Sell, 100, 10, 1)).await.unwrap();
    v.engine.place(v.alice.user, v.alice.limit(&domain, Side::Buy, 100, 4, 1)).await.unwrap();
    settled(&handle, 1, LIMIT).await;
    nothing_settling(&v.engine, v.alice.user, LIMIT).await;
    nothing_settling(&v.engine, v.bob.user, LIMIT).await;
    // when Alice withdraws the base she bought and Bob part of his quote,
    let alice_base = v.available(&v.alice, base()).await.0;
    assert_eq!(alice_base, 4 * BASE_LOT);
    v.request(&v.alice, &v.withdrawal(&v.alice, &v.alice.key, v.base, alice_base, 1), base()).await.unwrap();
    v.request(&v.bob, &v.withdrawal(&v.bob, &v.bob.key, v.quote, 1_000, 1), quote()).await.unwrap();
    // then, while the chain executes them, the funds are withdrawing: not available,
    assert_eq!(v.available(&v.alice, base()).await, Amount(0));
    // and once it has, they are in the wallets, and every vault balance equals its ledger.
    v.withdrawals_answered(&v.alice).await;
    v.withdrawals_answered(&v.bob).await;
    assert_eq!(v.withdrawal_outcomes(&v.alice).await, [(1, true, String::new())]);
    assert_eq!(v.withdrawal_outcomes(&v.bob).await, [(1, true, String::new())]);
    assert_eq!(v.wallet(v.alice.address(), v.base).await, alice_base);
    assert_eq!(v.wallet(v.bob.address(), v.quote).await, 1_000);
    for trader in [&v.alice, &v.bob] {
        for (asset, token) in [(base(), v.base), (quote(), v.quote)] {
            let off_chain = balance(&v.engine, trader.user, asset).await.total().unwrap().0;
            assert_eq!(v.vault(trader.address(), token).await, off_chain, "{asset} of {}", trader.user);
        }
    }
    let ops = handle.inspect().await.unwrap();
    assert_eq!((ops.pending_withdrawals, ops.in_flight.len()), (0, 0), "{ops:?}");
}

#[actix_rt::test]
async fn a_withdrawal_over_the_available_balance_or_reusing_a_nonce_is_refused_and_changes_nothing() {
    let v = Venue::start("withdraw-refused").await;
    let _handle = v.start_settlement().await;
    let watcher = v.watcher(v.config().await).await;
    v.deposit_credited(&watcher, &v.alice, v.quote, 5_000).await;
    let version = v.engine.user(v.alice.user).await.unwrap().version;
    // Over the available balance: a typed refusal, and nothing stored.
    let over = v.request(&v.alice, &v.withdrawal(&v.alice, &v.alice.key, v.quote, 5_001, 1), quote()).await;
    assert!(matches!(over, Err(EngineError::Rejected(hob::domain::user::UserReject::Ledger(_)))), "{over:?}");
    assert_eq!(v.engine.user(v.alice.user).await.unwrap().version, version);
    assert_eq!(v.available(&v.alice, quote()).await, Amount(5_000));
    // A nonce once used is refused the second time, even for another amount.
    v.request(&v.alice, &v.withdrawal(&v.alice, &v.alice.key, v.quote, 1_000, 2), quote()).await.unwrap();
    let again = v.request(&v.alice, &v.withdrawal(&v.alice, &v.alice.key, v.quote, 500, 2), quote()).await;
    assert!(
        matches!(again, Err(EngineError::Rejected(hob::domain::user::UserReject::WithdrawalNonceUsed))),
        "{again:?}"
    );
    v.withdrawals_answered(&v.alice).await;
    assert_eq!(v.available(&v.alice, quote()).await, Amount(4_000));
    assert_eq!(v.vault(v.alice.address(), v.quote).await, 4_000);
}

#[actix_rt::test]
async fn a_withdrawal_the_chain_refuses_gives_the_funds_back() {
    let v = Venue::start("withdraw-reverted").await;
    let handle = v.start_settlement().await;
    let watcher = v.watcher(v.config().await).await;
    v.deposit_credited(&watcher, &v.alice, v.quote, 5_000).await;
    // Given a withdrawal that reached the operator signed by another key (here past the
    // API's own check, which would have refused it) ...
    let forged = v.withdrawal(&v.alice, &v.bob.key, v.quote, 3_000, 1);
    v.request(&v.alice, &forged, quote()).await.unwrap();
    // ... and one that is more than the vault holds for Alice (her off-chain balance was
    // credited by hand, with nothing behind it on-chain),
    let phantom = DepositId { tx: [9; 32], log_index: 0 };
    v.engine.credit_deposit(v.alice.user, phantom, base(), Amount(BASE_LOT)).await.unwrap();
    v.request(&v.alice, &v.withdrawal(&v.alice, &v.alice.key, v.base, BASE_LOT, 2), base()).await.unwrap();
    // when the operator tries them, the chain refuses both,
    v.withdrawals_answered(&v.alice).await;
    // then each fails with the contract's reason and its funds are available again.
    assert_eq!(
        v.withdrawal_outcomes(&v.alice).await,
        [(1, false, "BadWithdrawalSignature".to_owned()), (2, false, "InsufficientBalance".to_owned())]
    );
    assert_eq!(v.available(&v.alice, quote()).await, Amount(5_000));
    assert_eq!(v.available(&v.alice, base()).await, Amount(BASE_LOT));
    assert_eq!(v.vault(v.alice.address(), v.quote).await, 5_000);
    assert_eq!(handle.inspect().await.unwrap().pending_withdrawals, 0);
}
