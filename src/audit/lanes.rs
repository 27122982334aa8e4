//! The audit's CPU work, on one thread per core, while the caller's task keeps reading pages
//! from the store. It comes in two parts:
//!
//! - *Preparing* an event — recomputing its hash and decoding its payload — needs nothing but
//!   the event, so any page goes to whichever preparer is free (`run_preparer`). That is most
//!   of the work, and it is what lets one long stream (a busy market) use every core.
//! - *Folding* — linking the hash chain and replaying the actor — needs the stream's events in
//!   order. Streams are independent until the cross-stream checks, so each stream belongs to
//!   exactly one lane, which takes its prepared pages in order (`run_lane`) and keeps its own
//!   [`Replayer`] and [`Findings`]; they are merged, in lane order, when the lanes finish.
//!
//! The store is only touched by the caller, so any adapter works unchanged (MongoDB's driver
//! keeps running on the caller's runtime).

use std::sync::{mpsc as sync_mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::chain::{ChainWalk, Link};
use super::replay::{Actor, Decoded, Replayer, StreamKind};
use super::report::{Check, Findings};
use crate::events::{SealedEvent, StoreError, StreamId};

/// Events a preparer takes at once. A store page is cut into pieces of this size: pieces
/// small enough that a piece and what it decodes to stay in the caches and in the allocator's
/// reused memory (whole pages took fresh, zeroed pages from the kernel every time), and that
/// a stream's pieces spread over every preparer.
const PIECE: usize = 1_024;

/// Pieces queued per lane before the reader waits: enough to keep the preparers busy while the
/// next page is read (a page is at most [`super::AUDIT_PAGE`] events), few enough to bound
/// memory.
const QUEUED_PAGES: usize = 2 * super::AUDIT_PAGE / PIECE;

/// What the reader sends a lane, in stream order.
enum Job {
    /// The next stream starts; `head` is the store's version for it.
    Stream { stream: StreamId, head: u64 },
    /// The next page, being prepared.
    Page(sync_mpsc::Receiver<Vec<Prepared>>),
    /// The store could not decode the row at `version`: the rest of the stream is untrusted.
    Unreadable { version: u64, reason: String },
    /// The stream's last page was sent.
    End,
}

/// One event made ready to fold.
struct Prepared {
    link: Link,
    decoded: Decoded,
}

/// A page for any preparer; `done` takes the page's prepared events to its stream's lane.
struct Preparing {
    stream: StreamId,
    kind: StreamKind,
    page: Vec<SealedEvent>,
    done: sync_mpsc::SyncSender<Vec<Prepared>>,
}

/// What one lane learnt.
pub struct LaneResult {
    pub replayer: Replayer,
    pub findings: Findings,
    /// Events that passed the chain walk.
    pub events: u64,
}

/// Lanes for one phase of the audit (users first, then everything else: markets need the
/// specs the users' streams carry).
pub struct Lanes {
    senders: Vec<mpsc::Sender<Job>>,
    handles: Vec<JoinHandle<Result<LaneResult, StoreError>>>,
    preparing: sync_mpsc::Sender<Preparing>,
    preparers: Vec<JoinHandle<()>>,
    next: usize,
    current: usize,
    current_stream: Option<(StreamId, StreamKind)>,
}

impl Lanes {
    /// Starts `count` lanes and `preparers` preparers (at least one each), each lane
    /// replaying with a copy of `seed` (the specs known so far). A lane more than there are
    /// streams would idle; preparers never do: a single stream's pages keep them all busy.
    pub fn start(count: usize, preparers: usize, seed: &Replayer) -> Result<Lanes, StoreError> {
        let (preparing, queue) = sync_mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut lanes = Lanes {
            senders: Vec::new(),
            handles: Vec::new(),
            preparing,
            preparers: Vec::new(),
            next: 0,
            current: 0,
            current_stream: None,
        };
        for i in 0..preparers.max(1) {
            let queue = Arc::clone(&queue);
            let handle = std::thread::Builder::new()
                .name(format!("audit-prep-{i}"))
                .spawn(move || run_preparer(&queue))
                .map_err(|e| StoreError::Backend(format!("starting an audit thread: {e}")))?;
            lanes.preparers.push(handle);
        }
        for i in 0..count.max(1) {
            let (tx, rx) = mpsc::channel(QUEUED_PAGES);
            let replayer = Replayer::with_specs(seed.specs.clone());
            let handle = std::thread::Builder::new()
                .name(format!("audit-lane-{i}"))
                .spawn(move || run_lane(rx, replayer))
                .map_err(|e| StoreError::Backend(format!("starting an audit thread: {e}")))?;
            lanes.senders.push(tx);
            lanes.handles.push(handle);
        }
        Ok(lanes)
    }

    /// Hands the next stream to the next lane, round robin.
    pub async fn begin(&mut self, stream: StreamId, head: u64) -> Result<(), StoreError> {
        self.current_stream = Some((stream.clone(), StreamKind::of(&stream)));
        self.current = self.next;
        self.next = (self.next + 1) % self.senders.len();
        self.send(Job::Stream { stream, head }).await
    }

    /// Hands a page of the current stream to the preparers, and its place in the stream to
    /// the stream's lane. Memory stays bounded: every page being prepared is also queued on a
    /// lane, and lanes hold at most [`QUEUED_PAGES`] each.
    pub async fn page(&mut self, page: Vec<SealedEvent>) -> Result<(), StoreError> {
        let Some((stream, kind)) = self.current_stream.clone() else {
            return Err(StoreError::Backend(
                "an audit page arrived before its stream (a bug: please report it)".into(),
            ));
        };
        let mut events = page.into_iter();
        loop {
            let piece: Vec<SealedEvent> = events.by_ref().take(PIECE).collect();
            if piece.is_empty() {
                break;
            }
            let (done, prepared) = sync_mpsc::sync_channel(1);
            let job = Preparing { stream: stream.clone(), kind, page: piece, done };
            self.preparing.send(job).map_err(|_| lane_died())?;
            self.send(Job::Page(prepared)).await?;
        }
        Ok(())
    }

    pub async fn unreadable(&mut self, version: u64, reason: String) -> Result<(), StoreError> {
        self.send(Job::Unreadable { version, reason }).await
    }

    pub async fn end(&mut self) -> Result<(), StoreError> {
        self.send(Job::End).await
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        // A lane only stops receiving when its thread ended early, i.e. it panicked; `finish`
        // reports that.
        self.senders[self.current].send(job).await.map_err(|_| lane_died())
    }

    /// Waits for every lane to drain its queue; their results in lane order.
    pub fn finish(self) -> Result<Vec<LaneResult>, StoreError> {
        drop(self.senders);
        drop(self.preparing);
        let results: Result<Vec<LaneResult>, StoreError> =
            self.handles.into_iter().map(|h| h.join().map_err(|_| lane_died()).and_then(|r| r)).collect();
        for preparer in self.preparers {
            preparer.join().map_err(|_| lane_died())?;
        }
        results
    }
}

pub(super) fn lane_died() -> StoreError {
    StoreError::Backend("an audit thread stopped unexpectedly (a bug: please report it)".into())
}

/// One stream being checked on a lane.
struct Open {
    stream: StreamId,
    head: u64,
    walk: ChainWalk,
    actor: Actor,
    /// False after a chain break: the rest of the stream is untrusted and skipped.
    intact: bool,
}

/// Prepares pages until the lanes are finished.
fn run_preparer(queue: &Mutex<sync_mpsc::Receiver<Preparing>>) {
    loop {
        // The lock is held only while waiting for the next page; a poisoned one means another
        // preparer panicked, which its lane reports.
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let prepared = job
            .page
            .iter()
            .map(|e| Prepared { link: Link::of(&job.stream, e), decoded: Decoded::of(job.kind, e) })
            .collect();
        // The lane no longer waits for this page when the stream broke before it.
        let _ = job.done.send(prepared);
    }
}

fn run_lane(mut rx: mpsc::Receiver<Job>, mut replayer: Replayer) -> Result<LaneResult, StoreError> {
    let mut findings = Findings::default();
    let mut events = 0u64;
    let mut open: Option<Open> = None;
    while let Some(job) = rx.blocking_recv() {
        match job {
            Job::Stream { stream, head } => {
                let actor = replayer.start(&stream, &mut findings);
                open = Some(Open { walk: ChainWalk::new(stream.clone()), stream, head, actor, intact: true });
            }
            Job::Page(prepared) => {
                let Some(s) = open.as_mut().filter(|s| s.intact) else { continue };
                // A preparer only drops a page unanswered when it panicked.
                let page = prepared.recv().map_err(|_| lane_died())?;
                let name = s.stream.as_str();
                for p in &page {
                    if let Err(b) = s.walk.link(p.link) {
                        findings.violate(Check::HashChain, Some(name), Some(b.version), b.reason);
                        s.intact = false;
                        break;
                    }
                    events += 1;
                    if replayer.fold_decoded(name, &mut s.actor, p.link.version, &p.decoded, &mut findings).is_err() {
                        s.actor = Actor::None;
                    }
                }
            }
            Job::Unreadable { version, reason } => {
                if let Some(s) = open.as_mut().filter(|s| s.intact) {
                    findings.violate(Check::HashChain, Some(s.stream.as_str()), Some(version), reason);
                    s.intact = false;
                }
            }
            Job::End => {
                let Some(s) = open.take() else { continue };
                let name = s.stream.as_str();
                if s.intact {
                    if let Err(b) = s.walk.finish(s.head) {
                        findings.violate(Check::HashChain, Some(name), Some(b.version), b.reason);
                    }
                }
                if let Actor::User(state) = &s.actor {
                    replayer.finish_user(name, state, &mut findings);
                }
            }
        }
    }
    findings.count(Check::HashChain, events);
    findings.count(Check::Replay, events);
    Ok(LaneResult { replayer, findings, events })
}
