//! The settlement metrics' source: a running settlement operator and the chain node it sends
//! to, read at scrape time. Wiring one in is one line where the server starts the operator:
//! `state.metrics.watch_settlement(Arc::new(OperatorProbe::new(handle.clone(), chain.clone())));`

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::actors::settlement::SettlementHandle;
use crate::api::metrics::{SettlementProbe, SettlementSample};
use crate::events::EventStore;
use crate::settlement::chain::Chain;

pub struct OperatorProbe<S: EventStore + 'static, C: Chain + 'static> {
    handle: Arc<SettlementHandle<S, C>>,
    chain: Arc<C>,
}

impl<S: EventStore + 'static, C: Chain + 'static> OperatorProbe<S, C> {
    pub fn new(handle: Arc<SettlementHandle<S, C>>, chain: Arc<C>) -> OperatorProbe<S, C> {
        OperatorProbe { handle, chain }
    }

    async fn read(&self) -> SettlementSample {
        let h = &self.handle;
        let mut sample = SettlementSample {
            up: h.running(),
            chain_errors: h.counters.chain_errors.load(Ordering::Relaxed),
            alerts: h.alerts.count(),
            ..SettlementSample::default()
        };
        // A stopped actor cannot be inspected; its stream totals come back with the restart
        // (the counters only move forward meanwhile).
        if let Ok(view) = h.inspect().await {
            sample.batches_settled = view.stats.settled_batches;
            sample.trades_settled = view.stats.settled_trades;
            sample.batches_failed = view.stats.failed_batches;
            sample.trades_voided = view.stats.voided_trades;
            sample.pending_trades = view.pending_trades as u64;
            sample.in_flight = view.in_flight.len() as u64;
            // An unreachable node is counted in chain_errors by the operator; the gap is then
            // unknown and reads 0 rather than a guess.
            if let Ok(counts) = self.chain.nonce_counts(h.address).await {
                sample.nonce_gap = view.next_nonce.saturating_sub(counts.pending);
            }
        }
        sample
    }
}

impl<S: EventStore + 'static, C: Chain + 'static> SettlementProbe for OperatorProbe<S, C> {
    fn sample(&self) -> BoxFuture<'_, SettlementSample> {
        Box::pin(self.read())
    }
}
