//! Message ids (`_id`): 24 lowercase hex characters, unique across the server, never reused,
//! and ordered with time within a room.
//!
//! Twelve bytes, like a MongoDB ObjectId so the old apps accept them: 6 bytes of milliseconds
//! since the epoch, 1 byte naming the shard that assigned it, 5 bytes of a per-shard counter
//! that starts at a random value each run. A room's ids are assigned by one shard with
//! milliseconds that never go backwards for that room (the caller clamps them to the room's
//! last), so a later message never sorts before an earlier one, even within one millisecond.

use std::fmt;

/// Counter values fit in 5 bytes.
const COUNTER_MASK: u64 = (1 << 40) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 12]);

impl MessageId {
    pub fn to_hex(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Assigns ids on one shard.
#[derive(Debug)]
pub struct IdGenerator {
    shard: u8,
    counter: u64,
}

impl IdGenerator {
    pub fn new(shard: usize) -> IdGenerator {
        let mut seed = [0u8; 8];
        // Without OS randomness the counter starts at 0; uniqueness across runs then rests
        // on the millisecond part alone, which still moves forward between runs.
        let _ = getrandom::fill(&mut seed);
        IdGenerator {
            shard: shard as u8,
            counter: u64::from_le_bytes(seed) & COUNTER_MASK,
        }
    }

    /// The next id, for a message created at `millis`.
    pub fn next(&mut self, millis: u64) -> MessageId {
        self.counter = (self.counter + 1) & COUNTER_MASK;
        let mut id = [0u8; 12];
        id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        id[6] = self.shard;
        id[7..].copy_from_slice(&self.counter.to_be_bytes()[3..]);
        MessageId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_within_one_millisecond_keep_their_order() {
        let mut ids = IdGenerator::new(3);
        ids.counter = 10;
        let a = ids.next(1_700_000_000_000);
        let b = ids.next(1_700_000_000_000);
        assert!(a < b);
        assert!(a.to_hex() < b.to_hex());
        assert_eq!(a.to_hex().len(), 24);
        assert!(a
            .to_hex()
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[test]
    fn later_milliseconds_sort_later() {
        let mut ids = IdGenerator::new(0);
        let a = ids.next(1_700_000_000_001);
        let b = ids.next(1_700_000_000_002);
        assert!(a.to_hex() < b.to_hex());
    }
}
