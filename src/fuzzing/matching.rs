//! Command sequences through the matching core. After every command: the book is not
//! crossed, no order trades more than it has left, no user trades with themself, and an
//! order that filled is gone. At the end the events alone rebuild the same market, and its
//! snapshot restores it.

use std::collections::HashMap;

use super::input::Input;
use crate::domain::{
    Amount, AssetId, Bps, Market, MarketCommand, MarketEvent, MarketId, MarketSpec, NewOrder, OrderId, OrderType,
    PriceTicks, QtyLots, Side, StpMode, TimeInForce, TimestampMs, UserId,
};
use crate::events::market_snapshot::{decode_market_snapshot, encode_market_snapshot, market_state_hash};

/// Commands in one input, at most: long enough for deep books, short enough to stay fast.
const MAX_COMMANDS: usize = 512;
const USERS: u8 = 4;
/// A narrow band of prices, so that most orders cross.
const LOW_TICKS: u64 = 95;
const BAND_TICKS: u64 = 11;

/// The market every target trades on.
pub(crate) fn fuzz_spec() -> Option<MarketSpec> {
    Some(MarketSpec {
        id: MarketId::new("FUZZ-USD").ok()?,
        base: AssetId::new("FUZZ").ok()?,
        quote: AssetId::new("USD").ok()?,
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000),
        min_notional: Amount(100),
        maker_fee: Bps(10),
        taker_fee: Bps(25),
    })
}

fn user(n: u8) -> UserId {
    UserId([n % USERS + 1; 20])
}

fn command(input: &mut Input<'_>, next_order: &mut u64, now: TimestampMs) -> MarketCommand {
    let known = |input: &mut Input<'_>, next: u64| OrderId(1 + input.below(next.max(1) + 2));
    match input.u8() % 16 {
        0..=9 => {
            let id = OrderId(*next_order);
            *next_order += 1;
            let side = if input.u8().is_multiple_of(2) { Side::Buy } else { Side::Sell };
            let price = PriceTicks(LOW_TICKS + input.below(BAND_TICKS));
            let order_type = match input.u8() % 8 {
                0 => OrderType::Market { worst_price: Some(price) },
                1 if side == Side::Sell => OrderType::Market { worst_price: None },
                _ => OrderType::Limit { price },
            };
            let tif = match input.u8() % 8 {
                0 => TimeInForce::Ioc,
                1 => TimeInForce::Fok,
                2 => TimeInForce::Gtd(TimestampMs(now.0 + input.below(50))),
                _ => TimeInForce::Gtc,
            };
            let stp = match input.u8() % 3 {
                0 => StpMode::ExpireMaker,
                1 => StpMode::ExpireTaker,
                _ => StpMode::ExpireBoth,
            };
            MarketCommand::Place(NewOrder {
                id,
                user: user(input.u8()),
                side,
                order_type,
                qty: QtyLots(input.below(25)),
                tif,
                post_only: input.u8().is_multiple_of(5),
                stp,
            })
        }
        10 | 11 => MarketCommand::Cancel { order: known(input, *next_order), user: user(input.u8()) },
        12 | 13 => MarketCommand::Amend {
            order: known(input, *next_order),
            user: user(input.u8()),
            price: PriceTicks(LOW_TICKS + input.below(BAND_TICKS)),
            qty: QtyLots(input.below(25)),
        },
        14 => MarketCommand::ExpireDue,
        _ if input.u8().is_multiple_of(2) => MarketCommand::Halt,
        _ => MarketCommand::Resume,
    }
}

/// What is left of each live order, by the events alone.
#[derive(Default)]
struct Remaining(HashMap<OrderId, u64>);

impl Remaining {
    fn follow(&mut self, market: &Market, event: &MarketEvent) {
        match event {
            MarketEvent::Accepted(order) => {
                self.0.insert(order.id, order.qty.0);
            }
            MarketEvent::Amended { order, qty, .. } => {
                self.0.insert(*order, qty.0);
            }
            MarketEvent::Traded(trade) => {
                assert!(trade.qty.0 > 0, "trade {:?} has a quantity", trade.id);
                assert_ne!(trade.maker_user, trade.taker_user, "trade {:?} is a self-trade", trade.id);
                for order in [trade.maker_order, trade.taker_order] {
                    let left = self.0.entry(order).or_insert(0);
                    assert!(*left >= trade.qty.0, "order {order:?} overfilled: {left} left, traded {}", trade.qty.0);
                    *left -= trade.qty.0;
                }
            }
            MarketEvent::Filled { order } => {
                assert_eq!(self.0.remove(order), Some(0), "order {order:?} filled with quantity left");
                assert!(!market.book().contains(*order), "filled order {order:?} still rests");
            }
            _ => {}
        }
    }
}

pub fn matching_sequence(data: &[u8]) {
    let Some(spec) = fuzz_spec() else { return };
    let mut input = Input::new(data);
    let mut market = Market::new(spec.clone());
    let mut every_event = Vec::new();
    let mut remaining = Remaining::default();
    let mut next_order = 1;
    let mut now = TimestampMs(1_000);
    for _ in 0..MAX_COMMANDS {
        if input.is_empty() {
            break;
        }
        now = TimestampMs(now.0 + input.below(20));
        let command = command(&mut input, &mut next_order, now);
        let mut events = Vec::new();
        market.execute(command, now, &mut events);
        assert!(!market.book().is_crossed(), "the book crossed after {command:?}: {events:?}");
        for event in &events {
            remaining.follow(&market, event);
        }
        every_event.extend(events);
    }

    let mut replayed = Market::new(spec.clone());
    for (i, event) in every_event.iter().enumerate() {
        if let Err(e) = replayed.apply(event) {
            panic!("event {i} {event:?} does not apply on replay: {e}");
        }
    }
    assert_eq!(market_state_hash(&replayed), market_state_hash(&market), "the events alone rebuild the market");
    let restored = decode_market_snapshot(spec, &encode_market_snapshot(&market));
    let restored_hash = restored.as_ref().map(market_state_hash).ok();
    assert_eq!(restored_hash, Some(market_state_hash(&market)), "the snapshot restores the market");
}
