//! The `hob audit` and `hob inspect` commands behind the binary's argument parsing: open the
//! store named by `--store`, run, print, and return the exit code (0 everything holds, 1
//! violations, 2 usage or I/O error).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::inspect::{inspect as inspect_stream, InspectError, Inspected};
use super::{audit as audit_store, Progress};
use crate::config::StoreLocation;
use crate::events::StreamId;
use crate::store::any::AnyEventStore;
use crate::store::{MongoEventStore, SqliteEventStore};

pub const EXIT_OK: i32 = 0;
pub const EXIT_VIOLATIONS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub struct AuditOptions {
    pub store: String,
    pub json: bool,
    pub rpc: Option<String>,
    pub exchange: Option<String>,
    /// `SYMBOL=0xaddress` per asset compared on-chain.
    pub tokens: Vec<String>,
}

pub struct InspectOptions {
    pub stream: String,
    pub store: String,
    pub from: u64,
    pub json: bool,
}

/// Opens the `--store` as it is (a missing SQLite file is an error, never a fresh store), or
/// connects to the MongoDB database its URI names.
async fn open(store: &str) -> Result<AnyEventStore, String> {
    match StoreLocation::parse("--store", store).map_err(|e| e.to_string())? {
        StoreLocation::Sqlite(path) => {
            if !path.is_file() {
                return Err(format!("no event store at {}", path.display()));
            }
            let opened = SqliteEventStore::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
            Ok(AnyEventStore::Sqlite(opened))
        }
        StoreLocation::Mongo { uri, database } => {
            let connected = MongoEventStore::connect(&uri, &database).await;
            Ok(AnyEventStore::Mongo(connected.map_err(|e| format!("mongodb database {database}: {e}"))?))
        }
    }
}

fn fail(message: impl std::fmt::Display) -> i32 {
    let _ = writeln!(std::io::stderr(), "hob: {message}");
    EXIT_USAGE
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())
}

/// `hob audit`.
pub fn audit(options: &AuditOptions) -> i32 {
    let onchain = match (&options.rpc, &options.exchange) {
        (Some(rpc), Some(exchange)) => match super::onchain::OnChain::parse(rpc, exchange, &options.tokens) {
            Ok(target) => Some(target),
            Err(e) => return fail(e),
        },
        (None, None) if options.tokens.is_empty() => None,
        _ => return fail("--rpc, --exchange and --token go together"),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let mut bar = ProgressLine::new();
    let store = match rt.block_on(open(&options.store)) {
        Ok(store) => store,
        Err(e) => return fail(e),
    };
    let result = rt.block_on(async {
        let mut report = audit_store(&store, |p| bar.show(p)).await.map_err(|e| e.to_string())?;
        if let Some(target) = &onchain {
            target.compare(&mut report).await?;
        }
        Ok::<_, String>(report)
    });
    bar.clear();
    let report = match result {
        Ok(report) => report,
        Err(e) => return fail(format!("audit: {e}")),
    };
    let text = if options.json { format!("{:#}\n", report.to_json()) } else { report.to_text() };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if report.ok() {
        EXIT_OK
    } else {
        EXIT_VIOLATIONS
    }
}

/// `hob inspect`.
pub fn inspect(options: &InspectOptions) -> i32 {
    let stream = match StreamId::parse(&options.stream) {
        Ok(stream) => stream,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let store = match rt.block_on(open(&options.store)) {
        Ok(store) => store,
        Err(e) => return fail(e),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let json = options.json;
    let result = rt.block_on(inspect_stream(&store, &stream, options.from, |e| {
        let _ = if json { writeln!(out, "{}", e.to_json()) } else { write_text(&mut out, &e) };
    }));
    let _ = out.flush();
    match result {
        Ok(_) => EXIT_OK,
        Err(InspectError::Broken { stream, version, reason }) => {
            let _ = writeln!(std::io::stderr(), "hob inspect: {stream} v{version}: {reason}");
            EXIT_VIOLATIONS
        }
        Err(e) => fail(format!("inspect: {e}")),
    }
}

fn write_text(out: &mut impl Write, e: &Inspected) -> std::io::Result<()> {
    writeln!(out, "v{} {} {} (schema {})", e.version, e.occurred_at, e.event_type, e.schema_version)?;
    writeln!(out, "  event: {}", e.payload)?;
    if !e.state.is_null() {
        writeln!(out, "  state: {}", e.state)?;
    }
    Ok(())
}

/// A one-line progress display on stderr, only when stderr is a terminal, redrawn at most
/// ten times a second.
struct ProgressLine {
    enabled: bool,
    last: Option<Instant>,
    started: Instant,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine { enabled: std::io::stderr().is_terminal(), last: None, started: Instant::now() }
    }

    fn show(&mut self, p: Progress) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        let rate = p.events as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let width = 30usize;
        let filled = (p.streams_done as usize * width).checked_div(p.streams_total as usize).unwrap_or(width);
        let _ = write!(
            std::io::stderr(),
            "\r[{}{}] {}/{} streams, {} events ({:.0}/s)",
            "#".repeat(filled),
            "-".repeat(width - filled.min(width)),
            p.streams_done,
            p.streams_total,
            p.events,
            rate
        );
    }

    fn clear(&mut self) {
        if self.enabled && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/audit/cli.rs"]
mod tests;
