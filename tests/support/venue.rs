//! A venue for tests: one market, one ledger account per user and the fee account, composed
//! synchronously. It does what the real service will do between the matching core and the
//! ledger (lock before placing, route every market event to the accounts it touches), with no
//! actors, storage or clock, so property tests can check invariants that span both.
//!
//! A ledger error while routing events the market produced is never a rejection: the market
//! and the ledger disagree about an order, so an invariant broke. Those panic with context.

#![allow(dead_code)] // each test binary that includes this uses a different part of it

use std::collections::BTreeMap;

use hob::domain::{
    Account, Amount, AssetId, Bps, FeeAccount, LedgerError, Market, MarketCommand, MarketEvent, MarketId, MarketSpec,
    NewOrder, OrderId, PriceTicks, QtyLots, Side, TimestampMs, UserId,
};

/// The venue's one market: BASE quoted in QUOTE, 1,000 base units a lot, 10 quote units a
/// tick per lot, maker 10 bps and taker 25 bps so that fee floors are exercised on every fill,
/// and a minimum order value of 1,000 quote that one lot below 100 ticks misses.
pub fn spec() -> MarketSpec {
    MarketSpec {
        id: MarketId::new("BASE-QUOTE").expect("valid market id"),
        base: AssetId::new("BASE").expect("valid asset"),
        quote: AssetId::new("QUOTE").expect("valid asset"),
        base_lot: Amount(1_000),
        quote_tick: Amount(10),
        min_qty: QtyLots(1),
        max_qty: QtyLots(1_000),
        min_notional: Amount(1_000),
        maker_fee: Bps(10),
        taker_fee: Bps(25),
    }
}

/// What the venue did with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ledger refused before the market saw the command (e.g. insufficient funds); nothing
    /// changed.
    Refused(LedgerError),
    /// The market decided; these are its events, already routed to the ledger.
    Decided(Vec<MarketEvent>),
}

impl Outcome {
    pub fn events(&self) -> &[MarketEvent] {
        match self {
            Outcome::Refused(_) => &[],
            Outcome::Decided(events) => events,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Venue {
    market: Market,
    accounts: BTreeMap<UserId, Account>,
    fees: FeeAccount,
    /// The owner of every order that ever took a lock, so events naming only an order id can
    /// be routed to its account.
    owners: BTreeMap<OrderId, UserId>,
    deposited: BTreeMap<AssetId, Amount>,
    /// Every event the market produced, in order: the market's stream.
    log: Vec<MarketEvent>,
}

impl Default for Venue {
    fn default() -> Self {
        Venue::new()
    }
}

impl Venue {
    pub fn new() -> Venue {
        Venue {
            market: Market::new(spec()),
            accounts: BTreeMap::new(),
            fees: FeeAccount::default(),
            owners: BTreeMap::new(),
            deposited: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub fn market(&self) -> &Market {
        &self.market
    }

    pub fn spec(&self) -> &MarketSpec {
        self.market.spec()
    }

    pub fn fees(&self) -> &FeeAccount {
        &self.fees
    }

    pub fn log(&self) -> &[MarketEvent] {
        &self.log
    }

    pub fn users(&self) -> impl Iterator<Item = (UserId, &Account)> + '_ {
        self.accounts.iter().map(|(u, a)| (*u, a))
    }

    pub fn account(&self, user: UserId) -> Account {
        self.accounts.get(&user).cloned().unwrap_or_default()
    }

    pub fn owner(&self, order: OrderId) -> Option<UserId> {
        self.owners.get(&order).copied()
    }

    /// Everything ever deposited of `asset` (there are no withdrawals).
    pub fn deposited(&self, asset: AssetId) -> Amount {
        self.deposited.get(&asset).copied().unwrap_or_default()
    }

    pub fn deposit(&mut self, user: UserId, asset: AssetId, amount: Amount) {
        self.accounts.entry(user).or_default().deposit(asset, amount).expect("deposit fits u128");
        let total = self.deposited.entry(asset).or_default();
        *total = total.checked_add(amount).expect("deposits fit u128");
    }

    /// Locks the order's worst-case cost, then places it. A refused lock changes nothing.
    pub fn place(&mut self, order: NewOrder, now: TimestampMs) -> Outcome {
        let spec = self.market.spec().clone();
        if let Err(e) = self.accounts.entry(order.user).or_default().lock_order(&spec, &order) {
            return Outcome::Refused(e);
        }
        self.owners.insert(order.id, order.user);
        let events = self.execute(MarketCommand::Place(order), now);
        // A placed order the market refused holds a lock nobody else will release.
        if events.iter().any(|e| matches!(e, MarketEvent::Rejected { order: o, .. } if *o == order.id)) {
            self.release(order.id, "placement rejected");
        }
        Outcome::Decided(events)
    }

    pub fn cancel(&mut self, order: OrderId, user: UserId, now: TimestampMs) -> Outcome {
        Outcome::Decided(self.execute(MarketCommand::Cancel { order, user }, now))
    }

    /// Re-sizes the lock for the new terms first; if the market then refuses the amend, the
    /// lock goes back to the old terms (if the order still has one: it may have expired).
    pub fn amend(
        &mut self,
        order: OrderId,
        user: UserId,
        price: PriceTicks,
        qty: QtyLots,
        now: TimestampMs,
    ) -> Outcome {
        let spec = self.market.spec().clone();
        let account = self.accounts.entry(user).or_default();
        let old = account.lock(order).copied();
        match account.relock(&spec, order, price, qty) {
            Ok(_) => {}
            // Not an open order of this user: the market is the authority and will say why.
            Err(LedgerError::UnknownLock(_)) => {}
            Err(e) => return Outcome::Refused(e),
        }
        let events = self.execute(MarketCommand::Amend { order, user, price, qty }, now);
        let rejected = events.iter().any(|e| matches!(e, MarketEvent::Rejected { order: o, .. } if *o == order));
        match old {
            None => {
                assert!(rejected, "market accepted amend of {order} for {user}, who holds no lock for it: {events:?}")
            }
            Some(old) if rejected => {
                let account = self.accounts.entry(user).or_default();
                if account.lock(order).is_some() {
                    if let Err(e) = account.relock(&spec, order, old.limit, old.qty) {
                        panic!("relocking {order} back to its old terms {old:?} failed: {e}; events {events:?}");
                    }
                }
            }
            Some(_) => {}
        }
        Outcome::Decided(events)
    }

    pub fn expire_due(&mut self, now: TimestampMs) -> Outcome {
        Outcome::Decided(self.execute(MarketCommand::ExpireDue, now))
    }

    pub fn halt(&mut self, now: TimestampMs) -> Outcome {
        Outcome::Decided(self.execute(MarketCommand::Halt, now))
    }

    pub fn resume(&mut self, now: TimestampMs) -> Outcome {
        Outcome::Decided(self.execute(MarketCommand::Resume, now))
    }

    fn execute(&mut self, command: MarketCommand, now: TimestampMs) -> Vec<MarketEvent> {
        let mut events = Vec::new();
        self.market.execute(command, now, &mut events);
        for event in &events {
            self.route(event, &command, &events);
        }
        self.log.extend_from_slice(&events);
        events
    }

    /// Applies one market event to the ledger.
    fn route(&mut self, event: &MarketEvent, command: &MarketCommand, all: &[MarketEvent]) {
        let spec = self.market.spec().clone();
        match event {
            MarketEvent::Traded(trade) => {
                for (side, (order, user)) in [(Side::Buy, trade.buyer()), (Side::Sell, trade.seller())] {
                    let account = self.accounts.entry(user).or_default();
                    if let Err(e) = account.apply_fill(&spec, order, trade) {
                        panic!("{side:?} fill of {order} ({user}) failed: {e}\ntrade {trade:?}\ncommand {command:?}\nevents {all:?}");
                    }
                }
                if let Err(e) = self.fees.collect(&spec, trade) {
                    panic!("collecting fees of {trade:?} failed: {e}");
                }
            }
            MarketEvent::Cancelled { order, .. } => self.release(*order, "cancelled"),
            MarketEvent::Expired { order, .. } => self.release(*order, "expired"),
            // A placement's own rejection is released by `place`; any other rejection (a
            // cancel or amend refused) leaves the order, and its lock, as they were.
            MarketEvent::Rejected { .. }
            | MarketEvent::Accepted(_)
            | MarketEvent::Rested { .. }
            | MarketEvent::Filled { .. }
            | MarketEvent::Amended { .. }
            | MarketEvent::Halted
            | MarketEvent::Resumed => {}
        }
    }

    fn release(&mut self, order: OrderId, why: &str) {
        let Some(user) = self.owners.get(&order).copied() else {
            panic!("{why}: order {order} has no known owner");
        };
        let account = self.accounts.entry(user).or_default();
        if let Err(e) = account.release_order(order) {
            panic!("{why}: releasing the lock of {order} ({user}) failed: {e}");
        }
    }
}
