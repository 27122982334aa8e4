//! `hob inspect <stream>`: a stream's events, each with a compact summary of its actor's
//! state after it (a market's best bid and ask and resting orders, a user's balances, an
//! operator's counts), for operators and auditors. The chain is verified on the way: a broken
//! link stops the listing with the stream and version named.

use serde_json::{json, Value};

use super::chain::ChainWalk;
use super::replay::{Actor, Replayer, StreamKind};
use super::report::Findings;
use super::AUDIT_PAGE;
use crate::domain::{MarketId, Side};
use crate::events::user_payload::{decode_user_event_bytes, ORDER_PLACED};
use crate::events::{EventStore, SealedEvent, StoreError, StreamId};

/// One event as `hob inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspected {
    pub version: u64,
    pub occurred_at: String,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Value,
    /// The actor's state after this event (`null` for a stream without one).
    pub state: Value,
}

impl Inspected {
    pub fn to_json(&self) -> Value {
        json!({
            "version": self.version,
            "occurred_at": self.occurred_at,
            "type": self.event_type,
            "schema_version": self.schema_version,
            "payload": self.payload,
            "state": self.state,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{stream} has no events")]
    Empty { stream: StreamId },
    #[error("{stream} v{version}: {reason}")]
    Broken { stream: StreamId, version: u64, reason: String },
}

/// Lists `stream` from version `from` on, handing each event to `out`. The state is rebuilt
/// from version 1 whatever `from` is. A market's spec is looked up in the user streams.
pub async fn inspect<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    mut out: impl FnMut(Inspected),
) -> Result<u64, InspectError> {
    let mut replayer = Replayer::default();
    if StreamKind::of(stream) == StreamKind::Market {
        if let Some(Ok(id)) = stream.as_str().strip_prefix("market:").map(MarketId::new) {
            find_spec(store, id, &mut replayer).await?;
        }
    }
    let mut findings = Findings::default();
    let mut actor = replayer.start(stream, &mut findings);
    let mut walk = ChainWalk::new(stream.clone());
    let mut shown = 0u64;
    let broken = |version: u64, reason: String| InspectError::Broken { stream: stream.clone(), version, reason };
    loop {
        let page = store.read_stream_sealed(stream, walk.last_version() + 1, AUDIT_PAGE).await?;
        let full = page.len() == AUDIT_PAGE;
        for e in &page {
            walk.next(e).map_err(|b| broken(b.version, b.reason))?;
            if replayer.fold_stored(stream, &mut actor, e, &mut findings).is_err() {
                let reason = findings.violations().last().map_or_else(String::new, |v| v.message.clone());
                return Err(broken(e.version, reason));
            }
            if e.version >= from {
                shown += 1;
                out(describe(e, &actor));
            }
        }
        if !full {
            break;
        }
    }
    if walk.last_version() == 0 {
        return Err(InspectError::Empty { stream: stream.clone() });
    }
    walk.finish(store.stream_version(stream).await?).map_err(|b| broken(b.version, b.reason))?;
    Ok(shown)
}

fn describe(e: &SealedEvent, actor: &Actor) -> Inspected {
    Inspected {
        version: e.version,
        occurred_at: e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        payload: serde_json::from_slice(&e.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.payload).into())),
        state: summary(actor),
    }
}

/// The compact state summary shown after each event.
pub fn summary(actor: &Actor) -> Value {
    match actor {
        Actor::Market(m) => {
            let book = m.market.book();
            json!({
                "best_bid": book.best_price(Side::Buy).map(|p| p.0),
                "best_ask": book.best_price(Side::Sell).map(|p| p.0),
                "resting_orders": book.len(),
                "next_trade": m.market.next_trade_id().0,
                "halted": m.market.status() == crate::domain::MarketStatus::Halted,
            })
        }
        Actor::User(state) => {
            let balances: serde_json::Map<String, Value> = state
                .account()
                .balances()
                .map(|(asset, b)| {
                    let b = json!({
                        "available": b.available.0.to_string(),
                        "locked": b.locked.0.to_string(),
                        "settling": b.settling.0.to_string(),
                    });
                    (asset.to_string(), b)
                })
                .collect();
            json!({ "balances": balances, "open_orders": state.account().open_orders() })
        }
        Actor::Operator(state) => {
            let s = state.stats();
            json!({
                "pending_trades": state.pending().count(),
                "settled_batches": s.settled_batches,
                "settled_trades": s.settled_trades,
                "voided_trades": s.voided_trades,
                "failed_batches": s.failed_batches,
            })
        }
        Actor::None => Value::Null,
    }
}

/// Finds `market`'s spec in the first user `OrderPlaced` that names it.
async fn find_spec<S: EventStore>(store: &S, market: MarketId, replayer: &mut Replayer) -> Result<(), StoreError> {
    let needle = format!("\"{market}\"");
    for stream in store.list_streams().await? {
        if StreamKind::of(&stream) != StreamKind::User {
            continue;
        }
        let mut from = 1;
        loop {
            let page = store.read_stream_raw(&stream, from, AUDIT_PAGE).await?;
            for e in &page {
                // A cheap text test first: most events of most users are about other markets.
                if e.event_type != ORDER_PLACED || !contains(&e.payload, needle.as_bytes()) {
                    continue;
                }
                if let Ok(crate::domain::UserEvent::OrderPlaced { spec, .. }) =
                    decode_user_event_bytes(&e.event_type, e.schema_version, &e.payload)
                {
                    if spec.id == market {
                        replayer.specs.insert(market, spec);
                        return Ok(());
                    }
                }
            }
            if page.len() < AUDIT_PAGE {
                break;
            }
            from += page.len() as u64;
        }
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
