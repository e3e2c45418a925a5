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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId(pub [u8; 12]);

impl MessageId {
    pub fn to_hex(self) -> String {
        self.to_string()
    }

    /// The id written as 24 lowercase hex characters (as [`MessageId::to_hex`] gives it);
    /// None for any other text (upper case included).
    pub fn from_hex(text: &str) -> Option<MessageId> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        let bytes = text.as_bytes();
        if bytes.len() != 24 {
            return None;
        }
        let mut id = [0u8; 12];
        for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
            let &[high, low] = pair else {
                return None;
            };
            *out = (nibble(high)? << 4) | nibble(low)?;
        }
        Some(MessageId(id))
    }

    /// The milliseconds part (the first 6 bytes).
    pub fn millis(self) -> u64 {
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(ms)
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

    /// The next id for a message created at `millis` that must sort after `last` (the
    /// room's newest id): when the clock, a restart with a new counter, a counter wrap or
    /// another shard would give one at or below it, the id takes `last`'s millisecond plus
    /// one instead (the message's `createdAt` is not changed).
    pub fn next_after(&mut self, millis: u64, last: MessageId) -> MessageId {
        let id = self.next(millis);
        if id > last {
            id
        } else {
            self.next(last.millis() + 1)
        }
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
    fn hex_round_trips_and_only_lowercase_hex_of_24_is_read() {
        let mut ids = IdGenerator::new(5);
        let id = ids.next(1_795_521_600_123);
        assert_eq!(MessageId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.millis(), 1_795_521_600_123);
        assert_eq!(
            MessageId::from_hex("000102030405060708090a0b"),
            Some(MessageId([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))
        );
        for bad in [
            "",
            "000102030405060708090a0",
            "000102030405060708090a0b0",
            "000102030405060708090A0B",
            "000102030405060708090a0g",
            "00010203040506070809 a0b",
            "éé0102030405060708090a",
        ] {
            assert_eq!(MessageId::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_id_after_a_higher_last_id_of_the_same_millisecond_still_sorts_after_it() {
        // A restart in the same millisecond: the new run's counter starts lower.
        let mut before_restart = IdGenerator::new(0);
        before_restart.counter = 1_000;
        let last = before_restart.next(1_700_000_000_000);
        let mut after_restart = IdGenerator::new(0);
        after_restart.counter = 5;
        assert!(after_restart.next(1_700_000_000_000) < last);
        let next = after_restart.next_after(1_700_000_000_000, last);
        assert!(next > last);
        assert_eq!(next.millis(), 1_700_000_000_001);
        // Ids already in order are left as the generator gives them.
        let plain = after_restart.next_after(1_700_000_000_005, next);
        assert_eq!(plain.millis(), 1_700_000_000_005);
    }

    #[test]
    fn later_milliseconds_sort_later() {
        let mut ids = IdGenerator::new(0);
        let a = ids.next(1_700_000_000_001);
        let b = ids.next(1_700_000_000_002);
        assert!(a.to_hex() < b.to_hex());
    }
}
