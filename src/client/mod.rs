//! A trading client of hob's public API, for programs that trade against a running
//! `hob serve` (`examples/trader.rs`, `hob loadgen`): REST (`rest`: the signing domain, a
//! market's grid, the chain, login), signed orders (`orders`), the WebSocket (`socket`,
//! `messages`: login, subscriptions, order entry, the pushes), the exchange contract as a
//! trader sees it (`vault`: test tokens, deposits, vault balances, which batch settled an
//! order) and anvil's well-known dev keys (`dev_accounts`).
//!
//! It speaks only the documented wire protocol (README.md "Signing", docs/websocket.md) and
//! reuses the server's wire types for what it reads, so a protocol change breaks it at compile
//! time rather than at run time.

pub mod dev_accounts;
pub mod messages;
pub mod orders;
pub mod rest;
pub mod socket;
pub mod vault;

pub use messages::{Push, ServerMessage};
pub use orders::LimitOrder;
pub use rest::{MarketTerms, Rest};
pub use socket::TradingSocket;
pub use vault::{Deployment, Settlement};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{path}: the server answered {status}: {body}")]
    Refused { path: String, status: u16, body: String },
    #[error("unexpected answer from the server: {0}")]
    Server(String),
    #[error("the server has no market {0}")]
    UnknownMarket(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The server answered a WebSocket request with an error.
    #[error("{op} refused: {code}: {message}")]
    Rejected { op: String, code: String, message: String },
    #[error("chain: {0}")]
    Chain(String),
    #[error("{0}")]
    Invalid(String),
}
