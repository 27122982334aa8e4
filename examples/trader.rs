//! A trader on a local hob, end to end: two wallets deposit test tokens into the exchange on
//! the chain, log in, and trade with each other over the WebSocket with signed orders; the
//! trade settles on-chain. Every step is printed as it happens.
//!
//! ```sh
//! make run                        # terminal 1: hob serve with a local anvil
//! cargo run --example trader      # terminal 2
//! cargo run --example trader -- --api http://127.0.0.1:8080 --account 6 --price 101.5 --qty 0.02
//! cargo run --example trader -- --key 0x<seller's key> --key 0x<buyer's key>
//! ```
//!
//! The seller is anvil's dev account `--account` (default 4; hob itself uses 0 to 3) and the
//! buyer the next one; `--key` replaces them in that order. Steps: read where trades settle
//! (`GET /api/v1/chain`); per wallet, log in (a signed challenge), open the WebSocket, log in
//! there and subscribe to the private `orders`, `fills` and `balances` channels (cancelling
//! any order an earlier run left open); mint the test token on-chain, approve and deposit it
//! into the exchange, and wait for hob's chain watcher to credit it; the seller rests a
//! signed GTC sell, the buyer crosses it with a signed IOC buy; both wait for their fill and
//! for the settlement confirmation (what each received leaves `settling`); finally the
//! settlement transaction is found on-chain (`BatchSettled`, and the contract's `orderFill`
//! for each order). Exit 0 once the trade settled; 1 with the reason on any failure or after
//! `--timeout-secs`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use futures_util::future::try_join;
use rust_decimal::Decimal;

use hob::api::wire::{BalanceInfo, OrderInfo, WireOrderStatus, WireSide, WireTif};
use hob::client::dev_accounts::{self, FIRST_TRADER_ACCOUNT};
use hob::client::orders::{signed_place, LimitOrder};
use hob::client::{Deployment, MarketTerms, Push, Rest, ServerMessage, TradingSocket};

#[derive(Parser, Debug)]
#[command(about = "Deposit on a local chain, trade two wallets against each other on hob, watch it settle")]
struct Args {
    /// hob's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// anvil dev account of the seller; the buyer is the next one.
    #[arg(long, default_value_t = FIRST_TRADER_ACCOUNT)]
    account: usize,
    /// A private key (hex) to trade with instead of a dev account: the first given sells, the
    /// second buys. The wallet needs ETH for gas.
    #[arg(long = "key")]
    keys: Vec<String>,
    #[arg(long, default_value = "BTC-USDT")]
    market: String,
    /// The trade's price, on the market's grid.
    #[arg(long, default_value = "100")]
    price: String,
    /// The trade's size in the base asset, on the market's grid.
    #[arg(long, default_value = "0.01")]
    qty: String,
    /// Give up (exit 1) after this long.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let clock = Clock { started: Instant::now(), deadline: Instant::now() + Duration::from_secs(args.timeout_secs) };
    // Waits on the sockets stop at the deadline with what they waited for; this bounds the
    // rest (REST calls, transactions), a little later so those messages come first.
    let bound = Duration::from_secs(args.timeout_secs) + Duration::from_secs(5);
    match tokio::time::timeout(bound, run(&args, &clock)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("trader: FAILED: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("trader: FAILED: timed out: not settled within --timeout-secs {}", args.timeout_secs);
            ExitCode::FAILURE
        }
    }
}

/// The run's start (for the printed times) and its deadline.
struct Clock {
    started: Instant,
    deadline: Instant,
}

impl Clock {
    fn stamp(&self) -> String {
        format!("{:>6.2}s", self.started.elapsed().as_secs_f64())
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

async fn run(args: &Args, clock: &Clock) -> anyhow::Result<()> {
    let rest = Rest::new(&args.api);
    let info = rest.chain().await.with_context(|| format!("reading {}/api/v1/chain (is hob running?)", args.api))?;
    let chain = Deployment::from_info(&info)?;
    println!(
        "{} hob at {}: trades settle on chain {} ({}, {}), exchange {}",
        clock.stamp(),
        rest.base(),
        chain.chain_id,
        info.mode,
        chain.rpc_url,
        chain.exchange
    );
    let terms = rest.market_terms(&args.market).await?;
    let price = Decimal::from_str(&args.price).with_context(|| format!("--price {}", args.price))?;
    let qty = Decimal::from_str(&args.qty).with_context(|| format!("--qty {}", args.qty))?;
    let (price_ticks, qty_lots) = (terms.ticks(price)?, terms.lots(qty)?);

    let (seller_key, buyer_key) = keys(args)?;
    let mut seller = Trader::connect("seller", seller_key, &rest, &terms, clock).await?;
    let mut buyer = Trader::connect("buyer", buyer_key, &rest, &terms, clock).await?;

    // Funds: the seller brings the base asset, the buyer twice the quote it will pay (fees
    // are a few basis points on top).
    let notional = price * qty;
    let seller_funds = (terms.base.clone(), qty, chain.base_units(&terms.base, qty).await?);
    let buyer_funds =
        (terms.quote.clone(), notional * Decimal::TWO, chain.base_units(&terms.quote, notional * Decimal::TWO).await?);
    try_join(seller.fund(&chain, seller_funds), buyer.fund(&chain, buyer_funds)).await?;

    // The trade: a resting sell, then a buy crossing it.
    let from_block = chain.latest_block().await?;
    let nonce = fresh_nonce()?;
    let sell =
        LimitOrder { side: WireSide::Sell, price_ticks, qty_lots, tif: WireTif::Gtc, nonce, client_order_id: None };
    let sell_id = seller.place(&sell).await?;
    seller
        .pump("the sell to rest on the book", |t| {
            t.order_is(&sell_id, &[WireOrderStatus::Working, WireOrderStatus::Filled])
        })
        .await?;
    let buy =
        LimitOrder { side: WireSide::Buy, price_ticks, qty_lots, tif: WireTif::Ioc, nonce, client_order_id: None };
    let buy_id = buyer.place(&buy).await?;

    // Both fills, then both settlement confirmations, reading both sockets all along.
    try_join(seller.await_settled(&sell_id, &terms.quote), buyer.await_settled(&buy_id, &terms.base)).await?;

    // The settlement transaction, as the chain holds it.
    for (trader, order) in [(&seller, &sell), (&buyer, &buy)] {
        let settlement =
            chain.settlement_of(trader.key.address(), order.nonce, from_block).await?.ok_or_else(|| {
                anyhow!("{}: no BatchSettled since block {from_block} settled nonce {}", trader.name(), order.nonce)
            })?;
        let extent = if settlement.done { "in full".to_owned() } else { format!("{} lots", settlement.filled_lots) };
        trader.say(&format!(
            "settled on-chain: batch #{} in tx {} (block {}); the contract counts order nonce {} filled {extent}",
            settlement.batch_index, settlement.tx, settlement.block, order.nonce
        ));
    }
    for (trader, asset) in [(&seller, &terms.quote), (&buyer, &terms.base)] {
        let units = chain.vault_balance(trader.key.address(), asset).await?;
        trader.say(&format!("vault balance on-chain: {} {asset}", chain.amount(asset, units).await?));
    }
    println!("{} done: {} {} traded at {} and settled on-chain", clock.stamp(), args.qty, terms.base, args.price);
    seller.socket.close().await;
    buyer.socket.close().await;
    Ok(())
}

/// The seller's and the buyer's keys: `--key`s first, then dev accounts from `--account`.
fn keys(args: &Args) -> anyhow::Result<(PrivateKeySigner, PrivateKeySigner)> {
    if args.keys.len() > 2 {
        bail!("at most two --key: the seller's, then the buyer's");
    }
    let mut keys = args.keys.iter().map(|k| dev_accounts::parse_key(k)).collect::<Result<Vec<_>, _>>()?;
    let mut account = args.account;
    while keys.len() < 2 {
        keys.push(dev_accounts::dev_account(account)?);
        account += 1;
    }
    let buyer = keys.pop().context("two keys")?;
    let seller = keys.pop().context("two keys")?;
    if seller.address() == buyer.address() {
        bail!("the seller and the buyer must be two wallets");
    }
    Ok((seller, buyer))
}

/// A nonce no earlier run used: the time in milliseconds (each run places one order per
/// wallet, and nonces only need to be unused and recent, see README "Signing").
fn fresh_nonce() -> anyhow::Result<u64> {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_millis();
    u64::try_from(millis).context("the clock is past the year 500 million")
}

/// One wallet: its session, its socket, and what its private channels said.
struct Trader<'a> {
    role: &'static str,
    key: PrivateKeySigner,
    socket: TradingSocket,
    terms: &'a MarketTerms,
    clock: &'a Clock,
    balances: BTreeMap<String, BalanceInfo>,
    /// The user stream's version the balances reflect.
    balances_version: u64,
    orders: BTreeMap<String, OrderInfo>,
    /// Filled quantity per order id, and the stream version of its latest fill.
    fills: BTreeMap<String, (Decimal, u64)>,
    snapshots: usize,
}

impl<'a> Trader<'a> {
    async fn connect(
        role: &'static str,
        key: PrivateKeySigner,
        rest: &Rest,
        terms: &'a MarketTerms,
        clock: &'a Clock,
    ) -> anyhow::Result<Trader<'a>> {
        let token = rest.login(&key).await.with_context(|| format!("{role}: logging in"))?;
        let mut socket = TradingSocket::connect(&rest.ws_url()).await?;
        socket.login(&token).await?;
        for channel in ["orders", "fills", "balances"] {
            socket.subscribe(channel, None).await?;
        }
        let mut trader = Trader {
            role,
            key,
            socket,
            terms,
            clock,
            balances: BTreeMap::new(),
            balances_version: 0,
            orders: BTreeMap::new(),
            fills: BTreeMap::new(),
            snapshots: 0,
        };
        trader.say("logged in; subscribed to orders, fills, balances");
        trader.pump("the private snapshots", |t| t.snapshots >= 3).await?;
        let left_open = trader.orders.values().any(|o| o.market == terms.market);
        if left_open {
            let cancelled = trader.socket.cancel_all(Some(&terms.market)).await?;
            trader.say(&format!("cancelled {} order(s) an earlier run left open", cancelled.cancel_requested.len()));
        }
        Ok(trader)
    }

    fn name(&self) -> String {
        format!("{} {}", self.role, self.key.address())
    }

    fn say(&self, line: &str) {
        println!("{} [{:<6} {}] {line}", self.clock.stamp(), self.role, short(&self.key.address().to_checksum(None)));
    }

    fn available(&self, asset: &str) -> Decimal {
        self.amount(asset, |b| &b.available)
    }

    fn settling(&self, asset: &str) -> Decimal {
        self.amount(asset, |b| &b.settling)
    }

    fn amount(&self, asset: &str, field: impl Fn(&BalanceInfo) -> &String) -> Decimal {
        self.balances.get(asset).and_then(|b| Decimal::from_str(field(b)).ok()).unwrap_or_default()
    }

    fn order_is(&self, order_id: &str, statuses: &[WireOrderStatus]) -> bool {
        self.orders.get(order_id).is_some_and(|o| statuses.contains(&o.status))
    }

    /// Mints, approves and deposits on-chain, then waits for hob to credit the deposit.
    async fn fund(
        &mut self,
        chain: &Deployment,
        (asset, amount, units): (String, Decimal, u128),
    ) -> anyhow::Result<()> {
        let before = self.available(&asset);
        let deposit = chain
            .deposit_test_tokens(&self.key, &asset, units)
            .await
            .with_context(|| format!("{}: depositing {amount} {asset}", self.name()))?;
        self.say(&format!(
            "deposited {amount} {asset} into the exchange on-chain: tx {} (block {})",
            deposit.tx, deposit.block
        ));
        let credited = before + amount;
        self.pump(&format!("hob to credit the deposit of {amount} {asset}"), |t| t.available(&asset) >= credited)
            .await?;
        self.say(&format!("deposit credited by hob: {asset} available {}", self.available(&asset)));
        Ok(())
    }

    async fn place(&mut self, order: &LimitOrder) -> anyhow::Result<String> {
        let request = signed_place(self.terms, &self.key, order)?;
        let side = if order.side == WireSide::Buy { "buy" } else { "sell" };
        let tif = if order.tif == WireTif::Ioc { "IOC" } else { "GTC" };
        let (qty, price) = (request.qty.clone(), request.price.clone().unwrap_or_default());
        let answer =
            self.socket.place(&request).await.with_context(|| format!("{}: placing the {side}", self.name()))?;
        self.say(&format!(
            "placed {side} {qty} {} @ {price} {tif} (EIP-712 signed, nonce {}): {} as order {}",
            self.terms.market, order.nonce, answer.status, answer.order_id
        ));
        Ok(answer.order_id)
    }

    /// Waits for the order's fill, then for its settlement: what the trade brought in
    /// (`received`) leaves `settling` in a balances push at least as new as the fill.
    async fn await_settled(&mut self, order_id: &str, received: &str) -> anyhow::Result<()> {
        let baseline = self.settling(received);
        // The orders and fills channels arrive in no particular order: wait for both.
        self.pump("the fill", |t| t.order_is(order_id, &[WireOrderStatus::Filled]) && t.fills.contains_key(order_id))
            .await?;
        let filled_at = self.fills.get(order_id).map(|f| f.1);
        let Some(filled_at) = filled_at else { bail!("{}: order {order_id} filled with no fill pushed", self.name()) };
        self.pump("the settlement confirmation", |t| {
            t.balances_version >= filled_at && t.settling(received) <= baseline
        })
        .await?;
        self.say(&format!(
            "settlement confirmed: {received} left settling and is available ({received} available {})",
            self.available(received)
        ));
        Ok(())
    }

    /// Reads and prints the socket until `done` holds; an error if the deadline passes first.
    async fn pump(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        while !done(self) {
            let left = self.clock.left();
            let message = match tokio::time::timeout(left, self.socket.next()).await {
                Ok(message) => message.with_context(|| format!("{}: waiting for {what}", self.name()))?,
                Err(_) => bail!("{}: timed out waiting for {what}", self.name()),
            };
            self.absorb(message);
        }
        Ok(())
    }

    fn absorb(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Snapshot(push) => {
                self.snapshots += 1;
                self.take(push, true);
            }
            ServerMessage::Update(push) => self.take(push, false),
            ServerMessage::Error { code, message, .. } => self.say(&format!("error from hob: {code}: {message}")),
            _ => {}
        }
    }

    fn take(&mut self, push: Push, snapshot: bool) {
        match push {
            Push::Balances { version, balances } => {
                let line = balances
                    .iter()
                    .filter(|b| snapshot || self.balances.get(&b.asset) != Some(b))
                    .map(|b| {
                        format!("{} {} available / {} locked / {} settling", b.asset, b.available, b.locked, b.settling)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if !line.is_empty() {
                    self.say(&format!("balances (v{version}): {line}"));
                }
                self.balances = balances.into_iter().map(|b| (b.asset.clone(), b)).collect();
                self.balances_version = version;
            }
            Push::Orders { orders, .. } => {
                for order in orders {
                    if !snapshot {
                        let reason = order.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                        self.say(&format!(
                            "order {} {} {} @ {}: {}{reason}, filled {} of {}",
                            order.order_id,
                            wire_name(&order.side),
                            order.market,
                            order.price.as_deref().unwrap_or("market"),
                            wire_name(&order.status),
                            order.filled,
                            order.qty
                        ));
                    }
                    self.orders.insert(order.order_id.clone(), order);
                }
            }
            Push::Fills { version, fills } => {
                for fill in fills {
                    if !snapshot {
                        let verb = if fill.side == WireSide::Buy { "bought" } else { "sold" };
                        self.say(&format!(
                            "FILL trade {}: {verb} {} @ {} as {} ({} {} before a fee of {}), order {}",
                            fill.trade_id,
                            fill.qty,
                            fill.price,
                            wire_name(&fill.liquidity),
                            fill.quote_amount,
                            self.terms.quote,
                            fill.fee,
                            fill.order_id
                        ));
                    }
                    let qty = Decimal::from_str(&fill.qty).unwrap_or_default();
                    let entry = self.fills.entry(fill.order_id).or_insert((Decimal::ZERO, version));
                    *entry = (entry.0 + qty, version);
                }
            }
            Push::Other => {}
        }
    }
}

/// A wire enum as the protocol spells it (`sell`, `working`, `maker`).
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// `0x15d3…6A65`
fn short(address: &str) -> String {
    match (address.get(..6), address.get(address.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) => format!("{head}…{tail}"),
        _ => address.to_owned(),
    }
}
