//! `GET /operator/settlement`: the settlement pipeline as the running settlement operator sees
//! it (trades queued, the open batch, transactions in flight per nonce), its wallet's nonces as
//! the node counts them, and the recent alerts. The operator console polls it.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::ActorError;
use crate::api::auth::Operator;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::settlement::chain::Chain;
use crate::settlement::nonce::TxPurpose;

type Json<T> = Result<web::Json<T>, ApiError>;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenBatchInfo {
    pub batch: u64,
    pub trades: usize,
    /// Attempts of this batch that failed and were rolled forward.
    pub failures: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptInfo {
    /// Gas price of this signed transaction, in wei (decimal string: it may exceed 2^53).
    pub gas_price_wei: String,
    /// `batch <id> as chain index <n>`, `filler` (a zero-value self-transfer consuming a stuck
    /// nonce) or `withdrawal <user> #<nonce>`.
    pub purpose: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InFlightInfo {
    pub nonce: u64,
    /// `sent` (one transaction), `bumped` (replaced at a higher gas price) or `stuck` (being
    /// consumed by a filler transaction).
    pub state: String,
    /// Signed transactions for this nonce, oldest first.
    pub attempts: Vec<AttemptInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NonceInfo {
    /// The next nonce the operator will sign.
    pub next: u64,
    /// Mined, as the node counts them (absent when the node does not answer).
    pub chain_latest: Option<u64>,
    /// Mined or in the node's mempool.
    pub chain_pending: Option<u64>,
    /// Signed nonces the node holds neither mined nor pending.
    pub gap: Option<u64>,
    /// In-flight nonces that count as stuck (being consumed by a filler).
    pub stuck: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertInfo {
    /// `trade_voided`, `settlement_failed`, `market_halted`, `stuck`.
    pub kind: String,
    pub market: Option<String>,
    pub message: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SettlementPipeline {
    /// The settlement operator's wallet.
    pub operator: String,
    pub stream: String,
    pub version: u64,
    /// False between a failure of the operator actor and its restart, and on a standby node.
    pub running: bool,
    /// Set on a standby node (several nodes): the node that runs the operator ("another
    /// node" if it could not be read); the operator's fields are then empty.
    pub hosted_on: Option<String>,
    /// Trades taken from the settlement queue and not yet in a batch.
    pub queued_trades: usize,
    /// Withdrawals held until the chain answers.
    pub queued_withdrawals: usize,
    pub open_batch: Option<OpenBatchInfo>,
    pub in_flight: Vec<InFlightInfo>,
    pub nonces: NonceInfo,
    /// The contract's batch index the next batch will take.
    pub next_chain_index: u64,
    pub settled_batches: u64,
    pub settled_trades: u64,
    pub failed_batches: u64,
    pub voided_trades: u64,
    /// Settlement alerts raised since start, and the latest ones (newest last).
    pub alerts_total: u64,
    pub alerts: Vec<AlertInfo>,
    /// Admin commands not carried out since start (conflicts, refusals).
    pub admin_alerts: u64,
    /// Why the operator or the node could not be read, if it could not.
    pub error: Option<String>,
}

/// Alerts returned at most: the console shows the latest, the rest are in the logs.
const ALERTS_SHOWN: usize = 20;

fn purpose_text(purpose: &TxPurpose) -> String {
    match purpose {
        TxPurpose::Batch { batch, chain_index } => format!("batch {batch} as chain index {chain_index}"),
        TxPurpose::Filler => "filler".to_owned(),
        TxPurpose::Withdrawal { user, nonce } => format!("withdrawal {user} #{nonce}"),
    }
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses(
        (status = 200, description = "The settlement pipeline: queued trades, batches in flight, nonces, alerts", body = SettlementPipeline),
        (status = 401, body = ErrorBody),
        (status = 409, description = "No chain configured", body = ErrorBody),
    ),
)]
#[get("/settlement")]
pub async fn pipeline(state: web::Data<AppState>, _: Operator) -> Json<SettlementPipeline> {
    let chain = state.chain()?;
    let handle = &chain.settlement;
    let alerts_all = handle.alerts.recent();
    let alerts = alerts_all
        .iter()
        .skip(alerts_all.len().saturating_sub(ALERTS_SHOWN))
        .map(|a| AlertInfo {
            kind: a.kind.to_owned(),
            market: a.market.clone(),
            message: a.message.clone(),
            at_ms: a.at_ms,
        })
        .collect();
    let mut pipeline = SettlementPipeline {
        operator: handle.address.to_checksum(None),
        stream: String::new(),
        version: 0,
        running: handle.running(),
        hosted_on: None,
        queued_trades: 0,
        queued_withdrawals: 0,
        open_batch: None,
        in_flight: Vec::new(),
        nonces: NonceInfo { next: 0, chain_latest: None, chain_pending: None, gap: None, stuck: Vec::new() },
        next_chain_index: 0,
        settled_batches: 0,
        settled_trades: 0,
        failed_batches: 0,
        voided_trades: 0,
        alerts_total: handle.alerts.count(),
        alerts,
        admin_alerts: chain.admin.alerts.load(std::sync::atomic::Ordering::Relaxed),
        error: None,
    };
    // A stopped operator cannot be inspected; the page says so instead of failing, because
    // the alerts and the node's view are still worth seeing then.
    let view = match handle.inspect().await {
        Ok(view) => view,
        Err(ActorError::HostedElsewhere { owner, .. }) => {
            // Not an error: another node runs the operator, and this page says which.
            pipeline.hosted_on = Some(owner.unwrap_or_else(|| "another node".to_owned()));
            return Ok(web::Json(pipeline));
        }
        Err(e) => {
            pipeline.error = Some(format!("the settlement operator did not answer: {e}"));
            return Ok(web::Json(pipeline));
        }
    };
    pipeline.stream = view.stream.to_string();
    pipeline.version = view.version;
    pipeline.queued_trades = view.pending_trades;
    pipeline.queued_withdrawals = view.pending_withdrawals;
    pipeline.open_batch = view.batch.map(|(batch, trades, failures)| OpenBatchInfo { batch, trades, failures });
    pipeline.next_chain_index = view.next_chain_index;
    pipeline.settled_batches = view.stats.settled_batches;
    pipeline.settled_trades = view.stats.settled_trades;
    pipeline.failed_batches = view.stats.failed_batches;
    pipeline.voided_trades = view.stats.voided_trades;
    pipeline.nonces.next = view.next_nonce;
    for slot in &view.in_flight {
        let stuck = matches!(slot.attempts.last(), Some((_, TxPurpose::Filler)));
        if stuck {
            pipeline.nonces.stuck.push(slot.nonce);
        }
        pipeline.in_flight.push(InFlightInfo {
            nonce: slot.nonce,
            state: match (stuck, slot.attempts.len()) {
                (true, _) => "stuck",
                (false, 0 | 1) => "sent",
                (false, _) => "bumped",
            }
            .to_owned(),
            attempts: slot
                .attempts
                .iter()
                .map(|(price, purpose)| AttemptInfo {
                    gas_price_wei: price.to_string(),
                    purpose: purpose_text(purpose),
                })
                .collect(),
        });
    }
    // A fresh HTTP client per request: cheap next to the node's answer, and it keeps this
    // route from holding a connection the server's other parts would have to share.
    match chain.link.settlement_chain() {
        Ok(node) => match node.nonce_counts(handle.address).await {
            Ok(counts) => {
                pipeline.nonces.chain_latest = Some(counts.latest);
                pipeline.nonces.chain_pending = Some(counts.pending);
                pipeline.nonces.gap = Some(view.next_nonce.saturating_sub(counts.pending));
            }
            Err(e) => pipeline.error = Some(format!("the node did not answer: {e}")),
        },
        Err(e) => pipeline.error = Some(format!("no settlement chain: {e}")),
    }
    Ok(web::Json(pipeline))
}
