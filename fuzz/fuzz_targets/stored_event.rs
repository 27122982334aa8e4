//! `cargo fuzz run stored_event`: the property is `hob::fuzzing::stored_event`, shared with tests/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hob::fuzzing::stored_event(data));
