//! The input lines of `hob match`: one JSON object per line, with an `op`.

use serde::Deserialize;

/// One parsed input line, before grid conversion.
#[derive(Debug, PartialEq)]
pub enum Line {
    Place(PlaceLine),
    Cancel(CancelLine),
    Amend(AmendLine),
    Halt(TimeOnly),
    Resume(TimeOnly),
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceLine {
    pub id: String,
    pub user: String,
    pub side: SideField,
    #[serde(rename = "type", default)]
    pub order_type: TypeField,
    pub price: Option<String>,
    pub qty: String,
    pub tif: Option<TifField>,
    /// Expiry of a `gtd` order, in milliseconds since the epoch.
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub post_only: bool,
    #[serde(default)]
    pub stp: StpField,
    pub worst_price: Option<String>,
    pub client_order_id: Option<String>,
    pub ts: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelLine {
    pub id: String,
    pub user: String,
    pub ts: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendLine {
    pub id: String,
    pub user: String,
    pub price: String,
    pub qty: String,
    pub ts: Option<u64>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOnly {
    pub ts: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideField {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeField {
    #[default]
    Limit,
    Market,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TifField {
    Gtc,
    Ioc,
    Fok,
    Gtd,
}

#[derive(Clone, Copy, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StpField {
    #[default]
    ExpireMaker,
    ExpireTaker,
    ExpireBoth,
}

/// Why a line could not be read. `id` is the order id when the line had a readable one.
#[derive(Debug, PartialEq)]
pub struct Malformed {
    pub id: Option<String>,
    pub reason: String,
}

/// Longest line accepted; a limit so one bad line cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

pub fn parse(line: &str) -> Result<Line, Malformed> {
    let mut value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| Malformed { id: None, reason: format!("invalid JSON: {e}") })?;
    let object =
        value.as_object_mut().ok_or_else(|| Malformed { id: None, reason: "a line must be a JSON object".into() })?;
    let id = object.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let bad = |reason: String| Malformed { id: id.clone(), reason };
    let op = match object.remove("op") {
        Some(serde_json::Value::String(op)) => op,
        Some(_) => return Err(bad("\"op\" must be a string".into())),
        None => return Err(bad("missing \"op\"".into())),
    };
    let fields = serde_json::Value::Object(std::mem::take(object));
    let parsed = match op.as_str() {
        "place" => serde_json::from_value(fields).map(Line::Place),
        "cancel" => serde_json::from_value(fields).map(Line::Cancel),
        "amend" => serde_json::from_value(fields).map(Line::Amend),
        "halt" => serde_json::from_value(fields).map(Line::Halt),
        "resume" => serde_json::from_value(fields).map(Line::Resume),
        other => {
            return Err(bad(format!(
                "unknown op {:?}: expected place, cancel, amend, halt or resume",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    parsed.map_err(|e| bad(format!("bad {op}: {e}")))
}

#[cfg(test)]
#[path = "../../unit_tests/match_tool/input.rs"]
mod tests;
