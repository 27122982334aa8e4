//! The real `hob serve` binary, as `make run` starts it, on a free port and a temporary data
//! directory. In anvil mode hob spawns its own anvil and kills it when it stops; a watchdog
//! shell stops hob (SIGTERM, so it stops its anvil too) once the test process is gone, so a
//! server held in a `static` does not outlive the tests.
//!
//! Test code unwraps: a failure should fail the test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use serde_json::{json, Value};

pub struct HobServe {
    pub child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The anvil hob spawned (anvil mode).
    pub anvil_pid: Option<u32>,
    pub dir: tempfile::TempDir,
    /// Held, never waited on: it must outlive this process.
    _watchdog: Child,
}

/// A test's own hob stops (SIGTERM, so cleanly) when the test ends; one in a static is
/// stopped by its watchdog.
impl Drop for HobServe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

impl HobServe {
    /// `hob serve --chain anvil --dev-faucet` with `args` and `env` added, as `make run`;
    /// panics with hob's output if it does not start.
    pub fn spawn_on_anvil(args: &[&str], env: &[(&str, String)]) -> HobServe {
        let args: Vec<&str> = ["--chain", "anvil", "--dev-faucet"].iter().chain(args).copied().collect();
        let hob = HobServe::launch(tempfile::tempdir().unwrap(), &args, env).unwrap_or_else(|e| panic!("{e}"));
        assert!(hob.anvil_pid.is_some(), "hob names the anvil it spawned");
        hob
    }

    /// Starts `hob serve` with `args` and `env` on a fresh data directory in `dir` and a free
    /// port, and reads its banner up to the last chain line; `Err` with hob's output if it
    /// exits first.
    pub fn launch(dir: tempfile::TempDir, args: &[&str], env: &[(&str, String)]) -> Result<HobServe, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let stderr = std::fs::File::create(dir.path().join("hob.stderr")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
            .args(["serve", "--workers", "1"])
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--store")
            .arg(format!("sqlite:{}", dir.path().join("data/hob.db").display()))
            .arg("--views")
            .arg(format!("sqlite:{}", dir.path().join("data/views.db").display()))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("hob starts");
        let watchdog = hob::process::stop_with_this_process(child.id()).unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let mut anvil_pid = None;
        let mut complete = false;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.split("(anvil, pid ").nth(1) {
                anvil_pid = rest.split(',').next().and_then(|pid| pid.parse().ok());
            }
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
            // hob is gone; a thread waits for its watchdog, so it is reaped whenever it ends.
            let mut watchdog = watchdog;
            std::thread::spawn(move || watchdog.wait());
            let stderr = std::fs::read_to_string(dir.path().join("hob.stderr")).unwrap_or_default();
            return Err(format!("hob exited ({status}) before its banner:\n{}\nstderr:\n{stderr}", banner.join("\n")));
        }
        Ok(HobServe { child, base: format!("http://127.0.0.1:{port}"), anvil_pid, dir, _watchdog: watchdog })
    }

    /// hob's log so far, for a failure message.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hob.stderr")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP and chain clients
// ---------------------------------------------------------------------------------------------

/// How long a test waits for hob or the chain to get somewhere.
pub const LIMIT: Duration = Duration::from_secs(60);

type Hob = HobServe;

pub async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + LIMIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn call(
    hob: &Hob,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let mut req = client.request(method, format!("{}{path}", hob.base));
    if let Some(token) = bearer {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = res.body().limit(4 * 1024 * 1024).await.unwrap();
    (res.status(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn ok(hob: &Hob, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Value {
    let (status, body) = call(hob, method, path, bearer, body).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Waits for /readyz: the stores, the queues, the node, and every market registered.
pub async fn ready(hob: &Hob) -> Value {
    wait_until("/readyz", || async { call(hob, Method::GET, "/readyz", None, None).await.0 == StatusCode::OK }).await;
    ok(hob, Method::GET, "/api/v1/chain", None, None).await
}

pub fn address_of(chain: &Value, field: &str) -> Address {
    chain[field].as_str().unwrap().parse().unwrap()
}

pub fn token(chain: &Value, asset: &str) -> Address {
    chain["tokens"][asset].as_str().unwrap().parse().unwrap()
}

pub fn node(chain: &Value, key: Option<&PrivateKeySigner>) -> DynProvider {
    let url = chain["rpc_url"].as_str().unwrap().parse().unwrap();
    match key {
        Some(key) => ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url).erased(),
        None => ProviderBuilder::new().connect_http(url).erased(),
    }
}

pub fn hex_signature(signature: &alloy::primitives::Signature) -> String {
    format!("0x{}", alloy::hex::encode(signature.as_bytes()))
}

/// Signs in as `key`'s wallet: a challenge signed with personal_sign.
pub async fn login(hob: &Hob, key: &PrivateKeySigner) -> String {
    let address = key.address().to_checksum(None);
    let challenge = ok(hob, Method::POST, "/api/v1/auth/challenge", None, Some(json!({ "address": address }))).await;
    let signature = key.sign_message_sync(challenge["message"].as_str().unwrap().as_bytes()).unwrap();
    let body = json!({ "nonce": challenge["nonce"], "signature": hex_signature(&signature) });
    let session = ok(hob, Method::POST, "/api/v1/auth/login", None, Some(body)).await;
    session["token"].as_str().unwrap().to_owned()
}
