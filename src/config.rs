//! `hob serve`'s configuration. Four layers, each overriding the one before: built-in
//! defaults (the embedded demo: SQLite under `./data`, in-process queues, two markets), a TOML
//! file (`--config`), `HOB_*` environment variables, and command-line flags.
//!
//! Everything is checked once, at start (`Config::validate`), and a bad option is one typed
//! error naming the option, before any file is opened: never a panic or a surprise later.
//! Every option is documented in README.md ("Configuration") and in `examples/hob.toml`.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::actors::leases::{LeaseConfig, NodeId};
use crate::api::amounts::{parse_amount, MAX_DECIMALS};
pub use crate::chain::config::{ChainConfig, ChainMode};
use crate::domain::{AssetId, Bps, MarketId, MarketSpec, QtyLots, UserId, MAX_OPEN_ORDERS};
use crate::telemetry::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("option {option}: {message}")]
    Invalid { option: String, message: String },
}

fn invalid(option: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { option: option.into(), message: message.into() }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub engine: EngineSection,
    pub operator: OperatorConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub websocket: WebSocketConfig,
    pub log: LogConfig,
    /// Several nodes on one MongoDB store: this node's id and its leases.
    pub cluster: ClusterConfig,
    /// Where trades settle (`none`, a local `anvil`, or a node over `rpc`).
    pub chain: ChainConfig,
    /// Replaces the demo assets when given.
    pub assets: Vec<AssetConfig>,
    /// Replaces the demo markets when given.
    pub markets: Vec<MarketConfig>,
}

impl Default for Config {
    /// The embedded demo exchange.
    fn default() -> Config {
        Config {
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            engine: EngineSection::default(),
            operator: OperatorConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            websocket: WebSocketConfig::default(),
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
            chain: ChainConfig::default(),
            assets: demo_assets(),
            markets: demo_markets(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// HTTP worker threads.
    pub workers: usize,
    /// DEVELOPMENT ONLY: trust the `X-Hob-User` header as the caller's identity instead of a
    /// signed-in session, and accept unsigned orders. Anyone can act as anyone; never enable
    /// it on a reachable server. Off: signed mode (`[auth]`).
    pub dev_insecure_user_header: bool,
    /// DEVELOPMENT ONLY: mount `POST /api/v1/dev/faucet`, which credits test funds to any
    /// address.
    pub dev_faucet: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The event store: `sqlite:<file>`, or `mongodb://host,.../<database>?replicaSet=...`.
    pub events: String,
    /// The read-model (view) store, the same two forms.
    pub views: String,
    /// The queues between the actors: `in-process` or `sqs`.
    pub queue: String,
    /// Most messages each in-process queue destination holds.
    pub queue_capacity: usize,
    /// `sqs`: the endpoint (empty: AWS's own for the region; set for a VPC endpoint or moto).
    pub sqs_endpoint: String,
    pub sqs_region: String,
    /// `sqs`: prefixed to every queue name (`{prefix}market.fifo` ...), e.g. an environment.
    pub sqs_queue_prefix: String,
    /// `sqs`: create the FIFO queues and their dead-letter queues at start (else they must exist).
    pub sqs_create_queues: bool,
    /// `sqs`: receives after which an unacknowledged message moves to its dead-letter queue.
    /// With several nodes a node's receive of a record for an actor hosted elsewhere counts
    /// too, so a cluster wants more than one node alone.
    pub sqs_max_receive_count: u32,
    /// `sqs`: how long a received message stays invisible to other nodes (extended while it
    /// is processed); after a node dies, the messages it held come back after this long.
    pub sqs_visibility_timeout_ms: u64,
    /// `sqs`: the longest one receive long-polls (up to SQS's 20 s); 0 short-polls, pausing
    /// between empty receives.
    pub sqs_wait_time_ms: u64,
}

/// Several `hob serve` nodes sharing one MongoDB store and the SQS queues. Leases are taken
/// whenever the event store is MongoDB (the only store several nodes can share).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id, the owner written into its leases; empty: `hostname-pid-random`,
    /// generated at start.
    pub node_id: String,
    /// A lease not renewed for this long may be taken by another node (renewed every third).
    pub lease_ttl_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig { node_id: String::new(), lease_ttl_ms: 10_000 }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// An actor saves a snapshot after this many events (0: never).
    pub snapshot_every: u64,
    /// How often the read models are brought up to date.
    pub projection_interval_ms: u64,
    /// How often the outbox relay polls for records a crash left unpublished.
    pub relay_poll_ms: u64,
    /// How often the market-data and private feeds read new events from the streams.
    pub feed_poll_ms: u64,
    /// The settlement operator wallet (`0x` + 40 hex digits): the settlement queue's group.
    pub settlement_operator: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// The bearer token of `/operator/*`. Unset: the operator API refuses every request.
    pub token: Option<String>,
}

/// Signed requests (the default unless `server.dev_insecure_user_header`): the EIP-712 domain
/// users sign under, and the login challenges and sessions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The chain the exchange contract lives on: the domain's `chainId`.
    pub chain_id: u64,
    /// The exchange contract (`0x` + 40 hex digits): the domain's `verifyingContract`.
    pub exchange_address: String,
    /// How long a login challenge may be signed and sent back.
    pub challenge_ttl_ms: u64,
    /// How long a session token is valid after login.
    pub session_ttl_ms: u64,
    /// Most challenges waiting to be answered, over all callers.
    pub max_challenges: usize,
    /// Most live sessions, over all users.
    pub max_sessions: usize,
    /// Most agent keys one wallet may authorise.
    pub max_agents_per_user: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Token bucket per client IP, over every HTTP request and WebSocket message.
    pub ip_requests_per_sec: u32,
    pub ip_burst: u32,
    /// Token bucket per authenticated user, over private requests and messages.
    pub user_requests_per_sec: u32,
    pub user_burst: u32,
    /// Largest HTTP request body.
    pub max_body_bytes: usize,
    /// Most items in one batch request.
    pub max_batch: usize,
    /// Most open orders per user (at most the engine's own cap).
    pub max_open_orders: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Largest message a client may send.
    pub max_message_bytes: usize,
    /// Messages waiting to be written to one client; a client that lets it fill up is
    /// disconnected ("slow consumer") so it never holds anything else back.
    pub send_buffer: usize,
    /// Most subscriptions per connection.
    pub max_subscriptions: usize,
    /// Requests (order entry) one connection may have in flight.
    pub max_in_flight: usize,
    /// The server pings this often ...
    pub ping_interval_ms: u64,
    /// ... and closes a connection it heard nothing from for this long.
    pub idle_timeout_ms: u64,
    /// Period of the `heartbeat` channel.
    pub heartbeat_interval_ms: u64,
}

/// What `hob serve` logs and how (`crate::telemetry`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (a terminal) or `json` (one object per line, for a log shipper).
    pub format: LogFormat,
    /// A level or per-target directives, e.g. `info` or `hob=debug,actix_web=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { format: LogFormat::Text, level: "info".to_owned() }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    pub symbol: String,
    /// Decimal places of the token: a base unit is `10^-decimals` of the asset.
    pub decimals: u8,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    pub id: String,
    pub base: String,
    pub quote: String,
    /// Base units per lot: the size step.
    pub base_lot: u64,
    /// Quote units per tick per lot: with `base_lot`, fixes the price step.
    pub quote_tick: u64,
    #[serde(default = "one")]
    pub min_qty_lots: u64,
    #[serde(default = "default_max_qty_lots")]
    pub max_qty_lots: u64,
    /// Smallest order value, a decimal in the quote asset ("10" = 10 USDT).
    #[serde(default = "zero_text")]
    pub min_notional: String,
    #[serde(default)]
    pub maker_fee_bps: u16,
    #[serde(default)]
    pub taker_fee_bps: u16,
    /// The market's id in the settlement contract.
    pub chain_market_id: u32,
    /// `async` (default): matching never waits for the chain. `confirm-before-commit`: each
    /// command waits until the previous command's trades settled on-chain, as the original
    /// system did (for comparison; see BENCHMARKS.md).
    #[serde(default)]
    pub settlement: SettlementMode,
}

/// When a market's trades must be on-chain.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SettlementMode {
    #[default]
    Async,
    ConfirmBeforeCommit,
}

fn one() -> u64 {
    1
}

fn default_max_qty_lots() -> u64 {
    1_000_000_000
}

fn zero_text() -> String {
    "0".to_owned()
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 2,
            dev_insecure_user_header: false,
            dev_faucet: false,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            events: "sqlite:./data/hob.db".to_owned(),
            views: "sqlite:./data/views.db".to_owned(),
            queue: "in-process".to_owned(),
            queue_capacity: 100_000,
            sqs_endpoint: String::new(),
            sqs_region: "us-east-1".to_owned(),
            sqs_queue_prefix: String::new(),
            sqs_create_queues: false,
            sqs_max_receive_count: 10,
            sqs_visibility_timeout_ms: 30_000,
            sqs_wait_time_ms: 20_000,
        }
    }
}

impl Default for EngineSection {
    fn default() -> EngineSection {
        EngineSection {
            snapshot_every: 1_000,
            projection_interval_ms: 250,
            relay_poll_ms: 100,
            feed_poll_ms: 10,
            settlement_operator: UserId([0; 20]).to_string(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            chain_id: 31_337,
            exchange_address: UserId([0; 20]).to_string(),
            challenge_ttl_ms: 60_000,
            session_ttl_ms: 24 * 60 * 60 * 1_000,
            max_challenges: 10_000,
            max_sessions: 100_000,
            max_agents_per_user: 16,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ip_requests_per_sec: 100,
            ip_burst: 200,
            user_requests_per_sec: 50,
            user_burst: 100,
            max_body_bytes: 64 * 1024,
            max_batch: 20,
            max_open_orders: MAX_OPEN_ORDERS,
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> WebSocketConfig {
        WebSocketConfig {
            max_message_bytes: 64 * 1024,
            send_buffer: 1_024,
            max_subscriptions: 64,
            max_in_flight: 64,
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            heartbeat_interval_ms: 1_000,
        }
    }
}

fn demo_assets() -> Vec<AssetConfig> {
    [("BTC", 8), ("ETH", 18), ("USDT", 6)]
        .into_iter()
        .map(|(symbol, decimals)| AssetConfig { symbol: symbol.to_owned(), decimals })
        .collect()
}

fn demo_markets() -> Vec<MarketConfig> {
    let market = |id: &str, base: &str, base_lot: u64, chain_market_id: u32| MarketConfig {
        id: id.to_owned(),
        base: base.to_owned(),
        quote: "USDT".to_owned(),
        base_lot,
        quote_tick: 1,
        min_qty_lots: 1,
        max_qty_lots: default_max_qty_lots(),
        min_notional: "1".to_owned(),
        maker_fee_bps: 10,
        taker_fee_bps: 20,
        chain_market_id,
        settlement: SettlementMode::Async,
    };
    // Lots of 0.0001 BTC (10^4 sat) and 0.0001 ETH (10^14 wei); with a quote tick of one
    // USDT base unit (10^-6) both price steps come out at 0.01 USDT.
    vec![market("BTC-USDT", "BTC", 10_000, 1), market("ETH-USDT", "ETH", 100_000_000_000_000, 2)]
}

/// Options given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServeFlags {
    pub listen: Option<SocketAddr>,
    pub store: Option<String>,
    pub views: Option<String>,
    pub workers: Option<usize>,
    pub operator_token: Option<String>,
    pub dev_insecure_user_header: bool,
    pub dev_faucet: bool,
    pub chain: Option<ChainMode>,
    pub chain_rpc_url: Option<String>,
    pub chain_block_time_ms: Option<u64>,
}

/// A market as the server runs it: the engine's spec plus what the edge needs to speak
/// decimals (price and size steps, the assets' decimal places) and the settlement contract's
/// id.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketDef {
    pub spec: MarketSpec,
    /// Price step in quote per base, e.g. 0.01.
    pub tick_size: Decimal,
    /// Size step in base, e.g. 0.0001.
    pub lot_size: Decimal,
    pub base_decimals: u8,
    pub quote_decimals: u8,
    pub chain_market_id: u32,
}

/// Where a store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// A MongoDB replica set (transactions need one); the database is the URI's path.
    Mongo {
        uri: String,
        database: String,
    },
}

impl StoreLocation {
    pub fn parse(option: &str, text: &str) -> Result<StoreLocation, ConfigError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if !path.trim().is_empty() {
                return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
            }
        }
        if let Some(rest) = text.strip_prefix("mongodb://").or_else(|| text.strip_prefix("mongodb+srv://")) {
            let path = rest.split_once('/').map(|(_, path)| path).unwrap_or("");
            let database = path.split('?').next().unwrap_or("");
            let valid =
                !database.is_empty() && database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(invalid(option, "a mongodb:// URI must name its database: mongodb://host/<database>?..."));
            }
            return Ok(StoreLocation::Mongo { uri: text.to_owned(), database: database.to_owned() });
        }
        Err(invalid(option, "must be sqlite:<file> or mongodb://host/<database>?replicaSet=..."))
    }

    /// Where, for messages: the file, or the MongoDB database (never the URI: it may hold a
    /// password).
    pub fn label(&self) -> PathBuf {
        match self {
            StoreLocation::Sqlite(path) => path.clone(),
            StoreLocation::Mongo { database, .. } => PathBuf::from(format!("mongodb database {database}")),
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `HOB_*` variables from `env`, then `flags`;
    /// validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &ServeFlags,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        for (name, value) in env {
            if name.starts_with("HOB_") {
                config.apply_env(&name, &value)?;
            }
        }
        config.apply_flags(flags);
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// One `HOB_*` variable. Only scalar options have a variable; assets and markets come
    /// from the file. An unknown `HOB_` name is an error: it is almost always a typo.
    pub fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError::Env { name: name.to_owned(), message };
        let v = value.trim();
        match name {
            "HOB_LISTEN" => self.server.listen = parse(v).map_err(err)?,
            "HOB_WORKERS" => self.server.workers = parse(v).map_err(err)?,
            "HOB_DEV_INSECURE_USER_HEADER" => self.server.dev_insecure_user_header = parse(v).map_err(err)?,
            "HOB_DEV_FAUCET" => self.server.dev_faucet = parse(v).map_err(err)?,
            "HOB_STORE" => self.store.events = v.to_owned(),
            "HOB_VIEWS" => self.store.views = v.to_owned(),
            "HOB_QUEUE" => self.store.queue = v.to_owned(),
            "HOB_QUEUE_CAPACITY" => self.store.queue_capacity = parse(v).map_err(err)?,
            "HOB_SQS_ENDPOINT" => self.store.sqs_endpoint = v.to_owned(),
            "HOB_SQS_REGION" => self.store.sqs_region = v.to_owned(),
            "HOB_SQS_QUEUE_PREFIX" => self.store.sqs_queue_prefix = v.to_owned(),
            "HOB_SQS_CREATE_QUEUES" => self.store.sqs_create_queues = parse(v).map_err(err)?,
            "HOB_SQS_MAX_RECEIVE_COUNT" => self.store.sqs_max_receive_count = parse(v).map_err(err)?,
            "HOB_SQS_VISIBILITY_TIMEOUT_MS" => self.store.sqs_visibility_timeout_ms = parse(v).map_err(err)?,
            "HOB_SQS_WAIT_TIME_MS" => self.store.sqs_wait_time_ms = parse(v).map_err(err)?,
            "HOB_NODE_ID" => self.cluster.node_id = v.to_owned(),
            "HOB_LEASE_TTL_MS" => self.cluster.lease_ttl_ms = parse(v).map_err(err)?,
            "HOB_SNAPSHOT_EVERY" => self.engine.snapshot_every = parse(v).map_err(err)?,
            "HOB_PROJECTION_INTERVAL_MS" => self.engine.projection_interval_ms = parse(v).map_err(err)?,
            "HOB_RELAY_POLL_MS" => self.engine.relay_poll_ms = parse(v).map_err(err)?,
            "HOB_FEED_POLL_MS" => self.engine.feed_poll_ms = parse(v).map_err(err)?,
            "HOB_SETTLEMENT_OPERATOR" => self.engine.settlement_operator = v.to_owned(),
            "HOB_OPERATOR_TOKEN" => self.operator.token = Some(v.to_owned()).filter(|t| !t.is_empty()),
            "HOB_CHAIN_ID" => self.auth.chain_id = parse(v).map_err(err)?,
            "HOB_EXCHANGE_ADDRESS" => self.auth.exchange_address = v.to_owned(),
            "HOB_CHALLENGE_TTL_MS" => self.auth.challenge_ttl_ms = parse(v).map_err(err)?,
            "HOB_SESSION_TTL_MS" => self.auth.session_ttl_ms = parse(v).map_err(err)?,
            "HOB_IP_REQUESTS_PER_SEC" => self.limits.ip_requests_per_sec = parse(v).map_err(err)?,
            "HOB_IP_BURST" => self.limits.ip_burst = parse(v).map_err(err)?,
            "HOB_USER_REQUESTS_PER_SEC" => self.limits.user_requests_per_sec = parse(v).map_err(err)?,
            "HOB_USER_BURST" => self.limits.user_burst = parse(v).map_err(err)?,
            "HOB_MAX_BODY_BYTES" => self.limits.max_body_bytes = parse(v).map_err(err)?,
            "HOB_MAX_BATCH" => self.limits.max_batch = parse(v).map_err(err)?,
            "HOB_MAX_OPEN_ORDERS" => self.limits.max_open_orders = parse(v).map_err(err)?,
            "HOB_WS_MAX_MESSAGE_BYTES" => self.websocket.max_message_bytes = parse(v).map_err(err)?,
            "HOB_WS_SEND_BUFFER" => self.websocket.send_buffer = parse(v).map_err(err)?,
            "HOB_WS_MAX_SUBSCRIPTIONS" => self.websocket.max_subscriptions = parse(v).map_err(err)?,
            "HOB_WS_MAX_IN_FLIGHT" => self.websocket.max_in_flight = parse(v).map_err(err)?,
            "HOB_WS_PING_INTERVAL_MS" => self.websocket.ping_interval_ms = parse(v).map_err(err)?,
            "HOB_WS_IDLE_TIMEOUT_MS" => self.websocket.idle_timeout_ms = parse(v).map_err(err)?,
            "HOB_WS_HEARTBEAT_INTERVAL_MS" => self.websocket.heartbeat_interval_ms = parse(v).map_err(err)?,
            "HOB_LOG_FORMAT" => self.log.format = parse(v).map_err(err)?,
            "HOB_LOG_LEVEL" => self.log.level = v.to_owned(),
            "HOB_CHAIN_MODE" => self.chain.mode = ChainMode::parse(v).map_err(err)?,
            "HOB_CHAIN_RPC_URL" => self.chain.rpc_url = v.to_owned(),
            "HOB_CHAIN_BLOCK_TIME_MS" => self.chain.block_time_ms = parse(v).map_err(err)?,
            "HOB_CHAIN_ANVIL_PORT" => self.chain.anvil_port = parse(v).map_err(err)?,
            "HOB_CHAIN_CONFIRMATIONS" => self.chain.confirmations = parse(v).map_err(err)?,
            "HOB_CHAIN_BATCH_MAX_TRADES" => self.chain.batch_max_trades = parse(v).map_err(err)?,
            "HOB_CHAIN_BATCH_WINDOW_MS" => self.chain.batch_window_ms = parse(v).map_err(err)?,
            "HOB_CHAIN_MAX_IN_FLIGHT" => self.chain.max_in_flight = parse(v).map_err(err)?,
            "HOB_CHAIN_SETTLEMENT_POLL_MS" => self.chain.settlement_poll_ms = parse(v).map_err(err)?,
            "HOB_CHAIN_RECEIPT_TIMEOUT_MS" => self.chain.receipt_timeout_ms = parse(v).map_err(err)?,
            "HOB_CHAIN_MAX_FAILURES" => self.chain.max_failures = parse(v).map_err(err)?,
            "HOB_CHAIN_ALERT_WEBHOOK" => self.chain.alert_webhook = Some(v.to_owned()).filter(|u| !u.is_empty()),
            // Read where they are used, never copied into the configuration (so never logged
            // with it): the keys (`chain::config`) and the anvil binary (`chain::tools`).
            "HOB_OPERATOR_KEY" | "HOB_OPERATOR_KEY_FILE" | "HOB_ADMIN_KEY" | "HOB_ADMIN_KEY_FILE" | "HOB_ANVIL" => {}
            _ => return Err(err("not a hob setting (see README.md, Configuration)".to_owned())),
        }
        Ok(())
    }

    pub fn apply_flags(&mut self, flags: &ServeFlags) {
        if let Some(listen) = flags.listen {
            self.server.listen = listen;
        }
        if let Some(store) = &flags.store {
            self.store.events = store.clone();
        }
        if let Some(views) = &flags.views {
            self.store.views = views.clone();
        }
        if let Some(workers) = flags.workers {
            self.server.workers = workers;
        }
        if let Some(token) = &flags.operator_token {
            self.operator.token = Some(token.clone());
        }
        // A flag can only switch a development feature on; off is the default.
        self.server.dev_insecure_user_header |= flags.dev_insecure_user_header;
        self.server.dev_faucet |= flags.dev_faucet;
        if let Some(mode) = flags.chain {
            self.chain.mode = mode;
        }
        if let Some(url) = &flags.chain_rpc_url {
            self.chain.rpc_url = url.clone();
        }
        if let Some(ms) = flags.chain_block_time_ms {
            self.chain.block_time_ms = ms;
        }
    }

    /// Checks every option; returns the markets as the server runs them.
    pub fn validate(&self) -> Result<Vec<MarketDef>, ConfigError> {
        self.validate_scalars()?;
        let defs = self.market_defs()?;
        self.validate_chain()?;
        Ok(defs)
    }

    fn validate_chain(&self) -> Result<(), ConfigError> {
        let assets: BTreeSet<&str> = self.markets.iter().flat_map(|m| [m.base.as_str(), m.quote.as_str()]).collect();
        let exchange = alloy::primitives::Address::from(self.exchange_address()?.0);
        self.chain.validate(assets, exchange).map_err(|e| invalid(e.option, e.message))?;
        if self.server.dev_faucet && self.chain.mode == ChainMode::Rpc {
            return Err(invalid(
                "server.dev_faucet",
                "the faucet mints test tokens on a local anvil only; turn it off with chain.mode = \"rpc\"",
            ));
        }
        Ok(())
    }

    fn validate_scalars(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.server.workers) {
            return Err(invalid("server.workers", "must be 1 to 64"));
        }
        StoreLocation::parse("store.events", &self.store.events)?;
        StoreLocation::parse("store.views", &self.store.views)?;
        if self.store.events == self.store.views && self.store.events.starts_with("sqlite:") {
            return Err(invalid("store.views", "must be another file than store.events"));
        }
        if self.store.queue != "in-process" && self.store.queue != "sqs" {
            return Err(invalid("store.queue", format!("{:?}: \"in-process\" or \"sqs\"", self.store.queue)));
        }
        if self.store.queue == "sqs" && self.store.sqs_region.is_empty() {
            return Err(invalid("store.sqs_region", "sqs needs a region"));
        }
        positive("store.queue_capacity", self.store.queue_capacity as u64)?;
        if !(1..=1_000).contains(&self.store.sqs_max_receive_count) {
            return Err(invalid("store.sqs_max_receive_count", "must be 1 to 1000 (SQS's limit)"));
        }
        if !(1_000..=43_200_000).contains(&self.store.sqs_visibility_timeout_ms) {
            return Err(invalid("store.sqs_visibility_timeout_ms", "must be 1000 to 43200000 (1 s to SQS's 12 h)"));
        }
        if self.store.sqs_wait_time_ms > 20_000 {
            return Err(invalid("store.sqs_wait_time_ms", "must be at most 20000 (SQS's longest poll)"));
        }
        if !self.cluster.node_id.is_empty() {
            NodeId::new(&self.cluster.node_id).map_err(|e| invalid("cluster.node_id", e))?;
        }
        if !(1_000..=600_000).contains(&self.cluster.lease_ttl_ms) {
            return Err(invalid("cluster.lease_ttl_ms", "must be 1000 to 600000"));
        }
        positive("engine.projection_interval_ms", self.engine.projection_interval_ms)?;
        positive("engine.relay_poll_ms", self.engine.relay_poll_ms)?;
        positive("engine.feed_poll_ms", self.engine.feed_poll_ms)?;
        UserId::from_hex(&self.engine.settlement_operator)
            .map_err(|e| invalid("engine.settlement_operator", e.to_string()))?;
        if let Some(token) = &self.operator.token {
            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("operator.token", "must be at least 16 printable characters without spaces"));
            }
        }
        self.exchange_address()?;
        let a = &self.auth;
        positive("auth.chain_id", a.chain_id)?;
        positive("auth.challenge_ttl_ms", a.challenge_ttl_ms)?;
        positive("auth.session_ttl_ms", a.session_ttl_ms)?;
        positive("auth.max_challenges", a.max_challenges as u64)?;
        positive("auth.max_sessions", a.max_sessions as u64)?;
        positive("auth.max_agents_per_user", a.max_agents_per_user as u64)?;
        let l = &self.limits;
        positive("limits.ip_requests_per_sec", l.ip_requests_per_sec.into())?;
        positive("limits.ip_burst", l.ip_burst.into())?;
        positive("limits.user_requests_per_sec", l.user_requests_per_sec.into())?;
        positive("limits.user_burst", l.user_burst.into())?;
        if l.max_body_bytes < 1_024 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1024"));
        }
        if !(1..=1_000).contains(&l.max_batch) {
            return Err(invalid("limits.max_batch", "must be 1 to 1000"));
        }
        if !(1..=MAX_OPEN_ORDERS).contains(&l.max_open_orders) {
            return Err(invalid(
                "limits.max_open_orders",
                format!("must be 1 to {MAX_OPEN_ORDERS} (the engine's cap)"),
            ));
        }
        let w = &self.websocket;
        if w.max_message_bytes < 256 {
            return Err(invalid("websocket.max_message_bytes", "must be at least 256"));
        }
        if w.send_buffer < 16 {
            return Err(invalid("websocket.send_buffer", "must be at least 16"));
        }
        positive("websocket.max_subscriptions", w.max_subscriptions as u64)?;
        positive("websocket.max_in_flight", w.max_in_flight as u64)?;
        positive("websocket.ping_interval_ms", w.ping_interval_ms)?;
        positive("websocket.heartbeat_interval_ms", w.heartbeat_interval_ms)?;
        if w.idle_timeout_ms <= w.ping_interval_ms {
            return Err(invalid("websocket.idle_timeout_ms", "must be longer than websocket.ping_interval_ms"));
        }
        crate::telemetry::parse_level(&self.log.level).map_err(|e| invalid("log.level", e.to_string()))?;
        Ok(())
    }

    fn market_defs(&self) -> Result<Vec<MarketDef>, ConfigError> {
        let mut decimals = std::collections::BTreeMap::new();
        for (i, asset) in self.assets.iter().enumerate() {
            let option = format!("assets[{i}]");
            let id = AssetId::new(&asset.symbol).map_err(|e| invalid(format!("{option}.symbol"), e.to_string()))?;
            if asset.decimals > MAX_DECIMALS {
                return Err(invalid(format!("{option}.decimals"), format!("must be at most {MAX_DECIMALS}")));
            }
            if decimals.insert(id, asset.decimals).is_some() {
                return Err(invalid(format!("{option}.symbol"), format!("{} is listed twice", asset.symbol)));
            }
        }
        if self.markets.is_empty() {
            return Err(invalid("markets", "at least one market is needed"));
        }
        let (mut ids, mut chain_ids) = (BTreeSet::new(), BTreeSet::new());
        let mut defs = Vec::with_capacity(self.markets.len());
        for (i, m) in self.markets.iter().enumerate() {
            let option = |field: &str| format!("markets[{i}].{field}");
            let id = MarketId::new(&m.id).map_err(|e| invalid(option("id"), e.to_string()))?;
            if !ids.insert(id) {
                return Err(invalid(option("id"), format!("{} is listed twice", m.id)));
            }
            if !chain_ids.insert(m.chain_market_id) {
                return Err(invalid(option("chain_market_id"), format!("{} is used twice", m.chain_market_id)));
            }
            let asset = |field: &str, symbol: &str| {
                let id = AssetId::new(symbol).map_err(|e| invalid(option(field), e.to_string()))?;
                let places = decimals
                    .get(&id)
                    .copied()
                    .ok_or_else(|| invalid(option(field), format!("asset {symbol} is not among [[assets]]")))?;
                Ok::<_, ConfigError>((id, places))
            };
            let (base, base_decimals) = asset("base", &m.base)?;
            let (quote, quote_decimals) = asset("quote", &m.quote)?;
            let min_notional = parse_amount(&m.min_notional, quote_decimals)
                .map_err(|e| invalid(option("min_notional"), e.to_string()))?;
            let spec = MarketSpec {
                id,
                base,
                quote,
                base_lot: crate::domain::Amount(m.base_lot.into()),
                quote_tick: crate::domain::Amount(m.quote_tick.into()),
                min_qty: QtyLots(m.min_qty_lots),
                max_qty: QtyLots(m.max_qty_lots),
                min_notional,
                maker_fee: Bps(m.maker_fee_bps),
                taker_fee: Bps(m.taker_fee_bps),
            };
            spec.validate().map_err(|e| invalid(format!("markets[{i}]"), e.to_string()))?;
            let lot_size = Decimal::try_from_i128_with_scale(m.base_lot.into(), base_decimals.into())
                .map_err(|_| invalid(option("base_lot"), "the lot size does not fit a decimal"))?
                .normalize();
            let tick_size = tick_size(m.base_lot, m.quote_tick, base_decimals, quote_decimals)
                .map_err(|message| invalid(option("quote_tick"), message))?;
            defs.push(MarketDef {
                spec,
                tick_size,
                lot_size,
                base_decimals,
                quote_decimals,
                chain_market_id: m.chain_market_id,
            });
        }
        Ok(defs)
    }

    pub fn events_location(&self) -> Result<StoreLocation, ConfigError> {
        StoreLocation::parse("store.events", &self.store.events)
    }

    pub fn views_location(&self) -> Result<StoreLocation, ConfigError> {
        StoreLocation::parse("store.views", &self.store.views)
    }

    /// This node's leases: on with a MongoDB event store, which several nodes may share; off
    /// on SQLite, a file one process owns, where a lease per actor would only cost writes.
    pub fn lease_config(&self) -> Result<Option<LeaseConfig>, ConfigError> {
        if !matches!(self.events_location()?, StoreLocation::Mongo { .. }) {
            return Ok(None);
        }
        let node = match self.cluster.node_id.as_str() {
            "" => NodeId::generate(),
            id => NodeId::new(id).map_err(|e| invalid("cluster.node_id", e))?,
        };
        Ok(Some(LeaseConfig { node, ttl: Duration::from_millis(self.cluster.lease_ttl_ms) }))
    }

    /// The exchange contract users' signatures are bound to.
    pub fn exchange_address(&self) -> Result<UserId, ConfigError> {
        UserId::from_hex(&self.auth.exchange_address).map_err(|e| invalid("auth.exchange_address", e.to_string()))
    }

    pub fn settlement_operator(&self) -> Result<UserId, ConfigError> {
        UserId::from_hex(&self.engine.settlement_operator)
            .map_err(|e| invalid("engine.settlement_operator", e.to_string()))
    }
}

impl EngineSection {
    pub fn projection_interval(&self) -> Duration {
        Duration::from_millis(self.projection_interval_ms)
    }

    pub fn relay_poll(&self) -> Duration {
        Duration::from_millis(self.relay_poll_ms)
    }

    pub fn feed_poll(&self) -> Duration {
        Duration::from_millis(self.feed_poll_ms)
    }
}

fn parse<T: FromStr>(value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{value:?}: {e}"))
}

fn positive(option: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(option, "must be positive"));
    }
    Ok(())
}

/// The price step, in quote per base, of a market whose lot is `base_lot` base units and whose
/// tick moves `quote_tick` quote units per lot: `quote_tick * 10^bd / (base_lot * 10^qd)`. It
/// must be a finite decimal, or prices could not be written exactly.
pub fn tick_size(base_lot: u64, quote_tick: u64, base_decimals: u8, quote_decimals: u8) -> Result<Decimal, String> {
    let too_large = || "the price step does not fit a decimal".to_owned();
    let pow10 = |n: u8| 10u128.checked_pow(n.into()).ok_or_else(too_large);
    let (mut num, mut den) = (u128::from(quote_tick), u128::from(base_lot));
    if base_decimals >= quote_decimals {
        num = num.checked_mul(pow10(base_decimals - quote_decimals)?).ok_or_else(too_large)?;
    } else {
        den = den.checked_mul(pow10(quote_decimals - base_decimals)?).ok_or_else(too_large)?;
    }
    let g = gcd(num, den);
    let (num, den) = (num / g, den / g);
    // A finite decimal iff the reduced denominator is 2^a * 5^b; then 10^max(a, b) / den is
    // an integer and the step is num * that / 10^max(a, b).
    let (mut rest, mut twos, mut fives) = (den, 0u32, 0u32);
    while rest % 2 == 0 {
        rest /= 2;
        twos += 1;
    }
    while rest % 5 == 0 {
        rest /= 5;
        fives += 1;
    }
    if rest != 1 {
        return Err(format!(
            "the price step {num}/{den} is not a finite decimal; choose base_lot and quote_tick so it is"
        ));
    }
    let scale = twos.max(fives);
    let mantissa = 10u128
        .checked_pow(scale)
        .map(|p| p / den)
        .and_then(|f| num.checked_mul(f))
        .and_then(|m| i128::try_from(m).ok())
        .ok_or_else(too_large)?;
    Decimal::try_from_i128_with_scale(mantissa, scale).map(|d| d.normalize()).map_err(|_| too_large())
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
#[path = "../unit_tests/config.rs"]
mod tests;
