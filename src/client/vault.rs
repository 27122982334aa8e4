//! The exchange contract as a trader sees it, over the node's JSON-RPC: where it is
//! (`GET /api/v1/chain`), test tokens minted and deposited into the vault from the trader's
//! own wallet, vault balances, and which settlement batch settled an order.
//!
//! Deposits are the real path: the wallet approves the exchange and calls `deposit`, and hob's
//! chain watcher credits the off-chain balance once the deposit is deep enough. Minting works
//! only on the test tokens `hob serve --chain anvil` deploys (`TestToken.mint` is open to
//! anyone); a real token is funded some other way and then deposited the same.

use std::collections::BTreeMap;

use alloy::eips::BlockId;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use rust_decimal::Decimal;

use crate::api::rest::chain::ChainInfo;
use crate::chain::contract::{HobExchange, TestToken};
use crate::client::ClientError;

/// Where a server's trades settle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub chain_id: u64,
    pub rpc_url: String,
    pub exchange: Address,
    /// Each asset's ERC-20 token, by symbol.
    pub tokens: BTreeMap<String, Address>,
}

/// A deposit the chain executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub tx: B256,
    pub block: u64,
}

/// The settlement transaction that settled an order (in full or in part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub tx: B256,
    pub block: u64,
    pub batch_index: u64,
    /// The order is fully filled on-chain.
    pub done: bool,
    /// Lots settled so far when not `done` (the contract forgets them once it is).
    pub filled_lots: u64,
}

impl Deployment {
    /// From `GET /api/v1/chain`; a server with no chain (`mode = "none"`) settles nowhere.
    pub fn from_info(info: &ChainInfo) -> Result<Deployment, ClientError> {
        let none = || {
            ClientError::Chain(format!(
                "the server settles nowhere (chain mode `{}`): start it with a chain, e.g. `make run`",
                info.mode
            ))
        };
        let address = |text: &str| {
            text.parse::<Address>().map_err(|e| ClientError::Server(format!("GET /api/v1/chain: {text}: {e}")))
        };
        let exchange = address(info.exchange.as_deref().ok_or_else(none)?)?;
        let tokens = info
            .tokens
            .iter()
            .map(|(asset, token)| Ok((asset.clone(), address(token)?)))
            .collect::<Result<BTreeMap<_, _>, ClientError>>()?;
        Ok(Deployment {
            chain_id: info.chain_id.ok_or_else(none)?,
            rpc_url: info.rpc_url.clone().ok_or_else(none)?,
            exchange,
            tokens,
        })
    }

    pub fn token(&self, asset: &str) -> Result<Address, ClientError> {
        self.tokens.get(asset).copied().ok_or_else(|| ClientError::Chain(format!("no token for {asset} on this chain")))
    }

    /// The `decimals` of `asset`'s token, read on-chain.
    pub async fn decimals(&self, asset: &str) -> Result<u8, ClientError> {
        let token = TestToken::new(self.token(asset)?, self.reader()?);
        token.decimals().call().await.map_err(|e| chain_error("decimals", e))
    }

    /// `units` of `asset` as a decimal amount of the token.
    pub async fn amount(&self, asset: &str, units: u128) -> Result<Decimal, ClientError> {
        let decimals = self.decimals(asset).await?;
        i128::try_from(units)
            .ok()
            .and_then(|units| Decimal::try_from_i128_with_scale(units, u32::from(decimals)).ok())
            .map(|amount| amount.normalize())
            .ok_or_else(|| ClientError::Invalid(format!("{units} base units of {asset} do not fit a decimal")))
    }

    /// `amount` of `asset` in the token's base units (its `decimals`, read on-chain); an
    /// amount finer than the token is refused, never rounded.
    pub async fn base_units(&self, asset: &str, amount: Decimal) -> Result<u128, ClientError> {
        let decimals = self.decimals(asset).await?;
        let bad = || ClientError::Invalid(format!("{amount} {asset} is not a positive amount of base units"));
        let exact = amount.normalize();
        let scale = exact.scale();
        let mantissa = u128::try_from(exact.mantissa()).ok().filter(|m| *m > 0).ok_or_else(bad)?;
        let shift = u32::from(decimals).checked_sub(scale).ok_or_else(bad)?;
        10u128.checked_pow(shift).and_then(|scale| mantissa.checked_mul(scale)).ok_or_else(bad)
    }

    /// Mints `units` of `asset`'s test token to `key`'s wallet, approves the exchange and
    /// deposits them, each transaction mined and checked. The wallet pays the gas.
    pub async fn deposit_test_tokens(
        &self,
        key: &PrivateKeySigner,
        asset: &str,
        units: u128,
    ) -> Result<Deposit, ClientError> {
        let wallet = self.wallet(key)?;
        let gas = wallet.get_balance(key.address()).await.map_err(|e| chain_error("eth_getBalance", e))?;
        if gas.is_zero() {
            return Err(ClientError::Chain(format!(
                "wallet {} has no ETH to pay gas: use one of anvil's dev accounts or fund it first",
                key.address()
            )));
        }
        let token = TestToken::new(self.token(asset)?, wallet.clone());
        let amount = U256::from(units);
        mined("mint", token.mint(key.address(), amount).send().await).await?;
        mined("approve", token.approve(self.exchange, amount).send().await).await?;
        let exchange = HobExchange::new(self.exchange, wallet);
        mined("deposit", exchange.deposit(*token.address(), amount).send().await).await
    }

    /// `user`'s balance of `asset` in the exchange's vault, in base units.
    pub async fn vault_balance(&self, user: Address, asset: &str) -> Result<u128, ClientError> {
        let exchange = HobExchange::new(self.exchange, self.reader()?);
        let balance =
            exchange.balances(user, self.token(asset)?).call().await.map_err(|e| chain_error("balances", e))?;
        u128::try_from(balance).map_err(|_| ClientError::Chain(format!("a vault balance beyond u128: {balance}")))
    }

    pub async fn latest_block(&self) -> Result<u64, ClientError> {
        self.reader()?.get_block_number().await.map_err(|e| chain_error("eth_blockNumber", e))
    }

    /// The first `BatchSettled` at or after `from_block` after which the contract counts
    /// `trader`'s order `nonce` as (partly) settled, if one has been mined. Nonces are never
    /// reused, so the first batch that shows progress is the one that carried the order.
    pub async fn settlement_of(
        &self,
        trader: Address,
        nonce: u64,
        from_block: u64,
    ) -> Result<Option<Settlement>, ClientError> {
        let exchange = HobExchange::new(self.exchange, self.reader()?);
        let batches = exchange
            .BatchSettled_filter()
            .from_block(from_block)
            .query()
            .await
            .map_err(|e| chain_error("eth_getLogs BatchSettled", e))?;
        for (batch, log) in batches {
            let (Some(block), Some(tx)) = (log.block_number, log.transaction_hash) else { continue };
            let fill = exchange
                .orderFill(trader, nonce)
                .block(BlockId::number(block))
                .call()
                .await
                .map_err(|e| chain_error("orderFill", e))?;
            if fill.done || fill.filledLots > 0 {
                let settlement = Settlement {
                    tx,
                    block,
                    batch_index: batch.batchIndex,
                    done: fill.done,
                    filled_lots: fill.filledLots,
                };
                return Ok(Some(settlement));
            }
        }
        Ok(None)
    }

    fn url(&self) -> Result<alloy::transports::http::reqwest::Url, ClientError> {
        self.rpc_url.parse().map_err(|e| ClientError::Chain(format!("rpc url {}: {e}", self.rpc_url)))
    }

    fn reader(&self) -> Result<DynProvider, ClientError> {
        Ok(ProviderBuilder::new().connect_http(self.url()?).erased())
    }

    fn wallet(&self, key: &PrivateKeySigner) -> Result<DynProvider, ClientError> {
        Ok(ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(self.url()?).erased())
    }
}

/// Waits for a sent transaction's receipt and checks it succeeded.
async fn mined<N: alloy::network::Network>(
    what: &str,
    sent: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
) -> Result<Deposit, ClientError> {
    let pending = sent.map_err(|e| chain_error(what, e))?;
    let receipt = pending
        .with_timeout(Some(std::time::Duration::from_secs(60)))
        .get_receipt()
        .await
        .map_err(|e| chain_error(what, e))?;
    let tx = alloy::network::ReceiptResponse::transaction_hash(&receipt);
    if !alloy::network::ReceiptResponse::status(&receipt) {
        return Err(ClientError::Chain(format!("{what} reverted in {tx}")));
    }
    let block = alloy::network::ReceiptResponse::block_number(&receipt).unwrap_or_default();
    Ok(Deposit { tx, block })
}

fn chain_error(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Chain(format!("{what}: {e}"))
}
