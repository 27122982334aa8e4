//! The `[chain]` section of `hob serve`'s configuration: which chain trades settle on.
//!
//! - `none`: no chain; trades match and stay off-chain (the faucet credits balances directly).
//! - `anvil`: hob spawns the anvil binary `make tools` installed, deploys a test token per
//!   asset and `HobExchange` with anvil's funded dev accounts, and kills anvil when it exits.
//! - `rpc`: an existing node: its URL, the deployed exchange (`auth.exchange_address`, chain id
//!   `auth.chain_id`, both checked against the node at start) and each asset's token address.
//!
//! Keys never live in the file: `rpc` reads them from files or the environment (see
//! `keys_from_env`), and `anvil` uses its own dev accounts.

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use serde::Deserialize;

use crate::settlement::config::{key_from_env, KEY_ENV, KEY_FILE_ENV};
use crate::settlement::OperatorKey;

/// The admin key (`0x` + 64 hex digits), `rpc` mode: registers markets and pauses.
pub const ADMIN_KEY_ENV: &str = "HOB_ADMIN_KEY";
/// A file holding the admin key (preferred to the variable).
pub const ADMIN_KEY_FILE_ENV: &str = "HOB_ADMIN_KEY_FILE";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChainMode {
    #[default]
    None,
    Anvil,
    Rpc,
}

impl ChainMode {
    pub fn parse(text: &str) -> Result<ChainMode, String> {
        match text.trim() {
            "none" => Ok(ChainMode::None),
            "anvil" => Ok(ChainMode::Anvil),
            "rpc" => Ok(ChainMode::Rpc),
            other => Err(format!("{other:?} is not none, anvil or rpc")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChainMode::None => "none",
            ChainMode::Anvil => "anvil",
            ChainMode::Rpc => "rpc",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    pub mode: ChainMode,
    /// `anvil`: milliseconds between blocks; 0 mines a block for every transaction.
    pub block_time_ms: u64,
    /// `anvil`: the port it listens on; 0 takes a free one.
    pub anvil_port: u16,
    /// `rpc`: the node's JSON-RPC URL (`http://` or `https://`).
    pub rpc_url: String,
    /// `rpc`: each asset's ERC-20 token address, by asset symbol.
    pub tokens: BTreeMap<String, String>,
    /// Blocks a settlement must be buried under (its own included) to count as final.
    pub confirmations: u64,
    /// Most trades in one settlement transaction.
    pub batch_max_trades: usize,
    /// How long a batch that is not full waits for more trades.
    pub batch_window_ms: u64,
    /// Most settlement batches in flight at once (consecutive nonces and batch indices).
    pub max_in_flight: usize,
    /// How often the settlement operator looks at its transactions and its queue.
    pub settlement_poll_ms: u64,
    /// How long a settlement may stay unmined before it is re-sent with a higher fee.
    pub receipt_timeout_ms: u64,
    /// Failures of one batch before it is rolled forward (voided, market halted, alert).
    pub max_failures: u32,
    /// A URL the settlement alerts are posted to as JSON.
    pub alert_webhook: Option<String>,
}

impl Default for ChainConfig {
    fn default() -> ChainConfig {
        ChainConfig {
            mode: ChainMode::None,
            block_time_ms: 1_000,
            anvil_port: 0,
            rpc_url: String::new(),
            tokens: BTreeMap::new(),
            confirmations: 1,
            batch_max_trades: 100,
            batch_window_ms: 200,
            max_in_flight: crate::settlement::config::DEFAULT_MAX_IN_FLIGHT,
            settlement_poll_ms: 100,
            receipt_timeout_ms: 30_000,
            max_failures: 5,
            alert_webhook: None,
        }
    }
}

/// A `[chain]` option that does not hold: the option's name and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainOptionError {
    pub option: String,
    pub message: String,
}

fn bad(option: impl Into<String>, message: impl Into<String>) -> ChainOptionError {
    ChainOptionError { option: option.into(), message: message.into() }
}

impl ChainConfig {
    /// Checks the section; `assets` are the symbols the configured markets trade, each of
    /// which needs a token in `rpc` mode.
    pub fn validate<'a>(
        &self,
        assets: impl IntoIterator<Item = &'a str>,
        exchange: Address,
    ) -> Result<(), ChainOptionError> {
        if !(1..=1_000).contains(&self.confirmations) {
            return Err(bad("chain.confirmations", "must be 1 to 1000"));
        }
        if self.batch_max_trades == 0 || self.batch_max_trades > crate::chain::batch::MAX_TRADES {
            return Err(bad("chain.batch_max_trades", "must be 1 to 65535"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > crate::settlement::config::MAX_IN_FLIGHT_LIMIT {
            return Err(bad("chain.max_in_flight", "must be 1 to 16"));
        }
        if self.settlement_poll_ms == 0 {
            return Err(bad("chain.settlement_poll_ms", "must be positive"));
        }
        if self.receipt_timeout_ms == 0 {
            return Err(bad("chain.receipt_timeout_ms", "must be positive"));
        }
        if self.max_failures == 0 {
            return Err(bad("chain.max_failures", "must be at least 1"));
        }
        if let Some(url) = &self.alert_webhook {
            http_url("chain.alert_webhook", url)?;
        }
        match self.mode {
            ChainMode::None => Ok(()),
            ChainMode::Anvil => {
                if self.block_time_ms != 0 && self.block_time_ms < 100 {
                    return Err(bad("chain.block_time_ms", "must be 0 (a block per transaction) or at least 100"));
                }
                if !self.rpc_url.is_empty() || !self.tokens.is_empty() {
                    return Err(bad(
                        "chain.mode",
                        "anvil deploys its own contract and tokens: drop chain.rpc_url and [chain.tokens], or use mode = \"rpc\"",
                    ));
                }
                Ok(())
            }
            ChainMode::Rpc => {
                http_url("chain.rpc_url", &self.rpc_url)?;
                if exchange == Address::ZERO {
                    return Err(bad("auth.exchange_address", "rpc mode needs the deployed exchange's address"));
                }
                for symbol in assets {
                    self.token(symbol)?;
                }
                for (symbol, text) in &self.tokens {
                    parse_address(&format!("chain.tokens.{symbol}"), text)?;
                }
                Ok(())
            }
        }
    }

    /// The token of `symbol` from `[chain.tokens]` (`rpc` mode).
    pub fn token(&self, symbol: &str) -> Result<Address, ChainOptionError> {
        let option = format!("chain.tokens.{symbol}");
        let text =
            self.tokens.get(symbol).ok_or_else(|| bad(&option, "missing: every traded asset needs its token"))?;
        parse_address(&option, text)
    }
}

fn http_url(option: &str, text: &str) -> Result<(), ChainOptionError> {
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(bad(option, format!("{text:?}: must be an http:// or https:// URL"))),
    }
}

fn parse_address(option: &str, text: &str) -> Result<Address, ChainOptionError> {
    let address: Address =
        text.trim().parse().map_err(|_| bad(option, format!("{text:?} is not 0x + 40 hex digits")))?;
    if address == Address::ZERO {
        return Err(bad(option, "must not be the zero address"));
    }
    Ok(address)
}

/// The keys an `rpc` chain needs: the settlement operator's (`HOB_OPERATOR_KEY_FILE` /
/// `HOB_OPERATOR_KEY`) and the admin's (`HOB_ADMIN_KEY_FILE` / `HOB_ADMIN_KEY`).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the settlement operator key ({KEY_FILE_ENV} or {KEY_ENV}): {0}")]
    Operator(crate::settlement::config::ConfigError),
    #[error("no admin key: set {ADMIN_KEY_FILE_ENV} (a file) or {ADMIN_KEY_ENV}")]
    NoAdmin,
    #[error("reading the admin key file {path}: {source}")]
    AdminFile { path: String, source: std::io::Error },
    #[error("the admin key: expected 0x + 64 hex digits")]
    AdminKey,
}

pub fn keys_from_env() -> Result<(OperatorKey, PrivateKeySigner), KeyError> {
    let operator = key_from_env().map_err(KeyError::Operator)?;
    let admin_text = match std::env::var_os(ADMIN_KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        Some(path) => std::fs::read_to_string(Path::new(&path))
            .map_err(|source| KeyError::AdminFile { path: Path::new(&path).display().to_string(), source })?,
        None => std::env::var(ADMIN_KEY_ENV).ok().filter(|t| !t.trim().is_empty()).ok_or(KeyError::NoAdmin)?,
    };
    Ok((operator, signer_from_hex(&admin_text).ok_or(KeyError::AdminKey)?))
}

/// A key from `0x` + 64 hex digits, surrounding whitespace ignored (as in a key file).
pub fn signer_from_hex(text: &str) -> Option<PrivateKeySigner> {
    let text = text.trim();
    text.strip_prefix("0x").unwrap_or(text).parse().ok()
}

#[cfg(test)]
#[path = "../../unit_tests/chain/config.rs"]
mod tests;
