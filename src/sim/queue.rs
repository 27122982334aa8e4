//! The simulated network between the outbox and the consumers: the in-process queue, with a
//! seeded chaos layer that delays deliveries, delivers some twice, and lets groups overtake
//! each other. It never reorders within a FIFO group: a delayed delivery is handed back with
//! `nack`, which keeps its group blocked until it is visible again, exactly as SQS FIFO does.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::rng::Rng;
use crate::queue::inprocess::InProcessQueue;
use crate::queue::{DeadLetter, Delivery, Queue, QueueError, QueueMessage, Receipt, SendSummary};

/// How unreliable the network is, in percent per delivery.
#[derive(Clone, Copy, Debug)]
pub struct Chaos {
    /// A received message is put back for a while instead (its group waits; others go on).
    pub delay_percent: u64,
    /// An acknowledgement is lost: the message is delivered again.
    pub duplicate_percent: u64,
    /// How long a delayed message stays invisible, on the simulation's clock.
    pub max_delay: Duration,
}

impl Chaos {
    pub const NONE: Chaos = Chaos { delay_percent: 0, duplicate_percent: 0, max_delay: Duration::ZERO };
}

pub struct ChaosQueue {
    inner: InProcessQueue,
    chaos: Chaos,
    rng: Mutex<Rng>,
}

impl ChaosQueue {
    pub fn new(inner: InProcessQueue, chaos: Chaos, rng: Rng) -> ChaosQueue {
        ChaosQueue { inner, chaos, rng: Mutex::new(rng) }
    }

    pub fn inner(&self) -> &InProcessQueue {
        &self.inner
    }

    fn rng(&self) -> MutexGuard<'_, Rng> {
        // The generator's state is one integer; a panic elsewhere cannot leave it half-written.
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Queue for ChaosQueue {
    async fn send_batch(&self, destination: &str, messages: Vec<QueueMessage>) -> Result<SendSummary, QueueError> {
        self.inner.send_batch(destination, messages).await
    }

    async fn receive(&self, destination: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deliveries = self.inner.receive(destination, max, wait).await?;
        let mut kept = Vec::with_capacity(deliveries.len());
        // Once a group's delivery is held back, the rest of that group's batch is too: a
        // consumer must never see a group's later message before its earlier one.
        let mut held: Vec<String> = Vec::new();
        for delivery in deliveries {
            let delay = if held.contains(&delivery.message.group) {
                Some(Duration::ZERO)
            } else {
                let mut rng = self.rng();
                rng.chance(self.chaos.delay_percent)
                    .then(|| Duration::from_millis(rng.below(self.chaos.max_delay.as_millis() as u64 + 1)))
            };
            match delay {
                Some(after) => {
                    held.push(delivery.message.group.clone());
                    self.inner.nack(destination, &delivery.receipt, after).await?;
                }
                None => kept.push(delivery),
            }
        }
        Ok(kept)
    }

    async fn ack(&self, destination: &str, receipt: &Receipt) -> Result<(), QueueError> {
        if self.rng().chance(self.chaos.duplicate_percent) {
            return self.inner.nack(destination, receipt, Duration::ZERO).await;
        }
        self.inner.ack(destination, receipt).await
    }

    async fn nack(&self, destination: &str, receipt: &Receipt, retry_after: Duration) -> Result<(), QueueError> {
        self.inner.nack(destination, receipt, retry_after).await
    }

    async fn dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(destination).await
    }
}
