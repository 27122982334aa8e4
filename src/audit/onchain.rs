//! `hob audit --rpc`: compares each user's vault balance on the exchange contract
//! (`balances(user, token)`) with its off-chain settled balance (`settled.rs` says exactly
//! what that is). Assets are mapped to token contracts by `--token SYMBOL=0xaddress`; an asset
//! without a mapping is reported, not skipped silently.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};

use super::report::{Check, Report};
use super::settled::SETTLED_DEFINITION;
use crate::chain::contract::HobExchange;
use crate::domain::AssetId;

/// Where and what to compare.
pub struct OnChain {
    rpc: String,
    exchange: Address,
    tokens: BTreeMap<AssetId, Address>,
}

impl OnChain {
    pub fn parse(rpc: &str, exchange: &str, tokens: &[String]) -> Result<OnChain, String> {
        let exchange: Address = exchange.parse().map_err(|e| format!("--exchange {exchange:?}: {e}"))?;
        let mut map = BTreeMap::new();
        for t in tokens {
            let (symbol, address) =
                t.split_once('=').ok_or_else(|| format!("--token {t:?}: expected SYMBOL=0xaddress"))?;
            let asset = AssetId::new(symbol).map_err(|e| format!("--token {t:?}: {e}"))?;
            let address: Address = address.parse().map_err(|e| format!("--token {t:?}: {e}"))?;
            map.insert(asset, address);
        }
        Ok(OnChain { rpc: rpc.to_owned(), exchange, tokens: map })
    }

    /// Adds the `on_chain_balances` check to `report`; `Err` when the node cannot be asked.
    pub async fn compare(&self, report: &mut Report) -> Result<(), String> {
        let url = self.rpc.parse().map_err(|e| format!("--rpc {:?}: {e}", self.rpc))?;
        let provider: DynProvider = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        provider.get_chain_id().await.map_err(|e| format!("{}: {e}", self.rpc))?;
        let exchange = HobExchange::new(self.exchange, provider);
        report.settled_definition = Some(SETTLED_DEFINITION);
        let check = Check::OnChainBalances;
        let findings = &mut report.findings;
        for error in &report.settled_errors {
            findings.violate(check, None, None, error.clone());
        }
        findings.count(check, 0);
        for (&(user, asset), &expected) in &report.settled {
            let stream = format!("user:{user}");
            let Some(&token) = self.tokens.get(&asset) else {
                let msg = format!("asset {asset} has no --token mapping; its vault balance was not compared");
                findings.violate(check, Some(&stream), None, msg);
                continue;
            };
            findings.count(check, 1);
            let onchain = exchange
                .balances(Address::from(user.0), token)
                .call()
                .await
                .map_err(|e| format!("balances({user}, {token}) on {}: {e}", self.rpc))?;
            let matches = u128::try_from(expected).ok().map(U256::from) == Some(onchain);
            if !matches {
                let msg = format!("{asset}: on-chain vault balance {onchain}, off-chain settled balance {expected}");
                findings.violate(check, Some(&stream), None, msg);
            }
        }
        Ok(())
    }
}
