//! A market actor's signed orders: the user's EIP-712 signature for each order alive in the
//! book, kept so every trade can carry both signed orders to settlement. Actor state beside
//! the domain's (matching never reads it), rebuilt from `market.OrderAuthorized` events and
//! dropped when the order's life ends.
//!
//! An order has one signed order at a time. A signed amend the market applied records the
//! amend's new signed order (another `market.OrderAuthorized` for the same order id, stored
//! before the `market.Amended` it goes with), which replaces the old one: trades routed before
//! it carried the old signature, trades after it carry the new one. The same event type at
//! the same schema version serves both, since folding it has always meant "this is the
//! order's signed order from here on".

use std::collections::HashMap;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{MarketEvent, OrderAuth, OrderBook, OrderId};
use crate::events::{Clock, NewEvent};

pub const ORDER_AUTHORIZED: &str = "market.OrderAuthorized";
pub const ORDER_AUTHORIZED_VERSION: u16 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderAuths {
    by_order: HashMap<OrderId, OrderAuth>,
}

impl OrderAuths {
    pub fn get(&self, order: OrderId) -> Option<&OrderAuth> {
        self.by_order.get(&order)
    }

    /// Records `order`'s signed order, replacing any earlier one (a signed amend's).
    pub fn insert(&mut self, order: OrderId, auth: OrderAuth) {
        self.by_order.insert(order, auth);
    }

    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// The event recording `order`'s signature in the market's stream.
    pub fn event(clock: &dyn Clock, correlation: Uuid, order: OrderId, auth: &OrderAuth) -> NewEvent {
        let payload = json!({ "order_id": order.0, "auth": auth.as_str() });
        NewEvent::new(clock, correlation, correlation, ORDER_AUTHORIZED, ORDER_AUTHORIZED_VERSION, payload)
    }

    /// Folds a stored `market.OrderAuthorized`.
    pub fn apply(&mut self, payload: &Value) -> Result<(), String> {
        let order = payload["order_id"].as_u64().ok_or("market.OrderAuthorized: order_id")?;
        let auth = payload["auth"].as_str().ok_or("market.OrderAuthorized: auth")?;
        self.insert(OrderId(order), OrderAuth::new(auth));
        Ok(())
    }

    /// Forgets an order whose life `event` ends: it can never trade again. `book` is the book
    /// with `event` applied. A rejection ends a placement, but a refused amend or cancel names
    /// an order that lives on in the book, and its signed order must stay for its next trades.
    pub fn forget_ended(&mut self, event: &MarketEvent, book: &OrderBook) {
        match event {
            MarketEvent::Filled { order }
            | MarketEvent::Expired { order, .. }
            | MarketEvent::Cancelled { order, .. } => {
                self.by_order.remove(order);
            }
            MarketEvent::Rejected { order, .. } if !book.contains(*order) => {
                self.by_order.remove(order);
            }
            _ => {}
        }
    }

    /// The snapshot form: order id -> signed order text, sorted so equal states give equal bytes.
    pub fn to_snapshot(&self) -> Value {
        if self.by_order.is_empty() {
            return Value::Null;
        }
        let mut pairs: Vec<(&OrderId, &OrderAuth)> = self.by_order.iter().collect();
        pairs.sort_by_key(|(id, _)| **id);
        Value::Array(pairs.into_iter().map(|(id, auth)| json!([id.0, auth.as_str()])).collect())
    }

    /// From the snapshot form; None if it is malformed (the snapshot is then refused).
    pub fn from_snapshot(value: &Value) -> Option<OrderAuths> {
        let mut auths = OrderAuths::default();
        match value {
            Value::Null => {}
            Value::Array(pairs) => {
                for pair in pairs {
                    let id = pair.get(0)?.as_u64()?;
                    let auth = pair.get(1)?.as_str()?;
                    auths.insert(OrderId(id), OrderAuth::new(auth));
                }
            }
            _ => return None,
        }
        Some(auths)
    }
}

#[cfg(test)]
#[path = "../../unit_tests/actors/order_auths.rs"]
mod tests;
