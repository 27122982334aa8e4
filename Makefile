# The two set-up commands are `make run` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: run test lint bench build tools

build:
	$(CARGO) build --release --bin hob

# External tools (anvil, solcjs, a Python venv) pinned into .tools/; a no-op when already there.
tools:
	./scripts/install-tools.sh

# Until the server lands, `make run` replays the example order file through the matching core.
run: tools build
	./target/release/hob match --tick 0.01 --lot 0.001 --maker-fee-bps 10 --taker-fee-bps 20 < examples/orders.jsonl

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test: tools lint
	$(CARGO) test --all-targets

bench: tools
	$(CARGO) bench --bench order_book
	$(CARGO) bench --bench pipeline
