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
mod tests {
    // Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
    use super::*;
    use alloy::primitives::B256;

    fn attempt(tag: u8, gas_price: u128, purpose: TxPurpose) -> Attempt {
        Attempt {
            hash: B256::repeat_byte(tag),
            gas_price,
            gas_limit: 100_000,
            purpose,
            raw: Bytes::from(vec![tag]),
            signed_at_ms: tag as u64,
        }
    }

    fn batch(batch: u64) -> TxPurpose {
        TxPurpose::Batch { batch, chain_index: batch }
    }

    fn signed(nonce: u64, tag: u8, gas_price: u128, purpose: TxPurpose) -> NonceEvent {
        NonceEvent::Signed { nonce, attempt: attempt(tag, gas_price, purpose) }
    }

    fn mined(nonce: u64, tag: u8) -> NonceEvent {
        let resolution = Resolution::Mined { hash: B256::repeat_byte(tag), block: 9, success: true, gas_used: 1 };
        NonceEvent::Final { nonce, resolution }
    }

    /// Given these stored events, the manager they fold into.
    fn given(events: &[NonceEvent]) -> NonceManager {
        let mut m = NonceManager::default();
        for e in events {
            m.apply(e).unwrap_or_else(|err| panic!("given {e:?} refused: {err}"));
        }
        m
    }

    /// Given events, when signing, then this event (which also folds in) or this refusal.
    fn check_sign(given_events: &[NonceEvent], nonce: u64, a: Attempt, then: Result<NonceEvent, NonceError>) {
        let m = given(given_events);
        let decided = m.sign(nonce, a);
        assert_eq!(decided, then);
        if let Ok(event) = decided {
            let mut after = m.clone();
            after.apply(&event).unwrap();
        }
    }

    #[test]
    fn a_new_transaction_takes_the_next_nonce_and_only_that_one() {
        check_sign(&[], 0, attempt(1, 10, batch(1)), Ok(signed(0, 1, 10, batch(1))));
        check_sign(
            &[signed(0, 1, 10, batch(1))],
            2,
            attempt(2, 10, batch(2)),
            Err(NonceError::NotNext { nonce: 2, next: 1 }),
        );
        let m = given(&[signed(0, 1, 10, batch(1)), signed(1, 2, 10, batch(2))]);
        assert_eq!(m.next(), 2);
        assert_eq!(m.slots().map(|s| s.nonce).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn a_replacement_pays_at_least_ten_percent_more() {
        let given_events = [signed(0, 1, 100, batch(1))];
        check_sign(
            &given_events,
            0,
            attempt(2, 109, batch(1)),
            Err(NonceError::Underpriced { nonce: 0, price: 109, minimum: 110 }),
        );
        check_sign(&given_events, 0, attempt(2, 110, batch(1)), Ok(signed(0, 2, 110, batch(1))));
        // The floor follows the highest price paid so far, and the nonce does not move.
        let m = given(&[signed(0, 1, 100, batch(1)), signed(0, 2, 110, TxPurpose::Filler)]);
        assert_eq!((m.next(), m.replacement_floor(0)), (1, Some(121)));
        assert_eq!(m.slot(0).map(|s| s.latest().purpose), Some(TxPurpose::Filler));
        assert!(m.slot(0).is_some_and(|s| s.carries(1)), "the replaced batch transaction may still be mined");
    }

    #[test]
    fn the_bump_rounds_up_and_always_adds_something() {
        assert_eq!(bumped(100), 110);
        assert_eq!(bumped(101), 112);
        assert_eq!(bumped(1), 2);
        assert_eq!(bumped(0), 1);
        assert_eq!(bumped(u128::MAX), u128::MAX);
    }

    #[test]
    fn a_final_nonce_leaves_the_slots_and_can_take_nothing_more() {
        let m = given(&[signed(0, 1, 10, batch(1)), signed(1, 2, 10, batch(2)), mined(0, 1)]);
        assert_eq!(m.slots().map(|s| s.nonce).collect::<Vec<_>>(), vec![1]);
        assert_eq!(m.sign(0, attempt(3, 100, batch(3))), Err(NonceError::GapNotFiller(0)));
        let mut again = m.clone();
        assert_eq!(again.apply(&mined(0, 1)), Err(NonceError::UnknownNonce(0)));
    }

    #[test]
    fn reconciling_moves_past_nonces_the_chain_saw_first() {
        let m = given(&[]);
        let r = m.reconcile(NonceCounts { latest: 4, pending: 6 });
        assert_eq!(r, Reconciliation { events: vec![NonceEvent::Synced { next: 6 }], resend: vec![], gaps: vec![] });
        let mut m = m;
        m.apply(&r.events[0]).unwrap();
        assert_eq!(m.next(), 6);
        assert_eq!(m.apply(&NonceEvent::Synced { next: 5 }), Err(NonceError::Backwards { next: 6, to: 5 }));
    }

    #[test]
    fn reconciling_resends_what_the_chain_has_not_mined() {
        // Nonce 0 mined (its receipt will finalise it), nonce 1 dropped from the mempool.
        let m = given(&[signed(0, 1, 10, batch(1)), signed(1, 2, 10, TxPurpose::Filler)]);
        let r = m.reconcile(NonceCounts { latest: 1, pending: 1 });
        assert_eq!(r, Reconciliation { events: vec![], resend: vec![1], gaps: vec![] });
        // Both in the mempool: both are sent again, which the node shrugs off.
        let r = m.reconcile(NonceCounts { latest: 0, pending: 2 });
        assert_eq!(r.resend, vec![0, 1]);
    }

    #[test]
    fn a_nonce_below_next_that_nothing_holds_is_a_gap_filled_by_a_self_transfer() {
        // Nonce 0 was final, then a reorg deeper than the confirmation depth took it away.
        let m = given(&[signed(0, 1, 10, batch(1)), signed(1, 2, 10, batch(2)), mined(0, 1)]);
        let r = m.reconcile(NonceCounts { latest: 0, pending: 1 });
        assert_eq!(r, Reconciliation { events: vec![], resend: vec![1], gaps: vec![0] });
        let given_events = [signed(0, 1, 10, batch(1)), signed(1, 2, 10, batch(2)), mined(0, 1)];
        check_sign(&given_events, 0, attempt(3, 10, TxPurpose::Filler), Ok(signed(0, 3, 10, TxPurpose::Filler)));
        let filled = given(&[signed(0, 1, 10, batch(1)), mined(0, 1), signed(0, 3, 10, TxPurpose::Filler)]);
        assert_eq!(filled.next(), 1, "filling a gap does not move next");
    }
}
