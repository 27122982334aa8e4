//! The operator API under `/operator/`: live actor state, halting and resuming markets, and
//! rebuilding the read models. Every route requires the configured bearer token (`Operator`);
//! without a configured token nobody gets in.
//!
//! Unlike the public routes these read the actors themselves (their mailboxes, versions and
//! state), because that is what an operator needs to see.

use std::collections::BTreeMap;

use actix_web::{get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actors::deps::sha256;
use crate::api::auth::Operator;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::api::wire::{BalanceInfo, WireSide};
use crate::domain::{MarketStatus, OrderStatus, OrderType, PendingRequest, Side, UserId};
use crate::events::{EventStore, StreamId};
use crate::projections::{MemoryViewStore, Projector, ViewBatch, ViewStore, ViewStoreError};
use crate::queue::{Queue, DESTINATIONS};

type Json<T> = Result<web::Json<T>, ApiError>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    pub version: u64,
    /// SHA-256 of the stored snapshot, as the actor checks it on load.
    pub state_hash: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActorInfo {
    pub stream: String,
    pub version: u64,
    /// Messages sent to the actor and not yet answered.
    pub mailbox_depth: usize,
    pub last_snapshot: Option<SnapshotInfo>,
    /// SHA-256 of the live state's canonical bytes (users; a market's is not exposed yet).
    pub state_hash: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActorsResponse {
    pub markets: Vec<ActorInfo>,
    pub users: Vec<ActorInfo>,
    /// True when more user actors run than `limit`.
    pub truncated: bool,
    /// Actor counters since start: appends, conflicts, restarts, panics, snapshots, ...
    pub counters: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActorsQuery {
    /// Most user actors listed (default 100, at most 10000).
    pub limit: Option<usize>,
}

async fn last_snapshot(state: &AppState, stream: &StreamId) -> Result<Option<SnapshotInfo>, ApiError> {
    let snapshot =
        state.engine.store().load_latest_snapshot(stream).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(snapshot.map(|s| SnapshotInfo { version: s.version, state_hash: hex(&s.state_hash) }))
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>"), ActorsQuery),
    responses((status = 200, body = ActorsResponse), (status = 401, body = ErrorBody)),
)]
#[get("/actors")]
pub async fn actors(state: web::Data<AppState>, _: Operator, q: web::Query<ActorsQuery>) -> Json<ActorsResponse> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let depths = state.engine.registry().mailbox_depths();
    let depth = |stream: &StreamId| depths.get(stream.as_str()).copied().unwrap_or(0);
    let (markets, mut users) = state.engine.registry().running().await;
    let mut market_rows = Vec::with_capacity(markets.len());
    for id in markets {
        let stream = StreamId::market(id);
        let view = state.engine.market(id, 0, None).await?;
        market_rows.push(ActorInfo {
            mailbox_depth: depth(&stream),
            version: view.version,
            last_snapshot: last_snapshot(&state, &stream).await?,
            state_hash: None,
            stream: stream.to_string(),
        });
    }
    users.sort();
    let truncated = users.len() > limit;
    let mut user_rows = Vec::new();
    for user in users.into_iter().take(limit) {
        let stream = StreamId::user(user);
        let view = state.engine.inspect_user(user).await?;
        user_rows.push(ActorInfo {
            mailbox_depth: depth(&stream),
            version: view.version,
            last_snapshot: last_snapshot(&state, &stream).await?,
            state_hash: Some(hex(&sha256(&view.state.canonical_bytes()))),
            stream: stream.to_string(),
        });
    }
    let c = &state.engine.registry().deps().counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let counters = [
        ("appends", load(&c.appends)),
        ("conflicts", load(&c.conflicts)),
        ("deduplicated", load(&c.deduplicated)),
        ("panics", load(&c.panics)),
        ("restarts", load(&c.restarts)),
        ("snapshots", load(&c.snapshots)),
        ("snapshot_failures", load(&c.snapshot_failures)),
        ("snapshots_refused", load(&c.snapshots_refused)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(web::Json(ActorsResponse { markets: market_rows, users: user_rows, truncated, counters }))
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketInspection {
    pub market: String,
    pub stream: String,
    /// The market actor's version.
    pub version: u64,
    /// Where the market-data feed is (it follows the stream, so it may be a poll behind).
    pub feed_version: u64,
    /// `open` or `halted`.
    pub status: String,
    pub resting_orders: usize,
    pub next_trade_id: u64,
    pub mailbox_depth: usize,
    /// `[price, quantity, orders]`, best first, the top 50 levels.
    #[schema(value_type = Vec<Vec<String>>)]
    pub bids: Vec<[String; 3]>,
    #[schema(value_type = Vec<Vec<String>>)]
    pub asks: Vec<[String; 3]>,
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>"), ("market" = String, Path, description = "Market id")),
    responses((status = 200, body = MarketInspection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
#[get("/markets/{market}")]
pub async fn inspect_market(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<String>,
) -> Json<MarketInspection> {
    let feed = state.market(&path)?;
    let entry = feed.entry();
    let view = state.engine.market(entry.id(), 50, None).await?;
    let levels = |side: &[crate::domain::LevelSummary]| {
        side.iter().map(|l| [entry.price_str(l.price), entry.qty_str(l.qty), l.orders.to_string()]).collect()
    };
    let stream = StreamId::market(entry.id());
    Ok(web::Json(MarketInspection {
        market: entry.id().to_string(),
        mailbox_depth: state.engine.registry().mailbox_depths().get(stream.as_str()).copied().unwrap_or(0),
        stream: stream.to_string(),
        version: view.version,
        feed_version: feed.version(),
        status: status_text(view.status).to_owned(),
        resting_orders: view.resting_orders,
        next_trade_id: view.next_trade.0,
        bids: levels(&view.bids),
        asks: levels(&view.asks),
    }))
}

fn status_text(status: MarketStatus) -> &'static str {
    match status {
        MarketStatus::Open => "open",
        MarketStatus::Halted => "halted",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenOrderInspection {
    pub order_id: String,
    pub market: String,
    pub client_order_id: Option<String>,
    pub side: WireSide,
    pub price: Option<String>,
    pub remaining: String,
    /// `sent` (the market has not answered) or `working`.
    pub status: String,
    /// Requests to the market not answered yet: `amend`, `cancel`.
    pub pending: Vec<String>,
    /// What the order's lock still holds, in the locked asset.
    pub locked: Option<String>,
    pub nonce: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UserInspection {
    pub user: String,
    pub stream: String,
    pub version: u64,
    pub mailbox_depth: usize,
    pub state_hash: String,
    pub balances: Vec<BalanceInfo>,
    pub open_orders: Vec<OpenOrderInspection>,
    /// The used nonces still remembered (the window of the highest ones), ascending.
    pub nonces: Vec<u64>,
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>"), ("address" = String, Path, description = "0x + 40 hex digits")),
    responses((status = 200, body = UserInspection), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
)]
#[get("/users/{address}")]
pub async fn inspect_user(state: web::Data<AppState>, _: Operator, path: web::Path<String>) -> Json<UserInspection> {
    let user = UserId::from_hex(path.trim()).map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?;
    let view = state.engine.inspect_user(user).await?;
    let catalog = &state.catalog;
    let account = view.state.account();
    let balances = account
        .balances()
        .map(|(asset, b)| BalanceInfo {
            asset: asset.to_string(),
            available: catalog.amount_str(asset, b.available),
            locked: catalog.amount_str(asset, b.locked),
            settling: catalog.amount_str(asset, b.settling),
        })
        .collect();
    let open_orders = view
        .state
        .open_orders()
        .map(|(id, o)| {
            let entry = catalog.market_by_id(o.market);
            let price = match o.order.order_type {
                OrderType::Limit { .. } => o.price,
                OrderType::Market { worst_price } => worst_price,
            };
            OpenOrderInspection {
                order_id: id.0.to_string(),
                market: o.market.to_string(),
                client_order_id: o.client_order_id.as_ref().map(|c| c.as_str().to_owned()),
                side: match o.order.side {
                    Side::Buy => WireSide::Buy,
                    Side::Sell => WireSide::Sell,
                },
                price: price.map(|p| entry.map_or_else(|| p.0.to_string(), |e| e.price_str(p))),
                remaining: entry.map_or_else(|| o.qty.0.to_string(), |e| e.qty_str(o.qty)),
                status: match o.status {
                    OrderStatus::Sent => "sent",
                    OrderStatus::Working => "working",
                }
                .to_owned(),
                pending: o
                    .pending
                    .iter()
                    .map(|p| match p {
                        PendingRequest::Amend { .. } => "amend".to_owned(),
                        PendingRequest::Cancel => "cancel".to_owned(),
                    })
                    .collect(),
                locked: account.lock(id).map(|l| catalog.amount_str(l.asset, l.amount)),
                nonce: o.nonce,
            }
        })
        .collect();
    let stream = StreamId::user(user);
    Ok(web::Json(UserInspection {
        user: user.to_string(),
        mailbox_depth: state.engine.registry().mailbox_depths().get(stream.as_str()).copied().unwrap_or(0),
        stream: stream.to_string(),
        version: view.version,
        state_hash: hex(&sha256(&view.state.canonical_bytes())),
        balances,
        open_orders,
        nonces: view.state.nonces().used().collect(),
    }))
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketStatusResponse {
    pub market: String,
    /// `halted` or `open`.
    pub status: String,
}

async fn set_halted(state: &AppState, market: &str, halted: bool) -> Json<MarketStatusResponse> {
    let id = state.catalog.market(market)?.id();
    state.engine.set_halted(id, halted).await?;
    let view = state.engine.market(id, 0, None).await?;
    Ok(web::Json(MarketStatusResponse { market: id.to_string(), status: status_text(view.status).to_owned() }))
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>"), ("market" = String, Path, description = "Market id")),
    responses((status = 200, description = "New orders are refused; cancels still work", body = MarketStatusResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
#[post("/markets/{market}/halt")]
pub async fn halt(state: web::Data<AppState>, _: Operator, path: web::Path<String>) -> Json<MarketStatusResponse> {
    set_halted(&state, &path, true).await
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>"), ("market" = String, Path, description = "Market id")),
    responses((status = 200, body = MarketStatusResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
#[post("/markets/{market}/resume")]
pub async fn resume(state: web::Data<AppState>, _: Operator, path: web::Path<String>) -> Json<MarketStatusResponse> {
    set_halted(&state, &path, false).await
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RebuildResponse {
    pub events_folded: u64,
    pub streams: usize,
    /// Views written over the live ones.
    pub views_written: usize,
    /// Of those, how many differed from the live view before the rebuild.
    pub views_differing: usize,
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses((status = 200, description = "Every view rebuilt from the events alone and written over the live one", body = RebuildResponse), (status = 401, body = ErrorBody)),
)]
#[post("/views/rebuild")]
pub async fn rebuild_views(state: web::Data<AppState>, _: Operator) -> Json<RebuildResponse> {
    // The projection loop may save between our read of a checkpoint and our write; the
    // write then conflicts and is simply tried again from fresh checkpoints.
    for _ in 0..5 {
        match rebuild_once(&state).await {
            Err(RebuildError::Views(ViewStoreError::CheckpointConflict { .. })) => continue,
            Err(RebuildError::Views(e)) => return Err(ApiError::internal(e.to_string())),
            Err(RebuildError::Other(e)) => return Err(e),
            Ok(report) => return Ok(web::Json(report)),
        }
    }
    Err(ApiError::unavailable("rebuild_busy", "the projection loop kept moving the checkpoints; try again"))
}

enum RebuildError {
    Views(ViewStoreError),
    Other(ApiError),
}

impl From<ViewStoreError> for RebuildError {
    fn from(e: ViewStoreError) -> RebuildError {
        RebuildError::Views(e)
    }
}

/// Rebuilds every view from the events into memory, then writes each over the live one and
/// moves its checkpoint to the rebuilt version, all in one atomic save through the
/// `ViewStore` port.
async fn rebuild_once(state: &AppState) -> Result<RebuildResponse, RebuildError> {
    let rebuilt = MemoryViewStore::new();
    let report = Projector::new()
        .catch_up(state.engine.store().as_ref(), &rebuilt)
        .await
        .map_err(|e| RebuildError::Other(ApiError::internal(e.to_string())))?;
    let live = state.views.as_ref();
    let mut batch = ViewBatch::default();
    let mut differing = 0;
    for view in rebuilt.list().await? {
        if live.load(&view.kind, &view.key).await?.as_ref() != Some(&view.json) {
            differing += 1;
        }
        batch.views.push(view);
    }
    for checkpoint in rebuilt.checkpoints().await? {
        let from = live.checkpoint(&checkpoint.projection, &checkpoint.stream).await?;
        batch.checkpoints.push(crate::projections::CheckpointMove {
            projection: checkpoint.projection,
            stream: checkpoint.stream,
            from,
            to: checkpoint.version,
        });
    }
    let views_written = batch.views.len();
    live.save(batch).await?;
    Ok(RebuildResponse {
        events_folded: report.events_folded,
        streams: report.streams,
        views_written,
        views_differing: differing,
    })
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterInfo {
    /// The queue it was moved out of: `market`, `settlement-operator`, `admin-operator`, `user`.
    pub destination: String,
    /// Its FIFO group (`market:{id}`, `user:{address}`, ...): the actor it was for.
    pub group: String,
    /// The outbox record it carries, `{stream}:{version}:{index}` of the append that wrote it.
    pub source: String,
    pub receive_count: u32,
    /// When it was moved (the in-process queue) or first sent (SQS), RFC 3339.
    pub dead_at: String,
    /// The record itself, as the consumer would have read it.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLettersResponse {
    /// Every destination's dead letters, oldest first within one.
    pub dead_letters: Vec<DeadLetterInfo>,
}

#[utoipa::path(
    tag = "operator",
    params(("Authorization" = String, Header, description = "Bearer <operator token>")),
    responses((status = 200, description = "Records the queues gave up delivering, for an operator to inspect and redrive", body = DeadLettersResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
)]
#[get("/dead-letters")]
pub async fn dead_letters(state: web::Data<AppState>, _: Operator) -> Json<DeadLettersResponse> {
    let mut out = Vec::new();
    for destination in DESTINATIONS {
        // A peek: SQS hands them back at once, the in-process queue only reads them.
        let dead =
            state.engine.queue().dead_letters(destination).await.map_err(|e| {
                ApiError::unavailable("queue_unavailable", format!("dead letters of {destination}: {e}"))
            })?;
        out.extend(dead.into_iter().map(|d| DeadLetterInfo {
            destination: destination.to_owned(),
            group: d.message.group,
            source: d.message.source.key(),
            receive_count: d.receive_count,
            dead_at: d.dead_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            body: d.message.body,
        }));
    }
    Ok(web::Json(DeadLettersResponse { dead_letters: out }))
}
