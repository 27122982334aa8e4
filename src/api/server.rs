//! Starting and stopping the server: opens the stores, starts the engine, the projections
//! and the feeds, and serves the routes. Must run inside an actix system (the engine's actors
//! live on its arbiters).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer, ResponseError};
use tokio::sync::watch;
use utoipa_actix_web::AppExt;

use crate::actors::chain_watcher::WatcherConfig;
use crate::actors::settlement::SettlementError;
use crate::api::auth::AuthMode;
use crate::api::catalog::Catalog;
use crate::api::chain::{chain_markets, ChainRuntime};
use crate::api::feed::{market, FeedError, HeartbeatFeed, MarketFeed, UserFeeds};
use crate::api::metrics::Metrics;
use crate::api::readiness::{self, Readiness};
use crate::api::request_id;
use crate::api::rest::system::ApiDocument;
use crate::api::rest::{self, Mounts};
use crate::api::settlement_probe::OperatorProbe;
use crate::api::state::{AppEngine, AppState, StateParts};
use crate::chain::link::{ChainLink, ChainSetupError};
use crate::config::{ChainMode, Config, ConfigError, MarketDef, SettlementMode, StoreLocation};
use crate::domain::AssetId;
use crate::engine::{Engine, EngineConfig};
use crate::events::EventStore;
use crate::events::{StoreError, SystemClock};
use crate::projections::ViewStoreError;
use crate::queue::any::AnyQueue;
use crate::queue::{operator_group, DestinationConfig, InProcessQueue, SqsConfig, SqsQueue, SqsQueueNames};
use crate::store::any::{AnyEventStore, AnyViewStore};
use crate::store::sqlite_views::SqliteViewStore;
use crate::store::{MongoEventStore, MongoViewStore, SqliteEventStore};

/// How long a stop waits for requests in flight.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("opening the event store {path}: {source}")]
    EventStore { path: PathBuf, source: StoreError },
    #[error("opening the view store {path}: {source}")]
    ViewStore { path: PathBuf, source: ViewStoreError },
    #[error("loading the market-data feeds: {0}")]
    Feed(#[from] FeedError),
    #[error("the market grid: {0}")]
    Grid(String),
    #[error("listening on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("generating the OpenAPI document: {0}")]
    OpenApi(String),
    #[error("the chain: {0}")]
    Chain(#[from] ChainSetupError),
    #[error("starting the settlement operator: {0}")]
    Settlement(#[from] SettlementError),
    #[error("the admin operator: {0}")]
    Admin(String),
    #[error("connecting to the queues: {0}")]
    Queue(String),
    #[error(
        "chain.mode = \"anvil\" starts an empty chain, but the event store {0} holds an earlier run's events; \
         start from a fresh store (remove it and the view store) or settle on a persistent chain (mode = \"rpc\")"
    )]
    StaleStore(PathBuf),
}

/// A started server.
pub struct RunningServer {
    addr: SocketAddr,
    handle: ServerHandle,
    state: web::Data<AppState>,
    openapi: Arc<String>,
    stop: watch::Sender<bool>,
}

impl RunningServer {
    /// Validates `config`, opens everything and starts serving. The listen address may have
    /// port 0; `local_addr` tells the port taken.
    pub async fn start(mut config: Config) -> Result<RunningServer, ServerError> {
        let defs = config.validate()?;
        let events_at = config.events_location()?;
        let events_path = events_at.label();
        let store = Arc::new(open_events(&events_at).await?);
        if config.chain.mode == ChainMode::Anvil {
            // Balances and settlement nonces in the store would not match a chain that starts
            // empty: refuse, rather than settle against the wrong state.
            let streams = store
                .list_streams()
                .await
                .map_err(|source| ServerError::EventStore { path: events_path.clone(), source })?;
            if !streams.is_empty() {
                return Err(ServerError::StaleStore(events_path));
            }
        }
        let views = Arc::new(open_views(&config.views_location()?).await?);
        // The chain before the engine: anvil mode fixes the domain users sign under (chain id, exchange)
        // and the settlement operator, which the engine and the API are built with.
        let link = connect_chain(&config, &defs).await?;
        if let Some(link) = &link {
            config.auth.chain_id = link.chain_id;
            config.auth.exchange_address = link.exchange.to_string();
            config.engine.settlement_operator = link.operator.address().to_string();
        }
        let clock = Arc::new(SystemClock);
        let queue_config = DestinationConfig { capacity: config.store.queue_capacity, ..DestinationConfig::default() };
        let queue = Arc::new(open_queue(&config, clock.clone(), queue_config).await?);
        // What /readyz asks; a new dependency (the chain node) is one more `add` here.
        let mut readiness = Readiness::new();
        readiness.add("event_store", readiness::event_store_answers(store.clone()));
        readiness.add("view_store", readiness::view_store_answers(views.clone()));
        readiness.add("queue", readiness::queue_answers(queue.clone()));
        let readiness = web::Data::new(readiness);
        let engine_config = EngineConfig {
            markets: defs.iter().map(|d| d.spec.clone()).collect(),
            settlement_group: operator_group(config.settlement_operator()?),
            snapshot_every: config.engine.snapshot_every,
            relay_poll: config.engine.relay_poll(),
        };
        let leases = config.lease_config()?;
        if let Some(leases) = &leases {
            tracing::info!(node = %leases.node, lease_ttl_ms = leases.ttl.as_millis() as u64, "hosting actors under leases");
        }
        let engine = Engine::start_leased(engine_config, store.clone(), queue, clock, leases);
        for market in config.markets.iter().filter(|m| m.settlement == SettlementMode::ConfirmBeforeCommit) {
            if let Ok(id) = crate::domain::MarketId::new(&market.id) {
                engine.set_confirm_before_commit(id, true);
            }
        }
        let projections = engine.start_projections(views.clone(), config.engine.projection_interval());
        let chain = match link {
            Some(link) => Some(Arc::new(start_chain(&engine, link, &config, &defs).await?)),
            None => None,
        };

        let assets = config.assets.iter().filter_map(|a| AssetId::new(&a.symbol).ok().map(|id| (id, a.decimals)));
        let catalog = Arc::new(Catalog::new(&defs, assets).map_err(|e| ServerError::Grid(e.to_string()))?);
        let metrics = Arc::new(Metrics::new().map_err(|e| ServerError::Metrics(e.to_string()))?);
        let (stop, stopped) = watch::channel(false);
        let mut markets = BTreeMap::new();
        for entry in catalog.markets() {
            let feed = Arc::new(MarketFeed::load(entry.clone(), store.as_ref(), views.as_ref()).await?);
            market::spawn(
                feed.clone(),
                store.clone(),
                views.clone(),
                metrics.clone(),
                config.engine.feed_poll(),
                stopped.clone(),
            );
            markets.insert(entry.id(), feed);
        }
        let users =
            UserFeeds::new(catalog.clone(), store.clone(), views.clone(), config.engine.feed_poll(), stopped.clone());
        let heartbeat = Arc::new(HeartbeatFeed::default());
        heartbeat
            .clone()
            .spawn(std::time::Duration::from_millis(config.websocket.heartbeat_interval_ms), stopped.clone());

        let auth = if config.server.dev_insecure_user_header {
            tracing::warn!(
                "DEVELOPMENT MODE: X-Hob-User is trusted as the caller's identity; never expose this server"
            );
            AuthMode::DevInsecureHeader
        } else {
            AuthMode::Signed
        };
        let exchange = alloy::primitives::Address::from(config.exchange_address()?.0);
        let mounts = Mounts { auth, dev_faucet: config.server.dev_faucet };
        let state = web::Data::new(AppState::new(StateParts {
            engine,
            views,
            catalog,
            markets,
            users,
            heartbeat,
            metrics,
            projections,
            auth,
            auth_config: config.auth.clone(),
            exchange,
            limits: config.limits.clone(),
            websocket: config.websocket.clone(),
            operator_token: config.operator.token.clone(),
            dev_faucet: config.server.dev_faucet,
            chain,
            stopping: stopped,
        }));
        if let Some(chain) = &state.chain {
            // Withdrawals name tokens; the settlement metrics read the running operator.
            state.set_withdrawal_tokens(chain.link.tokens.clone());
            let node = chain.link.settlement_chain()?;
            state.metrics.watch_settlement(Arc::new(OperatorProbe::new(chain.settlement.clone(), node)));
        }
        let openapi = Arc::new(openapi_document(mounts)?);
        let document = web::Data::new(ApiDocument(openapi.as_str().to_owned()));

        let max_body = config.limits.max_body_bytes;
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .into_utoipa_app()
                .configure(|cfg| rest::routes(cfg, mounts))
                .into_app()
                .app_data(app_state.clone())
                .app_data(document.clone())
                .app_data(readiness.clone())
                .app_data(rest::json_config(max_body))
                .app_data(rest::query_config())
                .app_data(rest::path_config())
                .default_service(web::to(rest::no_such_route))
                .wrap(from_fn(edge))
                .wrap(from_fn(request_id::trace_requests))
        })
        .workers(config.server.workers)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .bind(config.server.listen)
        .map_err(|source| ServerError::Bind { addr: config.server.listen, source })?;
        let addr = server.addrs().first().copied().unwrap_or(config.server.listen);
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(RunningServer { addr, handle, state, openapi, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The OpenAPI document served at `/openapi.json`.
    pub fn openapi(&self) -> &str {
        &self.openapi
    }

    /// Closes the WebSocket connections ("going away"), stops accepting, finishes the
    /// requests in flight (for at most a few seconds), then stops the feeds and the engine.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.stop(true).await;
        self.state.engine.shutdown();
        self.state.engine.release_leases().await;
        if let Some(chain) = &self.state.chain {
            chain.link.stop_devnet();
        }
    }
}

/// The chain `[chain]` names (none in mode `none`); in anvil mode, spawned and deployed.
async fn connect_chain(config: &Config, defs: &[MarketDef]) -> Result<Option<ChainLink>, ServerError> {
    let decimals: BTreeMap<AssetId, u8> =
        defs.iter().flat_map(|d| [(d.spec.base, d.base_decimals), (d.spec.quote, d.quote_decimals)]).collect();
    let assets: Vec<(AssetId, u8)> = decimals.into_iter().collect();
    let exchange = alloy::primitives::Address::from(config.exchange_address()?.0);
    Ok(ChainLink::connect(&config.chain, &assets, config.auth.chain_id, exchange).await?)
}

/// Starts the settlement and admin operators on `link` and has the admin operator register
/// the configured markets the contract lacks.
async fn start_chain(
    engine: &AppEngine,
    link: ChainLink,
    config: &Config,
    defs: &[MarketDef],
) -> Result<ChainRuntime, ServerError> {
    let node = link.settlement_chain()?;
    let settlement = Arc::new(engine.start_settlement(link.settlement_config(&config.chain), node.clone()).await?);
    let admin = engine.start_admin_operator(link.admin.clone()).await.map_err(|e| ServerError::Admin(e.to_string()))?;
    let tokens = link.tokens.iter().map(|(asset, token)| (*token, *asset)).collect();
    let mut watching = WatcherConfig::new(link.chain_id, link.exchange, tokens);
    watching.confirmations = config.chain.confirmations;
    let watcher = engine.start_chain_watcher(watching, node).await.map_err(|e| ServerError::Admin(e.to_string()))?;
    let markets = chain_markets(&link, defs).map_err(ServerError::Admin)?;
    let runtime = ChainRuntime { link, settlement, watcher, markets, admin };
    let issued = runtime.register_markets().await.map_err(|e| ServerError::Admin(e.to_string()))?;
    tracing::info!(issued, "market registrations issued to the admin operator");
    Ok(runtime)
}

/// The configured event store: the SQLite file (its directory created), or MongoDB.
async fn open_events(at: &StoreLocation) -> Result<AnyEventStore, ServerError> {
    let fail = |source| ServerError::EventStore { path: at.label(), source };
    match at {
        StoreLocation::Sqlite(path) => {
            create_parent(path)?;
            Ok(AnyEventStore::Sqlite(SqliteEventStore::open(path).map_err(fail)?))
        }
        StoreLocation::Mongo { uri, database } => {
            Ok(AnyEventStore::Mongo(MongoEventStore::connect(uri, database).await.map_err(fail)?))
        }
    }
}

async fn open_views(at: &StoreLocation) -> Result<AnyViewStore, ServerError> {
    let fail = |source| ServerError::ViewStore { path: at.label(), source };
    match at {
        StoreLocation::Sqlite(path) => {
            create_parent(path)?;
            Ok(AnyViewStore::Sqlite(SqliteViewStore::open(path).map_err(fail)?))
        }
        StoreLocation::Mongo { uri, database } => {
            Ok(AnyViewStore::Mongo(MongoViewStore::connect(uri, database).await.map_err(fail)?))
        }
    }
}

/// The configured queues: in this process, or SQS FIFO (credentials from the AWS chain).
async fn open_queue(
    config: &Config,
    clock: Arc<SystemClock>,
    in_process: DestinationConfig,
) -> Result<AnyQueue, ServerError> {
    if config.store.queue != "sqs" {
        return Ok(AnyQueue::InProcess(InProcessQueue::new(clock, in_process)));
    }
    let mut sqs = SqsConfig::aws(config.store.sqs_region.clone());
    sqs.endpoint = Some(config.store.sqs_endpoint.clone()).filter(|e| !e.is_empty());
    sqs.queue_names = SqsQueueNames::with_prefix(&config.store.sqs_queue_prefix);
    sqs.create_queues = config.store.sqs_create_queues;
    sqs.max_receive_count = config.store.sqs_max_receive_count;
    sqs.visibility_timeout = std::time::Duration::from_millis(config.store.sqs_visibility_timeout_ms);
    sqs.wait_time = std::time::Duration::from_millis(config.store.sqs_wait_time_ms);
    Ok(AnyQueue::Sqs(SqsQueue::connect(sqs).await.map_err(|e| ServerError::Queue(e.to_string()))?))
}

fn create_parent(path: &Path) -> Result<(), ServerError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::DataDir { path: dir.to_owned(), source })
        }
        _ => Ok(()),
    }
}

/// The document of exactly the routes `mounts` mounts.
pub fn openapi_document(mounts: Mounts) -> Result<String, ServerError> {
    let (_, mut doc) = App::new().into_utoipa_app().configure(|cfg| rest::routes(cfg, mounts)).split_for_parts();
    // Built from scratch: the default info names the OpenAPI library's own package.
    doc.info = utoipa::openapi::Info::new("hob", env!("CARGO_PKG_VERSION"));
    doc.info.description = Some(
        "Hybrid order book exchange: REST and WebSocket API. Prices, sizes and amounts are decimal strings on each \
         market's grid; errors are {\"code\", \"message\"}."
            .to_owned(),
    );
    doc.to_pretty_json().map_err(|e| ServerError::OpenApi(e.to_string()))
}

/// Every request passes here: the per-IP rate limit (health and metrics exempt, so monitoring
/// keeps working under load) and the response count by status class.
async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let exempt = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    if let (Some(state), false, Some(peer)) = (&state, exempt, req.peer_addr()) {
        if let Err(e) = state.check_ip_rate(peer.ip(), Instant::now()) {
            state.metrics.http_responses.with_label_values(&["4xx"]).inc();
            return Ok(req.into_response(e.error_response()).map_into_right_body());
        }
    }
    let response = next.call(req).await?;
    if let Some(state) = &state {
        let class = match response.status().as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        state.metrics.http_responses.with_label_values(&[class]).inc();
    }
    Ok(response.map_into_left_body())
}
