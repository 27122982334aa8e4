//! Bounded runs of every fuzz target (`hob::fuzzing`) on each `make test`: random bytes, and
//! real inputs (documented WebSocket frames, signed orders, stored events, snapshots) with
//! random bytes flipped, inserted and removed. The long, coverage-guided runs use the same
//! functions through cargo-fuzz (`fuzz/`, README.md "Fuzzing").
//!
//! Test code unwraps: a failure should fail the test.

use alloy::signers::local::PrivateKeySigner;
use hob::chain::eip712::{domain, Order, SignedOrder};
use hob::domain::{
    Amount, AssetId, Bps, Market, MarketCommand, MarketId, MarketSpec, NewOrder, OrderId, OrderType, PriceTicks,
    QtyLots, Side, StpMode, TimeInForce, TimestampMs, UserCommand, UserId, UserState,
};
use hob::events::encode_market_event;
use hob::events::market_snapshot::encode_market_snapshot;
use hob::events::payload::MARKET_EVENT_TYPES;
use hob::events::user_payload::{encode_user_event, encode_user_snapshot, USER_EVENT_TYPES};
use hob::fuzzing;
use hob::settlement::auth::encode_order_auth;
use proptest::prelude::*;

/// Cases per property: enough to catch shallow bugs on every run, cheap enough for CI.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Seeds: real inputs of each target.

const WS_FRAMES: &[&str] = &[
    r#"{"op": "subscribe", "id": 1, "channel": "l2", "market": "BTC-USDT"}"#,
    r#"{"op": "place", "id": "p1", "order": {"market": "BTC-USDT", "side": "buy", "type": "limit", "price": "100.00", "qty": "0.5", "nonce": 1}}"#,
    r#"{"op": "place", "id": "p2", "order": {"market": "ETH-USDT", "side": "sell", "type": "market", "worst_price": "90.00", "qty": "1", "tif": "ioc", "nonce": 2}}"#,
    r#"{"op": "place", "id": "p3", "order": {"market": "BTC-USDT", "side": "buy", "price": "100.00", "qty": "1", "tif": "gtd", "expires_at": 1700000000000, "post_only": true, "stp": "expire_both", "client_order_id": "a1", "nonce": 3}}"#,
    r#"{"op": "amend", "id": 2, "order_id": "1882751551395594240", "price": "100.50", "qty": "1.5"}"#,
    r#"{"op": "cancel", "id": 4, "client_order_id": "a1"}"#,
    r#"{"op": "batch", "id": 6, "ops": [{"op": "place", "market": "BTC-USDT", "side": "sell", "price": "101.00", "qty": "1", "nonce": 2}, {"op": "cancel", "order_id": "1"}]}"#,
    r#"{"op": "dead_man", "id": 8, "timeout_ms": 10000}"#,
];

fn signed_order_text(nonce: u64) -> String {
    let signer = PrivateKeySigner::random();
    let order = Order {
        trader: signer.address(),
        market: 1,
        side: 0,
        orderType: 0,
        timeInForce: 0,
        postOnly: false,
        price: 10_000,
        quantity: 5,
        maxFeeBps: 30,
        nonce,
        expiry: 0,
    };
    let signed = SignedOrder::sign(&signer, order, &domain(56, alloy::primitives::Address::repeat_byte(0x11))).unwrap();
    encode_order_auth(&signed).as_str().to_owned()
}

fn rest_order_with_signature() -> String {
    let auth: serde_json::Value = serde_json::from_str(&signed_order_text(9)).unwrap();
    serde_json::json!({
        "market": "BTC-USDT", "side": "buy", "type": "limit", "price": "1.00", "qty": "0.0005", "nonce": 9,
        "signed_order": auth,
    })
    .to_string()
}

fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("FUZZ-USD").unwrap(),
        base: AssetId::new("FUZZ").unwrap(),
        quote: AssetId::new("USD").unwrap(),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000),
        min_notional: Amount(100),
        maker_fee: Bps(10),
        taker_fee: Bps(25),
    }
}

fn limit(id: u64, user: u8, side: Side, price: u64, qty: u64) -> MarketCommand {
    MarketCommand::Place(NewOrder {
        id: OrderId(id),
        user: UserId([user; 20]),
        side,
        order_type: OrderType::Limit { price: PriceTicks(price) },
        qty: QtyLots(qty),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireTaker,
    })
}

/// A market with orders resting on both sides and one trade behind it, and its events.
fn busy_market() -> (Market, Vec<hob::domain::MarketEvent>) {
    let mut market = Market::new(spec());
    let mut events = Vec::new();
    for command in [
        limit(1, 1, Side::Sell, 101, 5),
        limit(2, 2, Side::Buy, 99, 4),
        limit(3, 3, Side::Buy, 101, 2),
        MarketCommand::Cancel { order: OrderId(2), user: UserId([2; 20]) },
        limit(4, 2, Side::Buy, 98, 7),
    ] {
        market.execute(command, TimestampMs(1_000), &mut events);
    }
    (market, events)
}

/// Selector byte, type index, "current version" byte, then the payload: the layout
/// `fuzzing::stored_event` reads.
fn stored(selector: u8, type_index: usize, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![selector, type_index as u8, 1];
    bytes.extend_from_slice(payload);
    bytes
}

fn stored_seeds() -> Vec<Vec<u8>> {
    let (market, events) = busy_market();
    let mut seeds = Vec::new();
    for event in &events {
        let encoded = encode_market_event(event);
        let index = MARKET_EVENT_TYPES.iter().position(|(t, _)| *t == encoded.event_type).unwrap();
        seeds.push(stored(0, index, encoded.payload.to_string().as_bytes()));
    }
    let user = UserId([1; 20]);
    let mut state = UserState::new(user);
    let asset = AssetId::new("USD").unwrap();
    for command in [
        UserCommand::Deposit { asset, amount: Amount(1_000_000) },
        UserCommand::Withdraw { asset, amount: Amount(250) },
    ] {
        for event in state.decide(command).unwrap() {
            state.apply(&event).unwrap();
            let encoded = encode_user_event(&event);
            let index = USER_EVENT_TYPES.iter().position(|(t, _)| *t == encoded.event_type).unwrap();
            seeds.push(stored(1, index, encoded.payload.to_string().as_bytes()));
        }
    }
    seeds.push([&[5u8][..], &encode_user_snapshot(&state)].concat());
    seeds.push([&[6u8][..], &encode_market_snapshot(&market)].concat());
    seeds
}

fn matching_seed() -> Vec<u8> {
    // Places (selector < 10) crossing in the narrow band, a cancel, an amend, an expiry.
    let mut bytes = Vec::new();
    for i in 0..40u8 {
        bytes.extend_from_slice(&[i % 16, i.wrapping_mul(37), i.wrapping_mul(11), 7, i, 3, i, 9, i, 1, 2]);
    }
    bytes
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "ws_client_message" => WS_FRAMES.iter().map(|f| f.as_bytes().to_vec()).collect(),
        "rest_place_order" => vec![
            br#"{"market": "BTC-USDT", "side": "sell", "price": "101.00", "qty": "1", "nonce": 2}"#.to_vec(),
            rest_order_with_signature().into_bytes(),
        ],
        "signed_order" => vec![signed_order_text(1).into_bytes(), signed_order_text(u64::MAX).into_bytes()],
        "stored_event" => stored_seeds(),
        "matching_sequence" => vec![matching_seed()],
        other => panic!("no seeds for target {other}"),
    }
}

fn target(name: &str) -> fn(&[u8]) {
    fuzzing::TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Debug)]
enum Edit {
    Flip { at: prop::sample::Index, bit: u8 },
    Insert { at: prop::sample::Index, byte: u8 },
    Remove { at: prop::sample::Index },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<prop::sample::Index>().prop_map(|at| Edit::Remove { at }),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match e {
            Edit::Flip { at, bit } if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Edit::Insert { at, byte } => {
                let i = at.index(bytes.len() + 1);
                bytes.insert(i, *byte);
            }
            Edit::Remove { at } if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes.remove(i);
            }
            _ => {}
        }
    }
    bytes
}

fn check_seeds_and_mutants(name: &str) {
    let run = target(name);
    let seeds = seeds(name);
    assert!(!seeds.is_empty());
    for seed in &seeds {
        run(seed);
    }
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (prop::sample::select(seeds), prop::collection::vec(edit(), 1..6));
    let result = runner.run(&strategy, |(seed, edits)| {
        run(&mutate(seed, &edits));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

#[test]
fn every_target_has_seeds_that_reach_past_the_first_check() {
    // A seed that a target refuses at once would leave the mutants testing only the refusal.
    for (name, _) in fuzzing::TARGETS {
        assert!(!seeds(name).is_empty(), "{name} has seeds");
    }
    let auth = signed_order_text(1);
    assert!(hob::settlement::auth::decode_order_auth(&hob::domain::OrderAuth::new(auth)).is_ok());
}

#[test]
fn websocket_frames_never_panic() {
    check_seeds_and_mutants("ws_client_message");
}

#[test]
fn rest_order_bodies_never_panic() {
    check_seeds_and_mutants("rest_place_order");
}

#[test]
fn signed_orders_decode_or_refuse() {
    check_seeds_and_mutants("signed_order");
}

#[test]
fn stored_events_decode_or_refuse() {
    check_seeds_and_mutants("stored_event");
}

#[test]
fn matching_sequences_keep_the_invariants() {
    check_seeds_and_mutants("matching_sequence");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_break_a_target(which in 0..fuzzing::TARGETS.len(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        (fuzzing::TARGETS[which].1)(&bytes);
    }
}

/// Writes every target's seeds to `fuzz/corpus/<target>/` for cargo-fuzz:
/// `cargo test --test fuzz_targets -- --ignored write_seed_corpus`.
#[test]
#[ignore = "a tool, not a test: writes the seed corpus for cargo-fuzz"]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, _) in fuzzing::TARGETS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
