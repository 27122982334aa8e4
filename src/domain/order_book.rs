//! The resting orders of one market, in price-time priority.
//!
//! Layout, chosen for the operations that dominate real order flow (add, cancel, cancel and
//! replace, match at the top of the book):
//! - every resting order is a fixed-size node in one slab (`Vec<Node>`), linked into its
//!   price level's FIFO queue by `u32` indices. No allocation per order once the slab has
//!   grown, and nodes are small (32 bytes, never across two cache lines) so walking a
//!   level touches few cache lines;
//! - `OrderId -> slot` is `OrderIndex`, an open-addressing table of 8-byte entries (a hash
//!   tag and the slot; the id itself is compared through the node, which a lookup reads
//!   anyway), so cancel and amend are O(1): unlink the node, no search. On a large book the
//!   index is a cache miss per lookup; one array of 8-byte entries costs one miss where a
//!   `HashMap<OrderId, u32>` (control bytes apart from 16-byte buckets) costs two;
//! - price levels live in their own slab; each side keeps its levels in a `Vec` sorted so the
//!   best price is last. Nearly all traffic is near the touch, so finding a level is a binary
//!   search over a few cache lines, a new or emptied level near the touch moves only the few
//!   entries after it, and matching walks the vector backwards with no pointer chasing. A
//!   `BTreeMap` measured about 10% slower overall on the benchmark mixes (it descends the
//!   tree on every lookup and walk); the price is O(levels) moves for a new level far from
//!   the touch, a plain memmove of 16-byte entries. An emptied level away from the touch stays
//!   in the vector as an empty placeholder, so the next order at that price (amends move
//!   orders back and forth over the same few hundred prices) finds it without a memmove in
//!   either direction; placeholders are swept once they outnumber the live levels, and the
//!   best entry of a side is always live;
//! - an amend that moves an order is applied as `lift` then `insert` of the same id: the
//!   lifted order keeps its slot and index entry for the re-entry that follows in the same
//!   command, so a move costs no hash insert or remove;
//! - users are interned to `u32` per book, since self-trade checks only compare identity.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use rustc_hash::FxHashMap;

use super::ids::{OrderId, UserId};
use super::order::{Side, StpMode};
use super::units::{PriceTicks, QtyLots, TimestampMs};

const NIL: u32 = u32::MAX;

/// A resting order as the book reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestingOrder {
    pub id: OrderId,
    pub user: UserId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty: QtyLots,
    pub expiry: Option<TimestampMs>,
    pub post_only: bool,
    pub stp: StpMode,
}

/// One price level, aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelSummary {
    pub price: PriceTicks,
    pub qty: QtyLots,
    pub orders: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("order {0} is already on the book")]
    DuplicateOrder(OrderId),
    #[error("order {0} is not on the book")]
    UnknownOrder(OrderId),
    #[error("order {0} has {1} lots, cannot take off {2}")]
    ReduceBeyondQty(OrderId, QtyLots, QtyLots),
    #[error("a resting order needs a positive quantity")]
    ZeroQty,
    #[error("the book is full ({0} orders)")]
    Full(usize),
}

/// 32 bytes, so with the slab 32-aligned (`#[repr(align(32))]`) no node straddles two cache
/// lines: on a large book a node read is a cache miss, and at 48 bytes half the nodes were two.
/// Hence no price (the level's), no side (the level's), the flags packed beside the user slot,
/// and a good-till-date expiry in a side table (rare, and read only when the flag says so).
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct Node {
    id: OrderId,
    qty: QtyLots,
    prev: u32,
    /// Next in the level's queue; for a free node, the next free node.
    next: u32,
    level: u32,
    /// The interned user in the low bits, `Flags` in the top bits.
    user: u32,
}

/// The top bits of `Node::user`.
struct Flags;

impl Flags {
    const POST_ONLY: u32 = 1 << 31;
    const HAS_EXPIRY: u32 = 1 << 30;
    const STP_SHIFT: u32 = 28;
    const STP: u32 = 3 << Self::STP_SHIFT;
    /// Interned users are below this (2^28: far more than any one book sees).
    const USER: u32 = (1 << Self::STP_SHIFT) - 1;

    fn pack(user: u32, order: &RestingOrder) -> u32 {
        let stp = match order.stp {
            StpMode::ExpireMaker => 0,
            StpMode::ExpireTaker => 1,
            StpMode::ExpireBoth => 2,
        };
        let mut word = user | stp << Self::STP_SHIFT;
        if order.post_only {
            word |= Self::POST_ONLY;
        }
        if order.expiry.is_some() {
            word |= Self::HAS_EXPIRY;
        }
        word
    }

    fn stp(word: u32) -> StpMode {
        match (word & Self::STP) >> Self::STP_SHIFT {
            0 => StpMode::ExpireMaker,
            1 => StpMode::ExpireTaker,
            _ => StpMode::ExpireBoth,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Level {
    price: PriceTicks,
    qty: QtyLots,
    orders: u32,
    head: u32,
    /// Tail of the queue; for a free level, the next free level.
    tail: u32,
    /// The side of every order in the level (kept here rather than in each node).
    side: Side,
}

#[derive(Clone, Debug)]
pub struct OrderBook {
    nodes: Vec<Node>,
    free_node: Option<u32>,
    levels: Vec<Level>,
    free_level: Option<u32>,
    index: OrderIndex,
    /// `(price, level)` ascending: the best bid is last.
    bids: Vec<(PriceTicks, u32)>,
    /// `(price, level)` descending: the best ask is last.
    asks: Vec<(PriceTicks, u32)>,
    /// Price -> level for each side, placeholders included, so an order joining a price
    /// that has (or had) a level finds it in one probe rather than a binary search over
    /// the side's vector (about a third of an amend's time when it was a search).
    bid_at: FxHashMap<PriceTicks, u32>,
    ask_at: FxHashMap<PriceTicks, u32>,
    users: Vec<UserId>,
    user_slots: FxHashMap<UserId, u32>,
    /// Good-till-date orders by expiry, so the due ones are found without a scan.
    expiries: BTreeSet<(TimestampMs, OrderId)>,
    /// Slot -> expiry of the resting orders flagged `HAS_EXPIRY` (kept out of the nodes).
    expiry_at: FxHashMap<u32, TimestampMs>,
    /// Empty levels still in `bids`/`asks` as placeholders (see `unlink`).
    placeholders: usize,
    /// The slot of the order taken off the book by `lift`, or `NIL`. It is off the book in
    /// every respect (not counted, not found, not walked, no expiry) but keeps its index entry
    /// and slot, which the `insert` of the same id reuses.
    lifted: u32,
}

impl Default for OrderBook {
    fn default() -> OrderBook {
        OrderBook {
            nodes: Vec::new(),
            free_node: None,
            levels: Vec::new(),
            free_level: None,
            index: OrderIndex::default(),
            bids: Vec::new(),
            asks: Vec::new(),
            bid_at: FxHashMap::default(),
            ask_at: FxHashMap::default(),
            users: Vec::new(),
            user_slots: FxHashMap::default(),
            expiries: BTreeSet::new(),
            expiry_at: FxHashMap::default(),
            placeholders: 0,
            lifted: NIL,
        }
    }
}

impl OrderBook {
    /// Indices are `u32`, so a book holds fewer than 2^32 - 1 orders and levels; the order
    /// index, at most 3/4 full with at most 2^32 entries, holds 3 * 2^30 of them.
    pub const MAX_ORDERS: usize = OrderIndex::MAX_LEN;

    /// Placeholders (empty levels kept in a side's vector) allowed beyond the number of live
    /// levels before they are swept: enough for the span of prices a busy book moves over.
    const SPARE_PLACEHOLDERS: usize = 4096;

    pub fn new() -> OrderBook {
        OrderBook::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.index.len - usize::from(self.lifted != NIL)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn contains(&self, id: OrderId) -> bool {
        self.slot(id).is_some()
    }

    #[inline]
    pub fn get(&self, id: OrderId) -> Option<RestingOrder> {
        self.slot(id).map(|slot| self.view(slot))
    }

    /// Appends an order at the back of its price level.
    // Inlined (like `lift`) into `Market::apply`, the re-entry half of every amend.
    #[inline]
    pub fn insert(&mut self, order: RestingOrder) -> Result<(), BookError> {
        if order.qty.is_zero() {
            return Err(BookError::ZeroQty);
        }
        let (slot, user) = if self.is_lifted(order.id) {
            // The re-entry of an amended order: its slot and index entry are still there, and
            // usually its user too.
            let slot = std::mem::replace(&mut self.lifted, NIL);
            let old = self.nodes[slot as usize].user & Flags::USER;
            let user = if self.users[old as usize] == order.user { old } else { self.user_slot(order.user)? };
            (slot, user)
        } else {
            let user = self.user_slot(order.user)?;
            (self.claim_slot(order.id)?, user)
        };
        let level = self.level_for_insert(order.side, order.price);
        let lvl = &mut self.levels[level as usize];
        let prev = lvl.tail;
        lvl.tail = slot;
        if prev == NIL {
            lvl.head = slot;
        }
        lvl.qty += order.qty;
        lvl.orders += 1;
        let node = Node { id: order.id, qty: order.qty, prev, next: NIL, level, user: Flags::pack(user, &order) };
        if slot as usize == self.nodes.len() {
            self.nodes.push(node);
        } else {
            self.nodes[slot as usize] = node;
        }
        if prev != NIL {
            self.nodes[prev as usize].next = slot;
        }
        if let Some(at) = order.expiry {
            self.expiries.insert((at, order.id));
            self.expiry_at.insert(slot, at);
        }
        Ok(())
    }

    /// Takes an order off the book in O(1).
    pub fn remove(&mut self, id: OrderId) -> Result<RestingOrder, BookError> {
        if self.is_lifted(id) {
            return Err(BookError::UnknownOrder(id));
        }
        let slot = self.index.remove(id, &self.nodes).ok_or(BookError::UnknownOrder(id))?;
        let view = self.view(slot);
        self.take_off(slot);
        self.free_slot(slot);
        Ok(view)
    }

    /// Takes an order off the book like `remove`, but keeps its slot and index entry for an
    /// `insert` of the same id, which then costs no hashing. Only one order is lifted at a
    /// time: lifting another releases the previous one for good, as does `discard` or
    /// `forget_lifted` of its id.
    #[inline]
    pub fn lift(&mut self, id: OrderId) -> Result<(), BookError> {
        self.release_lifted();
        let slot = self.slot(id).ok_or(BookError::UnknownOrder(id))?;
        self.take_off(slot);
        self.lifted = slot;
        Ok(())
    }

    /// Releases the lifted order if it is `id`: it will not come back.
    #[inline]
    pub fn forget_lifted(&mut self, id: OrderId) {
        if self.is_lifted(id) {
            self.release_lifted();
        }
    }

    /// Ends `id` whether it rests or is lifted; nothing if it is neither (e.g. an incoming
    /// order that never rested).
    pub fn discard(&mut self, id: OrderId) {
        if self.is_lifted(id) {
            self.release_lifted();
        } else if let Some(slot) = self.index.remove(id, &self.nodes) {
            self.take_off(slot);
            self.free_slot(slot);
        }
    }

    /// Takes `by` lots off a resting order in place, keeping its time priority; removes the
    /// order when nothing is left. Returns the lots left.
    pub fn reduce(&mut self, id: OrderId, by: QtyLots) -> Result<QtyLots, BookError> {
        let slot = self.slot(id).ok_or(BookError::UnknownOrder(id))?;
        let node = &mut self.nodes[slot as usize];
        if by > node.qty {
            return Err(BookError::ReduceBeyondQty(id, node.qty, by));
        }
        if by == node.qty {
            self.index.remove(id, &self.nodes);
            self.take_off(slot);
            self.free_slot(slot);
            return Ok(QtyLots::ZERO);
        }
        node.qty -= by;
        let left = node.qty;
        self.levels[node.level as usize].qty -= by;
        Ok(left)
    }

    /// The best (highest bid, lowest ask) price on a side.
    #[inline]
    pub fn best_price(&self, side: Side) -> Option<PriceTicks> {
        // The last entry is never a placeholder (see `unlink`).
        self.side(side).last().map(|&(p, _)| p)
    }

    /// Visits a side's orders best first, earliest first within a level, until `f` breaks.
    #[inline]
    pub fn walk<B>(&self, side: Side, mut f: impl FnMut(RestingOrder) -> ControlFlow<B>) -> Option<B> {
        // A placeholder's queue is empty, so it is passed over with no special case.
        let mut visit_level = |level: u32| -> ControlFlow<B> {
            let mut slot = self.levels[level as usize].head;
            while slot != NIL {
                f(self.view(slot))?;
                slot = self.nodes[slot as usize].next;
            }
            ControlFlow::Continue(())
        };
        let flow = self.side(side).iter().rev().try_for_each(|&(_, l)| visit_level(l));
        match flow {
            ControlFlow::Break(b) => Some(b),
            ControlFlow::Continue(()) => None,
        }
    }

    /// The top `n` levels of a side, best first.
    pub fn depth(&self, side: Side, n: usize) -> Vec<LevelSummary> {
        let levels = self.side(side).iter().rev().map(|&(_, l)| &self.levels[l as usize]);
        let live = levels.filter(|level| level.orders > 0);
        live.take(n).map(|level| LevelSummary { price: level.price, qty: level.qty, orders: level.orders }).collect()
    }

    /// Good-till-date orders whose expiry is at or before `now`, earliest first.
    #[inline]
    pub fn due_expiries(&self, now: TimestampMs) -> impl Iterator<Item = OrderId> + '_ {
        self.expiries.range(..=(now, OrderId(u64::MAX))).map(|&(_, id)| id)
    }

    /// Whether any resting order has an expiry; when not, no order can be due.
    #[inline]
    pub fn has_expiries(&self) -> bool {
        !self.expiries.is_empty()
    }

    /// Whether the best bid meets or passes the best ask; never true after a command.
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_price(Side::Buy), self.best_price(Side::Sell)), (Some(b), Some(a)) if b >= a)
    }

    /// The slot of a resting order; a lifted order is not on the book.
    #[inline]
    fn slot(&self, id: OrderId) -> Option<u32> {
        self.index.get(id, &self.nodes).filter(|&slot| slot != self.lifted)
    }

    #[inline]
    fn is_lifted(&self, id: OrderId) -> bool {
        self.lifted != NIL && self.nodes[self.lifted as usize].id == id
    }

    fn release_lifted(&mut self) {
        if self.lifted != NIL {
            let slot = std::mem::replace(&mut self.lifted, NIL);
            self.index.remove(self.nodes[slot as usize].id, &self.nodes);
            self.free_slot(slot);
        }
    }

    /// A slot for a new order, entered in the index.
    fn claim_slot(&mut self, id: OrderId) -> Result<u32, BookError> {
        if self.index.len >= Self::MAX_ORDERS {
            return Err(BookError::Full(self.index.len));
        }
        let slot = self.free_node.unwrap_or(self.nodes.len() as u32);
        if !self.index.insert_new(id, slot, &self.nodes) {
            return Err(BookError::DuplicateOrder(id));
        }
        if self.free_node.is_some() {
            self.free_node = link(self.nodes[slot as usize].next);
        }
        Ok(slot)
    }

    /// Unlinks a node from its level and drops its expiry; the slot and index entry stay.
    fn take_off(&mut self, slot: u32) {
        let node = self.nodes[slot as usize];
        self.unlink(slot, node);
        if node.user & Flags::HAS_EXPIRY != 0 {
            if let Some(at) = self.expiry_at.remove(&slot) {
                self.expiries.remove(&(at, node.id));
            }
        }
    }

    fn free_slot(&mut self, slot: u32) {
        self.nodes[slot as usize].next = self.free_node.unwrap_or(NIL);
        self.free_node = Some(slot);
    }

    #[inline]
    fn view(&self, slot: u32) -> RestingOrder {
        let n = &self.nodes[slot as usize];
        let level = &self.levels[n.level as usize];
        let expiry = if n.user & Flags::HAS_EXPIRY != 0 { self.expiry_at.get(&slot).copied() } else { None };
        RestingOrder {
            id: n.id,
            user: self.users[(n.user & Flags::USER) as usize],
            side: level.side,
            price: level.price,
            qty: n.qty,
            expiry,
            post_only: n.user & Flags::POST_ONLY != 0,
            stp: Flags::stp(n.user),
        }
    }

    fn user_slot(&mut self, user: UserId) -> Result<u32, BookError> {
        let next = self.users.len() as u32;
        if next > Flags::USER {
            // Every slot is taken; a known user still has one.
            return self.user_slots.get(&user).copied().ok_or(BookError::Full(self.index.len));
        }
        let slot = *self.user_slots.entry(user).or_insert(next);
        if slot == next {
            self.users.push(user);
        }
        Ok(slot)
    }

    #[inline]
    fn side(&self, side: Side) -> &[(PriceTicks, u32)] {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Where `price` is, or would go, in a side's vector (best last).
    #[inline]
    fn position(levels: &[(PriceTicks, u32)], side: Side, price: PriceTicks) -> Result<usize, usize> {
        match side {
            Side::Buy => levels.binary_search_by(|&(p, _)| p.cmp(&price)),
            Side::Sell => levels.binary_search_by(|&(p, _)| price.cmp(&p)),
        }
    }

    /// The level at `price`, created (or revived from a placeholder) if need be.
    fn level_for_insert(&mut self, side: Side, price: PriceTicks) -> u32 {
        let (by_price, sorted) = match side {
            Side::Buy => (&mut self.bid_at, &mut self.bids),
            Side::Sell => (&mut self.ask_at, &mut self.asks),
        };
        let vacant = match by_price.entry(price) {
            Entry::Occupied(e) => {
                let level = *e.get();
                if self.levels[level as usize].orders == 0 {
                    self.placeholders -= 1;
                }
                return level;
            }
            Entry::Vacant(v) => v,
        };
        let fresh = Level { price, qty: QtyLots::ZERO, orders: 0, head: NIL, tail: NIL, side };
        let level = match self.free_level {
            Some(level) => {
                self.free_level = link(self.levels[level as usize].tail);
                self.levels[level as usize] = fresh;
                level
            }
            None => {
                self.levels.push(fresh);
                (self.levels.len() - 1) as u32
            }
        };
        vacant.insert(level);
        // Only a price new to the side pays for the search and the shift.
        let at = Self::position(sorted, side, price).unwrap_or_else(|at| at);
        sorted.insert(at, (price, level));
        level
    }

    fn unlink(&mut self, slot: u32, node: Node) {
        if node.prev != NIL {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = node.prev;
        }
        let level = &mut self.levels[node.level as usize];
        if level.head == slot {
            level.head = node.next;
        }
        if level.tail == slot {
            level.tail = node.prev;
        }
        level.qty -= node.qty;
        level.orders -= 1;
        if level.orders > 0 {
            return;
        }
        let (by_price, levels) = match level.side {
            Side::Buy => (&mut self.bid_at, &mut self.bids),
            Side::Sell => (&mut self.ask_at, &mut self.asks),
        };
        if levels.last().is_some_and(|&(_, l)| l == node.level) {
            // The best level emptied: drop it and the placeholders behind it, so the best
            // entry of a side stays live and `best_price` stays O(1).
            let mut popped = 0;
            while let Some(&(_, l)) = levels.last() {
                if self.levels[l as usize].orders > 0 {
                    break;
                }
                let (price, _) = levels.pop().unwrap_or_default();
                by_price.remove(&price);
                self.levels[l as usize].tail = self.free_level.unwrap_or(NIL);
                self.free_level = Some(l);
                popped += 1;
            }
            // Every level popped but the one that just emptied was a placeholder.
            self.placeholders -= popped - 1;
        } else {
            self.placeholders += 1;
            let live = self.bids.len() + self.asks.len() - self.placeholders;
            if self.placeholders > live + Self::SPARE_PLACEHOLDERS {
                self.sweep_placeholders();
            }
        }
    }

    /// Frees every placeholder: O(levels), after more than that many levels emptied.
    fn sweep_placeholders(&mut self) {
        let (levels, free) = (&mut self.levels, &mut self.free_level);
        for (side, by_price) in [(&mut self.bids, &mut self.bid_at), (&mut self.asks, &mut self.ask_at)] {
            side.retain(|&(price, l)| {
                if levels[l as usize].orders > 0 {
                    return true;
                }
                by_price.remove(&price);
                levels[l as usize].tail = free.unwrap_or(NIL);
                *free = Some(l);
                false
            });
        }
        self.placeholders = 0;
    }

    /// Approximate heap bytes held, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<Node>()
            + self.levels.capacity() * size_of::<Level>()
            + self.index.entries.capacity() * size_of::<u64>()
            + (self.bids.capacity() + self.asks.capacity()) * size_of::<(PriceTicks, u32)>()
            + (self.bid_at.capacity() + self.ask_at.capacity()) * (size_of::<(PriceTicks, u32)>() + 1) * 8 / 7
            + self.users.capacity() * size_of::<UserId>()
            + self.user_slots.capacity() * (size_of::<(UserId, u32)>() + 1) * 8 / 7
            + self.expiries.len() * (size_of::<(TimestampMs, OrderId)>() + 8)
            + self.expiry_at.capacity() * (size_of::<(u32, TimestampMs)>() + 1) * 8 / 7
    }
}

fn link(i: u32) -> Option<u32> {
    (i != NIL).then_some(i)
}

/// `OrderId -> slot`: open addressing with linear probing and backward-shift deletion (no
/// tombstones), at most 3/4 full. An entry is `tag << 32 | slot`, where the tag is the top
/// 32 bits of the id's multiplicative hash: it settles nearly every mismatch without reading
/// the node, and its top bits are the entry's home position, so growing and deleting never
/// read nodes either. A tag match is confirmed by comparing the node's id.
#[derive(Clone, Debug, Default)]
struct OrderIndex {
    /// A power of two long (or empty, before the first insert).
    entries: Vec<u64>,
    len: usize,
    /// `32 - log2(entries.len())`: a tag shifted right by this is its home position.
    tag_shift: u32,
}

impl OrderIndex {
    /// No real entry is this: its slot would be `NIL`.
    const EMPTY: u64 = u64::MAX;
    const MIN_CAPACITY: usize = 16;
    /// Homes come from the 32-bit tag, so the table has at most 2^32 entries, 3/4 full.
    const MAX_LEN: usize = 3 << 30;

    #[inline]
    fn tag(id: OrderId) -> u32 {
        // Fibonacci hashing: ids are trusted integers (no DoS hardening needed), and the top
        // bits of the product spread even sequential ids evenly over the table.
        (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        (tag >> self.tag_shift) as usize
    }

    /// Where `id`'s entry is, or else the empty position that ends its probe sequence (where
    /// it would go). The table must not be empty.
    #[inline]
    fn probe(&self, id: OrderId, nodes: &[Node]) -> Result<usize, usize> {
        let tag = Self::tag(id);
        let mask = self.entries.len() - 1;
        let mut pos = self.home(tag);
        loop {
            let entry = self.entries[pos];
            if entry == Self::EMPTY {
                return Err(pos);
            }
            if (entry >> 32) as u32 == tag && nodes[entry as u32 as usize].id == id {
                return Ok(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, id: OrderId, nodes: &[Node]) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        self.probe(id, nodes).ok().map(|pos| self.entries[pos] as u32)
    }

    /// Enters `id -> slot` unless `id` is already there. `slot`'s node need not exist yet.
    fn insert_new(&mut self, id: OrderId, slot: u32, nodes: &[Node]) -> bool {
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        match self.probe(id, nodes) {
            Ok(_) => false,
            Err(pos) => {
                self.entries[pos] = u64::from(Self::tag(id)) << 32 | u64::from(slot);
                self.len += 1;
                true
            }
        }
    }

    fn remove(&mut self, id: OrderId, nodes: &[Node]) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mut hole = self.probe(id, nodes).ok()?;
        let slot = self.entries[hole] as u32;
        // Backward shift: pull later entries of the run into the hole when the hole is on
        // their probe path (between their home and where they sit), so that every entry stays
        // reachable from its home with no empty position in between.
        let mask = self.entries.len() - 1;
        let mut pos = hole;
        loop {
            pos = (pos + 1) & mask;
            let entry = self.entries[pos];
            if entry == Self::EMPTY {
                break;
            }
            let home = self.home((entry >> 32) as u32);
            if pos.wrapping_sub(home) & mask >= pos.wrapping_sub(hole) & mask {
                self.entries[hole] = entry;
                hole = pos;
            }
        }
        self.entries[hole] = Self::EMPTY;
        self.len -= 1;
        Some(slot)
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(Self::MIN_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![Self::EMPTY; capacity]);
        self.tag_shift = 32 - capacity.trailing_zeros();
        let mask = capacity - 1;
        for entry in old.into_iter().filter(|&e| e != Self::EMPTY) {
            let mut pos = self.home((entry >> 32) as u32);
            while self.entries[pos] != Self::EMPTY {
                pos = (pos + 1) & mask;
            }
            self.entries[pos] = entry;
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/domain/order_book.rs"]
mod tests;
