//! Deterministic, seeded order-flow generator shared by the hob benchmarks
//! and the peer adapters (`peers.rs`).
//!
//! No dependencies: randomness comes from a hand-written splitmix64, so a
//! given `(seed, n_ops)` yields exactly the same `Workload` on every machine
//! and every run.
//!
//! The generator drives an internal *reference book* ([`RefBook`]): a plain
//! price-time-priority matcher without self-trade prevention. Because the
//! generator knows exactly which orders rest after every step, cancels and
//! moves target orders that are really live (in a peer with the same
//! semantics). A book whose semantics differ (e.g. with self-trade
//! prevention) will see some cancels/moves of dead ids; adapters must
//! tolerate those. `RefBook` is public so benches/tests can replay a
//! workload through it and compare resting counts and traded volume.
//!
//! Price model: integer ticks around a fixed [`MID_PRICE`]. Passive bids
//! are placed 0..[`HALF_LEVELS`] ticks below the mid, passive asks above it
//! (triangular, denser near the mid), never crossing the book, so the price
//! range stays bounded. Aggressive orders are priced 0..=3 ticks through the
//! best opposite price and always trade if that side has liquidity; a GTC
//! remainder rests on the far side of the mid until the next aggressive
//! order on the other side takes it. Users are `1..=N_USERS`, quantities
//! `1..=MAX_QTY` lots, ids are
//! unique, increasing, starting at 1 (prefill first, then ops).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Mid price (ticks): passive bids rest at or below it, passive asks above.
pub const MID_PRICE: u64 = 100_000;
/// Passive orders land 0..HALF_LEVELS ticks away from the mid on each side,
/// triangular (denser near the mid). With ~1,000 resting orders (mix a)
/// this gives ~750 occupied price levels on average (measured: 744).
pub const HALF_LEVELS: u64 = 1_200;
/// Number of distinct users (user ids are `1..=N_USERS`).
pub const N_USERS: u64 = 100;
/// Quantities are drawn uniformly from `1..=MAX_QTY` lots.
pub const MAX_QTY: u64 = 100;
/// Resting-order population the exchange-core mix is steered towards.
pub const TARGET_RESTING: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BenchSide {
    Buy,
    Sell,
}

impl BenchSide {
    #[inline]
    pub fn opposite(self) -> Self {
        match self {
            BenchSide::Buy => BenchSide::Sell,
            BenchSide::Sell => BenchSide::Buy,
        }
    }
}

/// One benchmark operation.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// GTC limit order; may cross and trade, the remainder rests.
    Limit { id: u64, user: u64, side: BenchSide, price: u64, qty: u64 },
    /// Immediate-or-cancel limit order; never rests.
    Ioc { id: u64, user: u64, side: BenchSide, price: u64, qty: u64 },
    /// Cancel a resting order. The id may already be filled/cancelled:
    /// that is a no-op.
    Cancel { id: u64 },
    /// Cancel `id` and place a new GTC limit `new_id` for the same side and
    /// user at `price` for `qty` (new time priority; may cross and trade).
    /// If `id` is no longer resting the whole move is a no-op (nothing is
    /// placed), like a rejected cancel-replace. The generator always picks
    /// a `price` different from the order's current price.
    Move { id: u64, new_id: u64, price: u64, qty: u64 },
}

/// A generated workload: `prefill` builds the initial book (not meant to
/// be timed), `ops` is the measured stream.
#[derive(Clone, Debug)]
pub struct Workload {
    pub prefill: Vec<Op>,
    pub ops: Vec<Op>,
}

// ---------------------------------------------------------------------------
// RNG
// ---------------------------------------------------------------------------

/// splitmix64 (Steele, Lea, Flood 2014). Tiny, fast, good enough here.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; negligible bias for small `n`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

// ---------------------------------------------------------------------------
// Reference book
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct RefOrder {
    side: BenchSide,
    price: u64,
    qty: u64,
    user: u64,
    /// Position in `RefBook::live`.
    live_idx: usize,
}

#[derive(Clone, Debug, Default)]
struct RefLevel {
    /// Number of live orders at this level (the queue may hold stale ids).
    count: usize,
    /// FIFO of ids; cancelled ids are removed lazily.
    queue: VecDeque<u64>,
}

/// Simple price-time-priority book used to generate and to cross-check
/// workloads. Semantics: trades happen at the maker's price, no self-trade
/// prevention, IOC remainder is dropped, Cancel/Move of a dead id is a no-op.
#[derive(Clone, Debug, Default)]
pub struct RefBook {
    orders: HashMap<u64, RefOrder>,
    bids: BTreeMap<u64, RefLevel>,
    asks: BTreeMap<u64, RefLevel>,
    live: Vec<u64>,
    traded_qty: u64,
    trades: u64,
}

impl RefBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn resting_orders(&self) -> usize {
        self.orders.len()
    }

    /// Sum of traded quantity (each trade counted once).
    pub fn traded_volume(&self) -> u64 {
        self.traded_qty
    }

    /// Number of maker fills.
    pub fn trade_count(&self) -> u64 {
        self.trades
    }

    pub fn best_bid(&self) -> Option<u64> {
        self.bids.keys().next_back().copied()
    }

    pub fn best_ask(&self) -> Option<u64> {
        self.asks.keys().next().copied()
    }

    /// Number of non-empty (bid, ask) price levels.
    pub fn price_levels(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    pub fn is_live(&self, id: u64) -> bool {
        self.orders.contains_key(&id)
    }

    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Limit { id, user, side, price, qty } => {
                let left = self.take(side, price, qty);
                if left > 0 {
                    self.rest(id, user, side, price, left);
                }
            }
            Op::Ioc { side, price, qty, .. } => {
                self.take(side, price, qty);
            }
            Op::Cancel { id } => {
                self.remove(id);
            }
            Op::Move { id, new_id, price, qty } => {
                if let Some(o) = self.remove(id) {
                    let left = self.take(o.side, price, qty);
                    if left > 0 {
                        self.rest(new_id, o.user, o.side, price, left);
                    }
                }
            }
        }
    }

    /// Match an incoming order; returns the unfilled quantity.
    fn take(&mut self, side: BenchSide, limit: u64, mut qty: u64) -> u64 {
        while qty > 0 {
            let best = match side {
                BenchSide::Buy => self.asks.keys().next().copied().filter(|&p| p <= limit),
                BenchSide::Sell => self.bids.keys().next_back().copied().filter(|&p| p >= limit),
            };
            let Some(px) = best else { break };
            let levels = match side {
                BenchSide::Buy => &mut self.asks,
                BenchSide::Sell => &mut self.bids,
            };
            let level = levels.get_mut(&px).expect("level exists");
            while qty > 0 && level.count > 0 {
                let maker_id = *level.queue.front().expect("live order in queue");
                let Some(maker) = self.orders.get_mut(&maker_id) else {
                    level.queue.pop_front(); // stale (cancelled) entry
                    continue;
                };
                let q = qty.min(maker.qty);
                qty -= q;
                maker.qty -= q;
                self.traded_qty += q;
                self.trades += 1;
                if maker.qty == 0 {
                    level.queue.pop_front();
                    level.count -= 1;
                    let idx = maker.live_idx;
                    self.orders.remove(&maker_id);
                    Self::unlink_live(&mut self.live, &mut self.orders, idx);
                }
            }
            if level.count == 0 {
                levels.remove(&px);
            }
        }
        qty
    }

    fn rest(&mut self, id: u64, user: u64, side: BenchSide, price: u64, qty: u64) {
        let levels = match side {
            BenchSide::Buy => &mut self.bids,
            BenchSide::Sell => &mut self.asks,
        };
        let level = levels.entry(price).or_default();
        level.count += 1;
        level.queue.push_back(id);
        let live_idx = self.live.len();
        self.live.push(id);
        let prev = self.orders.insert(id, RefOrder { side, price, qty, user, live_idx });
        debug_assert!(prev.is_none(), "duplicate id {id}");
    }

    fn remove(&mut self, id: u64) -> Option<RefOrder> {
        let o = self.orders.remove(&id)?;
        Self::unlink_live(&mut self.live, &mut self.orders, o.live_idx);
        let levels = match o.side {
            BenchSide::Buy => &mut self.bids,
            BenchSide::Sell => &mut self.asks,
        };
        let level = levels.get_mut(&o.price).expect("level of live order");
        level.count -= 1;
        if level.count == 0 {
            levels.remove(&o.price);
        }
        Some(o)
    }

    fn unlink_live(live: &mut Vec<u64>, orders: &mut HashMap<u64, RefOrder>, idx: usize) {
        live.swap_remove(idx);
        if idx < live.len() {
            let moved = live[idx];
            if let Some(m) = orders.get_mut(&moved) {
                m.live_idx = idx;
            }
        }
    }

    fn random_live(&self, rng: &mut SplitMix64) -> Option<(u64, RefOrder)> {
        if self.live.is_empty() {
            return None;
        }
        let id = self.live[rng.below(self.live.len() as u64) as usize];
        Some((id, self.orders[&id]))
    }
}

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

struct Generator {
    rng: SplitMix64,
    book: RefBook,
    next_id: u64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Generator { rng: SplitMix64::new(seed), book: RefBook::new(), next_id: 1 }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn user(&mut self) -> u64 {
        1 + self.rng.below(N_USERS)
    }

    fn qty(&mut self) -> u64 {
        1 + self.rng.below(MAX_QTY)
    }

    fn side(&mut self) -> BenchSide {
        if self.rng.next_u64() & 1 == 0 {
            BenchSide::Buy
        } else {
            BenchSide::Sell
        }
    }

    /// Ticks away from the mid: min of two uniforms -> denser near the mid.
    fn passive_offset(&mut self) -> u64 {
        self.rng.below(HALF_LEVELS).min(self.rng.below(HALF_LEVELS))
    }

    /// A price that does not cross the current book: 0..HALF_LEVELS ticks
    /// below `MID_PRICE` (bids) / above `MID_PRICE + 1` (asks), pushed
    /// further out if a crossing remainder rests beyond the mid.
    fn passive_price(&mut self, side: BenchSide) -> u64 {
        let off = self.passive_offset();
        match side {
            BenchSide::Buy => {
                let top = self.book.best_ask().map_or(MID_PRICE, |a| a.saturating_sub(1).min(MID_PRICE));
                top.saturating_sub(off).max(1)
            }
            BenchSide::Sell => {
                let bottom = self.book.best_bid().map_or(MID_PRICE + 1, |b| (b + 1).max(MID_PRICE + 1));
                bottom + off
            }
        }
    }

    /// A price 0..=3 ticks through the best opposite price.
    fn aggressive_price(&mut self, side: BenchSide) -> u64 {
        let k = self.rng.below(4);
        match side {
            BenchSide::Buy => self.book.best_ask().unwrap_or(MID_PRICE + 1) + k,
            BenchSide::Sell => self.book.best_bid().unwrap_or(MID_PRICE).saturating_sub(k).max(1),
        }
    }

    fn emit(&mut self, op: Op, out: &mut Vec<Op>) {
        self.book.apply(&op);
        out.push(op);
    }

    fn passive_limit(&mut self, out: &mut Vec<Op>) {
        let side = self.side();
        let price = self.passive_price(side);
        let (id, user, qty) = (self.id(), self.user(), self.qty());
        self.emit(Op::Limit { id, user, side, price, qty }, out);
    }

    fn aggressive(&mut self, ioc: bool, out: &mut Vec<Op>) {
        let side = self.side();
        let price = self.aggressive_price(side);
        let (id, user, qty) = (self.id(), self.user(), self.qty());
        let op = if ioc { Op::Ioc { id, user, side, price, qty } } else { Op::Limit { id, user, side, price, qty } };
        self.emit(op, out);
    }

    fn cancel(&mut self, out: &mut Vec<Op>) {
        match self.book.random_live(&mut self.rng) {
            Some((id, _)) => self.emit(Op::Cancel { id }, out),
            None => self.passive_limit(out),
        }
    }

    fn move_order(&mut self, out: &mut Vec<Op>) {
        let Some((id, o)) = self.book.random_live(&mut self.rng) else {
            return self.passive_limit(out);
        };
        let mut price = self.passive_price(o.side);
        if price == o.price {
            price = match o.side {
                BenchSide::Buy if price > 1 => price - 1,
                _ => price + 1,
            };
        }
        let new_id = self.id();
        let qty = self.qty();
        self.emit(Op::Move { id, new_id, price, qty }, out);
    }

    fn prefill(&mut self, n: usize) -> Vec<Op> {
        let mut out = Vec::with_capacity(n);
        while self.book.resting_orders() < n {
            self.passive_limit(&mut out);
        }
        out
    }
}

/// Operation mix (a), modelled on exchange-core's single-symbol perf test:
/// 9% GTC limit (1 in 5 of them crossing), 3% IOC (crossing), 6% cancel,
/// 82% move, around ~[`TARGET_RESTING`] resting orders on ~750 occupied
/// price levels.
///
/// The population is steered with a small feedback rule: when the book is
/// below `TARGET_RESTING - 50` a cancel is turned into a passive limit, when
/// above `TARGET_RESTING + 50` a passive limit is turned into a cancel. The
/// realised mix therefore differs from the nominal one by a couple of
/// percent (fills drain the book faster than 9% - 6% refills it).
///
/// Returns only the measured ops; they assume the prefill of
/// [`exchange_core`] (same seed) has been applied first.
pub fn exchange_core_mix(seed: u64, n_ops: usize) -> Vec<Op> {
    exchange_core(seed, n_ops).ops
}

/// Mix (a) with its prefill (`TARGET_RESTING` passive orders).
pub fn exchange_core(seed: u64, n_ops: usize) -> Workload {
    let mut g = Generator::new(seed ^ 0xEC0E_0000_0000_0001);
    let prefill = g.prefill(TARGET_RESTING);
    let mut ops = Vec::with_capacity(n_ops);
    let lo = TARGET_RESTING - 50;
    let hi = TARGET_RESTING + 50;
    for _ in 0..n_ops {
        let r = g.rng.below(100);
        let live = g.book.resting_orders();
        if r < 9 {
            if g.rng.below(5) == 0 {
                g.aggressive(false, &mut ops);
            } else if live > hi {
                g.cancel(&mut ops);
            } else {
                g.passive_limit(&mut ops);
            }
        } else if r < 12 {
            g.aggressive(true, &mut ops);
        } else if r < 18 {
            if live < lo {
                g.passive_limit(&mut ops);
            } else {
                g.cancel(&mut ops);
            }
        } else {
            g.move_order(&mut ops);
        }
    }
    Workload { prefill, ops }
}

/// Mix (b): 70% passive GTC add, 20% cancel of a random resting order,
/// 10% aggressive (half IOC, half crossing GTC limit). Starts from a
/// `TARGET_RESTING`-order prefill. There is no population control, so the
/// book grows by roughly 0.45 resting orders per op (~450k resting orders
/// on ~2,400 levels after 1M ops): this mix measures add/cancel cost on a
/// deep book, so per-op cost depends on `n_ops`.
pub fn add_cancel_aggressive(seed: u64, n_ops: usize) -> Workload {
    let mut g = Generator::new(seed ^ 0xACA0_0000_0000_0002);
    let prefill = g.prefill(TARGET_RESTING);
    let mut ops = Vec::with_capacity(n_ops);
    for _ in 0..n_ops {
        let r = g.rng.below(100);
        if r < 70 {
            g.passive_limit(&mut ops);
        } else if r < 90 {
            g.cancel(&mut ops);
        } else {
            let ioc = g.rng.next_u64() & 1 == 0;
            g.aggressive(ioc, &mut ops);
        }
    }
    Workload { prefill, ops }
}

/// Count ops by kind: `(limit, ioc, cancel, move)`.
pub fn op_mix(ops: &[Op]) -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for op in ops {
        match op {
            Op::Limit { .. } => c.0 += 1,
            Op::Ioc { .. } => c.1 += 1,
            Op::Cancel { .. } => c.2 += 1,
            Op::Move { .. } => c.3 += 1,
        }
    }
    c
}
