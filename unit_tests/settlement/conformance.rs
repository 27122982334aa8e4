//! Unit tests of `src/settlement/conformance.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use crate::settlement::sim::SimChain;

#[tokio::test]
async fn the_simulated_chain_passes_the_suite() {
    let key = OperatorKey::from_hex(&format!("0x{}", "07".repeat(32))).unwrap();
    let exchange = Address::repeat_byte(0xEE);
    let chain = SimChain::new(31_337, exchange, [key.address()]);
    run_all(&chain, &chain, &Fixture { key: &key, exchange }).await;
}
