//! `cargo fuzz run ws_client_message`: the property is `hob::fuzzing::ws_client_message`, shared with tests/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hob::fuzzing::ws_client_message(data));
