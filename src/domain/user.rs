//! A user: balances, open orders and their locks, used order nonces and client order ids,
//! driven by commands and changed only by events, in the same decide / apply shape as
//! `Market`.
//!
//! `decide` reads the state and returns the events a command produces, or a typed rejection;
//! it never mutates, so a rejected or unstored command leaves the user exactly as it was.
//! `apply` folds one event in through the ledger's `Account` methods, so balances move only by
//! checked arithmetic. Replaying a user's events rebuilds the live state bit for bit
//! (`canonical_bytes` equal).
//!
//! The user and its markets talk through queues, so a user's requests and the markets'
//! answers cross. Each open order remembers what it has asked its market and not yet heard
//! back about (the placement, at most one amend, at most one cancel): a market processes one
//! market's commands in order and answers in order, so a `Rejected` always answers the oldest
//! request still outstanding.
//!
//! Amends. A market amend sets the order's remainder absolutely, and the market may fill the
//! old terms before it reaches the amend, so while an amend is in flight the order's lock
//! covers the old remainder *and* the new terms (quantity summed, a buy at the higher of the
//! two prices). When the market answers, the lock shrinks to exactly the outcome: the new
//! terms (`AmendApplied`) or the old ones (`AmendReverted`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::ids::{AssetId, ClientOrderId, MarketId, OrderId, TradeId, UserId};
use super::ledger::{Account, Balance, LedgerError, OrderLock};
use super::market::MarketSpec;
use super::market_event::{CancelReason, ExpireReason, MarketEvent, RejectReason, Trade};
use super::order::{AmendAuth, NewOrder, OrderAuth, Side};
use super::transfers::{DepositId, PendingWithdrawal, TransferError, Transfers, TransfersParts, WithdrawalAuth};
use super::units::{Amount, PriceTicks, QtyLots};

/// Open orders a user may hold at once (placed and not yet closed by its market).
pub const MAX_OPEN_ORDERS: usize = 1_000;
/// How many of the highest used nonces are remembered; a nonce below all of them is too old.
pub const NONCE_WINDOW: usize = 100;
/// Client order ids of closed orders remembered for idempotent retries, oldest dropped first.
pub const CLIENT_ID_HISTORY: usize = 1_000;

/// A new order as the user submits it; its id is assigned by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    pub market: MarketId,
    /// `order.user` must be this user.
    pub order: NewOrder,
    pub client_order_id: Option<ClientOrderId>,
    pub nonce: u64,
    /// The user's signature over the order, carried to settlement (None where nothing settles
    /// on-chain, as in `hob match`-style tests).
    pub auth: Option<OrderAuth>,
}

/// What a user can be asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand<'a> {
    Deposit {
        asset: AssetId,
        amount: Amount,
    },
    /// Debits what is available only.
    Withdraw {
        asset: AssetId,
        amount: Amount,
    },
    /// A deposit the chain watcher saw confirmed; one already credited decides to nothing.
    CreditDeposit {
        deposit: DepositId,
        asset: AssetId,
        amount: Amount,
    },
    /// The user's signed withdrawal: moves `amount` from available to withdrawing.
    RequestWithdrawal {
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        auth: WithdrawalAuth,
    },
    /// The chain executed withdrawal `nonce`; one no longer pending decides to nothing.
    CompleteWithdrawal {
        nonce: u64,
    },
    /// The chain refused withdrawal `nonce`: its amount goes back to available.
    FailWithdrawal {
        nonce: u64,
        reason: String,
    },
    Place {
        spec: &'a MarketSpec,
        request: OrderRequest,
    },
    /// Asks the market to cancel; balances change when the market answers.
    Cancel {
        market: MarketId,
        order: OrderId,
    },
    /// Asks the market to change a resting order's price and remaining quantity; `signed`
    /// carries the new signed order when trades settle on-chain (its nonce must be unused).
    Amend {
        spec: &'a MarketSpec,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        signed: Option<AmendAuth>,
    },
    /// One market event about one of this user's orders (events about other orders decide
    /// to nothing).
    ApplyMarket {
        spec: &'a MarketSpec,
        event: &'a MarketEvent,
    },
    /// A trade's settlement confirmed on-chain: settling funds become available.
    ConfirmSettlement {
        asset: AssetId,
        amount: Amount,
    },
    /// A trade of this user's order `order` will never settle on-chain (its settlement was
    /// refused or given up): undo its effect on the balances.
    VoidTrade {
        spec: &'a MarketSpec,
        order: OrderId,
        trade: &'a Trade,
    },
}

/// Why an order's lock went back to available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    Cancelled(CancelReason),
    Expired(ExpireReason),
    /// The market refused the placement.
    Rejected(RejectReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEvent {
    Deposited {
        asset: AssetId,
        amount: Amount,
    },
    Withdrawn {
        asset: AssetId,
        amount: Amount,
    },
    /// A deposit seen on-chain, credited once by its id.
    DepositCredited {
        deposit: DepositId,
        asset: AssetId,
        amount: Amount,
    },
    /// Available down, withdrawing up; `auth` is what the operator sends on-chain.
    WithdrawalRequested {
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        auth: WithdrawalAuth,
    },
    /// The vault paid it out: withdrawing down.
    WithdrawalCompleted {
        nonce: u64,
        asset: AssetId,
        amount: Amount,
    },
    /// The chain refused it: withdrawing down, available back up.
    WithdrawalFailed {
        nonce: u64,
        asset: AssetId,
        amount: Amount,
        reason: String,
    },
    /// The order passed the user's checks and its cost is locked. Carries the market's spec
    /// so that replaying the user's stream alone can size locks and fills.
    OrderPlaced {
        market: MarketId,
        order: NewOrder,
        client_order_id: Option<ClientOrderId>,
        nonce: u64,
        lock: OrderLock,
        spec: MarketSpec,
        auth: Option<OrderAuth>,
    },
    /// The market accepted the placement.
    OrderAcknowledged {
        market: MarketId,
        order: OrderId,
    },
    CancelRequested {
        market: MarketId,
        order: OrderId,
    },
    /// The market refused a cancel (typically: the order had already left the book).
    CancelRejected {
        market: MarketId,
        order: OrderId,
        reason: RejectReason,
    },
    /// The lock grew to cover both the old remainder and the new terms (see the module doc).
    /// A signed amend's nonce is used from here on, whatever the market answers.
    AmendRequested {
        market: MarketId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        previous: OrderLock,
        lock: OrderLock,
        signed: Option<AmendAuth>,
    },
    /// The market applied the amend: the lock is exactly the new terms.
    AmendApplied {
        market: MarketId,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        lock: OrderLock,
    },
    /// The market refused the amend: the lock is exactly the old terms again.
    AmendReverted {
        market: MarketId,
        order: OrderId,
        reason: RejectReason,
        lock: OrderLock,
    },
    /// This user's side of a trade: spent lock out, proceeds to settling.
    FillApplied {
        market: MarketId,
        order: OrderId,
        trade: Trade,
    },
    /// The order left the market without trading its remainder; `amount` went back to
    /// available.
    OrderReleased {
        market: MarketId,
        order: OrderId,
        amount: Amount,
        reason: ReleaseReason,
    },
    /// Every lot traded; `released` is what was left of the lock (non-zero only when an amend
    /// was in flight).
    OrderClosed {
        market: MarketId,
        order: OrderId,
        released: Amount,
    },
    SettlementConfirmed {
        asset: AssetId,
        amount: Amount,
    },
    /// A trade of this user's that will never settle, undone as a new event (the fill stays in
    /// history): `reclaimed` of `reclaimed_asset` left settling, `restored` of
    /// `restored_asset` (what the trade cost, its fee included) came back as available.
    TradeVoided {
        market: MarketId,
        order: OrderId,
        trade: TradeId,
        reclaimed_asset: AssetId,
        reclaimed: Amount,
        restored_asset: AssetId,
        restored: Amount,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserReject {
    /// The client order id names an order already placed: the caller answers with it.
    #[error("client order id already used by order {existing}")]
    DuplicateClientOrderId { existing: OrderId },
    #[error("nonce already used")]
    NonceUsed,
    #[error("nonce is below the window of the {NONCE_WINDOW} highest nonces used")]
    NonceTooOld,
    #[error("the order belongs to another user")]
    WrongUser,
    #[error("the order names market {request}, the spec is of {spec}")]
    MarketMismatch { request: MarketId, spec: MarketId },
    #[error("order rejected: {}", .0.code())]
    Grid(RejectReason),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("no such open order")]
    UnknownOrder,
    #[error("only a limit order that may rest can be amended")]
    NotAmendable,
    #[error("an amend of this order is already in flight")]
    AmendPending,
    #[error("a cancel of this order is already in flight")]
    CancelPending,
    #[error("at most {limit} open orders")]
    TooManyOpenOrders { limit: usize },
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("withdrawal nonce already used")]
    WithdrawalNonceUsed,
}

/// An event that does not fit the state it is applied to: a corrupt or reordered stream.
/// After one, the state must be thrown away and rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserApplyError {
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("order {0} is not open")]
    UnknownOrder(OrderId),
    #[error("order {0} is already open")]
    DuplicateOrder(OrderId),
    #[error("order {0} belongs to another user")]
    WrongUser(OrderId),
    #[error("no market {0} is held")]
    UnknownMarket(MarketId),
    #[error("nonce {0} is used or outside the window")]
    Nonce(u64),
    #[error("client order id {0:?} is already used")]
    DuplicateClientOrderId(ClientOrderId),
    #[error("order {order}: the event's lock {expected:?} differs from the ledger's {got:?}")]
    LockMismatch { order: OrderId, expected: Box<OrderLock>, got: Option<Box<OrderLock>> },
    #[error("order {order}: the event releases {expected}, the ledger held {got}")]
    ReleaseMismatch { order: OrderId, expected: Amount, got: Amount },
    #[error("order {order}: {what} without a matching request in flight")]
    NotPending { order: OrderId, what: &'static str },
    #[error("order {order} has {open} lots open, cannot fill {qty}")]
    Overfill { order: OrderId, open: QtyLots, qty: QtyLots },
    #[error("at most {MAX_OPEN_ORDERS} open orders")]
    TooManyOpenOrders,
    #[error("snapshot part: {0}")]
    Restore(&'static str),
    #[error("transfer: {0}")]
    Transfer(#[from] TransferError),
}

/// Whether the market has answered the placement yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Placed and sent; the market has not answered.
    Sent,
    /// The market accepted it.
    Working,
}

/// A request sent to the market about an order, not yet answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingRequest {
    /// The amend's new terms and the lock before it.
    Amend {
        price: PriceTicks,
        qty: QtyLots,
        previous: OrderLock,
    },
    Cancel,
}

/// An order placed and not yet closed by its market.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOrder {
    pub market: MarketId,
    /// As placed.
    pub order: NewOrder,
    /// The current price bound (changes with an applied amend).
    pub price: Option<PriceTicks>,
    /// Lots the market still holds open, as far as this user has heard.
    pub qty: QtyLots,
    pub client_order_id: Option<ClientOrderId>,
    pub nonce: u64,
    pub status: OrderStatus,
    /// Oldest first; at most one amend and one cancel.
    pub pending: Vec<PendingRequest>,
}

impl OpenOrder {
    fn amend_pending(&self) -> Option<(PriceTicks, QtyLots, OrderLock)> {
        self.pending.iter().find_map(|p| match *p {
            PendingRequest::Amend { price, qty, previous } => Some((price, qty, previous)),
            PendingRequest::Cancel => None,
        })
    }

    fn cancel_pending(&self) -> bool {
        self.pending.contains(&PendingRequest::Cancel)
    }
}

/// A market this user has open orders in: its spec as of the latest placement (a market's
/// spec is fixed for its life) and the last trade applied, so a redelivered trade is a no-op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldMarket {
    pub spec: MarketSpec,
    pub last_trade: Option<TradeId>,
    pub open_orders: usize,
}

/// The nonces used, the highest [`NONCE_WINDOW`] of them: out-of-order submissions within the
/// window are accepted, a replay is not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonceWindow {
    used: BTreeSet<u64>,
}

impl NonceWindow {
    pub fn check(&self, nonce: u64) -> Result<(), UserReject> {
        if self.used.contains(&nonce) {
            return Err(UserReject::NonceUsed);
        }
        if self.used.len() >= NONCE_WINDOW && self.used.first().is_some_and(|&lowest| nonce < lowest) {
            return Err(UserReject::NonceTooOld);
        }
        Ok(())
    }

    fn insert(&mut self, nonce: u64) -> Result<(), UserApplyError> {
        self.check(nonce).map_err(|_| UserApplyError::Nonce(nonce))?;
        self.used.insert(nonce);
        while self.used.len() > NONCE_WINDOW {
            self.used.pop_first();
        }
        Ok(())
    }

    pub fn used(&self) -> impl Iterator<Item = u64> + '_ {
        self.used.iter().copied()
    }
}

/// Everything a user's state holds, plainly, for snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserStateParts {
    pub user: UserId,
    /// By asset, ascending.
    pub balances: Vec<(AssetId, Balance)>,
    /// By order id, ascending, each with its lock if it still holds one.
    pub orders: Vec<(OpenOrder, Option<OrderLock>)>,
    /// Ascending.
    pub nonces: Vec<u64>,
    /// Client order ids of closed orders, oldest first.
    pub closed_client_ids: Vec<(ClientOrderId, OrderId)>,
    /// By market id, ascending.
    pub markets: Vec<HeldMarket>,
    pub transfers: TransfersParts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    user: UserId,
    account: Account,
    nonces: NonceWindow,
    open: BTreeMap<OrderId, OpenOrder>,
    /// Client order ids of open orders and of the last [`CLIENT_ID_HISTORY`] closed ones.
    client_ids: BTreeMap<ClientOrderId, OrderId>,
    closed_client_ids: VecDeque<(ClientOrderId, OrderId)>,
    markets: BTreeMap<MarketId, HeldMarket>,
    transfers: Transfers,
}

impl UserState {
    pub fn new(user: UserId) -> UserState {
        UserState {
            user,
            account: Account::new(),
            nonces: NonceWindow::default(),
            open: BTreeMap::new(),
            client_ids: BTreeMap::new(),
            closed_client_ids: VecDeque::new(),
            markets: BTreeMap::new(),
            transfers: Transfers::default(),
        }
    }

    pub fn user(&self) -> UserId {
        self.user
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn nonces(&self) -> &NonceWindow {
        &self.nonces
    }

    /// Open orders by ascending id.
    pub fn open_orders(&self) -> impl Iterator<Item = (OrderId, &OpenOrder)> + '_ {
        self.open.iter().map(|(id, o)| (*id, o))
    }

    pub fn open_order(&self, order: OrderId) -> Option<&OpenOrder> {
        self.open.get(&order)
    }

    /// The order a client order id names, if it is open or recently closed.
    pub fn order_by_client_id(&self, id: &ClientOrderId) -> Option<OrderId> {
        self.client_ids.get(id).copied()
    }

    pub fn market(&self, market: MarketId) -> Option<&HeldMarket> {
        self.markets.get(&market)
    }

    /// Deposits credited and withdrawals in flight.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// The events `command` produces, or why it is refused. Never mutates.
    pub fn decide(&self, command: UserCommand<'_>) -> Result<Vec<UserEvent>, UserReject> {
        match command {
            UserCommand::Deposit { asset, amount } => {
                nonzero(amount)?;
                let b = self.account.balance(asset);
                let total = b.total().and_then(|t| t.checked_add(amount));
                b.available.checked_add(amount).and(total).ok_or(LedgerError::Overflow)?;
                Ok(vec![UserEvent::Deposited { asset, amount }])
            }
            UserCommand::Withdraw { asset, amount } => {
                nonzero(amount)?;
                let available = self.account.balance(asset).available;
                if available < amount {
                    return Err(LedgerError::InsufficientBalance { asset, needed: amount, available }.into());
                }
                Ok(vec![UserEvent::Withdrawn { asset, amount }])
            }
            UserCommand::CreditDeposit { deposit, asset, amount } => {
                if self.transfers.is_credited(&deposit) {
                    return Ok(Vec::new());
                }
                nonzero(amount)?;
                let b = self.account.balance(asset);
                let total = b.total().and_then(|t| t.checked_add(amount));
                b.available.checked_add(amount).and(total).ok_or(LedgerError::Overflow)?;
                Ok(vec![UserEvent::DepositCredited { deposit, asset, amount }])
            }
            UserCommand::RequestWithdrawal { nonce, asset, amount, auth } => {
                nonzero(amount)?;
                if self.transfers.nonce_used(nonce) {
                    return Err(UserReject::WithdrawalNonceUsed);
                }
                let available = self.account.balance(asset).available;
                if available < amount {
                    return Err(LedgerError::InsufficientBalance { asset, needed: amount, available }.into());
                }
                Ok(vec![UserEvent::WithdrawalRequested { nonce, asset, amount, auth }])
            }
            UserCommand::CompleteWithdrawal { nonce } => Ok(self
                .transfers
                .pending(nonce)
                .map(|p| UserEvent::WithdrawalCompleted { nonce, asset: p.asset, amount: p.amount })
                .into_iter()
                .collect()),
            UserCommand::FailWithdrawal { nonce, reason } => Ok(self
                .transfers
                .pending(nonce)
                .map(|p| UserEvent::WithdrawalFailed { nonce, asset: p.asset, amount: p.amount, reason })
                .into_iter()
                .collect()),
            UserCommand::ConfirmSettlement { asset, amount } => {
                nonzero(amount)?;
                let b = self.account.balance(asset);
                if b.settling < amount {
                    return Err(LedgerError::Underflow { asset, bucket: "settling" }.into());
                }
                b.available.checked_add(amount).ok_or(LedgerError::Overflow)?;
                Ok(vec![UserEvent::SettlementConfirmed { asset, amount }])
            }
            UserCommand::Place { spec, request } => self.decide_place(spec, request),
            UserCommand::Cancel { market, order } => {
                let open = self.own(market, order)?;
                if open.cancel_pending() {
                    return Err(UserReject::CancelPending);
                }
                Ok(vec![UserEvent::CancelRequested { market, order }])
            }
            UserCommand::Amend { spec, order, price, qty, signed } => {
                self.decide_amend(spec, order, price, qty, signed)
            }
            UserCommand::ApplyMarket { spec, event } => Ok(self.decide_market(spec, event)),
            UserCommand::VoidTrade { spec, order, trade } => self.decide_void(spec, order, trade),
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &UserEvent) -> Result<(), UserApplyError> {
        match event {
            UserEvent::Deposited { asset, amount } => self.account.deposit(*asset, *amount)?,
            UserEvent::Withdrawn { asset, amount } => self.account.withdraw(*asset, *amount)?,
            UserEvent::DepositCredited { deposit, asset, amount } => {
                self.transfers.credit(*deposit)?;
                self.account.deposit(*asset, *amount)?;
            }
            UserEvent::WithdrawalRequested { nonce, asset, amount, .. } => {
                self.account.withdraw(*asset, *amount)?;
                self.transfers.request(*nonce, PendingWithdrawal { asset: *asset, amount: *amount })?;
            }
            UserEvent::WithdrawalCompleted { nonce, asset, amount } => {
                self.transfers.finish(*nonce, PendingWithdrawal { asset: *asset, amount: *amount })?;
            }
            UserEvent::WithdrawalFailed { nonce, asset, amount, .. } => {
                self.transfers.finish(*nonce, PendingWithdrawal { asset: *asset, amount: *amount })?;
                self.account.deposit(*asset, *amount)?;
            }
            UserEvent::SettlementConfirmed { asset, amount } => self.account.confirm_settlement(*asset, *amount)?,
            UserEvent::TradeVoided { reclaimed_asset, reclaimed, restored_asset, restored, .. } => {
                self.account.void_fill((*reclaimed_asset, *reclaimed), (*restored_asset, *restored))?
            }
            UserEvent::OrderPlaced { market, order, client_order_id, nonce, lock, spec, .. } => {
                self.apply_placed(*market, order, client_order_id, *nonce, lock, spec)?
            }
            UserEvent::OrderAcknowledged { order, .. } => {
                let open = self.open.get_mut(order).ok_or(UserApplyError::UnknownOrder(*order))?;
                if open.status != OrderStatus::Sent {
                    return Err(UserApplyError::NotPending { order: *order, what: "acknowledgement" });
                }
                open.status = OrderStatus::Working;
            }
            UserEvent::CancelRequested { order, .. } => {
                let open = self.open.get_mut(order).ok_or(UserApplyError::UnknownOrder(*order))?;
                if open.cancel_pending() {
                    return Err(UserApplyError::NotPending { order: *order, what: "second cancel" });
                }
                open.pending.push(PendingRequest::Cancel);
            }
            UserEvent::CancelRejected { order, .. } => {
                let open = self.open.get_mut(order).ok_or(UserApplyError::UnknownOrder(*order))?;
                if open.pending.first() != Some(&PendingRequest::Cancel) {
                    return Err(UserApplyError::NotPending { order: *order, what: "cancel rejection" });
                }
                open.pending.remove(0);
            }
            UserEvent::AmendRequested { order, price, qty, previous, lock, signed, .. } => {
                let open = self.open.get(order).ok_or(UserApplyError::UnknownOrder(*order))?;
                if open.amend_pending().is_some() {
                    return Err(UserApplyError::NotPending { order: *order, what: "second amend" });
                }
                if let Some(signed) = signed {
                    // Checked before anything moves, so a bad event changes nothing.
                    self.nonces.check(signed.nonce).map_err(|_| UserApplyError::Nonce(signed.nonce))?;
                }
                let got = self.account.lock(*order).copied();
                if got != Some(*previous) {
                    return Err(UserApplyError::LockMismatch {
                        order: *order,
                        expected: Box::new(*previous),
                        got: got.map(Box::new),
                    });
                }
                self.relock(*order, lock.limit, lock.qty, lock)?;
                if let Some(signed) = signed {
                    self.nonces.insert(signed.nonce)?;
                }
                if let Some(open) = self.open.get_mut(order) {
                    open.pending.push(PendingRequest::Amend { price: *price, qty: *qty, previous: *previous });
                }
            }
            UserEvent::AmendApplied { order, price, qty, lock, .. } => {
                self.take_amend(*order)?;
                self.relock(*order, *price, *qty, lock)?;
                if let Some(open) = self.open.get_mut(order) {
                    open.price = Some(*price);
                    open.qty = *qty;
                }
            }
            UserEvent::AmendReverted { order, lock, .. } => {
                let (_, _, previous) = self.take_amend(*order)?;
                let qty = self.open.get(order).map_or(QtyLots::ZERO, |o| o.qty);
                self.relock(*order, previous.limit, qty, lock)?;
            }
            UserEvent::FillApplied { market, order, trade } => {
                let open = self.open.get_mut(order).ok_or(UserApplyError::UnknownOrder(*order))?;
                if trade.qty > open.qty {
                    return Err(UserApplyError::Overfill { order: *order, open: open.qty, qty: trade.qty });
                }
                let held = self.markets.get_mut(market).ok_or(UserApplyError::UnknownMarket(*market))?;
                self.account.apply_fill(&held.spec, *order, trade)?;
                open.qty -= trade.qty;
                held.last_trade = Some(trade.id);
            }
            UserEvent::OrderReleased { order, amount, .. } => {
                let released = self.account.release_order(*order)?;
                if released != *amount {
                    return Err(UserApplyError::ReleaseMismatch { order: *order, expected: *amount, got: released });
                }
                self.close(*order)?;
            }
            UserEvent::OrderClosed { order, released, .. } => {
                let got = if self.account.lock(*order).is_some() {
                    self.account.release_order(*order)?
                } else {
                    Amount::ZERO
                };
                if got != *released {
                    return Err(UserApplyError::ReleaseMismatch { order: *order, expected: *released, got });
                }
                self.close(*order)?;
            }
        }
        Ok(())
    }

    /// A deterministic encoding of the whole state: equal bytes exactly when the states are
    /// equal. Used for state hashes and to prove a restored snapshot equals the live state.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let parts = self.to_parts();
        let mut e = Encoder(Vec::with_capacity(256 + parts.orders.len() * 160));
        e.u8(CANONICAL_FORMAT);
        e.bytes(&parts.user.0);
        e.u64(parts.balances.len() as u64);
        for (asset, b) in &parts.balances {
            e.str(asset.as_str());
            e.u128(b.available.0);
            e.u128(b.locked.0);
            e.u128(b.settling.0);
        }
        e.u64(parts.orders.len() as u64);
        for (o, lock) in &parts.orders {
            e.str(o.market.as_str());
            e.new_order(&o.order);
            e.opt_u64(o.price.map(|p| p.0));
            e.u64(o.qty.0);
            e.opt_str(o.client_order_id.as_ref().map(|c| c.as_str()));
            e.u64(o.nonce);
            e.u8(match o.status {
                OrderStatus::Sent => 0,
                OrderStatus::Working => 1,
            });
            e.u64(o.pending.len() as u64);
            for p in &o.pending {
                match p {
                    PendingRequest::Amend { price, qty, previous } => {
                        e.u8(1);
                        e.u64(price.0);
                        e.u64(qty.0);
                        e.lock(previous);
                    }
                    PendingRequest::Cancel => e.u8(2),
                }
            }
            match lock {
                Some(lock) => {
                    e.u8(1);
                    e.lock(lock);
                }
                None => e.u8(0),
            }
        }
        e.u64(parts.nonces.len() as u64);
        for n in &parts.nonces {
            e.u64(*n);
        }
        e.u64(parts.closed_client_ids.len() as u64);
        for (client, order) in &parts.closed_client_ids {
            e.str(client.as_str());
            e.u64(order.0);
        }
        e.u64(parts.markets.len() as u64);
        for m in &parts.markets {
            let s = &m.spec;
            e.str(s.id.as_str());
            e.str(s.base.as_str());
            e.str(s.quote.as_str());
            e.u128(s.base_lot.0);
            e.u128(s.quote_tick.0);
            e.u64(s.min_qty.0);
            e.u64(s.max_qty.0);
            e.u128(s.min_notional.0);
            e.u64(s.maker_fee.0 as u64);
            e.u64(s.taker_fee.0 as u64);
            e.opt_u64(m.last_trade.map(|t| t.0));
            e.u64(m.open_orders as u64);
        }
        let t = &parts.transfers;
        e.u64(t.credited.len() as u64);
        for d in &t.credited {
            e.bytes(&d.tx);
            e.u64(d.log_index);
        }
        e.u64(t.used_nonces.len() as u64);
        for n in &t.used_nonces {
            e.u64(*n);
        }
        e.u64(t.pending.len() as u64);
        for (n, p) in &t.pending {
            e.u64(*n);
            e.str(p.asset.as_str());
            e.u128(p.amount.0);
        }
        e.0
    }

    /// The state as plain parts, every collection in a fixed order.
    pub fn to_parts(&self) -> UserStateParts {
        UserStateParts {
            user: self.user,
            balances: self.account.balances().collect(),
            orders: self.open.iter().map(|(id, o)| (o.clone(), self.account.lock(*id).copied())).collect(),
            nonces: self.nonces.used().collect(),
            closed_client_ids: self.closed_client_ids.iter().cloned().collect(),
            markets: self.markets.values().cloned().collect(),
            transfers: self.transfers.to_parts(),
        }
    }

    /// Rebuilds a state from its parts (a snapshot), refusing parts no live state could have.
    pub fn from_parts(parts: UserStateParts) -> Result<UserState, UserApplyError> {
        let bad = UserApplyError::Restore;
        let mut locks = Vec::new();
        let mut open = BTreeMap::new();
        let mut client_ids = BTreeMap::new();
        let mut per_market: BTreeMap<MarketId, usize> = BTreeMap::new();
        if parts.orders.len() > MAX_OPEN_ORDERS {
            return Err(UserApplyError::TooManyOpenOrders);
        }
        for (order, lock) in parts.orders {
            let id = order.order.id;
            if order.order.user != parts.user {
                return Err(UserApplyError::WrongUser(id));
            }
            if order.pending.len() > 2 {
                return Err(bad("more than two requests in flight"));
            }
            if let Some(client) = &order.client_order_id {
                if client_ids.insert(client.clone(), id).is_some() {
                    return Err(UserApplyError::DuplicateClientOrderId(client.clone()));
                }
            }
            if let Some(lock) = lock {
                locks.push((id, lock));
            }
            *per_market.entry(order.market).or_default() += 1;
            if open.insert(id, order).is_some() {
                return Err(UserApplyError::DuplicateOrder(id));
            }
        }
        let account = Account::from_parts(parts.balances, locks)?;
        if parts.nonces.len() > NONCE_WINDOW {
            return Err(bad("more nonces than the window holds"));
        }
        let used: BTreeSet<u64> = parts.nonces.into_iter().collect();
        if parts.closed_client_ids.len() > CLIENT_ID_HISTORY {
            return Err(bad("more closed client order ids than the history holds"));
        }
        for (client, order) in &parts.closed_client_ids {
            if client_ids.insert(client.clone(), *order).is_some() {
                return Err(UserApplyError::DuplicateClientOrderId(client.clone()));
            }
        }
        let mut markets = BTreeMap::new();
        for m in parts.markets {
            if per_market.remove(&m.spec.id) != Some(m.open_orders) {
                return Err(bad("a market's open order count does not match its orders"));
            }
            markets.insert(m.spec.id, m);
        }
        if !per_market.is_empty() {
            return Err(bad("an order is in a market that is not held"));
        }
        Ok(UserState {
            user: parts.user,
            account,
            nonces: NonceWindow { used },
            open,
            client_ids,
            closed_client_ids: parts.closed_client_ids.into(),
            markets,
            transfers: Transfers::from_parts(parts.transfers).map_err(bad)?,
        })
    }

    fn own(&self, market: MarketId, order: OrderId) -> Result<&OpenOrder, UserReject> {
        self.open.get(&order).filter(|o| o.market == market).ok_or(UserReject::UnknownOrder)
    }

    fn decide_place(&self, spec: &MarketSpec, request: OrderRequest) -> Result<Vec<UserEvent>, UserReject> {
        let OrderRequest { market, order, client_order_id, nonce, auth } = request;
        if order.user != self.user {
            return Err(UserReject::WrongUser);
        }
        if market != spec.id {
            return Err(UserReject::MarketMismatch { request: market, spec: spec.id });
        }
        // Idempotency before the nonce: a retry of a placed order carries the same nonce and
        // must get the original order back, not "nonce used".
        if let Some(existing) = client_order_id.as_ref().and_then(|c| self.client_ids.get(c)) {
            return Err(UserReject::DuplicateClientOrderId { existing: *existing });
        }
        self.nonces.check(nonce)?;
        if self.open.len() >= MAX_OPEN_ORDERS {
            return Err(UserReject::TooManyOpenOrders { limit: MAX_OPEN_ORDERS });
        }
        check_grid(spec, order.order_type.price_bound(), order.qty).map_err(UserReject::Grid)?;
        if order.post_only && !order.may_rest() {
            return Err(UserReject::Grid(RejectReason::PostOnlyNeedsRestingLimit));
        }
        if self.open.contains_key(&order.id) {
            return Err(LedgerError::DuplicateLock(order.id).into());
        }
        let lock = Account::order_cost(spec, &order)?;
        let available = self.account.balance(lock.asset).available;
        if available < lock.amount {
            return Err(LedgerError::InsufficientBalance { asset: lock.asset, needed: lock.amount, available }.into());
        }
        Ok(vec![UserEvent::OrderPlaced { market, order, client_order_id, nonce, lock, spec: spec.clone(), auth }])
    }

    fn decide_amend(
        &self,
        spec: &MarketSpec,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        signed: Option<AmendAuth>,
    ) -> Result<Vec<UserEvent>, UserReject> {
        let open = self.own(spec.id, order)?;
        if !open.order.may_rest() {
            return Err(UserReject::NotAmendable);
        }
        if open.amend_pending().is_some() {
            return Err(UserReject::AmendPending);
        }
        if open.cancel_pending() {
            return Err(UserReject::CancelPending);
        }
        if qty.is_zero() {
            return Err(UserReject::Grid(RejectReason::AmendToZero));
        }
        check_grid(spec, Some(price), qty).map_err(UserReject::Grid)?;
        if open.price == Some(price) && open.qty == qty {
            return Err(UserReject::Grid(RejectReason::AmendNoChange));
        }
        // The new signed order is a fresh authorisation: a replayed one is refused here, as a
        // placement's would be.
        if let Some(signed) = &signed {
            self.nonces.check(signed.nonce)?;
        }
        let previous = *self.account.lock(order).ok_or(LedgerError::UnknownLock(order))?;
        let cover_qty = QtyLots(previous.qty.0.checked_add(qty.0).ok_or(LedgerError::Overflow)?);
        let cover_price = previous.limit.max(price);
        let lock = self.lock_for(spec, &previous, cover_price, cover_qty)?;
        if lock.amount > previous.amount {
            let needed = Amount(lock.amount.0 - previous.amount.0);
            let available = self.account.balance(lock.asset).available;
            if available < needed {
                return Err(LedgerError::InsufficientBalance { asset: lock.asset, needed, available }.into());
            }
        }
        Ok(vec![UserEvent::AmendRequested { market: spec.id, order, price, qty, previous, lock, signed }])
    }

    /// The trade's effect on this user's side, reversed: the buyer gives back the base it
    /// is settling and gets its quote and fee back; the seller gives back its net quote and
    /// gets its base back. The fee account's share is reversed with it: what the trade moved
    /// to fees returns to the payer.
    fn decide_void(&self, spec: &MarketSpec, order: OrderId, trade: &Trade) -> Result<Vec<UserEvent>, UserReject> {
        let overflow = || UserReject::Ledger(LedgerError::Overflow);
        let (reclaimed_asset, reclaimed, restored_asset, restored) = if trade.buyer() == (order, self.user) {
            let paid = trade.quote_amount.checked_add(trade.buyer_fee()).ok_or_else(overflow)?;
            (spec.base, trade.base_amount, spec.quote, paid)
        } else if trade.seller() == (order, self.user) {
            let net = trade
                .quote_amount
                .checked_sub(trade.seller_fee())
                .ok_or(LedgerError::Underflow { asset: spec.quote, bucket: "proceeds" })?;
            (spec.quote, net, spec.base, trade.base_amount)
        } else {
            return Err(LedgerError::NotParty(order).into());
        };
        if self.account.balance(reclaimed_asset).settling < reclaimed {
            return Err(LedgerError::Underflow { asset: reclaimed_asset, bucket: "settling" }.into());
        }
        self.account.balance(restored_asset).available.checked_add(restored).ok_or_else(overflow)?;
        Ok(vec![UserEvent::TradeVoided {
            market: spec.id,
            order,
            trade: trade.id,
            reclaimed_asset,
            reclaimed,
            restored_asset,
            restored,
        }])
    }

    /// What the ledger's `relock` makes of `lock` at `price` for `qty` lots.
    fn lock_for(
        &self,
        spec: &MarketSpec,
        lock: &OrderLock,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<OrderLock, LedgerError> {
        Ok(match lock.side {
            Side::Buy => {
                let notional = spec.notional(price, qty).ok_or(LedgerError::Overflow)?;
                let amount = notional.checked_add(lock.fee_rate.fee_on(notional)).ok_or(LedgerError::Overflow)?;
                OrderLock { amount, qty, limit: price, ..*lock }
            }
            Side::Sell => OrderLock { amount: spec.base_amount(qty).ok_or(LedgerError::Overflow)?, qty, ..*lock },
        })
    }

    fn decide_market(&self, spec: &MarketSpec, event: &MarketEvent) -> Vec<UserEvent> {
        let market = spec.id;
        let ours = |order: OrderId| self.open.get(&order).filter(|o| o.market == market);
        let released = |order: OrderId| self.account.lock(order).map_or(Amount::ZERO, |l| l.amount);
        let mut out = Vec::new();
        match *event {
            MarketEvent::Accepted(ref o) => {
                if ours(o.id).is_some_and(|open| open.status == OrderStatus::Sent) {
                    out.push(UserEvent::OrderAcknowledged { market, order: o.id });
                }
            }
            MarketEvent::Rested { .. } | MarketEvent::Halted | MarketEvent::Resumed => {}
            MarketEvent::Traded(ref trade) => {
                let seen = self.markets.get(&market).and_then(|m| m.last_trade).is_some_and(|last| trade.id <= last);
                if !seen {
                    for (order, user) in
                        [trade.maker_order, trade.taker_order].into_iter().zip([trade.maker_user, trade.taker_user])
                    {
                        if user == self.user && ours(order).is_some() {
                            out.push(UserEvent::FillApplied { market, order, trade: *trade });
                        }
                    }
                }
            }
            MarketEvent::Filled { order } => {
                if ours(order).is_some() {
                    out.push(UserEvent::OrderClosed { market, order, released: released(order) });
                }
            }
            MarketEvent::Expired { order, reason, .. } => {
                if ours(order).is_some() {
                    let amount = released(order);
                    out.push(UserEvent::OrderReleased {
                        market,
                        order,
                        amount,
                        reason: ReleaseReason::Expired(reason),
                    });
                }
            }
            MarketEvent::Cancelled { order, reason, .. } => {
                if ours(order).is_some() {
                    let amount = released(order);
                    out.push(UserEvent::OrderReleased {
                        market,
                        order,
                        amount,
                        reason: ReleaseReason::Cancelled(reason),
                    });
                }
            }
            MarketEvent::Amended { order, price, qty, .. } => {
                let lock = ours(order)
                    .filter(|o| matches!(o.pending.first(), Some(PendingRequest::Amend { .. })))
                    .and_then(|_| self.account.lock(order))
                    .and_then(|l| self.lock_for(spec, l, price, qty).ok());
                if let Some(lock) = lock {
                    out.push(UserEvent::AmendApplied { market, order, price, qty, lock });
                }
            }
            MarketEvent::Rejected { order, reason } => {
                let Some(open) = ours(order) else { return out };
                if open.status == OrderStatus::Sent {
                    let amount = released(order);
                    out.push(UserEvent::OrderReleased {
                        market,
                        order,
                        amount,
                        reason: ReleaseReason::Rejected(reason),
                    });
                    return out;
                }
                match open.pending.first() {
                    Some(PendingRequest::Cancel) => out.push(UserEvent::CancelRejected { market, order, reason }),
                    Some(PendingRequest::Amend { previous, .. }) => {
                        let lock = self
                            .account
                            .lock(order)
                            .and_then(|_| self.lock_for(spec, previous, previous.limit, open.qty).ok());
                        if let Some(lock) = lock {
                            out.push(UserEvent::AmendReverted { market, order, reason, lock });
                        }
                    }
                    None => {}
                }
            }
        }
        out
    }

    fn apply_placed(
        &mut self,
        market: MarketId,
        order: &NewOrder,
        client_order_id: &Option<ClientOrderId>,
        nonce: u64,
        lock: &OrderLock,
        spec: &MarketSpec,
    ) -> Result<(), UserApplyError> {
        if order.user != self.user {
            return Err(UserApplyError::WrongUser(order.id));
        }
        if self.open.contains_key(&order.id) {
            return Err(UserApplyError::DuplicateOrder(order.id));
        }
        if self.open.len() >= MAX_OPEN_ORDERS {
            return Err(UserApplyError::TooManyOpenOrders);
        }
        if let Some(client) = client_order_id {
            if self.client_ids.contains_key(client) {
                return Err(UserApplyError::DuplicateClientOrderId(client.clone()));
            }
        }
        self.nonces.check(nonce).map_err(|_| UserApplyError::Nonce(nonce))?;
        let got = self.account.lock_order(spec, order)?;
        if got != *lock {
            // Put the ledger back before reporting, so the error leaves nothing behind.
            self.account.release_order(order.id)?;
            return Err(UserApplyError::LockMismatch {
                order: order.id,
                expected: Box::new(*lock),
                got: Some(Box::new(got)),
            });
        }
        self.nonces.insert(nonce)?;
        if let Some(client) = client_order_id {
            self.client_ids.insert(client.clone(), order.id);
        }
        let held = self.markets.entry(market).or_insert_with(|| HeldMarket {
            spec: spec.clone(),
            last_trade: None,
            open_orders: 0,
        });
        held.spec = spec.clone();
        held.open_orders += 1;
        self.open.insert(
            order.id,
            OpenOrder {
                market,
                order: *order,
                price: order.order_type.price_bound(),
                qty: order.qty,
                client_order_id: client_order_id.clone(),
                nonce,
                status: OrderStatus::Sent,
                pending: Vec::new(),
            },
        );
        Ok(())
    }

    /// Removes the order's pending amend (which must be the oldest request in flight).
    fn take_amend(&mut self, order: OrderId) -> Result<(PriceTicks, QtyLots, OrderLock), UserApplyError> {
        let open = self.open.get_mut(&order).ok_or(UserApplyError::UnknownOrder(order))?;
        match open.pending.first() {
            Some(&PendingRequest::Amend { price, qty, previous }) => {
                open.pending.remove(0);
                Ok((price, qty, previous))
            }
            _ => Err(UserApplyError::NotPending { order, what: "amend answer" }),
        }
    }

    fn relock(
        &mut self,
        order: OrderId,
        price: PriceTicks,
        qty: QtyLots,
        expected: &OrderLock,
    ) -> Result<(), UserApplyError> {
        let market = self.open.get(&order).ok_or(UserApplyError::UnknownOrder(order))?.market;
        let spec = &self.markets.get(&market).ok_or(UserApplyError::UnknownMarket(market))?.spec;
        let got = self.account.relock(spec, order, price, qty)?;
        if got != *expected {
            return Err(UserApplyError::LockMismatch {
                order,
                expected: Box::new(*expected),
                got: Some(Box::new(got)),
            });
        }
        Ok(())
    }

    /// Forgets a closed order; its client order id joins the bounded history.
    fn close(&mut self, order: OrderId) -> Result<(), UserApplyError> {
        let open = self.open.remove(&order).ok_or(UserApplyError::UnknownOrder(order))?;
        if let Some(held) = self.markets.get_mut(&open.market) {
            held.open_orders -= 1;
            if held.open_orders == 0 {
                self.markets.remove(&open.market);
            }
        }
        if let Some(client) = open.client_order_id {
            self.closed_client_ids.push_back((client, order));
            while self.closed_client_ids.len() > CLIENT_ID_HISTORY {
                if let Some((old, _)) = self.closed_client_ids.pop_front() {
                    self.client_ids.remove(&old);
                }
            }
        }
        debug_assert!(self.account.lock(order).is_none(), "invariant: a closed order holds no lock");
        Ok(())
    }
}

/// The size, grid and notional checks a market applies, made before funds are locked so an
/// order the market must refuse never ties up a balance.
fn check_grid(spec: &MarketSpec, price: Option<PriceTicks>, qty: QtyLots) -> Result<(), RejectReason> {
    if qty.is_zero() {
        return Err(RejectReason::OffGridSize);
    }
    if qty < spec.min_qty {
        return Err(RejectReason::QtyBelowMin);
    }
    if qty > spec.max_qty {
        return Err(RejectReason::QtyAboveMax);
    }
    if let Some(price) = price {
        if price.0 == 0 {
            return Err(RejectReason::OffGridPrice);
        }
        let notional = spec.notional(price, qty).ok_or(RejectReason::NotionalOverflow)?;
        if notional < spec.min_notional {
            return Err(RejectReason::BelowMinNotional);
        }
    }
    Ok(())
}

fn nonzero(amount: Amount) -> Result<(), UserReject> {
    if amount.is_zero() {
        Err(UserReject::ZeroAmount)
    } else {
        Ok(())
    }
}

/// Bumped whenever `canonical_bytes` changes shape, so old and new hashes never collide.
const CANONICAL_FORMAT: u8 = 2;

/// Length-prefixed big-endian fields: unambiguous, so equal bytes mean equal states.
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.str(v);
            }
            None => self.u8(0),
        }
    }
    fn side(&mut self, side: Side) {
        self.u8(match side {
            Side::Buy => 0,
            Side::Sell => 1,
        });
    }
    fn lock(&mut self, lock: &OrderLock) {
        self.side(lock.side);
        self.str(lock.asset.as_str());
        self.u128(lock.amount.0);
        self.u64(lock.qty.0);
        self.u64(lock.limit.0);
        self.u64(lock.fee_rate.0 as u64);
    }
    fn new_order(&mut self, o: &NewOrder) {
        use super::order::{OrderType, StpMode, TimeInForce};
        self.u64(o.id.0);
        self.bytes(&o.user.0);
        self.side(o.side);
        match o.order_type {
            OrderType::Limit { price } => {
                self.u8(0);
                self.u64(price.0);
            }
            OrderType::Market { worst_price } => {
                self.u8(1);
                self.opt_u64(worst_price.map(|p| p.0));
            }
        }
        self.u64(o.qty.0);
        match o.tif {
            TimeInForce::Gtc => self.u8(0),
            TimeInForce::Ioc => self.u8(1),
            TimeInForce::Fok => self.u8(2),
            TimeInForce::Gtd(at) => {
                self.u8(3);
                self.u64(at.0);
            }
        }
        self.u8(o.post_only as u8);
        self.u8(match o.stp {
            StpMode::ExpireMaker => 0,
            StpMode::ExpireTaker => 1,
            StpMode::ExpireBoth => 2,
        });
    }
}
