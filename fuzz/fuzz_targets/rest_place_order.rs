//! `cargo fuzz run rest_place_order`: the property is `hob::fuzzing::rest_place_order`, shared with tests/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hob::fuzzing::rest_place_order(data));
