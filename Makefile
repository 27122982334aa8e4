# The two set-up commands are `make run` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: run test lint bench build

build:
	$(CARGO) build --release --bin hob

# Until the server lands, `make run` replays the example order file through the matching core.
run: build
	./target/release/hob match --tick 0.01 --lot 0.001 --maker-fee-bps 10 --taker-fee-bps 20 < examples/orders.jsonl

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test: lint
	$(CARGO) test --all-targets

bench:
	$(CARGO) bench --bench order_book
	$(CARGO) bench --bench pipeline
