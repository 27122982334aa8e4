//! Replays each actor from its events alone, with the domain's own folds (`Market::apply`,
//! `UserState::apply`, `OperatorState::apply`: nothing is re-implemented here), checks what
//! can be checked event by event (no overfill, book never crossed, every event fits its
//! state), and records the facts the cross-stream checks need (`facts.rs`).
//!
//! A market's spec is not in its own stream: it comes from the users' `OrderPlaced` events,
//! which carry it so that user streams replay alone. The auditor therefore replays user
//! streams first (`StreamKind::order`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::facts::{At, Facts, Fill, UserVoid};
use super::report::{Check, Findings};
use crate::actors::is_bookkeeping;
use crate::domain::{
    AssetId, Market, MarketEvent, MarketId, MarketSpec, OrderId, QtyLots, Side, UserEvent, UserId, UserState,
};
use crate::events::payload::decode_market_event_bytes;
use crate::events::user_payload::decode_user_event_bytes;
use crate::events::{SealedEvent, StreamId};
use crate::settlement::payload::decode_operator_event;
use crate::settlement::{OperatorEvent, OperatorState, TradeKey};

/// What kind of actor writes a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamKind {
    User,
    Market,
    Operator,
    /// `admin`, `chain:{id}`: hash-chained and checked, no actor state to rebuild here.
    Other,
}

impl StreamKind {
    pub fn of(stream: &StreamId) -> StreamKind {
        let s = stream.as_str();
        if s.starts_with("user:") {
            StreamKind::User
        } else if s.starts_with("market:") {
            StreamKind::Market
        } else if s.starts_with("operator:") {
            StreamKind::Operator
        } else {
            StreamKind::Other
        }
    }
}

/// One stream's actor, being rebuilt.
pub enum Actor {
    Market(Box<MarketReplay>),
    User(Box<UserState>),
    Operator(Box<OperatorState>),
    /// Nothing to rebuild: an `Other` stream, or one whose replay already failed.
    None,
}

pub struct MarketReplay {
    pub market: Market,
    /// Each live order's quantity still open, by the market's own events.
    open: HashMap<OrderId, QtyLots>,
}

impl MarketReplay {
    pub fn new(spec: MarketSpec) -> MarketReplay {
        MarketReplay { market: Market::new(spec), open: HashMap::new() }
    }
}

/// The replay of every stream, and what it learnt.
#[derive(Default)]
pub struct Replayer {
    pub specs: BTreeMap<MarketId, MarketSpec>,
    /// Where each market's spec was first read, to name a conflicting one found elsewhere.
    pub spec_sources: BTreeMap<MarketId, At>,
    pub facts: Facts,
}

/// The replay of this stream stopped: its state no longer means anything.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;

impl Replayer {
    /// The actor that replays `stream` from its first event. A market whose spec no user
    /// stream named cannot be rebuilt; that is itself a violation.
    pub fn start(&self, stream: &StreamId, findings: &mut Findings) -> Actor {
        let s = stream.as_str();
        match StreamKind::of(stream) {
            StreamKind::User => match UserId::from_hex(s.strip_prefix("user:").unwrap_or(s)) {
                Ok(user) => Actor::User(Box::new(UserState::new(user))),
                Err(e) => {
                    findings.violate(Check::Replay, Some(s), None, format!("not a user stream name: {e}"));
                    Actor::None
                }
            },
            StreamKind::Market => {
                let id = MarketId::new(s.strip_prefix("market:").unwrap_or(s));
                let spec = id.ok().and_then(|id| self.specs.get(&id));
                match spec {
                    Some(spec) => Actor::Market(Box::new(MarketReplay::new(spec.clone()))),
                    None => {
                        let msg = "no user stream names this market's spec (OrderPlaced), so it cannot be replayed";
                        findings.violate(Check::Replay, Some(s), None, msg);
                        Actor::None
                    }
                }
            }
            StreamKind::Operator => Actor::Operator(Box::default()),
            StreamKind::Other => Actor::None,
        }
    }

    /// Decodes one stored event and folds it into `actor`. Bookkeeping events (consumed
    /// positions, signed orders) carry no state the invariants read.
    pub fn fold_stored(
        &mut self,
        stream: &StreamId,
        actor: &mut Actor,
        e: &SealedEvent,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        let s = stream.as_str();
        let mut fail = |msg: String| {
            findings.violate(Check::Replay, Some(s), Some(e.version), msg);
            Stopped
        };
        match actor {
            Actor::None => Ok(()),
            _ if is_bookkeeping(&e.event_type) => Ok(()),
            Actor::Market(m) => {
                let event = decode_market_event_bytes(&e.event_type, e.schema_version, &e.payload)
                    .map_err(|x| fail(format!("{} does not decode: {x}", e.event_type)))?;
                self.fold_market(s, e.version, m, &event, findings)
            }
            Actor::User(state) => {
                let event = decode_user_event_bytes(&e.event_type, e.schema_version, &e.payload)
                    .map_err(|x| fail(format!("{} does not decode: {x}", e.event_type)))?;
                self.fold_user(s, e.version, state, &event, findings)
            }
            Actor::Operator(state) => {
                let value = serde_json::from_slice(&e.payload).map_err(|x| fail(format!("payload: {x}")))?;
                let event = decode_operator_event(&e.event_type, e.schema_version, value)
                    .map_err(|x| fail(format!("{} does not decode: {x}", e.event_type)))?;
                self.fold_operator(s, e.version, state, &event, findings)
            }
        }
    }

    /// One market event: overfill before it applies, crossing after.
    pub fn fold_market(
        &mut self,
        stream: &str,
        version: u64,
        m: &mut MarketReplay,
        event: &MarketEvent,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        if let MarketEvent::Traded(trade) = event {
            findings.count(Check::NoOverfill, 1);
            for (role, order) in [("maker", trade.maker_order), ("taker", trade.taker_order)] {
                match m.open.get_mut(&order) {
                    Some(open) if *open >= trade.qty => *open -= trade.qty,
                    Some(open) => {
                        let msg = format!(
                            "trade {} fills {role} order {order} by {} lots, only {} open",
                            trade.id, trade.qty.0, open.0
                        );
                        findings.violate(Check::NoOverfill, Some(stream), Some(version), msg);
                        *open = QtyLots(0);
                    }
                    None => {
                        let msg = format!("trade {} names {role} order {order}, which is not live", trade.id);
                        findings.violate(Check::NoOverfill, Some(stream), Some(version), msg);
                    }
                }
            }
            let key = TradeKey { market: m.market.spec().id, trade: trade.id };
            self.facts.trades.insert(key, (At::new(stream, version), *trade));
        }
        if let Err(e) = m.market.apply(event) {
            findings.violate(Check::Replay, Some(stream), Some(version), format!("does not fit the market: {e}"));
            return Err(Stopped);
        }
        match *event {
            MarketEvent::Accepted(ref order) => {
                m.open.insert(order.id, order.qty);
            }
            MarketEvent::Amended { order, qty, .. } => {
                m.open.insert(order, qty);
            }
            MarketEvent::Filled { order }
            | MarketEvent::Cancelled { order, .. }
            | MarketEvent::Expired { order, .. }
            | MarketEvent::Rejected { order, .. } => {
                m.open.remove(&order);
            }
            _ => {}
        }
        findings.count(Check::BookNotCrossed, 1);
        if m.market.book().is_crossed() {
            let bid = m.market.book().best_price(Side::Buy).map_or(0, |p| p.0);
            let ask = m.market.book().best_price(Side::Sell).map_or(0, |p| p.0);
            let msg = format!("book crossed after this event: best bid {bid} >= best ask {ask}");
            findings.violate(Check::BookNotCrossed, Some(stream), Some(version), msg);
        }
        Ok(())
    }

    /// One user event through the ledger, recording money in and out, fills and voids.
    pub fn fold_user(
        &mut self,
        stream: &str,
        version: u64,
        state: &mut UserState,
        event: &UserEvent,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        if let Err(e) = state.apply(event) {
            findings.violate(Check::Replay, Some(stream), Some(version), format!("does not fit the user: {e}"));
            return Err(Stopped);
        }
        let at = || At::new(stream, version);
        let mut overflow = |msg: String| {
            findings.violate(Check::Conservation, Some(stream), Some(version), msg);
            Stopped
        };
        match event {
            // Money in: the dev faucet's deposit, or one the chain watcher credited.
            UserEvent::Deposited { asset, amount } | UserEvent::DepositCredited { asset, amount, .. } => {
                Facts::add(&mut self.facts.deposits, *asset, amount.0).map_err(&mut overflow)?;
                let per_user = self.facts.user_deposits.entry((state.user(), *asset)).or_default();
                *per_user = per_user.saturating_add(amount.0);
            }
            // Money out: off-chain only, or an on-chain withdrawal once the chain completed it
            // (until then it is *withdrawing*, still held: see `finish_user`).
            UserEvent::Withdrawn { asset, amount } | UserEvent::WithdrawalCompleted { asset, amount, .. } => {
                Facts::add(&mut self.facts.withdrawals, *asset, amount.0).map_err(&mut overflow)?;
                let per_user = self.facts.user_withdrawals.entry((state.user(), *asset)).or_default();
                *per_user = per_user.saturating_add(amount.0);
            }
            UserEvent::OrderPlaced { market, spec, .. } => match self.specs.get(market) {
                Some(known) if known != spec => {
                    let msg = format!("order placed with a spec of {market} that differs from another user's");
                    findings.violate(Check::Replay, Some(stream), Some(version), msg);
                }
                Some(_) => {}
                None => {
                    self.specs.insert(*market, spec.clone());
                    self.spec_sources.insert(*market, at());
                }
            },
            UserEvent::FillApplied { market, order, trade } => {
                // `apply` succeeded, so the order is one side of the trade and its market is held.
                let fee = if trade.buyer().0 == *order { trade.buyer_fee() } else { trade.seller_fee() };
                let fee_asset = state.market(*market).map(|h| h.spec.quote);
                if let Some(fee_asset) = fee_asset {
                    let key = TradeKey { market: *market, trade: trade.id };
                    let fill = Fill { at: at(), user: state.user(), trade: *trade, fee: fee.0, fee_asset };
                    self.facts.fills.entry((key, *order)).or_default().push(fill);
                }
            }
            UserEvent::TradeVoided { market, order, trade, reclaimed_asset, reclaimed, restored_asset, restored } => {
                let key = TradeKey { market: *market, trade: *trade };
                let void = UserVoid {
                    at: at(),
                    user: state.user(),
                    reclaimed: (*reclaimed_asset, reclaimed.0),
                    restored: (*restored_asset, restored.0),
                };
                self.facts.user_voids.entry((key, *order)).or_default().push(void);
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes in what another lane replayed (other streams): its specs, where they differ from
    /// the ones known, are the same violation as within one lane.
    pub fn absorb(&mut self, other: Replayer, findings: &mut Findings) {
        for (market, spec) in other.specs {
            match self.specs.get(&market) {
                Some(known) if *known != spec => {
                    let at = other.spec_sources.get(&market);
                    let msg = format!("order placed with a spec of {market} that differs from another user's");
                    findings.violate(Check::Replay, at.map(|a| a.stream.as_str()), at.map(|a| a.version), msg);
                }
                Some(_) => {}
                None => {
                    if let Some(at) = other.spec_sources.get(&market) {
                        self.spec_sources.insert(market, at.clone());
                    }
                    self.specs.insert(market, spec);
                }
            }
        }
        if let Err(msg) = self.facts.merge(other.facts) {
            findings.violate(Check::Conservation, None, None, msg);
        }
    }

    /// A user stream is done: its balances join the totals.
    pub fn finish_user(&mut self, stream: &str, state: &UserState, findings: &mut Findings) {
        let mut assets: BTreeSet<AssetId> = state.account().balances().map(|(asset, _)| asset).collect();
        assets.extend(state.transfers().pending_withdrawals().map(|(_, p)| p.asset));
        for asset in assets {
            // A withdrawal in flight has left available but not the exchange: it is held.
            let balance = state.account().balance(asset);
            let withdrawing = state.transfers().withdrawing(asset);
            let total = balance
                .total()
                .and_then(|t| t.0.checked_add(withdrawing.0))
                .ok_or_else(|| format!("{asset} balance overflows"));
            if let Err(msg) = total.and_then(|t| Facts::add(&mut self.facts.balances, asset, t)) {
                findings.violate(Check::Conservation, Some(stream), None, msg);
            }
        }
    }

    /// One settlement operator event.
    pub fn fold_operator(
        &mut self,
        stream: &str,
        version: u64,
        state: &mut OperatorState,
        event: &OperatorEvent,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        if let Err(e) = state.apply(event) {
            findings.violate(Check::Replay, Some(stream), Some(version), format!("does not fit the operator: {e}"));
            return Err(Stopped);
        }
        match event {
            OperatorEvent::SettlementConfirmed { trades, .. } => {
                for key in trades {
                    self.facts.confirmed.entry(*key).or_default().push(At::new(stream, version));
                }
            }
            OperatorEvent::TradeVoided { trade, key, .. } => {
                self.facts.operator_voids.entry(*key).or_default().push((At::new(stream, version), *trade));
            }
            _ => {}
        }
        Ok(())
    }
}
