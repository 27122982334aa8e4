//! The user aggregate as a specification: given the user's past events, when a command is
//! decided, then exactly these events (or this rejection). Every case also checks what must
//! hold after any command: a rejection changes nothing; the decided events apply; replaying
//! all events into a fresh state gives the same `canonical_bytes`; a snapshot round-trips
//! exactly. Market outcomes come from the real matching core (`Market::execute`) on the
//! scenario market: 1,000 BTC units a lot, 10 USDT units a tick per lot, maker 10 bps, taker
//! 20 bps, min notional 500.

#[path = "support/scenario.rs"]
mod scenario;

use hob::domain::{
    AmendAuth, Amount, Balance, CancelReason, ClientOrderId, LedgerError, Market, MarketCommand, MarketEvent, NewOrder,
    OrderAuth, OrderId, OrderLock, OrderRequest, PriceTicks, QtyLots, RejectReason, ReleaseReason, Side, UserCommand,
    UserEvent, UserReject, UserState, MAX_OPEN_ORDERS, NONCE_WINDOW,
};
use hob::events::user_payload::{decode_user_snapshot, encode_user_snapshot};
use scenario::*;

/// A command that owns what it borrows, so cases can be written as data.
#[derive(Clone)]
enum When {
    Deposit(hob::domain::AssetId, u128),
    Withdraw(hob::domain::AssetId, u128),
    Place(OrderRequest),
    Cancel(u64),
    Amend(u64, u64, u64),
    /// An amend with a new signed order under this nonce.
    SignedAmend(u64, u64, u64, u64),
    Market(MarketEvent),
    Confirm(hob::domain::AssetId, u128),
}

fn command<'a>(when: &'a When, spec: &'a hob::domain::MarketSpec) -> UserCommand<'a> {
    match when {
        When::Deposit(a, n) => UserCommand::Deposit { asset: *a, amount: Amount(*n) },
        When::Withdraw(a, n) => UserCommand::Withdraw { asset: *a, amount: Amount(*n) },
        When::Place(r) => UserCommand::Place { spec, request: r.clone() },
        When::Cancel(o) => UserCommand::Cancel { market: spec.id, order: OrderId(*o) },
        When::Amend(o, p, q) => {
            UserCommand::Amend { spec, order: OrderId(*o), price: PriceTicks(*p), qty: QtyLots(*q), signed: None }
        }
        When::SignedAmend(o, p, q, n) => UserCommand::Amend {
            spec,
            order: OrderId(*o),
            price: PriceTicks(*p),
            qty: QtyLots(*q),
            signed: Some(amend_auth(*n)),
        },
        When::Market(e) => UserCommand::ApplyMarket { spec, event: e },
        When::Confirm(a, n) => UserCommand::ConfirmSettlement { asset: *a, amount: Amount(*n) },
    }
}

/// Runs `given` (each must be accepted), then decides `when` and compares with `then`.
/// Returns the state after, with the full event log.
fn check(given: &[When], when: When, then: Result<Vec<UserEvent>, UserReject>) -> (UserState, Vec<UserEvent>) {
    let spec = spec();
    let mut state = UserState::new(ALICE);
    let mut log = Vec::new();
    for g in given {
        let events = state.decide(command(g, &spec)).unwrap_or_else(|e| panic!("given refused: {e}"));
        for e in &events {
            state.apply(e).unwrap();
        }
        log.extend(events);
    }
    let before = state.clone();
    let decided = state.decide(command(&when, &spec));
    assert_eq!(state, before, "deciding never mutates");
    assert_eq!(decided, then);
    if let Ok(events) = decided {
        for e in &events {
            state.apply(e).unwrap();
        }
        log.extend(events);
    }
    assert_invariants(&state, &log);
    (state, log)
}

fn assert_invariants(state: &UserState, log: &[UserEvent]) {
    let mut replayed = UserState::new(state.user());
    for e in log {
        replayed.apply(e).unwrap();
    }
    assert_eq!(replayed.canonical_bytes(), state.canonical_bytes(), "replay rebuilds the live state");
    let restored = decode_user_snapshot(&encode_user_snapshot(state)).unwrap();
    assert_eq!(restored.canonical_bytes(), state.canonical_bytes(), "a snapshot restores exactly");
    assert_eq!(&restored, state);
    // Locked per asset equals the sum of the open orders' locks.
    for (asset, b) in state.account().balances() {
        let locks: u128 = state.account().locks().filter(|(_, l)| l.asset == asset).map(|(_, l)| l.amount.0).sum();
        assert_eq!(b.locked.0, locks, "{asset}: locked is the sum of the locks");
    }
}

/// A new signed order for an amend under `nonce` (its text is opaque to the user's state).
fn amend_auth(nonce: u64) -> AmendAuth {
    AmendAuth { nonce, auth: OrderAuth::new(format!(r#"{{"nonce":"{nonce}"}}"#)) }
}

fn req(order: NewOrder, nonce: u64) -> OrderRequest {
    OrderRequest { market: spec().id, order, client_order_id: None, nonce, auth: None }
}

fn req_cid(order: NewOrder, nonce: u64, cid: &str) -> OrderRequest {
    OrderRequest { client_order_id: Some(ClientOrderId::new(cid).unwrap()), ..req(order, nonce) }
}

fn bal(available: u128, locked: u128, settling: u128) -> Balance {
    Balance { available: Amount(available), locked: Amount(locked), settling: Amount(settling) }
}

/// Alice's buy of 5 lots at 100: 5,000 notional + 10 (20 bps) = 5,010 locked.
fn buy_lock(qty: u64, limit: u64) -> OrderLock {
    let notional = limit as u128 * qty as u128 * QUOTE_TICK;
    OrderLock {
        side: Side::Buy,
        asset: quote(),
        amount: Amount(notional + notional * TAKER_BPS / 10_000),
        qty: QtyLots(qty),
        limit: PriceTicks(limit),
        fee_rate: hob::domain::Bps(TAKER_BPS as u16),
    }
}

fn placed(r: &OrderRequest, lock: OrderLock) -> UserEvent {
    UserEvent::OrderPlaced {
        market: r.market,
        order: r.order,
        client_order_id: r.client_order_id.clone(),
        nonce: r.nonce,
        lock,
        spec: spec(),
        auth: r.auth.clone(),
    }
}

fn funded() -> Vec<When> {
    vec![When::Deposit(quote(), 100_000), When::Deposit(base(), 50_000)]
}

fn with(mut given: Vec<When>, more: impl IntoIterator<Item = When>) -> Vec<When> {
    given.extend(more);
    given
}

// ---------------------------------------------------------------------------------------
// Deposits, withdrawals, settlement

#[test]
fn deposits_and_withdrawals_move_available() {
    let (s, _) = check(
        &[When::Deposit(quote(), 1_000)],
        When::Withdraw(quote(), 400),
        Ok(vec![UserEvent::Withdrawn { asset: quote(), amount: Amount(400) }]),
    );
    assert_eq!(s.account().balance(quote()), bal(600, 0, 0));
    check(
        &[When::Deposit(quote(), 1_000)],
        When::Withdraw(quote(), 1_001),
        Err(UserReject::Ledger(LedgerError::InsufficientBalance {
            asset: quote(),
            needed: Amount(1_001),
            available: Amount(1_000),
        })),
    );
    check(&[], When::Deposit(quote(), 0), Err(UserReject::ZeroAmount));
    check(
        &[When::Deposit(quote(), u128::MAX)],
        When::Deposit(quote(), 1),
        Err(UserReject::Ledger(LedgerError::Overflow)),
    );
    check(
        &[],
        When::Confirm(base(), 1),
        Err(UserReject::Ledger(LedgerError::Underflow { asset: base(), bucket: "settling" })),
    );
}

#[test]
fn a_withdrawal_cannot_take_locked_funds() {
    let r = req(buy(1, ALICE, 100, 5), 1);
    check(
        &[When::Deposit(quote(), 6_000), When::Place(r)],
        When::Withdraw(quote(), 991),
        Err(UserReject::Ledger(LedgerError::InsufficientBalance {
            asset: quote(),
            needed: Amount(991),
            available: Amount(990),
        })),
    );
}

// ---------------------------------------------------------------------------------------
// Placing

#[test]
fn placing_locks_the_worst_case_cost() {
    let r = req(buy(1, ALICE, 100, 5), 1);
    let (s, _) = check(&funded(), When::Place(r.clone()), Ok(vec![placed(&r, buy_lock(5, 100))]));
    assert_eq!(s.account().balance(quote()), bal(100_000 - 5_010, 5_010, 0));
    assert_eq!(s.open_orders().count(), 1);
    let r = req(sell(2, ALICE, 100, 7), 2);
    let lock = OrderLock {
        side: Side::Sell,
        asset: base(),
        amount: Amount(7_000),
        qty: QtyLots(7),
        limit: PriceTicks(100),
        fee_rate: hob::domain::Bps(TAKER_BPS as u16),
    };
    let (s, _) = check(&funded(), When::Place(r.clone()), Ok(vec![placed(&r, lock)]));
    assert_eq!(s.account().balance(base()), bal(43_000, 7_000, 0));
}

#[test]
fn insufficient_balance_is_refused_and_changes_nothing() {
    check(
        &[When::Deposit(quote(), 5_009)],
        When::Place(req(buy(1, ALICE, 100, 5), 1)),
        Err(UserReject::Ledger(LedgerError::InsufficientBalance {
            asset: quote(),
            needed: Amount(5_010),
            available: Amount(5_009),
        })),
    );
}

#[test]
fn grid_and_ownership_are_checked_before_locking() {
    check(&funded(), When::Place(req(buy(1, ALICE, 0, 5), 1)), Err(UserReject::Grid(RejectReason::OffGridPrice)));
    check(&funded(), When::Place(req(buy(1, ALICE, 100, 0), 1)), Err(UserReject::Grid(RejectReason::OffGridSize)));
    check(&funded(), When::Place(req(buy(1, ALICE, 49, 1), 1)), Err(UserReject::Grid(RejectReason::BelowMinNotional)));
    check(&funded(), When::Place(req(buy(1, BOB, 100, 1), 1)), Err(UserReject::WrongUser));
    check(
        &funded(),
        When::Place(req(market_buy(1, ALICE, 1, None), 1)),
        Err(UserReject::Ledger(LedgerError::MarketBuyNeedsWorstPrice)),
    );
}

#[test]
fn a_duplicate_client_order_id_names_the_original() {
    let first = req_cid(buy(1, ALICE, 100, 1), 1, "c-1");
    check(
        &with(funded(), [When::Place(first)]),
        When::Place(req_cid(buy(2, ALICE, 100, 1), 1, "c-1")),
        Err(UserReject::DuplicateClientOrderId { existing: OrderId(1) }),
    );
}

#[test]
fn a_client_order_id_is_remembered_after_its_order_closes() {
    let first = req_cid(buy(1, ALICE, 100, 1), 1, "c-1");
    let given = with(funded(), [When::Place(first), When::Market(cancelled(1, 1, CancelReason::User))]);
    let (s, _) = check(
        &given,
        When::Place(req_cid(buy(2, ALICE, 100, 1), 2, "c-1")),
        Err(UserReject::DuplicateClientOrderId { existing: OrderId(1) }),
    );
    assert_eq!(s.order_by_client_id(&ClientOrderId::new("c-1").unwrap()), Some(OrderId(1)));
    assert_eq!(s.open_orders().count(), 0);
}

#[test]
fn nonces_are_unique_within_a_window_of_the_highest() {
    check(
        &with(funded(), [When::Place(req(buy(1, ALICE, 100, 1), 7))]),
        When::Place(req(buy(2, ALICE, 100, 1), 7)),
        Err(UserReject::NonceUsed),
    );
    // Out of order but within the window: accepted.
    let r = req(buy(2, ALICE, 100, 1), 3);
    check(
        &with(funded(), [When::Place(req(buy(1, ALICE, 100, 1), 7))]),
        When::Place(r.clone()),
        Ok(vec![placed(&r, buy_lock(1, 100))]),
    );
    // A full window of nonces 1000..1100: 999 is too old, 1050 used, 1000 used, 1100 new.
    let full: Vec<When> =
        (0..NONCE_WINDOW as u64).map(|i| When::Place(req(buy(10 + i, ALICE, 50, 1), 1_000 + i))).collect();
    let given = with(vec![When::Deposit(quote(), 10_000_000)], full);
    check(&given, When::Place(req(buy(1, ALICE, 50, 1), 999)), Err(UserReject::NonceTooOld));
    check(&given, When::Place(req(buy(1, ALICE, 50, 1), 1_050)), Err(UserReject::NonceUsed));
    let r = req(buy(1, ALICE, 50, 1), 1_100);
    let (s, _) = check(&given, When::Place(r.clone()), Ok(vec![placed(&r, buy_lock(1, 50))]));
    // The window slid: 1000 fell out, and now anything below 1001 is too old.
    assert_eq!(s.nonces().used().next(), Some(1_001));
    check(&with(given, [When::Place(r)]), When::Place(req(buy(2, ALICE, 50, 1), 1_000)), Err(UserReject::NonceTooOld));
}

#[test]
fn open_orders_are_limited() {
    let many: Vec<When> =
        (0..MAX_OPEN_ORDERS as u64).map(|i| When::Place(req(buy(i + 1, ALICE, 50, 1), i + 1))).collect();
    let given = with(vec![When::Deposit(quote(), 100_000_000)], many);
    check(
        &given,
        When::Place(req(buy(5_000, ALICE, 50, 1), 5_000)),
        Err(UserReject::TooManyOpenOrders { limit: MAX_OPEN_ORDERS }),
    );
}

// ---------------------------------------------------------------------------------------
// Cancel and amend requests

#[test]
fn a_cancel_needs_an_open_order_of_ours() {
    let given = with(funded(), [When::Place(req(buy(1, ALICE, 100, 1), 1))]);
    check(&given, When::Cancel(1), Ok(vec![UserEvent::CancelRequested { market: spec().id, order: OrderId(1) }]));
    check(&given, When::Cancel(2), Err(UserReject::UnknownOrder));
    check(&with(given.clone(), [When::Cancel(1)]), When::Cancel(1), Err(UserReject::CancelPending));
    // Once the market cancelled it, the order is no longer open.
    let gone = with(given, [When::Market(cancelled(1, 1, CancelReason::SelfTradePrevention))]);
    check(&gone, When::Cancel(1), Err(UserReject::UnknownOrder));
}

#[test]
fn a_rejected_cancel_leaves_the_order_open() {
    let given = with(
        funded(),
        [When::Place(req(buy(1, ALICE, 100, 1), 1)), When::Market(accepted(buy(1, ALICE, 100, 1))), When::Cancel(1)],
    );
    let (s, _) = check(
        &given,
        When::Market(rejected(1, RejectReason::UnknownOrder)),
        Ok(vec![UserEvent::CancelRejected {
            market: spec().id,
            order: OrderId(1),
            reason: RejectReason::UnknownOrder,
        }]),
    );
    assert!(s.open_order(OrderId(1)).unwrap().pending.is_empty());
}

#[test]
fn an_amend_locks_for_both_terms_and_a_rejection_restores_the_old_lock() {
    let o = buy(1, ALICE, 100, 5);
    let given = with(funded(), [When::Place(req(o, 1)), When::Market(accepted(o)), When::Market(rested(o, 5))]);
    // Old remainder 5 at 100 plus new 3 at 110: 8 lots at 110 = 8,800 + 17 fee.
    let cover = buy_lock(8, 110);
    let then = UserEvent::AmendRequested {
        market: spec().id,
        order: OrderId(1),
        price: PriceTicks(110),
        qty: QtyLots(3),
        previous: buy_lock(5, 100),
        lock: cover,
        signed: None,
    };
    let (s, _) = check(&given, When::Amend(1, 110, 3), Ok(vec![then]));
    assert_eq!(s.account().balance(quote()).locked, cover.amount);
    check(&with(given.clone(), [When::Amend(1, 110, 3)]), When::Amend(1, 120, 3), Err(UserReject::AmendPending));
    let (s, _) = check(
        &with(given.clone(), [When::Amend(1, 110, 3)]),
        When::Market(rejected(1, RejectReason::MarketHalted)),
        Ok(vec![UserEvent::AmendReverted {
            market: spec().id,
            order: OrderId(1),
            reason: RejectReason::MarketHalted,
            lock: buy_lock(5, 100),
        }]),
    );
    assert_eq!(s.account().balance(quote()), bal(100_000 - 5_010, 5_010, 0));
    let (s, _) = check(
        &with(given.clone(), [When::Amend(1, 110, 3)]),
        When::Market(amended(1, 110, 3, false)),
        Ok(vec![UserEvent::AmendApplied {
            market: spec().id,
            order: OrderId(1),
            price: PriceTicks(110),
            qty: QtyLots(3),
            lock: buy_lock(3, 110),
        }]),
    );
    assert_eq!(s.account().balance(quote()).locked, buy_lock(3, 110).amount);
    check(&given, When::Amend(1, 100, 5), Err(UserReject::Grid(RejectReason::AmendNoChange)));
    check(&given, When::Amend(1, 100, 0), Err(UserReject::Grid(RejectReason::AmendToZero)));
    check(&given, When::Amend(9, 100, 1), Err(UserReject::UnknownOrder));
}

#[test]
fn a_signed_amend_uses_its_nonce_once_whatever_the_market_answers() {
    let o = buy(1, ALICE, 100, 5);
    let given = with(funded(), [When::Place(req(o, 1)), When::Market(accepted(o)), When::Market(rested(o, 5))]);
    // Given a resting order placed under nonce 1, when Alice amends it with a new signed order
    // under nonce 2, then the request carries that signed order to the market ...
    let then = UserEvent::AmendRequested {
        market: spec().id,
        order: OrderId(1),
        price: PriceTicks(110),
        qty: QtyLots(3),
        previous: buy_lock(5, 100),
        lock: buy_lock(8, 110),
        signed: Some(amend_auth(2)),
    };
    let (s, _) = check(&given, When::SignedAmend(1, 110, 3, 2), Ok(vec![then]));
    // ... and nonce 2 is used from then on.
    assert!(s.nonces().used().any(|n| n == 2));
    // A signed amend under the placement's nonce is a replay: refused, nothing changes.
    check(&given, When::SignedAmend(1, 110, 3, 1), Err(UserReject::NonceUsed));
    // Once the market refused the amend, its nonce stays used: a signed order is good once.
    let reverted =
        with(given.clone(), [When::SignedAmend(1, 110, 3, 2), When::Market(rejected(1, RejectReason::MarketHalted))]);
    check(&reverted, When::SignedAmend(1, 120, 3, 2), Err(UserReject::NonceUsed));
    // And a placement cannot reuse it either.
    check(&reverted, When::Place(req(buy(2, ALICE, 90, 1), 2)), Err(UserReject::NonceUsed));
    // Applied, the next signed amend needs yet another nonce.
    let applied = with(given, [When::SignedAmend(1, 110, 3, 2), When::Market(amended(1, 110, 3, false))]);
    check(&applied, When::SignedAmend(1, 110, 2, 2), Err(UserReject::NonceUsed));
    let (s, _) = check(
        &applied,
        When::SignedAmend(1, 110, 2, 3),
        Ok(vec![UserEvent::AmendRequested {
            market: spec().id,
            order: OrderId(1),
            price: PriceTicks(110),
            qty: QtyLots(2),
            previous: buy_lock(3, 110),
            lock: buy_lock(5, 110),
            signed: Some(amend_auth(3)),
        }]),
    );
    assert_eq!(s.nonces().used().collect::<Vec<_>>(), [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------
// Market outcomes, from the real matching core

/// Runs `orders` through a fresh market and returns all events.
fn market_events(orders: &[MarketCommand]) -> Vec<MarketEvent> {
    let mut market = Market::new(spec());
    let mut out = Vec::new();
    for c in orders {
        market.execute(*c, NOW, &mut out);
    }
    out
}

/// Feeds every market event to Alice and returns her state and log.
fn run(given: Vec<When>, events: &[MarketEvent]) -> (UserState, Vec<UserEvent>) {
    let spec = spec();
    let mut state = UserState::new(ALICE);
    let mut log = Vec::new();
    for g in given.iter().chain(events.iter().cloned().map(When::Market).collect::<Vec<_>>().iter()) {
        let events = state.decide(command(g, &spec)).unwrap();
        for e in &events {
            state.apply(e).unwrap();
        }
        log.extend(events);
    }
    assert_invariants(&state, &log);
    (state, log)
}

#[test]
fn a_fill_moves_the_lock_to_settling_and_refunds_price_improvement() {
    let mine = buy(2, ALICE, 100, 5);
    let events = market_events(&[place(sell(1, BOB, 90, 5)), place(mine)]);
    let (s, log) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    let trade = events.iter().find_map(|e| if let MarketEvent::Traded(t) = e { Some(*t) } else { None }).unwrap();
    assert!(log.contains(&UserEvent::FillApplied { market: spec().id, order: OrderId(2), trade }));
    assert!(log.contains(&UserEvent::OrderClosed { market: spec().id, order: OrderId(2), released: Amount(0) }));
    // Paid 90 * 5 * 10 = 4,500 + taker fee 9; received 5,000 BTC units to settle.
    assert_eq!(s.account().balance(quote()), bal(100_000 - 4_509, 0, 0));
    assert_eq!(s.account().balance(base()), bal(50_000, 0, 5_000));
    assert_eq!(s.open_orders().count(), 0);
    // A redelivered trade is a no-op.
    assert_eq!(s.decide(UserCommand::ApplyMarket { spec: &spec(), event: &MarketEvent::Traded(trade) }), Ok(vec![]));
    // Settlement confirmed: settling becomes available.
    let mut s = s;
    for e in s.decide(UserCommand::ConfirmSettlement { asset: base(), amount: Amount(5_000) }).unwrap() {
        s.apply(&e).unwrap();
    }
    assert_eq!(s.account().balance(base()), bal(55_000, 0, 0));
}

/// The trade a decided market run produced (the first one).
fn first_trade(events: &[MarketEvent]) -> hob::domain::Trade {
    events.iter().find_map(|e| if let MarketEvent::Traded(t) = e { Some(*t) } else { None }).unwrap()
}

/// Decides a void of `trade` for `order`, applies it, and checks replay still rebuilds the state.
fn void(s: &mut UserState, log: &mut Vec<UserEvent>, order: u64, trade: &hob::domain::Trade) -> Vec<UserEvent> {
    let before = s.clone();
    let events = s.decide(UserCommand::VoidTrade { spec: &spec(), order: OrderId(order), trade }).unwrap();
    assert_eq!(*s, before, "deciding never mutates");
    for e in &events {
        s.apply(e).unwrap();
    }
    log.extend(events.clone());
    assert_invariants(s, log);
    events
}

#[test]
fn a_voided_buy_gives_back_the_quote_it_paid_with_its_fee_and_drops_the_base_it_was_settling() {
    // Given Alice's buy of 5 @ 100 filled at 90 (she paid 4,500 + a 9 taker fee, settles 5,000 BTC units)
    let mine = buy(2, ALICE, 100, 5);
    let events = market_events(&[place(sell(1, BOB, 90, 5)), place(mine)]);
    let (mut s, mut log) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    let trade = first_trade(&events);
    assert_eq!(s.account().balance(quote()), bal(100_000 - 4_509, 0, 0));
    // When the trade is voided, then her balances are as before the trade
    let voided = void(&mut s, &mut log, 2, &trade);
    assert_eq!(
        voided,
        vec![UserEvent::TradeVoided {
            market: spec().id,
            order: OrderId(2),
            trade: trade.id,
            reclaimed_asset: base(),
            reclaimed: Amount(5_000),
            restored_asset: quote(),
            restored: Amount(4_509),
        }]
    );
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 0));
    assert_eq!(s.account().balance(base()), bal(50_000, 0, 0));
    // and a second void of the same trade is refused: there is nothing left settling for it
    let again = s.decide(UserCommand::VoidTrade { spec: &spec(), order: OrderId(2), trade: &trade });
    assert_eq!(again, Err(UserReject::Ledger(LedgerError::Underflow { asset: base(), bucket: "settling" })));
}

#[test]
fn a_voided_maker_sell_gets_its_base_back_as_available_and_keeps_its_open_remainder_locked() {
    // Given Alice's sell of 5 @ 100 resting, 2 lots taken by Bob (she settles 2,000 - a 2 maker fee)
    let mine = sell(1, ALICE, 100, 5);
    let events = market_events(&[place(mine), place(buy(2, BOB, 100, 2))]);
    let (mut s, mut log) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    let trade = first_trade(&events);
    assert_eq!(s.account().balance(base()), bal(45_000, 3_000, 0));
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 1_998));
    // When the trade is voided, then the 2 lots are available again; the order still locks 3
    void(&mut s, &mut log, 1, &trade);
    assert_eq!(s.account().balance(base()), bal(47_000, 3_000, 0));
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 0));
    assert_eq!(s.open_order(OrderId(1)).map(|o| o.qty), Some(QtyLots(3)));
}

#[test]
fn a_void_for_an_order_that_is_not_a_party_of_the_trade_is_refused() {
    let mine = buy(2, ALICE, 100, 5);
    let events = market_events(&[place(sell(1, BOB, 90, 5)), place(mine)]);
    let (s, _) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    let trade = first_trade(&events);
    for order in [1, 7] {
        let refused = s.decide(UserCommand::VoidTrade { spec: &spec(), order: OrderId(order), trade: &trade });
        assert_eq!(refused, Err(UserReject::Ledger(LedgerError::NotParty(OrderId(order)))));
    }
}

#[test]
fn a_maker_sell_fills_partly_then_is_cancelled() {
    let mine = sell(1, ALICE, 100, 5);
    let events = market_events(&[place(mine), place(buy(2, BOB, 100, 2)), cancel(1, ALICE)]);
    let (s, log) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    assert!(log.contains(&UserEvent::OrderReleased {
        market: spec().id,
        order: OrderId(1),
        amount: Amount(3_000),
        reason: ReleaseReason::Cancelled(CancelReason::User),
    }));
    // Received 2,000 quote minus the 2 maker fee, settling; 3 lots back to available.
    assert_eq!(s.account().balance(base()), bal(48_000, 0, 0));
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 1_998));
}

#[test]
fn a_market_rejection_of_a_placement_releases_the_lock() {
    let mine = buy(1, ALICE, 100, 5).post_only();
    let events = market_events(&[place(sell(9, BOB, 100, 1)), place(mine)]);
    let (s, log) = run(with(funded(), [When::Place(req(mine, 1))]), &events);
    assert!(log.iter().any(|e| matches!(
        e,
        UserEvent::OrderReleased { reason: ReleaseReason::Rejected(RejectReason::PostOnlyWouldCross), .. }
    )));
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 0));
}

#[test]
fn events_about_orders_we_do_not_hold_decide_to_nothing() {
    let events = market_events(&[place(sell(1, BOB, 100, 5)), place(buy(2, CAROL, 100, 5))]);
    let (s, log) = run(funded(), &events);
    assert_eq!(log.len(), 2, "only the deposits");
    assert_eq!(s.account().balance(quote()), bal(100_000, 0, 0));
}

#[test]
fn fills_of_the_old_terms_while_an_amend_is_in_flight_are_covered() {
    let mine = buy(1, ALICE, 100, 5);
    // The market fills 4 lots at the old terms before it reaches the amend, then re-enters
    // the order at 3 lots @ 110 (an amend sets the remainder absolutely).
    let mut market = Market::new(spec());
    let mut ev = Vec::new();
    market.execute(place(mine), NOW, &mut ev);
    let given = with(funded(), [When::Place(req(mine, 1))]);
    let (mut s, mut log) = run(given, &ev);
    for e in s
        .decide(UserCommand::Amend {
            spec: &spec(),
            order: OrderId(1),
            price: PriceTicks(110),
            qty: QtyLots(3),
            signed: None,
        })
        .unwrap()
    {
        s.apply(&e).unwrap();
        log.push(e);
    }
    let mut more = Vec::new();
    market.execute(place(sell(2, BOB, 100, 4)), NOW, &mut more);
    market.execute(amend(1, ALICE, 110, 3), NOW, &mut more);
    market.execute(place(sell(3, BOB, 105, 3)), NOW, &mut more);
    for event in &more {
        for e in s.decide(UserCommand::ApplyMarket { spec: &spec(), event }).unwrap() {
            s.apply(&e).unwrap();
            log.push(e);
        }
    }
    assert_invariants(&s, &log);
    assert_eq!(s.open_orders().count(), 0);
    // Bought 4 @ 100 as maker (4,000 + 4), then 3 more as maker at its new price 110 (3,300 + 3).
    assert_eq!(s.account().balance(quote()), bal(100_000 - 4_004 - 3_303, 0, 0));
    assert_eq!(s.account().balance(base()), bal(50_000, 0, 7_000));
}

// ---------------------------------------------------------------------------------------
// Conservation and replay over a random sequence

#[test]
fn a_random_sequence_conserves_funds_and_replays_exactly() {
    let spec = spec();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut market = Market::new(spec.clone());
    let mut alice = UserState::new(ALICE);
    let mut log = Vec::new();
    let (mut deposited_q, mut deposited_b) = (0u128, 0u128);
    let mut id = 1u64;
    let apply_all = |s: &mut UserState, log: &mut Vec<UserEvent>, events: Vec<UserEvent>| {
        for e in events {
            s.apply(&e).unwrap();
            log.push(e);
        }
    };
    for step in 0..600u64 {
        match next(6) {
            0 => {
                let amount = 1 + next(20_000) as u128;
                let (asset, total) =
                    if next(2) == 0 { (quote(), &mut deposited_q) } else { (base(), &mut deposited_b) };
                let events = alice.decide(UserCommand::Deposit { asset, amount: Amount(amount) }).unwrap();
                *total += amount;
                apply_all(&mut alice, &mut log, events);
            }
            1..=3 => {
                id += 1;
                let (price, qty) = (95 + next(10), 1 + next(5));
                let mine = next(2) == 0;
                let user = if mine { ALICE } else { BOB };
                let order = if next(2) == 0 { buy(id, user, price, qty) } else { sell(id, user, price, qty) };
                if mine {
                    let placed = alice.decide(UserCommand::Place { spec: &spec, request: req(order, step) });
                    let Ok(events) = placed else { continue };
                    apply_all(&mut alice, &mut log, events);
                }
                let mut out = Vec::new();
                market.execute(place(order), NOW, &mut out);
                for event in &out {
                    let events = alice.decide(UserCommand::ApplyMarket { spec: &spec, event }).unwrap();
                    apply_all(&mut alice, &mut log, events);
                }
            }
            4 => {
                let open: Vec<OrderId> = alice.open_orders().map(|(id, _)| id).collect();
                if open.is_empty() {
                    continue;
                }
                let order = open[next(open.len() as u64) as usize];
                let events = alice.decide(UserCommand::Cancel { market: spec.id, order }).unwrap();
                apply_all(&mut alice, &mut log, events);
                let mut out = Vec::new();
                market.execute(MarketCommand::Cancel { order, user: ALICE }, NOW, &mut out);
                for event in &out {
                    let events = alice.decide(UserCommand::ApplyMarket { spec: &spec, event }).unwrap();
                    apply_all(&mut alice, &mut log, events);
                }
            }
            _ => {
                let settling = alice.account().balance(base()).settling;
                if !settling.is_zero() {
                    let events =
                        alice.decide(UserCommand::ConfirmSettlement { asset: base(), amount: settling }).unwrap();
                    apply_all(&mut alice, &mut log, events);
                }
            }
        }
        // Every lot Alice's trades moved is accounted for: her base total changes only by
        // what she bought or sold, her quote total by what she paid or received and fees.
        let mut base_delta: i128 = 0;
        let mut quote_delta: i128 = 0;
        for e in &log {
            if let UserEvent::FillApplied { order, trade, .. } = e {
                let buyer = trade.buyer().0 == *order;
                let (b, q) = (trade.base_amount.0 as i128, trade.quote_amount.0 as i128);
                if buyer {
                    base_delta += b;
                    quote_delta -= q + trade.buyer_fee().0 as i128;
                } else {
                    base_delta -= b;
                    quote_delta += q - trade.seller_fee().0 as i128;
                }
            }
        }
        let total = |a| alice.account().balance(a).total().unwrap().0 as i128;
        assert_eq!(total(base()), deposited_b as i128 + base_delta, "base conserved at step {step}");
        assert_eq!(total(quote()), deposited_q as i128 + quote_delta, "quote conserved at step {step}");
    }
    assert!(log.iter().any(|e| matches!(e, UserEvent::FillApplied { .. })), "the sequence traded");
    assert_invariants(&alice, &log);
}
