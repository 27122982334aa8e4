//! `hob serve`'s connection to its chain, resolved once at start from `[chain]`: the node,
//! the exchange, each asset's token, the operator and admin wallets, and (anvil mode) the
//! local node itself, with the contract and tokens freshly deployed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use super::admin::{AdminChainError, ContractAdmin};
use super::config::{keys_from_env, ChainConfig, ChainMode, KeyError};
use super::contract::{HobExchange, TestToken};
use super::devnet::{Devnet, DevnetError};
use crate::domain::AssetId;
use crate::settlement::{OperatorKey, RpcChain, SettlementConfig};

/// How long after the last settled batch users may exit without the operator (anvil mode).
const DEV_ESCAPE_PERIOD_S: u64 = 7 * 86_400;
/// How long a set-up or faucet transaction may take to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Gas money the faucet tops a wallet up to on anvil, so it can approve and deposit.
const DEV_GAS_WEI: u128 = 10_000_000_000_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ChainSetupError {
    #[error(transparent)]
    Devnet(#[from] DevnetError),
    #[error("deploying {what} on anvil: {message}")]
    Deploy { what: String, message: String },
    #[error("the node at {url}: {message}")]
    Node { url: String, message: String },
    #[error("the node at {url} is chain {actual}, but auth.chain_id says {expected}")]
    WrongChain { url: String, expected: u64, actual: u64 },
    #[error("no contract at auth.exchange_address {0} on this chain")]
    NoContract(Address),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Admin(#[from] AdminChainError),
    #[error("asset {0}: {1}")]
    Asset(String, String),
}

/// Mints test tokens to wallets (anvil mode): its own dev account, one mint at a time so
/// its nonces never race.
struct Faucet {
    provider: DynProvider,
    lock: tokio::sync::Mutex<()>,
}

pub struct ChainLink {
    pub mode: ChainMode,
    pub rpc_url: String,
    pub chain_id: u64,
    pub exchange: Address,
    pub tokens: BTreeMap<AssetId, Address>,
    /// Signs settlements.
    pub operator: OperatorKey,
    /// Registers markets and pauses; used by the admin operator only.
    pub admin: ContractAdmin,
    reader: DynProvider,
    faucet: Option<Faucet>,
    /// Taken (and so killed) by `stop_devnet`.
    devnet: std::sync::Mutex<Option<Devnet>>,
}

impl std::fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No keys: `OperatorKey`'s Debug shows its address only.
        f.debug_struct("ChainLink")
            .field("mode", &self.mode)
            .field("rpc_url", &self.rpc_url)
            .field("chain_id", &self.chain_id)
            .field("exchange", &self.exchange)
            .field("operator", &self.operator)
            .field("admin", &self.admin.admin())
            .finish()
    }
}

impl ChainLink {
    /// Connects as `config` says: `assets` are the traded assets with their decimals;
    /// `chain_id` and `exchange` come from `[auth]` (`rpc` mode checks them against the node).
    pub async fn connect(
        config: &ChainConfig,
        assets: &[(AssetId, u8)],
        chain_id: u64,
        exchange: Address,
    ) -> Result<Option<ChainLink>, ChainSetupError> {
        match config.mode {
            ChainMode::None => Ok(None),
            ChainMode::Anvil => Self::anvil(config, assets).await.map(Some),
            ChainMode::Rpc => Self::rpc(config, assets, chain_id, exchange).await.map(Some),
        }
    }

    async fn anvil(config: &ChainConfig, assets: &[(AssetId, u8)]) -> Result<ChainLink, ChainSetupError> {
        let devnet = Devnet::spawn(Duration::from_millis(config.block_time_ms), config.anvil_port)?;
        let url = devnet.endpoint();
        // anvil's dev accounts: 0 deploys and administers, 1 settles, 2 runs the faucet, 3
        // collects the fees.
        let (admin, operator, faucet) = (devnet.account(0)?, devnet.account(1)?, devnet.account(2)?);
        let fee_collector = devnet.account(3)?.address();
        let deployer = wallet_provider(&url, admin.clone())?;
        let deploy_err = |what: &str, e: alloy::contract::Error| ChainSetupError::Deploy {
            what: what.to_owned(),
            message: e.to_string(),
        };
        let mut tokens = BTreeMap::new();
        for (asset, decimals) in assets {
            let symbol = asset.to_string();
            let token = TestToken::deploy(deployer.clone(), format!("hob test {symbol}"), symbol.clone(), *decimals)
                .await
                .map_err(|e| deploy_err(&format!("the {symbol} token"), e))?;
            tokens.insert(*asset, *token.address());
        }
        let exchange = HobExchange::deploy(deployer.clone(), fee_collector, DEV_ESCAPE_PERIOD_S)
            .await
            .map_err(|e| deploy_err("HobExchange", e))?;
        let receipt = exchange
            .setOperator(operator.address(), true)
            .send()
            .await
            .map_err(|e| deploy_err("the operator role", e))?
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .map_err(|e| ChainSetupError::Deploy { what: "the operator role".to_owned(), message: e.to_string() })?;
        if !receipt.status() {
            return Err(ChainSetupError::Deploy {
                what: "the operator role".to_owned(),
                message: "setOperator reverted".to_owned(),
            });
        }
        let exchange = *exchange.address();
        Ok(ChainLink {
            mode: ChainMode::Anvil,
            chain_id: devnet.chain_id(),
            exchange,
            tokens,
            operator: OperatorKey::from_signer(operator),
            admin: ContractAdmin::connect(&url, admin, exchange)?,
            reader: reader(&url)?,
            faucet: Some(Faucet { provider: wallet_provider(&url, faucet)?, lock: tokio::sync::Mutex::new(()) }),
            rpc_url: url,
            devnet: std::sync::Mutex::new(Some(devnet)),
        })
    }

    async fn rpc(
        config: &ChainConfig,
        assets: &[(AssetId, u8)],
        chain_id: u64,
        exchange: Address,
    ) -> Result<ChainLink, ChainSetupError> {
        let url = config.rpc_url.clone();
        let node_err =
            |e: alloy::transports::TransportError| ChainSetupError::Node { url: url.clone(), message: e.to_string() };
        let reader = reader(&url)?;
        let actual = reader.get_chain_id().await.map_err(node_err)?;
        if actual != chain_id {
            return Err(ChainSetupError::WrongChain { url, expected: chain_id, actual });
        }
        if reader.get_code_at(exchange).await.map_err(node_err)?.is_empty() {
            return Err(ChainSetupError::NoContract(exchange));
        }
        let mut tokens = BTreeMap::new();
        for (asset, _) in assets {
            let token = config.token(&asset.to_string()).map_err(|e| ChainSetupError::Asset(e.option, e.message))?;
            tokens.insert(*asset, token);
        }
        let (operator, admin) = keys_from_env()?;
        Ok(ChainLink {
            mode: ChainMode::Rpc,
            chain_id,
            exchange,
            tokens,
            operator,
            admin: ContractAdmin::connect(&url, admin, exchange)?,
            reader,
            faucet: None,
            rpc_url: url,
            devnet: std::sync::Mutex::new(None),
        })
    }

    /// The settlement operator's options from `[chain]`.
    pub fn settlement_config(&self, config: &ChainConfig) -> SettlementConfig {
        let mut settlement = SettlementConfig::new(self.operator.clone(), self.exchange, self.chain_id);
        settlement.batch.max_trades = config.batch_max_trades;
        settlement.batch.window_ms = config.batch_window_ms;
        settlement.max_in_flight = config.max_in_flight;
        settlement.poll_interval = Duration::from_millis(config.settlement_poll_ms);
        settlement.receipt_timeout = Duration::from_millis(config.receipt_timeout_ms);
        settlement.confirmations = config.confirmations;
        settlement.max_failures = config.max_failures;
        settlement.alert_webhook = config.alert_webhook.clone();
        settlement
    }

    /// The settlement operator's view of the node.
    pub fn settlement_chain(&self) -> Result<Arc<RpcChain>, ChainSetupError> {
        RpcChain::connect_http(&self.rpc_url)
            .map(Arc::new)
            .map_err(|e| ChainSetupError::Node { url: self.rpc_url.clone(), message: e.to_string() })
    }

    /// The pid of the anvil hob spawned (anvil mode).
    pub fn anvil_pid(&self) -> Option<u32> {
        self.devnet().as_ref().map(Devnet::pid)
    }

    /// Kills the anvil hob spawned, if any (also done when the link is dropped).
    pub fn stop_devnet(&self) {
        drop(self.devnet().take());
    }

    fn devnet(&self) -> std::sync::MutexGuard<'_, Option<Devnet>> {
        // Only ever a take or a read of the option: a panic cannot leave it half-written.
        self.devnet.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the node answers: its latest block number.
    pub async fn probe(&self) -> Result<u64, String> {
        self.reader.get_block_number().await.map_err(|e| e.to_string())
    }

    pub fn has_faucet(&self) -> bool {
        self.faucet.is_some()
    }

    /// Mints `amount` of `asset`'s test token to `to` (anvil mode), topping the wallet's gas
    /// money up so it can approve and deposit. Returns the mint's transaction hash.
    pub async fn mint(&self, asset: AssetId, to: Address, amount: u128) -> Result<alloy::primitives::B256, String> {
        let faucet = self.faucet.as_ref().ok_or("no faucet on this chain")?;
        let token = self.tokens.get(&asset).ok_or_else(|| format!("no token for {asset}"))?;
        let _one_at_a_time = faucet.lock.lock().await;
        let gas = faucet.provider.get_balance(to).await.map_err(|e| e.to_string())?;
        if gas < U256::from(DEV_GAS_WEI / 2) {
            faucet.provider.anvil_set_balance(to, U256::from(DEV_GAS_WEI)).await.map_err(|e| e.to_string())?;
        }
        let receipt = TestToken::new(*token, faucet.provider.clone())
            .mint(to, U256::from(amount))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .map_err(|e| e.to_string())?;
        if !receipt.status() {
            return Err(format!("mint reverted in {}", receipt.transaction_hash));
        }
        Ok(receipt.transaction_hash)
    }
}

fn reader(url: &str) -> Result<DynProvider, ChainSetupError> {
    let parsed = url.parse().map_err(|e| ChainSetupError::Node { url: url.to_owned(), message: format!("{e}") })?;
    Ok(ProviderBuilder::new().connect_http(parsed).erased())
}

fn wallet_provider(url: &str, key: PrivateKeySigner) -> Result<DynProvider, ChainSetupError> {
    let parsed = url.parse().map_err(|e| ChainSetupError::Node { url: url.to_owned(), message: format!("{e}") })?;
    Ok(super::admin::signing_provider(parsed, key))
}
