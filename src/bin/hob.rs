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
    /// Verify every stream's hash chain, replay every actor and check every invariant (exit
    /// 0: all hold, 1: violations, 2: usage or I/O error). See README.md, "Auditing".
    Audit(AuditArgs),
    /// Print a stream's events and the state after each.
    Inspect(InspectArgs),
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
