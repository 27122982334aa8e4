//! Money crossing the vault's edge: deposits credited from the chain and withdrawals on their
//! way out. Pure state, folded by `UserState` beside its `Account`.
//!
//! A deposit is named by where the chain logged it ([`DepositId`]: transaction hash and log
//! index), and a user remembers every deposit it was credited, so a credit delivered twice
//! (a redelivered queue record, a watcher replaying after a crash) changes nothing the second
//! time. A withdrawal is named by the nonce the user signed: the contract refuses a nonce used
//! twice, and so does the user. While the operator executes it, its amount is *withdrawing*:
//! out of available (it can no longer be traded or withdrawn again) but not gone, and it comes
//! back if the chain refuses the withdrawal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::ids::AssetId;
use super::units::Amount;

/// A deposit as the chain logged it: the transaction's hash and the log's index in its block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DepositId {
    pub tx: [u8; 32],
    pub log_index: u64,
}

impl fmt::Display for DepositId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.tx {
            write!(f, "{b:02x}")?;
        }
        write!(f, ":{}", self.log_index)
    }
}

impl fmt::Debug for DepositId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DepositId({self})")
    }
}

impl DepositId {
    /// Parses the text [`fmt::Display`] writes: `0x` + 64 hex digits, `:`, the log index.
    pub fn parse(s: &str) -> Option<DepositId> {
        let (hash, index) = s.split_once(':')?;
        let hex = hash.strip_prefix("0x")?;
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut tx = [0u8; 32];
        for (i, byte) in tx.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
        Some(DepositId { tx, log_index: if digits { index.parse().ok()? } else { return None } })
    }
}

/// The user's signed withdrawal as the operator will send it (token, amount, nonce, expiry and
/// signature, in the chain layer's text form). Opaque here: the domain only carries it from
/// the request to the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalAuth(pub std::sync::Arc<str>);

impl WithdrawalAuth {
    pub fn new(text: impl Into<std::sync::Arc<str>>) -> WithdrawalAuth {
        WithdrawalAuth(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A withdrawal the user asked for and the chain has not answered yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingWithdrawal {
    pub asset: AssetId,
    pub amount: Amount,
}

/// Why a transfer event does not fit the state (a corrupt or reordered stream).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("deposit {0} is already credited")]
    DepositCredited(DepositId),
    #[error("withdrawal nonce {0} is already used")]
    WithdrawalNonceUsed(u64),
    #[error("withdrawal {nonce} is not pending as {asset} {amount}")]
    NotPending { nonce: u64, asset: AssetId, amount: Amount },
}

/// What a user's transfers hold: every deposit credited, every withdrawal nonce used, and the
/// withdrawals still in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    credited: BTreeSet<DepositId>,
    /// Every nonce a withdrawal request used (pending, completed or failed): a failed
    /// withdrawal's signature may not be replayed either.
    used_nonces: BTreeSet<u64>,
    pending: BTreeMap<u64, PendingWithdrawal>,
}

/// Everything [`Transfers`] holds, plainly, for snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransfersParts {
    /// Ascending.
    pub credited: Vec<DepositId>,
    /// Ascending.
    pub used_nonces: Vec<u64>,
    /// By nonce, ascending.
    pub pending: Vec<(u64, PendingWithdrawal)>,
}

impl Transfers {
    pub fn is_credited(&self, deposit: &DepositId) -> bool {
        self.credited.contains(deposit)
    }

    pub fn nonce_used(&self, nonce: u64) -> bool {
        self.used_nonces.contains(&nonce)
    }

    pub fn pending(&self, nonce: u64) -> Option<&PendingWithdrawal> {
        self.pending.get(&nonce)
    }

    pub fn pending_withdrawals(&self) -> impl Iterator<Item = (u64, &PendingWithdrawal)> + '_ {
        self.pending.iter().map(|(n, p)| (*n, p))
    }

    /// What of `asset` is on its way out.
    pub fn withdrawing(&self, asset: AssetId) -> Amount {
        // Each pending amount was debited from a u128 balance, so their sum fits in one.
        Amount(self.pending.values().filter(|p| p.asset == asset).map(|p| p.amount.0).fold(0u128, u128::saturating_add))
    }

    pub fn credit(&mut self, deposit: DepositId) -> Result<(), TransferError> {
        if !self.credited.insert(deposit) {
            return Err(TransferError::DepositCredited(deposit));
        }
        Ok(())
    }

    pub fn request(&mut self, nonce: u64, pending: PendingWithdrawal) -> Result<(), TransferError> {
        if !self.used_nonces.insert(nonce) {
            return Err(TransferError::WithdrawalNonceUsed(nonce));
        }
        self.pending.insert(nonce, pending);
        Ok(())
    }

    /// Ends a pending withdrawal that must be exactly `expected`.
    pub fn finish(&mut self, nonce: u64, expected: PendingWithdrawal) -> Result<(), TransferError> {
        match self.pending.get(&nonce) {
            Some(p) if *p == expected => {
                self.pending.remove(&nonce);
                Ok(())
            }
            _ => Err(TransferError::NotPending { nonce, asset: expected.asset, amount: expected.amount }),
        }
    }

    pub fn to_parts(&self) -> TransfersParts {
        TransfersParts {
            credited: self.credited.iter().copied().collect(),
            used_nonces: self.used_nonces.iter().copied().collect(),
            pending: self.pending.iter().map(|(n, p)| (*n, *p)).collect(),
        }
    }

    /// Refuses parts no live state could have: a pending withdrawal whose nonce is not used.
    pub fn from_parts(parts: TransfersParts) -> Result<Transfers, &'static str> {
        let used_nonces: BTreeSet<u64> = parts.used_nonces.into_iter().collect();
        let pending: BTreeMap<u64, PendingWithdrawal> = parts.pending.into_iter().collect();
        if pending.keys().any(|n| !used_nonces.contains(n)) {
            return Err("a pending withdrawal's nonce is not among the used ones");
        }
        Ok(Transfers { credited: parts.credited.into_iter().collect(), used_nonces, pending })
    }
}

#[cfg(test)]
#[path = "../../unit_tests/domain/transfers.rs"]
mod tests;
