//! Replays each actor from its events alone, with the domain's own folds (`Market::apply`,
//! `UserState::apply`, `OperatorState::apply`: nothing is re-implemented here), checks what
//! can be checked event by event (no overfill, book never crossed, every event fits its
//! state), and records the facts the cross-stream checks need (`facts.rs`).
//!
//! A market's spec is not in its own stream: it comes from the users' `OrderPlaced` events,
//! which carry it so that user streams replay alone. The auditor therefore replays user
//! streams first (`StreamKind::order`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

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
    /// Each live order's quantity still open, by the market's own events. Touched by every
    /// market event, keyed by ids the auditor trusts no more than the rest: hashed fast, and
    /// a hostile store can at worst make its own audit slow.
    open: FxHashMap<OrderId, QtyLots>,
}

impl MarketReplay {
    pub fn new(spec: MarketSpec) -> MarketReplay {
        MarketReplay { market: Market::new(spec), open: FxHashMap::default() }
    }
}

/// The replay of every stream, and what it learnt.
#[derive(Default)]
pub struct Replayer {
    pub specs: BTreeMap<MarketId, MarketSpec>,
    /// Where each market's spec was first read, to name a conflicting one found elsewhere.
    pub spec_sources: BTreeMap<MarketId, At>,
    pub facts: Facts,
    /// The name the last fact was read in, shared by the facts of one stream.
    current_stream: Arc<str>,
}

/// The replay of this stream stopped: its state no longer means anything.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;

/// A stored event decoded for the kind of actor its stream belongs to. Decoding needs nothing
/// but the event, so the auditor does it beside the hash check, off the thread that folds.
#[derive(Debug)]
pub enum Decoded {
    /// Nothing to fold: a bookkeeping event (consumed positions, signed orders carry no state
    /// the invariants read), or a stream with no actor to rebuild.
    Skip,
    Market(MarketEvent),
    User(UserEvent),
    Operator(OperatorEvent),
    /// Why the payload does not decode: a finding at this version, and the end of the replay.
    Undecodable(String),
}

impl Decoded {
    pub fn of(kind: StreamKind, e: &SealedEvent) -> Decoded {
        if is_bookkeeping(&e.event_type) {
            return Decoded::Skip;
        }
        let undecodable =
            |x: &dyn std::fmt::Display| Decoded::Undecodable(format!("{} does not decode: {x}", e.event_type));
        match kind {
            StreamKind::Market => match decode_market_event_bytes(&e.event_type, e.schema_version, &e.payload) {
                Ok(event) => Decoded::Market(event),
                Err(x) => undecodable(&x),
            },
            StreamKind::User => match decode_user_event_bytes(&e.event_type, e.schema_version, &e.payload) {
                Ok(event) => Decoded::User(event),
                Err(x) => undecodable(&x),
            },
            StreamKind::Operator => {
                let value = match serde_json::from_slice(&e.payload) {
                    Ok(value) => value,
                    Err(x) => return Decoded::Undecodable(format!("payload: {x}")),
                };
                match decode_operator_event(&e.event_type, e.schema_version, value) {
                    Ok(event) => Decoded::Operator(event),
                    Err(x) => undecodable(&x),
                }
            }
            StreamKind::Other => Decoded::Skip,
        }
    }
}

impl Replayer {
    /// A replayer that knows `specs` (read in streams replayed elsewhere) and nothing else.
    pub fn with_specs(specs: BTreeMap<MarketId, MarketSpec>) -> Replayer {
        Replayer { specs, ..Replayer::default() }
    }

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

    /// Decodes one stored event and folds it into `actor`.
    pub fn fold_stored(
        &mut self,
        stream: &StreamId,
        actor: &mut Actor,
        e: &SealedEvent,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        let decoded = Decoded::of(StreamKind::of(stream), e);
        self.fold_decoded(stream.as_str(), actor, e.version, &decoded, findings)
    }

    /// Folds one event [`Decoded::of`] decoded (possibly on another thread) into `actor`.
    pub fn fold_decoded(
        &mut self,
        stream: &str,
        actor: &mut Actor,
        version: u64,
        decoded: &Decoded,
        findings: &mut Findings,
    ) -> Result<(), Stopped> {
        match (actor, decoded) {
            (Actor::None, _) | (_, Decoded::Skip) => Ok(()),
            (_, Decoded::Undecodable(msg)) => {
                findings.violate(Check::Replay, Some(stream), Some(version), msg.clone());
                Err(Stopped)
            }
            (Actor::Market(m), Decoded::Market(event)) => self.fold_market(stream, version, m, event, findings),
            (Actor::User(state), Decoded::User(event)) => self.fold_user(stream, version, state, event, findings),
            (Actor::Operator(state), Decoded::Operator(event)) => {
                self.fold_operator(stream, version, state, event, findings)
            }
            // `Decoded::of` decodes by the stream's kind and `start` builds the actor by it too.
            _ => {
                let msg = "event decoded for another kind of actor than the stream's".to_owned();
                findings.violate(Check::Replay, Some(stream), Some(version), msg);
                Err(Stopped)
            }
        }
    }

    /// Where a fact was read. Consecutive facts of one stream share its name.
    fn at(&mut self, stream: &str, version: u64) -> At {
        if &*self.current_stream != stream {
            self.current_stream = Arc::from(stream);
        }
        At { stream: Arc::clone(&self.current_stream), version }
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
            let at = self.at(stream, version);
            self.facts.trades.insert(key, (at, *trade));
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
        let at = self.at(stream, version);
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
                    self.spec_sources.insert(*market, at);
                }
            },
            UserEvent::FillApplied { market, order, trade } => {
                // `apply` succeeded, so the order is one side of the trade and its market is held.
                let fee = if trade.buyer().0 == *order { trade.buyer_fee() } else { trade.seller_fee() };
                let fee_asset = state.market(*market).map(|h| h.spec.quote);
                if let Some(fee_asset) = fee_asset {
                    let key = TradeKey { market: *market, trade: trade.id };
                    let fill = Fill { at, user: state.user(), trade: *trade, fee: fee.0, fee_asset };
                    self.facts.fills.entry((key, *order)).or_default().push(fill);
                }
            }
            UserEvent::TradeVoided { market, order, trade, reclaimed_asset, reclaimed, restored_asset, restored } => {
                let key = TradeKey { market: *market, trade: *trade };
                let void = UserVoid {
                    at,
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

    /// The specs `other` read that this one does not know yet; no findings (the merge of the
    /// same lanes, [`Replayer::absorb`], reports conflicts).
    pub fn learn_specs(&mut self, other: &Replayer) {
        for (market, spec) in &other.specs {
            self.specs.entry(*market).or_insert_with(|| spec.clone());
        }
    }

    /// Takes in what another lane replayed (other streams): its specs, where they differ from
    /// the ones known, are the same violation as within one lane.
    pub fn absorb(&mut self, other: Replayer, findings: &mut Findings) {
        for (market, spec) in other.specs {
            match self.specs.get(&market) {
                Some(known) if *known != spec => {
                    let at = other.spec_sources.get(&market);
                    let msg = format!("order placed with a spec of {market} that differs from another user's");
                    findings.violate(Check::Replay, at.map(|a| &*a.stream), at.map(|a| a.version), msg);
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
                    let at = self.at(stream, version);
                    self.facts.confirmed.entry(*key).or_default().push(at);
                }
            }
            OperatorEvent::TradeVoided { trade, key, .. } => {
                let at = self.at(stream, version);
                self.facts.operator_voids.entry(*key).or_default().push((at, *trade));
            }
            _ => {}
        }
        Ok(())
    }
}
