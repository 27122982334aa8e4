//! The operator's transactions, built and signed locally: the settlement call and the
//! zero-value self-transfer that consumes a stuck nonce. Pure computation (signing is
//! deterministic, RFC 6979), no I/O: the signed bytes are stored before they are sent, so a
//! restart re-sends exactly what was signed.
//!
//! Legacy (type 0, EIP-155) transactions: one gas price is the whole fee, which is what BSC
//! prices by and what anvil accepts, and a replacement is simply a higher price.

use std::fmt;

use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, TxKind, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;

use super::chain::TxHash;
use crate::chain::contract::HobExchange;

/// Gas of a plain value transfer: what a self-transfer costs, exactly.
pub const TRANSFER_GAS: u64 = 21_000;

#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    #[error("operator key: {0}")]
    Key(String),
    #[error("unexpected return data: {0}")]
    Decode(String),
}

/// The operator wallet's private key. Its `Debug` shows the address only, so the key never
/// reaches a log.
#[derive(Clone)]
pub struct OperatorKey(PrivateKeySigner);

impl OperatorKey {
    /// From `0x` + 64 hex digits (surrounding whitespace ignored, as in a key file).
    pub fn from_hex(text: &str) -> Result<OperatorKey, TxError> {
        let text = text.trim();
        let hex = text.strip_prefix("0x").unwrap_or(text);
        let bytes: B256 = hex.parse().map_err(|_| TxError::Key("expected 32 bytes of hex".into()))?;
        PrivateKeySigner::from_bytes(&bytes).map(OperatorKey).map_err(|e| TxError::Key(e.to_string()))
    }

    pub fn from_signer(signer: PrivateKeySigner) -> OperatorKey {
        OperatorKey(signer)
    }

    pub fn address(&self) -> Address {
        self.0.address()
    }
}

impl fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorKey({})", self.address())
    }
}

/// What to sign: a call or transfer of no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxPlan {
    pub nonce: u64,
    pub gas_price: u128,
    pub gas_limit: u64,
    pub to: Address,
    pub data: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    pub hash: TxHash,
    /// EIP-2718 bytes, as `eth_sendRawTransaction` takes them.
    pub raw: Bytes,
}

/// Signs `plan` for `chain_id`.
pub fn sign(key: &OperatorKey, chain_id: u64, plan: &TxPlan) -> Result<SignedTx, TxError> {
    let mut tx = TxLegacy {
        chain_id: Some(chain_id),
        nonce: plan.nonce,
        gas_price: plan.gas_price,
        gas_limit: plan.gas_limit,
        to: TxKind::Call(plan.to),
        value: U256::ZERO,
        input: plan.data.clone(),
    };
    let signature = key.0.sign_transaction_sync(&mut tx)?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx { hash: *envelope.tx_hash(), raw: envelope.encoded_2718().into() })
}

/// The zero-value transfer to itself that consumes `nonce` and does nothing else (the
/// original system's "empty signature").
pub fn self_transfer(operator: Address, nonce: u64, gas_price: u128) -> TxPlan {
    TxPlan { nonce, gas_price, gas_limit: TRANSFER_GAS, to: operator, data: Bytes::new() }
}

/// The calldata of `settleBatch(index, data)`.
pub fn settle_batch_call(index: u64, data: Bytes) -> Bytes {
    HobExchange::settleBatchCall { batchIndex: index, data }.abi_encode().into()
}

/// The calldata of `nextBatchIndex()`.
pub fn next_batch_index_call() -> Bytes {
    HobExchange::nextBatchIndexCall {}.abi_encode().into()
}

pub fn decode_next_batch_index(returned: &[u8]) -> Result<u64, TxError> {
    HobExchange::nextBatchIndexCall::abi_decode_returns(returned).map_err(|e| TxError::Decode(e.to_string()))
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/tx.rs"]
mod tests;
