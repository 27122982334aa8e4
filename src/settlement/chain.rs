//! The `Chain` port: what the settlement operator needs from an EVM node, and nothing about
//! how an adapter provides it. Two adapters: `rpc::RpcChain` (JSON-RPC through alloy: anvil,
//! BSC) and `sim::SimChain` (deterministic, in memory, for simulation tests). Both pass the
//! suite in `conformance.rs`.
//!
//! Transactions arrive already signed (`tx.rs`): the operator assigns nonces and fees itself,
//! so the port never fills anything in. Sending a transaction the node already has in some
//! form ("nonce too low", "already known", "replacement transaction underpriced") is not a
//! failure: it means a transaction at that nonce was submitted before, and which one is
//! resolved by receipts.

use std::future::Future;

use alloy::primitives::{Address, Bytes, B256};

pub type TxHash = B256;

/// How many transactions of an address the node counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceCounts {
    /// Mined in the latest block: the next nonce the chain will accept for mining.
    pub latest: u64,
    /// Including the node's mempool.
    pub pending: u64,
}

/// A mined transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReceipt {
    pub hash: TxHash,
    pub block: u64,
    /// False when the transaction reverted (its nonce and gas are spent all the same).
    pub success: bool,
    pub gas_used: u64,
}

/// Why a node refused a transaction it already has in some form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlreadySubmitted {
    /// A transaction with this nonce was mined.
    NonceTooLow,
    /// This very transaction is in the mempool (or mined).
    AlreadyKnown,
    /// Another transaction with this nonce is in the mempool and this one does not pay enough
    /// more to replace it.
    ReplacementUnderpriced,
}

/// What became of a sent transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Accepted,
    AlreadySubmitted(AlreadySubmitted),
}

/// A read-only call (or a gas estimate) against the latest state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    pub from: Address,
    pub to: Address,
    pub data: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached or answered garbage: try again later.
    #[error("chain transport: {0}")]
    Transport(String),
    /// The call (or the estimate) reverted; `data` is the revert data (a custom error).
    #[error("execution reverted (0x{})", alloy::hex::encode(.data))]
    Reverted { data: Bytes },
    /// The node refused the transaction for a reason other than already having it
    /// (insufficient funds, gas limit, fee below the floor).
    #[error("node refused the transaction: {0}")]
    Refused(String),
}

/// An EVM node. Futures are `Send`, like the event store's, so a chain can be awaited from
/// any task.
pub trait Chain: Send + Sync {
    fn chain_id(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    fn nonce_counts(&self, address: Address) -> impl Future<Output = Result<NonceCounts, ChainError>> + Send;

    /// The price per gas a legacy transaction should pay now, in wei.
    fn gas_price(&self) -> impl Future<Output = Result<u128, ChainError>> + Send;

    fn block_number(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;

    /// Broadcasts a signed transaction (EIP-2718 bytes).
    fn send_raw(&self, raw: Bytes) -> impl Future<Output = Result<Sent, ChainError>> + Send;

    /// The receipt, if the transaction is in the node's canonical chain.
    fn receipt(&self, hash: TxHash) -> impl Future<Output = Result<Option<TxReceipt>, ChainError>> + Send;

    /// Whether the node knows the transaction at all (mempool or chain). A dropped
    /// transaction, or one a reorg took out of the chain, is unknown and must be sent again.
    fn is_known(&self, hash: TxHash) -> impl Future<Output = Result<bool, ChainError>> + Send;

    fn estimate_gas(&self, call: &CallRequest) -> impl Future<Output = Result<u64, ChainError>> + Send;

    fn call(&self, call: &CallRequest) -> impl Future<Output = Result<Bytes, ChainError>> + Send;
}

/// Reads a node's refusal: the three messages that mean "a transaction at this nonce was
/// submitted before" (in the wordings of geth, BSC, erigon, reth and anvil), else `None`.
pub fn already_submitted(message: &str) -> Option<AlreadySubmitted> {
    let m = message.to_ascii_lowercase();
    if m.contains("nonce too low") || m.contains("nonce is too low") {
        Some(AlreadySubmitted::NonceTooLow)
    } else if m.contains("already known") || m.contains("already imported") || m.contains("known transaction") {
        Some(AlreadySubmitted::AlreadyKnown)
    } else if m.contains("replacement transaction underpriced") || m.contains("replacement underpriced") {
        Some(AlreadySubmitted::ReplacementUnderpriced)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_already_submitted_refusals_are_recognised_in_every_wording() {
        let cases = [
            ("nonce too low", Some(AlreadySubmitted::NonceTooLow)),
            ("nonce too low: next nonce 5, tx nonce 3", Some(AlreadySubmitted::NonceTooLow)),
            ("Nonce is too low", Some(AlreadySubmitted::NonceTooLow)),
            ("already known", Some(AlreadySubmitted::AlreadyKnown)),
            ("transaction already imported", Some(AlreadySubmitted::AlreadyKnown)),
            ("known transaction: 0xabc", Some(AlreadySubmitted::AlreadyKnown)),
            ("replacement transaction underpriced", Some(AlreadySubmitted::ReplacementUnderpriced)),
            ("insufficient funds for gas * price + value", None),
            ("intrinsic gas too low", None),
        ];
        for (message, expected) in cases {
            assert_eq!(already_submitted(message), expected, "{message}");
        }
    }
}
