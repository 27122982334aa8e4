# The two set-up commands are `make run` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: run test lint bench build tools loadgen

build:
	$(CARGO) build --release --bin hob

# External tools (anvil, solcjs, a Python venv) pinned into .tools/; a no-op when already there.
tools:
	./scripts/install-tools.sh

# `hob serve` on the embedded default: SQLite under ./data, in-process queues, two demo
# markets, signed sessions and orders, the test-funds faucet, and an operator token (override
# HOB_OPERATOR_TOKEN). The local anvil with the contract deployed is not wired in yet: trades
# match and commit, settlement runs in tests (see README, "Settlement pipeline").
HOB_OPERATOR_TOKEN ?= dev-operator-token
export HOB_OPERATOR_TOKEN
run: tools build
	./target/release/hob serve --dev-faucet

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test: tools lint
	$(CARGO) test --all-targets

bench: tools
	$(CARGO) bench --bench order_book
	$(CARGO) bench --bench pipeline
	$(CARGO) bench --bench settlement_gas
	$(CARGO) bench --bench settlement_latency

# Load test: `hob loadgen` against a `hob serve` it spawns (release build). Override the
# load with LOADGEN_ARGS, e.g. make loadgen LOADGEN_ARGS="--find-max --rate 2000".
LOADGEN_ARGS ?= --rate 20000 --clients 32 --duration 20 --warmup 3
loadgen: build
	./target/release/hob loadgen --spawn-server $(LOADGEN_ARGS)
