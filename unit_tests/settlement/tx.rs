//! Unit tests of `src/settlement/tx.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::consensus::Transaction;
use alloy::eips::eip2718::Decodable2718;

fn key() -> OperatorKey {
    OperatorKey::from_hex("0x0101010101010101010101010101010101010101010101010101010101010101").unwrap()
}

#[test]
fn a_signed_transaction_decodes_to_what_was_planned_and_recovers_the_operator() {
    let plan = TxPlan {
        nonce: 7,
        gas_price: 3_000_000_000,
        gas_limit: 90_000,
        to: Address::repeat_byte(5),
        data: settle_batch_call(4, Bytes::from_static(&[1, 2, 3])),
    };
    let signed = sign(&key(), 56, &plan).unwrap();
    let envelope = TxEnvelope::decode_2718(&mut signed.raw.as_ref()).unwrap();
    assert_eq!(*envelope.tx_hash(), signed.hash);
    assert_eq!((envelope.nonce(), envelope.gas_price(), envelope.gas_limit()), (7, Some(3_000_000_000), 90_000));
    assert_eq!(envelope.chain_id(), Some(56));
    assert_eq!(envelope.to(), Some(plan.to));
    assert_eq!(envelope.input(), &plan.data);
    let signer = envelope.signature().recover_address_from_prehash(&envelope.signature_hash()).unwrap();
    assert_eq!(signer, key().address());
    assert_eq!(sign(&key(), 56, &plan).unwrap(), signed, "signing is deterministic");
}

#[test]
fn a_self_transfer_moves_nothing_and_costs_a_plain_transfer() {
    let plan = self_transfer(key().address(), 3, 10);
    assert_eq!((plan.to, plan.gas_limit, plan.data.len()), (key().address(), TRANSFER_GAS, 0));
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let shown = format!("{:?}", key());
    assert!(shown.contains(&key().address().to_string()), "{shown}");
    assert!(!shown.contains("0101010101"), "{shown}");
    assert!(OperatorKey::from_hex("0x12").is_err());
    assert!(OperatorKey::from_hex(&format!("0x{}", "00".repeat(32))).is_err(), "zero is not a key");
}

#[test]
fn the_next_batch_index_call_round_trips() {
    assert_eq!(&next_batch_index_call()[..], &HobExchange::nextBatchIndexCall::SELECTOR[..]);
    let returned = U256::from(42u64).to_be_bytes::<32>();
    assert_eq!(decode_next_batch_index(&returned).unwrap(), 42);
    assert!(decode_next_batch_index(&[1, 2]).is_err());
}
