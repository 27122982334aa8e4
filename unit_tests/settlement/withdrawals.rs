//! Unit tests of `src/settlement/withdrawals.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;

fn signed() -> (PrivateKeySigner, SignedWithdrawal, Eip712Domain) {
    let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(5)).unwrap();
    let domain = eip712::domain(31_337, Address::repeat_byte(9));
    let w = Withdrawal {
        user: key.address(),
        token: Address::repeat_byte(2),
        amount: U256::from(u128::MAX),
        nonce: u64::MAX,
        expiry: 1_900_000_000,
    };
    let signed = SignedWithdrawal::sign(&key, w, &domain).unwrap();
    (key, signed, domain)
}

#[test]
fn a_signed_withdrawal_reads_back_what_it_writes_and_recovers_its_signer() {
    let (key, s, domain) = signed();
    let back = decode_withdrawal_auth(&encode_withdrawal_auth(&s)).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.signer(&domain).unwrap(), key.address());
    assert!(decode_withdrawal_auth(&WithdrawalAuth::new("{}")).is_err());
}

#[test]
fn a_withdrawal_is_held_once_and_ends_once() {
    let (_, s, _) = signed();
    let q = QueuedWithdrawal {
        user: UserId([1; 20]),
        nonce: 4,
        asset: AssetId::new("USDT").unwrap(),
        amount: Amount(10),
        auth: encode_withdrawal_auth(&s),
    };
    assert_eq!(decode_withdrawal_record(&encode_withdrawal_record(&q)), Some(Ok(q.clone())));
    assert_eq!(decode_withdrawal_record(&json!({"market": "X"})), None);
    let mut held = Withdrawals::default();
    held.queue(&q).unwrap();
    assert_eq!(held.queue(&q), Err(WithdrawalsError::Duplicate(q.key())));
    assert_eq!(held.end(&q.key(), true), Ok(q.clone()));
    assert_eq!(held.end(&q.key(), false), Err(WithdrawalsError::Unknown(q.key())));
    assert_eq!(held.counts(), (1, 0));
}
