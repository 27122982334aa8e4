//! `--spawn-server`: a `hob serve` of its own for one-command benchmarking, on a free port
//! with fresh stores in a temporary directory, the dev faucet on and rate limits out of the
//! way (the load generator is one IP and few users, far above the per-user defaults). It is
//! killed when the `SpawnedServer` is dropped, and a watchdog shell kills it if this process
//! dies without dropping it.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::loadgen::LoadgenError;

/// How long the server may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits raised so the load generator measures the engine, not the rate limiter.
const UNLIMITED: &[(&str, &str)] = &[
    ("HOB_IP_REQUESTS_PER_SEC", "10000000"),
    ("HOB_IP_BURST", "10000000"),
    ("HOB_USER_REQUESTS_PER_SEC", "10000000"),
    ("HOB_USER_BURST", "10000000"),
];

pub struct SpawnedServer {
    child: Child,
    watchdog: Option<Child>,
    dir: PathBuf,
    remove_dir: bool,
    base_url: String,
}

impl SpawnedServer {
    /// Starts `hob` (the binary at `hob`) and waits until it is ready. `data_dir` holds its
    /// stores and log; without one a temporary directory is made and removed on drop.
    pub async fn start(hob: &Path, data_dir: Option<&Path>) -> Result<SpawnedServer, LoadgenError> {
        let (dir, remove_dir) = match data_dir {
            Some(d) => (d.to_path_buf(), false),
            None => {
                let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
                (std::env::temp_dir().join(format!("hob-loadgen-{}-{nanos}", std::process::id())), true)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| LoadgenError::Spawn(format!("{}: {e}", dir.display())))?;
        let port = free_port()?;
        let log = File::create(dir.join("hob-serve.log")).map_err(|e| LoadgenError::Spawn(e.to_string()))?;
        let log_err = log.try_clone().map_err(|e| LoadgenError::Spawn(e.to_string()))?;
        let mut command = Command::new(hob);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--store")
            .arg(format!("sqlite:{}", dir.join("hob.db").display()))
            .arg("--views")
            .arg(format!("sqlite:{}", dir.join("views.db").display()))
            .arg("--dev-faucet")
            .envs(UNLIMITED.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|e| LoadgenError::Spawn(format!("{}: {e}", hob.display())))?;
        let watchdog = stop_with_this_process(child.id());
        let mut server =
            SpawnedServer { child, watchdog, dir, remove_dir, base_url: format!("http://127.0.0.1:{port}") };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where its stores and `hob-serve.log` are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn wait_ready(&mut self) -> Result<(), LoadgenError> {
        let client = awc::Client::builder().timeout(Duration::from_secs(2)).finish();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.dir.join("hob-serve.log");
                return Err(LoadgenError::Spawn(format!("hob serve exited ({status}); see {}", log.display())));
            }
            if let Ok(res) = client.get(format!("{}/readyz", self.base_url)).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(LoadgenError::Spawn(format!("hob serve not ready in {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port nothing listens on right now (bound, read, released).
fn free_port() -> Result<u16, LoadgenError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| LoadgenError::Spawn(format!("no free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| LoadgenError::Spawn(e.to_string()))
}

/// A shell that kills `pid` once this process is gone: a server held in a static, or left
/// behind by a crash, must not outlive its parent. `None` when no shell could be started (the
/// drop still kills the server).
fn stop_with_this_process(pid: u32) -> Option<Child> {
    crate::process::stop_with_this_process(pid).ok()
}
