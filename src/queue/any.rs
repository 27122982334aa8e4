//! The queues `hob serve` was configured with, chosen at start: in-process (the embedded
//! default) or SQS FIFO.

use std::time::Duration;

use super::inprocess::{DestinationStats, InProcessQueue};
use super::sqs::SqsQueue;
use super::{DeadLetter, Delivery, Queue, QueueError, QueueMessage, Receipt, SendSummary};

pub enum AnyQueue {
    InProcess(InProcessQueue),
    Sqs(SqsQueue),
}

/// The same call on whichever adapter `$queue` holds.
macro_rules! each {
    ($queue:expr, $inner:ident => $call:expr) => {
        match $queue {
            AnyQueue::InProcess($inner) => $call.await,
            AnyQueue::Sqs($inner) => $call.await,
        }
    };
}

impl AnyQueue {
    /// The in-process queue's counters; SQS keeps its own (CloudWatch), so none here.
    pub fn stats(&self, destination: &str) -> Option<DestinationStats> {
        match self {
            AnyQueue::InProcess(q) => q.stats(destination),
            AnyQueue::Sqs(_) => None,
        }
    }
}

impl Queue for AnyQueue {
    async fn send_batch(&self, destination: &str, messages: Vec<QueueMessage>) -> Result<SendSummary, QueueError> {
        each!(self, q => q.send_batch(destination, messages))
    }

    async fn receive(&self, destination: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        each!(self, q => q.receive(destination, max, wait))
    }

    async fn ack(&self, destination: &str, receipt: &Receipt) -> Result<(), QueueError> {
        each!(self, q => q.ack(destination, receipt))
    }

    async fn nack(&self, destination: &str, receipt: &Receipt, retry_after: Duration) -> Result<(), QueueError> {
        each!(self, q => q.nack(destination, receipt, retry_after))
    }

    async fn dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        each!(self, q => q.dead_letters(destination))
    }

    fn durable(&self) -> bool {
        match self {
            AnyQueue::InProcess(q) => q.durable(),
            AnyQueue::Sqs(q) => q.durable(),
        }
    }
}
