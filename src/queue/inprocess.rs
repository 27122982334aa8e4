//! The in-process adapter of the `Queue` port: one mutex-guarded state per destination, a
//! `Notify` that wakes waiting receivers on every send, ack and nack, and visibility and
//! dedup windows measured on the injected `Clock`, so tests and simulations own time.
//!
//! Cost per operation is independent of the number of groups: groups that can deliver wait
//! in a ready ring, in-flight deadlines in a min-heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::{
    DeadLetter, Delivery, Queue, QueueError, QueueMessage, Receipt, SendSummary, DESTINATIONS, MAX_RECEIVE_BATCH,
    MAX_SEND_BATCH,
};
use crate::events::Clock;

/// Limits and timings of one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationConfig {
    /// Most messages stored at once, dead letters included (they hold space until drained).
    pub capacity: usize,
    /// How long a delivered message stays invisible waiting for its ack.
    pub visibility_timeout: Duration,
    /// A repeated `dedup_id` within this long of the first send is dropped (SQS: 5 minutes).
    pub dedup_window: Duration,
    /// Deliveries without an ack before a message becomes a dead letter.
    pub max_receives: u32,
    /// Most dedup ids remembered; past it the oldest are forgotten early (counted in
    /// `DestinationStats::dedup_evictions`) and consumers' own dedup takes over.
    pub max_dedup_ids: usize,
}

impl Default for DestinationConfig {
    fn default() -> DestinationConfig {
        DestinationConfig {
            capacity: 100_000,
            visibility_timeout: Duration::from_secs(30),
            dedup_window: Duration::from_secs(300),
            max_receives: 10,
            max_dedup_ids: 1_000_000,
        }
    }
}

/// Counters and gauges of one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestinationStats {
    /// Live messages: waiting or in flight.
    pub depth: usize,
    pub in_flight: usize,
    pub dead_letters: usize,
    pub enqueued: u64,
    pub deduplicated: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    pub refused_full: u64,
    pub dedup_evictions: u64,
}

pub struct InProcessQueue {
    clock: Arc<dyn Clock>,
    destinations: HashMap<String, Destination>,
}

struct Destination {
    config: DestinationConfig,
    state: Mutex<State>,
    /// Woken on anything that may make a message deliverable.
    notify: Notify,
}

#[derive(Default)]
struct State {
    groups: HashMap<Arc<str>, Group>,
    /// Groups with a deliverable head and nothing in flight, served round-robin.
    ready: VecDeque<Arc<str>>,
    in_flight: HashMap<u64, InFlight>,
    /// (deadline, seq, attempt); stale entries are skipped when popped.
    deadlines: BinaryHeap<Reverse<(DateTime<Utc>, u64, u32)>>,
    dedup: HashMap<String, DateTime<Utc>>,
    dedup_order: VecDeque<(DateTime<Utc>, String)>,
    dead: Vec<DeadLetter>,
    next_seq: u64,
    stats: DestinationStats,
}

#[derive(Default)]
struct Group {
    /// In send order; messages in flight are among the prefix that has been received.
    messages: VecDeque<Stored>,
    in_flight: usize,
    in_ready: bool,
}

struct Stored {
    seq: u64,
    message: QueueMessage,
    receive_count: u32,
}

struct InFlight {
    group: Arc<str>,
    attempt: u32,
    until: DateTime<Utc>,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl InProcessQueue {
    /// The four standard destinations, each with `config`.
    pub fn new(clock: Arc<dyn Clock>, config: DestinationConfig) -> InProcessQueue {
        InProcessQueue::with_destinations(clock, DESTINATIONS.iter().map(|d| (d.to_string(), config.clone())))
    }

    pub fn with_destinations(
        clock: Arc<dyn Clock>,
        destinations: impl IntoIterator<Item = (String, DestinationConfig)>,
    ) -> InProcessQueue {
        let destinations = destinations
            .into_iter()
            .map(|(name, config)| {
                assert!(config.capacity > 0 && config.max_receives > 0, "queue {name}: zero capacity or max_receives");
                (name, Destination { config, state: Mutex::new(State::default()), notify: Notify::new() })
            })
            .collect();
        InProcessQueue { clock, destinations }
    }

    /// Live messages (waiting or in flight) of `destination`; 0 for an unknown one.
    pub fn depth(&self, destination: &str) -> usize {
        self.stats(destination).map_or(0, |s| s.depth)
    }

    pub fn stats(&self, destination: &str) -> Option<DestinationStats> {
        let dest = self.destinations.get(destination)?;
        let state = lock(&dest.state);
        Some(DestinationStats { in_flight: state.in_flight.len(), dead_letters: state.dead.len(), ..state.stats })
    }

    /// Removes and returns the dead letters, freeing their space.
    pub fn drain_dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        let dest = self.destination(destination)?;
        Ok(std::mem::take(&mut lock(&dest.state).dead))
    }

    fn destination(&self, name: &str) -> Result<&Destination, QueueError> {
        self.destinations.get(name).ok_or_else(|| QueueError::UnknownDestination(name.to_owned()))
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is consistent between statements that can panic, so a poisoned lock is usable.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn mark_ready(&mut self, name: &Arc<str>) {
        if let Some(group) = self.groups.get_mut(name) {
            if group.in_flight == 0 && !group.messages.is_empty() && !group.in_ready {
                group.in_ready = true;
                self.ready.push_back(name.clone());
            }
        }
    }

    /// Ends one in-flight delivery without deleting the message; true if its group became
    /// ready.
    fn release(&mut self, seq: u64) -> bool {
        let Some(flight) = self.in_flight.remove(&seq) else { return false };
        if let Some(group) = self.groups.get_mut(&flight.group) {
            group.in_flight -= 1;
        }
        self.mark_ready(&flight.group);
        self.groups.get(&flight.group).is_some_and(|g| g.in_ready)
    }

    /// Returns messages whose visibility timeout passed; true if any group became ready.
    fn expire(&mut self, now: DateTime<Utc>) -> bool {
        let mut woke = false;
        while let Some(Reverse((until, seq, attempt))) = self.deadlines.peek().copied() {
            if until > now {
                break;
            }
            self.deadlines.pop();
            if self.in_flight.get(&seq).is_some_and(|f| f.attempt == attempt && f.until == until) {
                woke |= self.release(seq);
            }
        }
        woke
    }

    fn forget_old_dedup_ids(&mut self, now: DateTime<Utc>, window: TimeDelta) {
        while let Some((at, _)) = self.dedup_order.front() {
            if at.checked_add_signed(window).is_some_and(|end| end > now) {
                break;
            }
            if let Some((at, id)) = self.dedup_order.pop_front() {
                if self.dedup.get(&id) == Some(&at) {
                    self.dedup.remove(&id);
                }
            }
        }
    }

    /// Looks up a live delivery by receipt, after expiring what is due.
    fn check_receipt(&mut self, destination: &str, receipt: &Receipt, now: DateTime<Utc>) -> Result<u64, QueueError> {
        let invalid = || QueueError::InvalidReceipt { destination: destination.to_owned(), receipt: receipt.0.clone() };
        let (seq, attempt) = receipt.0.split_once('.').ok_or_else(invalid)?;
        let (seq, attempt): (u64, u32) = (seq.parse().map_err(|_| invalid())?, attempt.parse().map_err(|_| invalid())?);
        self.expire(now);
        match self.in_flight.get(&seq) {
            Some(f) if f.attempt == attempt => Ok(seq),
            _ => Err(QueueError::ReceiptExpired { destination: destination.to_owned(), receipt: receipt.0.clone() }),
        }
    }

    fn collect(&mut self, config: &DestinationConfig, max: usize, now: DateTime<Utc>) -> Vec<Delivery> {
        self.expire(now);
        let until = now.checked_add_signed(delta(config.visibility_timeout)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(name) = self.ready.pop_front() else { break };
            let Some(group) = self.groups.get_mut(&name) else { continue };
            group.in_ready = false;
            debug_assert_eq!(group.in_flight, 0, "a ready group has nothing in flight");
            let mut k = 0;
            while out.len() < max && k < group.messages.len() {
                let stored = &mut group.messages[k];
                if stored.receive_count >= config.max_receives {
                    if let Some(dead) = group.messages.remove(k) {
                        self.stats.depth -= 1;
                        self.dead.push(DeadLetter {
                            message: dead.message,
                            receive_count: dead.receive_count,
                            dead_at: now,
                        });
                    }
                    continue;
                }
                stored.receive_count += 1;
                if stored.receive_count > 1 {
                    self.stats.redelivered += 1;
                }
                self.stats.delivered += 1;
                let (seq, attempt) = (stored.seq, stored.receive_count);
                self.in_flight.insert(seq, InFlight { group: name.clone(), attempt, until });
                self.deadlines.push(Reverse((until, seq, attempt)));
                out.push(Delivery {
                    receipt: Receipt(format!("{seq}.{attempt}")),
                    message: stored.message.clone(),
                    receive_count: attempt,
                });
                group.in_flight += 1;
                k += 1;
            }
            if group.messages.is_empty() {
                self.groups.remove(&name);
            } else if group.in_flight == 0 {
                // The batch filled before this group delivered anything: keep its turn.
                group.in_ready = true;
                self.ready.push_front(name);
            }
        }
        out
    }

    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.peek().map(|Reverse((until, _, _))| *until)
    }
}

impl Queue for InProcessQueue {
    async fn send_batch(&self, destination: &str, messages: Vec<QueueMessage>) -> Result<SendSummary, QueueError> {
        let dest = self.destination(destination)?;
        if messages.len() > MAX_SEND_BATCH {
            return Err(QueueError::BatchTooLarge {
                destination: destination.to_owned(),
                len: messages.len(),
                limit: MAX_SEND_BATCH,
            });
        }
        let now = self.clock.now();
        let mut state = lock(&dest.state);
        state.forget_old_dedup_ids(now, delta(dest.config.dedup_window));
        let mut in_batch = HashSet::new();
        let fresh: Vec<bool> = messages
            .iter()
            .map(|m| !state.dedup.contains_key(&m.dedup_id) && in_batch.insert(m.dedup_id.as_str()))
            .collect();
        let incoming = fresh.iter().filter(|f| **f).count();
        let stored = state.stats.depth + state.dead.len();
        if stored + incoming > dest.config.capacity {
            state.stats.refused_full += 1;
            return Err(QueueError::Full {
                destination: destination.to_owned(),
                stored,
                capacity: dest.config.capacity,
                incoming,
            });
        }
        let mut summary = SendSummary::default();
        for (message, fresh) in messages.into_iter().zip(fresh) {
            if !fresh {
                summary.deduplicated += 1;
                continue;
            }
            state.dedup.insert(message.dedup_id.clone(), now);
            state.dedup_order.push_back((now, message.dedup_id.clone()));
            while state.dedup.len() > dest.config.max_dedup_ids {
                let Some((at, id)) = state.dedup_order.pop_front() else { break };
                if state.dedup.get(&id) == Some(&at) {
                    state.dedup.remove(&id);
                    state.stats.dedup_evictions += 1;
                }
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let name: Arc<str> = Arc::from(message.group.as_str());
            let group = state.groups.entry(name.clone()).or_default();
            group.messages.push_back(Stored { seq, message, receive_count: 0 });
            state.mark_ready(&name);
            state.stats.depth += 1;
            summary.enqueued += 1;
        }
        state.stats.enqueued += summary.enqueued as u64;
        state.stats.deduplicated += summary.deduplicated as u64;
        drop(state);
        if summary.enqueued > 0 {
            dest.notify.notify_waiters();
        }
        Ok(summary)
    }

    async fn receive(&self, destination: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let dest = self.destination(destination)?;
        let max = max.min(MAX_RECEIVE_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let give_up_at = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let notified = dest.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.clock.now();
            let (out, next_deadline) = {
                let mut state = lock(&dest.state);
                let out = state.collect(&dest.config, max, now);
                (out, state.next_deadline())
            };
            let real_now = tokio::time::Instant::now();
            if !out.is_empty() || real_now >= give_up_at {
                return Ok(out);
            }
            // Wake for the next visibility expiry too (measured on the injected clock).
            let mut sleep_until = give_up_at;
            if let Some(deadline) = next_deadline {
                let until_expiry = (deadline - now).to_std().unwrap_or(Duration::ZERO).max(Duration::from_millis(1));
                sleep_until = sleep_until.min(real_now + until_expiry);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
    }

    async fn ack(&self, destination: &str, receipt: &Receipt) -> Result<(), QueueError> {
        let dest = self.destination(destination)?;
        let mut state = lock(&dest.state);
        let seq = state.check_receipt(destination, receipt, self.clock.now())?;
        let Some(flight) = state.in_flight.remove(&seq) else { return Ok(()) };
        if let Some(group) = state.groups.get_mut(&flight.group) {
            if let Some(k) = group.messages.iter().take_while(|m| m.receive_count > 0).position(|m| m.seq == seq) {
                group.messages.remove(k);
            }
            group.in_flight -= 1;
            if group.messages.is_empty() {
                state.groups.remove(&flight.group);
            }
        }
        state.stats.depth -= 1;
        state.stats.acked += 1;
        state.mark_ready(&flight.group);
        let woke = state.groups.get(&flight.group).is_some_and(|g| g.in_ready);
        drop(state);
        if woke {
            dest.notify.notify_waiters();
        }
        Ok(())
    }

    async fn nack(&self, destination: &str, receipt: &Receipt, retry_after: Duration) -> Result<(), QueueError> {
        let dest = self.destination(destination)?;
        let now = self.clock.now();
        let mut state = lock(&dest.state);
        let seq = state.check_receipt(destination, receipt, now)?;
        if retry_after.is_zero() {
            let woke = state.release(seq);
            drop(state);
            if woke {
                dest.notify.notify_waiters();
            }
            return Ok(());
        }
        let until = now.checked_add_signed(delta(retry_after)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Some(flight) = state.in_flight.get_mut(&seq) {
            flight.until = until;
            let attempt = flight.attempt;
            state.deadlines.push(Reverse((until, seq, attempt)));
        }
        Ok(())
    }

    async fn dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(lock(&self.destination(destination)?.state).dead.clone())
    }

    /// Memory only: everything queued is gone with the process.
    fn durable(&self) -> bool {
        false
    }
}
