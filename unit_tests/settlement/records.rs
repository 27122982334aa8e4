//! Unit tests of `src/settlement/records.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::settlement::trades::tests::queued;

#[test]
fn a_trade_record_round_trips() {
    let q = queued(3, 1, 2);
    assert_eq!(decode_trade_record(&encode_trade_record(&q)), Ok(q.clone()));
    let mut unsigned = encode_trade_record(&q);
    unsigned["maker_auth"] = Value::Null;
    assert_eq!(decode_trade_record(&unsigned).map(|t| t.maker_auth), Ok(None));
    assert!(matches!(decode_trade_record(&json!({"market": "BTC-USDT"})), Err(RecordError::Shape(_))));
}

#[test]
fn user_records_round_trip_and_other_bodies_are_not_theirs() {
    let q = queued(3, 1, 2);
    let records = [
        UserSettlement::Confirm { asset: AssetId::new("BTC").unwrap(), amount: Amount(u128::MAX) },
        UserSettlement::Void { market: q.market, order: OrderId(13), trade: q.trade },
    ];
    for r in records {
        assert_eq!(decode_user_record(&encode_user_record(&r)), Some(Ok(r)));
    }
    assert_eq!(decode_user_record(&json!({"market": "BTC-USDT", "event_type": "market.Traded"})), None);
    let bad = json!({"settlement": {"op": "confirm", "asset": "BTC", "amount": "+1"}});
    assert!(matches!(decode_user_record(&bad), Some(Err(RecordError::Shape(_)))));
}
