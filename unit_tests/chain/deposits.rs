//! Unit tests of `src/chain/deposits.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::primitives::U256;

fn usdt() -> AssetId {
    AssetId::new("USDT").unwrap()
}

fn token() -> Address {
    Address::repeat_byte(7)
}

fn log(block: u64, n: u8, amount: u64) -> DepositLog {
    DepositLog {
        block,
        deposit: DepositId { tx: [n; 32], log_index: 0 },
        user: UserId([n; 20]),
        token: token(),
        amount: U256::from(amount),
    }
}

fn tokens() -> BTreeMap<Address, AssetId> {
    [(token(), usdt())].into_iter().collect()
}

#[test]
fn only_blocks_deep_enough_are_safe() {
    assert_eq!(WatcherState::safe_block(10, 1), Some(10));
    assert_eq!(WatcherState::safe_block(10, 0), Some(10));
    assert_eq!(WatcherState::safe_block(10, 3), Some(8));
    assert_eq!(WatcherState::safe_block(1, 3), None);
}

#[test]
fn given_a_scanned_range_when_it_is_read_again_then_nothing_is_credited_twice() {
    let mut state = WatcherState::new(5);
    let logs = [log(5, 1, 10), log(6, 2, 20), log(9, 3, 30)];
    let events = state.decide(&logs, 6, &tokens());
    assert_eq!(events.len(), 3, "two credits and the cursor: {events:?}");
    for e in &events {
        state.apply(e).unwrap();
    }
    assert_eq!((state.next_block(), state.credited()), (7, 2));
    let again = state.decide(&logs, 9, &tokens());
    assert_eq!(again.len(), 2, "only the block-9 deposit and the cursor: {again:?}");
    assert!(state.apply(&events[0]).is_err(), "a credit applied twice is a corrupt stream");
}

#[test]
fn unknown_tokens_and_oversized_amounts_are_ignored_with_a_reason() {
    let state = WatcherState::new(0);
    let mut odd = log(1, 1, 1);
    odd.token = Address::ZERO;
    let mut huge = log(1, 2, 1);
    huge.amount = U256::MAX;
    let events = state.decide(&[odd, huge], 1, &tokens());
    let reasons: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatcherEvent::DepositIgnored { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["unknown_token", "amount_too_large"]);
}

#[test]
fn events_and_records_round_trip() {
    let state = WatcherState::new(0);
    let mut odd = log(2, 9, 1);
    odd.token = Address::ZERO;
    for e in state.decide(&[log(1, 1, 10), odd], 3, &tokens()) {
        let (t, _, payload) = encode_watcher_event(&e);
        assert_eq!(decode_watcher_event(t, payload), Ok(e));
    }
    let records = [
        TransferRecord::Deposit { deposit: log(1, 1, 1).deposit, asset: usdt(), amount: Amount(u128::MAX) },
        TransferRecord::WithdrawalCompleted { nonce: u64::MAX },
        TransferRecord::WithdrawalFailed { nonce: 3, reason: "BadWithdrawalSignature".into() },
    ];
    for r in records {
        assert_eq!(decode_transfer_record(&encode_transfer_record(&r)), Some(Ok(r)));
    }
    assert_eq!(decode_transfer_record(&json!({"settlement": {}})), None);
    let bad = json!({"transfer": {"op": "deposit", "deposit": "x", "asset": "USDT", "amount": "1"}});
    assert!(matches!(decode_transfer_record(&bad), Some(Err(_))));
}
