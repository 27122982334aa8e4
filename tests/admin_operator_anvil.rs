//! The admin operator against a real anvil: commands issued through the `admin` stream reach
//! it over the admin queue, and it registers markets and pauses the real `HobExchange`,
//! idempotently, recording one outcome per command in its own stream.
//!
//! One anvil for the file (`hob::chain::devnet::Devnet`, which dies with this process); each
//! test deploys its own exchange with its own admin key.

// Test code unwraps: a failure should fail the test.

mod settlement_support;

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use hob::actors::admin_operator::{AdminCommand, AdminOperatorHandle, AdminOutcome, COMMAND_ISSUED};
use hob::chain::admin::{ContractAdmin, OnChainMarket};
use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::devnet::Devnet;
use hob::events::{EventStore, StreamId};
use hob::store::sqlite::SqliteEventStore;
use settlement_support::{start_engine, system_clock, TestEngine};

const LIMIT: Duration = Duration::from_secs(30);

fn devnet() -> &'static Devnet {
    static DEVNET: OnceLock<Devnet> = OnceLock::new();
    // Block time zero: a block per transaction keeps the tests quick.
    DEVNET.get_or_init(|| Devnet::spawn(Duration::ZERO, 0).unwrap_or_else(|e| panic!("{e}")))
}

fn key(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())).unwrap()
}

fn provider(key: &PrivateKeySigner) -> DynProvider {
    let url = devnet().endpoint().parse().unwrap();
    ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url).erased()
}

struct Venue {
    _dir: tempfile::TempDir,
    engine: TestEngine,
    handle: AdminOperatorHandle<SqliteEventStore>,
    exchange: HobExchange::HobExchangeInstance<DynProvider>,
    grid: OnChainMarket,
}

/// A fresh exchange administered by `name`'s key, two tokens, and an engine whose admin
/// operator holds `operator_name`'s key (the admin's, unless a test says otherwise).
async fn venue(name: &str, operator_name: &str) -> Venue {
    let admin_key = key(&format!("{name}/admin"));
    let admin = provider(&admin_key);
    admin.anvil_set_balance(admin_key.address(), U256::from(10u128.pow(21))).await.unwrap();
    let operator_key = key(&format!("{name}/{operator_name}"));
    admin.anvil_set_balance(operator_key.address(), U256::from(10u128.pow(21))).await.unwrap();
    let base = *TestToken::deploy(admin.clone(), "Base".into(), "BASE".into(), 18).await.unwrap().address();
    let quote = *TestToken::deploy(admin.clone(), "Quote".into(), "QUOTE".into(), 6).await.unwrap().address();
    let fees = key(&format!("{name}/fees")).address();
    let exchange = HobExchange::deploy(admin.clone(), fees, 86_400).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(dir.path(), Address::ZERO, system_clock());
    let contract_admin = ContractAdmin::connect(&devnet().endpoint(), operator_key, *exchange.address()).unwrap();
    let handle = engine.start_admin_operator(contract_admin).await.unwrap();
    let grid = OnChainMarket { base, quote, base_lot: 1_000_000_000_000_000, quote_tick: 10 };
    Venue { _dir: dir, engine, handle, exchange, grid }
}

impl Venue {
    /// Issues `command` and waits for the admin operator's outcome of it.
    async fn carry_out(&self, command: AdminCommand) -> AdminOutcome {
        let before = self.handle.inspect().await.unwrap().version;
        self.handle.issue(&command).await.unwrap();
        let deadline = Instant::now() + LIMIT;
        loop {
            let view = self.handle.inspect().await.unwrap();
            if view.version > before {
                return view.recent.last().unwrap().1.clone();
            }
            assert!(Instant::now() < deadline, "no outcome for {command:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn on_chain(&self, id: u32) -> (Address, Address, u128, u128) {
        let m = self.exchange.markets(id).call().await.unwrap();
        (m.base, m.quote, m.baseLot, m.quoteTick)
    }
}

fn register(id: u32, grid: OnChainMarket) -> AdminCommand {
    AdminCommand::register("BASE-QUOTE".to_owned(), id, grid)
}

#[actix_rt::test]
async fn given_an_unregistered_market_when_registration_is_issued_then_it_is_registered_once_and_a_repeat_is_success() {
    let v = venue("register", "admin").await;
    assert_eq!(v.on_chain(7).await.0, Address::ZERO);

    let outcome = v.carry_out(register(7, v.grid)).await;
    assert!(matches!(outcome, AdminOutcome::MarketRegistered { chain_market_id: 7, .. }), "{outcome:?}");
    assert_eq!(v.on_chain(7).await, (v.grid.base, v.grid.quote, v.grid.base_lot, v.grid.quote_tick));

    let outcome = v.carry_out(register(7, v.grid)).await;
    assert!(matches!(outcome, AdminOutcome::MarketAlreadyRegistered { chain_market_id: 7, .. }), "{outcome:?}");
    assert_eq!(v.handle.alerts.load(Ordering::Relaxed), 0);

    // The commands are in the `admin` stream, the outcomes in the operator's own.
    let store = v.engine.store();
    let issued = store.read_stream(&StreamId::admin(), 1).await.unwrap();
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|e| e.event_type == COMMAND_ISSUED));
    let own = v.handle.inspect().await.unwrap().stream;
    let types: Vec<String> = store.read_stream(&own, 1).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["admin.MarketRegistered", "admin.MarketAlreadyRegistered"]);
}

#[actix_rt::test]
async fn given_a_registered_market_when_other_parameters_are_issued_then_nothing_is_sent_and_a_conflict_is_alerted() {
    let v = venue("conflict", "admin").await;
    v.carry_out(register(3, v.grid)).await;

    let other = OnChainMarket { base_lot: v.grid.base_lot * 10, ..v.grid };
    let outcome = v.carry_out(register(3, other)).await;
    match outcome {
        AdminOutcome::MarketConflict { chain_market_id: 3, requested, on_chain, .. } => {
            assert_eq!(requested.base_lot, other.base_lot.to_string());
            assert_eq!(on_chain.base_lot, v.grid.base_lot.to_string());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(v.handle.alerts.load(Ordering::Relaxed), 1);
    assert_eq!(v.on_chain(3).await.2, v.grid.base_lot, "the market on-chain is unchanged");
}

#[actix_rt::test]
async fn given_operator_commands_when_pause_and_unpause_are_issued_then_the_contract_follows_and_repeats_send_nothing()
{
    let v = venue("pause", "admin").await;
    let outcome = v.carry_out(AdminCommand::Pause).await;
    assert!(matches!(outcome, AdminOutcome::Paused { tx: Some(_) }), "{outcome:?}");
    assert!(v.exchange.paused().call().await.unwrap());

    let outcome = v.carry_out(AdminCommand::Pause).await;
    assert_eq!(outcome, AdminOutcome::Paused { tx: None }, "already paused: nothing sent");

    let outcome = v.carry_out(AdminCommand::Unpause).await;
    assert!(matches!(outcome, AdminOutcome::Unpaused { tx: Some(_) }), "{outcome:?}");
    assert!(!v.exchange.paused().call().await.unwrap());
}

#[actix_rt::test]
async fn given_a_key_that_is_not_the_contracts_admin_when_it_pauses_then_the_refusal_is_recorded_and_alerted() {
    let v = venue("stranger", "not-admin").await;
    let outcome = v.carry_out(AdminCommand::Pause).await;
    match &outcome {
        AdminOutcome::Refused { command, reason } => {
            assert_eq!(command, "pause");
            assert!(reason.contains("NotAdmin"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(v.handle.alerts.load(Ordering::Relaxed), 1);
    assert!(!v.exchange.paused().call().await.unwrap());
}

#[actix_rt::test]
async fn given_a_registration_the_contract_refuses_when_the_next_command_comes_then_it_is_carried_out() {
    let v = venue("refused", "admin").await;
    let bad_grid = OnChainMarket { quote: v.grid.base, ..v.grid };
    let outcome = v.carry_out(register(9, bad_grid)).await;
    match &outcome {
        AdminOutcome::Refused { command, reason } => {
            assert_eq!(command, "register_market");
            assert!(reason.contains("BadMarketGrid"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(v.on_chain(9).await.0, Address::ZERO);
    // A refusal found before sending holds nothing up: the next command goes through.
    let outcome = v.carry_out(register(9, v.grid)).await;
    assert!(matches!(outcome, AdminOutcome::MarketRegistered { chain_market_id: 9, .. }), "{outcome:?}");
}
