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

use lanes::{LaneResult, Lanes};
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
    progress: impl FnMut(Progress),
) -> Result<Report, StoreError> {
    audit_paged(store, lanes, AUDIT_PAGE, progress).await
}

/// [`audit_on`] reading `page` events at a time (at least one). The findings depend on
/// neither; tests read small pages to cross many page boundaries.
pub async fn audit_paged<S: EventStore>(
    store: &S,
    lanes: usize,
    page: usize,
    mut progress: impl FnMut(Progress),
) -> Result<Report, StoreError> {
    let page = page.max(1);
    let mut streams = store.list_streams().await?;
    streams.sort_by(|a, b| (StreamKind::of(a), a.as_str()).cmp(&(StreamKind::of(b), b.as_str())));
    let users = streams.partition_point(|s| StreamKind::of(s) == StreamKind::User);
    let mut report = Report { streams: streams.len() as u64, ..Report::default() };
    let mut read = Progress { streams_done: 0, streams_total: report.streams, events: 0 };
    let (user_streams, other_streams) = streams.split_at(users);

    // Users first: their `OrderPlaced` events carry the specs the markets replay with.
    let mut phase = Phase { store, lanes, page, read: &mut read, progress: &mut progress };
    let user_lanes = phase.run(user_streams, &Replayer::default()).await?;
    // Merging the users' facts is long (a fill per trade side) and the markets need only the
    // specs, so it runs beside the market phase. The seed takes each market's spec from the
    // first lane that names it, as the merge does.
    let mut seed = Replayer::default();
    for lane in &user_lanes {
        seed.learn_specs(&lane.replayer);
    }
    let merging = std::thread::Builder::new()
        .name("audit-merge".into())
        .spawn(move || merge(Replayer::default(), user_lanes))
        .map_err(|e| StoreError::Backend(format!("starting an audit thread: {e}")))?;
    let other_lanes = phase.run(other_streams, &seed).await?;
    let (replayer, findings, events) = merging.join().map_err(|_| lanes::lane_died())?;
    report.findings.merge(findings);
    report.events += events;
    let (replayer, findings, events) = merge(replayer, other_lanes);
    report.findings.merge(findings);
    report.events += events;

    // The cross-stream checks: matching fills to trades on one thread, the rest on this one.
    let facts = &replayer.facts;
    let (matched, rest, settled) = std::thread::scope(|scope| {
        let matching = scope.spawn(|| {
            let mut findings = Findings::default();
            invariants::fills_match_trades(facts, &mut findings);
            findings
        });
        let mut rest = Findings::default();
        invariants::conservation(facts, &mut rest);
        invariants::settled_once(facts, &mut rest);
        invariants::voids_compensated(facts, &mut rest);
        let settled = settled::settled_balances(facts, &replayer.specs);
        (matching.join(), rest, settled)
    });
    report.findings.merge(matched.map_err(|_| lanes::lane_died())?);
    report.findings.merge(rest);
    (report.settled, report.settled_errors) = settled;
    // Freeing a million facts takes a while and tells nobody anything: the report is ready
    // now. Should the thread not start, they are freed here.
    let _ = std::thread::Builder::new().name("audit-free".into()).spawn(move || drop(replayer));
    Ok(report)
}

/// One phase of the audit: its streams read in order, checked on the lanes.
struct Phase<'a, S, P> {
    store: &'a S,
    lanes: usize,
    page: usize,
    read: &'a mut Progress,
    progress: &'a mut P,
}

impl<S: EventStore, P: FnMut(Progress)> Phase<'_, S, P> {
    async fn run(&mut self, streams: &[StreamId], seed: &Replayer) -> Result<Vec<LaneResult>, StoreError> {
        let mut lanes = Lanes::start(self.lanes.min(streams.len()), self.lanes, seed)?;
        for stream in streams {
            self.read.events += read_stream(self.store, stream, self.page, &mut lanes).await?;
            self.read.streams_done += 1;
            (self.progress)(*self.read);
        }
        lanes.finish()
    }
}

/// Adds what lanes learnt to `into`, in lane order: (facts, findings, events checked).
fn merge(mut into: Replayer, lanes: Vec<LaneResult>) -> (Replayer, Findings, u64) {
    let mut findings = Findings::default();
    let mut events = 0;
    for lane in lanes {
        events += lane.events;
        findings.merge(lane.findings);
        into.absorb(lane.replayer, &mut findings);
    }
    (into, findings, events)
}

/// More lanes than this only add merging work: the reader is the limit by then.
const MAX_LANES: usize = 8;

/// Reads one stream page by page and hands the pages to its lane; returns the events read.
async fn read_stream<S: EventStore>(
    store: &S,
    stream: &StreamId,
    page_size: usize,
    lanes: &mut Lanes,
) -> Result<u64, StoreError> {
    let head = store.stream_version(stream).await?;
    lanes.begin(stream.clone(), head).await?;
    let mut from = 1;
    loop {
        match read_page(store, stream, from, page_size).await? {
            Ok(page) => {
                let n = page.len();
                if n > 0 {
                    lanes.page(page).await?;
                }
                from += n as u64;
                if n < page_size {
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
    page_size: usize,
) -> Result<Result<Vec<SealedEvent>, (u64, String)>, StoreError> {
    match store.read_stream_sealed(stream, from, page_size).await {
        Ok(page) => Ok(Ok(page)),
        Err(StoreError::Corrupt { version, reason, .. }) => {
            Ok(Err((version, format!("stored row unreadable: {reason}"))))
        }
        Err(e) => Err(e),
    }
}
