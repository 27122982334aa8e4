//! `hob audit`: proves from a store alone that nothing was lost, edited or invented. Reads
//! every stream through the `EventStore` port (any adapter), verifies each hash chain and
//! version sequence (`chain.rs`), replays every actor with the domain's folds (`replay.rs`),
//! checks the cross-stream invariants of ARCHITECTURE.md (`invariants.rs`), and reports
//! (`report.rs`). `inspect.rs` is `hob inspect`: one stream, event by event, with the state
//! after each.

pub mod chain;
pub mod cli;
pub mod facts;
pub mod inspect;
pub mod invariants;
pub mod onchain;
pub mod replay;
pub mod report;
pub mod settled;

pub use report::{Check, Findings, Report, Violation};

use chain::ChainWalk;
use replay::{Actor, Replayer, StreamKind};

use crate::events::{EventStore, SealedEvent, StoreError, StreamId};

/// Events read per page: bounded memory however long a stream, large enough that the
/// per-query cost vanishes.
pub const AUDIT_PAGE: usize = 16_384;

/// How far the audit is, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub streams_done: u64,
    pub streams_total: u64,
    pub events: u64,
}

/// Audits every stream of `store`. Violations (tampering included: a row the store calls
/// corrupt is a violation naming stream and version) are in the report; `Err` is only for a
/// store that cannot be read at all.
pub async fn audit<S: EventStore>(store: &S, mut progress: impl FnMut(Progress)) -> Result<Report, StoreError> {
    let mut streams = store.list_streams().await?;
    // Users first: their `OrderPlaced` events carry the market specs the markets replay with.
    streams.sort_by(|a, b| (StreamKind::of(a), a.as_str()).cmp(&(StreamKind::of(b), b.as_str())));
    let mut report = Report { streams: streams.len() as u64, ..Report::default() };
    let mut replayer = Replayer::default();
    for (done, stream) in streams.iter().enumerate() {
        audit_stream(store, stream, &mut replayer, &mut report).await?;
        progress(Progress { streams_done: done as u64 + 1, streams_total: report.streams, events: report.events });
    }
    invariants::check_all(&replayer.facts, &mut report.findings);
    (report.settled, report.settled_errors) = settled::settled_balances(&replayer.facts, &replayer.specs);
    Ok(report)
}

/// Reads one stream page by page (the next page is read while this one is checked), walking
/// its chain and folding its actor.
async fn audit_stream<S: EventStore>(
    store: &S,
    stream: &StreamId,
    replayer: &mut Replayer,
    report: &mut Report,
) -> Result<(), StoreError> {
    let findings = &mut report.findings;
    let head = store.stream_version(stream).await?;
    let mut walk = ChainWalk::new(stream.clone());
    let mut events = 0u64;
    let mut actor = replayer.start(stream, findings);
    let name = stream.as_str();
    let mut page = match read_page(store, stream, 1).await? {
        Ok(page) => page,
        Err((version, reason)) => {
            findings.violate(Check::HashChain, Some(name), Some(version), reason);
            return Ok(());
        }
    };
    loop {
        let full = page.len() == AUDIT_PAGE;
        let next_from = walk.last_version() + 1 + page.len() as u64;
        let next = async {
            if full {
                read_page(store, stream, next_from).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let checked = async {
            let mut intact = true;
            for e in &page {
                if let Err(b) = walk.next(e) {
                    findings.violate(Check::HashChain, Some(name), Some(b.version), b.reason);
                    intact = false;
                    break;
                }
                events += 1;
                findings.count(Check::HashChain, 1);
                findings.count(Check::Replay, 1);
                if replayer.fold_stored(stream, &mut actor, e, findings).is_err() {
                    actor = Actor::None;
                }
            }
            intact
        };
        let (next, intact) = futures_util::future::join(next, checked).await;
        if !intact {
            break;
        }
        match next? {
            Some(Ok(more)) => page = more,
            Some(Err((version, reason))) => {
                findings.violate(Check::HashChain, Some(name), Some(version), reason);
                break;
            }
            None => {
                if let Err(b) = walk.finish(head) {
                    findings.violate(Check::HashChain, Some(name), Some(b.version), b.reason);
                }
                break;
            }
        }
    }
    report.events += events;
    if let Actor::User(state) = &actor {
        replayer.finish_user(name, state, findings);
    }
    Ok(())
}

/// A page of sealed events; a row the store finds corrupt is a finding (version, reason),
/// anything else an error.
async fn read_page<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
) -> Result<Result<Vec<SealedEvent>, (u64, String)>, StoreError> {
    match store.read_stream_sealed(stream, from, AUDIT_PAGE).await {
        Ok(page) => Ok(Ok(page)),
        Err(StoreError::Corrupt { version, reason, .. }) => {
            Ok(Err((version, format!("stored row unreadable: {reason}"))))
        }
        Err(e) => Err(e),
    }
}
