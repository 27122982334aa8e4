//! The `DepositLogs` port: the chain's head and the exchange's `Deposited` logs over a block
//! range, what the chain watcher reads. The adapter is alloy's JSON-RPC (`RpcChain`), the same
//! node connection settlement uses.

use std::future::Future;

use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

use super::contract::HobExchange;
use super::deposits::DepositLog;
use crate::domain::{DepositId, UserId};
use crate::settlement::chain::ChainError;
use crate::settlement::RpcChain;

pub trait DepositLogs: Send + Sync {
    /// The latest block's number.
    fn head(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// Every `Deposited` log of `exchange` in blocks `from..=to`, in chain order.
    fn deposits(
        &self,
        exchange: Address,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<DepositLog>, ChainError>> + Send;
}

impl DepositLogs for RpcChain {
    async fn head(&self) -> Result<u64, ChainError> {
        self.provider().get_block_number().await.map_err(|e| ChainError::Transport(e.to_string()))
    }

    async fn deposits(&self, exchange: Address, from: u64, to: u64) -> Result<Vec<DepositLog>, ChainError> {
        let filter = Filter::new()
            .address(exchange)
            .event_signature(HobExchange::Deposited::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self.provider().get_logs(&filter).await.map_err(|e| ChainError::Transport(e.to_string()))?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            // Logs of a pending block carry no position; a mined range never has them.
            let (Some(block), Some(tx), Some(log_index)) = (log.block_number, log.transaction_hash, log.log_index)
            else {
                continue;
            };
            let decoded = HobExchange::Deposited::decode_log(&log.inner)
                .map_err(|e| ChainError::Transport(format!("a Deposited log does not decode: {e}")))?;
            out.push(DepositLog {
                block,
                deposit: DepositId { tx: tx.0, log_index },
                user: UserId(decoded.user.0 .0),
                token: decoded.token,
                amount: decoded.amount,
            });
        }
        Ok(out)
    }
}
