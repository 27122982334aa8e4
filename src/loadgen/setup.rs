//! Before a run, over REST: what the server signs under (EIP-712 domain, the market's on-chain
//! id and fee bound), the market's grid, test funds from the dev faucet, and a session token
//! per trader from a signed login challenge. The same calls a wallet client makes, so they
//! are the trading client's (`crate::client::rest`).

pub use crate::client::rest::{MarketTerms, Rest};
