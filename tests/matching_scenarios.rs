//! The matching core as a specification: given a market's history, when a command arrives,
//! then exactly these events. The market trades BTC-USDT with 1,000 base units a lot, 10
//! quote units a tick per lot, a 10 bps maker and a 20 bps taker fee, and a minimum order
//! value of 500 quote units (see `support/scenario.rs`). Commands run at t = 1,000 ms unless
//! a case says otherwise.

#[macro_use]
#[path = "support/scenario.rs"]
mod scenario;

use hob::domain::{
    Amount, CancelReason, ExpireReason, LevelSummary, Market, MarketCommand, MarketEvent, MarketSpec, MarketStatus,
    OrderId, PriceTicks, QtyLots, RejectReason, Side, StpMode, TimestampMs, Trade, TradeId,
};
use scenario::*;

use CancelReason::{SelfTradePrevention as Stp, User as ByUser};
use ExpireReason::{GoodTillDate, ImmediateOrCancel, MarketRemainder};

fn level(price: u64, qty: u64, orders: u32) -> LevelSummary {
    LevelSummary { price: PriceTicks(price), qty: QtyLots(qty), orders }
}

// ---------------------------------------------------------------------------------------
// Limit orders, good till cancelled

#[test]
fn a_buy_on_an_empty_book_rests_in_full() {
    let b = buy(1, ALICE, 100, 5);
    let market = check(EMPTY_MARKET, b, &[accepted(b), rested(b, 5)]);
    assert_eq!(market.book().depth(Side::Buy, 10), vec![level(100, 5, 1)]);
    assert!(market.book().depth(Side::Sell, 10).is_empty());
}

#[test]
fn a_buy_that_crosses_part_of_a_resting_sell_trades_at_the_makers_price_and_the_maker_keeps_the_rest() {
    let s = sell(1, BOB, 101, 10);
    let b = buy(2, ALICE, 101, 4);
    let market = check(
        &[s],
        b,
        &[
            accepted(b),
            MarketEvent::Traded(Trade {
                id: TradeId(1),
                maker_order: OrderId(1),
                maker_user: BOB,
                taker_order: OrderId(2),
                taker_user: ALICE,
                taker_side: Side::Buy,
                price: PriceTicks(101),
                qty: QtyLots(4),
                base_amount: Amount(4_000),  // 4 lots * 1,000
                quote_amount: Amount(4_040), // 101 ticks * 4 lots * 10
                maker_fee: Amount(4),        // 4,040 * 10 / 10,000 = 4.04, rounded down
                taker_fee: Amount(8),        // 4,040 * 20 / 10,000 = 8.08, rounded down
            }),
            filled(b),
        ],
    );
    assert_eq!(market.book().get(OrderId(1)).map(|o| o.qty), Some(QtyLots(6)));
    assert_eq!(market.next_trade_id(), TradeId(2));
}

#[test]
fn a_buy_that_takes_a_whole_resting_sell_fills_the_maker_then_the_taker() {
    let s = sell(1, BOB, 100, 5);
    let b = buy(2, ALICE, 100, 5);
    let market = check(
        &[s],
        b,
        &[
            accepted(b),
            MarketEvent::Traded(Trade {
                id: TradeId(1),
                maker_order: OrderId(1),
                maker_user: BOB,
                taker_order: OrderId(2),
                taker_user: ALICE,
                taker_side: Side::Buy,
                price: PriceTicks(100),
                qty: QtyLots(5),
                base_amount: Amount(5_000),
                quote_amount: Amount(5_000), // 100 * 5 * 10
                maker_fee: Amount(5),        // 5,000 * 10 / 10,000
                taker_fee: Amount(10),       // 5,000 * 20 / 10,000
            }),
            filled(s),
            filled(b),
        ],
    );
    assert!(market.book().is_empty());
}

#[test]
fn a_buy_that_crosses_two_levels_trades_best_price_first_then_rests_the_rest() {
    let s_102 = sell(1, BOB, 102, 3);
    let s_101 = sell(2, CAROL, 101, 2);
    let b = buy(3, ALICE, 102, 8);
    let market = check(
        &[s_102, s_101],
        b,
        &[
            accepted(b),
            // 101 * 2 * 10 = 2,020: maker fee 2 (2.02), taker fee 4 (4.04)
            traded(1, s_101, b, 101, 2),
            filled(s_101),
            // 102 * 3 * 10 = 3,060: maker fee 3 (3.06), taker fee 6 (6.12)
            traded(2, s_102, b, 102, 3),
            filled(s_102),
            rested(b, 3),
        ],
    );
    assert_eq!(trade(1, s_101, b, 101, 2).maker_fee, Amount(2));
    assert_eq!(trade(2, s_102, b, 102, 3).taker_fee, Amount(6));
    assert_eq!(market.book().depth(Side::Buy, 10), vec![level(102, 3, 1)]);
    assert!(market.book().depth(Side::Sell, 10).is_empty());
}

#[test]
fn a_sell_that_sweeps_bids_takes_the_highest_first() {
    let b_99 = buy(1, BOB, 99, 2);
    let b_100 = buy(2, CAROL, 100, 2);
    let s = sell(3, ALICE, 99, 3);
    check(
        &[b_99, b_100],
        s,
        &[accepted(s), traded(1, b_100, s, 100, 2), filled(b_100), traded(2, b_99, s, 99, 1), filled(s)],
    );
}

#[test]
fn orders_at_one_price_fill_earliest_first() {
    let first = sell(1, BOB, 100, 2);
    let second = sell(2, CAROL, 100, 2);
    let third = sell(3, DAVE, 100, 2);
    let b = buy(4, ALICE, 100, 3);
    let market = check(
        &[first, second, third],
        b,
        &[accepted(b), traded(1, first, b, 100, 2), filled(first), traded(2, second, b, 100, 1), filled(b)],
    );
    assert_eq!(queue(&market, Side::Sell), vec![2, 3]);
    assert_eq!(market.book().depth(Side::Sell, 1), vec![level(100, 3, 2)]);
}

#[test]
fn a_buy_priced_above_the_ask_trades_at_the_ask_and_keeps_the_improvement() {
    let s = sell(1, BOB, 100, 2);
    let b = buy(2, ALICE, 110, 2);
    check(
        &[s],
        b,
        &[
            accepted(b),
            MarketEvent::Traded(Trade {
                id: TradeId(1),
                maker_order: OrderId(1),
                maker_user: BOB,
                taker_order: OrderId(2),
                taker_user: ALICE,
                taker_side: Side::Buy,
                price: PriceTicks(100), // not 110: the maker's price
                qty: QtyLots(2),
                base_amount: Amount(2_000),
                quote_amount: Amount(2_000), // 100 * 2 * 10, not 110 * 2 * 10
                maker_fee: Amount(2),
                taker_fee: Amount(4),
            }),
            filled(s),
            filled(b),
        ],
    );
}

#[test]
fn a_sell_priced_below_the_bid_trades_at_the_bid() {
    let b = buy(1, BOB, 105, 3);
    let s = sell(2, ALICE, 100, 3);
    check(&[b], s, &[accepted(s), traded(1, b, s, 105, 3), filled(b), filled(s)]);
}

#[test]
fn trade_ids_continue_across_commands() {
    let s1 = sell(1, BOB, 100, 1);
    let s2 = sell(2, BOB, 100, 1);
    let b1 = buy(3, ALICE, 100, 1);
    let b2 = buy(4, CAROL, 100, 1);
    check(&[s1, s2, b1], b2, &[accepted(b2), traded(2, s2, b2, 100, 1), filled(s2), filled(b2)]);
}

// ---------------------------------------------------------------------------------------
// Immediate or cancel

#[test]
fn an_ioc_trades_what_crosses_and_expires_the_rest() {
    let s = sell(1, BOB, 100, 2);
    let b = buy(2, ALICE, 100, 5).ioc();
    let market = check(&[s], b, &[accepted(b), traded(1, s, b, 100, 2), filled(s), expired(b, 3, ImmediateOrCancel)]);
    assert!(market.book().is_empty());
}

#[test]
fn an_ioc_with_nothing_to_trade_expires_in_full() {
    let bid = buy(1, BOB, 99, 5);
    let s = sell(2, ALICE, 100, 4).ioc();
    let market = check(&[bid], s, &[accepted(s), expired(s, 4, ImmediateOrCancel)]);
    assert_eq!(queue(&market, Side::Buy), vec![1]);
    assert!(market.book().depth(Side::Sell, 10).is_empty());
}

// ---------------------------------------------------------------------------------------
// Fill or kill

#[test]
fn a_fok_the_book_can_fill_trades_across_levels_and_fills() {
    let s_100 = sell(1, BOB, 100, 2);
    let s_101 = sell(2, CAROL, 101, 3);
    let b = buy(3, ALICE, 101, 5).fok();
    check(
        &[s_100, s_101],
        b,
        &[
            accepted(b),
            traded(1, s_100, b, 100, 2),
            filled(s_100),
            traded(2, s_101, b, 101, 3),
            filled(s_101),
            filled(b),
        ],
    );
}

#[test]
fn a_fok_the_book_cannot_fill_is_rejected_and_the_book_is_untouched() {
    let book = [sell(1, BOB, 100, 2), sell(2, CAROL, 101, 3)];
    // More than the book holds.
    let too_big = buy(3, ALICE, 101, 6).fok();
    check(&book, too_big, &[rejected(too_big, RejectReason::FokCannotFill)]);
    // Enough on the book, but not within the limit.
    let too_cheap = buy(3, ALICE, 100, 5).fok();
    let market = check(&book, too_cheap, &[rejected(too_cheap, RejectReason::FokCannotFill)]);
    assert_eq!(market.book().depth(Side::Sell, 10), vec![level(100, 2, 1), level(101, 3, 1)]);
}

#[test]
fn a_fok_that_could_fill_only_by_trading_with_its_own_orders_is_rejected() {
    let book = [sell(1, BOB, 100, 2), sell(2, ALICE, 100, 3)];
    for mode in [StpMode::ExpireMaker, StpMode::ExpireTaker, StpMode::ExpireBoth] {
        let b = buy(3, ALICE, 100, 5).fok().stp(mode);
        check(&book, b, &[rejected(b, RejectReason::FokCannotFill)]);
    }
}

#[test]
fn a_fok_that_skips_its_own_order_under_expire_maker_fills_from_the_others_and_cancels_it() {
    let own = sell(1, ALICE, 100, 3);
    let other = sell(2, BOB, 101, 5);
    let b = buy(3, ALICE, 101, 5).fok();
    check(
        &[own, other],
        b,
        &[accepted(b), cancelled(own, 3, Stp), traded(1, other, b, 101, 5), filled(other), filled(b)],
    );
}

// ---------------------------------------------------------------------------------------
// Market orders

#[test]
fn a_market_buy_with_a_worst_price_stops_there_and_expires_the_remainder() {
    let s_100 = sell(1, BOB, 100, 2);
    let s_101 = sell(2, CAROL, 101, 2);
    let s_103 = sell(3, DAVE, 103, 5);
    let m = market_buy(4, ALICE, 6, Some(101));
    let market = check(
        &[s_100, s_101, s_103],
        m,
        &[
            accepted(m),
            traded(1, s_100, m, 100, 2),
            filled(s_100),
            traded(2, s_101, m, 101, 2),
            filled(s_101),
            expired(m, 2, MarketRemainder),
        ],
    );
    assert_eq!(queue(&market, Side::Sell), vec![3]);
}

#[test]
fn a_market_sell_without_a_bound_sweeps_every_level_and_expires_what_is_left() {
    let b_100 = buy(1, BOB, 100, 2);
    let b_90 = buy(2, CAROL, 90, 3);
    let b_60 = buy(3, DAVE, 60, 1);
    let m = market_sell(4, ALICE, 8, None);
    let market = check(
        &[b_60, b_100, b_90],
        m,
        &[
            accepted(m),
            traded(1, b_100, m, 100, 2),
            filled(b_100),
            traded(2, b_90, m, 90, 3),
            filled(b_90),
            traded(3, b_60, m, 60, 1),
            filled(b_60),
            expired(m, 2, MarketRemainder),
        ],
    );
    assert!(market.book().is_empty());
}

#[test]
fn a_market_order_that_finds_enough_liquidity_fills() {
    let s = sell(1, BOB, 100, 5);
    let m = market_buy(2, ALICE, 3, None);
    check(&[s], m, &[accepted(m), traded(1, s, m, 100, 3), filled(m)]);
}

#[test]
fn a_market_order_on_an_empty_book_expires_in_full() {
    let bounded = market_buy(1, ALICE, 3, Some(100));
    check(EMPTY_MARKET, bounded, &[accepted(bounded), expired(bounded, 3, MarketRemainder)]);
    let unbounded = market_sell(1, ALICE, 3, None);
    check(EMPTY_MARKET, unbounded, &[accepted(unbounded), expired(unbounded, 3, MarketRemainder)]);
}

// ---------------------------------------------------------------------------------------
// Good till date

#[test]
fn a_gtd_order_rests_with_its_expiry() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    let market = check(
        EMPTY_MARKET,
        b,
        &[
            accepted(b),
            MarketEvent::Rested {
                order: OrderId(1),
                user: ALICE,
                side: Side::Buy,
                price: PriceTicks(100),
                qty: QtyLots(5),
                expiry: Some(TimestampMs(2_000)),
                post_only: false,
                stp: StpMode::ExpireMaker,
            },
        ],
    );
    assert_eq!(market.book().get(OrderId(1)).and_then(|o| o.expiry), Some(TimestampMs(2_000)));
}

#[test]
fn a_gtd_order_that_trades_in_part_rests_the_rest_with_its_expiry() {
    let s = sell(1, BOB, 100, 2);
    let b = buy(2, ALICE, 100, 5).gtd(2_000);
    check(&[s], b, &[accepted(b), traded(1, s, b, 100, 2), filled(s), rested(b, 3)]);
}

#[test]
fn a_gtd_order_is_still_live_just_before_its_expiry() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    check(&[b], at(1_999, MarketCommand::ExpireDue), &[]);
}

#[test]
fn a_gtd_order_expires_on_the_first_command_at_or_after_its_expiry_whatever_the_command() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    let gone = expired(b, 5, GoodTillDate);
    check(&[b], at(2_000, MarketCommand::ExpireDue), std::slice::from_ref(&gone));

    // Another user's order, on the other side, at a later time.
    let s = sell(2, BOB, 105, 1);
    let market = check(&[b], at(2_500, s), &[gone.clone(), accepted(s), rested(s, 1)]);
    assert!(market.book().get(OrderId(1)).is_none());

    // A command about something else entirely.
    check(&[b], at(2_000, cancel(9, BOB)), &[gone.clone(), rejected(9, RejectReason::UnknownOrder)]);
    check(&[b], at(2_000, MarketCommand::Halt), &[gone.clone(), MarketEvent::Halted]);
}

#[test]
fn due_gtd_orders_expire_earliest_expiry_first() {
    let later = buy(1, ALICE, 100, 5).gtd(3_000);
    let sooner = sell(2, BOB, 105, 2).gtd(2_000);
    let not_yet = buy(3, CAROL, 99, 1).gtd(9_000);
    let market = check(
        &[later, sooner, not_yet],
        at(3_000, MarketCommand::ExpireDue),
        &[expired(sooner, 2, GoodTillDate), expired(later, 5, GoodTillDate)],
    );
    assert_eq!(queue(&market, Side::Buy), vec![3]);
}

#[test]
fn an_expired_gtd_maker_is_never_traded_against() {
    let due = sell(1, BOB, 100, 5).gtd(2_000);
    let live = sell(2, CAROL, 101, 5);
    let b = buy(3, ALICE, 101, 3);
    check(
        &[due, live],
        at(2_000, b),
        &[expired(due, 5, GoodTillDate), accepted(b), traded(1, live, b, 101, 3), filled(b)],
    );
}

#[test]
fn a_fok_does_not_count_an_expired_gtd_maker() {
    let due = sell(1, BOB, 100, 5).gtd(2_000);
    let live = sell(2, CAROL, 101, 2);
    let b = buy(3, ALICE, 101, 5).fok();
    check(&[due, live], at(2_000, b), &[expired(due, 5, GoodTillDate), rejected(b, RejectReason::FokCannotFill)]);
}

#[test]
fn a_gtd_order_whose_expiry_is_not_after_now_is_rejected_as_already_expired() {
    for expiry in [NOW.0, NOW.0 - 1, 0] {
        let b = buy(1, ALICE, 100, 5).gtd(expiry);
        check(EMPTY_MARKET, b, &[rejected(b, RejectReason::AlreadyExpired)]);
    }
}

#[test]
fn a_due_gtd_order_cannot_be_amended_back_to_life() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    let market = check(
        &[b],
        at(2_000, amend(b, ALICE, 100, 3)),
        &[expired(b, 5, GoodTillDate), rejected(b, RejectReason::UnknownOrder)],
    );
    assert!(market.book().is_empty());
}

#[test]

fn cancelling_a_due_gtd_order_reports_only_its_expiry() {
    // The order expires before the command is decided (as an amend of it does), so the
    // cancel finds nothing to cancel. Today the market emits Expired{GoodTillDate} and then
    // Cancelled{User} for the same order: two terminal events, so a ledger releasing the
    // order's lock on each would release it twice.
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    check(&[b], at(2_000, cancel(b, ALICE)), &[expired(b, 5, GoodTillDate), rejected(b, RejectReason::UnknownOrder)]);
}

#[test]
fn an_amended_gtd_order_keeps_its_expiry() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    let market = check(&[b], amend(b, ALICE, 101, 5), &[amended(b, 101, 5, false), rested_at(b, 101, 5)]);
    assert_eq!(market.book().get(OrderId(1)).and_then(|o| o.expiry), Some(TimestampMs(2_000)));
}

// ---------------------------------------------------------------------------------------
// Post-only

#[test]
fn a_post_only_order_that_does_not_cross_rests() {
    let ask = sell(1, BOB, 101, 5);
    let b = buy(2, ALICE, 100, 5).post_only();
    let market = check(&[ask], b, &[accepted(b), rested(b, 5)]);
    assert!(market.book().get(OrderId(2)).is_some_and(|o| o.post_only));
}

#[test]
fn a_post_only_order_that_would_cross_is_rejected() {
    let ask = sell(1, BOB, 101, 5);
    let at_the_ask = buy(2, ALICE, 101, 5).post_only();
    check(&[ask], at_the_ask, &[rejected(at_the_ask, RejectReason::PostOnlyWouldCross)]);
    let through_the_ask = buy(2, ALICE, 120, 1).post_only();
    check(&[ask], through_the_ask, &[rejected(through_the_ask, RejectReason::PostOnlyWouldCross)]);
}

#[test]
fn a_post_only_order_rests_when_the_only_crossing_order_is_due_to_expire() {
    let due = sell(1, BOB, 100, 5).gtd(2_000);
    let b = buy(2, ALICE, 100, 5).post_only();
    check(&[due], at(2_000, b), &[expired(due, 5, GoodTillDate), accepted(b), rested(b, 5)]);
}

#[test]
fn post_only_needs_a_limit_order_that_may_rest() {
    for o in [
        buy(1, ALICE, 100, 5).ioc().post_only(),
        buy(1, ALICE, 100, 5).fok().post_only(),
        market_buy(1, ALICE, 5, Some(100)).post_only(),
        market_sell(1, ALICE, 5, None).post_only(),
    ] {
        check(EMPTY_MARKET, o, &[rejected(o, RejectReason::PostOnlyNeedsRestingLimit)]);
    }
}

#[test]
fn an_amend_of_a_post_only_order_that_would_cross_is_rejected() {
    let ask = sell(1, BOB, 101, 5);
    let b = buy(2, ALICE, 100, 5).post_only();
    let market = check(&[ask, b], amend(b, ALICE, 101, 5), &[rejected(b, RejectReason::PostOnlyWouldCross)]);
    assert_eq!(market.book().get(OrderId(2)).map(|o| o.price), Some(PriceTicks(100)));
}

// ---------------------------------------------------------------------------------------
// Self-trade prevention

#[test]
fn stp_expire_maker_cancels_the_own_resting_order_and_the_taker_trades_on_with_the_next() {
    let own = sell(1, ALICE, 100, 2);
    let other = sell(2, BOB, 100, 3);
    let b = buy(3, ALICE, 100, 4).stp(StpMode::ExpireMaker);
    let market = check(
        &[own, other],
        b,
        &[accepted(b), cancelled(own, 2, Stp), traded(1, other, b, 100, 3), filled(other), rested(b, 1)],
    );
    assert!(market.book().depth(Side::Sell, 10).is_empty());
    assert_eq!(queue(&market, Side::Buy), vec![3]);
}

#[test]
fn stp_expire_taker_cancels_the_incoming_remainder_and_keeps_the_own_resting_order() {
    let other = sell(1, BOB, 100, 2);
    let own = sell(2, ALICE, 100, 3);
    let b = buy(3, ALICE, 101, 5).stp(StpMode::ExpireTaker);
    let market =
        check(&[other, own], b, &[accepted(b), traded(1, other, b, 100, 2), filled(other), cancelled(b, 3, Stp)]);
    assert_eq!(queue(&market, Side::Sell), vec![2]);
    assert!(market.book().depth(Side::Buy, 10).is_empty());
}

#[test]
fn stp_expire_both_cancels_the_own_resting_order_and_the_whole_taker() {
    let own = sell(1, ALICE, 100, 3);
    let other = sell(2, BOB, 101, 3);
    let b = buy(3, ALICE, 101, 5).stp(StpMode::ExpireBoth);
    let market = check(&[own, other], b, &[accepted(b), cancelled(own, 3, Stp), cancelled(b, 5, Stp)]);
    assert_eq!(queue(&market, Side::Sell), vec![2]);
    assert!(market.book().depth(Side::Buy, 10).is_empty());
}

#[test]
fn stp_applies_to_a_market_order_too() {
    let own = buy(1, ALICE, 100, 3);
    let other = buy(2, BOB, 99, 3);
    let m = market_sell(3, ALICE, 4, None);
    check(
        &[own, other],
        m,
        &[
            accepted(m),
            cancelled(own, 3, Stp),
            traded(1, other, m, 99, 3),
            filled(other),
            expired(m, 1, MarketRemainder),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Cancel

#[test]
fn the_owner_cancels_a_resting_order() {
    let b = buy(1, ALICE, 100, 5);
    let market = check(&[b], cancel(b, ALICE), &[cancelled(b, 5, ByUser)]);
    assert!(market.book().is_empty());
}

#[test]
fn cancelling_a_partly_filled_order_reports_what_was_left() {
    let b = buy(1, ALICE, 100, 5);
    let s = sell(2, BOB, 100, 2);
    check(&[b, s], cancel(b, ALICE), &[cancelled(b, 3, ByUser)]);
}

#[test]
fn only_the_owner_may_cancel() {
    let b = buy(1, ALICE, 100, 5);
    check(&[b], cancel(b, BOB), &[rejected(b, RejectReason::NotOwner)]);
}

#[test]
fn cancelling_an_order_that_is_not_on_the_book_is_rejected() {
    check(EMPTY_MARKET, cancel(7, ALICE), &[rejected(7, RejectReason::UnknownOrder)]);
    // Filled orders leave the book.
    let s = sell(1, BOB, 100, 2);
    let b = buy(2, ALICE, 100, 2);
    check(&[s, b], cancel(s, BOB), &[rejected(s, RejectReason::UnknownOrder)]);
}

#[test]
fn a_halted_market_still_lets_owners_cancel() {
    let b = buy(1, ALICE, 100, 5);
    let market = check(&given![b, MarketCommand::Halt], cancel(b, ALICE), &[cancelled(b, 5, ByUser)]);
    assert_eq!(market.status(), MarketStatus::Halted);
    assert!(market.book().is_empty());
}

// ---------------------------------------------------------------------------------------
// Amend

#[test]
fn reducing_an_orders_size_keeps_its_place_in_the_queue() {
    let first = buy(1, ALICE, 100, 5);
    let second = buy(2, BOB, 100, 5);
    let market = check(&[first, second], amend(first, ALICE, 100, 3), &[amended(first, 100, 3, true)]);
    assert_eq!(queue(&market, Side::Buy), vec![1, 2]);
    assert_eq!(market.book().depth(Side::Buy, 1), vec![level(100, 8, 2)]);
}

#[test]
fn increasing_an_orders_size_sends_it_to_the_back_of_its_level() {
    let first = buy(1, ALICE, 100, 5);
    let second = buy(2, BOB, 100, 5);
    let market = check(
        &[first, second],
        amend(first, ALICE, 100, 8),
        &[amended(first, 100, 8, false), rested_at(first, 100, 8)],
    );
    assert_eq!(queue(&market, Side::Buy), vec![2, 1]);
    assert_eq!(market.book().depth(Side::Buy, 1), vec![level(100, 13, 2)]);
}

#[test]
fn changing_an_orders_price_sends_it_to_the_back_of_the_new_level() {
    let moving = buy(1, ALICE, 100, 5);
    let waiting = buy(2, BOB, 99, 5);
    let market = check(
        &[moving, waiting],
        amend(moving, ALICE, 99, 5),
        &[amended(moving, 99, 5, false), rested_at(moving, 99, 5)],
    );
    assert_eq!(queue(&market, Side::Buy), vec![2, 1]);
    assert_eq!(market.book().depth(Side::Buy, 10), vec![level(99, 10, 2)]);
}

#[test]
fn an_amend_that_crosses_trades_as_a_taker_and_rests_the_rest_at_the_new_price() {
    let ask = sell(1, BOB, 101, 2);
    let b = buy(2, ALICE, 100, 5);
    let market = check(
        &[ask, b],
        amend(b, ALICE, 101, 5),
        &[
            amended(b, 101, 5, false),
            MarketEvent::Traded(Trade {
                id: TradeId(1),
                maker_order: OrderId(1),
                maker_user: BOB,
                taker_order: OrderId(2),
                taker_user: ALICE,
                taker_side: Side::Buy,
                price: PriceTicks(101),
                qty: QtyLots(2),
                base_amount: Amount(2_000),
                quote_amount: Amount(2_020), // 101 * 2 * 10
                maker_fee: Amount(2),        // 2.02 rounded down
                taker_fee: Amount(4),        // 4.04 rounded down
            }),
            filled(ask),
            rested_at(b, 101, 3),
        ],
    );
    assert_eq!(market.book().depth(Side::Buy, 10), vec![level(101, 3, 1)]);
}

#[test]
fn an_amend_that_changes_nothing_is_rejected() {
    let b = buy(1, ALICE, 100, 5);
    check(&[b], amend(b, ALICE, 100, 5), &[rejected(b, RejectReason::AmendNoChange)]);
}

#[test]
fn an_amend_to_zero_is_rejected() {
    let b = buy(1, ALICE, 100, 5);
    check(&[b], amend(b, ALICE, 100, 0), &[rejected(b, RejectReason::AmendToZero)]);
}

#[test]
fn an_amend_must_stay_on_the_grid() {
    let b = buy(1, ALICE, 100, 5);
    check(&[b], amend(b, ALICE, 0, 5), &[rejected(b, RejectReason::OffGridPrice)]);
    check(&[b], amend(b, ALICE, 100, 1_000_001), &[rejected(b, RejectReason::QtyAboveMax)]);
    check(&[b], amend(b, ALICE, 49, 1), &[rejected(b, RejectReason::BelowMinNotional)]);
}

#[test]
fn only_the_owner_may_amend_an_order_on_the_book() {
    let b = buy(1, ALICE, 100, 5);
    check(&[b], amend(b, BOB, 100, 3), &[rejected(b, RejectReason::NotOwner)]);
    check(&[b], amend(8, ALICE, 100, 3), &[rejected(8, RejectReason::UnknownOrder)]);
}

#[test]
fn a_halted_market_rejects_amends() {
    let b = buy(1, ALICE, 100, 5);
    check(&given![b, MarketCommand::Halt], amend(b, ALICE, 100, 3), &[rejected(b, RejectReason::MarketHalted)]);
}

#[test]
fn an_amend_into_its_own_order_follows_the_orders_stp_mode() {
    let own = sell(1, ALICE, 101, 2);
    let b = buy(2, ALICE, 100, 5).stp(StpMode::ExpireTaker);
    let market = check(&[own, b], amend(b, ALICE, 101, 5), &[amended(b, 101, 5, false), cancelled(b, 5, Stp)]);
    assert_eq!(queue(&market, Side::Sell), vec![1]);
    assert!(market.book().depth(Side::Buy, 10).is_empty());
}

// ---------------------------------------------------------------------------------------
// Halt and resume

#[test]
fn halting_an_open_market_emits_halted() {
    let market = check(EMPTY_MARKET, MarketCommand::Halt, &[MarketEvent::Halted]);
    assert_eq!(market.status(), MarketStatus::Halted);
}

#[test]
fn a_halted_market_rejects_new_orders() {
    let b = buy(1, ALICE, 100, 5);
    check(&[MarketCommand::Halt], b, &[rejected(b, RejectReason::MarketHalted)]);
}

#[test]
fn a_resumed_market_accepts_orders_again() {
    let market = check(&[MarketCommand::Halt], MarketCommand::Resume, &[MarketEvent::Resumed]);
    assert_eq!(market.status(), MarketStatus::Open);
    let b = buy(1, ALICE, 100, 5);
    check(&[MarketCommand::Halt, MarketCommand::Resume], b, &[accepted(b), rested(b, 5)]);
}

#[test]
fn halting_a_halted_market_or_resuming_an_open_one_emits_nothing() {
    let market = check(&[MarketCommand::Halt], MarketCommand::Halt, &[]);
    assert_eq!(market.status(), MarketStatus::Halted);
    let market = check(EMPTY_MARKET, MarketCommand::Resume, &[]);
    assert_eq!(market.status(), MarketStatus::Open);
}

#[test]
fn a_halted_market_still_expires_due_gtd_orders() {
    let b = buy(1, ALICE, 100, 5).gtd(2_000);
    check(&given![b, MarketCommand::Halt], at(2_000, MarketCommand::ExpireDue), &[expired(b, 5, GoodTillDate)]);
}

// ---------------------------------------------------------------------------------------
// Rejections: every reason the market can give, each leaving the market as it was

/// A book with both sides, several levels and a past trade, so that
/// "unchanged" covers depth on both sides and the next trade id (`check` compares them).
fn busy_book() -> Vec<Given> {
    given![
        buy(1, ALICE, 100, 5),
        buy(2, BOB, 99, 3),
        sell(3, CAROL, 102, 4),
        sell(4, DAVE, 103, 2),
        sell(5, BOB, 100, 1), // trades with order 1: trade id 1, order 1 keeps 4 lots
    ]
    .to_vec()
}

/// Ties every variant to a slot, so a new variant does not compile until it has a case.
fn slot(reason: RejectReason) -> usize {
    match reason {
        RejectReason::PostOnlyWouldCross => 0,
        RejectReason::FokCannotFill => 1,
        RejectReason::OffGridPrice => 2,
        RejectReason::OffGridSize => 3,
        RejectReason::QtyBelowMin => 4,
        RejectReason::QtyAboveMax => 5,
        RejectReason::BelowMinNotional => 6,
        RejectReason::NotionalOverflow => 7,
        RejectReason::MarketHalted => 8,
        RejectReason::UnknownOrder => 9,
        RejectReason::NotOwner => 10,
        RejectReason::DuplicateOrderId => 11,
        RejectReason::AlreadyExpired => 12,
        RejectReason::PostOnlyNeedsRestingLimit => 13,
        RejectReason::AmendToZero => 14,
        RejectReason::AmendNoChange => 15,
    }
}

#[test]
fn every_reject_reason_the_market_can_give_leaves_the_market_exactly_as_it_was() {
    use RejectReason::*;
    let min_qty_5 = MarketSpec { min_qty: QtyLots(5), ..spec() };
    let unbounded_qty = MarketSpec { max_qty: QtyLots(u64::MAX), ..spec() };
    let halted = {
        let mut g = busy_book();
        g.push(MarketCommand::Halt.into());
        g
    };
    let new = 10;
    let cases: Vec<(RejectReason, MarketSpec, Vec<Given>, MarketCommand, u64)> = vec![
        (PostOnlyWouldCross, spec(), busy_book(), place(buy(new, ALICE, 102, 1).post_only()), new),
        (FokCannotFill, spec(), busy_book(), place(buy(new, ALICE, 103, 7).fok()), new),
        (OffGridPrice, spec(), busy_book(), place(buy(new, ALICE, 0, 1)), new),
        (OffGridPrice, spec(), busy_book(), place(market_sell(new, ALICE, 1, Some(0))), new),
        (OffGridSize, spec(), busy_book(), place(buy(new, ALICE, 100, 0)), new),
        (QtyBelowMin, min_qty_5.clone(), given![buy(1, ALICE, 100, 5)].to_vec(), place(sell(new, BOB, 101, 4)), new),
        (QtyAboveMax, spec(), busy_book(), place(buy(new, ALICE, 100, 1_000_001)), new),
        (BelowMinNotional, spec(), busy_book(), place(buy(new, ALICE, 49, 1)), new),
        (
            NotionalOverflow,
            unbounded_qty,
            given![buy(1, ALICE, 100, 5)].to_vec(),
            place(sell(new, BOB, u64::MAX, u64::MAX)),
            new,
        ),
        (MarketHalted, spec(), halted, place(buy(new, ALICE, 100, 1)), new),
        (UnknownOrder, spec(), busy_book(), cancel(99, ALICE), 99),
        (UnknownOrder, spec(), busy_book(), amend(99, ALICE, 100, 1), 99),
        (NotOwner, spec(), busy_book(), cancel(1, BOB), 1),
        (NotOwner, spec(), busy_book(), amend(3, ALICE, 102, 1), 3),
        (DuplicateOrderId, spec(), busy_book(), place(buy(1, ALICE, 98, 1)), 1),
        (AlreadyExpired, spec(), busy_book(), place(buy(new, ALICE, 98, 1).gtd(NOW.0)), new),
        (PostOnlyNeedsRestingLimit, spec(), busy_book(), place(buy(new, ALICE, 98, 1).ioc().post_only()), new),
        (AmendToZero, spec(), busy_book(), amend(1, ALICE, 100, 0), 1),
        (AmendNoChange, spec(), busy_book(), amend(1, ALICE, 100, 4), 1),
    ];
    let mut covered = [false; 16];
    for (reason, spec, given, when, order) in cases {
        // `check_on` asserts that the only event is the rejection and that status, depth on
        // both sides, every resting order and the next trade id are as before.
        check_on(&spec, &given[..], when, &[rejected(order, reason)]);
        covered[slot(reason)] = true;
    }
    assert!(covered.iter().all(|&c| c), "reasons without a case: {covered:?}");
}

#[test]
fn the_busy_book_is_what_the_rejection_cases_assume() {
    let (market, _) = arrange(&spec(), &busy_book());
    assert_eq!(market.next_trade_id(), TradeId(2));
    assert_eq!(market.book().depth(Side::Buy, 10), vec![level(100, 4, 1), level(99, 3, 1)]);
    assert_eq!(market.book().depth(Side::Sell, 10), vec![level(102, 4, 1), level(103, 2, 1)]);
}

// ---------------------------------------------------------------------------------------
// Depth

#[test]
fn depth_aggregates_quantity_and_order_count_per_level_best_first() {
    let (market, _) = arrange(
        &spec(),
        &[
            buy(1, ALICE, 100, 5),
            buy(2, BOB, 100, 3),
            buy(3, CAROL, 99, 2),
            buy(4, DAVE, 98, 1),
            buy(5, ALICE, 97, 4),
            sell(6, BOB, 101, 1),
            sell(7, CAROL, 103, 7),
            sell(8, DAVE, 101, 1),
        ],
    );
    assert_eq!(market.book().depth(Side::Buy, 3), vec![level(100, 8, 2), level(99, 2, 1), level(98, 1, 1)]);
    assert_eq!(market.book().depth(Side::Sell, 5), vec![level(101, 2, 2), level(103, 7, 1)]);
    assert!(market.book().depth(Side::Buy, 0).is_empty());

    // A partial fill shrinks the level; a fill of its last order removes it.
    let s = sell(9, CAROL, 100, 6);
    let market = check(
        &[buy(1, ALICE, 100, 5), buy(2, BOB, 100, 3), buy(3, CAROL, 99, 2), buy(4, DAVE, 98, 1), buy(5, ALICE, 97, 4)],
        s,
        &[
            accepted(s),
            traded(1, buy(1, ALICE, 100, 5), s, 100, 5),
            filled(1),
            traded(2, buy(2, BOB, 100, 3), s, 100, 1),
            filled(s),
        ],
    );
    assert_eq!(market.book().depth(Side::Buy, 2), vec![level(100, 2, 1), level(99, 2, 1)]);
}

// ---------------------------------------------------------------------------------------
// Determinism and replay

/// Runs a script command by command, checking after each what must always hold.
fn run(script: &[Timed]) -> (Market, Vec<MarketEvent>) {
    let mut market = Market::new(spec());
    let mut log = vec![];
    for step in script {
        let start = log.len();
        market.execute(step.command, step.now, &mut log);
        assert_invariants(&market, &log[start..]);
        if let MarketCommand::Place(order) = step.command {
            assert_every_lot_accounted_for(order, &log[start..]);
        }
    }
    (market, log)
}

/// An accepted order's lots all end somewhere, within its price bound: traded, rested,
/// expired or cancelled, and a fill-or-kill order only ever fills.
fn assert_every_lot_accounted_for(order: hob::domain::NewOrder, events: &[MarketEvent]) {
    if !events.contains(&accepted(order)) {
        return;
    }
    let mut lots = 0;
    for event in events {
        match *event {
            MarketEvent::Traded(t) if t.taker_order == order.id => {
                lots += t.qty.0;
                if let Some(limit) = order.order_type.price_bound() {
                    assert!(order.side.crosses(limit, t.price), "{t:?} beyond the limit of {order:?}");
                }
            }
            MarketEvent::Rested { order: id, qty, .. } if id == order.id => lots += qty.0,
            MarketEvent::Expired { order: id, remaining, .. } | MarketEvent::Cancelled { order: id, remaining, .. }
                if id == order.id =>
            {
                lots += remaining.0
            }
            _ => {}
        }
    }
    assert_eq!(lots, order.qty.0, "lots of {order:?} in {events:?}");
    if order.tif == hob::domain::TimeInForce::Fok {
        assert_eq!(events.last(), Some(&filled(order)), "{events:?}");
    }
}

/// Filled, Expired and Cancelled each end an order; no command may end one twice.
fn orders_ended_twice(events: &[MarketEvent]) -> Vec<OrderId> {
    let mut ended = std::collections::BTreeMap::<OrderId, usize>::new();
    for event in events {
        if let MarketEvent::Filled { order }
        | MarketEvent::Expired { order, .. }
        | MarketEvent::Cancelled { order, .. } = event
        {
            *ended.entry(*order).or_default() += 1;
        }
    }
    ended.into_iter().filter(|&(_, n)| n > 1).map(|(order, _)| order).collect()
}

#[test]

fn no_command_ends_an_order_twice() {
    for seed in 0..20 {
        let mut market = Market::new(spec());
        for step in script(seed, 2_000) {
            let mut events = vec![];
            market.execute(step.command, step.now, &mut events);
            assert_eq!(orders_ended_twice(&events), vec![], "seed {seed}: {step:?} gave {events:?}");
        }
    }
}

#[test]
fn the_same_commands_always_give_the_same_events() {
    let script = script(7, 3_000);
    let (first_market, first) = run(&script);
    let (second_market, second) = run(&script);
    assert_eq!(first, second);
    assert_eq!(snapshot(&first_market), snapshot(&second_market));
    // The script exercises what it is meant to.
    let count = |f: fn(&MarketEvent) -> bool| first.iter().filter(|e| f(e)).count();
    assert!(count(|e| matches!(e, MarketEvent::Traded(_))) > 100);
    assert!(count(|e| matches!(e, MarketEvent::Expired { reason: GoodTillDate, .. })) > 10);
    assert!(count(|e| matches!(e, MarketEvent::Cancelled { reason: Stp, .. })) > 10);
    assert!(count(|e| matches!(e, MarketEvent::Amended { keeps_priority: true, .. })) > 10);
    assert!(count(|e| matches!(e, MarketEvent::Amended { keeps_priority: false, .. })) > 10);
    assert!(count(|e| matches!(e, MarketEvent::Rejected { .. })) > 10);
    assert!(count(|e| matches!(e, MarketEvent::Cancelled { reason: ByUser, .. })) > 10);
    assert!(!first_market.book().is_empty());
}

#[test]
fn replaying_the_events_into_a_fresh_market_rebuilds_the_same_book() {
    for seed in [1, 2, 3] {
        let (live, log) = run(&script(seed, 2_000));
        let mut replayed = Market::new(spec());
        for event in &log {
            replayed.apply(event).unwrap_or_else(|e| panic!("seed {seed}: replaying {event:?}: {e}"));
        }
        // Depth, every resting order in matching order, status and next trade id.
        assert_eq!(snapshot(&replayed), snapshot(&live), "seed {seed}");
    }
}

#[test]
fn trade_ids_are_gapless_from_one() {
    let (market, log) = run(&script(11, 2_000));
    let ids: Vec<u64> = log
        .iter()
        .filter_map(|e| match e {
            MarketEvent::Traded(t) => Some(t.id.0),
            _ => None,
        })
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(market.next_trade_id(), TradeId(ids.len() as u64 + 1));
}

#[test]
fn given_as_events_and_given_as_commands_start_from_the_same_market() {
    let s = sell(1, BOB, 101, 3);
    let b = buy(2, ALICE, 101, 1);
    let (_, log) = arrange(&spec(), &[s, b]);
    let taker = buy(3, CAROL, 101, 2);
    let then = [accepted(taker), traded(2, s, taker, 101, 2), filled(s), filled(taker)];
    check(&[s, b], taker, &then);
    check(&log[..], taker, &then);
}
