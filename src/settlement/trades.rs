//! A matched trade on its way to the chain: what the market sent on the settlement queue,
//! its on-chain form, and what settling it (or giving up on it) means for each party. Pure.

use crate::chain::batch::{OrderKey, TradeToSettle};
use crate::chain::eip712::SignedOrder;
use crate::domain::{Amount, AssetId, MarketId, MarketSpec, OrderAuth, OrderId, Side, Trade, TradeId, UserId};

use super::auth::decode_order_auth;

/// A trade by its market and the market's gapless trade id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TradeKey {
    pub market: MarketId,
    pub trade: TradeId,
}

impl std::fmt::Display for TradeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.market, self.trade)
    }
}

/// A trade waiting to settle, with both signed orders as the market had them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTrade {
    pub market: MarketId,
    pub trade: Trade,
    pub maker_auth: Option<OrderAuth>,
    pub taker_auth: Option<OrderAuth>,
}

/// Why a trade can never be settled as it stands. Each is a fault upstream of the chain (the
/// API or the market let through what the contract will refuse), so voiding it also halts
/// its market.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsettleable {
    #[error("the {0} order has no signed order")]
    Unsigned(&'static str),
    #[error("the {role} order's signed order does not read: {reason}")]
    BadAuth { role: &'static str, reason: String },
    #[error("the {0} order's signed order is for another trader")]
    WrongTrader(&'static str),
    #[error("the market {0} is not configured")]
    UnknownMarket(MarketId),
    #[error("the trade's fees are not the market's rates applied to its notional")]
    FeeMismatch,
}

/// One party's side of a trade: what it receives (and waits to settle) and what it gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Party {
    pub user: UserId,
    pub order: OrderId,
    /// Into settling; available once the trade settles on-chain.
    pub receives: (AssetId, Amount),
}

impl QueuedTrade {
    pub fn key(&self) -> TradeKey {
        TradeKey { market: self.market, trade: self.trade.id }
    }

    /// Both signed orders (maker, taker), each checked to be its party's.
    pub fn signed_orders(&self) -> Result<(SignedOrder, SignedOrder), Unsettleable> {
        let read = |role: &'static str, auth: &Option<OrderAuth>, user: UserId| {
            let auth = auth.as_ref().ok_or(Unsettleable::Unsigned(role))?;
            let signed = decode_order_auth(auth).map_err(|e| Unsettleable::BadAuth { role, reason: e.to_string() })?;
            if signed.order.trader.0 != user.0 {
                return Err(Unsettleable::WrongTrader(role));
            }
            Ok(signed)
        };
        Ok((
            read("maker", &self.maker_auth, self.trade.maker_user)?,
            read("taker", &self.taker_auth, self.trade.taker_user)?,
        ))
    }

    /// The orders' keys on-chain (maker, taker), for batching; None when unreadable.
    pub fn order_keys(&self) -> Option<[OrderKey; 2]> {
        let (maker, taker) = self.signed_orders().ok()?;
        Some([OrderKey::of(&maker), OrderKey::of(&taker)])
    }

    /// The trade as `settleBatch` takes it. The contract recomputes the fees from the rates,
    /// so the rates must give exactly the fees the ledger charged, or the chain and the
    /// ledgers would disagree.
    pub fn to_settle(&self, spec: &MarketSpec) -> Result<TradeToSettle, Unsettleable> {
        if spec.id != self.market {
            return Err(Unsettleable::UnknownMarket(self.market));
        }
        let t = &self.trade;
        let notional = spec.notional(t.price, t.qty).ok_or(Unsettleable::FeeMismatch)?;
        if notional != t.quote_amount
            || spec.maker_fee.fee_on(notional) != t.maker_fee
            || spec.taker_fee.fee_on(notional) != t.taker_fee
        {
            return Err(Unsettleable::FeeMismatch);
        }
        let (maker, taker) = self.signed_orders()?;
        Ok(TradeToSettle {
            maker,
            taker,
            price: t.price,
            qty: t.qty,
            maker_fee: spec.maker_fee,
            taker_fee: spec.taker_fee,
        })
    }

    /// The two parties (buyer first): each receives into settling what the trade's
    /// settlement makes available, the buyer the base, the seller the quote less its fee.
    pub fn parties(&self, spec: &MarketSpec) -> [Party; 2] {
        let t = &self.trade;
        let (buy_order, buyer) = t.buyer();
        let (sell_order, seller) = t.seller();
        // A fee never exceeds its notional (rates are at most 100%), so this cannot underflow.
        let net = Amount(t.quote_amount.0.saturating_sub(t.seller_fee().0));
        [
            Party { user: buyer, order: buy_order, receives: (spec.base, t.base_amount) },
            Party { user: seller, order: sell_order, receives: (spec.quote, net) },
        ]
    }

    /// The party whose signed order is `key`, if any.
    pub fn party_of(&self, key: &OrderKey) -> Option<(UserId, OrderId, Side)> {
        let (maker, taker) = self.signed_orders().ok()?;
        let maker_side = self.trade.taker_side.opposite();
        if OrderKey::of(&maker) == *key {
            Some((self.trade.maker_user, self.trade.maker_order, maker_side))
        } else if OrderKey::of(&taker) == *key {
            Some((self.trade.taker_user, self.trade.taker_order, self.trade.taker_side))
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/trades.rs"]
pub(crate) mod tests;
