//! Open orders and order history per user, folded from the user's own stream (the placement,
//! the market's acknowledgement, fills, applied amends, and the order's end).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EventMeta, FoldError, View, ViewSide};
use crate::domain::{OrderType, ReleaseReason, UserEvent, UserId};

/// Closed orders the history keeps; older ones fall off the front.
pub const HISTORY_LIMIT: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderRowStatus {
    /// Placed; the market has not answered yet.
    Sent,
    /// The market accepted it.
    Working,
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    pub order_id: u64,
    pub market: String,
    pub client_order_id: Option<String>,
    pub side: ViewSide,
    /// `limit` or `market`.
    pub order_type: String,
    /// The current price bound (an applied amend changes it); none for an unbounded market
    /// order.
    pub price_ticks: Option<u64>,
    /// As placed.
    pub qty_lots: u64,
    pub filled_lots: u64,
    /// What the market still holds open, as far as the user has heard.
    pub remaining_lots: u64,
    pub status: OrderRowStatus,
    /// The stable code of why it ended without filling (`user`, `stp`, `ioc`, ...).
    pub reason: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOrdersView {
    pub user: String,
    /// By order id.
    pub open: BTreeMap<u64, OrderRow>,
    /// At most [`HISTORY_LIMIT`] closed orders, in the order they closed.
    pub history: Vec<OrderRow>,
    pub total_closed: u64,
}

impl UserOrdersView {
    fn open_mut(&mut self, order: u64) -> Result<&mut OrderRow, FoldError> {
        self.open.get_mut(&order).ok_or_else(|| FoldError(format!("order {order} is not open")))
    }

    fn close(
        &mut self,
        order: u64,
        status: OrderRowStatus,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), FoldError> {
        let mut row = self.open.remove(&order).ok_or_else(|| FoldError(format!("order {order} is not open")))?;
        row.status = status;
        row.reason = reason;
        row.updated_at = at;
        if status == OrderRowStatus::Filled {
            row.remaining_lots = 0;
        }
        if self.history.len() == HISTORY_LIMIT {
            self.history.remove(0);
        }
        self.history.push(row);
        self.total_closed += 1;
        Ok(())
    }
}

impl View for UserOrdersView {
    const KIND: &'static str = "orders";
    type Key = UserId;
    type Event = UserEvent;

    fn empty(user: UserId) -> UserOrdersView {
        UserOrdersView { user: user.to_string(), open: BTreeMap::new(), history: Vec::new(), total_closed: 0 }
    }

    fn apply(&mut self, meta: EventMeta, event: &UserEvent) -> Result<(), FoldError> {
        let at = meta.occurred_at;
        match event {
            UserEvent::OrderPlaced { market, order, client_order_id, .. } => {
                let (order_type, price) = match order.order_type {
                    OrderType::Limit { price } => ("limit", Some(price.0)),
                    OrderType::Market { worst_price } => ("market", worst_price.map(|p| p.0)),
                };
                let row = OrderRow {
                    order_id: order.id.0,
                    market: market.to_string(),
                    client_order_id: client_order_id.as_ref().map(|c| c.as_str().to_owned()),
                    side: order.side.into(),
                    order_type: order_type.to_owned(),
                    price_ticks: price,
                    qty_lots: order.qty.0,
                    filled_lots: 0,
                    remaining_lots: order.qty.0,
                    status: OrderRowStatus::Sent,
                    reason: None,
                    placed_at: at,
                    updated_at: at,
                };
                if self.open.insert(order.id.0, row).is_some() {
                    return Err(FoldError(format!("order {} placed twice", order.id)));
                }
            }
            UserEvent::OrderAcknowledged { order, .. } => {
                let row = self.open_mut(order.0)?;
                row.status = OrderRowStatus::Working;
                row.updated_at = at;
            }
            UserEvent::AmendApplied { order, price, qty, .. } => {
                let row = self.open_mut(order.0)?;
                row.price_ticks = Some(price.0);
                row.remaining_lots = qty.0;
                row.updated_at = at;
            }
            UserEvent::FillApplied { order, trade, .. } => {
                let row = self.open_mut(order.0)?;
                row.remaining_lots = row.remaining_lots.checked_sub(trade.qty.0).ok_or_else(|| {
                    FoldError(format!("order {order}: fill of {} lots, {} open", trade.qty.0, row.remaining_lots))
                })?;
                row.filled_lots += trade.qty.0;
                row.updated_at = at;
            }
            UserEvent::OrderReleased { order, reason, .. } => {
                let (status, code) = match reason {
                    ReleaseReason::Cancelled(r) => (OrderRowStatus::Cancelled, r.code()),
                    ReleaseReason::Expired(r) => (OrderRowStatus::Expired, r.code()),
                    ReleaseReason::Rejected(r) => (OrderRowStatus::Rejected, r.code()),
                };
                self.close(order.0, status, Some(code.to_owned()), at)?;
            }
            UserEvent::OrderClosed { order, .. } => self.close(order.0, OrderRowStatus::Filled, None, at)?,
            UserEvent::Deposited { .. }
            | UserEvent::Withdrawn { .. }
            | UserEvent::DepositCredited { .. }
            | UserEvent::WithdrawalRequested { .. }
            | UserEvent::WithdrawalCompleted { .. }
            | UserEvent::WithdrawalFailed { .. }
            | UserEvent::CancelRequested { .. }
            | UserEvent::CancelRejected { .. }
            | UserEvent::AmendRequested { .. }
            | UserEvent::AmendReverted { .. }
            | UserEvent::SettlementConfirmed { .. }
            | UserEvent::TradeVoided { .. } => {}
        }
        Ok(())
    }
}
