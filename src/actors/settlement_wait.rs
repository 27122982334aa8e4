//! `confirm-before-commit`: the original system's way, kept so the two can be compared
//! (BENCHMARKS.md). A market in this mode takes one command at a time, and when the command
//! traded, the next waits until every one of its trades is settled on-chain (or voided) in
//! the settlement operator's stream. Matching no longer outruns the chain: the market's rate
//! is bounded by block time, which is exactly what the default mode removes.

use std::collections::BTreeSet;
use std::time::Duration;

use super::deps::{ActorDeps, ActorError};
use super::market::MarketReply;
use crate::domain::{MarketEvent, MarketId};
use crate::events::{EventStore, StreamId};
use crate::settlement::payload::decode_operator_event;
use crate::settlement::trades::TradeKey;
use crate::settlement::OperatorEvent;

/// How often the operator's stream is read while a market waits.
const POLL: Duration = Duration::from_millis(20);

fn operator_stream<S>(deps: &ActorDeps<S>) -> Result<StreamId, ActorError> {
    StreamId::parse(&deps.settlement_group)
        .map_err(|e| ActorError::Mailbox(format!("settlement group {:?}: {e}", deps.settlement_group)))
}

/// The operator stream's version before a command: its trades settle after it.
pub async fn position<S: EventStore>(deps: &ActorDeps<S>) -> Result<u64, ActorError> {
    Ok(deps.store.stream_version(&operator_stream(deps)?).await?)
}

/// The trades a command's replies report.
pub fn trades_of(market: MarketId, replies: &[MarketReply]) -> BTreeSet<TradeKey> {
    replies
        .iter()
        .flat_map(|r| &r.events)
        .filter_map(|e| match e {
            MarketEvent::Traded(t) => Some(TradeKey { market, trade: t.id }),
            _ => None,
        })
        .collect()
}

/// Waits until every trade in `waiting` is settled or voided by an operator event after
/// version `from`.
pub async fn until_settled<S: EventStore>(
    deps: &ActorDeps<S>,
    mut from: u64,
    mut waiting: BTreeSet<TradeKey>,
) -> Result<(), ActorError> {
    let stream = operator_stream(deps)?;
    while !waiting.is_empty() {
        for stored in deps.store.read_stream(&stream, from + 1).await? {
            from = stored.version;
            // Other operator events (nonces, batches opening) and unknown ones say nothing here.
            match decode_operator_event(&stored.event_type, stored.schema_version, stored.payload) {
                Ok(OperatorEvent::SettlementConfirmed { trades, .. }) => {
                    trades.iter().for_each(|k| {
                        waiting.remove(k);
                    });
                }
                Ok(OperatorEvent::TradeVoided { key, .. }) => {
                    waiting.remove(&key);
                }
                _ => {}
            }
        }
        if !waiting.is_empty() {
            actix_rt::time::sleep(POLL).await;
        }
    }
    Ok(())
}
