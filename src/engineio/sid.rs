//! Session ids: unguessable, URL-safe, and carrying the owning shard.
//!
//! A sid is one base64url character naming the shard that owns the session, then 128 random
//! bits (22 base64url characters). Any shard can read the owner from the first character and
//! hand a request over to it (docs/ARCHITECTURE.md, principle 2) without a shared table.
//!
//! Randomness comes from an [`IdSource`]: a ChaCha12 generator (`rand`'s `StdRng`, a CSPRNG:
//! sids are credentials for polling requests, so a fast non-cryptographic generator would not
//! do) seeded from the operating system in a server, or from a fixed seed in the deterministic
//! test pair. Nothing here reads the OS at random times: the endpoint is given its source.

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

/// Where session and socket ids come from: a cryptographically secure generator.
pub struct IdSource(rand::rngs::StdRng);

impl IdSource {
    /// Seeded from the operating system's generator; fails when it does.
    pub fn from_os() -> Result<IdSource, rand::rngs::SysError> {
        use rand::SeedableRng;
        rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng).map(IdSource)
    }

    /// Seeded with `seed`: the same ids every run (deterministic tests only).
    pub fn seeded(seed: u64) -> IdSource {
        use rand::SeedableRng;
        IdSource(rand::rngs::StdRng::seed_from_u64(seed))
    }

    fn fill(&mut self, buf: &mut [u8]) {
        use rand::Rng;
        self.0.fill_bytes(buf);
    }
}

impl std::fmt::Debug for IdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdSource")
    }
}

/// A fresh sid owned by `shard` (which must be below [`MAX_SHARDS`]).
pub fn generate(shard: usize, ids: &mut IdSource) -> String {
    let mut random = [0u8; RANDOM_BYTES];
    ids.fill(&mut random);
    let mut sid = String::with_capacity(SID_LEN);
    let owner = ALPHABET.get(shard % MAX_SHARDS).copied().unwrap_or(b'A');
    sid.push(owner as char);
    URL_SAFE_NO_PAD.encode_string(random, &mut sid);
    sid
}

/// A random id of 128 bits in base64url (22 characters), for Socket.IO socket ids; kept
/// inline, since every connected socket holds one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RandomId([u8; 22]);

impl RandomId {
    /// The id `text` spells, if it is shaped like one (22 base64url characters), e.g. a
    /// socket id kept for connection state recovery.
    pub fn parse(text: &str) -> Option<RandomId> {
        let bytes: [u8; 22] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .then_some(RandomId(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only base64url characters are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for RandomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn random_id(ids: &mut IdSource) -> RandomId {
    let mut random = [0u8; RANDOM_BYTES];
    ids.fill(&mut random);
    let mut id = [0u8; 22];
    // 16 bytes are exactly 22 base64url characters without padding.
    let _ = URL_SAFE_NO_PAD.encode_slice(random, &mut id);
    RandomId(id)
}

/// A sid held inline (no allocation per session), as the session table keys and keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid([u8; SID_LEN]);

impl Sid {
    /// The sid `text` names, if it is shaped like one of ours (its length; any other text
    /// names no session).
    pub fn parse(text: &str) -> Option<Sid> {
        text.as_bytes().try_into().ok().map(Sid)
    }

    /// A fresh sid owned by `shard` (see [`generate`]).
    pub fn generate(shard: usize, ids: &mut IdSource) -> Sid {
        let text = generate(shard, ids);
        let mut bytes = [b'A'; SID_LEN];
        for (slot, byte) in bytes.iter_mut().zip(text.bytes()) {
            *slot = byte;
        }
        Sid(bytes)
    }

    pub fn as_str(&self) -> &str {
        // Made from a `&str` of exactly this length, so always whole UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shard a sid names, if it is shaped like one of ours.
pub fn owner_shard(sid: &str) -> Option<usize> {
    if sid.len() != SID_LEN {
        return None;
    }
    let first = *sid.as_bytes().first()?;
    ALPHABET.iter().position(|&c| c == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_names_its_shard_and_is_url_safe() {
        let mut ids = IdSource::seeded(1);
        for shard in [0, 1, 7, 63] {
            let sid = generate(shard, &mut ids);
            assert_eq!(sid.len(), SID_LEN);
            assert_eq!(owner_shard(&sid), Some(shard));
            assert!(sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn sids_differ() {
        let mut ids = IdSource::from_os().expect("the OS generator works");
        assert_ne!(generate(0, &mut ids), generate(0, &mut ids));
        assert_ne!(random_id(&mut ids), random_id(&mut ids));
        let (mut a, mut b) = (IdSource::seeded(7), IdSource::seeded(7));
        assert_eq!(
            generate(3, &mut a),
            generate(3, &mut b),
            "a seed repeats its ids"
        );
    }

    #[test]
    fn foreign_sids_have_no_owner() {
        assert_eq!(owner_shard(""), None);
        assert_eq!(owner_shard("short"), None);
        assert_eq!(owner_shard("~AAAAAAAAAAAAAAAAAAAAAA"), None);
    }
}
