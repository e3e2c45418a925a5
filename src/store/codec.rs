//! The stored value of a message: compact, versioned, and checked on the way back.
//!
//! Layout (version 1): `1` ‖ createdAt ms (u64 BE) ‖ `_id` (12 bytes) ‖ userId ‖ username ‖
//! content, each string as a u32 BE length then UTF-8 bytes. The book id and sequence are in
//! the key, so they are not repeated here. A value that does not decode is reported, never
//! guessed at.

use crate::message_id::MessageId;

const VERSION: u8 = 1;

/// A message as stored (the book and sequence come from the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    pub created_ms: u64,
    pub id: MessageId,
    pub user_id: String,
    pub username: String,
    pub content: String,
}

pub fn encode(value: &StoredValue, out: &mut Vec<u8>) {
    out.reserve(1 + 8 + 12 + 12 + value.user_id.len() + value.username.len() + value.content.len());
    out.push(VERSION);
    out.extend_from_slice(&value.created_ms.to_be_bytes());
    out.extend_from_slice(&value.id.0);
    for text in [&value.user_id, &value.username, &value.content] {
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
}

pub fn decode(bytes: &[u8]) -> Option<StoredValue> {
    let mut reader = Reader(bytes);
    if reader.take(1)? != [VERSION] {
        return None;
    }
    let created_ms = u64::from_be_bytes(reader.take(8)?.try_into().ok()?);
    let id = MessageId(reader.take(12)?.try_into().ok()?);
    let user_id = reader.string()?;
    let username = reader.string()?;
    let content = reader.string()?;
    reader.0.is_empty().then_some(StoredValue {
        created_ms,
        id,
        user_id,
        username,
        content,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredValue {
        StoredValue {
            created_ms: 1_795_521_600_000,
            id: MessageId([7; 12]),
            user_id: "u-17".into(),
            username: "Ishmael".into(),
            content: "Call me Ishmael.\n— ünïcode".into(),
        }
    }

    #[test]
    fn values_round_trip() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        assert_eq!(decode(&out), Some(sample()));
    }

    #[test]
    fn truncated_or_padded_values_are_refused() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), None, "cut at {cut}");
        }
        out.push(0);
        assert_eq!(decode(&out), None);
        assert_eq!(decode(&[2]), None);
    }
}
