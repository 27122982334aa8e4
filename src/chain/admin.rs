//! The exchange's admin calls, signed by the admin wallet: read and register a market, read
//! and set the pause. Only the `AdminOperatorActor` sends them at run time, so one wallet's
//! nonces are never raced by two senders.

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use super::contract::{decode_revert, HobExchange};

/// How long an admin transaction may take to be mined before the command counts as failed
/// (and is retried: the retry reads the chain first, so a late success is not repeated).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A provider that signs with `key` and asks the node for the (pending) nonce every time
/// instead of caching it: a transaction that timed out, was dropped or was sent by another
/// process with the same key never leaves a cached nonce ahead of the chain, stalling every
/// later transaction. Admin and faucet transactions are rare; the extra request is nothing.
pub fn signing_provider(url: alloy::transports::http::reqwest::Url, key: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key))
        .connect_http(url)
        .erased()
}

/// A market as the contract holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainMarket {
    pub base: Address,
    pub quote: Address,
    pub base_lot: u128,
    pub quote_tick: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminChainError {
    /// The node did not answer or refused the request; worth retrying.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The contract refused the call (a revert): retrying changes nothing.
    #[error("the exchange refused: {0}")]
    Refused(String),
    #[error("transaction {0} reverted")]
    Reverted(B256),
}

fn classify(e: alloy::contract::Error) -> AdminChainError {
    match decode_revert(&e) {
        Some(revert) => AdminChainError::Refused(format!("{revert:?}")),
        None => AdminChainError::Unavailable(e.to_string()),
    }
}

/// The exchange at `exchange`, driven by `admin`'s wallet.
#[derive(Clone, Debug)]
pub struct ContractAdmin {
    provider: DynProvider,
    exchange: Address,
    admin: Address,
}

impl ContractAdmin {
    pub fn connect(url: &str, admin: PrivateKeySigner, exchange: Address) -> Result<ContractAdmin, AdminChainError> {
        let url = url.parse().map_err(|e| AdminChainError::Unavailable(format!("node url {url:?}: {e}")))?;
        let address = admin.address();
        Ok(ContractAdmin { provider: signing_provider(url, admin), exchange, admin: address })
    }

    pub fn admin(&self) -> Address {
        self.admin
    }

    pub fn exchange(&self) -> Address {
        self.exchange
    }

    fn contract(&self) -> HobExchange::HobExchangeInstance<DynProvider> {
        HobExchange::new(self.exchange, self.provider.clone())
    }

    /// The market registered under `id`, if any.
    pub async fn market(&self, id: u32) -> Result<Option<OnChainMarket>, AdminChainError> {
        let m = self.contract().markets(id).call().await.map_err(classify)?;
        if m.base == Address::ZERO {
            return Ok(None);
        }
        Ok(Some(OnChainMarket { base: m.base, quote: m.quote, base_lot: m.baseLot, quote_tick: m.quoteTick }))
    }

    /// Sends `registerMarket` and waits for it to be mined; the transaction's hash.
    pub async fn register_market(&self, id: u32, m: OnChainMarket) -> Result<B256, AdminChainError> {
        let contract = self.contract();
        let call = contract.registerMarket(id, m.base, m.quote, m.base_lot, m.quote_tick);
        self.mined(call.send().await.map_err(classify)?).await
    }

    pub async fn paused(&self) -> Result<bool, AdminChainError> {
        self.contract().paused().call().await.map_err(classify)
    }

    /// Sends `pause` or `unpause` and waits for it to be mined.
    pub async fn set_paused(&self, paused: bool) -> Result<B256, AdminChainError> {
        let contract = self.contract();
        let pending = if paused { contract.pause().send().await } else { contract.unpause().send().await };
        self.mined(pending.map_err(classify)?).await
    }

    async fn mined(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    ) -> Result<B256, AdminChainError> {
        let receipt = pending
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .map_err(|e| AdminChainError::Unavailable(e.to_string()))?;
        if !receipt.status() {
            return Err(AdminChainError::Reverted(receipt.transaction_hash));
        }
        Ok(receipt.transaction_hash)
    }

    /// The node's latest block: a cheap liveness probe.
    pub async fn block_number(&self) -> Result<u64, AdminChainError> {
        self.provider.get_block_number().await.map_err(|e| AdminChainError::Unavailable(e.to_string()))
    }
}
