//! The real `hob serve` binary on a local chain, as `make run` starts it (`--chain anvil
//! --dev-faucet`), on a free port and a temporary data directory. hob spawns its own anvil and
//! kills it when it stops; a watchdog shell stops hob (SIGTERM) once the test process is gone,
//! so a server held in a `static` does not outlive the tests.
//!
//! Test code unwraps: a failure should fail the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct HobServe {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub dir: tempfile::TempDir,
    /// Held, never waited on: it must outlive this process.
    _watchdog: Child,
}

impl Drop for HobServe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

impl HobServe {
    /// Starts `hob serve --chain anvil --dev-faucet` with `args` and `env` added, and reads
    /// its banner up to the last chain line; panics with hob's output if it exits first.
    pub fn spawn_on_anvil(args: &[&str], env: &[(&str, &str)]) -> HobServe {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let stderr = std::fs::File::create(dir.path().join("hob.stderr")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
            .args(["serve", "--workers", "1", "--chain", "anvil", "--dev-faucet"])
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--store")
            .arg(format!("sqlite:{}", dir.path().join("data/hob.db").display()))
            .arg("--views")
            .arg(format!("sqlite:{}", dir.path().join("data/views.db").display()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("hob starts");
        let watchdog = hob::process::stop_with_this_process(child.id()).unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let mut complete = false;
        while let Some(Ok(line)) = lines.next() {
            // The banner's last chain line.
            complete = line.contains("/operator/chain");
            banner.push(line);
            if complete {
                break;
            }
        }
        // The rest of stdout is drained so hob never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        if !complete {
            let status = child.wait().unwrap();
            let stderr = std::fs::read_to_string(dir.path().join("hob.stderr")).unwrap_or_default();
            panic!("hob exited ({status}) before its banner:\n{}\nstderr:\n{stderr}", banner.join("\n"));
        }
        HobServe { child, base: format!("http://127.0.0.1:{port}"), dir, _watchdog: watchdog }
    }

    /// hob's log so far, for a failure message.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hob.stderr")).unwrap_or_default()
    }
}
