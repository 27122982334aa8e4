//! Each invariant check of `hob audit` on hand-built event sequences: given the events a
//! market, its users and a settlement operator stored (made by the real deciders, then
//! edited where a case needs a fault), when the auditor replays them, then its verdict.
// Test code unwraps: a failure should fail the test.

use hob::audit::facts::Facts;
use hob::audit::invariants::check_all;
use hob::audit::replay::{MarketReplay, Replayer};
use hob::audit::{Check, Findings};
use hob::domain::{
    Amount, Market, MarketCommand, MarketEvent, NewOrder, OrderId, OrderRequest, OrderType, PriceTicks, QtyLots, Side,
    StpMode, TimeInForce, TimestampMs, Trade, UserCommand, UserEvent, UserId, UserState,
};
use hob::settlement::chain::TxHash;
use hob::settlement::{OperatorEvent, OperatorState, QueuedTrade, TradeKey, VoidReason};

#[path = "support/btc_usdt.rs"]
mod btc_usdt;
use btc_usdt::{asset, spec};

const ALICE: UserId = UserId([1; 20]);
const BOB: UserId = UserId([2; 20]);

fn order(id: u64, user: UserId, side: Side, price: u64, qty: u64) -> NewOrder {
    NewOrder {
        id: OrderId(id),
        user,
        side,
        order_type: OrderType::Limit { price: PriceTicks(price) },
        qty: QtyLots(qty),
        tif: TimeInForce::Gtc,
        post_only: false,
        stp: StpMode::ExpireMaker,
    }
}

/// The streams of one market with two users, built by the real deciders.
struct Streams {
    market: Vec<MarketEvent>,
    alice: Vec<UserEvent>,
    bob: Vec<UserEvent>,
    operators: Vec<Vec<OperatorEvent>>,
    live: Market,
    users: [UserState; 2],
}

impl Streams {
    /// Alice holds 1,000,000 USDT, Bob 100,000 BTC.
    fn funded() -> Streams {
        let mut s = Streams {
            market: vec![],
            alice: vec![],
            bob: vec![],
            operators: vec![],
            live: Market::new(spec()),
            users: [UserState::new(ALICE), UserState::new(BOB)],
        };
        s.user(ALICE, UserCommand::Deposit { asset: asset("USDT"), amount: Amount(1_000_000) });
        s.user(BOB, UserCommand::Deposit { asset: asset("BTC"), amount: Amount(100_000) });
        s
    }

    fn user(&mut self, user: UserId, command: UserCommand<'_>) {
        let i = usize::from(user != ALICE);
        let events = self.users[i].decide(command).unwrap();
        for e in &events {
            self.users[i].apply(e).unwrap();
        }
        if user == ALICE { &mut self.alice } else { &mut self.bob }.extend(events);
    }

    /// The order through its user and the market, and the market's events back to both users.
    fn place(&mut self, o: NewOrder, nonce: u64) {
        let spec = spec();
        let request = OrderRequest { market: spec.id, order: o, client_order_id: None, nonce, auth: None };
        self.user(o.user, UserCommand::Place { spec: &spec, request });
        let mut out = Vec::new();
        self.live.execute(MarketCommand::Place(o), TimestampMs(1), &mut out);
        for e in &out {
            for u in [ALICE, BOB] {
                self.user(u, UserCommand::ApplyMarket { spec: &spec, event: e });
            }
        }
        self.market.extend(out);
    }

    /// Bob offers 5 lots at 1,000; Alice buys 2: one trade.
    fn traded() -> Streams {
        let mut s = Streams::funded();
        s.place(order(1, BOB, Side::Sell, 1_000, 5), 1);
        s.place(order(2, ALICE, Side::Buy, 1_000, 2), 1);
        s
    }

    fn trade(&self) -> Trade {
        self.market.iter().find_map(|e| if let MarketEvent::Traded(t) = e { Some(*t) } else { None }).unwrap()
    }

    fn queued(&self) -> OperatorEvent {
        let trade = QueuedTrade { market: spec().id, trade: self.trade(), maker_auth: None, taker_auth: None };
        OperatorEvent::TradeQueued { trade, queued_at_ms: 0 }
    }

    fn key(&self) -> TradeKey {
        TradeKey { market: spec().id, trade: self.trade().id }
    }

    /// An operator that batched the trade and saw the batch confirmed.
    fn settled_by_operator(&mut self) {
        let key = self.key();
        self.operators.push(vec![
            self.queued(),
            OperatorEvent::BatchOpened { batch: 1, trades: vec![key] },
            OperatorEvent::SettlementConfirmed {
                batch: 1,
                chain_index: 0,
                tx: TxHash::ZERO,
                block: 1,
                trades: vec![key],
            },
        ]);
    }

    /// An operator that voided the trade, and both parties' compensations.
    fn voided(&mut self) {
        let (trade, key) = (self.trade(), self.key());
        let void = OperatorEvent::TradeVoided {
            trade,
            key,
            reason: VoidReason::GaveUp,
            detail: String::new(),
            batch: None,
            order: None,
        };
        self.operators.push(vec![self.queued(), void]);
        let spec = spec();
        self.user(BOB, UserCommand::VoidTrade { spec: &spec, order: trade.maker_order, trade: &trade });
        self.user(ALICE, UserCommand::VoidTrade { spec: &spec, order: trade.taker_order, trade: &trade });
    }

    /// The auditor's verdict on these streams.
    fn audit(&self) -> (Findings, Facts) {
        let mut r = Replayer::default();
        let mut f = Findings::default();
        for (user, events) in [(ALICE, &self.alice), (BOB, &self.bob)] {
            let stream = format!("user:{user}");
            let mut state = UserState::new(user);
            for (i, e) in events.iter().enumerate() {
                r.fold_user(&stream, i as u64 + 1, &mut state, e, &mut f).unwrap();
            }
            r.finish_user(&stream, &state, &mut f);
        }
        let mut m = MarketReplay::new(spec());
        for (i, e) in self.market.iter().enumerate() {
            if r.fold_market("market:BTC-USDT", i as u64 + 1, &mut m, e, &mut f).is_err() {
                break;
            }
        }
        for (n, events) in self.operators.iter().enumerate() {
            let stream = format!("operator:0x{:040x}", n + 1);
            let mut state = OperatorState::default();
            for (i, e) in events.iter().enumerate() {
                r.fold_operator(&stream, i as u64 + 1, &mut state, e, &mut f).unwrap();
            }
        }
        check_all(&r.facts, &mut f);
        (f, r.facts)
    }
}

fn messages(f: &Findings, check: Check) -> Vec<String> {
    f.of(check).map(|v| format!("{:?} v{:?}: {}", v.stream, v.version, v.message)).collect()
}

#[test]
fn a_trade_with_both_fills_passes_every_check() {
    // given one trade, filled on both sides
    let s = Streams::traded();
    // then nothing is violated, and each check looked at something
    let (f, _) = s.audit();
    assert!(f.ok(), "{:?}", f.violations());
    assert_eq!(f.checked(Check::FillsMatchTrades), 1);
    assert_eq!(f.checked(Check::Conservation), 2);
    assert_eq!(f.checked(Check::NoOverfill), 1);
}

#[test]
fn conservation_counts_fees_and_fails_when_one_side_is_missing() {
    // given the trade, when the seller's fill is missing from Bob's stream
    let mut s = Streams::traded();
    s.bob.retain(|e| !matches!(e, UserEvent::FillApplied { .. }));
    let (f, facts) = s.audit();
    // then the fill is reported missing, and USDT and BTC no longer add up
    assert_eq!(facts.fills.len(), 1);
    let missing = messages(&f, Check::FillsMatchTrades);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("no fill of maker order 1"), "{missing:?}");
    let conservation = messages(&f, Check::Conservation);
    assert_eq!(conservation.len(), 2, "{conservation:?}");
}

#[test]
fn a_fill_applied_twice_is_named_by_its_stream_and_version() {
    // given Alice's 4-lot bid filled 2 lots by one trade, and her stream applying that fill
    // twice (her lock covers both copies, so her own replay does not object)
    let mut s = Streams::funded();
    s.place(order(1, BOB, Side::Sell, 1_000, 2), 1);
    s.place(order(2, ALICE, Side::Buy, 1_000, 4), 1);
    let at = s.alice.iter().position(|e| matches!(e, UserEvent::FillApplied { .. })).unwrap();
    let copy = s.alice[at].clone();
    s.alice.insert(at + 1, copy);
    // then the check names Alice's stream at the copy's version
    let (f, _) = s.audit();
    let twice = messages(&f, Check::FillsMatchTrades);
    assert_eq!(twice.len(), 1, "{twice:?}");
    let place = format!("Some(\"user:{ALICE}\") v{:?}", Some(at as u64 + 2));
    assert!(twice[0].starts_with(&place) && twice[0].contains("filled 2 times"), "{twice:?}");
}

#[test]
fn a_taker_traded_beyond_its_quantity_is_an_overfill() {
    // given Bob's resting 5 lots, and a market stream in which Alice's 2-lot order trades 3
    let mut s = Streams::traded();
    for e in &mut s.market {
        if let MarketEvent::Traded(t) = e {
            t.qty = QtyLots(3);
        }
    }
    // then the overfill is named at the trade's version
    let (f, _) = s.audit();
    let over = messages(&f, Check::NoOverfill);
    assert_eq!(over.len(), 1, "{over:?}");
    let version = s.market.iter().position(|e| matches!(e, MarketEvent::Traded(_))).unwrap() as u64 + 1;
    assert!(
        over[0].contains(&format!("v{:?}", Some(version))) && over[0].contains("taker order 2 by 3 lots, only 2 open"),
        "{over:?}"
    );
}

#[test]
fn a_book_left_crossed_is_named_at_the_event_that_crossed_it() {
    // given a bid resting at 1,010, and a stream in which an ask then rests at 1,000
    let mut s = Streams::funded();
    s.place(order(1, ALICE, Side::Buy, 1_010, 1), 1);
    s.market.push(MarketEvent::Rested {
        order: OrderId(2),
        user: BOB,
        side: Side::Sell,
        price: PriceTicks(1_000),
        qty: QtyLots(1),
        expiry: None,
        post_only: false,
        stp: StpMode::ExpireMaker,
    });
    let version = s.market.len() as u64;
    // then the crossing is named at that version
    let (f, _) = s.audit();
    let crossed = messages(&f, Check::BookNotCrossed);
    assert_eq!(crossed.len(), 1, "{crossed:?}");
    assert!(
        crossed[0].contains(&format!("v{:?}", Some(version))) && crossed[0].contains("1010 >= best ask 1000"),
        "{crossed:?}"
    );
}

#[test]
fn a_settled_trade_is_in_exactly_one_confirmed_batch() {
    // given the trade settled by one operator: the check passes
    let mut s = Streams::traded();
    s.settled_by_operator();
    let (f, _) = s.audit();
    assert!(f.ok(), "{:?}", f.violations());
    assert_eq!(f.checked(Check::SettledOnce), 1);

    // when a second operator also confirms it, then the second confirmation is named
    s.settled_by_operator();
    let (f, _) = s.audit();
    let again = messages(&f, Check::SettledOnce);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(
        again[0].contains("operator:0x0000000000000000000000000000000000000002")
            && again[0].contains("confirmed again"),
        "{again:?}"
    );
}

#[test]
fn a_voided_trade_is_compensated_on_both_sides() {
    // given a trade voided by the operator and compensated by both users: every check passes
    let mut s = Streams::traded();
    s.voided();
    let (f, _) = s.audit();
    assert!(f.ok(), "{:?}", f.violations());
    assert_eq!(f.checked(Check::VoidsCompensated), 1);

    // when Alice's compensation is missing, then the taker is named as not compensated and
    // the money she paid is missing from the books
    s.alice.retain(|e| !matches!(e, UserEvent::TradeVoided { .. }));
    let (f, _) = s.audit();
    let uncompensated = messages(&f, Check::VoidsCompensated);
    assert_eq!(uncompensated.len(), 1, "{uncompensated:?}");
    assert!(
        uncompensated[0].contains("the taker") && uncompensated[0].contains(&format!("user:{ALICE}")),
        "{uncompensated:?}"
    );
    assert!(messages(&f, Check::Conservation).iter().any(|m| m.contains("asset BTC")));
}

#[test]
fn a_compensation_that_gives_back_too_much_is_named() {
    // given a voided trade whose seller compensation restores one base unit too many
    let mut s = Streams::traded();
    s.voided();
    for e in &mut s.bob {
        if let UserEvent::TradeVoided { restored, .. } = e {
            restored.0 += 1;
        }
    }
    // then the compensation is named with what it moved and what the trade moved, and the
    // invented unit breaks conservation
    let (f, _) = s.audit();
    let wrong = messages(&f, Check::VoidsCompensated);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains(&format!("user:{BOB}")) && wrong[0].contains("the maker's compensation"), "{wrong:?}");
    assert!(messages(&f, Check::Conservation).iter().any(|m| m.contains("asset BTC")));
}
