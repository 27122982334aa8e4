//! `hob audit --rpc` against a real EVM node (anvil from `.tools/`, one per test binary, killed
//! by a watchdog when the test process exits): given a user's deposit in the exchange's vault
//! on-chain and the same deposit in the user's stream, the vault balance equals the off-chain
//! settled balance; when the vault holds more than the events explain, the user's stream is
//! named.
// Test code unwraps: a failure should fail the test.

#[path = "support/anvil.rs"]
mod anvil;

use std::path::Path;
use std::process::Command;

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use hob::chain::contract::{HobExchange, TestToken};
use hob::domain::{Amount, AssetId, UserCommand, UserId, UserState};
use hob::events::user_payload::encode_user_event;
use hob::events::{AppendRequest, EventStore, NewEvent, StreamId, SystemClock};
use hob::store::SqliteEventStore;
use serde_json::Value;
use uuid::Uuid;

async fn wallet(name: &str) -> (PrivateKeySigner, DynProvider) {
    let key = PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())).unwrap();
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(anvil::anvil().endpoint_url())
        .erased();
    provider.anvil_set_balance(key.address(), U256::from(10u128.pow(21))).await.unwrap();
    (key, provider)
}

/// Mints `amount` of `token` to the wallet and deposits it into the exchange's vault.
async fn deposit_on_chain(provider: &DynProvider, who: Address, exchange: Address, token: Address, amount: u64) {
    let t = TestToken::new(token, provider.clone());
    t.mint(who, U256::from(amount)).send().await.unwrap().get_receipt().await.unwrap();
    t.approve(exchange, U256::from(amount)).send().await.unwrap().get_receipt().await.unwrap();
    let ex = HobExchange::new(exchange, provider.clone());
    ex.deposit(token, U256::from(amount)).send().await.unwrap().get_receipt().await.unwrap();
}

/// The user's stream holding one deposit, as the user actor stores it.
async fn deposit_off_chain(path: &Path, user: UserId, amount: u128) {
    let store = SqliteEventStore::open(path).unwrap();
    let events = UserState::new(user)
        .decide(UserCommand::Deposit { asset: AssetId::new("USDT").unwrap(), amount: Amount(amount) })
        .unwrap();
    let events = events
        .iter()
        .map(|e| {
            let w = encode_user_event(e);
            NewEvent::new(&SystemClock, Uuid::nil(), Uuid::nil(), w.event_type, w.schema_version, w.payload)
        })
        .collect();
    let stream = StreamId::user(user);
    let append = AppendRequest { stream, expected_version: 0, events, outbox: vec![], idempotency_key: None };
    store.append(append).await.unwrap();
}

fn audit(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hob")).arg("audit").args(args).arg("--json").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

#[test]
fn vault_balances_are_compared_with_settled_balances() {
    // given an exchange and a token on anvil, and alice's 5,000 deposited in its vault and in
    // her stream
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.db");
    let (alice, alice_provider, exchange, token) = anvil::run(async {
        let (admin, provider) = wallet("audit-onchain/admin").await;
        let token = *TestToken::deploy(provider.clone(), "Tether".into(), "USDT".into(), 6).await.unwrap().address();
        let exchange = *HobExchange::deploy(provider.clone(), admin.address(), 86_400).await.unwrap().address();
        let (alice, alice_provider) = wallet("audit-onchain/alice").await;
        deposit_on_chain(&alice_provider, alice.address(), exchange, token, 5_000).await;
        (alice, alice_provider, exchange, token)
    });
    let user = UserId(alice.address().0 .0);
    anvil::run(deposit_off_chain(&path, user, 5_000));
    let store = format!("sqlite:{}", path.display());
    let rpc = anvil::anvil().endpoint();
    let (exchange_s, token_flag) = (exchange.to_string(), format!("USDT={token}"));
    let args = ["--store", &store, "--rpc", &rpc, "--exchange", &exchange_s, "--token", &token_flag];

    // when audited against the chain, then the balances agree and the settled balance is defined
    let (code, report) = audit(&args);
    assert_eq!(code, 0, "{report:#}");
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "on_chain_balances").unwrap().clone();
    assert_eq!((check["ok"].clone(), check["checked"].clone()), (Value::Bool(true), Value::from(1)));
    assert!(report["settled_definition"].as_str().unwrap().contains("confirmed settlement batch"));

    // when the vault receives 1 more than any event explains, then alice's stream is named
    anvil::run(deposit_on_chain(&alice_provider, alice.address(), exchange, token, 1));
    let (code, report) = audit(&args);
    assert_eq!(code, 1, "{report:#}");
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "on_chain_balances").unwrap().clone();
    let v = &check["violations"][0];
    assert_eq!(v["stream"], StreamId::user(user).as_str());
    assert!(
        v["message"].as_str().unwrap().contains("on-chain vault balance 5001, off-chain settled balance 5000"),
        "{v}"
    );
}
