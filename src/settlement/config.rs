//! The settlement operator's options. Defaults suit BSC; tests shorten the times. The
//! operator key comes from a file or the environment and is never logged (`OperatorKey`'s
//! `Debug` shows the address only).

use std::path::Path;
use std::time::Duration;

use alloy::primitives::Address;

use super::policy::{Backoff, BatchPolicy};
use super::tx::{OperatorKey, TxError};

/// The operator key, `0x` + 64 hex digits.
pub const KEY_ENV: &str = "HOB_OPERATOR_KEY";
/// A file holding the operator key (preferred: environments leak more easily than files).
pub const KEY_FILE_ENV: &str = "HOB_OPERATOR_KEY_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no operator key: set {KEY_FILE_ENV} (a file) or {KEY_ENV}")]
    NoKey,
    #[error("reading the operator key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error(transparent)]
    Key(#[from] TxError),
    #[error("option {option}: {message}")]
    Invalid { option: &'static str, message: String },
}

/// Batches in flight by default: with 1 s blocks and a 200 ms window, four cover a block's
/// worth of windows, and a failure re-sends at most three batches behind it.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// The most batches in flight the operator accepts: each is a pending transaction, and nodes
/// keep only so many queued per sender (geth: 16 executable by default).
pub const MAX_IN_FLIGHT_LIMIT: usize = 16;

#[derive(Clone, Debug)]
pub struct SettlementConfig {
    /// The operator wallet: signs every settlement transaction, pays its gas.
    pub key: OperatorKey,
    /// The `HobExchange` contract.
    pub exchange: Address,
    /// The chain the operator must be talking to; checked at start.
    pub chain_id: u64,
    pub batch: BatchPolicy,
    /// Most batches in flight at once (opened and not yet confirmed or failed), each at its
    /// own consecutive nonce and batch index. 1 waits for each batch's block before the next
    /// is sent.
    pub max_in_flight: usize,
    /// How often the operator looks at its transactions and its queue.
    pub poll_interval: Duration,
    /// How long a transaction may stay unmined before it is replaced with a higher fee.
    pub receipt_timeout: Duration,
    /// Blocks a transaction must be buried under (its own included) to count as final.
    pub confirmations: u64,
    /// Failures of one batch before it is given up (roll forward).
    pub max_failures: u32,
    /// Transactions at one nonce without any mined before the nonce counts as stuck.
    pub stuck_after_attempts: u32,
    pub backoff: Backoff,
    /// The most the operator pays per gas, in wei.
    pub max_gas_price_wei: u128,
    /// Posted a JSON alert on every halt-worthy failure, if set.
    pub alert_webhook: Option<String>,
}

impl SettlementConfig {
    /// The defaults for `key` settling on `exchange` on chain `chain_id`.
    pub fn new(key: OperatorKey, exchange: Address, chain_id: u64) -> SettlementConfig {
        SettlementConfig {
            key,
            exchange,
            chain_id,
            batch: BatchPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            poll_interval: Duration::from_millis(100),
            receipt_timeout: Duration::from_secs(30),
            confirmations: 1,
            max_failures: 5,
            stuck_after_attempts: 3,
            backoff: Backoff::default(),
            // 1,000 gwei: far above BSC's usual 1-5 gwei, a bound on a runaway bump loop.
            max_gas_price_wei: 1_000_000_000_000,
            alert_webhook: None,
        }
    }

    /// Checks the options against each other and their limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, message: &str| Err(ConfigError::Invalid { option, message: message.to_owned() });
        if self.batch.max_trades == 0 || self.batch.max_trades > crate::chain::batch::MAX_TRADES {
            return invalid("batch.max_trades", "must be 1 to 65535");
        }
        if self.batch.max_gas == 0 || self.batch.max_gas > super::policy::TX_GAS_CAP {
            return invalid("batch.max_gas", "must be positive and at most 16,777,216");
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT_LIMIT {
            return invalid("max_in_flight", "must be 1 to 16");
        }
        if self.confirmations == 0 || self.confirmations > 1_000 {
            return invalid("confirmations", "must be 1 to 1000");
        }
        if self.max_failures == 0 {
            return invalid("max_failures", "must be at least 1");
        }
        if self.poll_interval.is_zero() || self.receipt_timeout.is_zero() {
            return invalid("poll_interval / receipt_timeout", "must be positive");
        }
        if self.backoff.base_ms == 0 || self.backoff.base_ms > self.backoff.max_ms {
            return invalid("backoff", "base must be positive and at most max");
        }
        Ok(())
    }
}

/// The operator key from `$HOB_OPERATOR_KEY_FILE`, else `$HOB_OPERATOR_KEY`.
pub fn key_from_env() -> Result<OperatorKey, ConfigError> {
    if let Some(path) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        return key_from_file(Path::new(&path));
    }
    match std::env::var(KEY_ENV) {
        Ok(text) if !text.trim().is_empty() => Ok(OperatorKey::from_hex(&text)?),
        _ => Err(ConfigError::NoKey),
    }
}

pub fn key_from_file(path: &Path) -> Result<OperatorKey, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::KeyFile { path: path.display().to_string(), source })?;
    Ok(OperatorKey::from_hex(&text)?)
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/config.rs"]
mod tests;
