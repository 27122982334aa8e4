//! Stored events and snapshots, as read back from a store an attacker or a disk may have
//! changed: every decoder returns a typed error or a value that re-encodes to itself.

use serde_json::Value;

use super::input::Input;
use super::matching::fuzz_spec;
use crate::actors::consumed::ActorSnapshot;
use crate::events::market_command::{decode_market_record, encode_market_record};
use crate::events::market_snapshot::{decode_market_snapshot, encode_market_snapshot, market_state_hash};
use crate::events::payload::{current_schema_version, MARKET_EVENT_TYPES};
use crate::events::user_payload::{
    decode_user_event_bytes, decode_user_snapshot, encode_user_event, encode_user_snapshot, USER_EVENT_TYPES,
};
use crate::events::{decode_market_event, decode_market_event_bytes, encode_market_event, upcast_to_current};
use crate::settlement::payload::{decode_operator_event, encode_operator_event, OPERATOR_EVENT_TYPES};

/// The first byte picks the decoder; then a type and schema version; the rest is the payload.
pub fn stored_event(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 8 {
        0 => market_event(&mut input),
        1 => user_event(&mut input),
        2 => operator_event(&mut input),
        3 => market_record(input.rest()),
        4 => upcast(&mut input),
        5 => user_snapshot(input.rest()),
        6 => market_snapshot(input.rest()),
        _ => actor_snapshot(input.rest()),
    }
}

/// A known type most of the time (so payloads get exercised), any text otherwise.
fn event_type<'a>(input: &mut Input<'_>, known: &[&'a str]) -> std::borrow::Cow<'a, str> {
    let pick = input.u8() as usize;
    match known.get(pick % (known.len() + 1)) {
        Some(t) => std::borrow::Cow::Borrowed(*t),
        None => std::borrow::Cow::Owned(format!("fuzz.T{pick}")),
    }
}

/// The type's current version most of the time, any version otherwise.
fn schema_version(input: &mut Input<'_>, current: Option<u16>) -> u16 {
    match (input.u8() % 4, current) {
        (0, _) | (_, None) => input.u16(),
        (_, Some(v)) => v,
    }
}

fn market_event(input: &mut Input<'_>) {
    let types: Vec<&str> = MARKET_EVENT_TYPES.iter().map(|(t, _)| *t).collect();
    let event_type = event_type(input, &types);
    let version = schema_version(input, current_schema_version(&event_type));
    let payload = input.rest();
    let Ok(event) = decode_market_event_bytes(&event_type, version, payload) else { return };
    let encoded = encode_market_event(&event);
    let again = decode_market_event(encoded.event_type, encoded.schema_version, encoded.payload);
    assert_eq!(again.ok().as_ref(), Some(&event), "a decoded market event re-encodes to itself");
}

fn user_event(input: &mut Input<'_>) {
    let types: Vec<&str> = USER_EVENT_TYPES.iter().map(|(t, _)| *t).collect();
    let event_type = event_type(input, &types);
    let current = USER_EVENT_TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, v)| *v);
    let version = schema_version(input, current);
    let Ok(event) = decode_user_event_bytes(&event_type, version, input.rest()) else { return };
    let encoded = encode_user_event(&event);
    let text = encoded.payload.to_string();
    let again = decode_user_event_bytes(encoded.event_type, encoded.schema_version, text.as_bytes());
    assert_eq!(again.as_ref().ok(), Some(&event), "a decoded user event re-encodes to itself");
}

fn operator_event(input: &mut Input<'_>) {
    let event_type = event_type(input, OPERATOR_EVENT_TYPES);
    let version = schema_version(input, Some(crate::settlement::payload::OPERATOR_SCHEMA_VERSION));
    let Ok(payload) = serde_json::from_slice::<Value>(input.rest()) else { return };
    let Ok(event) = decode_operator_event(&event_type, version, payload) else { return };
    let encoded = encode_operator_event(&event);
    let again = decode_operator_event(encoded.event_type, encoded.schema_version, encoded.payload);
    assert_eq!(again.ok().as_ref(), Some(&event), "a decoded operator event re-encodes to itself");
}

fn market_record(payload: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(payload) else { return };
    let Ok((command, auth)) = decode_market_record(&value) else { return };
    let again = decode_market_record(&encode_market_record(&command, auth.as_ref()));
    assert_eq!(again.ok(), Some((command, auth)), "a decoded market-queue record re-encodes to itself");
}

fn upcast(input: &mut Input<'_>) {
    let mut types: Vec<&str> = MARKET_EVENT_TYPES.iter().map(|(t, _)| *t).collect();
    types.extend(USER_EVENT_TYPES.iter().map(|(t, _)| *t));
    let event_type = event_type(input, &types);
    let version = input.u16();
    let Ok(payload) = serde_json::from_slice::<Value>(input.rest()) else { return };
    // Any answer is fine; upcasting a hostile payload must only not panic.
    let _ = upcast_to_current(&event_type, version, payload);
}

fn user_snapshot(bytes: &[u8]) {
    let Ok(state) = decode_user_snapshot(bytes) else { return };
    let again = decode_user_snapshot(&encode_user_snapshot(&state));
    assert_eq!(again.ok().as_ref(), Some(&state), "a decoded user snapshot re-encodes to itself");
}

fn market_snapshot(bytes: &[u8]) {
    let Some(spec) = fuzz_spec() else { return };
    let Ok(market) = decode_market_snapshot(spec.clone(), bytes) else { return };
    assert!(!market.book().is_crossed(), "a restored book is never crossed");
    let again = decode_market_snapshot(spec, &encode_market_snapshot(&market));
    let hash = again.as_ref().map(market_state_hash).ok();
    assert_eq!(hash, Some(market_state_hash(&market)), "a decoded market snapshot re-encodes to itself");
}

fn actor_snapshot(bytes: &[u8]) {
    let Some(snapshot) = ActorSnapshot::decode(bytes) else { return };
    let encoded = ActorSnapshot::encode_with(&snapshot.consumed, snapshot.state.clone(), snapshot.extra.clone());
    assert_eq!(ActorSnapshot::decode(&encoded), Some(snapshot), "a decoded actor snapshot re-encodes to itself");
}
