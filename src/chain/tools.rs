//! Where the external chain tools live. `make tools` (scripts/install-tools.sh) pins them into
//! `<repo>/.tools/`; an environment variable points elsewhere (a deployed binary, a system
//! install). Nothing here downloads anything: a missing tool is an error that says how to get it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use alloy::node_bindings::Anvil;

/// Overrides the anvil binary's location.
pub const ANVIL_ENV: &str = "HOB_ANVIL";

/// The anvil binary inside the npm package `@foundry-rs/anvil` installed by `make tools`.
pub const ANVIL_IN_REPO: &str = ".tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolError {
    #[error("anvil not found at {0}: run `make tools` to install it (or set HOB_ANVIL to an anvil binary)")]
    AnvilNotInstalled(PathBuf),
    #[error("HOB_ANVIL points to {0}, which is not a file")]
    AnvilOverrideMissing(PathBuf),
}

/// The repository this crate was built from; `.tools/` lives there.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The anvil binary to run: `$HOB_ANVIL` if set, else the one `make tools` installed.
pub fn anvil_path() -> Result<PathBuf, ToolError> {
    resolve_anvil(std::env::var_os(ANVIL_ENV), &repo_root())
}

/// An anvil builder for that binary, so callers keep alloy's options (ports, block time, ...).
pub fn anvil() -> Result<Anvil, ToolError> {
    Ok(Anvil::at(anvil_path()?))
}

fn resolve_anvil(override_path: Option<OsString>, root: &Path) -> Result<PathBuf, ToolError> {
    match override_path.filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ToolError::AnvilOverrideMissing(path))
            }
        }
        None => {
            let path = root.join(ANVIL_IN_REPO);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ToolError::AnvilNotInstalled(path))
            }
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/chain/tools.rs"]
mod tests;
