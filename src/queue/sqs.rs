//! The SQS FIFO adapter of the `Queue` port, on the official `aws-sdk-sqs` client.
//!
//! One FIFO queue per destination (names from `SqsConfig`), each with a FIFO dead-letter
//! queue behind a `RedrivePolicy`; content-based deduplication is off, so the
//! `MessageDeduplicationId` is the message's `dedup_id` (the outbox record's source key) and
//! `MessageGroupId` its group. What SQS does not give for free:
//!
//! - Batches: `send_batch` accepts up to `MAX_SEND_BATCH` and sends them in order, ten per
//!   `SendMessageBatch`. A failure part-way leaves the earlier chunks sent; the relay re-sends
//!   the whole batch with the same dedup ids, which SQS drops within its 5-minute window.
//!   Every message is checked against SQS's limits before the first chunk goes out.
//! - Visibility while processing: a heartbeat task extends every receipt this node holds
//!   (received, neither acked nor nacked) every third of the visibility timeout, so a slow
//!   handler keeps its message and its group's order; when the node dies the heartbeat dies
//!   with it and SQS redelivers after the timeout.
//! - Receipts: SQS accepts a stale receipt handle for a delete, so the port's "only the
//!   latest delivery's receipt can ack" is kept locally: a receipt this node does not hold is
//!   `ReceiptExpired` without asking SQS.
//! - Dead letters: `dead_letters` peeks the dead-letter queue (receive, then visibility back
//!   to zero); it consumes nothing. SQS returns at most ten messages of one group per peek.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::{DeadLetter, Delivery, Queue, QueueError, QueueMessage, Receipt, SendSummary, MAX_SEND_BATCH};

mod config;
pub mod wire;

pub use config::{dead_letter_name, SqsConfig, SqsCredentials, SqsQueueNames};

/// SQS's most entries per batch call and messages per receive.
const SQS_BATCH: usize = 10;
/// How long a peek at the dead-letter queue hides what it saw before making it visible again.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// Most receive calls one peek makes (ten messages each).
const MAX_PEEK_CALLS: usize = 100;

pub struct SqsQueue {
    inner: Arc<Inner>,
    heartbeat: JoinHandle<()>,
}

struct Inner {
    client: Client,
    config: SqsConfig,
    queues: HashMap<&'static str, QueueUrls>,
    /// Receipts this node holds, by receipt handle, with their destination.
    held: Mutex<HashMap<String, &'static str>>,
    /// Held by a heartbeat round and by a nack, so an extension read from the held set
    /// before a nack can never land after it: it would hide the nacked message again while
    /// SQS no longer counts it in flight, and a later message of its group would overtake it
    /// (seen on moto with several nodes handing records back).
    visibility: tokio::sync::Mutex<()>,
}

#[derive(Clone, Debug)]
struct QueueUrls {
    queue: String,
    dead_letters: String,
}

impl Drop for SqsQueue {
    fn drop(&mut self) {
        // A dropped node stops extending its receipts, so SQS redelivers them: a crash.
        self.heartbeat.abort();
    }
}

impl SqsQueue {
    /// Connects, creates the queues if configured to, and resolves every queue's URL. Must be
    /// called inside a tokio runtime: the visibility heartbeat runs on it.
    pub async fn connect(config: SqsConfig) -> Result<SqsQueue, QueueError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            QueueError::InvalidConfig("SqsQueue::connect needs a tokio runtime for its heartbeat".into())
        })?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "hob-config",
            ));
        }
        let client = Client::new(&loader.load().await);
        let mut queues = HashMap::new();
        for (destination, name) in config.queue_names.by_destination() {
            let urls = if config.create_queues {
                create(&client, &config, name).await?
            } else {
                QueueUrls {
                    queue: queue_url(&client, name).await?,
                    dead_letters: queue_url(&client, &dead_letter_name(name)).await?,
                }
            };
            queues.insert(destination, urls);
        }
        let inner = Arc::new(Inner {
            client,
            config,
            queues,
            held: Mutex::new(HashMap::new()),
            visibility: tokio::sync::Mutex::new(()),
        });
        let heartbeat = runtime.spawn(heartbeat(Arc::downgrade(&inner)));
        Ok(SqsQueue { inner, heartbeat })
    }

    /// Receipts this node holds (received, neither acked nor nacked): what the heartbeat
    /// extends.
    pub fn held(&self) -> usize {
        self.inner.held().len()
    }

    pub fn config(&self) -> &SqsConfig {
        &self.inner.config
    }

    /// The SQS URL of `destination`'s queue.
    pub fn queue_url(&self, destination: &str) -> Result<&str, QueueError> {
        Ok(&self.inner.urls(destination)?.1.queue)
    }
}

/// Creates the dead-letter queue, then the queue redriving into it. `CreateQueue` returns
/// the existing queue when the attributes match, so every node may do this at start.
async fn create(client: &Client, config: &SqsConfig, name: &str) -> Result<QueueUrls, QueueError> {
    let dlq_name = dead_letter_name(name);
    let dead_letters = create_fifo(client, &dlq_name, Vec::new()).await?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dead_letters)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| backend(&format!("GetQueueAttributes {dlq_name}"), e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| QueueError::Backend(format!("GetQueueAttributes {dlq_name}: no QueueArn")))?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": config.max_receive_count });
    let attributes = vec![
        (QueueAttributeName::VisibilityTimeout, config.visibility_timeout.as_secs().to_string()),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ];
    let queue = create_fifo(client, name, attributes).await?;
    Ok(QueueUrls { queue, dead_letters })
}

async fn create_fifo(
    client: &Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, QueueError> {
    let mut request = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    for (key, value) in attributes {
        request = request.attributes(key, value);
    }
    let out = request.send().await.map_err(|e| backend(&format!("CreateQueue {name}"), e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| QueueError::Backend(format!("CreateQueue {name}: no URL")))
}

async fn queue_url(client: &Client, name: &str) -> Result<String, QueueError> {
    let out =
        client.get_queue_url().queue_name(name).send().await.map_err(|e| backend(&format!("GetQueueUrl {name}"), e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| QueueError::Backend(format!("GetQueueUrl {name}: no URL")))
}

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(what: &str, e: SdkError<E, R>) -> QueueError {
    QueueError::Backend(format!("SQS {what}: {}", DisplayErrorContext(e)))
}

/// SQS counts visibility in whole seconds; a part second rounds up so a message is never
/// visible earlier than asked.
fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

impl Inner {
    fn held(&self) -> MutexGuard<'_, HashMap<String, &'static str>> {
        // Every update is one map operation, so a poisoned lock is still consistent.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn urls(&self, destination: &str) -> Result<(&'static str, &QueueUrls), QueueError> {
        self.queues
            .get_key_value(destination)
            .map(|(k, v)| (*k, v))
            .ok_or_else(|| QueueError::UnknownDestination(destination.to_owned()))
    }

    /// The queue URL for a receipt this node holds for `destination`; `ReceiptExpired`
    /// otherwise (acked, nacked, lost by the heartbeat, or never ours).
    fn held_receipt(&self, destination: &str, receipt: &Receipt) -> Result<&QueueUrls, QueueError> {
        let (_, urls) = self.urls(destination)?;
        if self.held().get(receipt.as_str()) == Some(&destination) {
            Ok(urls)
        } else {
            Err(expired(destination, receipt))
        }
    }

    /// One `ChangeMessageVisibilityBatch` round over the held receipts; a receipt SQS
    /// refuses is forgotten (its message is visible again or gone).
    async fn extend_held(&self) {
        let _visibility = self.visibility.lock().await;
        let by_destination: Vec<(&'static str, Vec<String>)> = {
            let held = self.held();
            self.queues
                .keys()
                .map(|d| (*d, held.iter().filter(|(_, dest)| *dest == d).map(|(r, _)| r.clone()).collect()))
                .collect()
        };
        let seconds = whole_seconds(self.config.visibility_timeout);
        for (destination, receipts) in by_destination {
            let Some(urls) = self.queues.get(destination) else { continue };
            for chunk in receipts.chunks(SQS_BATCH) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(r)
                            .visibility_timeout(seconds)
                            .build()
                            .ok()
                    })
                    .collect();
                match self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&urls.queue)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        let mut held = self.held();
                        for failed in out.failed() {
                            if let Some(r) = failed.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                                tracing::warn!(
                                    destination,
                                    code = failed.code(),
                                    "SQS refused a visibility extension; the message may be redelivered"
                                );
                                held.remove(r);
                            }
                        }
                    }
                    // Transient: the next round tries again, well before the timeout passes.
                    Err(e) => {
                        tracing::warn!(destination, error = %DisplayErrorContext(e), "SQS visibility heartbeat failed")
                    }
                }
            }
        }
    }

    fn delivery(&self, destination: &'static str, message: &Message) -> Option<Delivery> {
        let (Some(body), Some(receipt)) = (message.body(), message.receipt_handle()) else { return None };
        let decoded = match wire::decode(body) {
            Ok(m) => m,
            Err(why) => {
                // Not acked, so after max_receive_count receives SQS moves it to the DLQ.
                tracing::warn!(destination, message_id = message.message_id(), %why, "skipping a foreign SQS message");
                return None;
            }
        };
        let receive_count = system_attribute(message, &MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        self.held().insert(receipt.to_owned(), destination);
        Some(Delivery { receipt: Receipt::new(receipt), message: decoded, receive_count })
    }
}

fn system_attribute<'m>(message: &'m Message, name: &MessageSystemAttributeName) -> Option<&'m str> {
    message.attributes().and_then(|a| a.get(name)).map(String::as_str)
}

fn expired(destination: &str, receipt: &Receipt) -> QueueError {
    QueueError::ReceiptExpired { destination: destination.to_owned(), receipt: receipt.as_str().to_owned() }
}

/// Extends held receipts every third of the visibility timeout until the queue is dropped.
async fn heartbeat(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(inner) => inner.config.visibility_timeout / 3,
        None => return,
    };
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.extend_held().await;
    }
}

impl Queue for SqsQueue {
    async fn send_batch(&self, destination: &str, messages: Vec<QueueMessage>) -> Result<SendSummary, QueueError> {
        let (_, urls) = self.inner.urls(destination)?;
        if messages.len() > MAX_SEND_BATCH {
            return Err(QueueError::BatchTooLarge {
                destination: destination.to_owned(),
                len: messages.len(),
                limit: MAX_SEND_BATCH,
            });
        }
        // Repeats within the call are dropped here; SQS drops (silently) those sent before.
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(messages.len());
        for message in &messages {
            if !seen.insert(message.dedup_id.as_str()) {
                continue;
            }
            let invalid = |reason: String| QueueError::InvalidMessage { destination: destination.to_owned(), reason };
            let body = wire::encode(message).map_err(invalid)?;
            entries.push((body, message));
        }
        let summary = SendSummary { enqueued: entries.len(), deduplicated: messages.len() - entries.len() };
        for chunk in entries.chunks(SQS_BATCH) {
            let mut batch = Vec::with_capacity(chunk.len());
            for (i, (body, message)) in chunk.iter().enumerate() {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(&message.group)
                    .message_deduplication_id(&message.dedup_id)
                    .build()
                    .map_err(|e| QueueError::Backend(format!("SQS SendMessageBatch entry: {e}")))?;
                batch.push(entry);
            }
            let out = self
                .inner
                .client
                .send_message_batch()
                .queue_url(&urls.queue)
                .set_entries(Some(batch))
                .send()
                .await
                .map_err(|e| backend(&format!("SendMessageBatch {destination}"), e))?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError::Backend(format!(
                    "SQS SendMessageBatch {destination}: {} of {} refused, first {}: {}",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or("")
                )));
            }
        }
        Ok(summary)
    }

    async fn receive(&self, destination: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let (destination, urls) = self.inner.urls(destination)?;
        let max = max.min(super::MAX_RECEIVE_BATCH);
        let mut out = Vec::new();
        let mut wait_secs = whole_seconds(wait.min(self.inner.config.wait_time));
        let short_polling = wait_secs == 0;
        while out.len() < max {
            let ask = (max - out.len()).min(SQS_BATCH);
            let got = self
                .inner
                .client
                .receive_message()
                .queue_url(&urls.queue)
                .max_number_of_messages(i32::try_from(ask).unwrap_or(10))
                .wait_time_seconds(wait_secs)
                .visibility_timeout(whole_seconds(self.inner.config.visibility_timeout))
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| backend(&format!("ReceiveMessage {destination}"), e))?;
            let messages = got.messages();
            out.extend(messages.iter().filter_map(|m| self.inner.delivery(destination, m)));
            if messages.len() < ask {
                break;
            }
            // Long-poll only for the first message; then take what is there.
            wait_secs = 0;
        }
        if short_polling && out.is_empty() {
            // Configured not to long-poll: wait here instead, or an idle consumer would spin.
            tokio::time::sleep(wait).await;
        }
        Ok(out)
    }

    async fn ack(&self, destination: &str, receipt: &Receipt) -> Result<(), QueueError> {
        let urls = self.inner.held_receipt(destination, receipt)?;
        let result =
            self.inner.client.delete_message().queue_url(&urls.queue).receipt_handle(receipt.as_str()).send().await;
        match result {
            Ok(_) => {
                self.inner.held().remove(receipt.as_str());
                Ok(())
            }
            Err(e) if matches!(e.as_service_error(), Some(DeleteMessageError::ReceiptHandleIsInvalid(_))) => {
                self.inner.held().remove(receipt.as_str());
                Err(expired(destination, receipt))
            }
            // Kept: the ack may be retried with the same receipt.
            Err(e) => Err(backend(&format!("DeleteMessage {destination}"), e)),
        }
    }

    async fn nack(&self, destination: &str, receipt: &Receipt, retry_after: Duration) -> Result<(), QueueError> {
        let _visibility = self.inner.visibility.lock().await;
        let urls = self.inner.held_receipt(destination, receipt)?;
        let result = self
            .inner
            .client
            .change_message_visibility()
            .queue_url(&urls.queue)
            .receipt_handle(receipt.as_str())
            .visibility_timeout(whole_seconds(retry_after))
            .send()
            .await;
        match result {
            Ok(_) => {
                self.inner.held().remove(receipt.as_str());
                Ok(())
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(
                        ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_)
                            | ChangeMessageVisibilityError::MessageNotInflight(_)
                    )
                ) =>
            {
                self.inner.held().remove(receipt.as_str());
                Err(expired(destination, receipt))
            }
            Err(e) => Err(backend(&format!("ChangeMessageVisibility {destination}"), e)),
        }
    }

    async fn dead_letters(&self, destination: &str) -> Result<Vec<DeadLetter>, QueueError> {
        let (destination, urls) = self.inner.urls(destination)?;
        let client = &self.inner.client;
        let mut seen: Vec<Message> = Vec::new();
        for _ in 0..MAX_PEEK_CALLS {
            let got = client
                .receive_message()
                .queue_url(&urls.dead_letters)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(PEEK_VISIBILITY_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(|e| backend(&format!("ReceiveMessage {destination} dead letters"), e))?;
            if got.messages().is_empty() {
                break;
            }
            seen.extend(got.messages().iter().cloned());
        }
        // Make everything seen visible again: a peek consumes nothing.
        let receipts: Vec<&str> = seen.iter().filter_map(Message::receipt_handle).collect();
        for chunk in receipts.chunks(SQS_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*r)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            client
                .change_message_visibility_batch()
                .queue_url(&urls.dead_letters)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend(&format!("ChangeMessageVisibilityBatch {destination} dead letters"), e))?;
        }
        let mut dead: Vec<DeadLetter> = seen
            .iter()
            .filter_map(|m| {
                let message = wire::decode(m.body()?).ok()?;
                let dead_at = system_attribute(m, &MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse::<i64>().ok())
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .unwrap_or_default();
                // SQS moves a message once it was received max_receive_count times.
                Some(DeadLetter { message, receive_count: self.inner.config.max_receive_count, dead_at })
            })
            .collect();
        dead.sort_by_key(|d| d.dead_at);
        Ok(dead)
    }

    /// SQS keeps an accepted message (replicated) until it is deleted or its retention ends.
    fn durable(&self) -> bool {
        true
    }
}
