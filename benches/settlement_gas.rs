//! Gas per settled trade against batch size, measured on a real anvil (`make tools`).
//!
//! `cargo bench --bench settlement_gas`. The workload is a steady market: 20 traders with
//! funded vault balances in both tokens, each signing orders with its own increasing nonces;
//! a resting maker order is hit by 1 to 4 takers (70% of makers are filled completely, the
//! rest stay partly filled), each taker order filled by its one trade. Batch sizes 1, 10 and
//! 100 settle several batches each (after a warm-up batch, so balances already exist, as they
//! do in a running exchange) and report the mean; then the largest batch whose gas estimate
//! stays within 16,777,216 (the BSC per-transaction cap, and EIP-7825's) is found by
//! bisection and settled, and again with the transaction also within the 128 KiB that geth's
//! and BSC's transaction pools accept. Gas is the receipt's `gasUsed`, so it includes the 21,000 base cost
//! and calldata.

use std::time::Instant;

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use alloy::transports::http::reqwest::Url;

use hob::chain::batch::{encode_batch, EncodedBatch, TradeToSettle};
use hob::chain::contract::{HobExchange, TestToken};
use hob::chain::eip712::{self, Order, SignedOrder};
use hob::chain::order::{ORDER_TYPE_LIMIT, SIDE_BUY, SIDE_SELL, TIF_GTC, TIF_IOC};
use hob::chain::tools;
use hob::domain::{Bps, PriceTicks, QtyLots};

const TRADERS: usize = 20;
const MARKET: u32 = 1;
const BASE_LOT: u128 = 1_000_000_000_000_000;
const QUOTE_TICK: u128 = 10_000;
const GAS_CAP: u64 = 16_777_216;
/// geth's (and BSC's) transaction pool refuses transactions above 128 KiB.
const TX_SIZE_LIMIT: usize = 128 * 1024;
const BATCHES_PER_SIZE: usize = 5;

type Error = Box<dyn std::error::Error>;

/// A deterministic order flow (xorshift64*), so runs compare.
struct Workload {
    traders: Vec<PrivateKeySigner>,
    next_nonce: Vec<u64>,
    rng: u64,
    domain: Eip712Domain,
}

impl Workload {
    fn rand(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % below
    }

    fn order(&mut self, trader: usize, side: u8, price: u64, quantity: u64, tif: u8) -> Result<SignedOrder, Error> {
        let nonce = self.next_nonce[trader];
        self.next_nonce[trader] += 1;
        let order = Order {
            trader: self.traders[trader].address(),
            market: MARKET,
            side,
            orderType: ORDER_TYPE_LIMIT,
            timeInForce: tif,
            postOnly: false,
            price,
            quantity,
            maxFeeBps: 10,
            nonce,
            expiry: 0,
        };
        Ok(SignedOrder::sign(&self.traders[trader], order, &self.domain)?)
    }

    fn trades(&mut self, count: usize) -> Result<Vec<TradeToSettle>, Error> {
        let mut trades = Vec::with_capacity(count);
        while trades.len() < count {
            let hits = (1 + self.rand(4) as usize).min(count - trades.len());
            let fills: Vec<u64> = (0..hits).map(|_| 1 + self.rand(3)).collect();
            let filled: u64 = fills.iter().sum();
            let quantity = if self.rand(10) < 7 { filled } else { filled + 1 + self.rand(5) };
            let maker_trader = self.rand(TRADERS as u64) as usize;
            let maker_side = if self.rand(2) == 0 { SIDE_BUY } else { SIDE_SELL };
            let price = 10_000 + self.rand(100);
            let maker = self.order(maker_trader, maker_side, price, quantity, TIF_GTC)?;
            for qty in fills {
                let taker_trader = (maker_trader + 1 + self.rand(TRADERS as u64 - 1) as usize) % TRADERS;
                let (taker_side, limit) =
                    if maker_side == SIDE_BUY { (SIDE_SELL, price - 5) } else { (SIDE_BUY, price + 5) };
                let taker = self.order(taker_trader, taker_side, limit, qty, TIF_IOC)?;
                trades.push(TradeToSettle {
                    maker: maker.clone(),
                    taker,
                    price: PriceTicks(price),
                    qty: QtyLots(qty),
                    maker_fee: Bps(2),
                    taker_fee: Bps(5),
                });
            }
        }
        Ok(trades)
    }
}

fn provider(key: &PrivateKeySigner, url: Url) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url)
        .erased()
}

struct Venue {
    exchange: HobExchange::HobExchangeInstance<DynProvider>,
    next_batch: u64,
}

impl Venue {
    /// Settles `batch` and returns its gas used. The limit is the cap, not the estimate: the
    /// figure measured is what the batch uses, and a tight limit would only add a failure mode.
    async fn settle(&mut self, batch: &EncodedBatch) -> Result<u64, Error> {
        let estimate = self.estimate(batch).await?;
        let call = self.exchange.settleBatch(self.next_batch, batch.data.clone()).gas(GAS_CAP);
        let receipt = call.send().await?.get_receipt().await?;
        if !receipt.status() {
            return Err(format!("batch {} reverted after {} gas", self.next_batch, receipt.gas_used).into());
        }
        if receipt.gas_used > estimate {
            eprintln!(
                "warning: batch {} used {} gas, above its estimate {estimate}",
                self.next_batch, receipt.gas_used
            );
        }
        self.next_batch += 1;
        Ok(receipt.gas_used)
    }

    async fn estimate(&self, batch: &EncodedBatch) -> Result<u64, Error> {
        Ok(self.exchange.settleBatch(self.next_batch, batch.data.clone()).estimate_gas().await?)
    }
}

async fn set_up(url: Url, chain_id: u64) -> Result<(Venue, Workload), Error> {
    let key = |name: &str| PrivateKeySigner::from_bytes(&keccak256(name.as_bytes()));
    let admin = key("bench/admin")?;
    let admin_provider = provider(&admin, url.clone());
    let fund = U256::from(10u128.pow(24));
    admin_provider.anvil_set_balance(admin.address(), fund).await?;
    let base = *TestToken::deploy(admin_provider.clone(), "Base".into(), "BASE".into(), 18).await?.address();
    let quote = *TestToken::deploy(admin_provider.clone(), "Quote".into(), "QUOTE".into(), 6).await?.address();
    let fee_collector = Address::repeat_byte(0xFE);
    let exchange = HobExchange::deploy(admin_provider.clone(), fee_collector, 86_400).await?;
    exchange.setOperator(admin.address(), true).send().await?.get_receipt().await?;
    exchange.registerMarket(MARKET, base, quote, BASE_LOT, QUOTE_TICK).send().await?.get_receipt().await?;

    let mut traders = Vec::with_capacity(TRADERS);
    for i in 0..TRADERS {
        let trader = key(&format!("bench/trader/{i}"))?;
        let p = provider(&trader, url.clone());
        admin_provider.anvil_set_balance(trader.address(), fund).await?;
        for token in [base, quote] {
            let amount = U256::from(10u128.pow(30));
            let t = TestToken::new(token, p.clone());
            t.mint(trader.address(), amount).send().await?.get_receipt().await?;
            t.approve(*exchange.address(), amount).send().await?.get_receipt().await?;
            HobExchange::new(*exchange.address(), p.clone()).deposit(token, amount).send().await?.get_receipt().await?;
        }
        traders.push(trader);
    }
    let domain = eip712::domain(chain_id, *exchange.address());
    let workload = Workload { traders, next_nonce: vec![0; TRADERS], rng: 0x9E37_79B9_7F4A_7C15, domain };
    Ok((Venue { exchange, next_batch: 0 }, workload))
}

/// The transaction's calldata: selector, batch index, offset and length words, then the
/// packed batch padded to a word.
fn tx_data_bytes(batch: &EncodedBatch) -> usize {
    4 + 3 * 32 + batch.data.len().div_ceil(32) * 32
}

/// The most trades from the start of `flow` whose batch stays within the gas cap and whose
/// transaction data stays under `size_limit` (less room for the envelope and signature).
async fn largest(venue: &Venue, flow: &[TradeToSettle], size_limit: usize) -> Result<usize, Error> {
    const ENVELOPE_BYTES: usize = 200;
    let (mut fits, mut too_big) = (1usize, flow.len());
    while too_big - fits > 1 {
        let mid = (fits + too_big) / 2;
        let batch = encode_batch(&flow[..mid])?;
        let small_enough = tx_data_bytes(&batch) + ENVELOPE_BYTES <= size_limit;
        // Past the node's own limits an estimate fails outright: that is "too big" too.
        let cheap_enough = small_enough && matches!(venue.estimate(&batch).await, Ok(gas) if gas <= GAS_CAP);
        if cheap_enough {
            fits = mid;
        } else {
            too_big = mid;
        }
    }
    Ok(fits)
}

fn row(size: usize, batch: &EncodedBatch, gas: u64) {
    println!(
        "| {size} | {} | {} | {} | {gas} | {} |",
        batch.orders.len(),
        batch.accounts.len(),
        batch.data.len(),
        gas / size as u64
    );
}

async fn measure() -> Result<(), Error> {
    // Prague: the hardfork BSC and Ethereum mainnet both run today (cancun opcodes + EIP-7623
    // calldata pricing); pinned so anvil upgrades do not move the figures.
    let anvil = tools::anvil()?.args(["--hardfork", "prague"]).try_spawn()?;
    let started = Instant::now();
    let (mut venue, mut workload) = set_up(anvil.endpoint_url(), anvil.chain_id()).await?;

    // Warm-up: every trader's balances and fee collector's exist afterwards.
    let warm_up = encode_batch(&workload.trades(100)?)?;
    venue.settle(&warm_up).await?;

    println!("\n## Settlement gas per trade (anvil, {TRADERS} traders, mean of {BATCHES_PER_SIZE} batches)\n");
    println!("| trades/batch | orders | traders | calldata bytes | gas used | gas/trade |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut maxima = Vec::new();
    for size in [1usize, 10, 100] {
        let mut total_gas = 0;
        let mut last = None;
        for _ in 0..BATCHES_PER_SIZE {
            let batch = encode_batch(&workload.trades(size)?)?;
            total_gas += venue.settle(&batch).await?;
            last = Some(batch);
        }
        if let Some(batch) = last {
            row(size, &batch, total_gas / BATCHES_PER_SIZE as u64);
        }
    }

    // The largest batches: within the gas cap alone, and within the cap and the txpool's size
    // limit together (the one a real chain accepts). Bisection on prefixes of one long flow.
    let limits = [("the gas cap only", usize::MAX), ("the gas cap and the 128 KiB size limit", TX_SIZE_LIMIT)];
    for (what, size_limit) in limits {
        // A fresh flow each time: a settled order cannot settle again.
        let flow = workload.trades(2_000)?;
        if venue.estimate(&encode_batch(&flow)?).await.map(|gas| gas <= GAS_CAP).unwrap_or(false) {
            return Err("2,000 trades fit under the cap: raise the search bound".into());
        }
        let size = largest(&venue, &flow, size_limit).await?;
        let batch = encode_batch(&flow[..size])?;
        let gas = venue.settle(&batch).await?;
        row(size, &batch, gas);
        maxima.push(format!("within {what}: {size} trades, {} bytes of transaction data", tx_data_bytes(&batch)));
    }
    println!();
    for line in maxima {
        println!("Largest batch {line}.");
    }
    println!("(run took {:.1} s)\n", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> Result<(), Error> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(()); // `cargo test --benches`: this needs a node and minutes, not a smoke test
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(measure())
}
