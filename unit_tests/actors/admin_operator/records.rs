//! Unit tests of `src/actors/admin_operator/records.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use serde_json::json;

#[test]
fn commands_round_trip_through_their_queue_form() {
    let grid = OnChainMarket {
        base: Address::repeat_byte(1),
        quote: Address::repeat_byte(2),
        base_lot: 100_000_000_000_000,
        quote_tick: 1,
    };
    let command = AdminCommand::register("ETH-USDT".to_owned(), 2, grid);
    let body = serde_json::to_value(&command).unwrap();
    assert_eq!(body["command"], "register_market");
    assert_eq!(body["base_lot"], "100000000000000");
    assert_eq!(decode_command(&body).unwrap(), command);
    assert_eq!(decode_command(&json!({"command": "pause"})).unwrap(), AdminCommand::Pause);
}

#[test]
fn a_record_that_does_not_read_is_a_typed_error() {
    assert!(decode_command(&json!({"command": "selfdestruct"})).is_err());
    assert!(decode_command(&json!({"command": "register_market", "market": "BTC-USDT"})).is_err());
    assert!(requested_grid(Address::ZERO, Address::ZERO, "-1", "1").is_err());
}

#[test]
fn outcomes_name_their_event_and_whether_they_succeeded() {
    let conflict = AdminOutcome::MarketConflict {
        market: "BTC-USDT".to_owned(),
        chain_market_id: 1,
        requested: GridRecord {
            base: Address::ZERO,
            quote: Address::ZERO,
            base_lot: "1".into(),
            quote_tick: "1".into(),
        },
        on_chain: GridRecord {
            base: Address::ZERO,
            quote: Address::ZERO,
            base_lot: "2".into(),
            quote_tick: "1".into(),
        },
    };
    assert_eq!(conflict.event_type(), "admin.MarketConflict");
    assert!(!conflict.succeeded());
    assert!(AdminOutcome::Paused { tx: None }.succeeded());
}
