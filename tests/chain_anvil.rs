//! The settlement contract on a real EVM node (anvil, installed by `make tools`), driven from
//! Rust exactly as the operator will drive it: orders signed with hob's EIP-712 code, batches
//! packed by `hob::chain::batch`, transactions sent with alloy.
//!
//! One anvil serves every test in this file. Each test deploys its own exchange and tokens and
//! uses its own keys, so tests run in parallel without sharing state. The chain's clock is
//! shared: only the escape-hatch test moves it, and no other test depends on where it stands
//! (expiries are 0, relative to the latest block, or years away).

#[path = "support/anvil.rs"]
mod anvil;

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, Bytes, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;

use hob::chain::batch::{encode_batch, TradeToSettle};
use hob::chain::contract::{decode_revert, HobExchange, HobExchangeErrors as Revert, TestToken};
use hob::chain::eip712::{self, AgentAuthorization, Order, SignedOrder, Withdrawal};
use hob::chain::order::{ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET, SIDE_BUY, SIDE_SELL, TIF_GTC, TIF_GTD};
use hob::domain::{Bps, PriceTicks, QtyLots};

// ---------------------------------------------------------------------------------------------
// One anvil for the whole file
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// A venue: one exchange, one market, its roles, and wallets
// ---------------------------------------------------------------------------------------------

const MARKET: u32 = 1;
/// 0.001 of an 18-decimal base token per lot.
const BASE_LOT: u128 = 1_000_000_000_000_000;
/// Odd, so fees leave remainders and the floor is exercised.
const QUOTE_TICK: u128 = 7;
const ESCAPE_PERIOD_S: u64 = 86_400;
const TEN_YEARS_S: u64 = 10 * 365 * 86_400;

struct Wallet {
    key: PrivateKeySigner,
    provider: DynProvider,
}

impl Wallet {
    fn address(&self) -> Address {
        self.key.address()
    }
}

/// A funded wallet whose key is derived from `name`, so every test has its own accounts.
async fn wallet(name: &str) -> Wallet {
    let key = PrivateKeySigner::from_bytes(&keccak256(name.as_bytes())).expect("a hash is a valid key");
    // The default nonce cache counts a nonce even when gas estimation reverts, leaving a gap
    // that strands the wallet's next transaction; these tests revert on purpose, so every
    // transaction asks the node for the pending nonce instead.
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(anvil::anvil().endpoint_url())
        .erased();
    provider.anvil_set_balance(key.address(), U256::from(10u128.pow(21))).await.expect("funding");
    Wallet { key, provider }
}

struct Venue {
    name: String,
    admin: Wallet,
    operator: Wallet,
    fee_collector: Address,
    exchange: Address,
    base: Address,
    quote: Address,
    domain: Eip712Domain,
}

async fn venue(name: &str) -> Venue {
    let admin = wallet(&format!("{name}/admin")).await;
    let operator = wallet(&format!("{name}/operator")).await;
    let fee_collector = wallet(&format!("{name}/fees")).await.address();
    let p = admin.provider.clone();
    let base = *TestToken::deploy(p.clone(), "Base".into(), "BASE".into(), 18).await.unwrap().address();
    let quote = *TestToken::deploy(p.clone(), "Quote".into(), "QUOTE".into(), 6).await.unwrap().address();
    let exchange = *HobExchange::deploy(p.clone(), fee_collector, ESCAPE_PERIOD_S).await.unwrap().address();
    let chain_id = p.get_chain_id().await.unwrap();
    let venue = Venue {
        name: name.into(),
        admin,
        operator,
        fee_collector,
        exchange,
        base,
        quote,
        domain: eip712::domain(chain_id, exchange),
    };
    let ex = venue.exchange_as(&venue.admin);
    exec(ex.setOperator(venue.operator.address(), true)).await.unwrap();
    exec(ex.registerMarket(MARKET, base, quote, BASE_LOT, QUOTE_TICK)).await.unwrap();
    venue
}

impl Venue {
    fn exchange_as(&self, who: &Wallet) -> HobExchange::HobExchangeInstance<DynProvider> {
        HobExchange::new(self.exchange, who.provider.clone())
    }

    async fn trader(&self, name: &str) -> Wallet {
        wallet(&format!("{}/{name}", self.name)).await
    }

    /// Mints `amount` of `token` to `who` (a faucet) and deposits it into the vault.
    async fn deposit(&self, who: &Wallet, token: Address, amount: u128) {
        let t = TestToken::new(token, who.provider.clone());
        exec(t.mint(who.address(), U256::from(amount))).await.unwrap();
        exec(t.approve(self.exchange, U256::from(amount))).await.unwrap();
        exec(self.exchange_as(who).deposit(token, U256::from(amount))).await.unwrap();
    }

    async fn balance(&self, user: Address, token: Address) -> U256 {
        self.exchange_as(&self.admin).balances(user, token).call().await.unwrap()
    }

    async fn wallet_balance(&self, user: Address, token: Address) -> U256 {
        TestToken::new(token, self.admin.provider.clone()).balanceOf(user).call().await.unwrap()
    }

    /// A GTC limit order on the venue's market with a 30 bps fee cap and no expiry.
    fn order(&self, trader: &Wallet, side: u8, price: u64, quantity: u64, nonce: u64) -> Order {
        Order {
            trader: trader.address(),
            market: MARKET,
            side,
            orderType: ORDER_TYPE_LIMIT,
            timeInForce: TIF_GTC,
            postOnly: false,
            price,
            quantity,
            maxFeeBps: 30,
            nonce,
            expiry: 0,
        }
    }

    fn signed(&self, signer: &Wallet, order: Order) -> SignedOrder {
        SignedOrder::sign(&signer.key, order, &self.domain).unwrap()
    }

    /// Settles `trades` as the next batch.
    async fn settle(&self, trades: &[TradeToSettle]) -> Result<TransactionReceipt, Revert> {
        let next = self.exchange_as(&self.admin).nextBatchIndex().call().await.unwrap();
        self.settle_at(next, trades).await
    }

    async fn settle_at(&self, index: u64, trades: &[TradeToSettle]) -> Result<TransactionReceipt, Revert> {
        let batch = encode_batch(trades).expect("an encodable batch");
        exec(self.exchange_as(&self.operator).settleBatch(index, batch.data)).await
    }

    /// The user's withdrawal, signed by `signer`, executed by the operator.
    async fn withdraw(
        &self,
        user: &Wallet,
        signer: &Wallet,
        amount: u128,
        nonce: u64,
    ) -> Result<TransactionReceipt, Revert> {
        let w = Withdrawal { user: user.address(), token: self.quote, amount: U256::from(amount), nonce, expiry: 0 };
        let sig = eip712::sign(&signer.key, &w, &self.domain).unwrap();
        let ex = self.exchange_as(&self.operator);
        exec(ex.withdraw(w.user, w.token, w.amount, w.nonce, w.expiry, sig.as_bytes().to_vec().into())).await
    }

    async fn now(&self) -> u64 {
        let latest = self.admin.provider.get_block_by_number(BlockNumberOrTag::Latest).await.unwrap();
        latest.expect("a latest block").header.timestamp
    }
}

fn trade(
    maker: &SignedOrder,
    taker: &SignedOrder,
    price: u64,
    qty: u64,
    maker_fee: u16,
    taker_fee: u16,
) -> TradeToSettle {
    TradeToSettle {
        maker: maker.clone(),
        taker: taker.clone(),
        price: PriceTicks(price),
        qty: QtyLots(qty),
        maker_fee: Bps(maker_fee),
        taker_fee: Bps(taker_fee),
    }
}

/// Sends a transaction and waits for its receipt; an exchange revert comes back decoded.
async fn exec<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) -> Result<TransactionReceipt, Revert> {
    match call.send().await {
        Ok(pending) => {
            // anvil mines at once; a missing receipt is a bug to report, not to wait out.
            let receipt = pending.with_timeout(Some(Duration::from_secs(30))).get_receipt().await.expect("a receipt");
            assert!(receipt.status(), "mined but reverted: {receipt:?}");
            Ok(receipt)
        }
        Err(e) => Err(decode_revert(&e).unwrap_or_else(|| panic!("failed without an exchange error: {e}"))),
    }
}

fn u(value: u128) -> U256 {
    U256::from(value)
}

// ---------------------------------------------------------------------------------------------
// Money: deposit -> settle -> withdraw, to the exact unit
// ---------------------------------------------------------------------------------------------

#[test]
fn deposit_settle_and_withdraw_move_exact_amounts() {
    anvil::run(async {
        let v = venue("happy").await;
        let (alice, bob, carol) = (v.trader("alice").await, v.trader("bob").await, v.trader("carol").await);
        v.deposit(&alice, v.quote, 1_000_000).await;
        v.deposit(&bob, v.base, 100 * BASE_LOT).await;
        v.deposit(&carol, v.base, 100 * BASE_LOT).await;

        // Bob and Carol rest sells; Alice's buy takes 31 lots from each.
        let bob_sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 2_003, 40, 1));
        let carol_sell = v.signed(&carol, v.order(&carol, SIDE_SELL, 2_010, 50, 1));
        let alice_buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 2_010, 62, 1));
        let receipt = v
            .settle(&[trade(&bob_sell, &alice_buy, 2_003, 31, 5, 20), trade(&carol_sell, &alice_buy, 2_010, 31, 5, 20)])
            .await
            .unwrap();

        // Trade 1: notional 2003 x 31 x 7 = 434,651; maker fee floor(434,651 x 5 / 1e4) = 217,
        //          taker fee floor(434,651 x 20 / 1e4) = 869.
        // Trade 2: notional 2010 x 31 x 7 = 436,170; maker fee 218, taker fee 872.
        // Alice pays 434,651 + 869 + 436,170 + 872 = 872,562 and receives 62 lots of base.
        assert_eq!(v.balance(alice.address(), v.quote).await, u(1_000_000 - 872_562));
        assert_eq!(v.balance(alice.address(), v.base).await, u(62 * BASE_LOT));
        assert_eq!(v.balance(bob.address(), v.quote).await, u(434_651 - 217));
        assert_eq!(v.balance(bob.address(), v.base).await, u(69 * BASE_LOT));
        assert_eq!(v.balance(carol.address(), v.quote).await, u(436_170 - 218));
        assert_eq!(v.balance(carol.address(), v.base).await, u(69 * BASE_LOT));
        assert_eq!(v.balance(v.fee_collector, v.quote).await, u(217 + 869 + 218 + 872));
        // Conservation: the vault holds exactly what was deposited.
        assert_eq!(v.wallet_balance(v.exchange, v.quote).await, u(1_000_000));

        let settled = receipt.logs().iter().find_map(|l| l.log_decode::<HobExchange::BatchSettled>().ok());
        let settled = settled.expect("a BatchSettled event").inner.data;
        assert_eq!((settled.batchIndex, settled.tradeCount), (0, u(2)));

        // Fill state: Alice's order is done; the makers are partly filled.
        let ex = v.exchange_as(&v.admin);
        let fill = ex.orderFill(alice.address(), 1).call().await.unwrap();
        assert!(fill.done);
        let fill = ex.orderFill(bob.address(), 1).call().await.unwrap();
        assert_eq!((fill.done, fill.filledLots), (false, 31));

        // The operator withdraws for Bob with Bob's signature; the signature works once.
        v.withdraw(&bob, &bob, 400_000, 7).await.unwrap();
        assert_eq!(v.wallet_balance(bob.address(), v.quote).await, u(400_000));
        assert_eq!(v.balance(bob.address(), v.quote).await, u(434_651 - 217 - 400_000));
        assert!(matches!(v.withdraw(&bob, &bob, 1, 7).await, Err(Revert::WithdrawalNonceUsed(_))));
        assert!(matches!(
            v.withdraw(&bob, &bob, 1_000_000, 8).await,
            Err(Revert::InsufficientBalance(e)) if e.user == bob.address() && e.token == v.quote
        ));
    });
}

#[test]
fn a_net_debit_beyond_the_balance_names_the_user_and_token() {
    anvil::run(async {
        let v = venue("short").await;
        let (alice, bob) = (v.trader("alice").await, v.trader("bob").await);
        v.deposit(&alice, v.quote, 100).await;
        v.deposit(&bob, v.base, 10 * BASE_LOT).await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 1));
        let err = v.settle(&[trade(&sell, &buy, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::InsufficientBalance(e) if e.user == alice.address() && e.token == v.quote));
    });
}

// ---------------------------------------------------------------------------------------------
// EIP-712: Rust and the contract agree
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic randomness, so a failing case reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Small values, edge values and anything in between, equally often.
    fn edgy(&mut self) -> u64 {
        match self.next() % 3 {
            0 => self.next() % 4,
            1 => u64::MAX - self.next() % 4,
            _ => self.next(),
        }
    }
}

#[test]
fn rust_and_the_contract_agree_on_hashes_and_signers_of_random_messages() {
    anvil::run(async {
        let v = venue("hashes").await;
        let ex = v.exchange_as(&v.admin);
        let keys: Vec<PrivateKeySigner> =
            (0..5u8).map(|i| PrivateKeySigner::from_bytes(&keccak256([i])).unwrap()).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..200 {
            let key = &keys[case % keys.len()];
            let order = Order {
                trader: Address::from_word(keccak256(rng.next().to_be_bytes())),
                market: rng.edgy() as u32,
                side: rng.edgy() as u8,
                orderType: rng.edgy() as u8,
                timeInForce: rng.edgy() as u8,
                postOnly: rng.next() % 2 == 1,
                price: rng.edgy(),
                quantity: rng.edgy(),
                maxFeeBps: rng.edgy() as u16,
                nonce: rng.edgy(),
                expiry: rng.edgy(),
            };
            let signed = SignedOrder::sign(key, order.clone(), &v.domain).unwrap();
            let on_chain = HobExchange::Order::from(order.clone());
            assert_eq!(ex.hashOrder(on_chain.clone()).call().await.unwrap(), eip712::signing_hash(&order, &v.domain));
            assert_eq!(signed.signer(&v.domain).unwrap(), key.address());
            let full: Bytes = signed.signature.as_bytes().to_vec().into();
            let compact: Bytes = signed.signature.as_erc2098().to_vec().into();
            assert_eq!(ex.orderSigner(on_chain.clone(), full).call().await.unwrap(), key.address(), "{order:?}");
            assert_eq!(ex.orderSigner(on_chain, compact).call().await.unwrap(), key.address(), "{order:?}");
        }
        for _ in 0..20 {
            let w = Withdrawal {
                user: Address::from_word(keccak256(rng.next().to_be_bytes())),
                token: Address::from_word(keccak256(rng.next().to_be_bytes())),
                amount: U256::from(rng.next()) << (rng.next() % 192) as usize,
                nonce: rng.edgy(),
                expiry: rng.edgy(),
            };
            let hash = ex.hashWithdrawal(w.user, w.token, w.amount, w.nonce, w.expiry).call().await.unwrap();
            assert_eq!(hash, eip712::signing_hash(&w, &v.domain));
            let a = AgentAuthorization { owner: w.user, agent: w.token, expiry: w.expiry, nonce: w.nonce };
            let hash = ex.hashAgentAuthorization(a.owner, a.agent, a.expiry, a.nonce).call().await.unwrap();
            assert_eq!(hash, eip712::signing_hash(&a, &v.domain));
        }
        assert_eq!(ex.domainSeparator().call().await.unwrap(), v.domain.separator());
    });
}

#[test]
fn every_order_code_settles_through_the_packed_path() {
    // Settlement hashes orders from packed calldata with its own code; signatures made from
    // the Rust types only verify if every field, flag and width is carried exactly.
    anvil::run(async {
        let v = venue("codes").await;
        let (bob, carol) = (v.trader("bob").await, v.trader("carol").await);
        for w in [&bob, &carol] {
            v.deposit(w, v.base, 100 * BASE_LOT).await;
            v.deposit(w, v.quote, 10_000_000).await;
        }
        let far = v.now().await + TEN_YEARS_S;
        let mut trades = Vec::new();
        for i in 0..16u64 {
            let (maker_wallet, taker_wallet) = if i % 2 == 0 { (&bob, &carol) } else { (&carol, &bob) };
            let maker_side = (i % 2) as u8;
            let mut maker = v.order(maker_wallet, maker_side, 100, 1 + i, u64::MAX - i);
            maker.timeInForce = ((i / 2) % 4) as u8;
            maker.postOnly = i >= 8;
            maker.expiry = if maker.timeInForce == TIF_GTD { far - i } else { 0 };
            let mut taker = v.order(taker_wallet, 1 - maker_side, 100, 1, (1 << 40) + i);
            taker.timeInForce = ((i + 1) % 4) as u8;
            taker.expiry = if taker.timeInForce == TIF_GTD { far + i } else { 0 };
            if i % 4 >= 2 {
                taker.orderType = ORDER_TYPE_MARKET;
                taker.price = if i % 4 == 2 { 0 } else { taker.price };
            }
            taker.maxFeeBps = u16::MAX;
            let maker = v.signed(maker_wallet, maker);
            let taker = v.signed(taker_wallet, taker);
            trades.push(trade(&maker, &taker, 100, 1, 30, 10_000));
        }
        v.settle(&trades).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// What settlement refuses, and how it names the culprit
// ---------------------------------------------------------------------------------------------

/// A venue with Alice (quote) and Bob (base) funded.
async fn funded(name: &str) -> (Venue, Wallet, Wallet) {
    let v = venue(name).await;
    let (alice, bob) = (v.trader("alice").await, v.trader("bob").await);
    v.deposit(&alice, v.quote, 100_000_000).await;
    v.deposit(&bob, v.base, 1_000 * BASE_LOT).await;
    (v, alice, bob)
}

#[test]
fn a_batch_index_settles_exactly_once() {
    anvil::run(async {
        let (v, alice, bob) = funded("index").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 1));
        let batch = [trade(&sell, &buy, 100, 1, 0, 0)];
        v.settle_at(0, &batch).await.unwrap();

        let replay = v.settle_at(0, &batch).await.unwrap_err();
        assert!(matches!(replay, Revert::BadBatchIndex(e) if e.expected == 1 && e.got == 0));
        let skip = v.settle_at(2, &batch).await.unwrap_err();
        assert!(matches!(skip, Revert::BadBatchIndex(e) if e.expected == 1 && e.got == 2));
        v.settle_at(1, &batch).await.unwrap();
    });
}

#[test]
fn a_bad_signature_is_blamed_on_its_order() {
    anvil::run(async {
        let (v, alice, bob) = funded("badsig").await;
        let mallory = v.trader("mallory").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 1));
        // Mallory signs an order in Bob's name.
        let forged = v.signed(&mallory, v.order(&bob, SIDE_SELL, 100, 10, 2));
        let trades = [trade(&sell, &buy, 100, 1, 0, 0), trade(&forged, &buy, 100, 1, 0, 0)];

        let batch = encode_batch(&trades).unwrap();
        let forged_index = batch.orders.iter().position(|k| k.trader == bob.address() && k.nonce == 2).unwrap();
        let err = v.settle(&trades).await.unwrap_err();
        assert!(matches!(&err, Revert::BadSignature(e) if e.order == U256::from(forged_index)), "{err:?}");
        // The operator voids exactly the trades using that order.
        assert_eq!(batch.trades_using(forged_index).collect::<Vec<_>>(), vec![1]);
        v.settle(&trades[..1]).await.unwrap();
    });
}

/// What a revert must be.
type Expected = fn(&Revert) -> bool;

#[test]
fn trades_beyond_their_orders_terms_revert_naming_the_trade() {
    anvil::run(async {
        let (v, alice, bob) = funded("terms").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 105, 100, 1));
        let ok = trade(&sell, &buy, 100, 1, 0, 0);

        let cases: [(TradeToSettle, Expected); 6] = [
            // Sell limit 100: a trade at 99 is below it.
            (trade(&sell, &buy, 99, 1, 0, 0), |e| matches!(e, Revert::PriceNotHonoured(e) if e.trade == U256::from(1))),
            // Buy limit 105: a trade at 106 is above it.
            (
                trade(&sell, &buy, 106, 1, 0, 0),
                |e| matches!(e, Revert::PriceNotHonoured(e) if e.trade == U256::from(1)),
            ),
            // 1 + 10 lots of a 10-lot order.
            (trade(&sell, &buy, 100, 10, 0, 0), |e| matches!(e, Revert::Overfill(e) if e.trade == U256::from(1))),
            (trade(&sell, &buy, 100, 1, 31, 0), |e| matches!(e, Revert::FeeAboveCap(e) if e.trade == U256::from(1))),
            (trade(&sell, &buy, 100, 1, 0, 31), |e| matches!(e, Revert::FeeAboveCap(e) if e.trade == U256::from(1))),
            (
                trade(&buy, &sell, 100, 0, 0, 0),
                |e| matches!(e, Revert::BadTradeEncoding(e) if e.trade == U256::from(1)),
            ),
        ];
        for (bad, expected) in cases {
            let err = v.settle(&[ok.clone(), bad.clone()]).await.unwrap_err();
            assert!(expected(&err), "{err:?} for {bad:?}");
        }

        // Two sells cannot trade; nor may a post-only order take.
        let other_sell = v.signed(&alice, v.order(&alice, SIDE_SELL, 100, 10, 2));
        let err = v.settle(&[ok.clone(), trade(&sell, &other_sell, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::SameSide(e) if e.trade == U256::from(1)));
        let post_only_buy = v.signed(&alice, Order { postOnly: true, ..v.order(&alice, SIDE_BUY, 100, 10, 3) });
        let err = v.settle(&[ok.clone(), trade(&sell, &post_only_buy, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::PostOnlyTaker(e) if e.trade == U256::from(1)));
        // Orders of two markets cannot meet; an unregistered market refuses the whole batch.
        exec(v.exchange_as(&v.admin).registerMarket(2, v.base, v.quote, BASE_LOT, 1)).await.unwrap();
        let other_market = v.signed(&alice, Order { market: 2, ..v.order(&alice, SIDE_BUY, 100, 10, 4) });
        let err = v.settle(&[ok.clone(), trade(&sell, &other_market, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::MarketMismatch(e) if e.trade == U256::from(1)));
        let unknown = v.signed(&alice, Order { market: 3, ..v.order(&alice, SIDE_BUY, 100, 10, 5) });
        let err = v.settle(&[trade(&sell, &unknown, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::UnknownMarket(e) if e.market == 3));
    });
}

#[test]
fn fills_accumulate_across_batches_up_to_the_signed_quantity() {
    anvil::run(async {
        let (v, alice, bob) = funded("fills").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buys: Vec<SignedOrder> = (1..=4).map(|n| v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, n))).collect();
        let ex = v.exchange_as(&v.admin);

        v.settle(&[trade(&sell, &buys[0], 100, 6, 0, 0)]).await.unwrap();
        let fill = ex.orderFill(bob.address(), 1).call().await.unwrap();
        assert_eq!((fill.done, fill.filledLots), (false, 6));

        let err = v.settle(&[trade(&sell, &buys[1], 100, 3, 0, 0), trade(&sell, &buys[2], 100, 2, 0, 0)]).await;
        assert!(matches!(err, Err(Revert::Overfill(e)) if e.trade == U256::from(1)));

        v.settle(&[trade(&sell, &buys[1], 100, 3, 0, 0), trade(&sell, &buys[2], 100, 1, 0, 0)]).await.unwrap();
        let fill = ex.orderFill(bob.address(), 1).call().await.unwrap();
        assert_eq!((fill.done, fill.filledLots), (true, 0), "a finished order is a bit; its lane is freed");

        let err = v.settle(&[trade(&sell, &buys[3], 100, 1, 0, 0)]).await;
        assert!(matches!(err, Err(Revert::Overfill(e)) if e.trade == U256::ZERO));
    });
}

#[test]
fn an_expired_order_never_settles() {
    anvil::run(async {
        let (v, alice, bob) = funded("expired").await;
        let now = v.now().await;
        let sell = v.signed(&bob, Order { expiry: now, ..v.order(&bob, SIDE_SELL, 100, 10, 1) });
        let buy = v.signed(&alice, Order { expiry: now + TEN_YEARS_S, ..v.order(&alice, SIDE_BUY, 100, 10, 1) });
        let batch = encode_batch(&[trade(&sell, &buy, 100, 1, 0, 0)]).unwrap();
        let sell_index = batch.orders.iter().position(|k| k.trader == bob.address()).unwrap();
        let err = v.settle(&[trade(&sell, &buy, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::OrderExpired(e) if e.order == U256::from(sell_index)));
    });
}

#[test]
fn invalidated_nonces_never_settle() {
    anvil::run(async {
        let (v, alice, bob) = funded("nonces").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let stale = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 4));
        let fresh = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 5));

        exec(v.exchange_as(&alice).invalidateNoncesBelow(5)).await.unwrap();
        let batch = encode_batch(&[trade(&sell, &stale, 100, 1, 0, 0)]).unwrap();
        let stale_index = batch.orders.iter().position(|k| k.trader == alice.address()).unwrap();
        let err = v.settle(&[trade(&sell, &stale, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::NonceInvalidated(e) if e.order == U256::from(stale_index)));
        v.settle(&[trade(&sell, &fresh, 100, 1, 0, 0)]).await.unwrap();

        // The floor only rises.
        let err = exec(v.exchange_as(&alice).invalidateNoncesBelow(3)).await.unwrap_err();
        assert!(matches!(err, Revert::NonceNotIncreasing(e) if e.current == 5 && e.requested == 3));
    });
}

// ---------------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------------

#[test]
fn agents_trade_for_their_owner_but_never_withdraw() {
    anvil::run(async {
        let (v, alice, bob) = funded("agents").await;
        let (alice_agent, bob_agent, stranger) =
            (v.trader("alice-agent").await, v.trader("bob-agent").await, v.trader("stranger").await);
        let far = v.now().await + TEN_YEARS_S;

        // Alice authorises her agent on-chain; Bob signs an authorisation the operator submits.
        exec(v.exchange_as(&alice).authorizeAgent(alice_agent.address(), far)).await.unwrap();
        let auth = AgentAuthorization { owner: bob.address(), agent: bob_agent.address(), expiry: far, nonce: 1 };
        let sig: Bytes = eip712::sign(&bob.key, &auth, &v.domain).unwrap().as_bytes().to_vec().into();
        let operator = v.exchange_as(&v.operator);
        let submit = || operator.authorizeAgentBySig(auth.owner, auth.agent, far, 1, sig.clone());
        exec(submit()).await.unwrap();
        assert!(matches!(exec(submit()).await, Err(Revert::AgentNonceUsed(_))));

        let sell = v.signed(&bob_agent, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice_agent, v.order(&alice, SIDE_BUY, 100, 10, 1));
        v.settle(&[trade(&sell, &buy, 100, 2, 0, 0)]).await.unwrap();
        assert_eq!(v.balance(alice.address(), v.base).await, u(2 * BASE_LOT));

        // An agent's signature never moves funds out; the owner's does.
        assert!(matches!(v.withdraw(&alice, &alice_agent, 1, 1).await, Err(Revert::BadWithdrawalSignature(_))));
        v.withdraw(&alice, &alice, 1, 1).await.unwrap();

        // A revoked agent, or a key nobody authorised, cannot sign orders.
        exec(v.exchange_as(&alice).revokeAgent(alice_agent.address())).await.unwrap();
        let revoked = v.signed(&alice_agent, v.order(&alice, SIDE_BUY, 100, 10, 2));
        let unauthorised = v.signed(&stranger, v.order(&alice, SIDE_BUY, 100, 10, 3));
        for order in [revoked, unauthorised] {
            let err = v.settle(&[trade(&sell, &order, 100, 1, 0, 0)]).await.unwrap_err();
            assert!(matches!(err, Revert::BadSignature(_)), "{err:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Escape hatch, pause and roles
// ---------------------------------------------------------------------------------------------

#[test]
fn the_escape_hatch_opens_when_no_batch_settled_for_the_escape_period() {
    anvil::run(async {
        let (v, alice, _bob) = funded("escape").await;
        let ex = v.exchange_as(&alice);
        let err = exec(ex.escapeWithdraw(v.quote)).await.unwrap_err();
        assert!(matches!(err, Revert::EscapeNotOpen(_)));

        alice.provider.anvil_increase_time(ESCAPE_PERIOD_S + 1).await.unwrap();
        alice.provider.anvil_mine(Some(1), None).await.unwrap();
        // Paused or not, the hatch works: a pause must never trap funds.
        exec(v.exchange_as(&v.admin).pause()).await.unwrap();
        exec(ex.escapeWithdraw(v.quote)).await.unwrap();
        assert_eq!(v.wallet_balance(alice.address(), v.quote).await, u(100_000_000));
        assert_eq!(v.balance(alice.address(), v.quote).await, U256::ZERO);
        assert!(matches!(exec(ex.escapeWithdraw(v.quote)).await, Err(Revert::NothingToWithdraw(_))));
    });
}

#[test]
fn a_pause_stops_deposits_settlement_and_operator_withdrawals() {
    anvil::run(async {
        let (v, alice, bob) = funded("pause").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 1));
        let admin = v.exchange_as(&v.admin);
        exec(admin.pause()).await.unwrap();

        assert!(matches!(v.settle(&[trade(&sell, &buy, 100, 1, 0, 0)]).await, Err(Revert::IsPaused(_))));
        assert!(matches!(v.withdraw(&alice, &alice, 1, 1).await, Err(Revert::IsPaused(_))));
        let err = exec(v.exchange_as(&alice).deposit(v.quote, U256::from(1))).await.unwrap_err();
        assert!(matches!(err, Revert::IsPaused(_)));

        exec(admin.unpause()).await.unwrap();
        v.settle(&[trade(&sell, &buy, 100, 1, 0, 0)]).await.unwrap();
    });
}

#[test]
fn only_the_admin_configures_and_only_operators_settle() {
    anvil::run(async {
        let (v, alice, bob) = funded("roles").await;
        let sell = v.signed(&bob, v.order(&bob, SIDE_SELL, 100, 10, 1));
        let buy = v.signed(&alice, v.order(&alice, SIDE_BUY, 100, 10, 1));
        let batch = encode_batch(&[trade(&sell, &buy, 100, 1, 0, 0)]).unwrap();
        let as_alice = v.exchange_as(&alice);
        let admin = v.exchange_as(&v.admin);

        assert!(matches!(exec(as_alice.settleBatch(0, batch.data.clone())).await, Err(Revert::NotOperator(_))));
        assert!(matches!(exec(as_alice.pause()).await, Err(Revert::NotAdmin(_))));
        let (base, quote) = (v.base, v.quote);
        assert!(matches!(
            exec(as_alice.registerMarket(2, base, quote, BASE_LOT, QUOTE_TICK)).await,
            Err(Revert::NotAdmin(_))
        ));
        // A market never changes once registered, and its grid must keep amounts in range.
        assert!(matches!(exec(admin.registerMarket(MARKET, base, quote, 1, 1)).await, Err(Revert::MarketExists(_))));
        assert!(matches!(exec(admin.registerMarket(2, base, quote, 1 << 64, 1)).await, Err(Revert::BadMarketGrid(_))));
        assert!(matches!(exec(admin.registerMarket(2, base, base, 1, 1)).await, Err(Revert::BadMarketGrid(_))));
        assert!(matches!(exec(admin.setEscapePeriod(3_600)).await, Err(Revert::BadEscapePeriod(_))));

        // Admin moves in two steps; the old admin is then powerless.
        exec(admin.transferAdmin(alice.address())).await.unwrap();
        assert!(matches!(exec(v.exchange_as(&bob).acceptAdmin()).await, Err(Revert::NotPendingAdmin(_))));
        exec(as_alice.acceptAdmin()).await.unwrap();
        assert!(matches!(exec(admin.pause()).await, Err(Revert::NotAdmin(_))));
        exec(as_alice.setOperator(v.operator.address(), false)).await.unwrap();
        let err = v.settle(&[trade(&sell, &buy, 100, 1, 0, 0)]).await.unwrap_err();
        assert!(matches!(err, Revert::NotOperator(_)));
    });
}
