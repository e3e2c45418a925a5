//! `loadHistory { bookId, before?, limit? }` (docs/API.md, "Older history"): one page of a
//! joined room's older messages, newest first, answered through the request's ack as
//! `{ ok: true, messages, hasMore }`.
//!
//! Served on the asking connection's own shard, straight from the store: a page is two
//! RocksDB seeks (`store::Store::page`: the `_id` index, then the messages), tens of
//! microseconds (benches/RESULTS.md), so neither the room's home shard nor the history cache
//! is involved. Messages are encoded exactly as `previousMessages` items (`message`).
//!
//! Owns the request's order of checks and the answer's shape; never writes to the store,
//! never answers anywhere but the ack (a request without one is `invalid_payload`, sent as
//! `exception`, since the page would have nowhere to go).

use serde_json::Value;

use super::errors::{ChatError, ErrorCode};
use super::message::encode_message;
use super::validate::{self, Payload};
use super::ChatApp;
use crate::socketio::handler::SocketOf;
use crate::store::Page;

impl ChatApp {
    /// Answer a `loadHistory` through its ack; the error to answer otherwise (the caller
    /// sends it as the ack or, without one, as `exception`).
    pub(super) fn load_history(
        &self,
        socket: &mut SocketOf<'_, Self>,
        payload: Option<&Payload<'_>>,
        ack_id: Option<u64>,
    ) -> Result<Option<Value>, ChatError> {
        let Some(ack) = ack_id else {
            return Err(ChatError::invalid(
                "loadHistory needs an acknowledgement callback: the page is answered through it",
            ));
        };
        let request = validate::history(payload)?;
        if !socket.state.rooms.contains_key(&request.book_id) {
            return Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("join book {} before loading its history", request.book_id),
            ));
        }
        let page = self
            .store
            .page(request.book_id, request.before, request.limit)
            .map_err(|e| ChatError::new(ErrorCode::Unavailable, e.to_string()))?;
        socket.ack_json(ack, page_ack_json(&page));
        Ok(None)
    }
}

/// `[{"ok":true,"messages":[<message>,...],"hasMore":<bool>}]`: the values of a
/// `loadHistory` ack, the messages newest first, each encoded as in `previousMessages`.
pub fn page_ack_json(page: &Page) -> Box<str> {
    const HEAD: &str = r#"[{"ok":true,"messages":["#;
    let texts: Vec<_> = page.messages.iter().map(encode_message).collect();
    let mut out =
        String::with_capacity(HEAD.len() + 32 + texts.iter().map(|t| t.len() + 1).sum::<usize>());
    out.push_str(HEAD);
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text);
    }
    out.push_str(if page.has_more {
        r#"],"hasMore":true}]"#
    } else {
        r#"],"hasMore":false}]"#
    });
    out.into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::BookId;
    use crate::store::{MessageId, StoredMessage, StoredValue};
    use serde_json::json;

    #[test]
    fn a_page_answer_is_the_ok_object_with_messages_and_has_more() {
        let message = StoredMessage {
            book_id: BookId(2701),
            seq: 3,
            value: StoredValue {
                created_ms: 1_795_521_600_000,
                id: MessageId([0xab; 12]),
                user_id: "u-17".into(),
                username: "Ishmael".into(),
                content: "Call me \"Ishmael\".".into(),
            },
        };
        let page = Page {
            messages: vec![message.clone(), message],
            has_more: true,
        };
        let expected_message = json!({
            "_id": "abababababababababababab",
            "bookId": 2701,
            "userId": "u-17",
            "username": "Ishmael",
            "content": "Call me \"Ishmael\".",
            "createdAt": "2026-11-24T12:00:00.000Z",
            "updatedAt": "2026-11-24T12:00:00.000Z"
        });
        let answer: serde_json::Value = serde_json::from_str(&page_ack_json(&page)).unwrap();
        assert_eq!(
            answer,
            json!([{ "ok": true, "messages": [expected_message, expected_message], "hasMore": true }])
        );
        let empty: serde_json::Value =
            serde_json::from_str(&page_ack_json(&Page::default())).unwrap();
        assert_eq!(
            empty,
            json!([{ "ok": true, "messages": [], "hasMore": false }])
        );
    }
}
