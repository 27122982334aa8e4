//! Unit tests of `src/settlement/sim_vault.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;
use alloy::primitives::Bytes;

const MARKET: u32 = 1;
const SELLER: Address = Address::repeat_byte(0xA1);
const BUYER: Address = Address::repeat_byte(0xB2);
const FEES: Address = Address::repeat_byte(0xFE);
const BASE: Address = Address::repeat_byte(0xB0);
const QUOTE: Address = Address::repeat_byte(0xC0);

fn markets() -> BTreeMap<u32, Grid> {
    BTreeMap::from([(MARKET, Grid { base: BASE, quote: QUOTE, base_lot: 1_000, quote_tick: 10 })])
}

fn order(account: u16, sell: bool) -> Vec<u8> {
    let mut o = account.to_be_bytes().to_vec();
    o.extend([0, u8::from(sell)]);
    o.resize(ORDER_BYTES, 0);
    o
}

/// One batch, one trade: the seller's resting order (maker, 10 bps) takes the buyer's
/// (taker, 25 bps) for `qty` lots at 100 ticks.
fn batch(qty: u64) -> Vec<u8> {
    let mut d = vec![1];
    d.extend(MARKET.to_be_bytes());
    d.extend(2u16.to_be_bytes());
    d.extend(SELLER.as_slice());
    d.extend(BUYER.as_slice());
    d.extend(2u16.to_be_bytes());
    d.extend(order(0, true));
    d.extend(order(1, false));
    d.extend(1u16.to_be_bytes());
    for field in [&0u16.to_be_bytes()[..], &1u16.to_be_bytes(), &100u64.to_be_bytes(), &qty.to_be_bytes()] {
        d.extend(field);
    }
    d.extend(10u16.to_be_bytes());
    d.extend(25u16.to_be_bytes());
    d
}

fn funded() -> Vault {
    let mut vault = Vault::default();
    vault.credit(SELLER, BASE, 4_000);
    vault.credit(BUYER, QUOTE, 4_010);
    vault
}

#[test]
fn a_settled_trade_moves_base_quote_and_both_fees_exactly() {
    let mut vault = funded();
    vault.settle(&batch(4), &markets(), FEES).unwrap();
    // notional 100 x 4 x 10 = 4,000; maker fee 4, taker fee 10.
    assert_eq!((vault.balance(SELLER, BASE), vault.balance(SELLER, QUOTE)), (0, 3_996));
    assert_eq!((vault.balance(BUYER, BASE), vault.balance(BUYER, QUOTE)), (4_000, 0));
    assert_eq!(vault.balance(FEES, QUOTE), 14);
}

#[test]
fn a_short_vault_reverts_the_whole_batch_and_changes_nothing() {
    let mut vault = funded();
    let before = vault.clone();
    let refused = vault.settle(&batch(5), &markets(), FEES).unwrap_err();
    assert!(matches!(refused, HobExchangeErrors::InsufficientBalance(_)));
    assert_eq!(vault, before);
}

#[test]
fn a_trade_of_an_unregistered_market_or_a_malformed_batch_is_refused() {
    let mut vault = funded();
    let unknown = vault.settle(&batch(4), &BTreeMap::new(), FEES).unwrap_err();
    assert!(matches!(unknown, HobExchangeErrors::UnknownMarket(_)));
    let mut truncated = batch(4);
    truncated.pop();
    assert!(matches!(vault.settle(&truncated, &markets(), FEES), Err(HobExchangeErrors::MalformedBatch(_))));
    assert_eq!(vault, funded());
}

fn withdraw(amount: u64, nonce: u64) -> HobExchange::withdrawCall {
    HobExchange::withdrawCall {
        user: BUYER,
        token: QUOTE,
        amount: U256::from(amount),
        nonce,
        expiry: 0,
        signature: Bytes::new(),
    }
}

#[test]
fn a_withdrawal_nonce_works_once_and_never_beyond_the_balance() {
    let mut vault = funded();
    vault.withdraw(&withdraw(10, 1)).unwrap();
    assert_eq!(vault.balance(BUYER, QUOTE), 4_000);
    assert!(matches!(vault.withdraw(&withdraw(10, 1)), Err(HobExchangeErrors::WithdrawalNonceUsed(_))));
    assert!(matches!(vault.withdraw(&withdraw(4_001, 2)), Err(HobExchangeErrors::InsufficientBalance(_))));
    assert!(matches!(vault.withdraw(&withdraw(0, 3)), Err(HobExchangeErrors::ZeroAmount(_))));
    assert_eq!(vault.balance(BUYER, QUOTE), 4_000);
}
