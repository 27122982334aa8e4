//! What `/readyz` asks before it says the server can take traffic: a list of named checks,
//! each an async probe of one dependency (the event store, the view store, the queue, the
//! chain node once `hob serve` has one). Checks run concurrently, each under a deadline, so
//! one hung dependency makes the answer "unavailable", never a hung probe.
//!
//! Adding a dependency is one line where the server is wired (`api::server`):
//! `readiness.add("chain", readiness::chain_reachable(chain.clone()));`

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};

use crate::api::wire::HealthCheck;
use crate::events::{EventStore, StreamId};
use crate::projections::ViewStore;
use crate::queue::{Queue, MARKET_QUEUE};
use crate::settlement::chain::Chain;

/// How long one check may take before it counts as failed.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(2);

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks `/readyz` runs, in the order it reports them.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Probe)>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Adds a check: `probe` is called on every `/readyz` and answers `Err(why)` when the
    /// dependency cannot serve.
    pub fn add<F, Fut>(&mut self, name: &str, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let probe: Probe = Arc::new(move || Box::pin(probe()));
        self.checks.push((name.to_owned(), probe));
    }

    /// Runs every check at once, each under `deadline`.
    pub async fn run(&self, deadline: Duration) -> Vec<HealthCheck> {
        let runs = self.checks.iter().map(|(name, probe)| {
            let probe = probe.clone();
            async move {
                let result = match tokio::time::timeout(deadline, probe()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
                };
                HealthCheck { name: name.clone(), ok: result.is_ok(), detail: result.err() }
            }
        });
        join_all(runs).await
    }
}

/// The event store answers a read.
pub fn event_store_answers<S: EventStore + 'static>(
    store: Arc<S>,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let store = store.clone();
        Box::pin(async move { store.stream_version(&StreamId::admin()).await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// The view store answers a read.
pub fn view_store_answers<V: ViewStore + 'static>(
    views: Arc<V>,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let views = views.clone();
        Box::pin(
            async move { views.checkpoint("depth", &StreamId::admin()).await.map(drop).map_err(|e| e.to_string()) },
        )
    }
}

/// The queue answers (the market destination's dead letters, a cheap read).
pub fn queue_answers<Q: Queue + 'static>(
    queue: Arc<Q>,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let queue = queue.clone();
        Box::pin(async move { queue.dead_letters(MARKET_QUEUE).await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// The chain node answers `eth_blockNumber`.
pub fn chain_reachable<C: Chain + 'static>(
    chain: Arc<C>,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let chain = chain.clone();
        Box::pin(async move { chain.block_number().await.map(drop).map_err(|e| e.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn every_check_is_reported_and_a_hung_one_fails_by_its_deadline() {
        // given one dependency that answers, one that refuses and one that never answers
        let mut readiness = Readiness::new();
        readiness.add("up", || async { Ok(()) });
        readiness.add("down", || async { Err("connection refused".to_owned()) });
        readiness.add("hung", || async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok(())
        });
        // when the checks run
        let checks = readiness.run(Duration::from_millis(50)).await;
        // then each is reported by name, in order, with why it failed
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["up", "down", "hung"]);
        assert!(checks[0].ok && checks[0].detail.is_none());
        assert_eq!(checks[1].detail.as_deref(), Some("connection refused"));
        assert!(!checks[2].ok);
        assert!(checks[2].detail.as_deref().is_some_and(|d| d.contains("50 ms")), "{:?}", checks[2]);
    }
}
