//! The committed artifacts (`contracts/out/*.json`, what `cargo build` embeds and deploys)
//! are exactly what the pinned compiler makes of `contracts/src/`: editing a contract without
//! recompiling fails here, not in production.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_artifacts_match_a_fresh_compile_of_the_sources() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("node")
        .arg(repo.join("contracts/compile.js"))
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js, then run `make tools`"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // compile.js exits 2 when the pinned solc is not installed.
        Some(2) => panic!("the pinned Solidity compiler is missing: run `make tools`\n{stderr}"),
        _ => panic!("contracts/out does not match contracts/src: run `node contracts/compile.js` and commit the result\n{stderr}"),
    }
}
