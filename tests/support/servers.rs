//! The real servers tests talk to, started from `.tools/` (`scripts/install-tools.sh`) on free
//! ports: SecantusDB (a MongoDB replica set of one) and moto (SQS). Each is killed when the
//! test process ends, even when it is held in a `static` that is never dropped.
//!
//! Test code unwraps: a failure should fail the test.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Statics are never dropped, so a server would outlive the test binary: a watchdog kills it
/// once this process is gone.
pub fn stop_with_this_process(pid: u32) -> Child {
    hob::process::stop_with_this_process(pid).unwrap()
}

/// A server process listening on `port`, its log and data in `dir`.
pub struct Spawned {
    pub port: u16,
    child: Mutex<Child>,
    _watchdog: Child,
    pub dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin").join(name);
    assert!(path.is_file(), "{} is missing: run `make tools`", path.display());
    path
}

/// Starts `program args...` and waits (60 s at most) until it listens on `port`.
pub fn spawn_listening(program: PathBuf, port: u16, args: impl FnOnce(&std::path::Path) -> Vec<String>) -> Spawned {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(&program)
        .args(args(dir.path()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let watchdog = stop_with_this_process(child.id());
    let spawned = Spawned { port, child: Mutex::new(child), _watchdog: watchdog, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = spawned.child.lock().unwrap().try_wait().unwrap();
        let log = std::fs::read_to_string(spawned.dir.path().join("server.log")).unwrap_or_default();
        assert!(exited.is_none(), "{} exited: {log}", program.display());
        assert!(Instant::now() < deadline, "{} not listening after 60 s: {log}", program.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    spawned
}

/// SecantusDB: a one-member replica set named `secantus`, syncing on commit.
pub fn secantus() -> Spawned {
    secantus_with(&[])
}

/// SecantusDB with more flags (`--enable-test-commands` for fail points, `--standalone`).
pub fn secantus_with(extra: &[&str]) -> Spawned {
    let port = free_port();
    spawn_listening(tool("secantusd-py"), port, |dir| {
        let data = dir.join("data").display().to_string();
        let mut args: Vec<String> =
            ["--host", "127.0.0.1", "--port", &port.to_string(), "--sync-on-commit", "--storage-path", &data]
                .map(str::to_owned)
                .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    })
}

/// moto's server: SQS (and the rest of AWS) on `http://127.0.0.1:{port}`.
pub fn moto() -> Spawned {
    let port = free_port();
    spawn_listening(tool("moto_server"), port, |_| {
        ["-H", "127.0.0.1", "-p", &port.to_string()].map(str::to_owned).to_vec()
    })
}

/// moto serving one request at a time, with one FIFO fix. moto's FIFO receive is not atomic
/// (concurrent requests may hand one group to two consumers), and when several in-flight
/// messages of a group time out together (a killed consumer) it can release a later one
/// before an earlier one: it only notices a message timed out when its loop reaches it, after
/// it has already skipped the earlier ones as "group in flight". SQS redelivers in order. Here
/// requests are served one at a time and every timed-out message is released before a receive
/// looks at the queue. Use it with short polling (a long poll would hold the only thread).
pub fn moto_serial() -> Spawned {
    let port = free_port();
    let script = r#"
import os, sys
os.environ.setdefault("MOTO_PORT", sys.argv[1])
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs.models import SQSBackend

original = SQSBackend.receive_message

def receive_message(self, queue_name, *args, **kwargs):
    queue = self.get_queue(queue_name)
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.remove(message)
    return original(self, queue_name, *args, **kwargs)

SQSBackend.receive_message = receive_message
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
"#;
    spawn_listening(tool("python3"), port, |_| vec!["-c".to_owned(), script.to_owned(), port.to_string()])
}

/// One HTTP request to a `hob serve` at `base` in development mode, as `user` (the
/// `x-hob-user` header): (status, JSON body or null). A refused connection (a stopped or
/// killed node) is 502, never an acknowledgement.
pub async fn call_as(
    base: &str,
    method: awc::http::Method,
    path: &str,
    user: Option<&str>,
    body: Option<serde_json::Value>,
) -> (awc::http::StatusCode, serde_json::Value) {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(user) = user {
        req = req.insert_header(("x-hob-user", user));
    }
    let sent = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let Ok(mut res) = sent else { return (awc::http::StatusCode::BAD_GATEWAY, serde_json::Value::Null) };
    let bytes = res.body().limit(4 * 1024 * 1024).await.unwrap_or_default();
    (res.status(), serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}
