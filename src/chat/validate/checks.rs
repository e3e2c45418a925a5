//! The check of chat payload validation (its parent, `chat::validate`), on the payloads a
//! client's `joinRoom`, `chatMessage`, `leaveRoom`, `roomMembers` and
//! `loadHistory` events carry: the `chat_payload` fuzz
//! target, its regression replay (`tests/fuzz_regressions.rs`) and the validators' unit tests
//! all call [`check`]. Built only for tests and with the `checks` feature (the fuzz build and
//! `tests/` turn it on).
//!
//! Input layout: byte 0 picks the content limit (even: the default 4000 characters, odd: 8,
//! so the limit is reachable); the rest, as lossy UTF-8, is a JSON value (inputs that are not
//! JSON are skipped). The value travels the way the server receives it: as the first argument
//! of a Socket.IO event, encoded and decoded as the server does (its text kept, and as a tree
//! it must come back the same), read from the event's text into a typed
//! [`validate::Payload`], then given to [`validate::join`], [`validate::message`] and
//! [`validate::leave`] and [`validate::history`]. Beyond "never panics":
//!
//! - each field validator accepts exactly what docs/API.md allows, checked against a separate
//!   statement of each rule (bookId a whole number 1..=2^53-1 as a number or a digit string;
//!   userId a string, or a number as its decimal text, of 1..=128 characters; username and
//!   content trimmed, 1..=64 / 1..=limit characters, no control characters but newline and
//!   tab in content; loadHistory's before 24 lowercase hex characters and limit a whole
//!   number 1..=100, each optional);
//! - a request is accepted exactly when the payload is an object and each of its fields is;
//!   an accepted request is normalised (trimmed strings, numeric book id) and idempotent: the
//!   canonical payload built from it validates to the same request;
//! - every refusal is `invalid_payload` with a message naming the field (or the payload).

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::chat::errors::{ChatError, ErrorCode};
use crate::chat::limits::ChatLimits;
use crate::chat::validate::{
    self, JoinRequest, LeaveRequest, MessageRequest, Payload, MAX_BOOK_ID, MAX_USERNAME_CHARS,
    MAX_USER_ID_CHARS,
};
use crate::socketio::handler::{event_array, Event};
use crate::socketio::json_text::normalize;
use crate::socketio::packet::checks::same_value;
use crate::socketio::packet::{decode_deferred, encode_into, Limits, Packet};

/// Check the validators on `data` (the module doc says how); panics when an invariant fails.
pub fn check(data: &[u8]) {
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let max_content = if choice % 2 == 0 {
        ChatLimits::default().max_content_chars
    } else {
        8
    };
    // Read as the server reads a packet's data: lone surrogate escapes and numbers beyond
    // f64 rewritten first (`json_text::normalize`), so such inputs are checked, not skipped.
    let text = String::from_utf8_lossy(json);
    let Ok(value) = serde_json::from_str::<Value>(&normalize(&text)) else {
        return;
    };
    let Some(event) = through_socketio("chatMessage", &value) else {
        return;
    };
    let payload = event
        .first_arg::<Payload<'_>>()
        .expect("a payload takes any value")
        .expect("the argument survives");
    let payload = Some(&payload);
    let fields = value.as_object();

    let join = validate::join(payload);
    check_refusal(&join, &["payload", "bookId", "userId", "username"]);
    assert_eq!(join.is_ok(), fields.is_some_and(join_ok), "{value}");
    if let Ok(request) = join {
        assert_eq!(
            validate::join(Some(&typed(canonical_join(&request)))),
            Ok(request)
        );
    }

    let message = validate::message(payload, max_content);
    check_refusal(
        &message,
        &["payload", "bookId", "userId", "username", "content"],
    );
    let expected = fields.is_some_and(|f| join_ok(f) && content_ok(f.get("content"), max_content));
    assert_eq!(message.is_ok(), expected, "{value}");
    if let Ok(request) = message {
        let again = validate::message(Some(&typed(canonical_message(&request))), max_content);
        assert_eq!(again, Ok(request));
    }

    let leave = validate::leave(payload);
    check_refusal(&leave, &["payload", "bookId", "userId", "username"]);
    let expected = fields.is_some_and(|f| {
        let user_ok = match f.get("userId") {
            None | Some(Value::Null) => true,
            some => user_id_ok(some),
        };
        book_id_ok(f.get("bookId")) && username_ok(f.get("username")) && user_ok
    });
    assert_eq!(leave.is_ok(), expected, "{value}");
    if let Ok(request) = leave {
        assert_eq!(
            validate::leave(Some(&typed(canonical_leave(&request)))),
            Ok(request)
        );
    }

    let history = validate::history(payload);
    check_refusal(&history, &["payload", "bookId", "before", "limit"]);
    let expected = fields.is_some_and(|f| {
        book_id_ok(f.get("bookId")) && before_ok(f.get("before")) && limit_ok(f.get("limit"))
    });
    assert_eq!(history.is_ok(), expected, "{value}");
    if let Ok(request) = history {
        assert_eq!(
            request.before.map(|id| id.to_hex()).as_deref(),
            f_str(fields, "before")
        );
        let mut again = json!({ "bookId": request.book_id.get(), "limit": request.limit });
        if let Some(before) = request.before {
            again["before"] = json!(before.to_hex());
        }
        assert_eq!(validate::history(Some(&typed(again))), Ok(request));
    }
}

/// `loadHistory`'s `before` rule, stated apart from the validator: absent, or a string of
/// 24 characters each `0`-`9` or `a`-`f`.
fn before_ok(value: Option<&Value>) -> bool {
    match value {
        None => true,
        Some(Value::String(s)) => {
            s.len() == 24
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => false,
    }
}

/// `loadHistory`'s `limit` rule: absent, or a JSON number that is a whole number 1..=100.
fn limit_ok(value: Option<&Value>) -> bool {
    match value {
        None => true,
        Some(Value::Number(n)) => n
            .as_f64()
            .is_some_and(|f| f.trunc() == f && (1.0..=100.0).contains(&f)),
        _ => false,
    }
}

/// A string field of the payload object.
fn f_str<'a>(fields: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    fields.and_then(|f| f.get(key)).and_then(Value::as_str)
}

/// `value` as the first argument of event `name`: encoded, then decoded as the server does
/// into an [`Event`]. `None` when the event cannot carry it (the decoder's JSON limits);
/// otherwise its arguments, decoded into a tree, must come back unchanged.
fn through_socketio(name: &str, value: &Value) -> Option<Event> {
    let packet = Packet::event(
        "/",
        event_array(name, vec![value.clone()]),
        Some(1),
        Vec::new(),
    );
    let mut text = Vec::new();
    encode_into(&packet, &mut text);
    let text = String::from_utf8(text).expect("the encoder writes UTF-8");
    let (back, _) = decode_deferred(&text, &Limits::default()).ok()?;
    let json = back
        .json
        .expect("an event without attachments keeps its text");
    let event = Event::from_json(json, Vec::new(), back.id);
    assert_eq!(event.name(), Some(name));
    let args = event.args().expect("within serde's depth");
    let arg = args.first().expect("the argument survives");
    assert!(same_value(arg, value), "{value} came back as {arg}");
    Some(event)
}

/// A payload as the validators take it, from a tree.
fn typed(value: Value) -> Payload<'static> {
    Payload::deserialize(value).expect("a payload takes any value")
}

fn check_refusal<T>(result: &Result<T, ChatError>, fields: &[&str]) {
    if let Err(e) = result {
        assert_eq!(e.code, ErrorCode::InvalidPayload);
        assert!(
            fields.iter().any(|f| e.message.contains(f)),
            "{:?} names no field",
            e.message
        );
    }
}

fn join_ok(f: &Map<String, Value>) -> bool {
    book_id_ok(f.get("bookId")) && user_id_ok(f.get("userId")) && username_ok(f.get("username"))
}

/// docs/API.md's bookId rule, stated apart from the validator.
fn book_id_ok(value: Option<&Value>) -> bool {
    let in_range = |n: u64| (1..=MAX_BOOK_ID).contains(&n);
    match value {
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                in_range(u)
            } else if let Some(f) = n.as_f64() {
                f.trunc() == f && (1.0..=MAX_BOOK_ID as f64).contains(&f)
            } else {
                false
            }
        }
        Some(Value::String(s)) => {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && in_range_decimal(s, MAX_BOOK_ID)
        }
        _ => false,
    }
}

/// Whether a string of digits is a number from 1 to `max`, by comparing digit strings.
fn in_range_decimal(digits: &str, max: u64) -> bool {
    let trimmed = digits.trim_start_matches('0');
    let max = max.to_string();
    !trimmed.is_empty()
        && (trimmed.len() < max.len() || (trimmed.len() == max.len() && trimmed <= max.as_str()))
        // The validator reads at most 20 characters; longer strings (zero padded) are refused.
        && digits.len() <= 20
}

fn user_id_ok(value: Option<&Value>) -> bool {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return false,
    };
    (1..=MAX_USER_ID_CHARS).contains(&text.chars().count())
}

fn username_ok(value: Option<&Value>) -> bool {
    let Some(Value::String(s)) = value else {
        return false;
    };
    let s = s.trim();
    (1..=MAX_USERNAME_CHARS).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

fn content_ok(value: Option<&Value>, max: usize) -> bool {
    let Some(Value::String(s)) = value else {
        return false;
    };
    let s = s.trim();
    (1..=max).contains(&s.chars().count())
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn canonical_join(r: &JoinRequest) -> Value {
    assert_normalised(r.book_id, &r.user_id, &r.username);
    json!({ "bookId": r.book_id, "userId": r.user_id, "username": r.username })
}

fn canonical_message(r: &MessageRequest) -> Value {
    assert_normalised(r.book_id, &r.user_id, &r.username);
    assert_eq!(r.content.trim(), r.content);
    json!({ "bookId": r.book_id, "userId": r.user_id, "username": r.username, "content": r.content })
}

fn canonical_leave(r: &LeaveRequest) -> Value {
    assert_normalised(r.book_id, r.user_id.as_deref().unwrap_or("x"), &r.username);
    match &r.user_id {
        Some(id) => json!({ "bookId": r.book_id, "userId": id, "username": r.username }),
        None => json!({ "bookId": r.book_id, "username": r.username }),
    }
}

fn assert_normalised(book_id: crate::book::BookId, user_id: &str, username: &str) {
    assert!((1..=MAX_BOOK_ID).contains(&book_id.get()));
    assert!((1..=MAX_USER_ID_CHARS).contains(&user_id.chars().count()));
    assert_eq!(username.trim(), username);
}
