//! The chain side of a running server: the connection, the settlement operator and the admin
//! operator `hob serve` started for it, and the start-up registration of the configured
//! markets (through the admin queue, like any admin command).

use std::sync::Arc;

use crate::actors::admin_operator::{AdminCommand, AdminError, AdminOperatorHandle};
use crate::actors::chain_watcher::ChainWatcherHandle;
use crate::actors::settlement::SettlementHandle;
use crate::api::state::Events;
use crate::chain::admin::OnChainMarket;
use crate::chain::link::ChainLink;
use crate::config::MarketDef;
use crate::settlement::RpcChain;

/// A configured market as the contract must hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMarket {
    pub market: String,
    pub chain_market_id: u32,
    pub grid: OnChainMarket,
}

pub struct ChainRuntime {
    pub link: ChainLink,
    pub settlement: Arc<SettlementHandle<Events, RpcChain>>,
    /// Credits confirmed deposits to their users.
    pub watcher: ChainWatcherHandle<Events, RpcChain>,
    pub admin: AdminOperatorHandle<Events>,
    pub markets: Vec<ChainMarket>,
}

/// Each configured market's on-chain grid: its assets' tokens, its lot and tick.
pub fn chain_markets(link: &ChainLink, defs: &[MarketDef]) -> Result<Vec<ChainMarket>, String> {
    defs.iter()
        .map(|d| {
            let token = |asset| link.tokens.get(&asset).copied().ok_or_else(|| format!("no token for {asset}"));
            Ok(ChainMarket {
                market: d.spec.id.to_string(),
                chain_market_id: d.chain_market_id,
                grid: OnChainMarket {
                    base: token(d.spec.base)?,
                    quote: token(d.spec.quote)?,
                    base_lot: d.spec.base_lot.0,
                    quote_tick: d.spec.quote_tick.0,
                },
            })
        })
        .collect()
}

impl ChainRuntime {
    /// Issues a registration for every configured market the contract does not hold with
    /// its grid (a different grid ends as a `MarketConflict` alert: markets never change).
    /// Returns how many were issued. A node that does not answer gets them all: the admin
    /// operator reads before it sends.
    pub async fn register_markets(&self) -> Result<usize, AdminError> {
        let mut issued = 0;
        for m in &self.markets {
            if let Ok(Some(on_chain)) = self.link.admin.market(m.chain_market_id).await {
                if on_chain == m.grid {
                    continue;
                }
            }
            self.admin.issue(&AdminCommand::register(m.market.clone(), m.chain_market_id, m.grid)).await?;
            issued += 1;
        }
        Ok(issued)
    }

    /// Markets not (yet) registered on-chain with their grid, or why the node was not read.
    pub async fn unregistered(&self) -> Result<Vec<String>, String> {
        let mut missing = Vec::new();
        for m in &self.markets {
            match self.link.admin.market(m.chain_market_id).await {
                Ok(Some(on_chain)) if on_chain == m.grid => {}
                Ok(_) => missing.push(m.market.clone()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(missing)
    }
}
