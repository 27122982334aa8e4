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
pub mod lanes;
pub mod onchain;
pub mod replay;
pub mod report;
pub mod settled;

pub use report::{Check, Findings, Report, Violation};

use lanes::Lanes;
use replay::{Replayer, StreamKind};

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
///
/// This task reads; one lane per core (`lanes.rs`) walks the chains and replays the actors.
/// Users go first: their `OrderPlaced` events carry the market specs the markets replay with.
pub async fn audit<S: EventStore>(store: &S, progress: impl FnMut(Progress)) -> Result<Report, StoreError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_LANES);
    audit_on(store, cores, progress).await
}

/// [`audit`] on `lanes` threads (at least one). The findings do not depend on the number; only
/// the order of violations within a check may.
pub async fn audit_on<S: EventStore>(
    store: &S,
    lanes: usize,
    mut progress: impl FnMut(Progress),
) -> Result<Report, StoreError> {
    let mut streams = store.list_streams().await?;
    streams.sort_by(|a, b| (StreamKind::of(a), a.as_str()).cmp(&(StreamKind::of(b), b.as_str())));
    let users = streams.partition_point(|s| StreamKind::of(s) == StreamKind::User);
    let mut report = Report { streams: streams.len() as u64, ..Report::default() };
    let mut replayer = Replayer::default();
    let mut read = Progress { streams_done: 0, streams_total: report.streams, events: 0 };
    for phase in [&streams[..users], &streams[users..]] {
        let mut lanes = Lanes::start(lanes.min(phase.len()), &replayer)?;
        for stream in phase {
            read.events += read_stream(store, stream, &mut lanes).await?;
            read.streams_done += 1;
            progress(read);
        }
        for lane in lanes.finish()? {
            report.events += lane.events;
            report.findings.merge(lane.findings);
            replayer.absorb(lane.replayer, &mut report.findings);
        }
    }
    invariants::check_all(&replayer.facts, &mut report.findings);
    (report.settled, report.settled_errors) = settled::settled_balances(&replayer.facts, &replayer.specs);
    Ok(report)
}

/// More lanes than this only add merging work: the reader is the limit by then.
const MAX_LANES: usize = 8;

/// Reads one stream page by page and hands the pages to its lane; returns the events read.
async fn read_stream<S: EventStore>(store: &S, stream: &StreamId, lanes: &mut Lanes) -> Result<u64, StoreError> {
    let head = store.stream_version(stream).await?;
    lanes.begin(stream.clone(), head).await?;
    let mut from = 1;
    loop {
        match read_page(store, stream, from).await? {
            Ok(page) => {
                let n = page.len();
                if n > 0 {
                    lanes.page(page).await?;
                }
                from += n as u64;
                if n < AUDIT_PAGE {
                    break;
                }
            }
            Err((version, reason)) => {
                lanes.unreadable(version, reason).await?;
                break;
            }
        }
    }
    lanes.end().await?;
    Ok(from - 1)
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
