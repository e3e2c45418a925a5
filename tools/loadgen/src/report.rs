//! Latency histograms (HDR, microsecond resolution) and the output of a run: one JSON line on
//! stdout (machine-readable, what tools/compare reads) and a readable summary on stderr.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::Mutex;

/// Latencies in microseconds from 1 µs to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

/// A few histograms behind separate locks so that recording threads rarely meet.
pub struct ShardedHistogram {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl ShardedHistogram {
    pub fn new(shards: usize) -> ShardedHistogram {
        ShardedHistogram {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
        }
    }

    /// Records `micros` into the shard picked by `key`.
    pub fn record(&self, key: usize, micros: u64) {
        if let Ok(mut h) = self.shards[key % self.shards.len()].lock() {
            h.saturating_record(micros.max(1));
        }
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.shards {
            if let Ok(h) = s.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// `{count, p50_ms, p99_ms, p999_ms, max_ms, mean_ms}` of a microsecond histogram.
pub fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

/// `p50/p99/p99.9/max` in milliseconds, for the readable summary.
pub fn brief(h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// Prints the JSON line on stdout and the readable lines on stderr.
pub fn emit(result: &Value, readable: &[String], quiet: bool) {
    if !quiet {
        for line in readable {
            eprintln!("{line}");
        }
    }
    println!("{result}");
}

/// Rounds to `digits` decimals for the JSON output.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
