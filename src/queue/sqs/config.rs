//! What the SQS adapter needs to know: where SQS is, who we are, which queues to use and
//! their timings. Plain data with a validation step, so a bad configuration is refused before
//! anything is created.

use std::time::Duration;

use crate::queue::{QueueError, ADMIN_QUEUE, MARKET_QUEUE, SETTLEMENT_QUEUE, USER_QUEUE};

/// SQS limits that bound the configuration (AWS quotas, the same on moto).
const MAX_QUEUE_NAME: usize = 80;
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_WAIT: Duration = Duration::from_secs(20);
const MAX_RECEIVE_COUNT: u32 = 1000;

/// Static keys. Without them the AWS default chain is used (environment, profile, container
/// or instance role), which is what a deployment on AWS wants.
#[derive(Clone, PartialEq, Eq)]
pub struct SqsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for SqsCredentials {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// The SQS queue name of each hob destination. Each queue gets a dead-letter queue named
/// after it (`market.fifo` -> `market-dlq.fifo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsQueueNames {
    pub market: String,
    pub settlement: String,
    pub admin: String,
    pub user: String,
}

impl Default for SqsQueueNames {
    fn default() -> SqsQueueNames {
        SqsQueueNames {
            market: "market.fifo".into(),
            settlement: "settlement-operator.fifo".into(),
            admin: "admin-operator.fifo".into(),
            user: "user.fifo".into(),
        }
    }
}

impl SqsQueueNames {
    /// The default names behind `prefix` (an environment, a test): `{prefix}market.fifo`...
    pub fn with_prefix(prefix: &str) -> SqsQueueNames {
        let d = SqsQueueNames::default();
        SqsQueueNames {
            market: format!("{prefix}{}", d.market),
            settlement: format!("{prefix}{}", d.settlement),
            admin: format!("{prefix}{}", d.admin),
            user: format!("{prefix}{}", d.user),
        }
    }

    /// (hob destination, SQS queue name) for every destination.
    pub fn by_destination(&self) -> [(&'static str, &str); 4] {
        [
            (MARKET_QUEUE, &self.market),
            (SETTLEMENT_QUEUE, &self.settlement),
            (ADMIN_QUEUE, &self.admin),
            (USER_QUEUE, &self.user),
        ]
    }
}

/// The dead-letter queue of `queue` (a validated `.fifo` name): `{stem}-dlq.fifo`.
pub fn dead_letter_name(queue: &str) -> String {
    format!("{}-dlq.fifo", queue.strip_suffix(".fifo").unwrap_or(queue))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsConfig {
    /// `None`: the AWS endpoint of `region`. Set for moto or a VPC endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// `None`: the AWS default credential chain.
    pub credentials: Option<SqsCredentials>,
    pub queue_names: SqsQueueNames,
    /// Create the queues and their dead-letter queues at connect (idempotent while the
    /// attributes match); otherwise they must exist.
    pub create_queues: bool,
    /// Receives without an ack after which SQS moves a message to the dead-letter queue.
    pub max_receive_count: u32,
    /// How long a received message stays invisible; the heartbeat extends it every third of
    /// this while the message is held. Whole seconds (SQS's unit), at least one.
    pub visibility_timeout: Duration,
    /// The longest one receive long-polls (SQS allows up to 20 s).
    pub wait_time: Duration,
}

impl SqsConfig {
    /// AWS in `region` with the default queue names and credential chain; queues must exist.
    pub fn aws(region: impl Into<String>) -> SqsConfig {
        SqsConfig {
            endpoint: None,
            region: region.into(),
            credentials: None,
            queue_names: SqsQueueNames::default(),
            create_queues: false,
            max_receive_count: 10,
            visibility_timeout: Duration::from_secs(30),
            wait_time: Duration::from_secs(20),
        }
    }

    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |why: String| Err(QueueError::InvalidConfig(why));
        if self.region.is_empty() {
            return bad("region is empty".into());
        }
        for (_, name) in self.queue_names.by_destination() {
            let dlq = dead_letter_name(name);
            let stem_ok = name.strip_suffix(".fifo").is_some_and(|stem| {
                !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
            if !stem_ok || dlq.len() > MAX_QUEUE_NAME {
                return bad(format!(
                    "queue name {name:?}: must be letters, digits, '-' or '_' ending in .fifo, \
                     and its dead-letter queue name {dlq:?} at most {MAX_QUEUE_NAME} characters"
                ));
            }
        }
        let names = self.queue_names.by_destination();
        if names.iter().enumerate().any(|(i, (_, a))| names[..i].iter().any(|(_, b)| a == b)) {
            return bad("two destinations share one queue name".into());
        }
        if !(1..=MAX_RECEIVE_COUNT).contains(&self.max_receive_count) {
            return bad(format!("max_receive_count {} is outside 1..={MAX_RECEIVE_COUNT}", self.max_receive_count));
        }
        if self.visibility_timeout < Duration::from_secs(1) || self.visibility_timeout > MAX_VISIBILITY {
            return bad(format!("visibility_timeout {:?} is outside 1 s..=12 h", self.visibility_timeout));
        }
        if self.wait_time > MAX_WAIT {
            return bad(format!("wait_time {:?} is over SQS's 20 s", self.wait_time));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "../../../unit_tests/queue/sqs/config.rs"]
mod tests;
