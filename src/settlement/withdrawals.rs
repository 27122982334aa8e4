//! Withdrawals the settlement operator executes on-chain: the user's signed `Withdrawal`, the
//! record that carries it from the user to the operator, and the operator's pending set.
//!
//! The withdrawal rides the operator wallet's own nonces (`nonce.rs`, `TxPurpose::Withdrawal`):
//! one wallet, one nonce owner. The contract checks the user's signature again, and refuses a
//! withdrawal nonce used twice, so a replayed request can move funds once at most.
//!
//! The text of a `domain::WithdrawalAuth` is JSON: `withdrawal`, the EIP-712 `Withdrawal`
//! exactly as the wallet signed it (`chain::eip712::MessageJson`, integers as decimal
//! strings), and `signature`, 65 bytes of `0x` hex.
//!
//! ```json
//! {"withdrawal":{"user":"0x…","token":"0x…","amount":"1000","nonce":"1","expiry":"0"},
//!  "signature":"0x…130 hex digits…"}
//! ```

use std::collections::BTreeMap;

use alloy::primitives::{Address, Bytes, Signature, U256};
use alloy::sol_types::{Eip712Domain, SolCall};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{integer, signature_from_hex, AuthError};
use crate::chain::contract::HobExchange;
use crate::chain::eip712::{self, MessageJson, SignatureError, Withdrawal};
use crate::domain::{Amount, AssetId, UserId, WithdrawalAuth};

/// A user's withdrawal with its signature, as the wallet sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedWithdrawal {
    pub withdrawal: Withdrawal,
    pub signature: Signature,
}

impl SignedWithdrawal {
    pub fn sign(
        signer: &alloy::signers::local::PrivateKeySigner,
        withdrawal: Withdrawal,
        domain: &Eip712Domain,
    ) -> Result<SignedWithdrawal, SignatureError> {
        let signature = eip712::sign(signer, &withdrawal, domain)?;
        Ok(SignedWithdrawal { withdrawal, signature })
    }

    pub fn signer(&self, domain: &Eip712Domain) -> Result<Address, SignatureError> {
        eip712::recover_signer(&self.withdrawal, domain, &self.signature)
    }

    /// `withdraw(user, token, amount, nonce, expiry, signature)`, the operator's call.
    pub fn call_data(&self) -> Bytes {
        let w = &self.withdrawal;
        let call = HobExchange::withdrawCall {
            user: w.user,
            token: w.token,
            amount: w.amount,
            nonce: w.nonce,
            expiry: w.expiry,
            signature: Bytes::from(self.signature.as_bytes().to_vec()),
        };
        Bytes::from(call.abi_encode())
    }
}

pub fn encode_withdrawal_auth(signed: &SignedWithdrawal) -> WithdrawalAuth {
    let signature = format!("0x{}", alloy::hex::encode(signed.signature.as_bytes()));
    WithdrawalAuth::new(json!({ "withdrawal": signed.withdrawal.message_json(), "signature": signature }).to_string())
}

pub fn decode_withdrawal_auth(auth: &WithdrawalAuth) -> Result<SignedWithdrawal, AuthError> {
    let value: Value = serde_json::from_str(auth.as_str()).map_err(|e| AuthError::Json(e.to_string()))?;
    let w = value.get("withdrawal").and_then(Value::as_object).ok_or(AuthError::Field("withdrawal"))?;
    let signature = value.get("signature").and_then(Value::as_str).ok_or(AuthError::Field("signature"))?;
    let address = |field: &'static str| {
        w.get(field).and_then(Value::as_str).and_then(|s| s.parse::<Address>().ok()).ok_or(AuthError::Field(field))
    };
    let amount: u128 = integer(w, "amount")?;
    Ok(SignedWithdrawal {
        withdrawal: Withdrawal {
            user: address("user")?,
            token: address("token")?,
            amount: U256::from(amount),
            nonce: integer(w, "nonce")?,
            expiry: integer(w, "expiry")?,
        },
        signature: signature_from_hex(signature)?,
    })
}

/// A withdrawal is named by its user and the nonce the user signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WithdrawalKey {
    pub user: UserId,
    pub nonce: u64,
}

impl std::fmt::Display for WithdrawalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.user, self.nonce)
    }
}

/// A withdrawal on the settlement queue: the user's funds are already withdrawing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedWithdrawal {
    pub user: UserId,
    pub nonce: u64,
    pub asset: AssetId,
    pub amount: Amount,
    pub auth: WithdrawalAuth,
}

impl QueuedWithdrawal {
    pub fn key(&self) -> WithdrawalKey {
        WithdrawalKey { user: self.user, nonce: self.nonce }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WithdrawalsError {
    #[error("withdrawal {0} is already held")]
    Duplicate(WithdrawalKey),
    #[error("withdrawal {0} is not held")]
    Unknown(WithdrawalKey),
}

/// The withdrawals the operator holds until the chain answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Withdrawals {
    held: BTreeMap<WithdrawalKey, QueuedWithdrawal>,
    completed: u64,
    failed: u64,
}

impl Withdrawals {
    pub fn get(&self, key: &WithdrawalKey) -> Option<&QueuedWithdrawal> {
        self.held.get(key)
    }

    pub fn held(&self) -> impl Iterator<Item = &QueuedWithdrawal> + '_ {
        self.held.values()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// (completed, failed) since the stream began.
    pub fn counts(&self) -> (u64, u64) {
        (self.completed, self.failed)
    }

    pub fn queue(&mut self, w: &QueuedWithdrawal) -> Result<(), WithdrawalsError> {
        if self.held.contains_key(&w.key()) {
            return Err(WithdrawalsError::Duplicate(w.key()));
        }
        self.held.insert(w.key(), w.clone());
        Ok(())
    }

    pub fn end(&mut self, key: &WithdrawalKey, success: bool) -> Result<QueuedWithdrawal, WithdrawalsError> {
        let w = self.held.remove(key).ok_or(WithdrawalsError::Unknown(*key))?;
        if success {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        Ok(w)
    }
}

// ---------------------------------------------------------------------------------------------
// The settlement-queue record: `{"withdrawal": {"user", "nonce", "asset", "amount", "auth"}}`.

#[derive(Serialize, Deserialize)]
struct WireQueuedWithdrawal {
    user: String,
    nonce: u64,
    asset: String,
    amount: String,
    auth: String,
}

pub fn encode_withdrawal_record(w: &QueuedWithdrawal) -> Value {
    json!({ "withdrawal": wire(w) })
}

fn wire(w: &QueuedWithdrawal) -> WireQueuedWithdrawal {
    WireQueuedWithdrawal {
        user: w.user.to_string(),
        nonce: w.nonce,
        asset: w.asset.to_string(),
        amount: w.amount.0.to_string(),
        auth: w.auth.as_str().to_owned(),
    }
}

/// The withdrawal in a settlement-queue body, or None if the body is something else (a trade).
pub fn decode_withdrawal_record(body: &Value) -> Option<Result<QueuedWithdrawal, String>> {
    body.get("withdrawal").map(|inner| queued_from_value(inner.clone()))
}

/// The payload of `operator.WithdrawalQueued`: the record's inner object.
pub fn queued_to_value(w: &QueuedWithdrawal) -> Value {
    // Strings and integers always serialize.
    serde_json::to_value(wire(w)).unwrap_or(Value::Null)
}

pub fn queued_from_value(value: Value) -> Result<QueuedWithdrawal, String> {
    let w: WireQueuedWithdrawal = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let digits = !w.amount.is_empty() && w.amount.bytes().all(|b| b.is_ascii_digit());
    Ok(QueuedWithdrawal {
        user: UserId::from_hex(&w.user).map_err(|e| e.to_string())?,
        nonce: w.nonce,
        asset: AssetId::new(&w.asset).map_err(|e| e.to_string())?,
        amount: Amount(digits.then(|| w.amount.parse().ok()).flatten().ok_or("amount")?),
        auth: WithdrawalAuth::new(w.auth),
    })
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/withdrawals.rs"]
mod tests;
