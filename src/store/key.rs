//! The key layouts: messages under `bookId` (u64, big-endian) ‖ `!seq` (u64, big-endian); the
//! `_id` index under `bookId` ‖ `_id` (12 bytes), its value the message's `seq` (u64 BE).
//!
//! Big-endian keeps one book's keys contiguous and ordered; the bitwise-not of the per-room
//! sequence makes the newest message the first key of the book's 8-byte prefix, so the newest
//! 50 are one short forward scan (with a prefix extractor of 8 bytes and a bloom filter), and
//! the page older than sequence `s` is one seek to `bookId ‖ !(s - 1)`. The index keys share
//! the 8-byte book prefix, so finding the `_id` a page starts below is one seek in that book.

/// Bytes of the book prefix.
pub const PREFIX_LEN: usize = 8;
/// Bytes of a whole key.
pub const KEY_LEN: usize = 16;

pub fn prefix(book_id: u64) -> [u8; PREFIX_LEN] {
    book_id.to_be_bytes()
}

pub fn encode(book_id: u64, seq: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..PREFIX_LEN].copy_from_slice(&book_id.to_be_bytes());
    key[PREFIX_LEN..].copy_from_slice(&(!seq).to_be_bytes());
    key
}

/// Bytes of an `_id` index key.
pub const ID_KEY_LEN: usize = PREFIX_LEN + 12;

/// The `_id` index key of a message: `bookId ‖ _id`.
pub fn id_key(book_id: u64, id: &[u8; 12]) -> [u8; ID_KEY_LEN] {
    let mut key = [0u8; ID_KEY_LEN];
    key[..PREFIX_LEN].copy_from_slice(&book_id.to_be_bytes());
    key[PREFIX_LEN..].copy_from_slice(id);
    key
}

/// The sequence an `_id` index entry holds; None for a value of another shape.
pub fn decode_seq(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// `(bookId, seq)` of a stored key; None for a key of another shape.
pub fn decode(key: &[u8]) -> Option<(u64, u64)> {
    let book: [u8; 8] = key.get(..PREFIX_LEN)?.try_into().ok()?;
    let seq: [u8; 8] = key.get(PREFIX_LEN..KEY_LEN)?.try_into().ok()?;
    (key.len() == KEY_LEN).then(|| (u64::from_be_bytes(book), !u64::from_be_bytes(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_messages_sort_first_within_a_book() {
        assert!(encode(7, 2) < encode(7, 1));
        assert!(encode(7, u64::MAX - 1) < encode(7, 0));
    }

    #[test]
    fn books_do_not_interleave_at_byte_boundaries() {
        for (low, high) in [(255u64, 256u64), ((1 << 32) - 1, 1 << 32), (1, 2)] {
            assert!(encode(low, 0) < encode(high, u64::MAX - 1));
            assert!(encode(low, u64::MAX - 1) < encode(high, 0));
            assert!(encode(high, 5).starts_with(&prefix(high)));
            assert!(!encode(low, 5).starts_with(&prefix(high)));
        }
    }

    #[test]
    fn keys_round_trip() {
        for (book, seq) in [
            (1, 1),
            (255, 256),
            (1 << 32, 42),
            (9_007_199_254_740_991, 7),
        ] {
            assert_eq!(decode(&encode(book, seq)), Some((book, seq)));
        }
        assert_eq!(decode(&[0; 15]), None);
        assert_eq!(decode(&[0; 17]), None);
    }

    #[test]
    fn id_keys_sort_by_id_within_a_book() {
        let low = [0u8; 12];
        let mut high = [0u8; 12];
        high[11] = 1;
        assert!(id_key(7, &low) < id_key(7, &high));
        assert!(id_key(7, &[0xff; 12]) < id_key(8, &low));
        assert!(id_key(8, &high).starts_with(&prefix(8)));
        assert_eq!(decode_seq(&42u64.to_be_bytes()), Some(42));
        assert_eq!(decode_seq(&[0; 7]), None);
    }
}
