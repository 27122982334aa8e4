//! The audit's CPU work — walking each stream's hash chain and replaying its actor — on one
//! thread per core ("lanes"), while the caller's task keeps reading pages from the store.
//!
//! Streams are independent until the cross-stream checks, so each stream belongs to exactly
//! one lane (its pages arrive in order on that lane's channel) and each lane keeps its own
//! [`Replayer`] and [`Findings`]; they are merged, in lane order, when the lanes finish. The
//! store is only touched by the caller, so any adapter works unchanged (MongoDB's driver keeps
//! running on the caller's runtime).

use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::chain::ChainWalk;
use super::replay::{Actor, Replayer};
use super::report::{Check, Findings};
use crate::events::{SealedEvent, StoreError, StreamId};

/// Pages queued per lane before the reader waits: enough to keep a lane busy while the next
/// page is read, few enough to bound memory (a page is [`super::AUDIT_PAGE`] events).
const QUEUED_PAGES: usize = 4;

/// What the reader sends a lane, in stream order.
enum Job {
    /// The next stream starts; `head` is the store's version for it.
    Stream {
        stream: StreamId,
        head: u64,
    },
    Page(Vec<SealedEvent>),
    /// The store could not decode the row at `version`: the rest of the stream is untrusted.
    Unreadable {
        version: u64,
        reason: String,
    },
    /// The stream's last page was sent.
    End,
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
    handles: Vec<JoinHandle<LaneResult>>,
    next: usize,
    current: usize,
}

impl Lanes {
    /// Starts `count` lanes (at least one), each replaying with a copy of `seed` (the specs
    /// known so far).
    pub fn start(count: usize, seed: &Replayer) -> Result<Lanes, StoreError> {
        let mut lanes = Lanes { senders: Vec::new(), handles: Vec::new(), next: 0, current: 0 };
        for i in 0..count.max(1) {
            let (tx, rx) = mpsc::channel(QUEUED_PAGES);
            let replayer = Replayer { specs: seed.specs.clone(), ..Replayer::default() };
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
        self.current = self.next;
        self.next = (self.next + 1) % self.senders.len();
        self.send(Job::Stream { stream, head }).await
    }

    pub async fn page(&mut self, page: Vec<SealedEvent>) -> Result<(), StoreError> {
        self.send(Job::Page(page)).await
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
        self.handles.into_iter().map(|h| h.join().map_err(|_| lane_died())).collect()
    }
}

fn lane_died() -> StoreError {
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

fn run_lane(mut rx: mpsc::Receiver<Job>, mut replayer: Replayer) -> LaneResult {
    let mut findings = Findings::default();
    let mut events = 0u64;
    let mut open: Option<Open> = None;
    while let Some(job) = rx.blocking_recv() {
        match job {
            Job::Stream { stream, head } => {
                let actor = replayer.start(&stream, &mut findings);
                open = Some(Open { walk: ChainWalk::new(stream.clone()), stream, head, actor, intact: true });
            }
            Job::Page(page) => {
                let Some(s) = open.as_mut().filter(|s| s.intact) else { continue };
                let name = s.stream.as_str();
                for e in &page {
                    if let Err(b) = s.walk.next(e) {
                        findings.violate(Check::HashChain, Some(name), Some(b.version), b.reason);
                        s.intact = false;
                        break;
                    }
                    events += 1;
                    if replayer.fold_stored(&s.stream, &mut s.actor, e, &mut findings).is_err() {
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
    LaneResult { replayer, findings, events }
}
