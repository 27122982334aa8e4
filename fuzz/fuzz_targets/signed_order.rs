//! `cargo fuzz run signed_order`: the property is `hob::fuzzing::signed_order`, shared with tests/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hob::fuzzing::signed_order(data));
