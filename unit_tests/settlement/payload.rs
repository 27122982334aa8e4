//! Unit tests of `src/settlement/payload.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::settlement::trades::tests::queued;

use crate::settlement::withdrawals::QueuedWithdrawal;

fn every_variant() -> Vec<OperatorEvent> {
    let q = queued(4, 1, 2);
    let attempt = |purpose| Attempt {
        hash: B256::repeat_byte(7),
        gas_price: u128::MAX,
        gas_limit: 16_777_216,
        purpose,
        raw: Bytes::from(vec![1, 2, 3]),
        signed_at_ms: 99,
    };
    vec![
        OperatorEvent::TradeQueued { trade: q.clone(), queued_at_ms: 5 },
        OperatorEvent::TradeQueued { trade: QueuedTrade { maker_auth: None, ..q.clone() }, queued_at_ms: 5 },
        OperatorEvent::BatchOpened { batch: 3, trades: vec![q.key()] },
        OperatorEvent::Nonce(NonceEvent::Signed {
            nonce: 9,
            attempt: attempt(TxPurpose::Batch { batch: 3, chain_index: 8 }),
        }),
        OperatorEvent::Nonce(NonceEvent::Signed { nonce: 9, attempt: attempt(TxPurpose::Filler) }),
        OperatorEvent::Nonce(NonceEvent::Final {
            nonce: 9,
            resolution: Resolution::Mined { hash: B256::repeat_byte(7), block: 4, success: false, gas_used: 3 },
        }),
        OperatorEvent::Nonce(NonceEvent::Final { nonce: 9, resolution: Resolution::Superseded }),
        OperatorEvent::Nonce(NonceEvent::Synced { next: 12 }),
        OperatorEvent::ChainIndexSynced { next: 2 },
        OperatorEvent::AttemptFailed { batch: 3, reason: "timeout".into() },
        OperatorEvent::SettlementConfirmed {
            batch: 3,
            chain_index: 8,
            tx: B256::repeat_byte(7),
            block: 4,
            trades: vec![q.key()],
        },
        OperatorEvent::TradeVoided {
            trade: q.trade,
            key: q.key(),
            reason: VoidReason::NonceInvalidated,
            detail: "x".into(),
            batch: Some(3),
            order: Some(OrderId(14)),
        },
        OperatorEvent::TradeVoided {
            trade: q.trade,
            key: q.key(),
            reason: VoidReason::Unsettleable,
            detail: String::new(),
            batch: None,
            order: None,
        },
        OperatorEvent::SettlementFailed { batch: 3, reason: "gave up".into() },
        OperatorEvent::Nonce(NonceEvent::Signed {
            nonce: 10,
            attempt: attempt(TxPurpose::Withdrawal { user: UserId([3; 20]), nonce: u64::MAX }),
        }),
        OperatorEvent::WithdrawalQueued {
            withdrawal: QueuedWithdrawal {
                user: UserId([3; 20]),
                nonce: 1,
                asset: crate::domain::AssetId::new("USDT").unwrap(),
                amount: crate::domain::Amount(u128::MAX),
                auth: crate::domain::WithdrawalAuth::new("{}"),
            },
        },
        OperatorEvent::WithdrawalCompleted {
            key: WithdrawalKey { user: UserId([3; 20]), nonce: 1 },
            tx: B256::repeat_byte(8),
            block: 5,
        },
        OperatorEvent::WithdrawalFailed {
            key: WithdrawalKey { user: UserId([3; 20]), nonce: 2 },
            reason: "BadWithdrawalSignature".into(),
        },
    ]
}

#[test]
fn every_event_round_trips_through_json_text() {
    let mut types = std::collections::BTreeSet::new();
    for event in every_variant() {
        let e = encode_operator_event(&event);
        types.insert(e.event_type);
        let text = serde_json::to_string(&e.payload).unwrap();
        let back = decode_operator_event(e.event_type, e.schema_version, serde_json::from_str(&text).unwrap());
        assert_eq!(back.unwrap(), event);
    }
    assert_eq!(types.len(), OPERATOR_EVENT_TYPES.len(), "every type is exercised");
}

#[test]
fn unknown_types_versions_and_values_are_typed_errors() {
    let e = encode_operator_event(&every_variant()[3]);
    assert!(matches!(
        decode_operator_event("operator.Nope", 1, Value::Null),
        Err(OperatorPayloadError::UnknownType(_))
    ));
    assert!(matches!(
        decode_operator_event(e.event_type, 2, e.payload.clone()),
        Err(OperatorPayloadError::Version { version: 2, .. })
    ));
    let mut bad = e.payload;
    bad["gas_price"] = "-1".into();
    assert!(matches!(decode_operator_event(TX_SIGNED, 1, bad), Err(OperatorPayloadError::Invalid { .. })));
}
