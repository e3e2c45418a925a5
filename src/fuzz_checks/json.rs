//! JSON comparison for round-trip checks.

use serde_json::Value;

/// JSON equality in which numbers compare by value when either side is a float (within a few
/// ulps: a float printed and parsed again may come back as a neighbour when the parser's
/// rounding differs from the printer's) and object keys compare in order.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => close(x, y),
                _ => false,
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}

fn close(x: f64, y: f64) -> bool {
    // Subnormals lose relative precision, so anything that tiny counts as equal.
    let diff = (x - y).abs();
    x == y || diff <= 1e-13 * x.abs().max(y.abs()) || diff <= f64::MIN_POSITIVE
}
