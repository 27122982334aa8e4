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
}

/// Prints a line of `hob serve`'s banner; a closed stdout must not take the server down.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
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
    };
    let config = hob::config::Config::load(args.config.as_deref(), std::env::vars(), &flags)?;
    actix_rt::System::new().block_on(async move {
        let server = hob::api::RunningServer::start(config.clone()).await?;
        let addr = server.local_addr();
        say!("hob serve: listening on http://{addr}");
        say!("  REST       http://{addr}/api/v1/markets   (OpenAPI: http://{addr}/openapi.json)");
        say!("  WebSocket  ws://{addr}/ws                 (docs/websocket.md)");
        match config.operator.token {
            Some(_) => say!("  operator   http://{addr}/operator/actors   (Authorization: Bearer <token>)"),
            None => say!("  operator   disabled (no operator token configured)"),
        }
        say!("  metrics    http://{addr}/metrics   health: /healthz /readyz");
        if config.server.dev_insecure_user_header {
            say!("  DEVELOPMENT MODE: X-Hob-User is trusted as the caller's identity; do not expose this server");
        }
        if config.server.dev_faucet {
            say!("  DEVELOPMENT faucet: POST http://{addr}/api/v1/dev/faucet");
        }
        actix_rt::signal::ctrl_c().await.context("waiting for ctrl-c")?;
        say!("hob serve: stopping");
        server.stop().await;
        Ok(())
    })
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
