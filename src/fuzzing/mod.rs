//! Fuzz targets: one function per untrusted input hob decodes, each taking raw bytes and
//! checking what must hold for *any* input (no panic, a typed error or a value that
//! round-trips, invariants after every command).
//!
//! The functions live in the library so that two drivers share them: the cargo-fuzz crate in
//! `fuzz/` (long, coverage-guided runs; README.md, "Fuzzing") and `tests/fuzz_targets.rs`
//! (bounded proptest runs on every `make test`). Like `events::conformance`, this is test code
//! shipped in the library: a violated property panics with a message naming it, which is how
//! both drivers report a finding.

mod input;
mod matching;
mod messages;
mod signed;
mod stored;

pub use input::Input;
pub use matching::matching_sequence;
pub use messages::{rest_place_order, ws_client_message};
pub use signed::signed_order;
pub use stored::stored_event;

/// A fuzz target: any bytes in, a panic only when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name, for drivers that pick one at run time.
pub const TARGETS: &[(&str, Target)] = &[
    ("ws_client_message", ws_client_message),
    ("rest_place_order", rest_place_order),
    ("signed_order", signed_order),
    ("stored_event", stored_event),
    ("matching_sequence", matching_sequence),
];
