//! The JSON shapes the server emits: `Message`, presence payloads, acknowledgements.

use serde::Serialize;
use serde_json::{json, Value};

use crate::store::StoredMessage;
use crate::time::iso8601;

/// A message as docs/API.md shows it; field order as there.
#[derive(Debug, Serialize)]
pub struct MessageJson<'a> {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "bookId")]
    pub book_id: u64,
    #[serde(rename = "userId")]
    pub user_id: &'a str,
    pub username: &'a str,
    pub content: &'a str,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

impl<'a> MessageJson<'a> {
    pub fn new(message: &'a StoredMessage) -> MessageJson<'a> {
        let created = iso8601(message.value.created_ms);
        MessageJson {
            id: message.value.id.to_hex(),
            book_id: message.book_id,
            user_id: &message.value.user_id,
            username: &message.value.username,
            content: &message.value.content,
            updated_at: created.clone(),
            created_at: created,
        }
    }
}

pub fn message_value(message: &StoredMessage) -> Value {
    serde_json::to_value(MessageJson::new(message)).unwrap_or(Value::Null)
}

/// `{ username, timestamp }` for `userJoined` / `userLeft`.
pub fn presence(username: &str, now_ms: u64) -> Value {
    json!({ "username": username, "timestamp": iso8601(now_ms) })
}

/// The name of a book's room.
pub fn room_name(book_id: u64) -> String {
    format!("book_{book_id}")
}
