//! Unit tests of `src/chain/eip712.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::dyn_abi::TypedData;
use alloy::primitives::{address, U256};

const EXCHANGE: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");

fn order(trader: Address) -> Order {
    Order {
        trader,
        market: 7,
        side: 1,
        orderType: 0,
        timeInForce: 3,
        postOnly: true,
        price: 12_345,
        quantity: u64::MAX - 1,
        maxFeeBps: 25,
        nonce: 9_007_199_254_740_993, // 2^53 + 1: loses precision as a JSON number
        expiry: 1_900_000_000,
    }
}

fn key(byte: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).expect("a valid secp256k1 scalar")
}

#[test]
fn the_order_type_is_exactly_the_documented_one() {
    assert_eq!(
        Order::eip712_encode_type(),
        "Order(address trader,uint32 market,uint8 side,uint8 orderType,uint8 timeInForce,bool postOnly,\
         uint64 price,uint64 quantity,uint16 maxFeeBps,uint64 nonce,uint64 expiry)"
    );
    assert_eq!(
        Withdrawal::eip712_encode_type(),
        "Withdrawal(address user,address token,uint256 amount,uint64 nonce,uint64 expiry)"
    );
    assert_eq!(
        AgentAuthorization::eip712_encode_type(),
        "AgentAuthorization(address owner,address agent,uint64 expiry,uint64 nonce)"
    );
}

#[test]
fn a_signature_recovers_its_signer_and_only_under_its_domain() {
    let alice = key(1);
    let domain = domain(31_337, EXCHANGE);
    let signed = SignedOrder::sign(&alice, order(alice.address()), &domain).unwrap();
    assert_eq!(signed.signer(&domain).unwrap(), alice.address());

    let other_chain = super::domain(56, EXCHANGE);
    assert_ne!(signed.signer(&other_chain).unwrap(), alice.address());
    let mut changed = signed.clone();
    changed.order.quantity -= 1;
    assert_ne!(changed.signer(&domain).unwrap(), alice.address());
}

#[test]
fn a_wallet_hashing_the_served_json_signs_the_same_digest() {
    let domain = domain(31_337, EXCHANGE);
    let alice = key(2);
    let cases: [(Value, B256); 3] = [
        (typed_data_json(&order(alice.address()), &domain), signing_hash(&order(alice.address()), &domain)),
        {
            let w = Withdrawal {
                user: alice.address(),
                token: EXCHANGE,
                amount: U256::MAX - U256::from(3),
                nonce: 1,
                expiry: 0,
            };
            (typed_data_json(&w, &domain), signing_hash(&w, &domain))
        },
        {
            let a = AgentAuthorization { owner: alice.address(), agent: EXCHANGE, expiry: 5, nonce: 6 };
            (typed_data_json(&a, &domain), signing_hash(&a, &domain))
        },
    ];
    for (json, expected) in cases {
        // TypedData is alloy's implementation of the eth_signTypedData_v4 JSON format.
        let parsed: TypedData = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(parsed.eip712_signing_hash().unwrap(), expected, "{json}");
    }
}

#[test]
fn the_schema_lists_the_domain_and_every_message_type() {
    let schema = signing_schema(&domain(56, EXCHANGE));
    assert_eq!(schema["domain"]["name"], "hob");
    assert_eq!(schema["domain"]["version"], "1");
    assert_eq!(schema["domain"]["chainId"], 56);
    assert_eq!(schema["domain"]["verifyingContract"], EXCHANGE.to_checksum(None));
    for ty in ["EIP712Domain", "Order", "Withdrawal", "AgentAuthorization"] {
        assert!(schema["types"][ty].is_array(), "missing {ty} in {schema}");
    }
    assert_eq!(schema["types"]["Order"][0], json!({ "name": "trader", "type": "address" }));
    assert_eq!(schema["types"]["Order"].as_array().map(Vec::len), Some(11));
}
