// Validates the custom resources among rendered manifests against their CRDs' schemas, which
// the npm packages @kubernetes-models/karpenter and @kubernetes-models/prometheus-operator ship
// (installed into .tools/npm by scripts/install-tools.sh). kubernetes-validate checks the
// built-in kinds; this checks the rest, and refuses a custom kind it has no schema for, so
// every document is validated by one of the two.
//
//   node ops/k8s/validate-crds.mjs <node_modules dir> < manifests.jsonl   (one JSON document a line)
//
// Exit status: 0 when every custom resource is valid, 1 otherwise.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
if (!modules) {
  console.error("usage: validate-crds.mjs <node_modules dir> < manifests.jsonl");
  process.exit(2);
}
// Imported by file path: the packages are ES modules whose export maps hide the versioned
// subpaths, and ES module resolution ignores NODE_PATH.
const load = (path) => import(pathToFileURL(join(modules, "@kubernetes-models", path)).href);
const karpenter = await load("karpenter/karpenter.sh/v1/index.js");
const monitoring = await load("prometheus-operator/monitoring.coreos.com/v1/index.js");
const models = {
  "karpenter.sh/v1": { NodePool: karpenter.NodePool },
  "monitoring.coreos.com/v1": {
    ServiceMonitor: monitoring.ServiceMonitor,
    PrometheusRule: monitoring.PrometheusRule,
  },
};
// Groups served by the Kubernetes API itself (checked by kubernetes-validate).
const builtIn = (apiVersion) => !apiVersion.includes("/") || !apiVersion.split("/")[0].includes(".") ||
  apiVersion.split("/")[0].endsWith(".k8s.io");

let failed = 0;
let checked = 0;
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim() !== "");
for (const line of lines) {
  const doc = JSON.parse(line);
  const what = `${doc.apiVersion} ${doc.kind}/${doc.metadata?.name}`;
  if (builtIn(doc.apiVersion ?? "")) continue;
  const Model = models[doc.apiVersion]?.[doc.kind];
  if (!Model) {
    console.log(`ERROR ${what}: no schema for this custom resource`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${what}`);
    checked++;
  } catch (e) {
    console.log(`ERROR ${what}: ${e.message}`);
    failed++;
  }
}
console.log(`${checked} custom resources valid, ${failed} invalid`);
process.exit(failed === 0 ? 0 : 1);
