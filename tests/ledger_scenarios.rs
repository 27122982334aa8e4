//! The balance ledger as a specification: what placing, filling, amending and cancelling an
//! order does to each bucket of an account (available, locked, settling) and to the fee
//! account. Trades come from the real matching core (`Market::execute`) on the scenario
//! market: 1,000 BTC units a lot, 10 USDT units a tick per lot, maker 10 bps, taker 20 bps.

#[path = "support/scenario.rs"]
mod scenario;

use std::collections::BTreeMap;

use hob::domain::{
    Account, Amount, AssetId, Balance, Bps, FeeAccount, LedgerError, Market, MarketCommand, MarketEvent, MarketSpec,
    NewOrder, OrderId, OrderLock, PriceTicks, QtyLots, Side, TimestampMs, Trade, UserId,
};
use scenario::*;

fn balance(available: u128, locked: u128, settling: u128) -> Balance {
    Balance { available: Amount(available), locked: Amount(locked), settling: Amount(settling) }
}

fn funded(asset: AssetId, amount: u128) -> Account {
    let mut account = Account::new();
    account.deposit(asset, Amount(amount)).unwrap();
    account
}

/// Places `order` on `market` at [`NOW`] and returns the trades it made.
fn trades(market: &mut Market, order: NewOrder) -> Vec<Trade> {
    let mut events = vec![];
    market.execute(MarketCommand::Place(order), NOW, &mut events);
    assert!(!events.iter().any(|e| matches!(e, MarketEvent::Rejected { .. })), "{events:?}");
    events
        .into_iter()
        .filter_map(|e| match e {
            MarketEvent::Traded(t) => Some(t),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Deposits and withdrawals

#[test]
fn a_deposit_is_available_and_a_withdrawal_takes_from_what_is_available() {
    let mut alice = funded(quote(), 10_000);
    assert_eq!(alice.balance(quote()), balance(10_000, 0, 0));
    alice.withdraw(quote(), Amount(4_000)).unwrap();
    assert_eq!(alice.balance(quote()), balance(6_000, 0, 0));
    assert_eq!(alice.balance(base()), Balance::default());
}

#[test]
fn a_withdrawal_beyond_what_is_available_is_refused_and_changes_nothing() {
    let mut alice = funded(quote(), 10_000);
    alice.lock_order(&spec(), &buy(1, ALICE, 100, 5)).unwrap(); // 5,010 locked
    let before = alice.clone();
    assert_eq!(
        alice.withdraw(quote(), Amount(5_000)),
        Err(LedgerError::InsufficientBalance { asset: quote(), needed: Amount(5_000), available: Amount(4_990) })
    );
    assert_eq!(alice, before);
    assert_eq!(
        alice.withdraw(base(), Amount(1)),
        Err(LedgerError::InsufficientBalance { asset: base(), needed: Amount(1), available: Amount(0) })
    );
    assert_eq!(alice, before);
    alice.withdraw(quote(), Amount(4_990)).unwrap();
    assert_eq!(alice.balance(quote()), balance(0, 5_010, 0));
}

// ---------------------------------------------------------------------------------------
// Locking for orders

#[test]
fn a_buy_locks_its_notional_at_the_limit_plus_the_fee_at_the_higher_rate() {
    let mut alice = funded(quote(), 10_000);
    let order = buy(1, ALICE, 101, 3);
    // 101 ticks * 3 lots * 10 = 3,030, plus the 20 bps taker rate: 6.06 rounded down to 6.
    let expected = OrderLock {
        side: Side::Buy,
        asset: quote(),
        amount: Amount(3_036),
        qty: QtyLots(3),
        limit: PriceTicks(101),
        fee_rate: Bps(20),
    };
    assert_eq!(Account::order_cost(&spec(), &order), Ok(expected));
    assert_eq!(alice.lock_order(&spec(), &order), Ok(expected));
    assert_eq!(alice.lock(OrderId(1)), Some(&expected));
    assert_eq!(alice.balance(quote()), balance(6_964, 3_036, 0));
}

#[test]
fn a_post_only_buy_locks_the_fee_at_the_maker_rate() {
    let mut alice = funded(quote(), 10_000);
    let lock = alice.lock_order(&spec(), &buy(1, ALICE, 101, 3).post_only()).unwrap();
    // 3,030 plus 10 bps: 3.03 rounded down to 3.
    assert_eq!((lock.amount, lock.fee_rate), (Amount(3_033), Bps(10)));
    assert_eq!(alice.balance(quote()), balance(6_967, 3_033, 0));
}

#[test]
fn a_market_buy_locks_at_its_worst_price_and_needs_one() {
    let mut alice = funded(quote(), 10_000);
    assert_eq!(alice.lock_order(&spec(), &market_buy(1, ALICE, 2, None)), Err(LedgerError::MarketBuyNeedsWorstPrice));
    assert_eq!(alice, funded(quote(), 10_000));
    // 105 * 2 * 10 = 2,100, plus 4.2 rounded down to 4.
    let lock = alice.lock_order(&spec(), &market_buy(1, ALICE, 2, Some(105))).unwrap();
    assert_eq!((lock.amount, lock.limit), (Amount(2_104), PriceTicks(105)));
}

#[test]
fn a_sell_locks_its_base_quantity() {
    let mut bob = funded(base(), 10_000);
    let lock = bob.lock_order(&spec(), &sell(1, BOB, 101, 3)).unwrap();
    assert_eq!(
        lock,
        OrderLock {
            side: Side::Sell,
            asset: base(),
            amount: Amount(3_000), // 3 lots * 1,000
            qty: QtyLots(3),
            limit: PriceTicks(101),
            fee_rate: Bps(20),
        }
    );
    // A market sell needs no price to know what it sells.
    let lock = bob.lock_order(&spec(), &market_sell(2, BOB, 4, None)).unwrap();
    assert_eq!((lock.asset, lock.amount), (base(), Amount(4_000)));
    assert_eq!(bob.balance(base()), balance(3_000, 7_000, 0));
    assert_eq!(bob.balance(quote()), Balance::default());
}

#[test]
fn an_order_the_account_cannot_fund_is_refused_and_changes_nothing() {
    let mut alice = funded(quote(), 5_009);
    alice.deposit(base(), Amount(5_000)).unwrap();
    let before = alice.clone();
    assert_eq!(
        alice.lock_order(&spec(), &buy(1, ALICE, 100, 5)),
        Err(LedgerError::InsufficientBalance { asset: quote(), needed: Amount(5_010), available: Amount(5_009) })
    );
    assert_eq!(
        alice.lock_order(&spec(), &sell(2, ALICE, 100, 6)),
        Err(LedgerError::InsufficientBalance { asset: base(), needed: Amount(6_000), available: Amount(5_000) })
    );
    assert_eq!(alice, before);
    assert_eq!(alice.open_orders(), 0);
}

#[test]
fn an_order_holds_at_most_one_lock() {
    let mut alice = funded(quote(), 100_000);
    alice.lock_order(&spec(), &buy(1, ALICE, 100, 5)).unwrap();
    let before = alice.clone();
    assert_eq!(alice.lock_order(&spec(), &buy(1, ALICE, 100, 5)), Err(LedgerError::DuplicateLock(OrderId(1))));
    assert_eq!(alice, before);
}

// ---------------------------------------------------------------------------------------
// Fills

#[test]
fn a_buyer_filled_below_its_limit_gets_the_improvement_back_and_its_base_to_settle() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 10_000);
    let mut bob = funded(base(), 5_000);
    let mut fees = FeeAccount::default();

    let ask = sell(1, BOB, 100, 5);
    bob.lock_order(&spec, &ask).unwrap();
    trades(&mut market, ask);
    let bid = buy(2, ALICE, 102, 5);
    // 102 * 5 * 10 = 5,100 plus 10.2 rounded down.
    assert_eq!(alice.lock_order(&spec, &bid).unwrap().amount, Amount(5_110));
    let [t] = trades(&mut market, bid)[..] else { panic!("one trade") };
    // At the ask: 100 * 5 * 10 = 5,000; Alice takes (20 bps: 10), Bob makes (10 bps: 5).
    assert_eq!((t.quote_amount, t.taker_fee, t.maker_fee), (Amount(5_000), Amount(10), Amount(5)));

    assert_eq!(alice.apply_fill(&spec, bid.id, &t), Ok(Amount(10)));
    assert_eq!(bob.apply_fill(&spec, ask.id, &t), Ok(Amount(5)));
    fees.collect(&spec, &t).unwrap();

    // Alice paid 5,000 + 10; the 100 of price improvement is available again.
    assert_eq!(alice.balance(quote()), balance(4_990, 0, 0));
    assert_eq!(alice.balance(base()), balance(0, 0, 5_000));
    assert_eq!(alice.lock(bid.id), None);
    assert_eq!(bob.balance(base()), balance(0, 0, 0));
    assert_eq!(bob.balance(quote()), balance(0, 0, 4_995));
    assert_eq!(fees.collected(quote()), Amount(15));
    assert_eq!(fees.collected(base()), Amount(0));
}

#[test]
fn a_seller_receives_the_quote_less_its_fee_into_settling() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 10_000);
    let mut bob = funded(base(), 5_000);

    let bid = buy(1, ALICE, 100, 5);
    alice.lock_order(&spec, &bid).unwrap(); // 5,010
    trades(&mut market, bid);
    let ask = sell(2, BOB, 99, 5);
    bob.lock_order(&spec, &ask).unwrap();
    let [t] = trades(&mut market, ask)[..] else { panic!("one trade") };
    assert_eq!(t.price, PriceTicks(100));

    // Bob takes: 5,000 less 20 bps (10).
    assert_eq!(bob.apply_fill(&spec, ask.id, &t), Ok(Amount(10)));
    assert_eq!(bob.balance(quote()), balance(0, 0, 4_990));
    assert_eq!(bob.balance(base()), balance(0, 0, 0));
    // Alice made: she locked the fee at 20 bps and paid 10 bps, so 5 comes back.
    assert_eq!(alice.apply_fill(&spec, bid.id, &t), Ok(Amount(5)));
    assert_eq!(alice.balance(quote()), balance(4_995, 0, 0));
    assert_eq!(alice.balance(base()), balance(0, 0, 5_000));
}

#[test]
fn partial_fills_then_the_last_fill_leave_nothing_locked() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 20_000);
    let bid = buy(1, ALICE, 143, 7);
    // 143 * 7 * 10 = 10,010, plus 20.02 rounded down to 20.
    assert_eq!(alice.lock_order(&spec, &bid).unwrap().amount, Amount(10_030));
    trades(&mut market, bid);

    // First fill, 2 lots as maker: 2,860 at 10 bps pays 2 (2.86). The lock share of 2 lots
    // is 2,860 + 5 (5.72), so 3 comes back.
    let [t1] = trades(&mut market, sell(2, BOB, 143, 2))[..] else { panic!("one trade") };
    assert_eq!(alice.apply_fill(&spec, bid.id, &t1), Ok(Amount(2)));
    assert_eq!(alice.lock(bid.id).map(|l| (l.amount, l.qty)), Some((Amount(7_165), QtyLots(5))));
    assert_eq!(alice.balance(quote()), balance(9_973, 7_165, 0));

    // Last fill, 5 lots: 7,150 pays 7 (7.15). The whole rest of the lock is released, 7,165:
    // one more than 5 lots would lock alone (7,150 + 14), because of the rounding of the first.
    let [t2] = trades(&mut market, sell(3, CAROL, 143, 5))[..] else { panic!("one trade") };
    assert_eq!(alice.apply_fill(&spec, bid.id, &t2), Ok(Amount(7)));
    assert_eq!(alice.lock(bid.id), None);
    assert_eq!(alice.open_orders(), 0);
    // 20,000 - 10,010 of notional - 2 - 7 of fees.
    assert_eq!(alice.balance(quote()), balance(9_981, 0, 0));
    assert_eq!(alice.balance(base()), balance(0, 0, 7_000));
}

#[test]
fn a_fill_for_an_order_that_is_not_a_party_or_is_too_big_is_refused() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 100_000);
    alice.lock_order(&spec, &buy(1, ALICE, 100, 5)).unwrap();
    alice.lock_order(&spec, &buy(9, ALICE, 90, 1)).unwrap();
    trades(&mut market, buy(1, ALICE, 100, 5));
    let [t] = trades(&mut market, sell(2, BOB, 100, 5))[..] else { panic!("one trade") };
    let before = alice.clone();
    assert_eq!(alice.apply_fill(&spec, OrderId(9), &t), Err(LedgerError::NotParty(OrderId(9))));
    assert_eq!(alice.apply_fill(&spec, OrderId(7), &t), Err(LedgerError::UnknownLock(OrderId(7))));
    alice.relock(&spec, OrderId(1), PriceTicks(100), QtyLots(4)).unwrap();
    let relocked = alice.clone();
    assert_eq!(
        alice.apply_fill(&spec, OrderId(1), &t),
        Err(LedgerError::Overfill { order: OrderId(1), open: QtyLots(4), qty: QtyLots(5) })
    );
    assert_eq!(alice, relocked);
    assert_ne!(alice, before);
}

// ---------------------------------------------------------------------------------------
// Releases, amends, settlement

#[test]
fn releasing_an_order_returns_what_is_still_locked() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 20_000);
    let bid = buy(1, ALICE, 143, 7);
    alice.lock_order(&spec, &bid).unwrap();
    trades(&mut market, bid);
    let [t] = trades(&mut market, sell(2, BOB, 143, 2))[..] else { panic!("one trade") };
    alice.apply_fill(&spec, bid.id, &t).unwrap();

    let mut events = vec![];
    market.execute(cancel(bid, ALICE), NOW, &mut events);
    assert_eq!(events, vec![cancelled(bid, 5, hob::domain::CancelReason::User)]);
    assert_eq!(alice.release_order(bid.id), Ok(Amount(7_165)));
    assert_eq!(alice.balance(quote()), balance(17_138, 0, 0)); // 20,000 - 2,860 - 2
    assert_eq!(alice.release_order(bid.id), Err(LedgerError::UnknownLock(bid.id)));
}

#[test]
fn relocking_for_an_amend_takes_more_or_returns_the_difference() {
    let spec = spec();
    let mut alice = funded(quote(), 10_000);
    alice.lock_order(&spec, &buy(1, ALICE, 100, 5)).unwrap(); // 5,010
                                                              // Up: 8 lots at 100 lock 8,000 + 16.
    let up = alice.relock(&spec, OrderId(1), PriceTicks(100), QtyLots(8)).unwrap();
    assert_eq!((up.amount, up.qty), (Amount(8_016), QtyLots(8)));
    assert_eq!(alice.balance(quote()), balance(1_984, 8_016, 0));
    // Down: 2 lots at 99 lock 1,980 + 3 (3.96).
    let down = alice.relock(&spec, OrderId(1), PriceTicks(99), QtyLots(2)).unwrap();
    assert_eq!((down.amount, down.qty, down.limit), (Amount(1_983), QtyLots(2), PriceTicks(99)));
    assert_eq!(alice.balance(quote()), balance(8_017, 1_983, 0));
    // Beyond what is available: 10,020 needs 8,037 more.
    let before = alice.clone();
    assert_eq!(
        alice.relock(&spec, OrderId(1), PriceTicks(100), QtyLots(10)),
        Err(LedgerError::InsufficientBalance { asset: quote(), needed: Amount(8_037), available: Amount(8_017) })
    );
    assert_eq!(alice, before);
    assert_eq!(alice.relock(&spec, OrderId(9), PriceTicks(100), QtyLots(1)), Err(LedgerError::UnknownLock(OrderId(9))));
}

#[test]
fn relocking_a_sell_follows_its_quantity_only() {
    let spec = spec();
    let mut bob = funded(base(), 5_000);
    bob.lock_order(&spec, &sell(1, BOB, 100, 5)).unwrap();
    let lock = bob.relock(&spec, OrderId(1), PriceTicks(105), QtyLots(3)).unwrap();
    assert_eq!((lock.amount, lock.qty), (Amount(3_000), QtyLots(3)));
    assert_eq!(bob.balance(base()), balance(2_000, 3_000, 0));
}

#[test]
fn a_confirmed_settlement_becomes_available() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 10_000);
    trades(&mut market, sell(1, BOB, 100, 5));
    let bid = buy(2, ALICE, 100, 5);
    alice.lock_order(&spec, &bid).unwrap();
    let [t] = trades(&mut market, bid)[..] else { panic!("one trade") };
    alice.apply_fill(&spec, bid.id, &t).unwrap();
    assert_eq!(alice.balance(base()), balance(0, 0, 5_000));

    alice.confirm_settlement(base(), Amount(3_000)).unwrap();
    assert_eq!(alice.balance(base()), balance(3_000, 0, 2_000));
    let before = alice.clone();
    assert_eq!(
        alice.confirm_settlement(base(), Amount(2_001)),
        Err(LedgerError::Underflow { asset: base(), bucket: "settling" })
    );
    assert_eq!(alice, before);
    alice.confirm_settlement(base(), Amount(2_000)).unwrap();
    assert_eq!(alice.balance(base()), balance(5_000, 0, 0));
}

#[test]
fn a_voided_fill_takes_its_proceeds_out_of_settling_and_gives_its_cost_back_or_changes_nothing() {
    let spec = spec();
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 10_000);
    trades(&mut market, sell(1, BOB, 100, 5));
    let bid = buy(2, ALICE, 100, 5);
    alice.lock_order(&spec, &bid).unwrap();
    let [t] = trades(&mut market, bid)[..] else { panic!("one trade") };
    alice.apply_fill(&spec, bid.id, &t).unwrap();
    // Paid 5,000 + a 10 taker fee; settling 5,000 BTC units.
    assert_eq!(alice.balance(quote()), balance(10_000 - 5_010, 0, 0));

    let before = alice.clone();
    let too_much = alice.void_fill((base(), Amount(5_001)), (quote(), Amount(5_010)));
    assert_eq!(too_much, Err(LedgerError::Underflow { asset: base(), bucket: "settling" }));
    assert_eq!(alice, before, "a refused void changes nothing");
    let overflow = alice.void_fill((base(), Amount(5_000)), (quote(), Amount(u128::MAX)));
    assert_eq!(overflow, Err(LedgerError::Overflow));
    assert_eq!(alice, before);

    alice.void_fill((base(), Amount(5_000)), (quote(), Amount(5_010))).unwrap();
    assert_eq!(alice.balance(quote()), balance(10_000, 0, 0));
    assert_eq!(alice.balance(base()), balance(0, 0, 0));
}

// ---------------------------------------------------------------------------------------
// Fees

#[test]
fn fees_round_down_to_whole_quote_units() {
    assert_eq!(Bps(10).fee_on(Amount(999)), Amount(0));
    assert_eq!(Bps(20).fee_on(Amount(999)), Amount(1));
    assert_eq!(Bps(10).fee_on(Amount(1_000)), Amount(1));

    // One quote unit a tick, so a trade can be worth 999.
    let spec = MarketSpec { quote_tick: Amount(1), min_notional: Amount(0), ..spec() };
    let mut market = Market::new(spec.clone());
    let mut alice = funded(quote(), 10_000);
    let mut bob = funded(base(), 1_000);
    let mut fees = FeeAccount::default();
    let ask = sell(1, BOB, 999, 1);
    bob.lock_order(&spec, &ask).unwrap();
    trades(&mut market, ask);
    let bid = buy(2, ALICE, 999, 1);
    // 999 + 1.998 rounded down.
    assert_eq!(alice.lock_order(&spec, &bid).unwrap().amount, Amount(1_000));
    let [t] = trades(&mut market, bid)[..] else { panic!("one trade") };
    // Maker 0.999 and taker 1.998, each rounded down.
    assert_eq!((t.quote_amount, t.maker_fee, t.taker_fee), (Amount(999), Amount(0), Amount(1)));
    alice.apply_fill(&spec, bid.id, &t).unwrap();
    bob.apply_fill(&spec, ask.id, &t).unwrap();
    fees.collect(&spec, &t).unwrap();
    assert_eq!(alice.balance(quote()), balance(9_000, 0, 0));
    assert_eq!(bob.balance(quote()), balance(0, 0, 999));
    assert_eq!(fees.collected(quote()), Amount(1));
}

// ---------------------------------------------------------------------------------------
// Conservation

/// A market and the accounts of its users, wired the way an engine would: lock before
/// placing, fold every event into the ledger, release what a rejected, expired or cancelled
/// order still holds.
struct Exchange {
    market: Market,
    accounts: BTreeMap<UserId, Account>,
    owners: BTreeMap<OrderId, UserId>,
    fees: FeeAccount,
    deposited: BTreeMap<AssetId, u128>,
}

impl Exchange {
    fn new(users: &[UserId], each: u128) -> Exchange {
        let mut deposited = BTreeMap::new();
        let mut accounts = BTreeMap::new();
        for &user in users {
            let mut account = Account::new();
            for asset in [base(), quote()] {
                account.deposit(asset, Amount(each)).unwrap();
                *deposited.entry(asset).or_default() += each;
            }
            accounts.insert(user, account);
        }
        Exchange {
            market: Market::new(spec()),
            accounts,
            owners: BTreeMap::new(),
            fees: FeeAccount::default(),
            deposited,
        }
    }

    fn account(&mut self, order: OrderId) -> &mut Account {
        let user = self.owners[&order];
        self.accounts.get_mut(&user).unwrap()
    }

    /// Submits a command; returns its events, or none if the account could not fund it.
    fn submit(&mut self, command: MarketCommand, now: TimestampMs) -> Vec<MarketEvent> {
        let spec = self.market.spec().clone();
        if let MarketCommand::Place(order) = command {
            if self.accounts.get_mut(&order.user).unwrap().lock_order(&spec, &order).is_err() {
                return vec![];
            }
            self.owners.insert(order.id, order.user);
        }
        let mut events = vec![];
        self.market.execute(command, now, &mut events);
        for event in &events {
            match *event {
                MarketEvent::Traded(t) => {
                    self.account(t.buyer().0).apply_fill(&spec, t.buyer().0, &t).unwrap();
                    self.account(t.seller().0).apply_fill(&spec, t.seller().0, &t).unwrap();
                    self.fees.collect(&spec, &t).unwrap();
                }
                MarketEvent::Filled { order } => assert_eq!(self.account(order).lock(order), None),
                MarketEvent::Expired { order, .. } | MarketEvent::Cancelled { order, .. } => {
                    self.account(order).release_order(order).unwrap();
                }
                MarketEvent::Rejected { order, .. } if matches!(command, MarketCommand::Place(_)) => {
                    self.account(order).release_order(order).unwrap();
                }
                MarketEvent::Amended { order, price, qty, .. } => {
                    self.account(order).relock(&spec, order, price, qty).unwrap();
                }
                _ => {}
            }
        }
        events
    }

    fn assert_balanced(&self) {
        for (&asset, &deposited) in &self.deposited {
            let held: u128 = self.accounts.values().map(|a| a.balance(asset).total().unwrap().0).sum();
            assert_eq!(held + self.fees.collected(asset).0, deposited, "{asset} is not conserved");
        }
        // Locks are exactly the resting orders', and each account's locked buckets are their sum.
        let book = [resting(&self.market, Side::Buy), resting(&self.market, Side::Sell)].concat();
        for (&user, account) in &self.accounts {
            let own: Vec<_> = book.iter().filter(|o| o.user == user).collect();
            assert_eq!(account.open_orders(), own.len());
            for asset in [base(), quote()] {
                let locked: u128 = own
                    .iter()
                    .map(|o| account.lock(o.id).expect("a resting order holds a lock"))
                    .filter(|l| l.asset == asset)
                    .map(|l| l.amount.0)
                    .sum();
                assert_eq!(account.balance(asset).locked, Amount(locked), "{user} {asset}");
            }
        }
    }
}

#[test]
fn a_trade_moves_value_between_accounts_and_the_fee_account_without_creating_any() {
    let mut exchange = Exchange::new(&[ALICE, BOB], 1_000_000);
    exchange.submit(place(sell(1, BOB, 100, 5)), NOW);
    exchange.submit(place(buy(2, ALICE, 102, 3)), NOW);
    exchange.assert_balanced();
    assert_eq!(exchange.fees.collected(quote()), Amount(9)); // 3,000: maker 3, taker 6
    exchange.submit(cancel(1, BOB), NOW);
    exchange.assert_balanced();
    assert_eq!(exchange.accounts[&BOB].balance(base()), balance(997_000, 0, 0));
    assert_eq!(exchange.accounts[&BOB].balance(quote()), balance(1_000_000, 0, 2_997));
    assert_eq!(exchange.accounts[&ALICE].balance(quote()), balance(1_000_000 - 3_006, 0, 0));
}

#[test]
fn trades_cancels_amends_and_expiries_conserve_every_asset() {
    for seed in [3, 5, 8] {
        let mut exchange = Exchange::new(&[ALICE, BOB, CAROL, DAVE], 1_000_000_000);
        let mut traded = 0;
        for (i, step) in script(seed, 1_500).into_iter().enumerate() {
            let mut command = step.command;
            // Cancelling an order that is due to expire ends it twice today (see
            // `cancelling_a_due_gtd_order_reports_only_its_expiry`); let it just expire.
            if let MarketCommand::Cancel { order, .. } = command {
                if exchange.market.book().get(order).and_then(|o| o.expiry).is_some_and(|at| at <= step.now) {
                    command = MarketCommand::ExpireDue;
                }
            }
            let events = exchange.submit(command, step.now);
            traded += events.iter().filter(|e| matches!(e, MarketEvent::Traded(_))).count();
            exchange.assert_balanced();
            if i % 100 == 99 {
                // Settlements confirm in batches; that moves funds between buckets only.
                for account in exchange.accounts.values_mut() {
                    for asset in [base(), quote()] {
                        let settling = account.balance(asset).settling;
                        account.confirm_settlement(asset, settling).unwrap();
                    }
                }
                exchange.assert_balanced();
            }
        }
        assert!(traded > 100, "seed {seed}: only {traded} trades");
        assert!(exchange.fees.collected(quote()) > Amount(0));
    }
}
