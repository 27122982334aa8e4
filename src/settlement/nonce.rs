//! The operator wallet's nonces: a pure state machine, persisted as events in the operator's
//! stream (`operator:{address}`), so a restart knows every nonce it ever handed out and never
//! reuses or skips one.
//!
//! A nonce is handed out by signing a transaction for it (`Signed`); the signed bytes are
//! stored before they are sent, so after a crash they are sent again as they were. Until its
//! nonce is final a slot can take replacements that pay at least 10% more (a fee bump, or the
//! zero-value self-transfer that consumes a stuck nonce). A slot ends when one of its
//! transactions, or one the wallet does not know, is mined deep enough (`Final`).
//!
//! On start the manager is reconciled with the chain's counts: nonces the chain has seen
//! beyond ours move `next` forward (`Synced`); unmined slots are sent again; a nonce below
//! `next` that the chain has not mined and no slot holds is a gap, filled with a self-transfer,
//! or every later nonce would wait for it forever.

use std::collections::BTreeMap;

use alloy::primitives::Bytes;

use super::chain::{NonceCounts, TxHash};

/// A replacement must pay at least this many tenths more than the price it replaces: nodes
/// (geth, BSC, anvil) refuse a replacement below a 10% bump.
pub const BUMP_TENTHS: u128 = 1;

/// Why a transaction was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPurpose {
    /// Settles operator batch `batch` as the contract's batch `chain_index`.
    Batch { batch: u64, chain_index: u64 },
    /// A zero-value self-transfer: consumes its nonce and nothing else.
    Filler,
    /// Executes `user`'s signed withdrawal `nonce` (`settlement::withdrawals`).
    Withdrawal { user: crate::domain::UserId, nonce: u64 },
}

/// One signed transaction for a nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub hash: TxHash,
    pub gas_price: u128,
    pub gas_limit: u64,
    pub purpose: TxPurpose,
    /// The signed bytes, sent again as they are after a drop, a reorg or a restart.
    pub raw: Bytes,
    pub signed_at_ms: u64,
}

/// A nonce handed out and not yet final, with every transaction signed for it, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub nonce: u64,
    pub attempts: Vec<Attempt>,
}

impl Slot {
    /// The newest transaction: the one that pays the most.
    pub fn latest(&self) -> &Attempt {
        // A slot is created with its first attempt and attempts are never removed.
        &self.attempts[self.attempts.len() - 1]
    }

    /// Whether any transaction of this slot would settle `batch` if mined.
    pub fn carries(&self, batch: u64) -> bool {
        self.attempts.iter().any(|a| matches!(a.purpose, TxPurpose::Batch { batch: b, .. } if b == batch))
    }

    /// Whether any transaction of this slot would execute `user`'s withdrawal `nonce` if mined.
    pub fn carries_withdrawal(&self, user: crate::domain::UserId, nonce: u64) -> bool {
        let purpose = TxPurpose::Withdrawal { user, nonce };
        self.attempts.iter().any(|a| a.purpose == purpose)
    }

    pub fn attempt(&self, hash: TxHash) -> Option<&Attempt> {
        self.attempts.iter().find(|a| a.hash == hash)
    }
}

/// How a nonce ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// One of the slot's transactions was mined, deep enough to count.
    Mined { hash: TxHash, block: u64, success: bool, gas_used: u64 },
    /// The chain used the nonce for a transaction this wallet did not sign here (another
    /// process with the same key): none of the slot's transactions can ever be mined.
    Superseded,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceEvent {
    Signed {
        nonce: u64,
        attempt: Attempt,
    },
    Final {
        nonce: u64,
        resolution: Resolution,
    },
    /// The chain has seen nonces up to `next` (exclusive) that this wallet did not hand out.
    Synced {
        next: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    #[error("nonce {nonce} is not the next one ({next}) and holds no transaction")]
    NotNext { nonce: u64, next: u64 },
    #[error("nonce {nonce}: a replacement must pay at least {minimum} wei per gas, not {price}")]
    Underpriced { nonce: u64, price: u128, minimum: u128 },
    #[error("nonce {0} holds no transaction")]
    UnknownNonce(u64),
    #[error("nonces only move forward: next is {next}, not {to}")]
    Backwards { next: u64, to: u64 },
    #[error("a gap below the next nonce is filled with a self-transfer only (nonce {0})")]
    GapNotFiller(u64),
}

/// What reconciling with the chain asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// To store: `next` moves past nonces the chain saw and this wallet did not hand out.
    pub events: Vec<NonceEvent>,
    /// Slots the chain has not mined: send their newest transaction again (a node that has
    /// it says so, which is fine).
    pub resend: Vec<u64>,
    /// Nonces below `next` that nothing holds: fill each with a self-transfer.
    pub gaps: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonceManager {
    next: u64,
    slots: BTreeMap<u64, Slot>,
}

/// The least price a replacement of `price` may pay: 10% more, rounded up, and at least one
/// wei more.
pub fn bumped(price: u128) -> u128 {
    price.saturating_add((price * BUMP_TENTHS).div_ceil(10).max(1))
}

impl NonceManager {
    /// The nonce the next new transaction gets.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Slots not yet final, by nonce.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.slots.values()
    }

    pub fn slot(&self, nonce: u64) -> Option<&Slot> {
        self.slots.get(&nonce)
    }

    /// The least price a replacement at `nonce` may pay, if the nonce holds transactions.
    pub fn replacement_floor(&self, nonce: u64) -> Option<u128> {
        let slot = self.slots.get(&nonce)?;
        slot.attempts.iter().map(|a| a.gas_price).max().map(bumped)
    }

    /// The event that signing `attempt` for `nonce` stores, or why it may not: a new nonce
    /// must be `next`; a replacement must pay the bump; a gap takes only a self-transfer.
    pub fn sign(&self, nonce: u64, attempt: Attempt) -> Result<NonceEvent, NonceError> {
        self.check_sign(nonce, &attempt)?;
        Ok(NonceEvent::Signed { nonce, attempt })
    }

    fn check_sign(&self, nonce: u64, attempt: &Attempt) -> Result<(), NonceError> {
        match self.replacement_floor(nonce) {
            Some(minimum) if attempt.gas_price < minimum => {
                Err(NonceError::Underpriced { nonce, price: attempt.gas_price, minimum })
            }
            Some(_) => Ok(()),
            None if nonce == self.next => Ok(()),
            None if nonce < self.next && attempt.purpose == TxPurpose::Filler => Ok(()),
            None if nonce < self.next => Err(NonceError::GapNotFiller(nonce)),
            None => Err(NonceError::NotNext { nonce, next: self.next }),
        }
    }

    /// Compares with the chain's counts (see the module doc).
    pub fn reconcile(&self, counts: NonceCounts) -> Reconciliation {
        let seen = counts.latest.max(counts.pending);
        let mut out = Reconciliation::default();
        if seen > self.next {
            out.events.push(NonceEvent::Synced { next: seen });
        }
        out.resend = self.slots.keys().copied().filter(|n| *n >= counts.latest).collect();
        out.gaps = (counts.latest..self.next).filter(|n| !self.slots.contains_key(n)).collect();
        out
    }

    /// Folds one stored event in; an event that does not fit is a corrupt stream.
    pub fn apply(&mut self, event: &NonceEvent) -> Result<(), NonceError> {
        match event {
            NonceEvent::Signed { nonce, attempt } => {
                self.check_sign(*nonce, attempt)?;
                match self.slots.get_mut(nonce) {
                    Some(slot) => slot.attempts.push(attempt.clone()),
                    None => {
                        self.slots.insert(*nonce, Slot { nonce: *nonce, attempts: vec![attempt.clone()] });
                        if *nonce == self.next {
                            self.next += 1;
                        }
                    }
                }
            }
            NonceEvent::Final { nonce, .. } => {
                self.slots.remove(nonce).ok_or(NonceError::UnknownNonce(*nonce))?;
            }
            NonceEvent::Synced { next } => {
                if *next < self.next {
                    return Err(NonceError::Backwards { next: self.next, to: *next });
                }
                self.next = *next;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/nonce.rs"]
mod tests;
