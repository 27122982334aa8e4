//! Order-book benchmark: hob against the peers `matchcore` 0.4, `lobster` 0.7 and
//! `orderbook-rs` 0.15, driven by identical seeded operation streams.
//!
//! `cargo bench --bench order_book` (or `make bench`) prints, for each mix and engine, ops/s
//! over one pass and per-operation latency percentiles (HDR histogram), then the memory per
//! resting order with 1M resting orders (measured by a counting allocator), then runs the
//! criterion throughput groups. `HOB_BENCH_OPS` sets the ops per pass (default 1,000,000).
//!
//! Mixes: (a) exchange-core's: 9% GTC limit, 3% IOC, 6% cancel, 82% move, ~1,000 resting
//! orders over ~750 levels; (b) 70% passive add, 20% cancel, 10% aggressive.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use hdrhistogram::Histogram;

#[path = "support/mod.rs"]
mod support;

use support::hob::HobBook;
use support::peers::{BenchBook, LobsterBook, MatchcoreBook, OrderbookRsBook};
use support::workload::{self, BenchSide, Op, Workload};

/// Counts live heap bytes so memory per order is measured, not estimated.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Engine = (&'static str, fn() -> Box<dyn BenchBook>);

const ENGINES: [Engine; 4] = [
    ("hob", || Box::new(HobBook::new())),
    ("matchcore", || Box::new(MatchcoreBook::new())),
    ("lobster", || Box::new(LobsterBook::new())),
    ("orderbook-rs", || Box::new(OrderbookRsBook::new())),
];

fn mixes(n_ops: usize) -> Vec<(&'static str, Workload)> {
    vec![
        ("a: exchange-core", workload::exchange_core(42, n_ops)),
        ("b: add/cancel/aggressive", workload::add_cancel_aggressive(42, n_ops)),
    ]
}

fn prefilled(make: fn() -> Box<dyn BenchBook>, w: &Workload) -> Box<dyn BenchBook> {
    let mut book = make();
    for op in &w.prefill {
        book.apply(op);
    }
    book
}

/// One timed pass for ops/s, one pass with per-op timing for the latency percentiles.
fn report(n_ops: usize) {
    println!("\n## Throughput and latency ({n_ops} ops per pass, seed 42)\n");
    println!("| mix | engine | ops/s | p50 ns | p99 ns | p99.99 ns | resting after | traded lots |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let only = std::env::var("HOB_BENCH_ONLY").ok();
    for (mix, w) in mixes(n_ops) {
        for (name, make) in ENGINES {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let mut book = prefilled(make, &w);
            let start = Instant::now();
            for op in &w.ops {
                book.apply(black_box(op));
            }
            let elapsed = start.elapsed();
            let ops_per_s = n_ops as f64 / elapsed.as_secs_f64();
            let (resting, traded) = (book.resting_orders(), book.traded_volume());
            drop(book);

            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid");
            let mut book = prefilled(make, &w);
            for op in &w.ops {
                let t = Instant::now();
                book.apply(black_box(op));
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
            println!(
                "| {mix} | {name} | {:.2}M | {} | {} | {} | {resting} | {traded} |",
                ops_per_s / 1e6,
                hist.value_at_quantile(0.50),
                hist.value_at_quantile(0.99),
                hist.value_at_quantile(0.9999),
            );
        }
    }
}

/// Heap bytes per resting order with `n` passive orders spread over 10,000 levels a side.
fn memory(n: usize) {
    println!("\n## Memory with {n} resting orders\n");
    println!("| engine | heap bytes | bytes per order |");
    println!("| --- | ---: | ---: |");
    let ops: Vec<Op> = (0..n as u64)
        .map(|i| {
            let (side, price) = if i % 2 == 0 {
                (BenchSide::Buy, workload::MID_PRICE - 1 - (i / 2) % 10_000)
            } else {
                (BenchSide::Sell, workload::MID_PRICE + 1 + (i / 2) % 10_000)
            };
            Op::Limit { id: i + 1, user: 1 + i % workload::N_USERS, side, price, qty: 1 + i % 100 }
        })
        .collect();
    for (name, make) in ENGINES {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let mut book = make();
        for op in &ops {
            book.apply(op);
        }
        let bytes = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
        assert_eq!(book.resting_orders(), n, "{name}: every order must rest");
        println!("| {name} | {bytes} | {:.1} |", bytes as f64 / n as f64);
        drop(book);
    }
}

fn criterion_groups(n_ops: usize) {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (mix, w) in mixes(n_ops) {
        let mut group = c.benchmark_group(mix);
        group.throughput(Throughput::Elements(w.ops.len() as u64));
        for (name, make) in ENGINES {
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || prefilled(make, &w),
                    |book| {
                        for op in &w.ops {
                            book.apply(black_box(op));
                        }
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        group.finish();
    }
    c.final_summary();
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let n_ops = std::env::var("HOB_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    if !benching {
        report(10_000);
        return;
    }
    report(n_ops);
    if std::env::var("HOB_BENCH_ONLY").is_ok() {
        return; // a profiling run of one engine
    }
    memory(1_000_000);
    criterion_groups(n_ops.min(200_000));
}
