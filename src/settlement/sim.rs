//! A simulated EVM node for simulation tests: deterministic, in memory, no clock. It models
//! what settlement depends on and nothing more: accounts' nonces, a mempool with the
//! replacement rule (a 10% bump), blocks mined on demand or on every transaction (automine),
//! receipts, dropped transactions and reorgs, and a `HobExchange` that checks the batch index,
//! operators, pauses, signatures refused per trader and nonces invalidated on-chain, with the
//! contract's own custom errors as revert data. The conformance suite (`conformance.rs`)
//! checks these behaviours against anvil.
//!
//! Tests steer it through `SimControl` (mining, drops, reorgs) and the fault switches
//! (`refuse_signatures_of`, `invalidate_nonces`, `settle_elsewhere`, `fail_sends`).
//!
//! With markets registered (`register_market`) the exchange also keeps a vault
//! (`sim_vault.rs`): deposits (`deposit`, mined into the next block, logged as `Deposited` for
//! the chain watcher through `DepositLogs`), the balances a settled batch moves, and
//! withdrawals. Without, batches move no money, as the older scenario tests expect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use alloy::consensus::{Transaction, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::{SolCall, SolInterface};

use super::chain::{AlreadySubmitted, CallRequest, Chain, ChainError, NonceCounts, Sent, TxHash, TxReceipt};
use super::conformance::ChainControl;
use super::nonce::bumped;
pub use super::sim_vault::Grid;
use super::sim_vault::Vault;
use crate::chain::batch::{ACCOUNT_BYTES, MARKET_BYTES, ORDER_BYTES, TRADE_BYTES};
use crate::chain::contract::{HobExchange, HobExchangeErrors};
use crate::chain::deposit_logs::DepositLogs;
use crate::chain::deposits::DepositLog;
use crate::domain::{DepositId, UserId};

/// Gas a simulated `settleBatch` uses: a fixed part and a part per order and per trade, near
/// what the contract uses on anvil.
const SETTLE_BASE_GAS: u64 = 60_000;
const SETTLE_ORDER_GAS: u64 = 12_000;
const SETTLE_TRADE_GAS: u64 = 8_000;
/// Gas a simulated `withdraw` uses.
const WITHDRAW_GAS: u64 = 60_000;

#[derive(Clone, Debug)]
struct PoolTx {
    hash: TxHash,
    sender: Address,
    nonce: u64,
    gas_price: u128,
    to: Option<Address>,
    input: Bytes,
}

#[derive(Clone, Debug)]
struct Mined {
    tx: PoolTx,
    success: bool,
    gas_used: u64,
}

/// The exchange contract's state that settlement touches.
#[derive(Clone, Debug, Default)]
struct Exchange {
    next_batch_index: u64,
    paused: bool,
    min_nonce: HashMap<Address, u64>,
    vault: Vault,
}

/// A deposit sent and not yet mined.
#[derive(Clone, Copy, Debug)]
struct PendingDeposit {
    tx: TxHash,
    user: Address,
    token: Address,
    amount: u128,
}

#[derive(Clone, Debug)]
struct Block {
    txs: Vec<Mined>,
    /// The `Deposited` logs of the block.
    deposits: Vec<DepositLog>,
    /// Account nonces and the exchange after this block, so a reorg can go back to them.
    nonces: HashMap<Address, u64>,
    exchange: Exchange,
}

#[derive(Debug)]
struct State {
    chain_id: u64,
    gas_price: u128,
    automine: bool,
    nonces: HashMap<Address, u64>,
    pool: BTreeMap<(Address, u64), PoolTx>,
    /// Block 0 is genesis.
    blocks: Vec<Block>,
    exchange_address: Address,
    operators: BTreeSet<Address>,
    exchange: Exchange,
    /// A test's switch, not chain state: a reorg leaves it as it is.
    refused_signers: BTreeSet<Address>,
    fail_sends: u32,
    sends: u64,
    /// Registered markets: with none, batches move no money.
    markets: BTreeMap<u32, Grid>,
    fee_collector: Address,
    deposits: Vec<PendingDeposit>,
    /// Deposits sent since start, for their transaction hashes.
    deposits_sent: u64,
}

/// The simulated node. `Chain` for the operator, `ChainControl` for the test.
#[derive(Debug)]
pub struct SimChain {
    state: Mutex<State>,
}

impl SimChain {
    /// A chain with `exchange` deployed and `operators` allowed to settle, automining.
    pub fn new(chain_id: u64, exchange: Address, operators: impl IntoIterator<Item = Address>) -> SimChain {
        let genesis =
            Block { txs: Vec::new(), deposits: Vec::new(), nonces: HashMap::new(), exchange: Exchange::default() };
        SimChain {
            state: Mutex::new(State {
                chain_id,
                gas_price: 1_000_000_000,
                automine: true,
                nonces: HashMap::new(),
                pool: BTreeMap::new(),
                blocks: vec![genesis],
                exchange_address: exchange,
                operators: operators.into_iter().collect(),
                exchange: Exchange::default(),
                refused_signers: BTreeSet::new(),
                fail_sends: 0,
                sends: 0,
                markets: BTreeMap::new(),
                fee_collector: Address::ZERO,
                deposits: Vec::new(),
                deposits_sent: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every method leaves the state whole before it can panic; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signatures of `trader` (and its agents) are refused from now on: `BadSignature`.
    pub fn refuse_signatures_of(&self, trader: Address) {
        self.lock().refused_signers.insert(trader);
    }

    /// Signatures of `trader` are accepted again.
    pub fn accept_signatures_of(&self, trader: Address) {
        self.lock().refused_signers.remove(&trader);
    }

    /// Registers a market's grid (`registerMarket`): from the first one on, the exchange
    /// keeps a vault.
    pub fn register_market(&self, id: u32, grid: Grid) {
        self.lock().markets.insert(id, grid);
    }

    /// Where settled fees go (`setFeeCollector`).
    pub fn set_fee_collector(&self, collector: Address) {
        self.lock().fee_collector = collector;
    }

    /// `user` deposits `amount` of `token`: mined into the next block (with automine, at
    /// once), unless the exchange is paused then. Returns the deposit's transaction hash.
    pub fn deposit(&self, user: Address, token: Address, amount: u128) -> TxHash {
        let mut s = self.lock();
        s.deposits_sent += 1;
        let tx = alloy::primitives::keccak256([&b"sim-deposit"[..], &s.deposits_sent.to_be_bytes()].concat());
        s.deposits.push(PendingDeposit { tx, user, token, amount });
        if s.automine {
            s.mine_block();
        }
        tx
    }

    /// `balances(user, token)` on the exchange.
    pub fn vault_balance(&self, user: Address, token: Address) -> u128 {
        self.lock().exchange.vault.balance(user, token)
    }

    /// Every non-zero vault balance: (user, token) -> amount.
    pub fn vault_balances(&self) -> BTreeMap<(Address, Address), u128> {
        self.lock().exchange.vault.balances()
    }

    /// The hashes of the mempool's transactions, by (sender, nonce).
    pub fn pooled_hashes(&self) -> Vec<TxHash> {
        self.lock().pool.values().map(|tx| tx.hash).collect()
    }

    /// The block of the latest mined deposit, if any.
    pub fn last_deposit_block(&self) -> Option<u64> {
        let s = self.lock();
        s.blocks.iter().rev().find_map(|b| b.deposits.last().map(|d| d.block))
    }

    /// Deposits sent and not yet mined.
    pub fn deposits_pending(&self) -> usize {
        self.lock().deposits.len()
    }

    pub fn paused(&self) -> bool {
        self.lock().exchange.paused
    }

    /// `trader` invalidates its orders below `nonce`, as `invalidateNoncesBelow` does (a
    /// floor never goes down: the contract refuses that).
    pub fn invalidate_nonces(&self, trader: Address, nonce: u64) {
        let mut s = self.lock();
        let floor = s.exchange.min_nonce.entry(trader).or_default();
        *floor = (*floor).max(nonce);
    }

    /// Another operator settled a batch: the next index moves on under this operator.
    pub fn settle_elsewhere(&self) {
        self.lock().exchange.next_batch_index += 1;
    }

    pub fn set_paused(&self, paused: bool) {
        self.lock().exchange.paused = paused;
    }

    /// The next `n` sends fail as if the node were unreachable.
    pub fn fail_sends(&self, n: u32) {
        self.lock().fail_sends = n;
    }

    pub fn set_gas_price(&self, wei: u128) {
        self.lock().gas_price = wei;
    }

    pub fn next_batch_index(&self) -> u64 {
        self.lock().exchange.next_batch_index
    }

    /// Transactions sent (accepted or not) since start.
    pub fn sends(&self) -> u64 {
        self.lock().sends
    }

    /// Every mined transaction of `sender`, oldest first: (nonce, to, success).
    pub fn mined_by(&self, sender: Address) -> Vec<(u64, Option<Address>, bool)> {
        let s = self.lock();
        s.blocks
            .iter()
            .flat_map(|b| b.txs.iter())
            .filter(|m| m.tx.sender == sender)
            .map(|m| (m.tx.nonce, m.tx.to, m.success))
            .collect()
    }

    pub fn pooled(&self) -> usize {
        self.lock().pool.len()
    }
}

impl State {
    fn latest_nonce(&self, who: Address) -> u64 {
        self.nonces.get(&who).copied().unwrap_or(0)
    }

    fn mined(&self, hash: TxHash) -> Option<(u64, &Mined)> {
        self.blocks
            .iter()
            .enumerate()
            .find_map(|(n, b)| b.txs.iter().find(|m| m.tx.hash == hash).map(|m| (n as u64, m)))
    }

    fn send(&mut self, raw: &[u8]) -> Result<Sent, ChainError> {
        self.sends += 1;
        if self.fail_sends > 0 {
            self.fail_sends -= 1;
            return Err(ChainError::Transport("simulated: node unreachable".into()));
        }
        let envelope = TxEnvelope::decode_2718(&mut &raw[..])
            .map_err(|e| ChainError::Refused(format!("invalid transaction: {e}")))?;
        let sender = envelope
            .signature()
            .recover_address_from_prehash(&envelope.signature_hash())
            .map_err(|e| ChainError::Refused(format!("invalid signature: {e}")))?;
        if envelope.chain_id() != Some(self.chain_id) {
            return Err(ChainError::Refused("invalid chain id".into()));
        }
        let tx = PoolTx {
            hash: *envelope.tx_hash(),
            sender,
            nonce: envelope.nonce(),
            gas_price: envelope.gas_price().unwrap_or(envelope.max_fee_per_gas()),
            to: envelope.to(),
            input: envelope.input().clone(),
        };
        if self.mined(tx.hash).is_some() || self.pool.values().any(|p| p.hash == tx.hash) {
            return Ok(Sent::AlreadySubmitted(AlreadySubmitted::AlreadyKnown));
        }
        if tx.nonce < self.latest_nonce(sender) {
            return Ok(Sent::AlreadySubmitted(AlreadySubmitted::NonceTooLow));
        }
        if tx.gas_price < self.gas_price / 2 {
            return Err(ChainError::Refused("transaction underpriced".into()));
        }
        if let Some(existing) = self.pool.get(&(sender, tx.nonce)) {
            if tx.gas_price < bumped(existing.gas_price) {
                return Ok(Sent::AlreadySubmitted(AlreadySubmitted::ReplacementUnderpriced));
            }
        }
        self.pool.insert((sender, tx.nonce), tx);
        if self.automine {
            self.mine_block();
        }
        Ok(Sent::Accepted)
    }

    /// Mines one block with every executable pooled transaction, senders in address order,
    /// each sender's in nonce order.
    fn mine_block(&mut self) {
        let number = self.blocks.len() as u64;
        let mut deposits = Vec::new();
        for d in std::mem::take(&mut self.deposits) {
            // A pause stops deposits: the transaction reverts and logs nothing.
            if self.exchange.paused {
                continue;
            }
            self.exchange.vault.credit(d.user, d.token, d.amount);
            deposits.push(DepositLog {
                block: number,
                deposit: DepositId { tx: d.tx.0, log_index: deposits.len() as u64 },
                user: UserId(d.user.0 .0),
                token: d.token,
                amount: U256::from(d.amount),
            });
        }
        let mut txs = Vec::new();
        let senders: BTreeSet<Address> = self.pool.keys().map(|(a, _)| *a).collect();
        for sender in senders {
            loop {
                let next = self.latest_nonce(sender);
                let Some(tx) = self.pool.remove(&(sender, next)) else { break };
                let (success, gas_used) = match self.execute(&tx, true) {
                    Ok(gas) => (true, gas),
                    Err(_) => (false, gas_of(&tx)),
                };
                self.nonces.insert(sender, next + 1);
                txs.push(Mined { tx, success, gas_used });
            }
        }
        self.blocks.push(Block { txs, deposits, nonces: self.nonces.clone(), exchange: self.exchange.clone() });
    }

    /// Runs a call; with `commit` its effects stay. Returns the gas used or the revert.
    fn execute(&mut self, tx: &PoolTx, commit: bool) -> Result<u64, HobExchangeErrors> {
        if tx.to == Some(self.exchange_address)
            && !self.markets.is_empty()
            && tx.input.starts_with(&HobExchange::withdrawCall::SELECTOR)
        {
            return self.withdraw(tx, commit);
        }
        if tx.to != Some(self.exchange_address) || !tx.input.starts_with(&HobExchange::settleBatchCall::SELECTOR) {
            return Ok(gas_of(tx));
        }
        let call = HobExchange::settleBatchCall::abi_decode(&tx.input)
            .map_err(|_| HobExchangeErrors::MalformedBatch(HobExchange::MalformedBatch {}))?;
        if !self.operators.contains(&tx.sender) {
            return Err(HobExchangeErrors::NotOperator(HobExchange::NotOperator {}));
        }
        if self.exchange.paused {
            return Err(HobExchangeErrors::IsPaused(HobExchange::IsPaused {}));
        }
        let expected = self.exchange.next_batch_index;
        if call.batchIndex != expected {
            return Err(HobExchangeErrors::BadBatchIndex(HobExchange::BadBatchIndex {
                expected,
                got: call.batchIndex,
            }));
        }
        let orders =
            packed_orders(&call.data).ok_or(HobExchangeErrors::MalformedBatch(HobExchange::MalformedBatch {}))?;
        for (i, (trader, nonce)) in orders.iter().enumerate() {
            if self.refused_signers.contains(trader) {
                return Err(HobExchangeErrors::BadSignature(HobExchange::BadSignature { order: U256::from(i) }));
            }
            if *nonce < self.exchange.min_nonce.get(trader).copied().unwrap_or(0) {
                return Err(HobExchangeErrors::NonceInvalidated(HobExchange::NonceInvalidated {
                    order: U256::from(i),
                }));
            }
        }
        if !self.markets.is_empty() {
            let mut vault = self.exchange.vault.clone();
            vault.settle(&call.data, &self.markets, self.fee_collector)?;
            if commit {
                self.exchange.vault = vault;
            }
        }
        if commit {
            self.exchange.next_batch_index += 1;
        }
        Ok(gas_of(tx))
    }

    /// `withdraw(user, token, amount, nonce, expiry, signature)`: the signature is refused
    /// only for a trader the test named (`refuse_signatures_of`); expiry is not checked.
    fn withdraw(&mut self, tx: &PoolTx, commit: bool) -> Result<u64, HobExchangeErrors> {
        let call = HobExchange::withdrawCall::abi_decode(&tx.input)
            .map_err(|_| HobExchangeErrors::MalformedBatch(HobExchange::MalformedBatch {}))?;
        if !self.operators.contains(&tx.sender) {
            return Err(HobExchangeErrors::NotOperator(HobExchange::NotOperator {}));
        }
        if self.exchange.paused {
            return Err(HobExchangeErrors::IsPaused(HobExchange::IsPaused {}));
        }
        if self.refused_signers.contains(&call.user) {
            return Err(HobExchangeErrors::BadWithdrawalSignature(HobExchange::BadWithdrawalSignature {}));
        }
        let mut vault = self.exchange.vault.clone();
        vault.withdraw(&call)?;
        if commit {
            self.exchange.vault = vault;
        }
        Ok(WITHDRAW_GAS)
    }

    fn simulate(&mut self, call: &CallRequest) -> Result<u64, ChainError> {
        let tx = PoolTx {
            hash: TxHash::ZERO,
            sender: call.from,
            nonce: 0,
            gas_price: 0,
            to: Some(call.to),
            input: call.data.clone(),
        };
        self.execute(&tx, false).map_err(|e| ChainError::Reverted { data: e.abi_encode().into() })
    }
}

/// The gas a transaction uses here: a transfer's 21,000, or the settlement model.
fn gas_of(tx: &PoolTx) -> u64 {
    if !tx.input.starts_with(&HobExchange::settleBatchCall::SELECTOR) {
        return 21_000;
    }
    let data = HobExchange::settleBatchCall::abi_decode(&tx.input).map(|c| c.data).unwrap_or_default();
    let orders = packed_orders(&data).map_or(0, |o| o.len() as u64);
    let trades = packed_trade_count(&data).unwrap_or(0);
    SETTLE_BASE_GAS + SETTLE_ORDER_GAS * orders + SETTLE_TRADE_GAS * trades
}

/// The (trader, nonce) of each order in a packed batch (layout in `chain::batch`).
fn packed_orders(data: &[u8]) -> Option<Vec<(Address, u64)>> {
    let markets = *data.first()? as usize;
    let mut pos = 1 + markets * MARKET_BYTES;
    let accounts = u16::from_be_bytes(data.get(pos..pos + 2)?.try_into().ok()?) as usize;
    pos += 2;
    let mut traders = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        traders.push(Address::from_slice(data.get(pos..pos + ACCOUNT_BYTES)?));
        pos += ACCOUNT_BYTES;
    }
    let count = u16::from_be_bytes(data.get(pos..pos + 2)?.try_into().ok()?) as usize;
    pos += 2;
    let mut orders = Vec::with_capacity(count);
    for _ in 0..count {
        let order = data.get(pos..pos + ORDER_BYTES)?;
        let account = u16::from_be_bytes(order[0..2].try_into().ok()?) as usize;
        let nonce = u64::from_be_bytes(order[22..30].try_into().ok()?);
        orders.push((*traders.get(account)?, nonce));
        pos += ORDER_BYTES;
    }
    Some(orders)
}

fn packed_trade_count(data: &[u8]) -> Option<u64> {
    let orders = packed_orders(data)?.len();
    let markets = *data.first()? as usize;
    let accounts_at = 1 + markets * MARKET_BYTES;
    let accounts = u16::from_be_bytes(data.get(accounts_at..accounts_at + 2)?.try_into().ok()?) as usize;
    let trades_at = accounts_at + 2 + accounts * ACCOUNT_BYTES + 2 + orders * ORDER_BYTES;
    let trades = u16::from_be_bytes(data.get(trades_at..trades_at + 2)?.try_into().ok()?) as u64;
    (data.len() == trades_at + 2 + trades as usize * TRADE_BYTES).then_some(trades)
}

impl Chain for SimChain {
    async fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.lock().chain_id)
    }

    async fn nonce_counts(&self, address: Address) -> Result<NonceCounts, ChainError> {
        let s = self.lock();
        let latest = s.latest_nonce(address);
        let mut pending = latest;
        while s.pool.contains_key(&(address, pending)) {
            pending += 1;
        }
        Ok(NonceCounts { latest, pending })
    }

    async fn gas_price(&self) -> Result<u128, ChainError> {
        Ok(self.lock().gas_price)
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.lock().blocks.len() as u64 - 1)
    }

    async fn send_raw(&self, raw: Bytes) -> Result<Sent, ChainError> {
        self.lock().send(&raw)
    }

    async fn receipt(&self, hash: TxHash) -> Result<Option<TxReceipt>, ChainError> {
        let s = self.lock();
        Ok(s.mined(hash).map(|(block, m)| TxReceipt { hash, block, success: m.success, gas_used: m.gas_used }))
    }

    async fn is_known(&self, hash: TxHash) -> Result<bool, ChainError> {
        let s = self.lock();
        Ok(s.mined(hash).is_some() || s.pool.values().any(|p| p.hash == hash))
    }

    async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, ChainError> {
        self.lock().simulate(call)
    }

    async fn call(&self, call: &CallRequest) -> Result<Bytes, ChainError> {
        let mut s = self.lock();
        if call.to == s.exchange_address && call.data.starts_with(&HobExchange::nextBatchIndexCall::SELECTOR) {
            return Ok(HobExchange::nextBatchIndexCall::abi_encode_returns(&s.exchange.next_batch_index).into());
        }
        s.simulate(call).map(|_| Bytes::new())
    }
}

impl ChainControl for SimChain {
    async fn set_automine(&self, on: bool) {
        self.lock().automine = on;
    }

    async fn mine(&self, blocks: u64) {
        let mut s = self.lock();
        for _ in 0..blocks {
            s.mine_block();
        }
    }

    async fn drop_tx(&self, hash: TxHash) {
        self.lock().pool.retain(|_, tx| tx.hash != hash);
    }

    /// Like `anvil_reorg` with no transactions: the last `depth` blocks are replaced by as
    /// many empty ones; their transactions are gone (neither mined nor pooled).
    async fn reorg(&self, depth: u64) {
        let mut s = self.lock();
        let keep = s.blocks.len().saturating_sub(depth as usize).max(1);
        s.blocks.truncate(keep);
        let last = &s.blocks[keep - 1];
        let (nonces, exchange) = (last.nonces.clone(), last.exchange.clone());
        s.nonces = nonces;
        s.exchange = exchange;
        for _ in 0..depth {
            let block =
                Block { txs: Vec::new(), deposits: Vec::new(), nonces: s.nonces.clone(), exchange: s.exchange.clone() };
            s.blocks.push(block);
        }
    }
}

impl DepositLogs for SimChain {
    async fn head(&self) -> Result<u64, ChainError> {
        Ok(self.lock().blocks.len() as u64 - 1)
    }

    async fn deposits(&self, exchange: Address, from: u64, to: u64) -> Result<Vec<DepositLog>, ChainError> {
        let s = self.lock();
        if exchange != s.exchange_address {
            return Ok(Vec::new());
        }
        let blocks = s.blocks.iter().skip(from as usize).take(to.saturating_sub(from).saturating_add(1) as usize);
        Ok(blocks.flat_map(|b| b.deposits.iter().cloned()).collect())
    }
}
