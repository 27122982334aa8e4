//! The chain routes: `GET /api/v1/chain` tells clients where the contract and the tokens are
//! (to approve and deposit), and the operator's `/operator/chain` shows the contract's state
//! and the admin operator's work, and pauses or unpauses the contract through the admin queue.

use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::admin_operator::AdminCommand;
use crate::actors::ActorError;
use crate::api::auth::Operator;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;

type Json<T> = Result<web::Json<T>, ApiError>;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainInfo {
    /// `none`, `anvil` or `rpc`; with `none` the other fields are absent.
    pub mode: String,
    pub chain_id: Option<u64>,
    /// The node's JSON-RPC URL.
    pub rpc_url: Option<String>,
    /// The `HobExchange` contract: approve it, then `deposit(token, amount)`.
    pub exchange: Option<String>,
    /// Each asset's ERC-20 token, by symbol.
    pub tokens: BTreeMap<String, String>,
    /// The settlement operator's wallet.
    pub operator: Option<String>,
    /// `POST /api/v1/dev/faucet` mints test tokens on this chain.
    pub faucet: bool,
}

#[utoipa::path(
    tag = "public",
    responses((status = 200, description = "Where trades settle: the chain, the contract and the tokens", body = ChainInfo)),
)]
#[get("/chain")]
pub async fn chain_info(state: web::Data<AppState>) -> web::Json<ChainInfo> {
    let info = match &state.chain {
        None => ChainInfo {
            mode: "none".to_owned(),
            chain_id: None,
            rpc_url: None,
            exchange: None,
            tokens: BTreeMap::new(),
            operator: None,
            faucet: false,
        },
        Some(chain) => {
            let link = &chain.link;
            ChainInfo {
                mode: link.mode.as_str().to_owned(),
                chain_id: Some(link.chain_id),
                rpc_url: Some(link.rpc_url.clone()),
                exchange: Some(link.exchange.to_checksum(None)),
                tokens: link.tokens.iter().map(|(a, t)| (a.to_string(), t.to_checksum(None))).collect(),
                operator: Some(link.operator.address().to_checksum(None)),
                faucet: state.dev_faucet && link.has_faucet(),
            }
        }
    };
    web::Json(info)
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminOutcomeInfo {
    /// The version of the admin operator's stream holding it.
    pub version: u64,
    /// The outcome as stored (`outcome` names it).
    #[schema(value_type = Object)]
    pub outcome: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainStatus {
    pub mode: String,
    pub exchange: String,
    /// The contract's pause flag as the node reads now.
    pub paused: Option<bool>,
    pub latest_block: Option<u64>,
    /// Why the node could not be read, if it could not.
    pub error: Option<String>,
    /// Configured markets the contract does not hold (yet).
    pub unregistered_markets: Vec<String>,
    pub admin_operator: String,
    /// Empty on a standby node.
    pub admin_stream: String,
    /// Set on a standby node (several nodes): the node that runs the admin operator.
    pub admin_hosted_on: Option<String>,
    /// Admin commands not carried out (conflicts, refusals) since start.
    pub admin_alerts: u64,
    pub settlement_alerts: u64,
    /// The admin operator's latest outcomes, oldest first.
    pub recent: Vec<AdminOutcomeInfo>,
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses((status = 200, body = ChainStatus), (status = 401, body = ErrorBody), (status = 409, description = "No chain configured", body = ErrorBody)),
)]
#[get("/chain")]
pub async fn chain_status(state: web::Data<AppState>, _: Operator) -> Json<ChainStatus> {
    let chain = state.chain()?;
    // A standby node (several nodes) answers with what the chain says and where the admin
    // operator runs; its recent outcomes are on that node.
    let (view, admin_hosted_on) = match chain.admin.inspect().await {
        Ok(view) => (Some(view), None),
        Err(ActorError::HostedElsewhere { owner, .. }) => (None, Some(owner.unwrap_or_else(|| "another node".into()))),
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let (paused, latest_block, unregistered, error) =
        match (chain.link.admin.paused().await, chain.link.probe().await, chain.unregistered().await) {
            (Ok(p), Ok(b), Ok(u)) => (Some(p), Some(b), u, None),
            (p, b, u) => {
                let error =
                    [p.err().map(|e| e.to_string()), b.err(), u.as_ref().err().cloned()].into_iter().flatten().next();
                (None, None, u.unwrap_or_default(), error)
            }
        };
    Ok(web::Json(ChainStatus {
        mode: chain.link.mode.as_str().to_owned(),
        exchange: chain.link.exchange.to_checksum(None),
        paused,
        latest_block,
        error,
        unregistered_markets: unregistered,
        admin_operator: chain.admin.address.to_checksum(None),
        admin_stream: view.as_ref().map(|v| v.stream.to_string()).unwrap_or_default(),
        admin_hosted_on,
        admin_alerts: chain.admin.alerts.load(std::sync::atomic::Ordering::Relaxed),
        settlement_alerts: chain.settlement.alerts.count(),
        recent: view
            .map(|v| v.recent)
            .unwrap_or_default()
            .into_iter()
            .map(|(version, outcome)| AdminOutcomeInfo {
                version,
                outcome: serde_json::to_value(outcome).unwrap_or_default(),
            })
            .collect(),
    }))
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminCommandAccepted {
    /// `pause` or `unpause`.
    pub command: String,
    /// The `admin` stream's version holding the command; the admin operator carries it out
    /// asynchronously and records the outcome (see `GET /operator/chain`).
    pub admin_version: u64,
}

async fn issue(state: &AppState, command: AdminCommand) -> Result<HttpResponse, ApiError> {
    let chain = state.chain()?;
    let admin_version = chain.admin.issue(&command).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Accepted().json(AdminCommandAccepted { command: command.name().to_owned(), admin_version }))
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses((status = 202, description = "Queued for the admin operator, which pauses the contract (deposits and settlement stop)", body = AdminCommandAccepted), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
#[post("/chain/pause")]
pub async fn pause(state: web::Data<AppState>, _: Operator) -> Result<HttpResponse, ApiError> {
    issue(&state, AdminCommand::Pause).await
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses((status = 202, description = "Queued for the admin operator, which unpauses the contract", body = AdminCommandAccepted), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
#[post("/chain/unpause")]
pub async fn unpause(state: web::Data<AppState>, _: Operator) -> Result<HttpResponse, ApiError> {
    issue(&state, AdminCommand::Unpause).await
}
