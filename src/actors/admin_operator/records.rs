//! The admin queue's records and the admin operator's events, as stored.
//!
//! An operator command is stored as `admin.CommandIssued` in the `admin` stream with an outbox
//! record to the admin queue carrying the same `AdminCommand`; the admin operator records what
//! it did about each in its own stream (`admin-operator:{0xaddr}`) as one `AdminOutcome`.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::chain::admin::OnChainMarket;

/// The event in the `admin` stream that carries a command to the admin queue.
pub const COMMAND_ISSUED: &str = "admin.CommandIssued";
pub const SCHEMA_VERSION: u16 = 1;

/// What the admin operator is asked to do on-chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminCommand {
    /// Register a market; already registered with the same parameters is success.
    RegisterMarket {
        market: String,
        chain_market_id: u32,
        base_token: Address,
        quote_token: Address,
        /// Decimal strings: the contract's `uint128`s do not fit JSON numbers.
        base_lot: String,
        quote_tick: String,
    },
    Pause,
    Unpause,
}

impl AdminCommand {
    pub fn register(market: String, chain_market_id: u32, grid: OnChainMarket) -> AdminCommand {
        AdminCommand::RegisterMarket {
            market,
            chain_market_id,
            base_token: grid.base,
            quote_token: grid.quote,
            base_lot: grid.base_lot.to_string(),
            quote_tick: grid.quote_tick.to_string(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::RegisterMarket { .. } => "register_market",
            AdminCommand::Pause => "pause",
            AdminCommand::Unpause => "unpause",
        }
    }
}

/// A queued command that does not read.
#[derive(Debug, thiserror::Error)]
#[error("admin record: {0}")]
pub struct RecordError(pub String);

pub fn decode_command(body: &serde_json::Value) -> Result<AdminCommand, RecordError> {
    serde_json::from_value(body.clone()).map_err(|e| RecordError(e.to_string()))
}

/// The grid a register command asks for.
pub fn requested_grid(
    base_token: Address,
    quote_token: Address,
    base_lot: &str,
    quote_tick: &str,
) -> Result<OnChainMarket, RecordError> {
    let number =
        |name: &str, text: &str| text.parse::<u128>().map_err(|e| RecordError(format!("{name} {text:?}: {e}")));
    Ok(OnChainMarket {
        base: base_token,
        quote: quote_token,
        base_lot: number("base_lot", base_lot)?,
        quote_tick: number("quote_tick", quote_tick)?,
    })
}

/// A market's grid as stored in an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridRecord {
    pub base: Address,
    pub quote: Address,
    pub base_lot: String,
    pub quote_tick: String,
}

impl From<OnChainMarket> for GridRecord {
    fn from(m: OnChainMarket) -> GridRecord {
        GridRecord {
            base: m.base,
            quote: m.quote,
            base_lot: m.base_lot.to_string(),
            quote_tick: m.quote_tick.to_string(),
        }
    }
}

/// What the admin operator did about one command: one event in its stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AdminOutcome {
    MarketRegistered {
        market: String,
        chain_market_id: u32,
        tx: B256,
    },
    /// Already on-chain with exactly the requested parameters: nothing sent.
    MarketAlreadyRegistered {
        market: String,
        chain_market_id: u32,
    },
    /// On-chain under that id with other parameters: nothing sent, an alert raised. A
    /// registered market never changes (signed orders refer to it by id).
    MarketConflict {
        market: String,
        chain_market_id: u32,
        requested: GridRecord,
        on_chain: GridRecord,
    },
    /// `tx` is absent when the contract already was in that state.
    Paused {
        tx: Option<B256>,
    },
    Unpaused {
        tx: Option<B256>,
    },
    /// The contract reverted the command (e.g. the admin key is not the contract's admin).
    Refused {
        command: String,
        reason: String,
    },
}

impl AdminOutcome {
    /// The stored event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            AdminOutcome::MarketRegistered { .. } => "admin.MarketRegistered",
            AdminOutcome::MarketAlreadyRegistered { .. } => "admin.MarketAlreadyRegistered",
            AdminOutcome::MarketConflict { .. } => "admin.MarketConflict",
            AdminOutcome::Paused { .. } => "admin.Paused",
            AdminOutcome::Unpaused { .. } => "admin.Unpaused",
            AdminOutcome::Refused { .. } => "admin.CommandRefused",
        }
    }

    /// Whether the command did what it asked.
    pub fn succeeded(&self) -> bool {
        !matches!(self, AdminOutcome::MarketConflict { .. } | AdminOutcome::Refused { .. })
    }
}

#[cfg(test)]
#[path = "../../../unit_tests/actors/admin_operator/records.rs"]
mod tests;
