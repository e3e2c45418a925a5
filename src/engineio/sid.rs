//! Session ids: unguessable, URL-safe, and carrying the owning shard.
//!
//! A sid is one base64url character naming the shard that owns the session, then 128 random
//! bits from the operating system (22 base64url characters). Any shard can read the owner from
//! the first character and hand a request over to it (DESIGN.md, principle 2) without a shared
//! table. Randomness comes from `getrandom`: sids are credentials for polling requests, so a
//! fast non-cryptographic generator would not do.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The base64url alphabet; a shard index is one character of it.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The most shards a sid can name.
pub const MAX_SHARDS: usize = ALPHABET.len();

/// Random bytes in a sid: 128 bits.
const RANDOM_BYTES: usize = 16;

/// Length of every sid we issue.
pub const SID_LEN: usize = 1 + 22;

/// A fresh sid owned by `shard` (which must be below [`MAX_SHARDS`]).
pub fn generate(shard: usize) -> String {
    let mut random = [0u8; RANDOM_BYTES];
    fill_random(&mut random);
    let mut sid = String::with_capacity(SID_LEN);
    sid.push(ALPHABET[shard % MAX_SHARDS] as char);
    URL_SAFE_NO_PAD.encode_string(random, &mut sid);
    sid
}

/// A random id of 128 bits in base64url, for Socket.IO socket ids.
pub fn random_id() -> String {
    let mut random = [0u8; RANDOM_BYTES];
    fill_random(&mut random);
    URL_SAFE_NO_PAD.encode(random)
}

/// The shard a sid names, if it is shaped like one of ours.
pub fn owner_shard(sid: &str) -> Option<usize> {
    if sid.len() != SID_LEN {
        return None;
    }
    let first = *sid.as_bytes().first()?;
    ALPHABET.iter().position(|&c| c == first)
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS RNG failing is not recoverable for a server that issues credentials.
        panic!("the operating system's random number generator failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_names_its_shard_and_is_url_safe() {
        for shard in [0, 1, 7, 63] {
            let sid = generate(shard);
            assert_eq!(sid.len(), SID_LEN);
            assert_eq!(owner_shard(&sid), Some(shard));
            assert!(sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn sids_differ() {
        assert_ne!(generate(0), generate(0));
        assert_ne!(random_id(), random_id());
    }

    #[test]
    fn foreign_sids_have_no_owner() {
        assert_eq!(owner_shard(""), None);
        assert_eq!(owner_shard("short"), None);
        assert_eq!(owner_shard("~AAAAAAAAAAAAAAAAAAAAAA"), None);
    }
}
