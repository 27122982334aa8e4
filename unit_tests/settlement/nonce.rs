//! Unit tests of `src/settlement/nonce.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

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
