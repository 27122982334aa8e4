//! The conformance suite of the `Chain` port: what the operator relies on a node to do, run
//! against the simulated chain (a unit test below) and against a real anvil
//! (`tests/settlement_anvil.rs`), so the simulation tests' chain behaves like the real one:
//!
//! - a transaction is counted as pending, then as mined; sending it again is "already known",
//!   and once mined "nonce too low": both are `Sent::AlreadySubmitted`, never an error;
//! - a replacement at the same nonce paying less is "underpriced", one paying 10% more is
//!   taken (geth and BSC require the 10%, anvil less; the operator always bumps by 10%);
//!   only one of the two is ever mined;
//! - a dropped transaction is unknown until it is sent again;
//! - a reorg takes a mined transaction out until it is sent again;
//! - a refused call carries the contract's custom error as revert data.
//!
//! Test code shipped in the library (like `events::conformance`), so adapters elsewhere can
//! run it; a failed check panics naming what the port promised.

use std::future::Future;

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::SolInterface;

use super::chain::{AlreadySubmitted, CallRequest, Chain, NonceCounts, Sent, TxHash};
use super::nonce::bumped;
use super::tx::{decode_next_batch_index, next_batch_index_call, self_transfer, settle_batch_call, sign, OperatorKey};
use crate::chain::contract::HobExchangeErrors;

/// How a test steers a node: anvil's `evm_setAutomine`, `anvil_mine`,
/// `anvil_dropTransaction`, `anvil_reorg`, or the simulated chain's equivalents.
pub trait ChainControl: Send + Sync {
    fn set_automine(&self, on: bool) -> impl Future<Output = ()> + Send;
    fn mine(&self, blocks: u64) -> impl Future<Output = ()> + Send;
    fn drop_tx(&self, hash: TxHash) -> impl Future<Output = ()> + Send;
    /// Replaces the last `depth` blocks with as many empty ones.
    fn reorg(&self, depth: u64) -> impl Future<Output = ()> + Send;
}

/// What the suite needs besides the node: a key whose transactions the node accepts (funded)
/// and that is an operator of `exchange`.
pub struct Fixture<'a> {
    pub key: &'a OperatorKey,
    pub exchange: Address,
}

/// Runs every check, one after the other, leaving the node automining.
pub async fn run_all<C: Chain, K: ChainControl>(chain: &C, control: &K, fixture: &Fixture<'_>) {
    sending_again_and_replacing(chain, control, fixture).await;
    a_dropped_transaction_is_unknown_until_sent_again(chain, control, fixture).await;
    a_reorg_takes_a_mined_transaction_out_until_it_is_sent_again(chain, control, fixture).await;
    a_refused_call_carries_the_contract_error(chain, fixture).await;
    control.set_automine(true).await;
}

async fn counts<C: Chain>(chain: &C, who: Address) -> NonceCounts {
    chain.nonce_counts(who).await.unwrap_or_else(|e| panic!("conformance: nonce counts: {e}"))
}

async fn send<C: Chain>(chain: &C, raw: &Bytes, what: &str) -> Sent {
    chain.send_raw(raw.clone()).await.unwrap_or_else(|e| panic!("conformance: {what}: {e}"))
}

/// A signed self-transfer at `nonce` paying `price` per gas.
async fn transfer<C: Chain>(chain: &C, key: &OperatorKey, nonce: u64, price: u128) -> (TxHash, Bytes) {
    let chain_id = chain.chain_id().await.unwrap_or_else(|e| panic!("conformance: chain id: {e}"));
    let signed = sign(key, chain_id, &self_transfer(key.address(), nonce, price))
        .unwrap_or_else(|e| panic!("conformance: signing: {e}"));
    (signed.hash, signed.raw)
}

/// The receipt of a transaction an automining node mines: soon, not necessarily at once.
async fn receipt<C: Chain>(chain: &C, hash: TxHash, what: &str) -> super::chain::TxReceipt {
    for _ in 0..100 {
        if let Ok(Some(receipt)) = chain.receipt(hash).await {
            return receipt;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("conformance: no receipt within 2 s: {what}")
}

async fn price<C: Chain>(chain: &C) -> u128 {
    // Twice the quote: comfortably above a base fee that moves between blocks.
    2 * chain.gas_price().await.unwrap_or_else(|e| panic!("conformance: gas price: {e}"))
}

async fn sending_again_and_replacing<C: Chain, K: ChainControl>(chain: &C, control: &K, f: &Fixture<'_>) {
    control.set_automine(false).await;
    let who = f.key.address();
    let n = counts(chain, who).await.latest;
    let p = price(chain).await;
    let (first, first_raw) = transfer(chain, f.key, n, p).await;
    assert_eq!(send(chain, &first_raw, "first send").await, Sent::Accepted);
    assert_eq!(counts(chain, who).await, NonceCounts { latest: n, pending: n + 1 }, "a sent transaction is pending");
    assert!(chain.is_known(first).await.unwrap_or(false), "the node knows a pending transaction");
    assert_eq!(
        send(chain, &first_raw, "same again").await,
        Sent::AlreadySubmitted(AlreadySubmitted::AlreadyKnown),
        "sending the same transaction again is 'already known'"
    );
    let (_, cheap_raw) = transfer(chain, f.key, n, p - p / 20).await;
    assert_eq!(
        send(chain, &cheap_raw, "a cheaper replacement").await,
        Sent::AlreadySubmitted(AlreadySubmitted::ReplacementUnderpriced),
        "a replacement paying less is 'underpriced'"
    );
    let (second, second_raw) = transfer(chain, f.key, n, bumped(p)).await;
    assert_eq!(send(chain, &second_raw, "a 10% replacement").await, Sent::Accepted);
    control.mine(1).await;
    let receipt = chain.receipt(second).await.unwrap_or_else(|e| panic!("conformance: receipt: {e}"));
    assert!(receipt.is_some_and(|r| r.success), "the replacement is mined");
    assert_eq!(chain.receipt(first).await.ok().flatten(), None, "the replaced transaction is never mined");
    assert_eq!(counts(chain, who).await, NonceCounts { latest: n + 1, pending: n + 1 });
    let again = send(chain, &first_raw, "the replaced one after mining").await;
    assert!(
        matches!(again, Sent::AlreadySubmitted(AlreadySubmitted::NonceTooLow | AlreadySubmitted::AlreadyKnown)),
        "a transaction at a mined nonce is already submitted, got {again:?}"
    );
}

async fn a_dropped_transaction_is_unknown_until_sent_again<C: Chain, K: ChainControl>(
    chain: &C,
    control: &K,
    f: &Fixture<'_>,
) {
    control.set_automine(false).await;
    let who = f.key.address();
    let n = counts(chain, who).await.latest;
    let (hash, raw) = transfer(chain, f.key, n, price(chain).await).await;
    assert_eq!(send(chain, &raw, "send").await, Sent::Accepted);
    control.drop_tx(hash).await;
    assert!(!chain.is_known(hash).await.unwrap_or(true), "a dropped transaction is unknown");
    assert_eq!(counts(chain, who).await, NonceCounts { latest: n, pending: n }, "and no longer pending");
    assert_eq!(send(chain, &raw, "send after the drop").await, Sent::Accepted, "it can be sent again as it was");
    control.mine(1).await;
    assert!(chain.receipt(hash).await.ok().flatten().is_some_and(|r| r.success), "and then it is mined");
}

async fn a_reorg_takes_a_mined_transaction_out_until_it_is_sent_again<C: Chain, K: ChainControl>(
    chain: &C,
    control: &K,
    f: &Fixture<'_>,
) {
    control.set_automine(true).await;
    let who = f.key.address();
    let n = counts(chain, who).await.latest;
    let (hash, raw) = transfer(chain, f.key, n, price(chain).await).await;
    assert_eq!(send(chain, &raw, "send").await, Sent::Accepted);
    let mined = receipt(chain, hash, "automined").await;
    control.reorg(1).await;
    assert_eq!(chain.receipt(hash).await.ok().flatten(), None, "a reorged-out transaction has no receipt");
    assert_eq!(counts(chain, who).await.latest, n, "its nonce is free again");
    assert_eq!(send(chain, &raw, "send after the reorg").await, Sent::Accepted, "it can be sent again as it was");
    let again = receipt(chain, hash, "mined again").await;
    assert!(again.block >= mined.block, "in a block of the new chain");
}

async fn a_refused_call_carries_the_contract_error<C: Chain>(chain: &C, f: &Fixture<'_>) {
    let read = CallRequest { from: f.key.address(), to: f.exchange, data: next_batch_index_call() };
    let returned = chain.call(&read).await.unwrap_or_else(|e| panic!("conformance: nextBatchIndex: {e}"));
    let next = decode_next_batch_index(&returned).unwrap_or_else(|e| panic!("conformance: {e}"));
    let settle = CallRequest { from: f.key.address(), to: f.exchange, data: settle_batch_call(next + 5, Bytes::new()) };
    match chain.estimate_gas(&settle).await {
        Err(super::chain::ChainError::Reverted { data }) => {
            let error =
                HobExchangeErrors::abi_decode(&data).unwrap_or_else(|e| panic!("conformance: revert data: {e}"));
            assert!(
                matches!(error, HobExchangeErrors::BadBatchIndex(ref e) if e.expected == next && e.got == next + 5),
                "the revert names the batch index, got {error:?}"
            );
        }
        other => panic!("conformance: a batch at the wrong index must revert, got {other:?}"),
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/conformance.rs"]
mod tests;
