//! What must hold once settlement has quiesced on the simulated chain: every check of the
//! auditor over the stored events (`audit::audit`: hash chains, replay, conservation, no
//! overfill, book not crossed, fills match trades, every settled trade in exactly one
//! confirmed batch, voided trades compensated), every trade either settled or voided, and the
//! chain agreeing with the store: each user's vault balance equals its off-chain settled
//! balance (the auditor's definition, `audit::settled`) and the fee collector holds exactly
//! the fees of the settled trades.

use std::collections::{BTreeMap, BTreeSet};

use super::runner::World;
use crate::actors::is_bookkeeping;
use crate::domain::{MarketEvent, TradeId};
use crate::events::{decode_market_event, StreamId};
use crate::settlement::payload::decode_operator_event;
use crate::settlement::{OperatorEvent, TradeKey};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs the checks above; returns (settled, voided) trade counts.
pub(super) async fn check(world: &World) -> Result<(u64, u64), String> {
    let Some(chain) = &world.chain else { return Ok((0, 0)) };
    let report = crate::audit::audit(world.disk.as_ref(), |_| {}).await.map_err(|e| format!("audit: {e}"))?;
    if !report.findings.ok() {
        let shown: Vec<String> = report
            .findings
            .violations()
            .iter()
            .take(5)
            .map(|v| format!("{} {:?} v{:?}: {}", v.check.name(), v.stream, v.version, v.message))
            .collect();
        return Err(format!(
            "the audit found {} violations:\n{}",
            report.findings.violations().len(),
            shown.join("\n")
        ));
    }
    ensure!(report.settled_errors.is_empty(), "settled balances: {:?}", report.settled_errors);

    // What the operator confirmed and voided, and what the market traded.
    let events = world.disk.all_events();
    let operator = StreamId::operator(chain.operator_user());
    let (mut confirmed, mut voided) = (BTreeSet::new(), BTreeSet::new());
    for e in events.iter().filter(|e| e.stream == operator && !is_bookkeeping(&e.event_type)) {
        let event = decode_operator_event(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| format!("{} v{}: {err}", e.stream, e.version))?;
        match event {
            OperatorEvent::SettlementConfirmed { trades, .. } => confirmed.extend(trades),
            OperatorEvent::TradeVoided { key, .. } => {
                voided.insert(key);
            }
            _ => {}
        }
    }
    let market = StreamId::market(world.spec.id);
    let mut fees: BTreeMap<TradeId, u128> = BTreeMap::new();
    for e in events.iter().filter(|e| e.stream == market && !is_bookkeeping(&e.event_type)) {
        let event = decode_market_event(&e.event_type, e.schema_version, e.payload.clone())
            .map_err(|err| format!("{} v{}: {err}", e.stream, e.version))?;
        if let MarketEvent::Traded(t) = event {
            fees.insert(t.id, t.maker_fee.0 + t.taker_fee.0);
        }
    }
    for trade in fees.keys() {
        let key = TradeKey { market: world.spec.id, trade: *trade };
        ensure!(
            confirmed.contains(&key) || voided.contains(&key),
            "trade {key} is neither settled nor voided after quiescence"
        );
    }

    // On-chain = off-chain.
    let onchain = chain.user_vaults();
    for (&(user, asset), &expected) in &report.settled {
        let actual = onchain.get(&(user, asset)).copied().unwrap_or(0);
        ensure!(
            i128::try_from(actual).ok() == Some(expected),
            "user:{user} {asset}: on-chain vault balance {actual}, off-chain settled balance {expected}"
        );
    }
    for ((user, asset), amount) in &onchain {
        ensure!(
            report.settled.contains_key(&(*user, *asset)),
            "user:{user} {asset}: {amount} in the vault, nothing settled off-chain"
        );
    }
    let settled_fees: u128 = confirmed.iter().filter_map(|k| fees.get(&k.trade)).sum();
    let collected = chain.fee_collector_balance(world.spec.quote);
    ensure!(
        collected == settled_fees,
        "the fee collector holds {collected}, the settled trades' fees are {settled_fees}"
    );
    Ok((confirmed.len() as u64, voided.len() as u64))
}
