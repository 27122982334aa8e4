//! Unit tests of `src/domain/transfers.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

fn id(n: u8, log_index: u64) -> DepositId {
    DepositId { tx: [n; 32], log_index }
}

#[test]
fn a_deposit_id_reads_back_what_it_writes_and_refuses_anything_else() {
    let d = id(0xab, 7);
    assert_eq!(DepositId::parse(&d.to_string()), Some(d));
    for bad in ["", "0x12:1", &format!("{}", d).replace(':', ""), &format!("{d}x"), &format!("{d}").replace("0x", "")] {
        assert_eq!(DepositId::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_deposit_is_credited_once_and_a_nonce_used_once() {
    let mut t = Transfers::default();
    t.credit(id(1, 0)).unwrap();
    assert_eq!(t.credit(id(1, 0)), Err(TransferError::DepositCredited(id(1, 0))));
    t.credit(id(1, 1)).unwrap();
    let p = PendingWithdrawal { asset: AssetId::new("USDT").unwrap(), amount: Amount(5) };
    t.request(9, p).unwrap();
    assert_eq!(t.request(9, p), Err(TransferError::WithdrawalNonceUsed(9)));
    assert_eq!(t.withdrawing(p.asset), Amount(5));
    assert!(t.finish(9, PendingWithdrawal { amount: Amount(4), ..p }).is_err());
    t.finish(9, p).unwrap();
    assert_eq!(t.withdrawing(p.asset), Amount(0));
    assert!(t.nonce_used(9), "a finished withdrawal's nonce stays used");
    assert_eq!(Transfers::from_parts(t.to_parts()), Ok(t));
}
