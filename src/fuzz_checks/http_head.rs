//! The `http_head` target: the request-head parser (`http::request::parse_head`) with the
//! default limits, on the input as one buffer.
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
use crate::engineio::sid::{owner_shard, MAX_SHARDS, SID_LEN};
use crate::http::request::{parse_head, HeadLimits};

/// Most prefixes re-parsed per input: each parse is linear in the prefix, so checking all of
/// them for a 16 KiB head would make one input cost over a hundred million byte visits.
const MAX_PREFIX_CHECKS: usize = 256;

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
