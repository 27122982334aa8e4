//! hob's order book behind the same [`BenchBook`] trait as the peers: every op is a real
//! `Market::execute` (decide + apply, events produced and consumed), exactly as the market
//! actor runs it.

use hob::domain::{
    Amount, AssetId, Bps, Market, MarketCommand, MarketEvent, MarketId, MarketSpec, NewOrder, OrderId, OrderType,
    PriceTicks, QtyLots, Side, StpMode, TimeInForce, TimestampMs, UserId,
};

use super::peers::BenchBook;
use super::workload::{BenchSide, Op};

pub struct HobBook {
    market: Market,
    events: Vec<MarketEvent>,
    /// Workload id -> what an API call about it carries: hob's order id and the owner. One
    /// dense vector (like the peers' id maps), so a cancel or move reads one cache line.
    known: Vec<Known>,
    traded: u64,
}

/// A workload id as hob knows it; 8 bytes, as workload ids and users fit `u32`.
#[derive(Clone, Copy, Default)]
struct Known {
    /// A `Move` keeps hob's order id (hob amends in place); 0 when it is the workload id.
    order: u32,
    owner: u32,
}

#[cold]
#[inline(never)]
fn moved(order: u32) -> u64 {
    u64::from(order)
}

fn narrow(n: u64) -> u32 {
    u32::try_from(n).expect("workload ids and users fit u32")
}

impl HobBook {
    pub fn new() -> HobBook {
        let spec = MarketSpec {
            id: MarketId::new("BENCH").expect("valid literal"),
            base: AssetId::new("BASE").expect("valid literal"),
            quote: AssetId::new("QUOTE").expect("valid literal"),
            base_lot: Amount(1),
            quote_tick: Amount(1),
            min_qty: QtyLots(1),
            max_qty: QtyLots(u64::MAX),
            min_notional: Amount(0),
            maker_fee: Bps(10),
            taker_fee: Bps(20),
        };
        HobBook { market: Market::new(spec), events: Vec::with_capacity(64), known: Vec::new(), traded: 0 }
    }

    /// hob's order id and the owner of workload id `id`.
    fn lookup(&self, id: u64) -> (OrderId, u64) {
        let known = self.known.get(id as usize).copied().unwrap_or_default();
        // A branch rather than a select: when the id is hob's own (always, but for moved
        // orders) the predicted branch lets the book's lookup start before this entry
        // arrives from memory, as it would for a client that simply sends its order id.
        let order = if known.order == 0 { id } else { moved(known.order) };
        (OrderId(order), u64::from(known.owner))
    }

    fn remember(&mut self, id: u64, known: Known) {
        let i = id as usize;
        if i >= self.known.len() {
            self.known.resize((i + 1).max(self.known.len() * 2), Known::default());
        }
        self.known[i] = known;
    }

    fn run(&mut self, command: MarketCommand) {
        self.events.clear();
        self.market.execute(command, TimestampMs(0), &mut self.events);
        for e in &self.events {
            if let MarketEvent::Traded(t) = e {
                self.traded += t.qty.0;
            }
        }
    }
}

fn user(u: u64) -> UserId {
    let mut bytes = [0u8; 20];
    bytes[12..].copy_from_slice(&u.to_be_bytes());
    UserId(bytes)
}

fn side(s: BenchSide) -> Side {
    match s {
        BenchSide::Buy => Side::Buy,
        BenchSide::Sell => Side::Sell,
    }
}

fn place(id: u64, u: u64, s: BenchSide, price: u64, qty: u64, tif: TimeInForce) -> MarketCommand {
    MarketCommand::Place(NewOrder {
        id: OrderId(id),
        user: user(u),
        side: side(s),
        order_type: OrderType::Limit { price: PriceTicks(price) },
        qty: QtyLots(qty),
        tif,
        post_only: false,
        stp: StpMode::ExpireMaker,
    })
}

impl BenchBook for HobBook {
    fn name(&self) -> &'static str {
        "hob"
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Limit { id, user: u, side: s, price, qty } => {
                self.remember(id, Known { order: 0, owner: narrow(u) });
                self.run(place(id, u, s, price, qty, TimeInForce::Gtc))
            }
            Op::Ioc { id, user: u, side: s, price, qty } => self.run(place(id, u, s, price, qty, TimeInForce::Ioc)),
            Op::Cancel { id } => {
                let (order, owner) = self.lookup(id);
                self.run(MarketCommand::Cancel { order, user: user(owner) });
            }
            Op::Move { id, new_id, price, qty } => {
                let (order, owner) = self.lookup(id);
                let amend =
                    MarketCommand::Amend { order, user: user(owner), price: PriceTicks(price), qty: QtyLots(qty) };
                self.run(amend);
                self.remember(new_id, Known { order: narrow(order.0), owner: narrow(owner) });
            }
        }
    }

    fn resting_orders(&self) -> usize {
        self.market.book().len()
    }

    fn traded_volume(&self) -> u64 {
        self.traded
    }
}
