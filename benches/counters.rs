//! Criterion bench of the cost of counting one event: the server's per-shard lock-free
//! counters (`src/metrics/mod.rs`, [`ShardMetrics`]) against the `prometheus` crate's, the
//! Prometheus client most Rust servers use — alone on one thread, and with two threads
//! counting at once, as two shards do.
//!
//! `cargo bench --locked --bench counters`; results in benches/RESULTS.md, quoted in the
//! module doc of `src/metrics/mod.rs`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use prometheus::{IntCounter, IntCounterVec, Opts};

use readrealm_chat::metrics::{Metrics, ShardMetrics, ERROR_CODES};

/// Threads counting at once in the contended rows (the machine has two cores).
const THREADS: usize = 2;

/// Runs `count(thread, iters)` on [`THREADS`] threads released together; the slowest thread's
/// time from the release to its last increment (thread start-up is not counted).
fn contended(iters: u64, count: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (barrier, count) = (&barrier, &count);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    count(thread, iters);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("counting thread"))
            .max()
            .unwrap_or_default()
    })
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter increment");
    let metrics = Metrics::new(1);
    let shard: &ShardMetrics = metrics.shard(0);
    g.bench_function("ours: ShardMetrics::joined", |b| {
        b.iter(|| black_box(shard).joined())
    });
    g.bench_function("ours: ShardMetrics::error(code)", |b| {
        b.iter(|| black_box(shard).error(black_box("rate_limited")))
    });
    let counter = IntCounter::new("joins_total", "joins").expect("a counter");
    g.bench_function("prometheus: IntCounter::inc", |b| {
        b.iter(|| black_box(&counter).inc())
    });
    let by_code = IntCounterVec::new(Opts::new("errors_total", "errors"), &["code"])
        .expect("a counter family");
    for code in ERROR_CODES {
        by_code.with_label_values(&[code]);
    }
    g.bench_function(
        "prometheus: IntCounterVec::with_label_values(code).inc",
        |b| {
            b.iter(|| {
                by_code
                    .with_label_values(&[black_box("rate_limited")])
                    .inc()
            })
        },
    );
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter increment, 2 threads at once");
    let metrics: Arc<Metrics> = Metrics::new(THREADS);
    g.bench_function("ours: each thread its own shard block", |b| {
        b.iter_custom(|iters| {
            contended(iters, |thread, iters| {
                let shard = metrics.shard(thread);
                for _ in 0..iters {
                    black_box(shard).joined();
                }
            })
        })
    });
    let counter = IntCounter::new("joins_total", "joins").expect("a counter");
    g.bench_function("prometheus: one IntCounter shared", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_, iters| {
                for _ in 0..iters {
                    black_box(&counter).inc();
                }
            })
        })
    });
    let by_code = IntCounterVec::new(Opts::new("errors_total", "errors"), &["code"])
        .expect("a counter family");
    g.bench_function("prometheus: IntCounterVec shared, with_label_values", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_, iters| {
                for _ in 0..iters {
                    by_code
                        .with_label_values(&[black_box("rate_limited")])
                        .inc();
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = one_thread, two_threads
}
criterion_main!(benches);
