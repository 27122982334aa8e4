//! The hob command line.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

// The store's writer thread frees what the actors allocated; glibc's malloc serialises that on
// its arena locks, mimalloc does not (twice the durable throughput in `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use hob::audit::cli::{AuditOptions, InspectOptions};
use hob::match_tool::{self, MatchConfig};
use hob::projections::{diff_views, MemoryViewStore, Projector, ViewStore};
use hob::store::sqlite_views::SqliteViewStore;
use hob::store::SqliteEventStore;

#[derive(Parser)]
#[command(name = "hob", version, about = "Hybrid order book exchange engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the exchange server: REST, WebSocket, operator API and metrics (see README.md,
    /// "Server" and "Configuration").
    Serve(ServeArgs),
    /// Match orders read as JSON lines on stdin; write events as JSON lines on stdout.
    Match {
        /// Price step, a positive decimal (e.g. 0.01).
        #[arg(long)]
        tick: String,
        /// Size step, a positive decimal (e.g. 0.001).
        #[arg(long)]
        lot: String,
        /// Maker fee rate in basis points.
        #[arg(long, default_value_t = 0)]
        maker_fee_bps: u16,
        /// Taker fee rate in basis points.
        #[arg(long, default_value_t = 0)]
        taker_fee_bps: u16,
        /// Smallest order size, in lots.
        #[arg(long, default_value_t = 1)]
        min_qty_lots: u64,
        /// Largest order size, in lots.
        #[arg(long, default_value_t = u64::MAX)]
        max_qty_lots: u64,
    },
    /// Load-test a server: WebSocket clients placing signed orders at a target rate, open loop;
    /// reports throughput and ack latency (see README.md, "Load generator").
    Loadgen(LoadgenArgs),
    /// Rebuild read models from the events alone and print a summary.
    Replay {
        /// Rebuild every view (the only replay target today).
        #[arg(long)]
        views: bool,
        /// The event store: `sqlite:<file>`.
        #[arg(long)]
        store: String,
        /// Write the rebuilt views to this SQLite file, which must not exist yet; without it
        /// they are rebuilt in memory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A live view store (SQLite file) to compare the rebuilt views with; exits non-zero
        /// if any view differs.
        #[arg(long)]
        compare: Option<PathBuf>,
    },
    /// Run the deterministic simulation: seeded traders, crashes, an unreliable network and,
    /// in a share of the seeds, settlement on a faulty simulated chain, against the real engine,
    /// then every invariant (README.md, "Deterministic simulation").
    Sim {
        /// Run this one seed (as a failure's message says).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Run this many seeds, from `--from` on.
        #[arg(long, default_value_t = 1_000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Rounds of trader actions per seed.
        #[arg(long)]
        steps: Option<u32>,
        /// Percent of seeds that settle on the simulated chain (default 10).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100))]
        chain_percent: Option<u64>,
        /// Percent of steps that start a chain fault, in the seeds that settle (default 30).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100))]
        chain_faults: Option<u64>,
    },
    /// Verify every stream's hash chain, replay every actor and check every invariant (exit
    /// 0: all hold, 1: violations, 2: usage or I/O error). See README.md, "Auditing".
    Audit(AuditArgs),
    /// Print a stream's events and the state after each.
    Inspect(InspectArgs),
}

/// `hob serve`'s flags; each overrides the config file and the `HOB_*` variables.
#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML configuration file (see examples/hob.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The event store: `sqlite:<file>`.
    #[arg(long)]
    store: Option<String>,
    /// The view store: `sqlite:<file>`.
    #[arg(long)]
    views: Option<String>,
    /// HTTP worker threads.
    #[arg(long)]
    workers: Option<usize>,
    /// Bearer token of the operator API (prefer HOB_OPERATOR_TOKEN: flags show in `ps`).
    #[arg(long)]
    operator_token: Option<String>,
    /// DEVELOPMENT ONLY: trust the X-Hob-User header as the caller's identity instead of
    /// signed sessions and signed orders. Anyone can then act as anyone.
    #[arg(long)]
    dev_insecure_user_header: bool,
    /// DEVELOPMENT ONLY: mount POST /api/v1/dev/faucet, which credits test funds to any address.
    #[arg(long)]
    dev_faucet: bool,
    /// Where trades settle: none, anvil (a local node hob spawns and deploys to) or rpc.
    #[arg(long, value_parser = hob::config::ChainMode::parse)]
    chain: Option<hob::config::ChainMode>,
    /// The node's JSON-RPC URL (chain rpc).
    #[arg(long)]
    chain_rpc_url: Option<String>,
    /// Milliseconds between anvil's blocks (0: a block per transaction).
    #[arg(long)]
    anvil_block_time_ms: Option<u64>,
}

/// `hob audit`'s flags.
#[derive(clap::Args)]
struct AuditArgs {
    /// The event store: `sqlite:<file>` (or `mongodb://...` once that adapter is built in).
    #[arg(long)]
    store: String,
    /// Print the report as JSON (shape `hob.audit.v1`, README.md).
    #[arg(long)]
    json: bool,
    /// A JSON-RPC node to compare on-chain vault balances with off-chain settled ones.
    #[arg(long, requires = "exchange")]
    rpc: Option<String>,
    /// The HobExchange contract address (with --rpc).
    #[arg(long, requires = "rpc")]
    exchange: Option<String>,
    /// An asset's token contract, `SYMBOL=0xaddress` (repeat per asset; with --rpc).
    #[arg(long)]
    token: Vec<String>,
}

/// `hob inspect`'s flags.
#[derive(clap::Args)]
struct InspectArgs {
    /// The stream, e.g. `market:BTC-USDT` or `user:0x...`.
    stream: String,
    /// The event store: `sqlite:<file>`.
    #[arg(long)]
    store: String,
    /// The first version to print (the state is still rebuilt from version 1).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// `hob loadgen`'s flags.
#[derive(clap::Args)]
struct LoadgenArgs {
    /// The server's HTTP base (ignored with --spawn-server).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Start a `hob serve` of its own (this binary; temp stores, dev faucet, a free port,
    /// rate limits raised) and stop it at the end.
    #[arg(long)]
    spawn_server: bool,
    /// WebSocket clients, each a trader of its own.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Orders per second offered, all clients together (with --find-max: the first step).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of orders sent first and not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value = "BTC-USDT")]
    market: String,
    /// The price orders are placed around, on the market's grid.
    #[arg(long, default_value = "100")]
    mid: String,
    /// Evenly spaced sends instead of Poisson arrivals.
    #[arg(long)]
    uniform: bool,
    /// Seed of the schedule and the order mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds to wait for the last answers after the last scheduled send.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Step the rate up (--rate, + --step-rate, ...) until ack p99 reaches --p99-limit-ms;
    /// report the highest rate sustained below it.
    #[arg(long)]
    find_max: bool,
    /// --find-max: the rate added each step (default: --rate).
    #[arg(long)]
    step_rate: Option<f64>,
    /// --find-max: the highest rate tried.
    #[arg(long, default_value_t = 200_000.0)]
    max_rate: f64,
    /// --find-max: the p99 ack latency a sustained rate stays under.
    #[arg(long, default_value_t = 10.0)]
    p99_limit_ms: f64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

fn seconds(flag: &str, s: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{flag} must be a non-negative number of seconds"))
}

fn loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    use hob::loadgen::{find_max, schedule::Arrivals, LoadConfig, SpawnedServer};
    let mut config = LoadConfig {
        url: args.url,
        clients: args.clients,
        rate_per_s: args.rate,
        duration: seconds("duration", args.duration)?,
        warmup: seconds("warmup", args.warmup)?,
        market: args.market,
        mid: args.mid,
        arrivals: if args.uniform { Arrivals::Uniform } else { Arrivals::Poisson },
        seed: args.seed,
        drain: seconds("drain", args.drain)?,
        progress: !args.quiet,
    };
    actix_rt::System::new().block_on(async move {
        let server = if args.spawn_server {
            let exe = std::env::current_exe().context("locating the hob binary")?;
            let server = SpawnedServer::start(&exe, None).await.context("--spawn-server")?;
            eprintln!("hob loadgen: spawned hob serve at {} (data in {})", server.base_url(), server.dir().display());
            config.url = server.base_url().to_owned();
            Some(server)
        } else {
            None
        };
        if args.find_max {
            let steps = find_max::Steps {
                first_per_s: args.rate,
                step_per_s: args.step_rate.unwrap_or(args.rate),
                max_per_s: args.max_rate,
                p99_limit_us: (args.p99_limit_ms * 1_000.0) as u64,
            };
            let report = find_max::find_max(&config, &steps).await.context("hob loadgen --find-max")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for step in &report.steps {
                    println!("{step}");
                }
                match report.max_sustained_rate_per_s {
                    Some(rate) => {
                        println!("highest sustained rate with ack p99 < {} ms: {rate:.0} orders/s", report.p99_limit_ms)
                    }
                    None => println!("no rate tried was sustained with ack p99 < {} ms", report.p99_limit_ms),
                }
            }
        } else {
            let outcome = hob::loadgen::run(&config).await.context("hob loadgen")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&outcome.report)?);
            } else {
                println!("{}", outcome.report);
            }
        }
        drop(server);
        Ok(())
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags = hob::config::ServeFlags {
        listen: args.listen,
        store: args.store,
        views: args.views,
        workers: args.workers,
        operator_token: args.operator_token,
        dev_insecure_user_header: args.dev_insecure_user_header,
        dev_faucet: args.dev_faucet,
        chain: args.chain,
        chain_rpc_url: args.chain_rpc_url,
        chain_block_time_ms: args.anvil_block_time_ms,
    };
    let config = hob::config::Config::load(args.config.as_deref(), std::env::vars(), &flags)?;
    hob::telemetry::init(config.log.format, &config.log.level)?;
    let json_logs = config.log.format == hob::telemetry::LogFormat::Json;
    // With JSON logs stdout is read by a log shipper: the banner goes there as log lines too,
    // never as bare text that would break its parser.
    macro_rules! say {
        ($($arg:tt)*) => {{
            if json_logs {
                tracing::info!("{}", format!($($arg)*));
            } else {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), $($arg)*);
            }
        }};
    }
    actix_rt::System::new().block_on(async move {
        let server = hob::api::RunningServer::start(config.clone()).await?;
        let addr = server.local_addr();
        say!("hob serve: listening on http://{addr}");
        say!("  REST       http://{addr}/api/v1/markets   (OpenAPI: http://{addr}/openapi.json)");
        say!("  WebSocket  ws://{addr}/ws                 (docs/websocket.md)");
        match config.operator.token {
            Some(_) => {
                say!("  operator   http://{addr}/operator/actors   (Authorization: Bearer <token>)");
                say!("  console    http://{addr}/console   (asks for the operator token)");
            }
            None => say!("  operator   disabled (no operator token configured)"),
        }
        say!("  metrics    http://{addr}/metrics   health: /healthz /readyz");
        if config.server.dev_insecure_user_header {
            say!("  DEVELOPMENT MODE: X-Hob-User is trusted as the caller's identity; do not expose this server");
        }
        match &server.state().chain {
            None => say!("  chain      none: trades match but do not settle (chain.mode = \"none\")"),
            Some(chain) => {
                let link = &chain.link;
                match link.anvil_pid() {
                    Some(pid) => say!(
                        "  chain      {} (anvil, pid {pid}, chain id {}; stops with hob)",
                        link.rpc_url,
                        link.chain_id
                    ),
                    None => say!("  chain      {} (chain id {})", link.rpc_url, link.chain_id),
                }
                say!("  exchange   {}   (http://{addr}/api/v1/chain)", link.exchange.to_checksum(None));
                for (asset, token) in &link.tokens {
                    say!("  token      {:<6} {}", asset.to_string(), token.to_checksum(None));
                }
                say!("  settlement operator {}   admin {}", link.operator.address(), link.admin.admin());
                if config.operator.token.is_some() {
                    say!("  operator   http://{addr}/operator/chain   (pause: POST /operator/chain/pause)");
                }
            }
        }
        if config.server.dev_faucet {
            say!("  DEVELOPMENT faucet: POST http://{addr}/api/v1/dev/faucet");
        }
        stop_signal().await?;
        say!("hob serve: stopping");
        server.stop().await;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM: both stop the server cleanly (and with it the anvil it spawned).
async fn stop_signal() -> anyhow::Result<()> {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        ctrl_c = actix_rt::signal::ctrl_c() => ctrl_c.context("waiting for ctrl-c")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Audit(a) => {
            let options =
                AuditOptions { store: a.store, json: a.json, rpc: a.rpc, exchange: a.exchange, tokens: a.token };
            std::process::exit(hob::audit::cli::audit(&options))
        }
        Command::Inspect(a) => {
            let options = InspectOptions { stream: a.stream, store: a.store, from: a.from, json: a.json };
            std::process::exit(hob::audit::cli::inspect(&options))
        }
        Command::Serve(args) => serve(args)?,
        Command::Loadgen(args) => loadgen(args)?,
        Command::Match { tick, lot, maker_fee_bps, taker_fee_bps, min_qty_lots, max_qty_lots } => {
            let config = MatchConfig { tick, lot, maker_fee_bps, taker_fee_bps, min_qty_lots, max_qty_lots };
            let stdin = BufReader::new(io::stdin().lock());
            let stdout = BufWriter::new(io::stdout().lock());
            match_tool::run(&config, stdin, stdout).context("hob match")?;
        }
        Command::Replay { views, store, out, compare } => {
            anyhow::ensure!(views, "hob replay: say what to rebuild (--views)");
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(replay_views(&store, out.as_deref(), compare.as_deref()))?;
        }
        Command::Sim { seed, seeds, from, steps, chain_percent, chain_faults } => {
            let mut config = hob::sim::SimConfig::default();
            config.steps = steps.unwrap_or(config.steps);
            config.chain.percent = chain_percent.unwrap_or(config.chain.percent);
            config.chain.fault_percent = chain_faults.unwrap_or(config.chain.fault_percent);
            let (from, count) = seed.map_or((from, seeds), |s| (s, 1));
            let summary = hob::sim::run_seeds(from, count, &config, |report| {
                if seed.is_some() {
                    println!("{report:?}");
                }
            })?;
            println!("{summary}");
        }
    }
    Ok(())
}

async fn replay_views(store: &str, out: Option<&Path>, compare: Option<&Path>) -> anyhow::Result<()> {
    let path = store.strip_prefix("sqlite:").context("--store must be sqlite:<file>")?;
    anyhow::ensure!(Path::new(path).is_file(), "no event store at {path}");
    let events = SqliteEventStore::open(path).with_context(|| format!("opening {path}"))?;
    match out {
        Some(out) => {
            anyhow::ensure!(!out.exists(), "{} exists; replay writes a fresh view store", out.display());
            let views = SqliteViewStore::open(out).with_context(|| format!("creating {}", out.display()))?;
            rebuild_and_report(&events, &views, compare).await
        }
        None => rebuild_and_report(&events, &MemoryViewStore::new(), compare).await,
    }
}

async fn rebuild_and_report(
    events: &SqliteEventStore,
    views: &impl ViewStore,
    compare: Option<&Path>,
) -> anyhow::Result<()> {
    let report = Projector::new().catch_up(events, views).await.context("rebuilding views")?;
    let rebuilt = views.list().await?;
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &rebuilt {
        *per_kind.entry(v.kind.as_str()).or_default() += 1;
    }
    println!("events folded: {}", report.events_folded);
    println!("streams: {}", report.streams);
    println!("views: {}", rebuilt.len());
    for (kind, n) in per_kind {
        println!("  {kind}: {n}");
    }
    if let Some(live_path) = compare {
        anyhow::ensure!(live_path.is_file(), "no view store at {}", live_path.display());
        let live = SqliteViewStore::open(live_path)?;
        let diffs = diff_views(views, &live).await?;
        if !diffs.is_empty() {
            for d in &diffs {
                let what = match (&d.left, &d.right) {
                    (Some(_), None) => "only rebuilt",
                    (None, Some(_)) => "only live",
                    _ => "differs",
                };
                println!("  {what}: {} / {}", d.kind, d.key);
            }
            anyhow::bail!("{} of the views differ from the live ones in {}", diffs.len(), live_path.display());
        }
        println!("compare: identical to {}", live_path.display());
    }
    Ok(())
}
