//! The JSON shapes the server emits: `Message` (as a `Value`, or encoded once as text to be
//! shared), presence payloads, acknowledgements.

use crate::book::BookId;
use crate::socketio::handler::RoomId;
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
    pub book_id: BookId,
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

/// A Message's JSON object text, encoded once and shared: the same text goes into the
/// `newMessage` broadcast, the sender's ack and the room's cached history (`history`).
pub type EncodedMessage = std::sync::Arc<str>;

/// A message as docs/API.md shows it, written straight to JSON text (no `Value` tree); the
/// same text as `message_value` would give.
#[derive(Serialize)]
struct MessageText<'a> {
    #[serde(rename = "_id", serialize_with = "as_display")]
    id: crate::store::MessageId,
    #[serde(rename = "bookId")]
    book_id: BookId,
    #[serde(rename = "userId")]
    user_id: &'a str,
    username: &'a str,
    content: &'a str,
    #[serde(rename = "createdAt")]
    created_at: &'a str,
    #[serde(rename = "updatedAt")]
    updated_at: &'a str,
}

fn as_display<S: serde::Serializer>(
    value: &crate::store::MessageId,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Bytes of a Message's JSON beyond its strings' own: the keys, punctuation, the id and the
/// two timestamps.
const MESSAGE_JSON_OVERHEAD: usize = 160;

/// `["newMessage",message,"<bookId>:<seq>"]`: the event with its offset as last argument,
/// as every recipient gets it while connection state recovery is on (docs/API.md; the
/// offset is `socketio::recovery::Offset`). Built once per message, shared by all.
pub fn new_message_json(message: &str, book_id: BookId, seq: u64) -> Box<str> {
    let offset = format!(
        "\"{}\"",
        crate::socketio::recovery::Offset {
            room: book_id.get(),
            seq
        }
    );
    crate::socketio::handler::event_array_json("newMessage", &[message, &offset])
}

/// Encode a stored message as its JSON object text, once.
pub fn encode_message(message: &StoredMessage) -> EncodedMessage {
    let created = iso8601(message.value.created_ms);
    let text = MessageText {
        id: message.value.id,
        book_id: message.book_id,
        user_id: &message.value.user_id,
        username: &message.value.username,
        content: &message.value.content,
        created_at: &created,
        updated_at: &created,
    };
    let strings =
        message.value.user_id.len() + message.value.username.len() + message.value.content.len();
    let mut out = Vec::with_capacity(MESSAGE_JSON_OVERHEAD + strings);
    // Writing into a `Vec` cannot fail, and every key is a string.
    let _ = serde_json::to_writer(&mut out, &text);
    // serde_json writes UTF-8, so this never falls back.
    std::str::from_utf8(&out).map_or_else(|_| "null".into(), Into::into)
}

/// `[{"ok":true,"message":<message>}]`: the values of a `chatMessage`'s ack (docs/API.md),
/// around the message's encoded text.
pub fn message_ack_json(message: &str) -> Box<str> {
    const HEAD: &str = r#"[{"ok":true,"message":"#;
    const TAIL: &str = "}]";
    let mut out = String::with_capacity(HEAD.len() + message.len() + TAIL.len());
    out.push_str(HEAD);
    out.push_str(message);
    out.push_str(TAIL);
    out.into_boxed_str()
}

/// `{ username, timestamp }` for `userJoined` / `userLeft`.
pub fn presence(username: &str, now_ms: u64) -> Value {
    json!({ "username": username, "timestamp": iso8601(now_ms) })
}

/// A book's room: keyed by the book id itself, no text built per message or join.
pub fn book_room(book_id: BookId) -> RoomId {
    RoomId::Number(book_id.get())
}

/// The name of a book's room as the join answer shows it (`"book_2701"`, docs/API.md).
pub fn room_name(book_id: BookId) -> String {
    format!("book_{book_id}")
}
