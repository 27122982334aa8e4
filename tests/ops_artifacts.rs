//! The deployment artifacts under `ops/` and the Dockerfile, checked by the real tools that
//! `scripts/install-tools.sh` installs (kubectl's kustomize, kubernetes-validate, the CRD
//! models under node, hadolint, promtool), and against a real `hob serve` started from the
//! test binary's `hob`: every metric the alerts and the dashboard name must be in its
//! `/metrics`, and its JSON logs must carry the request ids it echoes.

// Test code unwraps: a failure should fail the test, with its message.

use std::collections::{BTreeMap, BTreeSet};
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
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    // Only dev keeps state on its pod (SQLite on a volume); prod's nodes keep none.
    for (dir, namespace, volume) in [
        ("ops/k8s/overlays/dev", "hob-dev", Some("PersistentVolumeClaim")),
        ("ops/k8s/overlays/prod", "hob-prod", None),
    ] {
        // given an overlay rendered by kustomize
        let yaml = kustomize(dir);
        let docs = yaml_documents(&yaml);
        // then it holds every resource the deployment needs, in its namespace
        let expected: BTreeSet<String> = namespaced.iter().chain(&volume).map(|k| k.to_string()).collect();
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
            // A store URI is a secret unless it names a file: a database URI holds credentials.
            let file = env["value"].as_str().is_some_and(|v| v.starts_with("sqlite:"));
            if name == "HOB_OPERATOR_TOKEN" || (["HOB_STORE", "HOB_VIEWS"].contains(&name) && !file) {
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
// The overlays' shapes: one node on SQLite (dev), several on MongoDB + SQS FIFO (prod)
// ---------------------------------------------------------------------------------------------

/// A pod's name, as the downward API hands it to `HOB_NODE_ID`.
const POD_NAME: &str = "hob-5d8f7c9b6-x2k4q";

/// How long hob's own stop may take once it has leases (`RunningServer::stop`): requests in
/// flight (`api::server`, 5 s), the settlement operator finishing its step
/// (`actors::settlement`, 10 s), and a margin for the actors' stop and the lease releases
/// (store round trips). The pod's grace period must hold it after the preStop pause.
const HOB_STOP_SECS: u64 = 5 + 10 + 10;

/// What `hob serve` reads in a pod, and where each `HOB_*` variable came from.
struct PodEnv {
    vars: BTreeMap<String, String>,
    /// Variables the downward API fills, with the field each names.
    fields: BTreeMap<String, String>,
}

/// The Secrets as the README's "Deployment" section tells the operator to create them:
/// (secret, key) -> value. A value the shell computes (`$(openssl ...)`) gets a stand-in.
fn readme_secrets() -> BTreeMap<(String, String), String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("\n## Deployment\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut secrets = BTreeMap::new();
    for command in section.replace("\\\n", " ").lines().filter(|l| l.contains("create secret generic")) {
        let name = command.split("create secret generic").nth(1).unwrap().split_whitespace().next().unwrap();
        for literal in command.split("--from-literal=").skip(1) {
            let (key, rest) = literal.split_once('=').unwrap();
            let quote = rest.chars().next().unwrap();
            let value = rest[1..].split(quote).next().unwrap();
            let value = if value.starts_with("$(") { "stand-in-token-0123456789abcdef" } else { value };
            secrets.insert((name.to_owned(), key.to_owned()), value.to_owned());
        }
    }
    assert!(!secrets.is_empty(), "the README's Deployment section creates the Secrets");
    secrets
}

/// The `HOB_*` environment of the rendered Deployment's pod: the image's `ENV`, then the
/// container's variables (which win), with Secret references resolved from `secrets`; a
/// reference the Secrets do not hold is an error, as the kubelet would refuse to start the pod.
fn pod_environment(docs: &[Value], secrets: &BTreeMap<(String, String), String>) -> Result<PodEnv, String> {
    let mut vars = BTreeMap::new();
    for (_, args) in dockerfile_instructions().iter().filter(|(k, _)| k == "ENV") {
        for kv in args.split_whitespace() {
            let (name, value) = kv.split_once('=').unwrap();
            vars.insert(name.to_owned(), value.to_owned());
        }
    }
    let mut fields = BTreeMap::new();
    let container = &find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    for env in container["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap().to_owned();
        let value = if let Some(value) = env["value"].as_str() {
            value.to_owned()
        } else if let Some(field) = env["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            fields.insert(name.clone(), field.to_owned());
            match field {
                "metadata.name" => POD_NAME.to_owned(),
                other => return Err(format!("{name}: no stand-in for the pod field {other}")),
            }
        } else {
            let reference = &env["valueFrom"]["secretKeyRef"];
            let secret =
                (reference["name"].as_str().unwrap().to_owned(), reference["key"].as_str().unwrap().to_owned());
            secrets
                .get(&secret)
                .cloned()
                .ok_or_else(|| format!("{name}: the README creates no key {} in the Secret {}", secret.1, secret.0))?
        };
        vars.insert(name, value);
    }
    Ok(PodEnv { vars, fields })
}

/// hob's configuration in the pod, loaded as `hob serve --config` loads it: the ConfigMap's
/// file, then the environment, then validation.
fn pod_config(docs: &[Value], env: &PodEnv) -> Result<hob::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hob.toml");
    std::fs::write(&file, find(docs, "ConfigMap")["data"]["hob.toml"].as_str().unwrap()).unwrap();
    let env = env.vars.iter().map(|(k, v)| (k.clone(), v.clone()));
    hob::config::Config::load(Some(&file), env, &hob::config::ServeFlags::default()).map_err(|e| e.to_string())
}

/// What stops a rendered overlay from running as the nodes it asks for (empty: nothing).
/// Several pods need an event store, views and queues they share, leases, an id each, no
/// state of their own, a stop long enough to give their leases up, and credentials for SQS;
/// one pod on SQLite needs its files on a claimed volume and must stop before its successor
/// opens them.
fn node_shape_faults(docs: &[Value], secrets: &BTreeMap<(String, String), String>) -> Vec<String> {
    use hob::config::StoreLocation;
    let deployment = find(docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let hpa = &find(docs, "HorizontalPodAutoscaler")["spec"];
    let pdb = &find(docs, "PodDisruptionBudget")["spec"];
    let most_pods = deployment["spec"]["replicas"].as_u64().unwrap_or(1).max(hpa["maxReplicas"].as_u64().unwrap());
    let env = match pod_environment(docs, secrets) {
        Ok(env) => env,
        Err(e) => return vec![e],
    };
    let config = match pod_config(docs, &env) {
        Ok(config) => config,
        Err(e) => return vec![format!("hob refuses the pod's configuration: {e}")],
    };
    let mut faults = Vec::new();
    let strategy = deployment["spec"]["strategy"]["type"].as_str().unwrap_or("RollingUpdate");
    let claimed: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["persistentVolumeClaim"].is_object())
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    if most_pods > 1 {
        // Leases are on exactly when the event store is one several processes can share.
        if config.lease_config().unwrap().is_none() {
            faults.push(format!(
                "{most_pods} pods on the event store {:?}, which they cannot share",
                config.store.events
            ));
        }
        if !matches!(config.views_location().unwrap(), StoreLocation::Mongo { .. }) {
            faults.push(format!("{most_pods} pods on the views {:?}, which they cannot share", config.store.views));
        }
        if config.store.queue != "sqs" {
            faults.push(format!("{most_pods} pods on the {} queue, which does not cross pods", config.store.queue));
        }
        if env.fields.get("HOB_NODE_ID").map(String::as_str) != Some("metadata.name") {
            faults.push("HOB_NODE_ID is not the pod's name: leases and hosted_elsewhere name no pod".to_owned());
        }
        if !claimed.is_empty() || docs.iter().any(|d| d["kind"] == "PersistentVolumeClaim") {
            faults.push("a PersistentVolumeClaim: state on one pod of several".to_owned());
        }
        if hpa["minReplicas"].as_u64().unwrap_or(1) < 2 {
            faults.push("minReplicas below 2: one pod's death stops the exchange".to_owned());
        }
        if pdb["maxUnavailable"] != 1 || pdb.get("minAvailable").is_some() {
            faults.push(format!("the disruption budget should let exactly one pod go: {pdb}"));
        }
        if strategy != "RollingUpdate" {
            faults.push(format!("strategy {strategy}: a rollout would stop every node at once"));
        }
        if config.store.sqs_max_receive_count <= 10 {
            faults.push("sqs_max_receive_count at most 10: hand-backs between nodes dead-letter records".to_owned());
        }
        let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        if pause == 0 {
            faults.push("no preStop pause: requests routed to a stopping pod meanwhile are refused".to_owned());
        }
        if grace < pause + HOB_STOP_SECS {
            faults.push(format!("a grace period of {grace} s is shorter than the pause and hob's stop"));
        }
        let role = find(docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str();
        let is_role = |arn: &str| {
            let account = arn.strip_prefix("arn:aws:iam::").and_then(|a| a.split_once(":role/"));
            account
                .is_some_and(|(id, name)| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        };
        if config.store.queue == "sqs" && !role.is_some_and(is_role) {
            faults.push("no IAM role (eks.amazonaws.com/role-arn) for SQS on the ServiceAccount".to_owned());
        }
    } else {
        if strategy != "Recreate" {
            faults.push(format!("strategy {strategy}: the successor would open the store beside its predecessor"));
        }
        // A SQLite file must be on a claimed volume, or a restart loses the exchange.
        let claimed_dirs: Vec<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| claimed.contains(&m["name"].as_str().unwrap()))
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        for location in [config.events_location().unwrap(), config.views_location().unwrap()] {
            if let StoreLocation::Sqlite(path) = location {
                if !claimed_dirs.iter().any(|dir| path.starts_with(dir)) {
                    faults.push(format!("{} is on no claimed volume", path.display()));
                }
            }
        }
        if pdb["minAvailable"] != 1 {
            faults.push(format!("the only pod may be evicted: {pdb}"));
        }
    }
    faults
}

#[test]
fn prod_runs_two_to_six_nodes_on_mongodb_and_sqs_and_dev_one_node_on_sqlite() {
    let secrets = readme_secrets();
    // given the prod overlay and the Secrets the README creates
    let prod = yaml_documents(&kustomize("ops/k8s/overlays/prod"));
    // then nothing stops it from running as the nodes it asks for
    assert_eq!(node_shape_faults(&prod, &secrets), Vec::<String>::new());
    // and those are 2 pods at apply, 2 to 6 under the HPA, one pod down at a time
    let deployment = find(&prod, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let hpa = &find(&prod, "HorizontalPodAutoscaler")["spec"];
    assert_eq!((&hpa["minReplicas"], &hpa["maxReplicas"]), (&2.into(), &6.into()));
    assert_eq!(find(&prod, "PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
    // and each pod, as hob loads its configuration, is a leased node named after the pod, on
    // MongoDB and SQS FIFO, with no volume
    let config = pod_config(&prod, &pod_environment(&prod, &secrets).unwrap()).unwrap();
    assert_eq!(config.lease_config().unwrap().expect("leases").node.as_str(), POD_NAME);
    assert!(config.store.events.starts_with("mongodb://") && config.store.views.starts_with("mongodb://"));
    assert_eq!(config.store.queue, "sqs");
    assert_eq!(config.store.sqs_queue_prefix, "prod-");
    assert!(!config.store.sqs_create_queues, "the queues exist beforehand: the role needs no CreateQueue");
    assert!(!kinds(&prod).contains("PersistentVolumeClaim"));
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().all(|v| v.get("persistentVolumeClaim").is_none()), "{volumes:?}");

    // given the dev overlay
    let dev = yaml_documents(&kustomize("ops/k8s/overlays/dev"));
    // then it is one pod, never two, on SQLite on its claimed volume, without leases
    assert_eq!(node_shape_faults(&dev, &secrets), Vec::<String>::new());
    let deployment = find(&dev, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let hpa = &find(&dev, "HorizontalPodAutoscaler")["spec"];
    assert_eq!((&hpa["minReplicas"], &hpa["maxReplicas"]), (&1.into(), &1.into()));
    let config = pod_config(&dev, &pod_environment(&dev, &secrets).unwrap()).unwrap();
    assert_eq!(config.store.events, "sqlite:/var/lib/hob/hob.db");
    assert_eq!(config.store.views, "sqlite:/var/lib/hob/views.db");
    assert_eq!(config.store.queue, "in-process");
    assert_eq!(config.lease_config().unwrap(), None);
    assert!(kinds(&dev).contains("PersistentVolumeClaim"));
}

/// Sets (or, with `None`, removes) one variable of the rendered Deployment's container.
fn set_env(docs: &mut [Value], name: &str, entry: Option<Value>) {
    let deployment = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    env.retain(|e| e["name"] != name);
    env.extend(entry);
}

fn spec_of<'a>(docs: &'a mut [Value], kind: &str) -> &'a mut Value {
    &mut docs.iter_mut().find(|d| d["kind"] == kind).unwrap()["spec"]
}

#[test]
fn the_node_shape_check_refuses_overlays_the_nodes_could_not_run() {
    let secrets = readme_secrets();
    let prod = yaml_documents(&kustomize("ops/k8s/overlays/prod"));
    let dev = yaml_documents(&kustomize("ops/k8s/overlays/dev"));
    let literal = |name: &str, value: &str| Some(serde_json::json!({"name": name, "value": value}));
    type Break = Box<dyn Fn(&mut Vec<Value>, &mut BTreeMap<(String, String), String>)>;
    let cases: Vec<(&str, &Vec<Value>, Break, &str)> = vec![
        (
            "prod on a SQLite file",
            &prod,
            Box::new(move |d, _| set_env(d, "HOB_STORE", literal("HOB_STORE", "sqlite:/var/lib/hob/hob.db"))),
            "cannot share",
        ),
        ("prod on in-process queues", &prod, Box::new(move |d, _| set_env(d, "HOB_QUEUE", None)), "queue"),
        ("prod without node ids", &prod, Box::new(|d, _| set_env(d, "HOB_NODE_ID", None)), "HOB_NODE_ID"),
        (
            "prod with a volume claim back",
            &prod,
            Box::new(|d, _| {
                let pod = &mut spec_of(d, "Deployment")["template"]["spec"];
                let claim = serde_json::json!({"name": "data", "persistentVolumeClaim": {"claimName": "hob-data"}});
                pod["volumes"].as_array_mut().unwrap().push(claim);
            }),
            "PersistentVolumeClaim",
        ),
        (
            "prod stopping in 10 s",
            &prod,
            Box::new(|d, _| spec_of(d, "Deployment")["template"]["spec"]["terminationGracePeriodSeconds"] = 10.into()),
            "grace period",
        ),
        (
            "prod with one pod at least",
            &prod,
            Box::new(|d, _| spec_of(d, "HorizontalPodAutoscaler")["minReplicas"] = 1.into()),
            "minReplicas",
        ),
        (
            "prod without the views' key in the README's Secret",
            &prod,
            Box::new(|_, s| {
                s.retain(|(_, key), _| key != "view-store-uri");
            }),
            "view-store-uri",
        ),
        (
            "prod without an IAM role",
            &prod,
            Box::new(|d, _| {
                let account = d.iter_mut().find(|d| d["kind"] == "ServiceAccount").unwrap();
                account["metadata"].as_object_mut().unwrap().remove("annotations");
            }),
            "IAM role",
        ),
        (
            "dev scaled to three",
            &dev,
            Box::new(|d, _| spec_of(d, "HorizontalPodAutoscaler")["maxReplicas"] = 3.into()),
            "cannot share",
        ),
        (
            "dev with its files off the volume",
            &dev,
            Box::new(move |d, _| set_env(d, "HOB_STORE", literal("HOB_STORE", "sqlite:/tmp/hob.db"))),
            "no claimed volume",
        ),
    ];
    for (case, docs, break_it, fault) in cases {
        // given a rendered overlay broken in one way
        let mut docs = docs.clone();
        let mut secrets = secrets.clone();
        break_it(&mut docs, &mut secrets);
        // then the check names that fault
        let faults = node_shape_faults(&docs, &secrets);
        assert!(faults.iter().any(|f| f.contains(fault)), "{case}: expected a fault naming {fault:?}, got {faults:?}");
    }
}

#[test]
fn the_sqs_policy_and_the_sticky_ingress_example_fit_the_prod_overlay() {
    let secrets = readme_secrets();
    let prod = yaml_documents(&kustomize("ops/k8s/overlays/prod"));
    let config = pod_config(&prod, &pod_environment(&prod, &secrets).unwrap()).unwrap();
    // given the IAM policy for the pods' role, and the permissions the README says SQS needs
    let policy: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("ops/aws/hob-sqs-policy.json")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let paragraph =
        readme.split("**IAM permissions** on the eight queues:").nth(1).unwrap().split("\n\n").next().unwrap();
    let (always, if_created) = paragraph.split_once("if `create_queues`").unwrap();
    let named = |text: &str| -> BTreeSet<String> {
        text.split('`').filter(|t| t.starts_with("sqs:")).map(str::to_owned).collect::<BTreeSet<_>>()
    };
    let mut needed = named(always);
    needed.retain(|a| a != "sqs:CreateQueue");
    if config.store.sqs_create_queues {
        needed.insert("sqs:CreateQueue".to_owned());
    }
    assert!(named(if_created).contains("sqs:SetQueueAttributes") && needed.len() >= 6, "{paragraph}");
    // then the policy grants exactly those, on the queues of the overlay's region and prefix
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    let granted: BTreeSet<String> =
        statement["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(granted, needed);
    let resource = statement["Resource"].as_str().unwrap();
    assert!(resource.starts_with(&format!("arn:aws:sqs:{}:", config.store.sqs_region)), "{resource}");
    assert!(resource.ends_with(&format!(":{}*", config.store.sqs_queue_prefix)), "{resource}");

    // given the ingress-nginx example
    let text = std::fs::read_to_string(root().join("ops/k8s/examples/ingress-nginx.yaml")).unwrap();
    let (ok, out) = kubernetes_validate(&text);
    assert!(ok, "kubernetes-validate the ingress example:\n{out}");
    let ingress = &yaml_documents(&text)[0];
    // then it routes to the prod Service's port, in its namespace
    let service = find(&prod, "Service");
    assert_eq!(ingress["metadata"]["namespace"], service["metadata"]["namespace"]);
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], service["metadata"]["name"]);
    assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == backend["port"]["name"]));
    // and it hashes each request on the header naming its user (nginx's $http_<name>)
    let header = hob::api::auth::DEV_USER_HEADER.replace('-', "_");
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"],
        format!("$http_{header}")
    );
}

// ---------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------

/// The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments).
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("ops/docker/Dockerfile")).unwrap().replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_uppercase(), v.trim().to_owned())))
        .collect()
}

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
    let instructions = dockerfile_instructions();
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
