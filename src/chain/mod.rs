//! On-chain settlement: the contract's bindings, the EIP-712 messages shared with it, the
//! packed settlement batch, and where the local chain tools live. Everything here but the
//! bindings' RPC calls is pure; the node is reached only through alloy providers passed in.
//!
//! - `eip712`: the signed messages (`Order`, `Withdrawal`, `AgentAuthorization`), their
//!   domain, hashing, signing and signer recovery, and the JSON wallets sign.
//! - `order`: the signed order's codes and conversions to and from the domain's `NewOrder`.
//! - `batch`: the packed calldata of `settleBatch`.
//! - `contract`: `sol!` bindings over `contracts/out/*.json` and revert classification.
//! - `tools`: the anvil binary `make tools` installs.
//! - `deposits`: the chain watcher's state and decisions (pure), its events, and the
//!   user-queue transfer record; `deposit_logs`: the port it reads `Deposited` logs through.
//! - `config`: the `[chain]` section; `link`: the connection `hob serve` resolves from it
//!   (`devnet`: a local anvil with the contract deployed); `admin`: the exchange's admin calls.

pub mod admin;
pub mod batch;
pub mod config;
pub mod contract;
pub mod deposit_logs;
pub mod deposits;
pub mod devnet;
pub mod eip712;
pub mod link;
pub mod order;
pub mod recover;
pub mod tools;
