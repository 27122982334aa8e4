//! The server's edge: REST, WebSocket, the operator API and metrics (actix-web). It turns
//! decimal text into integer terms and back (`catalog`), authenticates callers (`auth`, with
//! login sessions and agent keys in `sessions`), checks signed orders (`signing`), limits
//! them (`rate_limit`), hands commands to the engine (`trading`) and serves reads
//! from live feeds that follow the event streams (`feed`), never from the matching actors.
//! The operator console (`console`) is a static page, a client of the operator API.

pub mod amounts;
pub mod auth;
pub mod catalog;
pub mod chain;
pub mod console;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod rate_limit;
pub mod readiness;
pub mod request_id;
pub mod rest;
pub mod server;
pub mod sessions;
pub mod settlement_probe;
pub mod signing;
pub mod state;
pub mod trading;
pub mod wire;
pub mod ws;

pub use error::{ApiError, ErrorBody};
pub use server::{RunningServer, ServerError};
