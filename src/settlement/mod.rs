//! The settlement pipeline's parts outside the actor (`actors::settlement`): pure state and
//! policy, the `Chain` port and its adapters, and the wire formats.
//!
//! - `auth`: the text of a user's signed order (`domain::OrderAuth`) and back.
//! - `trades`: a matched trade waiting to settle; its on-chain form; each party's share.
//! - `records`: queue records in (trades from markets) and out (outcomes to users).
//! - `state`: the operator's state, a fold of its stream, with its deciders.
//! - `nonce`: the wallet's nonces, a pure state machine inside the state.
//! - `policy`: batching, gas, price, stuck nonces, backoff.
//! - `verdict`: what a contract refusal means for a batch.
//! - `payload`: the operator events' wire form.
//! - `chain`: the `Chain` port; `rpc` (alloy JSON-RPC) and `sim` (deterministic) adapters;
//!   `conformance`, the suite both pass; `sim_vault`, the simulated exchange's money.
//! - `tx`: the operator's key and its signed transactions.
//! - `config`, `alert`: options and alerts.

pub mod alert;
pub mod auth;
pub mod chain;
pub mod config;
pub mod conformance;
pub mod nonce;
pub mod payload;
pub mod policy;
pub mod records;
pub mod rpc;
pub mod sim;
mod sim_vault;
pub mod state;
pub mod trades;
pub mod tx;
pub mod verdict;
pub mod withdrawals;

pub use auth::{decode_order_auth, encode_order_auth, AuthError};
pub use chain::{Chain, ChainError, NonceCounts, Sent, TxReceipt};
pub use config::SettlementConfig;
pub use rpc::RpcChain;
pub use sim::SimChain;
pub use state::{OperatorEvent, OperatorState, VoidReason};
pub use trades::{QueuedTrade, TradeKey};
pub use tx::OperatorKey;
