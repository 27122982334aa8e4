# The two set-up commands are `make run` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: run smoke-run test lint bench build tools loadgen

# `make run PROFILE=dev` runs a debug build (faster to build, slower to run).
PROFILE ?= release
PROFILE_DIR = $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))

build:
	$(CARGO) build --profile $(PROFILE) --bin hob

# External tools (anvil, solcjs, a Python venv) pinned into .tools/; a no-op when already there.
tools:
	./scripts/install-tools.sh

# `hob serve` on the embedded default with a local chain: SQLite under $(DATA), in-process
# queues, a local anvil (spawned from .tools/, stopped with hob) with the test tokens and
# HobExchange deployed and the two demo markets registered, the settlement and admin
# operators, signed sessions and orders, the faucet (mints test tokens on anvil), and an
# operator token (override HOB_OPERATOR_TOKEN). anvil's chain starts empty every time, so the
# previous run's stores under $(DATA) are removed first (hob refuses stale ones).
HOB_OPERATOR_TOKEN ?= dev-operator-token
export HOB_OPERATOR_TOKEN
DATA ?= ./data
run: tools build
	rm -f $(DATA)/hob.db $(DATA)/hob.db-* $(DATA)/views.db $(DATA)/views.db-*
	./target/$(PROFILE_DIR)/hob serve --dev-faucet --chain anvil --store sqlite:$(DATA)/hob.db --views sqlite:$(DATA)/views.db

# Starts `make run` on a free port and a temporary data directory, waits until it is ready
# with its chain, and stops it (checking anvil stops too).
smoke-run:
	./scripts/smoke-run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The examples are built first: `cargo test` compiles them but does not put them at
# target/debug/examples/<name>, where tests/example_trader.rs runs the trader from.
test: tools lint
	$(CARGO) build --examples
	$(CARGO) test --all-targets

bench: tools
	$(CARGO) bench --bench order_book
	$(CARGO) bench --bench pipeline
	$(CARGO) bench --bench settlement_gas
	$(CARGO) bench --bench settlement_latency
	$(CARGO) bench --bench audit

# Load test: `hob loadgen` against a `hob serve` it spawns (release build). Override the
# load with LOADGEN_ARGS, e.g. make loadgen LOADGEN_ARGS="--find-max --rate 2000".
LOADGEN_ARGS ?= --rate 20000 --clients 32 --duration 20 --warmup 3
loadgen: build
	./target/release/hob loadgen --spawn-server $(LOADGEN_ARGS)
