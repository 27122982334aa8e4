//! One anvil (from `.tools/`, see `scripts/install-tools.sh`) per test binary, with a runtime
//! for tests that drive it from plain `#[test]` functions. anvil is killed when the test
//! process ends, even though the static holding it is never dropped.
//!
//! Test code unwraps: a failure should fail the test.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::process::Child;
use std::sync::OnceLock;

use alloy::node_bindings::AnvilInstance;
use hob::chain::tools;

pub struct Node {
    pub anvil: AnvilInstance,
    pub runtime: tokio::runtime::Runtime,
    /// Held, never waited on: it kills anvil once this process is gone.
    _watchdog: Child,
}

pub fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let anvil = tools::anvil().unwrap_or_else(|e| panic!("{e}")).try_spawn().expect("anvil starts");
        let watchdog = hob::process::stop_with_this_process(anvil.child().id()).expect("sh runs the anvil watchdog");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Node { anvil, runtime, _watchdog: watchdog }
    })
}

pub fn anvil() -> &'static AnvilInstance {
    &node().anvil
}

/// Runs `future` on the binary's shared runtime (the one the node's providers were made on).
pub fn run<F: Future>(future: F) -> F::Output {
    node().runtime.block_on(future)
}
