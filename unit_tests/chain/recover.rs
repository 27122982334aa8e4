//! Unit tests of `src/chain/recover.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::primitives::{keccak256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use proptest::prelude::*;

/// The curve order n.
fn order_n() -> U256 {
    alloy::primitives::uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256)
}

/// Both backends on the same input: the same address, or errors with the same text.
fn assert_same(signature: &Signature, prehash: &B256) {
    let ours = recover_address(signature, prehash);
    let alloys = signature.recover_address_from_prehash(prehash);
    match (&ours, &alloys) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{signature:?} over {prehash}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{signature:?} over {prehash}"),
        _ => panic!("{signature:?} over {prehash}: libsecp256k1 path {ours:?}, alloy {alloys:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random keys and messages: the address recovered here is the signer's, and alloy's.
    #[test]
    fn recovers_what_alloy_recovers(key in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..200)) {
        // A random 32 bytes is a valid scalar except with negligible probability (0 or >= n).
        let Ok(signer) = PrivateKeySigner::from_bytes(&B256::from(key)) else { return Ok(()) };
        let prehash = keccak256(&message);
        let signature = signer.sign_hash_sync(&prehash).expect("signing a digest");
        prop_assert_eq!(recover_address(&signature, &prehash).expect("a valid signature"), signer.address());
        assert_same(&signature, &prehash);
        // The same signature in its high-s form (what some signers emit): alloy accepts it, so do we.
        let high = Signature::new(signature.r(), order_n() - signature.s(), !signature.v());
        prop_assert_eq!(recover_address(&high, &prehash).expect("high-s is normalised"), signer.address());
        assert_same(&high, &prehash);
        // The EIP-191 variant (login challenges).
        let personal = signer.sign_message_sync(&message).expect("signing a message");
        prop_assert_eq!(recover_address_from_msg(&personal, &message).expect("valid"), signer.address());
        prop_assert_eq!(personal.recover_address_from_msg(&message).expect("valid"), signer.address());
    }

    /// Random (r, s, parity) over a random digest: both backends agree on every input,
    /// including the many that recover some unrelated address and those that recover nothing.
    #[test]
    fn arbitrary_signatures_agree(r in any::<[u8; 32]>(), s in any::<[u8; 32]>(), v in any::<bool>(), digest in any::<[u8; 32]>()) {
        let signature = Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), v);
        assert_same(&signature, &B256::from(digest));
    }
}

#[test]
fn malformed_signatures_get_alloys_errors() {
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).expect("a valid scalar");
    let prehash = keccak256(b"hob");
    let good = signer.sign_hash_sync(&prehash).expect("signing");
    let n = order_n();
    let cases = [
        ("r = 0", Signature::new(U256::ZERO, good.s(), good.v())),
        ("s = 0", Signature::new(good.r(), U256::ZERO, good.v())),
        ("r = n", Signature::new(n, good.s(), good.v())),
        ("r > n", Signature::new(U256::MAX, good.s(), good.v())),
        ("s = n", Signature::new(good.r(), n, good.v())),
        ("s > n", Signature::new(good.r(), U256::MAX, good.v())),
        // Above n though below the field prime: as r it is out of range.
        ("r = n + 1", Signature::new(n + U256::from(1u8), good.s(), good.v())),
    ];
    for (name, signature) in cases {
        let ours = recover_address(&signature, &prehash);
        let alloys = signature.recover_address_from_prehash(&prehash);
        assert!(alloys.is_err(), "{name}: alloy refuses it");
        match (ours, alloys) {
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name}"),
            (a, b) => panic!("{name}: ours {a:?}, alloy {b:?}"),
        }
    }
    // An r with no point on the curve (x^3 + 7 not a square): both refuse it, the same way.
    let mut r = U256::from(1u8);
    loop {
        let signature = Signature::new(r, good.s(), good.v());
        if signature.recover_address_from_prehash(&prehash).is_err() {
            assert_same(&signature, &prehash);
            break;
        }
        r += U256::from(1u8);
    }
    // A bad v never gets this far: it is refused where the 65 bytes are parsed, by alloy.
    let mut raw = good.as_bytes();
    raw[64] = 29;
    assert!(Signature::from_raw(&raw).is_err());
}
