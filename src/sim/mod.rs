//! Deterministic simulation (`hob sim`, `tests/simulation/`). One seed owns everything that
//! can vary: the traders' actions, the clock (a `ManualClock`, and tokio's timers paused so
//! they fire as soon as nothing else can run), the disk (an in-memory store that crashes
//! before or after a chosen write, or mid-snapshot), and the network (queues that delay and
//! duplicate deliveries and let groups overtake each other, never reordering within a FIFO
//! group). The real actors, relay, consumers and domain code run unchanged on one thread, so a
//! seed replays exactly: a failure prints the one command that reproduces it.
//!
//! After the last step the run settles, then every invariant is checked (hash chains,
//! conservation per asset, no order accepted or closed twice, every trade matched by exactly
//! one fill on each side, every acknowledged order accounted for, the book not crossed and in
//! agreement with the users, no dead letters), and a fresh process replaying the same disk
//! must hold exactly the live state.
//!
//! In a share of the seeds (`ChainConfig`) the settlement operator and the chain watcher run
//! too, on the simulated chain (`settlement::sim`) with seeded faults (`chain.rs`), and once
//! settlement has quiesced the auditor's checks and on-chain = off-chain are checked
//! (`settlement_checks.rs`).

mod chain;
mod checks;
mod queue;
mod rng;
mod runner;
mod settlement_checks;
mod store;

pub use chain::ChainConfig;
pub use checks::{Ledger, SimFailure};
pub use queue::{Chaos, ChaosQueue};
pub use rng::Rng;
pub use runner::{run_seed, SimConfig, SimReport};
pub use store::{CrashPoint, CrashingStore};

/// Seeds `from .. from + count`, one after the other, stopping at the first failure.
/// `each` sees every passing run's report.
pub fn run_seeds(
    from: u64,
    count: u64,
    config: &SimConfig,
    mut each: impl FnMut(&SimReport),
) -> Result<SimSummary, SimFailure> {
    let started = std::time::Instant::now();
    let mut summary = SimSummary::default();
    for seed in from..from.saturating_add(count) {
        let report = run_seed(seed, config)?;
        each(&report);
        summary.seeds += 1;
        summary.actions += report.actions;
        summary.crashes += report.crashes;
        summary.trades += report.trades;
        summary.events += report.events;
        summary.chain_seeds += u64::from(report.chain);
        summary.chain_faults += report.chain_faults;
        summary.settled_trades += report.settled_trades;
        summary.voided_trades += report.voided_trades;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Totals over the seeds of one `run_seeds`.
#[derive(Clone, Debug, Default)]
pub struct SimSummary {
    pub seeds: u64,
    pub actions: u64,
    pub crashes: u64,
    pub trades: u64,
    pub events: u64,
    /// Seeds that settled on the simulated chain, their chain faults, and their trades
    /// settled and voided.
    pub chain_seeds: u64,
    pub chain_faults: u64,
    pub settled_trades: u64,
    pub voided_trades: u64,
    pub elapsed: std::time::Duration,
}

impl std::fmt::Display for SimSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let minutes = self.elapsed.as_secs_f64() / 60.0;
        let per_minute = if minutes > 0.0 { self.seeds as f64 / minutes } else { 0.0 };
        write!(
            f,
            "{} seeds passed: {} actions, {} crashes, {} trades, {} events; {} seeds on the chain: {} faults, {} trades settled, {} voided; in {:.1} s ({per_minute:.0} seeds/min)",
            self.seeds,
            self.actions,
            self.crashes,
            self.trades,
            self.events,
            self.chain_seeds,
            self.chain_faults,
            self.settled_trades,
            self.voided_trades,
            self.elapsed.as_secs_f64()
        )
    }
}
