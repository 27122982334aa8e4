//! Child processes that must not outlive hob (anvil under `make run`, the server `hob loadgen`
//! spawns, the servers tests start).

use std::process::{Child, Command, Stdio};

/// A shell that kills `pid` once this process is gone, however it ends (a SIGKILL included,
/// where no drop runs). It polls once a second, so the child outlives its parent by a second
/// at most.
pub fn stop_with_this_process(pid: u32) -> std::io::Result<Child> {
    Command::new("sh")
        .args([
            "-c",
            r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill "$1" 2>/dev/null"#,
            &std::process::id().to_string(),
            &pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
