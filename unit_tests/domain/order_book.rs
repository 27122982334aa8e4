//! Unit tests of `src/domain/order_book.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

fn user(n: u8) -> UserId {
    UserId([n; 20])
}

fn order(id: u64, side: Side, price: u64, qty: u64) -> RestingOrder {
    RestingOrder {
        id: OrderId(id),
        user: user(id as u8),
        side,
        price: PriceTicks(price),
        qty: QtyLots(qty),
        expiry: None,
        post_only: false,
        stp: StpMode::ExpireMaker,
    }
}

fn ids(book: &OrderBook, side: Side) -> Vec<u64> {
    let mut out = vec![];
    book.walk::<()>(side, |o| {
        out.push(o.id.0);
        ControlFlow::Continue(())
    });
    out
}

#[test]
fn walks_best_price_first_then_earliest_first() {
    let mut book = OrderBook::new();
    for o in [
        order(1, Side::Buy, 100, 1),
        order(2, Side::Buy, 101, 1),
        order(3, Side::Buy, 100, 1),
        order(4, Side::Sell, 105, 1),
        order(5, Side::Sell, 103, 1),
        order(6, Side::Sell, 105, 1),
    ] {
        book.insert(o).unwrap();
    }
    assert_eq!(ids(&book, Side::Buy), vec![2, 1, 3]);
    assert_eq!(ids(&book, Side::Sell), vec![5, 4, 6]);
    assert_eq!(book.best_price(Side::Buy), Some(PriceTicks(101)));
    assert_eq!(book.best_price(Side::Sell), Some(PriceTicks(103)));
}

#[test]
fn removes_from_any_position_and_reuses_slots() {
    let mut book = OrderBook::new();
    for id in 1..=4 {
        book.insert(order(id, Side::Buy, 100, id)).unwrap();
    }
    book.remove(OrderId(2)).unwrap();
    book.remove(OrderId(4)).unwrap();
    book.remove(OrderId(1)).unwrap();
    assert_eq!(ids(&book, Side::Buy), vec![3]);
    book.insert(order(5, Side::Buy, 100, 5)).unwrap();
    book.insert(order(6, Side::Buy, 99, 6)).unwrap();
    assert_eq!(ids(&book, Side::Buy), vec![3, 5, 6]);
    assert_eq!(
        book.depth(Side::Buy, 5),
        vec![
            LevelSummary { price: PriceTicks(100), qty: QtyLots(8), orders: 2 },
            LevelSummary { price: PriceTicks(99), qty: QtyLots(6), orders: 1 },
        ]
    );
    assert_eq!(book.remove(OrderId(2)), Err(BookError::UnknownOrder(OrderId(2))));
    assert_eq!(book.insert(order(3, Side::Buy, 1, 1)), Err(BookError::DuplicateOrder(OrderId(3))));
}

#[test]
fn reduce_keeps_priority_and_removes_at_zero() {
    let mut book = OrderBook::new();
    book.insert(order(1, Side::Sell, 100, 5)).unwrap();
    book.insert(order(2, Side::Sell, 100, 5)).unwrap();
    assert_eq!(book.reduce(OrderId(1), QtyLots(3)), Ok(QtyLots(2)));
    assert_eq!(ids(&book, Side::Sell), vec![1, 2]);
    assert_eq!(book.depth(Side::Sell, 1)[0].qty, QtyLots(7));
    assert!(book.reduce(OrderId(1), QtyLots(3)).is_err());
    assert_eq!(book.reduce(OrderId(1), QtyLots(2)), Ok(QtyLots::ZERO));
    assert_eq!(ids(&book, Side::Sell), vec![2]);
}

#[test]
fn expiries_are_found_in_time_order() {
    let mut book = OrderBook::new();
    let mut o = order(1, Side::Buy, 100, 1);
    o.expiry = Some(TimestampMs(50));
    book.insert(o).unwrap();
    let mut o = order(2, Side::Buy, 100, 1);
    o.expiry = Some(TimestampMs(20));
    book.insert(o).unwrap();
    assert_eq!(book.due_expiries(TimestampMs(10)).count(), 0);
    assert_eq!(book.due_expiries(TimestampMs(50)).collect::<Vec<_>>(), vec![OrderId(2), OrderId(1)]);
    book.remove(OrderId(2)).unwrap();
    assert_eq!(book.due_expiries(TimestampMs(50)).collect::<Vec<_>>(), vec![OrderId(1)]);
}

#[test]
fn a_lifted_order_is_off_the_book_until_it_rests_again() {
    let mut book = OrderBook::new();
    for id in 1..=3 {
        book.insert(order(id, Side::Buy, 100, 1)).unwrap();
    }
    book.lift(OrderId(1)).unwrap();
    assert_eq!((book.len(), book.contains(OrderId(1)), book.get(OrderId(1))), (2, false, None));
    assert_eq!(ids(&book, Side::Buy), vec![2, 3]);
    assert_eq!(book.remove(OrderId(1)), Err(BookError::UnknownOrder(OrderId(1))));
    // Re-entered at a new price, with a new user: a fresh order in the old slot.
    let mut moved = order(1, Side::Buy, 101, 4);
    moved.user = user(9);
    book.insert(moved).unwrap();
    assert_eq!(book.get(OrderId(1)), Some(moved));
    assert_eq!(ids(&book, Side::Buy), vec![1, 2, 3]);
    assert_eq!(book.len(), 3);
    // A lifted order that ends instead frees its id for good.
    book.lift(OrderId(2)).unwrap();
    book.forget_lifted(OrderId(2));
    book.lift(OrderId(3)).unwrap();
    book.discard(OrderId(3));
    assert_eq!((book.len(), ids(&book, Side::Buy)), (1, vec![1]));
    book.insert(order(2, Side::Buy, 100, 1)).unwrap();
    assert_eq!(ids(&book, Side::Buy), vec![1, 2]);
}

#[test]
fn lifting_another_order_ends_the_previous_one() {
    let mut book = OrderBook::new();
    book.insert(order(1, Side::Sell, 100, 1)).unwrap();
    book.insert(order(2, Side::Sell, 101, 1)).unwrap();
    book.lift(OrderId(1)).unwrap();
    book.lift(OrderId(2)).unwrap();
    assert!(book.is_empty());
    book.insert(order(2, Side::Sell, 101, 1)).unwrap();
    assert_eq!((book.len(), book.contains(OrderId(1))), (1, false));
    assert_eq!(book.lift(OrderId(1)), Err(BookError::UnknownOrder(OrderId(1))));
}

#[test]
fn emptied_levels_stay_out_of_sight_and_are_reused() {
    let mut book = OrderBook::new();
    for (id, price) in [(1, 100), (2, 99), (3, 98)] {
        book.insert(order(id, Side::Buy, price, 1)).unwrap();
    }
    book.remove(OrderId(2)).unwrap(); // 99 becomes a placeholder
    assert_eq!(book.depth(Side::Buy, 2).iter().map(|l| l.price.0).collect::<Vec<_>>(), vec![100, 98]);
    book.remove(OrderId(1)).unwrap(); // the best level goes, and the placeholder behind it
    assert_eq!(book.best_price(Side::Buy), Some(PriceTicks(98)));
    assert_eq!((book.bids.len(), book.placeholders), (1, 0));
    book.insert(order(4, Side::Buy, 99, 2)).unwrap();
    assert_eq!(ids(&book, Side::Buy), vec![4, 3]);
    assert!(!book.is_crossed());
}

#[test]
fn placeholders_are_swept_once_they_outnumber_live_levels() {
    let mut book = OrderBook::new();
    let n = OrderBook::SPARE_PLACEHOLDERS as u64 + 10;
    book.insert(order(1, Side::Sell, 1, 1)).unwrap(); // the best ask stays
    for i in 0..n {
        book.insert(order(10 + i, Side::Sell, 10 + i, 1)).unwrap();
        book.remove(OrderId(10 + i)).unwrap();
    }
    assert!(book.placeholders <= OrderBook::SPARE_PLACEHOLDERS + 1);
    assert_eq!(book.asks.len(), 1 + book.placeholders);
    assert_eq!(book.ask_at.len(), book.asks.len());
    assert_eq!(book.depth(Side::Sell, usize::MAX).len(), 1);
}

#[test]
fn the_index_finds_every_live_order_through_growth_and_removal() {
    // Ids chosen to collide in the table's home positions, and removals in an order that
    // exercises the backward shift, checked against a plain map.
    let mut book = OrderBook::new();
    let mut live = std::collections::BTreeMap::new();
    let mut x = 7u64;
    for step in 0..20_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let id = (x >> 40) % 3_000 * if step % 2 == 0 { 1 } else { 1 << 32 };
        if live.remove(&id).is_some() {
            assert!(book.remove(OrderId(id)).is_ok());
        } else {
            book.insert(order(id, Side::Buy, 1 + id % 50, 1)).unwrap();
            live.insert(id, ());
        }
        if step % 997 == 0 {
            assert_eq!(book.len(), live.len());
            assert!((0..3_000).all(|i| book.contains(OrderId(i)) == live.contains_key(&i)));
        }
    }
    assert!(live.keys().all(|&id| book.get(OrderId(id)).is_some_and(|o| o.id == OrderId(id))));
}

#[test]
fn flags_and_expiry_kept_outside_the_node_read_back_exactly() {
    let mut book = OrderBook::new();
    let stps = [StpMode::ExpireMaker, StpMode::ExpireTaker, StpMode::ExpireBoth];
    let mut all = vec![];
    for (i, stp) in stps.into_iter().enumerate() {
        for post_only in [false, true] {
            let id = all.len() as u64 + 1;
            let mut o = order(id, if post_only { Side::Sell } else { Side::Buy }, 100 + id * 10, id);
            o.stp = stp;
            o.post_only = post_only;
            o.expiry = (i != 1).then_some(TimestampMs(id * 7));
            book.insert(o).unwrap();
            all.push(o);
        }
    }
    assert!(all.iter().all(|o| book.get(o.id) == Some(*o)));
    // A lifted GTD order re-enters with its expiry; a removed one leaves none behind.
    book.lift(all[0].id).unwrap();
    book.insert(all[0]).unwrap();
    book.remove(all[1].id).unwrap();
    assert_eq!(book.get(all[0].id), Some(all[0]));
    assert_eq!(book.due_expiries(TimestampMs(u64::MAX)).count(), 3);
    assert_eq!(book.expiry_at.len(), 3);
}

#[test]
fn nodes_stay_small() {
    assert_eq!(std::mem::size_of::<Node>(), 32);
}
