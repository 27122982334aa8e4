//! Logging for `hob serve`: human-readable text on a terminal, or one JSON object per line for
//! a log shipper (`[log] format = "json"`, `HOB_LOG_FORMAT=json`). The format is chosen once,
//! at start; every request's lines carry its `request_id` (see `api::request_id`), which is
//! the span field Fluent Bit and Grafana search by.
//!
//! The only I/O is the subscriber writing to stdout; the binary calls `init` once.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default: a developer's terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's fields
    /// (`message` among them) and the request span's fields (`request_id`, `method`, `path`).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format (text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level {level:?}: {message}")]
    Level { level: String, message: String },
    #[error("a log subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Checks a level directive (`info`, `hob=debug,actix_web=warn`, ...) without installing it,
/// so a typo is a configuration error at start.
pub fn parse_level(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(level).map_err(|e| TelemetryError::Level { level: level.to_owned(), message: e.to_string() })
}

/// Installs the process-wide subscriber, filtered by `level`: text lines on stderr (stdout
/// keeps `hob serve`'s banner, which scripts read), JSON lines on stdout (the one stream a log
/// shipper reads; the banner is logged there too).
pub fn init(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    let filter = parse_level(level)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).with_writer(std::io::stderr).try_init(),
        // Flattened: the event's fields sit at the top level beside `level` and `timestamp`,
        // and the innermost span's (the request's) under `span`, which the Fluent Bit parser
        // lifts out.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .try_init(),
    };
    installed.map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
#[path = "../unit_tests/telemetry.rs"]
mod tests;
