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
    /// A `Move` keeps hob's order id (hob amends in place); workload id -> hob id.
    alias: Vec<u64>,
    /// Workload id -> its user, as an authenticated API call would carry it.
    owners: Vec<u64>,
    traded: u64,
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
        HobBook {
            market: Market::new(spec),
            events: Vec::with_capacity(64),
            alias: Vec::new(),
            owners: Vec::new(),
            traded: 0,
        }
    }

    fn hob_id(&self, id: u64) -> OrderId {
        OrderId(self.alias.get(id as usize).copied().filter(|&a| a != 0).unwrap_or(id))
    }

    fn remember(&mut self, id: u64, owner: u64) {
        let i = id as usize;
        if i >= self.owners.len() {
            self.owners.resize((i + 1).max(self.owners.len() * 2), 0);
        }
        self.owners[i] = owner;
    }

    fn owner(&self, id: u64) -> UserId {
        user(self.owners.get(id as usize).copied().unwrap_or(0))
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
                self.remember(id, u);
                self.run(place(id, u, s, price, qty, TimeInForce::Gtc))
            }
            Op::Ioc { id, user: u, side: s, price, qty } => self.run(place(id, u, s, price, qty, TimeInForce::Ioc)),
            Op::Cancel { id } => {
                let (order, owner) = (self.hob_id(id), self.owner(id));
                self.run(MarketCommand::Cancel { order, user: owner });
            }
            Op::Move { id, new_id, price, qty } => {
                let (order, owner) = (self.hob_id(id), self.owner(id));
                self.run(MarketCommand::Amend { order, user: owner, price: PriceTicks(price), qty: QtyLots(qty) });
                self.remember(new_id, self.owners.get(id as usize).copied().unwrap_or(0));
                let i = new_id as usize;
                if i >= self.alias.len() {
                    self.alias.resize((i + 1).max(self.alias.len() * 2), 0);
                }
                self.alias[i] = order.0;
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
