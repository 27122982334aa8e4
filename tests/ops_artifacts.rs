//! The deployment artifacts under `ops/` and the Dockerfile, checked by the real tools that
//! `scripts/install-tools.sh` installs (kubectl's kustomize, kubernetes-validate, the CRD
//! models under node, hadolint, promtool), and against a real `hob serve` started from the
//! test binary's `hob`: every metric the alerts and the dashboard name must be in its
//! `/metrics`, and its JSON logs must carry the request ids it echoes.

// Test code unwraps: a failure should fail the test, with its message.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const OPERATOR_TOKEN: &str = "ops-artifacts-operator-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from `.tools/` (installed by `make tools`), or a clear failure saying so.
fn tool(relative: &str) -> PathBuf {
    let path = root().join(".tools").join(relative);
    assert!(path.exists(), "{} is missing: run `make tools` (scripts/install-tools.sh)", path.display());
    path
}

/// Runs `command`, feeding `stdin`; returns (success, stdout + stderr).
fn run(command: &mut Command, stdin: &str) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e} (run `make tools`)"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn kustomize(dir: &str) -> String {
    let (ok, out) = run(Command::new(tool("venv/bin/kubectl")).arg("kustomize").arg(root().join(dir)), "");
    assert!(ok, "kubectl kustomize {dir}:\n{out}");
    out
}

/// Multi-document YAML as JSON values (PyYAML from the tools venv: hob has no YAML parser).
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\nfor d in yaml.safe_load_all(sys.stdin):\n    if d: print(json.dumps(d))";
    let (ok, out) = run(Command::new(tool("venv/bin/python")).args(["-c", script]), yaml);
    assert!(ok, "parsing YAML:\n{out}");
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn kubernetes_validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, yaml).unwrap();
    run(Command::new(tool("venv/bin/kubernetes-validate")).args(["--strict", "--quiet"]).arg(&file), "")
}

fn validate_custom_resources(docs: &[Value]) -> (bool, String) {
    let lines: String = docs.iter().map(|d| format!("{d}\n")).collect();
    let script = root().join("ops/k8s/validate-crds.mjs");
    run(Command::new("node").arg(script).arg(tool("npm/node_modules")), &lines)
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| d["kind"].as_str().unwrap().to_owned()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_overlay_renders_and_validates_against_the_kubernetes_and_crd_schemas() {
    let namespaced = [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    for (dir, namespace) in [("ops/k8s/overlays/dev", "hob-dev"), ("ops/k8s/overlays/prod", "hob-prod")] {
        // given an overlay rendered by kustomize
        let yaml = kustomize(dir);
        let docs = yaml_documents(&yaml);
        // then it holds every resource the deployment needs, in its namespace
        let expected: BTreeSet<String> = namespaced.iter().map(|k| k.to_string()).collect();
        assert_eq!(kinds(&docs), expected, "{dir}");
        assert!(docs.iter().all(|d| d["metadata"]["namespace"] == namespace), "{dir}: all in {namespace}");
        // and the built-in kinds pass the Kubernetes schemas, strictly (no unknown fields)
        let (ok, out) = kubernetes_validate(&yaml);
        assert!(ok, "kubernetes-validate {dir}:\n{out}");
        // and the custom resources pass their CRDs' schemas
        let (ok, out) = validate_custom_resources(&docs);
        assert!(ok && out.contains("1 custom resources valid"), "CRDs {dir}:\n{out}");
    }
    // the cluster-scoped Karpenter NodePool, applied once per cluster, has no namespace
    let docs = yaml_documents(&kustomize("ops/k8s/cluster"));
    assert_eq!(kinds(&docs), BTreeSet::from(["NodePool".to_owned()]));
    assert_eq!(docs[0]["apiVersion"], "karpenter.sh/v1");
    assert!(docs[0]["metadata"].get("namespace").is_none());
    let (ok, out) = validate_custom_resources(&docs);
    assert!(ok && out.contains("1 custom resources valid"), "NodePool:\n{out}");
}

#[test]
fn the_validators_refuse_broken_manifests() {
    // given a Deployment with a misspelt field and a ServiceMonitor with a number for a path
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 1\n  \
                      selector:\n    matchLabels: {a: b}\n  template:\n    metadata:\n      labels: {a: b}\n    \
                      spec:\n      containers: [{name: x, image: x}]\n";
    let monitor = serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "path": 5}]},
    });
    let unknown = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}});
    // then each validator says no, naming the fault
    let (ok, out) = kubernetes_validate(deployment);
    assert!(!ok && out.contains("replica"), "{out}");
    let (ok, out) = validate_custom_resources(&[monitor]);
    assert!(!ok && out.contains("path"), "{out}");
    let (ok, out) = validate_custom_resources(&[unknown]);
    assert!(!ok && out.contains("no schema"), "{out}");
}

#[test]
fn the_deployment_probes_real_endpoints_runs_the_config_it_is_given_and_holds_no_secret() {
    for dir in ["ops/k8s/overlays/dev", "ops/k8s/overlays/prod"] {
        let docs = yaml_documents(&kustomize(dir));
        // given the rendered ConfigMap, Deployment, Service and HPA
        let config_map = find(&docs, "ConfigMap");
        let toml = config_map["data"]["hob.toml"].as_str().unwrap();
        let deployment = find(&docs, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        // then hob itself accepts the configuration the pod mounts
        let config = hob::config::Config::from_toml(toml).unwrap();
        config.validate().unwrap();
        assert_eq!(config.log.format, hob::telemetry::LogFormat::Json, "{dir}: JSON logs for Fluent Bit");
        // and the container port is the one hob listens on, which the Service targets
        let port = &container["ports"][0];
        assert_eq!(port["containerPort"], u64::from(config.server.listen.port()), "{dir}");
        assert_eq!(port["name"], "http");
        assert_eq!(find(&docs, "Service")["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(container["args"], serde_json::json!(["serve", "--config", "/etc/hob/hob.toml"]));
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(mounts.iter().any(|m| m["mountPath"] == "/etc/hob"), "{dir}: the config is mounted");
        // and the probes ask hob's health routes
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        // and it runs as the image's non-root user
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 10001);
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
        // and secrets are references only: no Secret object, no literal secret value
        assert!(!kinds(&docs).contains("Secret"), "{dir}: no Secret is rendered");
        for env in container["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if ["HOB_OPERATOR_TOKEN", "HOB_STORE"].contains(&name) {
                assert!(env.get("value").is_none(), "{dir}: {name} must not be a literal");
                assert!(env["valueFrom"]["secretKeyRef"]["name"].is_string(), "{dir}: {name} from a Secret");
            }
            // every HOB_ variable must be one hob knows: an unknown one stops it at start
            if let Some(value) = env["value"].as_str() {
                hob::config::Config::default().apply_env(name, value).unwrap();
            }
        }
        assert!(toml.lines().all(|l| !l.trim_start().starts_with("token")), "{dir}: no token in the ConfigMap");
        let volumes = pod["volumes"].as_array().unwrap();
        assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "hob-operator-key"), "{dir}: the key file");
        // and the autoscaler reads CPU and the market mailbox depth
        let hpa = &find(&docs, "HorizontalPodAutoscaler")["spec"];
        let metrics = hpa["metrics"].as_array().unwrap();
        assert!(metrics.iter().any(|m| m["resource"]["name"] == "cpu"));
        let mailbox = metrics.iter().find(|m| m["type"] == "Pods").unwrap();
        assert_eq!(mailbox["pods"]["metric"]["name"], "hob_mailbox_depth_max");
        assert_eq!(hpa["scaleTargetRef"]["name"], deployment["metadata"]["name"]);
        // and the disruption budget and the ServiceMonitor select these pods and this port
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let pdb = &find(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"];
        for (key, value) in pdb.as_object().unwrap() {
            assert_eq!(&labels[key], value, "{dir}: the PDB selects the engine");
        }
        let monitor = &find(&docs, "ServiceMonitor")["spec"];
        assert_eq!(monitor["endpoints"][0]["port"], "http");
        assert_eq!(monitor["endpoints"][0]["path"], "/metrics");
    }
}

// ---------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_checks_the_servers_health() {
    let dockerfile_path = root().join("ops/docker/Dockerfile");
    // given the Dockerfile, hadolint accepts it with the project's settings
    let (ok, out) = run(
        Command::new(tool("venv/bin/hadolint"))
            .arg("--config")
            .arg(root().join("ops/docker/.hadolint.yaml"))
            .arg(&dockerfile_path),
        "",
    );
    assert!(ok, "hadolint:\n{out}");
    // and its instructions (continuation lines joined) say what the deployment relies on
    let text = std::fs::read_to_string(&dockerfile_path).unwrap().replace("\\\n", " ");
    let instructions: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_uppercase(), v.trim().to_owned())))
        .collect();
    let all = |key: &str| instructions.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let froms = all("FROM");
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].ends_with("AS builder"), "{froms:?}");
    assert!(froms[1].starts_with("debian:bookworm-slim"), "a small runtime: {froms:?}");
    assert!(all("COPY").iter().any(|c| c.starts_with("--from=builder")), "the runtime takes only the binary");
    let user = all("USER").last().cloned().unwrap();
    assert!(!["root", "0", "0:0"].contains(&user.as_str()), "runs as a non-root user: {user}");
    // and the port it exposes is the one hob listens on there, and the health check asks it
    let env = all("ENV").join(" ");
    let listen = env.split_whitespace().find_map(|kv| kv.strip_prefix("HOB_LISTEN=")).unwrap();
    let listen: SocketAddr = listen.parse().unwrap();
    let mut config = hob::config::Config::default();
    for kv in env.split_whitespace() {
        let (name, value) = kv.split_once('=').unwrap();
        config.apply_env(name, value).unwrap();
    }
    config.validate().unwrap();
    assert_eq!(config.server.listen, listen);
    assert_eq!(all("EXPOSE"), [listen.port().to_string()]);
    let health = all("HEALTHCHECK").join(" ");
    assert!(health.contains(&format!("http://127.0.0.1:{}/healthz", listen.port())), "{health}");
    assert_eq!(all("ENTRYPOINT"), [r#"["/usr/local/bin/hob"]"#]);
    // and the build context leaves out what the build does not need
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for heavy in ["target", ".tools", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == heavy), ".dockerignore leaves out {heavy}");
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules, the dashboard, and a running hob serve
// ---------------------------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_alert_rules_and_their_unit_tests_pass() {
    let dir = root().join("ops/observability");
    let (ok, out) = run(Command::new("promtool").current_dir(&dir).args(["check", "rules", "alerts.yml"]), "");
    assert!(ok, "promtool check rules (Debian package prometheus, `make tools`):\n{out}");
    let (ok, out) = run(Command::new("promtool").current_dir(&dir).args(["test", "rules", "alerts.test.yml"]), "");
    assert!(ok, "promtool test rules:\n{out}");
    // and the six conditions the operators asked for each have an alert
    let rules = yaml_documents(&std::fs::read_to_string(dir.join("alerts.yml")).unwrap());
    let exprs: Vec<String> = rules[0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            assert!(r["labels"]["severity"].is_string() && r["annotations"]["summary"].is_string(), "{r}");
            r["expr"].as_str().unwrap().to_owned()
        })
        .collect();
    for metric in [
        "hob_settlement_batches_failed_total",
        "hob_market_halted",
        "hob_outbox_unpublished",
        "hob_settlement_nonce_gap",
        "hob_mailbox_depth_max",
        "hob_order_ack_seconds_bucket",
    ] {
        assert!(exprs.iter().any(|e| e.contains(metric)), "an alert on {metric}");
    }
}

/// The metric names (`hob_...`) a text mentions.
fn hob_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("hob_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start
            + text[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len() - start);
        // A bare `hob_` is prose ("every hob_* series"), not a name.
        if boundary && end > start + "hob_".len() {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// A `hob serve` shared by this binary's tests: JSON logs, development user header and
/// faucet, an operator token, a temporary data directory. Its stdout lines are collected.
struct Server {
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    _child: Child,
    _data: tempfile::TempDir,
    /// Held, never waited on: it must outlive this process.
    _watchdog: Child,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--dev-insecure-user-header", "--dev-faucet"])
            .env("HOB_STORE", format!("sqlite:{}", data.path().join("events.db").display()))
            .env("HOB_VIEWS", format!("sqlite:{}", data.path().join("views.db").display()))
            .env("HOB_LOG_FORMAT", "json")
            .env("HOB_LOG_LEVEL", "info")
            .env("HOB_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("HOB_FEED_POLL_MS", "20")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let watchdog = stop_with_this_process(child.id());
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tell, listening) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tell.send(addr.split('"').next().unwrap_or_default().to_owned());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let addr = listening.recv_timeout(Duration::from_secs(60)).expect("hob serve says where it listens");
        Server { addr, logs, _child: child, _data: data, _watchdog: watchdog }
    })
}

/// Statics are never dropped, so the server would outlive the test binary: a watchdog kills it
/// once this process is gone.
fn stop_with_this_process(pid: u32) -> Child {
    hob::process::stop_with_this_process(pid).expect("sh runs the watchdog")
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.0 request (the server then answers with a plain body and closes).
fn http(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Response {
    let mut stream = TcpStream::connect(&server().addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n", server().addr, body.len());
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Response { status, headers, body: body.to_owned() }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_name_is_served_by_hob() {
    // given the names in the alert rules and the dashboard
    let dir = root().join("ops/observability");
    let alerts = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap();
    let dashboard_json: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(dashboard_json["panels"].as_array().is_some_and(|p| p.len() >= 8), "the dashboard has its panels");
    let mut wanted = hob_metric_names(&alerts);
    wanted.extend(hob_metric_names(&dashboard));
    assert!(wanted.len() >= 20, "{wanted:?}");
    // and a running server that has taken orders and halted a market
    let user = "0x00000000000000000000000000000000000000a1";
    let fund = serde_json::json!({"user": user, "asset": "USDT", "amount": "1000"});
    assert_eq!(http("POST", "/api/v1/dev/faucet", &[], Some(&fund)).status, 200);
    let order = serde_json::json!({"market": "BTC-USDT", "side": "buy", "price": "1000", "qty": "0.01", "nonce": 1});
    let placed = http("POST", "/api/v1/orders", &[("x-hob-user", user)], Some(&order));
    assert_eq!(placed.status, 200, "{}", placed.body);
    let bearer = format!("Bearer {OPERATOR_TOKEN}");
    let halted = http("POST", "/operator/markets/ETH-USDT/halt", &[("authorization", &bearer)], None);
    assert_eq!(halted.status, 200, "{}", halted.body);
    // when /metrics is scraped (once the market feed has seen the halt)
    let mut metrics = String::new();
    wait_until("the halted market shows in /metrics", || {
        metrics = http("GET", "/metrics", &[], None).body;
        metrics.contains("hob_market_halted{market=\"ETH-USDT\"} 1")
    });
    // then every name the alerts and the dashboard use is a series hob serves
    let served: BTreeSet<String> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = wanted.difference(&served).collect();
    assert!(missing.is_empty(), "named in ops/observability but not served: {missing:?}\n{metrics}");
    // and the running market reads as not halted, the placed order as accepted
    assert!(metrics.contains("hob_market_halted{market=\"BTC-USDT\"} 0"), "{metrics}");
    assert!(metrics.contains("hob_orders_total{code=\"\",result=\"accepted\"} 1"), "{metrics}");
    assert!(metrics.contains("hob_settlement_operator_up 0"), "no settlement operator is watched yet");
}

#[test]
fn readyz_names_each_dependency_and_healthz_answers() {
    // when the probes ask
    let ready = http("GET", "/readyz", &[], None);
    let live = http("GET", "/healthz", &[], None);
    // then both answer, and readiness reports the stores and the queue by name
    assert_eq!(live.status, 200);
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body = ready.json();
    let names: Vec<_> = body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["event_store", "view_store", "queue"]);
    assert!(body["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{body}");
}

#[test]
fn hob_serve_logs_json_lines_carrying_the_request_id_it_echoes() {
    // given requests with an id of their own, with a W3C traceparent, and with neither
    let given = http("GET", "/api/v1/markets", &[("x-request-id", "ops-test-42")], None);
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = http("GET", "/api/v1/markets/NOPE-USDT", &[("traceparent", trace)], None);
    let fresh = http("GET", "/api/v1/markets", &[], None);
    // then each response carries its id
    assert_eq!(given.header("x-request-id"), Some("ops-test-42"));
    assert_eq!(traced.header("x-request-id"), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    let fresh_id = fresh.header("x-request-id").unwrap().to_owned();
    assert_eq!(fresh_id.len(), 32, "{fresh_id}");
    // and the log has one JSON line per request with that id, its status and route (the
    // shape ops/observability/fluent-bit.conf lifts: span.request_id, span.method, span.path)
    let logs = server().logs.clone();
    let line_for = |id: &str| {
        logs.lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["span"]["request_id"] == id && v["message"] == "request done")
    };
    for (id, status) in [("ops-test-42", 200), ("4bf92f3577b34da6a3ce929d0e0e4736", 404), (fresh_id.as_str(), 200)] {
        wait_until("the request's line is logged", || line_for(id).is_some());
        let line = line_for(id).unwrap();
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["span"]["method"], "GET");
        assert!(line["span"]["path"].as_str().unwrap().starts_with("/api/v1/markets"), "{line}");
        assert_eq!(line["level"], "INFO");
        // the timestamp is what the Fluent Bit parser's Time_Format reads: UTC, fractional
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('.') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }
    // and every line is JSON, the start-up banner included
    for line in logs.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
    }
    let fluent = std::fs::read_to_string(root().join("ops/observability/fluent-bit.conf")).unwrap();
    assert!(fluent.contains("Nested_under  span") && fluent.contains("Rename  span_request_id request_id"));
}
