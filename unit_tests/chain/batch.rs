//! Unit tests of `src/chain/batch.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::chain::eip712::Order;
use alloy::primitives::{Signature, B256, U256};

fn signed(trader: u8, nonce: u64, side: u8) -> SignedOrder {
    SignedOrder {
        order: Order {
            trader: Address::repeat_byte(trader),
            market: 0x0102_0304,
            side,
            orderType: 0,
            timeInForce: 0,
            postOnly: false,
            price: 100,
            quantity: 10,
            maxFeeBps: 30,
            nonce,
            expiry: 0,
        },
        signature: Signature::new(U256::from(1), U256::from(2), side == 1),
    }
}

fn trade(maker: SignedOrder, taker: SignedOrder, qty: u64) -> TradeToSettle {
    TradeToSettle { maker, taker, price: PriceTicks(100), qty: QtyLots(qty), maker_fee: Bps(1), taker_fee: Bps(2) }
}

#[test]
fn one_trade_is_laid_out_field_by_field() {
    let maker = signed(0x22, 7, 1);
    let taker = signed(0x11, 9, 0);
    let batch = encode_batch(&[trade(maker.clone(), taker.clone(), 4)]).unwrap();

    let mut expected = vec![1u8, 0x01, 0x02, 0x03, 0x04];
    expected.extend([0, 2]);
    expected.extend([0x11; 20]);
    expected.extend([0x22; 20]);
    expected.extend([0, 2]);
    for (account, o, flags) in [(0u16, &taker, 0u8), (1, &maker, 1)] {
        expected.extend(account.to_be_bytes());
        expected.extend([0, flags]);
        expected.extend(100u64.to_be_bytes());
        expected.extend(10u64.to_be_bytes());
        expected.extend(30u16.to_be_bytes());
        expected.extend(o.order.nonce.to_be_bytes());
        expected.extend(0u64.to_be_bytes());
        expected.extend(B256::from(U256::from(1)));
        let mut vs = B256::from(U256::from(2)).0;
        vs[0] |= flags << 7; // the y parity bit (set for the sell order here)
        expected.extend(vs);
    }
    expected.extend([0, 1]);
    expected.extend([0, 1, 0, 0]); // maker is order 1, taker order 0
    expected.extend(100u64.to_be_bytes());
    expected.extend(4u64.to_be_bytes());
    expected.extend([0, 1, 0, 2]);

    assert_eq!(batch.data.as_ref(), expected.as_slice());
    assert_eq!(batch.accounts, vec![Address::repeat_byte(0x11), Address::repeat_byte(0x22)]);
    assert_eq!(batch.orders, vec![OrderKey::of(&taker), OrderKey::of(&maker)]);
    assert_eq!(batch.trade_orders, vec![(1, 0)]);
}

#[test]
fn shared_orders_and_traders_are_sent_once_and_sorted() {
    let maker = signed(0x33, 1, 1);
    let takers = [signed(0x44, 5, 0), signed(0x11, 2, 0), signed(0x44, 3, 0)];
    let trades: Vec<_> = takers.iter().map(|t| trade(maker.clone(), t.clone(), 1)).collect();
    let batch = encode_batch(&trades).unwrap();

    let size = 1 + 4 + 2 + 3 * ACCOUNT_BYTES + 2 + 4 * ORDER_BYTES + 2 + 3 * TRADE_BYTES;
    assert_eq!(batch.data.len(), size);
    let keys: Vec<(u8, u64)> = batch.orders.iter().map(|k| (k.trader.0[0], k.nonce)).collect();
    assert_eq!(keys, vec![(0x11, 2), (0x33, 1), (0x44, 3), (0x44, 5)]);
    assert_eq!(batch.trade_orders, vec![(1, 3), (1, 0), (1, 2)]);
    assert_eq!(batch.trades_using(1).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(batch.trades_using(2).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn flags_pack_every_code() {
    let mut o = signed(1, 1, 1);
    o.order.orderType = 1;
    o.order.timeInForce = 3;
    o.order.postOnly = true;
    assert_eq!(flags(&o), Ok(0b1_1111));
    o.order.timeInForce = 4;
    assert_eq!(flags(&o), Err(OrderCodeError::TimeInForce(4)));
}

#[test]
fn batches_the_contract_would_refuse_are_refused_here() {
    assert_eq!(encode_batch(&[]), Err(BatchError::Empty));

    let a = signed(1, 1, 0);
    assert_eq!(encode_batch(&[trade(a.clone(), a.clone(), 1)]), Err(BatchError::SameOrder { trade: 0 }));

    let mut twin = a.clone();
    twin.order.quantity += 1;
    let b = signed(2, 1, 1);
    assert_eq!(
        encode_batch(&[trade(b.clone(), a.clone(), 1), trade(b.clone(), twin, 1)]),
        Err(BatchError::ConflictingOrders(OrderKey::of(&a)))
    );

    let mut bad = signed(3, 1, 1);
    bad.order.side = 2;
    assert!(matches!(
        encode_batch(&[trade(bad, a, 1)]),
        Err(BatchError::Unencodable { source: OrderCodeError::Side(2), .. })
    ));
}

#[test]
fn a_high_s_signature_is_sent_as_its_low_s_twin() {
    let domain = crate::chain::eip712::domain(1, Address::ZERO);
    let key = alloy::signers::local::PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
    let order = Order { trader: key.address(), ..signed(0, 1, 1).order };
    let mut maker = SignedOrder::sign(&key, order, &domain).unwrap();
    // n - s with the parity flipped is the same signature's malleable twin.
    let n = U256::from_be_slice(&alloy::hex!("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"));
    let sig = maker.signature;
    let high = Signature::new(sig.r(), n - sig.s(), !sig.v());
    assert_eq!(maker.signer(&domain).unwrap(), key.address());
    assert_eq!(SignedOrder { signature: high, ..maker.clone() }.signer(&domain).unwrap(), key.address());

    let low_batch = encode_batch(&[trade(maker.clone(), signed(9, 1, 0), 1)]).unwrap();
    maker.signature = high;
    let high_batch = encode_batch(&[trade(maker, signed(9, 1, 0), 1)]).unwrap();
    assert_eq!(low_batch.data, high_batch.data);
}
