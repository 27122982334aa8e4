//! The deterministic simulation (`hob::sim`) on every `make test`: a thousand seeds of random
//! traders, crashes at random writes and an unreliable network against the real engine, each
//! ending with every invariant and replay equality checked; and the promise that makes a
//! failure useful: one seed is one run, exactly.
//!
//! Test code unwraps: a failure should fail the test.

use hob::sim::{run_seed, run_seeds, SimConfig};

/// Seeds per `make test`; `hob sim --seeds N` runs more.
const SEEDS: u64 = 1_000;

#[test]
fn a_thousand_seeds_keep_every_invariant() {
    let config = SimConfig::default();
    match run_seeds(0, SEEDS, &config, |_| {}) {
        Ok(summary) => {
            assert_eq!(summary.seeds, SEEDS);
            // The runs must have exercised what they claim to.
            assert!(summary.crashes > SEEDS / 10, "too few crashes: {summary}");
            assert!(summary.trades > SEEDS, "too few trades: {summary}");
            println!("{summary}");
        }
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig::default();
    for seed in [3, 17, 4_242] {
        let first = run_seed(seed, &config).unwrap();
        let second = run_seed(seed, &config).unwrap();
        assert_eq!(first, second, "seed {seed} ran differently twice");
    }
}

#[test]
fn different_seeds_run_differently() {
    let config = SimConfig::default();
    let a = run_seed(1, &config).unwrap();
    let b = run_seed(2, &config).unwrap();
    assert_ne!(a.digest, b.digest);
}
