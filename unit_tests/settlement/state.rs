//! Unit tests of `src/settlement/state.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::settlement::nonce::{Attempt, Resolution};
use crate::settlement::trades::tests::queued;
use alloy::primitives::{Bytes, B256};

fn queued_at(id: u64, at: u64) -> OperatorEvent {
    OperatorEvent::TradeQueued { trade: queued(id, 1, 2), queued_at_ms: at }
}

fn key(id: u64) -> TradeKey {
    queued(id, 1, 2).key()
}

fn signed(nonce: u64, tag: u8, purpose: TxPurpose) -> OperatorEvent {
    let attempt = Attempt {
        hash: B256::repeat_byte(tag),
        gas_price: 10 * tag as u128,
        gas_limit: 1,
        purpose,
        raw: Bytes::new(),
        signed_at_ms: 0,
    };
    OperatorEvent::Nonce(NonceEvent::Signed { nonce, attempt })
}

fn given(events: &[OperatorEvent]) -> OperatorState {
    let mut s = OperatorState::default();
    for e in events {
        s.apply(e).unwrap_or_else(|err| panic!("given {e:?} refused: {err}"));
    }
    s
}

/// Given events, when a decider runs, then exactly these events, which also apply.
fn check(given_events: &[OperatorEvent], when: impl Fn(&OperatorState) -> Vec<OperatorEvent>, then: &[OperatorEvent]) {
    let s = given(given_events);
    let decided = when(&s);
    assert_eq!(decided, then);
    let mut after = s;
    for e in &decided {
        after.apply(e).unwrap_or_else(|err| panic!("decided {e:?} does not apply: {err}"));
    }
}

fn policy(window_ms: u64) -> BatchPolicy {
    BatchPolicy { window_ms, max_trades: 2, ..BatchPolicy::default() }
}

#[test]
fn a_trade_is_queued_once() {
    check(&[], |s| s.queue(queued(1, 1, 2), 5).into_iter().collect(), &[queued_at(1, 5)]);
    check(&[queued_at(1, 5)], |s| s.queue(queued(1, 1, 2), 6).into_iter().collect(), &[]);
    let mut s = given(&[queued_at(1, 5)]);
    assert_eq!(s.apply(&queued_at(1, 6)), Err(StateError::DuplicateTrade(key(1))));
}

#[test]
fn a_batch_opens_when_due_with_the_oldest_trades_and_only_behind_batches_already_out() {
    let three = [queued_at(1, 0), queued_at(2, 0), queued_at(3, 0)];
    check(&three[..1], |s| s.open_batch(&policy(100), 4, 99).into_iter().collect(), &[]);
    check(
        &three[..1],
        |s| s.open_batch(&policy(100), 4, 100).into_iter().collect(),
        &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }],
    );
    // Full by count: goes at once.
    check(
        &three,
        |s| s.open_batch(&policy(100), 4, 0).into_iter().collect(),
        &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] }],
    );
    // Batch 1 is open but not sent yet: nothing may follow it, whatever the limit.
    let open = [&three[..], &[OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] }]].concat();
    check(&open, |s| s.open_batch(&policy(0), 4, 1_000).into_iter().collect(), &[]);
    let s = given(&open);
    assert_eq!(s.pending().map(|p| p.trade.key()).collect::<Vec<_>>(), vec![key(3)]);
    assert_eq!(s.batch_trades(1).len(), 2);
    // Once it is out, the next may follow, unless one in flight is the limit.
    let out = [&open[..], &[signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 0 })]].concat();
    check(&out, |s| s.open_batch(&policy(0), 1, 1_000).into_iter().collect(), &[]);
    check(
        &out,
        |s| s.open_batch(&policy(0), 2, 1_000).into_iter().collect(),
        &[OperatorEvent::BatchOpened { batch: 2, trades: vec![key(3)] }],
    );
}

#[test]
fn a_confirmed_batch_releases_its_trades_and_moves_the_chain_index() {
    let given_events = [
        queued_at(1, 0),
        queued_at(2, 0),
        OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] },
        signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 4 }),
    ];
    let mut s = given(&given_events);
    assert!(s.live(1) && s.possible(1));
    let confirmed = OperatorEvent::SettlementConfirmed {
        batch: 1,
        chain_index: 4,
        tx: B256::repeat_byte(1),
        block: 9,
        trades: vec![key(1), key(2)],
    };
    let final_ = OperatorEvent::Nonce(NonceEvent::Final {
        nonce: 0,
        resolution: Resolution::Mined { hash: B256::repeat_byte(1), block: 9, success: true, gas_used: 5 },
    });
    assert_eq!(s.apply(&final_), Ok(Applied::Nothing));
    assert_eq!(s.apply(&confirmed), Ok(Applied::Settled(vec![queued(1, 1, 2), queued(2, 1, 2)])));
    assert_eq!((s.next_chain_index(), s.batches().count(), s.unsettled()), (5, 0, 0));
    assert_eq!(s.stats(), OperatorStats { settled_batches: 1, settled_trades: 2, ..OperatorStats::default() });
}

#[test]
fn voiding_takes_a_trade_out_of_the_queue_or_out_of_the_open_batch() {
    let given_events =
        [queued_at(1, 0), queued_at(2, 0), OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }];
    let voided = |id: u64, batch: Option<u64>| OperatorEvent::TradeVoided {
        trade: queued(id, 1, 2).trade,
        key: key(id),
        reason: VoidReason::BadSignature,
        detail: "order 0".into(),
        batch,
        order: Some(OrderId(10 + id)),
    };
    check(
        &given_events,
        |s| s.void(&key(1), VoidReason::BadSignature, "order 0", Some(OrderId(11))).into_iter().collect(),
        &[voided(1, Some(1))],
    );
    check(
        &given_events,
        |s| s.void(&key(2), VoidReason::BadSignature, "order 0", Some(OrderId(12))).into_iter().collect(),
        &[voided(2, None)],
    );
    check(&given_events, |s| s.void(&key(9), VoidReason::GaveUp, "", None).into_iter().collect(), &[]);
}

#[test]
fn giving_up_voids_every_trade_of_the_batch_then_fails_it() {
    let given_events = [
        queued_at(1, 0),
        queued_at(2, 0),
        OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1), key(2)] },
        OperatorEvent::AttemptFailed { batch: 1, reason: "timeout".into() },
    ];
    let void = |id: u64| OperatorEvent::TradeVoided {
        trade: queued(id, 1, 2).trade,
        key: key(id),
        reason: VoidReason::GaveUp,
        detail: "timeout".into(),
        batch: Some(1),
        order: None,
    };
    check(
        &given_events,
        |s| s.give_up(1, "timeout"),
        &[void(1), void(2), OperatorEvent::SettlementFailed { batch: 1, reason: "timeout".into() }],
    );
    let mut s = given(&given_events);
    assert_eq!(s.batch(1).map(|b| b.failures), Some(1));
    let fail = OperatorEvent::SettlementFailed { batch: 1, reason: "x".into() };
    assert_eq!(s.apply(&fail), Err(StateError::NotEmpty(1)), "a batch fails only once it is empty");
}

#[test]
fn a_transaction_is_signed_only_for_an_open_batch() {
    let given_events = [queued_at(1, 0), OperatorEvent::BatchOpened { batch: 1, trades: vec![key(1)] }];
    let mut s = given(&given_events);
    let wrong = signed(0, 1, TxPurpose::Batch { batch: 2, chain_index: 0 });
    assert_eq!(s.apply(&wrong), Err(StateError::NotOpen(2)));
    s.apply(&signed(0, 1, TxPurpose::Batch { batch: 1, chain_index: 0 })).unwrap();
    s.apply(&signed(0, 2, TxPurpose::Filler)).unwrap();
    assert!(!s.live(1) && s.possible(1), "replaced by a filler, yet the batch transaction may still be mined");
}

#[test]
fn every_void_reason_has_a_stable_code_and_only_user_doings_do_not_halt() {
    for r in VoidReason::ALL {
        assert_eq!(VoidReason::from_code(r.code()), Some(*r));
    }
    let quiet: Vec<_> = VoidReason::ALL.iter().filter(|r| !r.halts()).collect();
    assert_eq!(quiet, vec![&VoidReason::OrderExpired, &VoidReason::NonceInvalidated]);
}

// ---------------------------------------------------------------------------------
// The pipeline: several batches in flight

fn batch_tx(batch: u64, chain_index: u64) -> TxPurpose {
    TxPurpose::Batch { batch, chain_index }
}

fn final_(nonce: u64, tag: u8, success: bool) -> OperatorEvent {
    let resolution = Resolution::Mined { hash: B256::repeat_byte(tag), block: 9, success, gas_used: 5 };
    OperatorEvent::Nonce(NonceEvent::Final { nonce, resolution })
}

fn opened(batch: u64, ids: &[u64]) -> OperatorEvent {
    OperatorEvent::BatchOpened { batch, trades: ids.iter().map(|i| key(*i)).collect() }
}

fn confirmed(batch: u64, chain_index: u64, ids: &[u64]) -> OperatorEvent {
    OperatorEvent::SettlementConfirmed {
        batch,
        chain_index,
        tx: B256::repeat_byte(0xCC),
        block: 9,
        trades: ids.iter().map(|i| key(*i)).collect(),
    }
}

/// Three trades, three batches of one, out at nonces 0, 1, 2 as the contract's 4, 5, 6.
fn three_in_flight() -> Vec<OperatorEvent> {
    vec![
        OperatorEvent::ChainIndexSynced { next: 4 },
        queued_at(1, 0),
        queued_at(2, 0),
        queued_at(3, 0),
        opened(1, &[1]),
        signed(0, 1, batch_tx(1, 4)),
        opened(2, &[2]),
        signed(1, 2, batch_tx(2, 5)),
        opened(3, &[3]),
        signed(2, 3, batch_tx(3, 6)),
    ]
}

fn next_send(events: &[OperatorEvent]) -> NextSend {
    given(events).next_send()
}

#[test]
fn batches_out_at_rising_nonces_and_consecutive_indices_let_the_next_follow_them() {
    // given three batches in flight in order
    let events = three_in_flight();
    // then a fourth may follow as the contract's batch 7, within a limit of four
    assert_eq!(next_send(&events), NextSend::Open { chain_index: 7 });
    assert!(given(&events).open_batch(&policy(0), 3, 0).is_none(), "three in flight is the limit of three");
    // and when the first confirms, the window moves on without a resend
    let moved = [&events[..], &[final_(0, 1, true), confirmed(1, 4, &[1])]].concat();
    assert_eq!(next_send(&moved), NextSend::Open { chain_index: 7 });
    assert_eq!(given(&moved).next_chain_index(), 5);
}

#[test]
fn a_batch_reverting_in_the_middle_goes_out_again_and_the_later_one_follows_it_renumbered() {
    // given batch 1 confirmed and batch 2's transaction reverted, final; batch 3 still out
    let events = [&three_in_flight()[..], &[final_(0, 1, true), confirmed(1, 4, &[1]), final_(1, 2, false)]].concat();
    // then batch 2 goes out again at the next nonce as index 5
    assert_eq!(next_send(&events), NextSend::Resend { batch: 2, chain_index: 5 });
    // when it is signed at nonce 3, batch 3 (nonce 2, index 6) is behind it: it will revert
    let resent = [&events[..], &[signed(3, 4, batch_tx(2, 5))]].concat();
    assert_eq!(next_send(&resent), NextSend::Wait);
    // and once batch 3's revert is final it goes out after batch 2, as index 6 at nonce 4
    let reverted = [&resent[..], &[final_(2, 3, false)]].concat();
    assert_eq!(next_send(&reverted), NextSend::Resend { batch: 3, chain_index: 6 });
    let s = given(&reverted);
    assert_eq!(s.nonces().next(), 4, "no nonce reused or skipped");
    assert_eq!(s.batch(3).map(|b| b.failures), Some(0), "a batch reverting behind another is not at fault");
}

#[test]
fn a_stuck_first_nonce_is_resent_as_the_same_index_and_the_batches_behind_it_follow_once_reverted() {
    // given batch 1's nonce consumed by a self-transfer, batches 2 and 3 out behind it
    let events = [&three_in_flight()[..], &[signed(0, 9, TxPurpose::Filler)]].concat();
    // then batch 1 goes out again at a fresh nonce as the same index 4, so its old
    // transaction and the new one cannot both settle
    assert_eq!(next_send(&events), NextSend::Resend { batch: 1, chain_index: 4 });
    // but under another index it waits for the old transaction's fate
    let moved = [&events[..], &[OperatorEvent::ChainIndexSynced { next: 9 }]].concat();
    assert_eq!(next_send(&moved), NextSend::Wait);
    // when it is sent at nonce 3, batches 2 and 3 are behind it: they will revert
    let resent = [&events[..], &[signed(3, 4, batch_tx(1, 4))]].concat();
    assert_eq!(next_send(&resent), NextSend::Wait);
    // and once the self-transfer is mined and their reverts are final, they follow it
    let reverted = [&resent[..], &[final_(0, 9, true), final_(1, 2, false), final_(2, 3, false)]].concat();
    assert_eq!(next_send(&reverted), NextSend::Resend { batch: 2, chain_index: 5 });
    let two = [&reverted[..], &[signed(4, 5, batch_tx(2, 5))]].concat();
    assert_eq!(next_send(&two), NextSend::Resend { batch: 3, chain_index: 6 });
    let three = [&two[..], &[signed(5, 6, batch_tx(3, 6))]].concat();
    assert_eq!(next_send(&three), NextSend::Open { chain_index: 7 });
    // no trade was voided on the way
    assert_eq!(given(&three).stats().voided_trades, 0);
}

#[test]
fn a_batch_whose_trades_were_all_voided_is_skipped_and_the_next_takes_its_index() {
    // given batch 1 reverted and its only trade voided; batch 2 reverted behind it
    let void = OperatorEvent::TradeVoided {
        trade: queued(1, 1, 2).trade,
        key: key(1),
        reason: VoidReason::BadSignature,
        detail: "order 0".into(),
        batch: Some(1),
        order: None,
    };
    let events = [&three_in_flight()[..], &[final_(0, 1, false), void, final_(1, 2, false)]].concat();
    // then batch 2 goes out as the contract's 4, the index batch 1 never took
    assert_eq!(next_send(&events), NextSend::Resend { batch: 2, chain_index: 4 });
}

#[test]
fn giving_up_one_batch_leaves_the_later_ones_to_go_out_again() {
    // given batch 2 failed too often and none of its transactions can be mined
    let events = [
        &three_in_flight()[..],
        &[
            final_(0, 1, true),
            confirmed(1, 4, &[1]),
            final_(1, 2, false),
            OperatorEvent::AttemptFailed { batch: 2, reason: "x".into() },
            final_(2, 3, false),
        ],
    ]
    .concat();
    // when it is given up, only its trade is voided
    let s = given(&events);
    let given_up = s.give_up(2, "x");
    assert_eq!(given_up.len(), 2);
    assert!(matches!(&given_up[0], OperatorEvent::TradeVoided { key: k, batch: Some(2), .. } if *k == key(2)));
    let after = [&events[..], &given_up[..]].concat();
    // then batch 3 goes out as the index batch 2 did not take
    assert_eq!(next_send(&after), NextSend::Resend { batch: 3, chain_index: 5 });
    assert_eq!(given(&after).batch(3).map(|b| b.trades.len()), Some(1));
}
