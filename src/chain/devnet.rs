//! A local anvil that lives exactly as long as this process: spawned from the binary `make
//! tools` installed, killed when the `Devnet` is dropped (a clean stop, Ctrl-C, SIGTERM) and,
//! should this process die without dropping it (SIGKILL, a crash), by a watchdog shell that
//! notices our pid is gone.

use std::process::Child;
use std::time::Duration;

use alloy::node_bindings::AnvilInstance;
use alloy::signers::local::PrivateKeySigner;

use super::tools::{self, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("starting anvil: {0}")]
    Spawn(String),
    #[error("anvil offers no dev account {0}")]
    NoDevAccount(usize),
}

pub struct Devnet {
    anvil: AnvilInstance,
    /// Held, never waited on here: it must outlive this process to do its job.
    _watchdog: Option<Child>,
}

impl Devnet {
    /// Starts anvil on `port` (0: a free one) mining a block every `block_time` (zero: one
    /// per transaction).
    pub fn spawn(block_time: Duration, port: u16) -> Result<Devnet, DevnetError> {
        let mut builder = tools::anvil()?;
        if !block_time.is_zero() {
            builder = builder.block_time_f64(block_time.as_secs_f64());
        }
        if port != 0 {
            builder = builder.port(port);
        }
        let anvil = builder.try_spawn().map_err(|e| DevnetError::Spawn(e.to_string()))?;
        let watchdog = watchdog(anvil.child().id());
        Ok(Devnet { anvil, _watchdog: watchdog })
    }

    pub fn endpoint(&self) -> String {
        self.anvil.endpoint()
    }

    pub fn pid(&self) -> u32 {
        self.anvil.child().id()
    }

    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// Dev account `n`, funded by anvil with 10,000 ETH.
    pub fn account(&self, n: usize) -> Result<PrivateKeySigner, DevnetError> {
        self.anvil.nth_key(n).cloned().map(PrivateKeySigner::from).ok_or(DevnetError::NoDevAccount(n))
    }
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Devnet({}, pid {})", self.endpoint(), self.pid())
    }
}

/// A shell that kills anvil, by its pid, once this process is gone. Without it a SIGKILLed
/// hob would leave anvil running, holding its port. Best effort: with no `sh`, only the
/// clean paths stop anvil.
fn watchdog(anvil_pid: u32) -> Option<Child> {
    crate::process::stop_with_this_process(anvil_pid)
        .map_err(|e| tracing::warn!(error = %e, "no anvil watchdog; a killed hob may leave anvil running"))
        .ok()
}
