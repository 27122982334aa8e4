//! The `Chain` port over JSON-RPC with alloy: anvil in tests, BSC (or any EVM node) in
//! production. A thin translation: the provider has no fillers, since the operator signs
//! complete transactions itself, and node errors are read into `ChainError`'s three kinds.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::transports::TransportError;

use super::chain::{already_submitted, CallRequest, Chain, ChainError, NonceCounts, Sent, TxHash, TxReceipt};

#[derive(Clone, Debug)]
pub struct RpcChain {
    provider: DynProvider,
}

impl RpcChain {
    /// A node at `url` (`http://` or `https://`).
    pub fn connect_http(url: &str) -> Result<RpcChain, ChainError> {
        let url = url.parse().map_err(|e| ChainError::Transport(format!("node url {url:?}: {e}")))?;
        Ok(RpcChain::new(ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased()))
    }

    pub fn new(provider: DynProvider) -> RpcChain {
        RpcChain { provider }
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }
}

/// A node's error: a revert (with its data), a refusal, or a transport failure.
fn classify(e: TransportError) -> ChainError {
    match e.as_error_resp() {
        Some(payload) => match payload.as_revert_data() {
            Some(data) => ChainError::Reverted { data },
            None if payload.message.contains("revert") => ChainError::Reverted { data: Bytes::new() },
            None => ChainError::Refused(payload.message.to_string()),
        },
        None => ChainError::Transport(e.to_string()),
    }
}

fn request(call: &CallRequest) -> TransactionRequest {
    TransactionRequest::default().with_from(call.from).with_to(call.to).with_input(call.data.clone())
}

impl Chain for RpcChain {
    async fn chain_id(&self) -> Result<u64, ChainError> {
        self.provider.get_chain_id().await.map_err(classify)
    }

    async fn nonce_counts(&self, address: Address) -> Result<NonceCounts, ChainError> {
        let latest = self.provider.get_transaction_count(address).latest().await.map_err(classify)?;
        let pending = self.provider.get_transaction_count(address).pending().await.map_err(classify)?;
        Ok(NonceCounts { latest, pending })
    }

    async fn gas_price(&self) -> Result<u128, ChainError> {
        self.provider.get_gas_price().await.map_err(classify)
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(classify)
    }

    async fn send_raw(&self, raw: Bytes) -> Result<Sent, ChainError> {
        match self.provider.send_raw_transaction(&raw).await {
            Ok(_) => Ok(Sent::Accepted),
            Err(e) => match classify(e) {
                ChainError::Refused(message) => match already_submitted(&message) {
                    Some(kind) => Ok(Sent::AlreadySubmitted(kind)),
                    None => Err(ChainError::Refused(message)),
                },
                other => Err(other),
            },
        }
    }

    async fn receipt(&self, hash: TxHash) -> Result<Option<TxReceipt>, ChainError> {
        let receipt = self.provider.get_transaction_receipt(hash).await.map_err(classify)?;
        Ok(receipt.and_then(|r| {
            // A receipt without a block is a pending one (some nodes serve those): not mined.
            let block = r.block_number?;
            Some(TxReceipt { hash, block, success: r.status(), gas_used: r.gas_used })
        }))
    }

    async fn is_known(&self, hash: TxHash) -> Result<bool, ChainError> {
        Ok(self.provider.get_transaction_by_hash(hash).await.map_err(classify)?.is_some())
    }

    async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, ChainError> {
        self.provider.estimate_gas(request(call)).await.map_err(classify)
    }

    async fn call(&self, call: &CallRequest) -> Result<Bytes, ChainError> {
        self.provider.call(request(call)).await.map_err(classify)
    }
}
