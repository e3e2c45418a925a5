//! The check of the request-head parser (its parent's `http::request::parse_head`) with the
//! default limits, on the input as one buffer: the `http_head` fuzz target, its regression
//! replay (`tests/fuzz_regressions.rs`) and the parser's unit tests all call [`check`]. Built
//! only for tests and with the `checks` feature (the fuzz build and `tests/` turn it on).
//!
//! Invariants checked, beyond "never panics":
//! - a complete head lies within the input, and parsing exactly its bytes gives the same head
//!   (what follows the head never changes it);
//! - "incomplete" is only ever said while the input is within `max_head_bytes`;
//! - no proper prefix of a complete head is itself a complete head: every prefix is
//!   incomplete or an error, so a connection that receives the head in pieces never acts
//!   early on part of it;
//! - the sid in the query (which routes the request to a shard) names a shard below
//!   `MAX_SHARDS` exactly when it is shaped like a sid we issue.

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::engineio::sid::{owner_shard, MAX_SHARDS, SID_LEN};
use crate::http::request::{parse_head, HeadLimits};

/// Most prefixes re-parsed per input: each parse is linear in the prefix, so checking all of
/// them for a 16 KiB head would make one input cost over a hundred million byte visits.
const MAX_PREFIX_CHECKS: usize = 256;

/// Check the parser on `data` (the module doc says how); panics when an invariant fails.
pub fn check(data: &[u8]) {
    let limits = HeadLimits::default();
    match parse_head(data, &limits) {
        Ok(Some(head)) => {
            if let Some(sid) = &head.query.sid {
                let ours = sid.len() == SID_LEN
                    && sid
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                let owner = owner_shard(sid);
                assert_eq!(owner.is_some(), ours, "{sid:?}");
                assert!(owner.is_none_or(|shard| shard < MAX_SHARDS));
            }
            assert!(head.head_len <= data.len());
            assert!(head.head_len <= limits.max_head_bytes);
            let exact = &data[..head.head_len];
            assert_eq!(parse_head(exact, &limits), Ok(Some(head.clone())));
            // Every prefix of a short head; a sample (always including the last) of a long
            // one, so the check stays linear-ish in the input size.
            let stride = (head.head_len / MAX_PREFIX_CHECKS).max(1);
            let cuts = (0..head.head_len)
                .step_by(stride)
                .chain(head.head_len.checked_sub(1));
            for cut in cuts {
                match parse_head(&data[..cut], &limits) {
                    Ok(None) | Err(_) => {}
                    Ok(Some(early)) => {
                        panic!("prefix of {cut} bytes parsed as a complete head: {early:?}")
                    }
                }
            }
        }
        Ok(None) => assert!(data.len() <= limits.max_head_bytes),
        Err(_) => {}
    }
}
