//! Upcasters: stored events are never rewritten, so an event written at an older schema
//! version is brought up to the current one when read, one version step at a time, on the
//! untyped JSON. Each step is a pure function; the chain for a type must reach its current
//! version with no gaps (checked by a unit test).

use serde_json::Value;

use super::payload::{current_schema_version, RESTED};
use super::user_payload::{current_user_schema_version, AMEND_REQUESTED};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("{event_type} v{version} is newer than this build understands (current v{current})")]
    FromTheFuture { event_type: String, version: u16, current: u16 },
    #[error("{event_type}: no upcaster from v{version}")]
    NoPath { event_type: String, version: u16 },
    #[error("{event_type} v{version}: {reason}")]
    Malformed { event_type: String, version: u16, reason: &'static str },
}

/// One step: `event_type` at `from_version` to `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u16,
    pub step: fn(Value) -> Result<Value, &'static str>,
}

pub const UPCASTERS: &[Upcaster] = &[
    Upcaster { event_type: RESTED, from_version: 1, step: rested_v1_to_v2 },
    Upcaster { event_type: AMEND_REQUESTED, from_version: 1, step: amend_requested_v1_to_v2 },
];

/// `market.Rested` v1 predates amend re-entry and did not record the order's `post_only` flag
/// or its self-trade-prevention mode; every order then was neither post-only nor anything but
/// the default STP mode, so the defaults are the true values.
fn rested_v1_to_v2(mut payload: Value) -> Result<Value, &'static str> {
    let map = payload.as_object_mut().ok_or("payload is not an object")?;
    map.entry("post_only").or_insert(Value::Bool(false));
    map.entry("stp").or_insert(Value::String("expire_maker".to_owned()));
    Ok(payload)
}

/// `user.AmendRequested` v1 predates signed amends: every v1 amend was unsigned, so it carried
/// no new nonce and no new signed order.
fn amend_requested_v1_to_v2(mut payload: Value) -> Result<Value, &'static str> {
    let map = payload.as_object_mut().ok_or("payload is not an object")?;
    map.entry("nonce").or_insert(Value::Null);
    map.entry("auth").or_insert(Value::Null);
    Ok(payload)
}

/// Brings `payload`, written at `version`, up to the current version of `event_type`.
pub fn upcast_to_current(event_type: &str, version: u16, mut payload: Value) -> Result<Value, UpcastError> {
    let current = current_schema_version(event_type)
        .or_else(|| current_user_schema_version(event_type))
        .ok_or_else(|| UpcastError::UnknownEventType(event_type.into()))?;
    if version > current {
        return Err(UpcastError::FromTheFuture { event_type: event_type.into(), version, current });
    }
    let mut at = version;
    while at < current {
        let up = UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == at)
            .ok_or_else(|| UpcastError::NoPath { event_type: event_type.into(), version: at })?;
        payload = (up.step)(payload).map_err(|reason| UpcastError::Malformed {
            event_type: event_type.into(),
            version: at,
            reason,
        })?;
        at += 1;
    }
    Ok(payload)
}

#[cfg(test)]
#[path = "../../unit_tests/events/upcast.rs"]
mod tests;
