//! The simulated chain of a run: the real settlement operator and chain watcher on
//! `settlement::SimChain` (a deterministic node with the exchange's vault), the traders' keys
//! (orders and withdrawals are signed, deposits are made on the chain and credited by the
//! watcher), and the chain's faults drawn from the run's `Rng`: mining delayed for a while
//! (receipts time out, fees are bumped, nonces get stuck), transactions dropped from the
//! mempool (a later nonce waits behind the gap), reorgs below the confirmation depth (a mined
//! batch is un-mined and must be mined again), an unreachable node, reverting batches (the
//! exchange paused), signatures refused and nonces invalidated (trades voided), another
//! operator taking a batch index, gas price spikes, and the operator crashing on its own.
//!
//! Everything here runs on the run's paused clock and single thread, so a seed replays
//! exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alloy::primitives::{keccak256, Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;

use super::rng::Rng;
use super::runner::SimEngine;
use super::store::CrashingStore;
use crate::actors::chain_watcher::{ChainWatcherHandle, WatcherConfig};
use crate::actors::settlement::SettlementHandle;
use crate::chain::eip712::{domain, SignedOrder, Withdrawal};
use crate::chain::order::{to_signed_order, SigningTerms};
use crate::domain::{AssetId, MarketId, MarketSpec, NewOrder, OrderAuth, OrderId, UserId, WithdrawalAuth};
use crate::engine::PlaceOrder;
use crate::queue::operator_group;
use crate::settlement::conformance::ChainControl;
use crate::settlement::policy::{Backoff, BatchPolicy};
use crate::settlement::sim::Grid;
use crate::settlement::withdrawals::{encode_withdrawal_auth, SignedWithdrawal};
use crate::settlement::{encode_order_auth, Chain, OperatorKey, SettlementConfig, SimChain};

const CHAIN_ID: u64 = 31_337;
/// The contract's id of the simulated market.
const CHAIN_MARKET: u32 = 1;
/// Blocks deep (its own included) before a settlement or a deposit is final. Reorgs are at
/// most one block shallower: finality is the depth no reorg reaches, by assumption.
const CONFIRMATIONS: u64 = 3;
const MAX_REORG: u64 = CONFIRMATIONS - 1;
const BASE_GAS_PRICE: u128 = 1_000_000_000;
/// What each trader deposits of each asset before the first step: some fifty orders' worth.
const INITIAL_DEPOSIT: u128 = 1_000_000;

/// How often a run settles on the simulated chain, and how rough the chain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// Percent of seeds that run the settlement operator and the chain watcher on the
    /// simulated chain (the rest run the engine alone, as before).
    pub percent: u64,
    /// Percent of steps (of those seeds) that start a chain fault.
    pub fault_percent: u64,
}

impl Default for ChainConfig {
    fn default() -> ChainConfig {
        ChainConfig { percent: 10, fault_percent: 30 }
    }
}

/// A key derived from `name`. Keys are the same in every run (a seed changes what they do,
/// not who they are), so they are derived once per process: deriving is the slow part.
fn key(name: &str) -> PrivateKeySigner {
    static KEYS: OnceLock<Mutex<BTreeMap<String, PrivateKeySigner>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(BTreeMap::new()));
    // A poisoned lock only means a panic while inserting a whole key.
    let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
    keys.entry(name.to_owned())
        .or_insert_with(|| {
            let mut seed = keccak256(name.as_bytes());
            // A hash is a valid secp256k1 key but for a negligible set; step past one.
            loop {
                if let Ok(k) = PrivateKeySigner::from_bytes(&seed) {
                    return k;
                }
                seed = keccak256(seed);
            }
        })
        .clone()
}

/// Trader `n`'s key.
pub(super) fn trader_key(n: u8) -> PrivateKeySigner {
    key(&format!("hob-sim/trader/{n}"))
}

fn operator_key() -> OperatorKey {
    OperatorKey::from_signer(key("hob-sim/operator"))
}

/// The settlement queue's group: the operator wallet's.
pub(super) fn settlement_group() -> String {
    operator_group(UserId(operator_key().address().0 .0))
}

fn address(user: UserId) -> Address {
    Address::from(user.0)
}

/// Faults in force, each until a step.
#[derive(Clone, Debug, Default)]
struct Faults {
    stalled_until: Option<u32>,
    paused_until: Option<u32>,
    refused: Option<(Address, u32)>,
    spiked_until: Option<u32>,
}

/// The chain's side of a run: it outlives every crash of the node.
pub(super) struct ChainWorld {
    pub chain: Arc<SimChain>,
    market: MarketId,
    operator: OperatorKey,
    exchange: Address,
    domain: Eip712Domain,
    pub tokens: BTreeMap<AssetId, Address>,
    fee_collector: Address,
    /// Next withdrawal nonce per trader.
    withdrawal_nonces: Vec<u64>,
    faults: Faults,
    /// Faults started, for the report.
    pub fault_count: u64,
}

/// The chain's actors of one process: dropped with it.
pub(super) struct ChainNode {
    settlement: SettlementHandle<CrashingStore, SimChain>,
    watcher: ChainWatcherHandle<CrashingStore, SimChain>,
}

impl ChainWorld {
    pub(super) fn new(spec: &MarketSpec, traders: u8) -> ChainWorld {
        let operator = operator_key();
        let exchange = Address::repeat_byte(0xEE);
        let chain = Arc::new(SimChain::new(CHAIN_ID, exchange, [operator.address()]));
        let (base, quote) = (Address::repeat_byte(0xB0), Address::repeat_byte(0xC0));
        let fee_collector = Address::repeat_byte(0xFE);
        chain.register_market(
            CHAIN_MARKET,
            Grid { base, quote, base_lot: spec.base_lot.0, quote_tick: spec.quote_tick.0 },
        );
        chain.set_fee_collector(fee_collector);
        ChainWorld {
            chain,
            market: spec.id,
            operator,
            exchange,
            domain: domain(CHAIN_ID, exchange),
            tokens: BTreeMap::from([(spec.base, base), (spec.quote, quote)]),
            fee_collector,
            withdrawal_nonces: vec![0; usize::from(traders)],
            faults: Faults::default(),
            fault_count: 0,
        }
    }

    /// The chain before the first step: every trader has deposited some of each asset, deep
    /// enough for the watcher to credit at its first poll; from now on mining is the run's
    /// doing (never automatic).
    pub(super) async fn prepare(&self, traders: &[UserId]) {
        self.chain.set_automine(false).await;
        for user in traders {
            for token in self.tokens.values() {
                self.chain.deposit(address(*user), *token, INITIAL_DEPOSIT);
            }
        }
        self.chain.mine(CONFIRMATIONS).await;
    }

    fn settlement_config(&self) -> SettlementConfig {
        let mut config = SettlementConfig::new(self.operator.clone(), self.exchange, CHAIN_ID);
        // Short times, so a run's few simulated seconds see timeouts, bumps and roll-forwards.
        config.batch = BatchPolicy { window_ms: 30, max_trades: 16, ..BatchPolicy::default() };
        config.poll_interval = Duration::from_millis(20);
        config.receipt_timeout = Duration::from_millis(250);
        config.confirmations = CONFIRMATIONS;
        config.backoff = Backoff { base_ms: 20, max_ms: 200 };
        config
    }

    fn watcher_config(&self) -> WatcherConfig {
        let tokens = self.tokens.iter().map(|(asset, token)| (*token, *asset)).collect();
        let mut config = WatcherConfig::new(CHAIN_ID, self.exchange, tokens);
        config.confirmations = CONFIRMATIONS;
        config.poll_interval = Duration::from_millis(20);
        config.cursor_every_blocks = 8;
        config
    }

    /// Starts the operator and the watcher on a freshly booted node.
    pub(super) async fn start(&self, engine: &SimEngine) -> Result<ChainNode, String> {
        let settlement = engine
            .start_settlement(self.settlement_config(), self.chain.clone())
            .await
            .map_err(|e| format!("settlement does not start: {e}"))?;
        let watcher = engine
            .start_chain_watcher(self.watcher_config(), self.chain.clone())
            .await
            .map_err(|e| format!("the chain watcher does not start: {e}"))?;
        Ok(ChainNode { settlement, watcher })
    }

    /// Signs `order` as trader `n` (its nonce is the order's).
    pub(super) fn sign(&self, n: u8, user: UserId, spec: &MarketSpec, order: &PlaceOrder) -> Option<OrderAuth> {
        let new = NewOrder {
            id: OrderId(0),
            user,
            side: order.side,
            order_type: order.order_type,
            qty: order.qty,
            tif: order.tif,
            post_only: order.post_only,
            stp: order.stp,
        };
        let terms =
            SigningTerms { market: CHAIN_MARKET, max_fee: spec.max_fee_rate(order.post_only), nonce: order.nonce };
        let signed = SignedOrder::sign(&trader_key(n), to_signed_order(&new, terms).ok()?, &self.domain).ok()?;
        Some(encode_order_auth(&signed))
    }

    /// Trader `n` signs a withdrawal of `amount` at its next withdrawal nonce.
    pub(super) fn withdrawal(
        &mut self,
        n: u8,
        user: UserId,
        asset: AssetId,
        amount: u128,
    ) -> Option<(u64, WithdrawalAuth)> {
        let token = *self.tokens.get(&asset)?;
        let nonce = self.withdrawal_nonces.get_mut(usize::from(n))?;
        *nonce += 1;
        let withdrawal =
            Withdrawal { user: address(user), token, amount: U256::from(amount), nonce: *nonce, expiry: 0 };
        let signed = SignedWithdrawal::sign(&trader_key(n), withdrawal, &self.domain).ok()?;
        Some((*nonce, encode_withdrawal_auth(&signed)))
    }

    /// A deposit on the chain: mined with the next block, credited by the watcher once deep.
    pub(super) fn deposit(&self, user: UserId, asset: AssetId, amount: u128) {
        if let Some(token) = self.tokens.get(&asset) {
            self.chain.deposit(address(user), *token, amount);
        }
    }

    /// The chain's part of a step: faults that ran out end, a new one may start, and a block
    /// is mined unless mining is stalled.
    pub(super) async fn step(
        &mut self,
        step: u32,
        rng: &mut Rng,
        fault_percent: u64,
        traders: &[(UserId, u64)],
        node: &mut ChainNode,
        engine: &SimEngine,
    ) -> Result<(), String> {
        self.end_faults(Some(step), engine).await;
        if rng.chance(fault_percent) {
            self.fault_count += 1;
            self.start_fault(step, rng, traders, node, engine).await?;
        }
        if self.faults.stalled_until.is_none() && rng.chance(70) {
            self.chain.mine(1).await;
        }
        Ok(())
    }

    /// Ends the faults due at `step` (all of them with `None`).
    async fn end_faults(&mut self, step: Option<u32>, engine: &SimEngine) {
        let due = |until: Option<u32>| until.is_some_and(|u| step.is_none_or(|s| s >= u));
        if due(self.faults.stalled_until) {
            self.faults.stalled_until = None;
        }
        if due(self.faults.paused_until) {
            self.faults.paused_until = None;
            self.chain.set_paused(false);
        }
        if due(self.faults.spiked_until) {
            self.faults.spiked_until = None;
            self.chain.set_gas_price(BASE_GAS_PRICE);
        }
        if let Some((trader, until)) = self.faults.refused {
            if due(Some(until)) {
                self.faults.refused = None;
                self.chain.accept_signatures_of(trader);
                // The operator halted the market over the refused signatures; once the cause
                // is gone an operator resumes it, as the runbook says.
                let _ = engine.set_halted(self.market, false).await;
            }
        }
    }

    async fn start_fault(
        &mut self,
        step: u32,
        rng: &mut Rng,
        traders: &[(UserId, u64)],
        node: &mut ChainNode,
        engine: &SimEngine,
    ) -> Result<(), String> {
        let for_steps = |rng: &mut Rng, most: u64| step + rng.between(1, most) as u32;
        match rng.below(100) {
            // Mining stalls: receipts time out, fees are bumped, nonces get stuck.
            0..=19 => self.faults.stalled_until = Some(for_steps(rng, 12)),
            // A pooled transaction is dropped: sent again, and later nonces wait behind it.
            20..=34 => {
                let pooled = self.chain.pooled_hashes();
                if !pooled.is_empty() {
                    let hash = pooled[rng.below(pooled.len() as u64) as usize];
                    self.chain.drop_tx(hash).await;
                }
            }
            // A reorg below the confirmation depth: mined batches are un-mined.
            35..=49 => self.chain.reorg(rng.between(1, MAX_REORG)).await,
            // The node is unreachable for a few sends.
            50..=59 => self.chain.fail_sends(rng.between(1, 4) as u32),
            // The exchange is paused: batches, withdrawals and deposits revert.
            60..=67 => {
                self.chain.set_paused(true);
                self.faults.paused_until = Some(for_steps(rng, 6));
            }
            // A trader's signatures are refused: its trades are voided and the market halts.
            68..=72 => {
                if self.faults.refused.is_none() && !traders.is_empty() {
                    let trader = address(traders[rng.below(traders.len() as u64) as usize].0);
                    self.chain.refuse_signatures_of(trader);
                    self.faults.refused = Some((trader, for_steps(rng, 4)));
                }
            }
            // A trader invalidates its orders on-chain: their trades are voided, resting ones
            // cancelled.
            73..=77 => {
                if !traders.is_empty() {
                    // Below its last few orders' nonces (a trader's nonces only grow).
                    let (user, last_nonce) = traders[rng.below(traders.len() as u64) as usize];
                    let floor = last_nonce.saturating_sub(rng.below(4));
                    self.chain.invalidate_nonces(address(user), floor);
                }
            }
            // Another operator settled a batch: the index moved under this one.
            78..=82 => self.chain.settle_elsewhere(),
            // Gas gets expensive for a while.
            83..=89 => {
                self.chain.set_gas_price(BASE_GAS_PRICE * u128::from(rng.between(2, 5)));
                self.faults.spiked_until = Some(for_steps(rng, 6));
            }
            // The operator crashes on its own; a new one rebuilds from its stream.
            90..=94 => {
                node.settlement.stop();
                node.settlement = engine
                    .start_settlement(self.settlement_config(), self.chain.clone())
                    .await
                    .map_err(|e| format!("settlement does not restart: {e}"))?;
            }
            // The watcher crashes on its own.
            _ => {
                node.watcher.stop();
                node.watcher = engine
                    .start_chain_watcher(self.watcher_config(), self.chain.clone())
                    .await
                    .map_err(|e| format!("the chain watcher does not restart: {e}"))?;
            }
        }
        Ok(())
    }

    /// Lifts every fault, for the run to settle.
    pub(super) async fn calm(&mut self, engine: &SimEngine) {
        self.end_faults(None, engine).await;
    }

    /// Says what is still busy, if anything: the operator holding a trade,
    /// a batch, a transaction or a withdrawal, the mempool, or the watcher not having read
    /// every block deep enough.
    /// A block is mined only while something waits for one, so the watcher can catch up.
    pub(super) async fn settle_round(&self, node: &ChainNode) -> Option<String> {
        let view = match node.settlement.inspect().await {
            Ok(view) => view,
            Err(e) => return Some(format!("the operator does not answer: {e}")),
        };
        let head = match self.chain.block_number().await {
            Ok(head) => head,
            Err(e) => return Some(e.to_string()),
        };
        let shallow_deposit = self.chain.last_deposit_block().is_some_and(|b| b + CONFIRMATIONS > head + 1);
        if !view.in_flight.is_empty() || self.chain.pooled() > 0 || self.chain.deposits_pending() > 0 || shallow_deposit
        {
            self.chain.mine(1).await;
        }
        if view.pending_trades > 0 || view.batch.is_some() || !view.in_flight.is_empty() || view.pending_withdrawals > 0
        {
            return Some(format!("the operator is busy: {view:?}"));
        }
        if self.chain.pooled() > 0 {
            return Some(format!("{} transactions pooled", self.chain.pooled()));
        }
        let head = match self.chain.block_number().await {
            Ok(head) => head,
            Err(e) => return Some(e.to_string()),
        };
        if shallow_deposit {
            return Some(format!("a deposit is not {CONFIRMATIONS} blocks deep yet"));
        }
        match node.watcher.inspect().await {
            Ok(Some(w)) if w.next_block + CONFIRMATIONS > head => None,
            other => Some(format!("the watcher is behind block {head}: {other:?}")),
        }
    }

    /// The operator's id, which names its stream.
    pub(super) fn operator_user(&self) -> UserId {
        UserId(self.operator.address().0 .0)
    }

    pub(super) fn fee_collector_balance(&self, asset: AssetId) -> u128 {
        self.tokens.get(&asset).map_or(0, |token| self.chain.vault_balance(self.fee_collector, *token))
    }

    /// Vault balances of everyone but the fee collector, by (user, asset).
    pub(super) fn user_vaults(&self) -> BTreeMap<(UserId, AssetId), u128> {
        let assets: BTreeMap<Address, AssetId> = self.tokens.iter().map(|(a, t)| (*t, *a)).collect();
        let mut out = BTreeMap::new();
        for ((user, token), amount) in self.chain.vault_balances() {
            if user == self.fee_collector {
                continue;
            }
            if let Some(asset) = assets.get(&token) {
                out.insert((UserId(user.0 .0), *asset), amount);
            }
        }
        out
    }
}
