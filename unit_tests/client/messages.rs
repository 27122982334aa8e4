//! Unit tests of `src/client/messages.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;

fn read(text: &str) -> ServerMessage {
    serde_json::from_str(text).unwrap()
}

#[test]
fn given_the_documented_private_pushes_when_read_then_each_is_its_channel_with_the_servers_rows() {
    let fills = read(
        r#"{"type": "update", "channel": "fills", "version": 10, "fills": [
          {"market": "BTC-USDT", "trade_id": 3, "order_id": "1882751551395594240", "side": "buy",
           "liquidity": "maker", "price": "100.00", "qty": "0.5000", "quote_amount": "50", "fee": "0.05",
           "time": 1795531798802}]}"#,
    );
    let ServerMessage::Update(Push::Fills { version: 10, fills }) = fills else { panic!("{fills:?}") };
    assert_eq!((fills[0].trade_id, fills[0].qty.as_str()), (3, "0.5000"));
    let balances = read(
        r#"{"type": "snapshot", "channel": "balances", "version": 10, "balances": [
          {"asset": "BTC", "available": "0", "locked": "0", "settling": "0.5"}]}"#,
    );
    assert!(matches!(balances, ServerMessage::Snapshot(Push::Balances { version: 10, .. })), "{balances:?}");
}

#[test]
fn given_answers_and_market_data_when_read_then_answers_carry_their_id_and_the_rest_is_other() {
    let result = read(r#"{"type": "result", "id": "p1", "op": "place", "result": {"order_id": "1"}}"#);
    assert_eq!(result.answers(), Some(&Value::from("p1")));
    let error = read(r#"{"type": "error", "id": 4, "code": "nonce_used", "message": "nonce already used"}"#);
    assert_eq!(error.answers(), Some(&Value::from(4)));
    let l2 = read(r#"{"type": "update", "channel": "l2", "market": "BTC-USDT", "first_update_id": 42, "bids": []}"#);
    assert_eq!(l2, ServerMessage::Update(Push::Other));
    assert_eq!(read(r#"{"type": "something_new", "x": 1}"#), ServerMessage::Other);
}
