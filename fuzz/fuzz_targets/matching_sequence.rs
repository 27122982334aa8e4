//! `cargo fuzz run matching_sequence`: the property is `hob::fuzzing::matching_sequence`, shared with tests/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hob::fuzzing::matching_sequence(data));
