//! What every handler shares: the engine, the stores, the feeds, the limits and the metrics.
//!
//! The server runs on the embedded adapters (SQLite event and view stores, in-process
//! queues), named once here; a production adapter is a change of these aliases (or an enum
//! over them), not of every handler.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::api::auth::AuthMode;
use crate::api::catalog::Catalog;
use crate::api::chain::ChainRuntime;
use crate::api::error::ApiError;
use crate::api::feed::{HeartbeatFeed, MarketFeed, UserFeeds};
use crate::api::metrics::Metrics;
use crate::api::rate_limit::TokenBuckets;
use crate::api::sessions::Sessions;
use crate::config::{AuthConfig, Limits, WebSocketConfig};
use crate::domain::{AssetId, MarketId, UserId};
use crate::engine::{Engine, ProjectionStats};
use crate::queue::any::AnyQueue;
use crate::store::any::{AnyEventStore, AnyViewStore};

/// The adapters `hob serve` was configured with (`store.events`, `store.views`, `store.queue`).
pub type Events = AnyEventStore;
pub type Views = AnyViewStore;
pub type Queues = AnyQueue;
pub type AppEngine = Engine<Events, Queues>;

pub struct AppState {
    pub engine: AppEngine,
    pub views: Arc<Views>,
    pub catalog: Arc<Catalog>,
    pub markets: BTreeMap<MarketId, Arc<MarketFeed>>,
    pub users: Arc<UserFeeds<Events, Views>>,
    pub heartbeat: Arc<HeartbeatFeed>,
    pub metrics: Arc<Metrics>,
    pub projections: Arc<ProjectionStats>,
    pub auth: AuthMode,
    /// Login challenges, sessions and agent keys (signed mode; agents count in both modes).
    pub sessions: Sessions,
    /// The EIP-712 domain orders are signed under.
    pub domain: alloy::sol_types::Eip712Domain,
    pub chain_id: u64,
    pub ip_limits: TokenBuckets<IpAddr>,
    pub user_limits: TokenBuckets<UserId>,
    pub limits: Limits,
    pub websocket: WebSocketConfig,
    pub operator_token: Option<String>,
    pub dev_faucet: bool,
    /// The chain trades settle on (`[chain]`), with its operators; `None` in mode `none`.
    pub chain: Option<Arc<ChainRuntime>>,
    /// Becomes true when the server stops: WebSocket connections close ("going away").
    pub stopping: tokio::sync::watch::Receiver<bool>,
    next_connection: AtomicU64,
    /// Each withdrawable asset's token on the exchange's chain; empty until the chain is set
    /// up (`set_withdrawal_tokens`), and withdrawals are refused until then.
    withdrawal_tokens: RwLock<BTreeMap<AssetId, alloy::primitives::Address>>,
}

pub struct StateParts {
    pub engine: AppEngine,
    pub views: Arc<Views>,
    pub catalog: Arc<Catalog>,
    pub markets: BTreeMap<MarketId, Arc<MarketFeed>>,
    pub users: Arc<UserFeeds<Events, Views>>,
    pub heartbeat: Arc<HeartbeatFeed>,
    pub metrics: Arc<Metrics>,
    pub projections: Arc<ProjectionStats>,
    pub auth: AuthMode,
    pub auth_config: AuthConfig,
    pub exchange: alloy::primitives::Address,
    pub limits: Limits,
    pub websocket: WebSocketConfig,
    pub operator_token: Option<String>,
    pub dev_faucet: bool,
    pub chain: Option<Arc<ChainRuntime>>,
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    pub fn new(p: StateParts) -> AppState {
        AppState {
            ip_limits: TokenBuckets::new(p.limits.ip_requests_per_sec, p.limits.ip_burst),
            user_limits: TokenBuckets::new(p.limits.user_requests_per_sec, p.limits.user_burst),
            engine: p.engine,
            views: p.views,
            catalog: p.catalog,
            markets: p.markets,
            users: p.users,
            heartbeat: p.heartbeat,
            metrics: p.metrics,
            projections: p.projections,
            auth: p.auth,
            sessions: Sessions::new(p.auth_config.clone()),
            domain: crate::chain::eip712::domain(p.auth_config.chain_id, p.exchange),
            chain_id: p.auth_config.chain_id,
            limits: p.limits,
            websocket: p.websocket,
            operator_token: p.operator_token,
            dev_faucet: p.dev_faucet,
            chain: p.chain,
            stopping: p.stopping,
            next_connection: AtomicU64::new(1),
            withdrawal_tokens: RwLock::new(BTreeMap::new()),
        }
    }

    /// Names the token of each asset users may withdraw (known once the contracts are
    /// deployed, so set after start).
    pub fn set_withdrawal_tokens(&self, tokens: BTreeMap<AssetId, alloy::primitives::Address>) {
        // A poisoned lock only means a writer panicked mid-assignment of a whole map.
        let mut held = self.withdrawal_tokens.write().unwrap_or_else(|p| p.into_inner());
        *held = tokens;
    }

    pub fn withdrawal_token(&self, asset: AssetId) -> Option<alloy::primitives::Address> {
        self.withdrawal_tokens.read().unwrap_or_else(|p| p.into_inner()).get(&asset).copied()
    }

    pub fn withdrawal_tokens(&self) -> BTreeMap<AssetId, alloy::primitives::Address> {
        self.withdrawal_tokens.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The market feed of `id`, or `unknown_market`.
    pub fn market(&self, id: &str) -> Result<&Arc<MarketFeed>, ApiError> {
        let entry = self.catalog.market(id)?;
        self.markets.get(&entry.id()).ok_or_else(|| ApiError::unknown_market(id))
    }

    pub fn check_ip_rate(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        self.ip_limits.check(ip, now).map_err(|wait| {
            self.metrics.rate_limited.with_label_values(&["ip"]).inc();
            ApiError::rate_limited(wait)
        })
    }

    pub fn check_user_rate(&self, user: UserId, now: Instant) -> Result<(), ApiError> {
        self.user_limits.check(user, now).map_err(|wait| {
            self.metrics.rate_limited.with_label_values(&["user"]).inc();
            ApiError::rate_limited(wait)
        })
    }

    /// The chain, or `no_chain` (mode `none`).
    pub fn chain(&self) -> Result<&Arc<ChainRuntime>, ApiError> {
        self.chain
            .as_ref()
            .ok_or_else(|| ApiError::conflict("no_chain", "no chain is configured (chain.mode = \"none\")"))
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}
