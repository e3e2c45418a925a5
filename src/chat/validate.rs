//! Chat payloads: decoded from the event's JSON text into typed fields and checked against
//! docs/API.md's rules before anything else happens.
//!
//! Everything here comes from the network, so every field is checked for presence, type and
//! range, and the error message names the field. The payload is read by serde visitors
//! ([`Payload`]) straight from the text, strings borrowed: no `serde_json::Value` tree is
//! built, a field of the wrong type (a 400 kB array where `content` should be) is skipped
//! without keeping anything and answered `invalid_payload`, and keys the chat does not know
//! are skipped the same way. A key given twice counts with its last value, as in
//! JavaScript's `JSON.parse`. Values are returned normalised: the book id as a number, the
//! user id as a string, names and content trimmed.

use crate::book::BookId;
use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::errors::ChatError;
use crate::message_id::MessageId;
use crate::socketio::event_json::{skip_map, skip_rest};

/// The largest book id: JavaScript's `Number.MAX_SAFE_INTEGER`.
pub const MAX_BOOK_ID: u64 = 9_007_199_254_740_991;
/// Longest user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Longest username after trimming, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub book_id: BookId,
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRequest {
    pub book_id: BookId,
    pub user_id: String,
    pub username: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveRequest {
    pub book_id: BookId,
    pub username: String,
    /// Optional on leave; checked against the bound identity when present.
    pub user_id: Option<String>,
}

/// A `loadHistory` request (docs/API.md, "Older history").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub book_id: BookId,
    /// The page holds messages whose `_id` sorts before this one; None: from the newest.
    pub before: Option<MessageId>,
    /// Messages in the page, 1 to [`MAX_HISTORY_LIMIT`].
    pub limit: usize,
}

/// The largest `limit` of a `loadHistory` page.
pub const MAX_HISTORY_LIMIT: usize = 100;
/// The `limit` of a `loadHistory` page that gives none.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// One JSON value of a payload, as far as the rules look at it: containers are skipped, not
/// kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array,
    Object,
}

/// The fields of a payload object the chat reads; `None` when the key is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields<'a> {
    pub book_id: Option<Field<'a>>,
    pub user_id: Option<Field<'a>>,
    pub username: Option<Field<'a>>,
    pub content: Option<Field<'a>>,
    /// `loadHistory`'s cursor and page size.
    pub before: Option<Field<'a>>,
    pub limit: Option<Field<'a>>,
}

/// An event's first argument: an object (its chat fields), or anything else.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    Object(Fields<'a>),
    NotObject,
}

impl<'a> Payload<'a> {
    /// Read a payload from its JSON text (tests and benches; the server reads it from the
    /// event with `Event::first_arg`).
    pub fn from_json(json: &'a str) -> Result<Payload<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }
}

fn object<'p, 'a>(payload: Option<&'p Payload<'a>>) -> Result<&'p Fields<'a>, ChatError> {
    match payload {
        Some(Payload::Object(fields)) => Ok(fields),
        _ => Err(ChatError::invalid("payload must be an object")),
    }
}

/// The identity a token gave the connection (docs/API.md, "Token authentication"). With one,
/// a payload may leave `userId` out (or null): it is then `sub`; one given is still checked
/// here and compared with the bound identity by the caller. A token `name` is the username
/// whatever the payload says (its `username` is then not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBound<'a> {
    pub user_id: &'a str,
    pub username: Option<&'a str>,
}

pub fn join(payload: Option<&Payload<'_>>) -> Result<JoinRequest, ChatError> {
    join_as(payload, None)
}

/// [`join`] on a connection that may carry a token identity.
pub fn join_as(
    payload: Option<&Payload<'_>>,
    token: Option<TokenBound<'_>>,
) -> Result<JoinRequest, ChatError> {
    let fields = object(payload)?;
    Ok(JoinRequest {
        book_id: book_id(fields.book_id.as_ref())?,
        user_id: bound_user_id(fields.user_id.as_ref(), token)?,
        username: bound_username(fields.username.as_ref(), token)?,
    })
}

pub fn message(
    payload: Option<&Payload<'_>>,
    max_content_chars: usize,
) -> Result<MessageRequest, ChatError> {
    message_as(payload, max_content_chars, None)
}

/// [`message`] on a connection that may carry a token identity.
pub fn message_as(
    payload: Option<&Payload<'_>>,
    max_content_chars: usize,
    token: Option<TokenBound<'_>>,
) -> Result<MessageRequest, ChatError> {
    let fields = object(payload)?;
    Ok(MessageRequest {
        book_id: book_id(fields.book_id.as_ref())?,
        user_id: bound_user_id(fields.user_id.as_ref(), token)?,
        username: bound_username(fields.username.as_ref(), token)?,
        content: content(fields.content.as_ref(), max_content_chars)?,
    })
}

pub fn leave(payload: Option<&Payload<'_>>) -> Result<LeaveRequest, ChatError> {
    leave_as(payload, None)
}

/// [`leave`] on a connection that may carry a token identity.
pub fn leave_as(
    payload: Option<&Payload<'_>>,
    token: Option<TokenBound<'_>>,
) -> Result<LeaveRequest, ChatError> {
    let fields = object(payload)?;
    let user_id = match fields.user_id.as_ref() {
        None | Some(Field::Null) => None,
        some => Some(user_id(some)?),
    };
    Ok(LeaveRequest {
        book_id: book_id(fields.book_id.as_ref())?,
        username: bound_username(fields.username.as_ref(), token)?,
        user_id,
    })
}

/// `roomMembers { bookId }`: the book asked about.
pub fn members(payload: Option<&Payload<'_>>) -> Result<BookId, ChatError> {
    book_id(object(payload)?.book_id.as_ref())
}

/// `loadHistory { bookId, before?, limit? }`: `before` 24 lowercase hex characters, `limit` a
/// JSON number, whole, 1 to 100 (default 50). An absent key takes its default; anything else
/// (`null` included) is `invalid_payload` naming the field.
pub fn history(payload: Option<&Payload<'_>>) -> Result<HistoryRequest, ChatError> {
    let fields = object(payload)?;
    let book_id = book_id(fields.book_id.as_ref())?;
    let before = match &fields.before {
        None => None,
        Some(Field::Str(text)) => Some(MessageId::from_hex(text).ok_or_else(|| {
            ChatError::invalid("before must be an _id: 24 lowercase hex characters")
        })?),
        Some(_) => {
            return Err(ChatError::invalid(
                "before must be an _id: a string of 24 lowercase hex characters",
            ))
        }
    };
    let limit = match &fields.limit {
        None => DEFAULT_HISTORY_LIMIT,
        Some(Field::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                    .map(|f| f as u64)
            })
            .filter(|n| (1..=MAX_HISTORY_LIMIT as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| ChatError::invalid("limit must be a whole number from 1 to 100"))?,
        Some(_) => {
            return Err(ChatError::invalid(
                "limit must be a JSON number, a whole number from 1 to 100",
            ))
        }
    };
    Ok(HistoryRequest {
        book_id,
        before,
        limit,
    })
}

/// `userId`, or the token's `sub` when the payload leaves it out.
fn bound_user_id(
    value: Option<&Field<'_>>,
    token: Option<TokenBound<'_>>,
) -> Result<String, ChatError> {
    match (token, value) {
        (Some(token), None | Some(Field::Null)) => Ok(token.user_id.to_owned()),
        _ => user_id(value),
    }
}

/// The token's `name` when it has one, else `username`.
fn bound_username(
    value: Option<&Field<'_>>,
    token: Option<TokenBound<'_>>,
) -> Result<String, ChatError> {
    match token.and_then(|t| t.username) {
        Some(name) => Ok(name.to_owned()),
        None => username(value),
    }
}

/// A whole number from 1 to 2^53-1, as a JSON number or a string of decimal digits.
pub fn book_id(value: Option<&Field<'_>>) -> Result<BookId, ChatError> {
    const RULE: &str = "bookId must be a whole number from 1 to 9007199254740991";
    let id = match value {
        Some(Field::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_BOOK_ID as f64)
                .map(|f| f as u64)
        }),
        Some(Field::Str(s))
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>().ok()
        }
        None => return Err(ChatError::invalid("bookId is required")),
        _ => None,
    };
    id.filter(|id| (1..=MAX_BOOK_ID).contains(id))
        .map(BookId)
        .ok_or_else(|| ChatError::invalid(RULE))
}

/// A non-empty string of at most 128 characters; a JSON number becomes its decimal string.
pub fn user_id(value: Option<&Field<'_>>) -> Result<String, ChatError> {
    let id = match value {
        Some(Field::Str(s)) => s.clone().into_owned(),
        Some(Field::Number(n)) => n.to_string(),
        None => return Err(ChatError::invalid("userId is required")),
        _ => return Err(ChatError::invalid("userId must be a string")),
    };
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_USER_ID_CHARS {
        return Err(ChatError::invalid("userId must be 1 to 128 characters"));
    }
    Ok(id)
}

/// 1–64 characters after trimming, no control characters.
pub fn username(value: Option<&Field<'_>>) -> Result<String, ChatError> {
    let name = match value {
        Some(Field::Str(s)) => s.trim(),
        None => return Err(ChatError::invalid("username is required")),
        _ => return Err(ChatError::invalid("username must be a string")),
    };
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS {
        return Err(ChatError::invalid(
            "username must be 1 to 64 characters after trimming",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::invalid(
            "username must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// 1–`max_chars` characters after trimming; no control characters but newline and tab.
pub fn content(value: Option<&Field<'_>>, max_chars: usize) -> Result<String, ChatError> {
    let text = match value {
        Some(Field::Str(s)) => s.trim(),
        None => return Err(ChatError::invalid("content is required")),
        _ => return Err(ChatError::invalid("content must be a string")),
    };
    let chars = text.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(ChatError::invalid(format!(
            "content must be 1 to {max_chars} characters after trimming"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ChatError::invalid(
            "content must not contain control characters other than newline and tab",
        ));
    }
    Ok(text.to_owned())
}

/// The keys of a payload object the chat reads.
enum Key {
    BookId,
    UserId,
    Username,
    Content,
    Before,
    Limit,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "bookId" => Key::BookId,
                    "userId" => Key::UserId,
                    "username" => Key::Username,
                    "content" => Key::Content,
                    "before" => Key::Before,
                    "limit" => Key::Limit,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::BookId => &mut fields.book_id,
                        Key::UserId => &mut fields.user_id,
                        Key::Username => &mut fields.username,
                        Key::Content => &mut fields.content,
                        Key::Before => &mut fields.before,
                        Key::Limit => &mut fields.limit,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    // A repeated key: the last value counts, as in `JSON.parse`.
                    *slot = Some(map.next_value::<Field<'de>>()?);
                }
                Ok(Payload::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload<'de>, A::Error> {
                skip_rest(&mut seq)?;
                Ok(Payload::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Payload<'de>, E> {
                Ok(Payload::NotObject)
            }
        }
        deserializer.deserialize_any(PayloadVisitor)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(s)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Field<'de>, E> {
                Ok(Field::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Field<'de>, E> {
                Ok(Field::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Field<'de>, E> {
                Ok(Number::from_f64(n).map_or(Field::Null, Field::Number))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Field<'de>, E> {
                Ok(Field::Bool(b))
            }
            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
                skip_rest(&mut seq)?;
                Ok(Field::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                skip_map(map)?;
                Ok(Field::Object)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// The validation check (fuzz target `chat_payload`), shared by the fuzz target, `tests/fuzz_regressions.rs`
/// and the unit tests below.
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub mod checks;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn f(value: Value) -> Field<'static> {
        Field::deserialize(value).expect("any value is a field")
    }

    fn p(value: Value) -> Payload<'static> {
        Payload::deserialize(value).expect("any value is a payload")
    }

    #[test]
    fn book_ids_accept_numbers_and_digit_strings_in_range() {
        assert_eq!(book_id(Some(&f(json!(2701)))).unwrap(), BookId(2701));
        assert_eq!(book_id(Some(&f(json!("2701")))).unwrap(), BookId(2701));
        assert_eq!(
            book_id(Some(&f(json!(9_007_199_254_740_991u64)))).unwrap(),
            BookId(MAX_BOOK_ID)
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("27a"),
            json!(""),
            json!(" 1"),
            json!("-1"),
            json!(9_007_199_254_740_992u64),
            json!("9007199254740992"),
            json!(null),
            json!([1]),
            json!(true),
        ] {
            assert!(book_id(Some(&f(bad.clone()))).is_err(), "{bad}");
        }
        assert!(book_id(None).unwrap_err().message.contains("bookId"));
    }

    #[test]
    fn user_ids_are_strings_or_numbers() {
        assert_eq!(user_id(Some(&f(json!("u-17")))).unwrap(), "u-17");
        assert_eq!(user_id(Some(&f(json!(17)))).unwrap(), "17");
        assert!(user_id(Some(&f(json!("")))).is_err());
        assert!(user_id(Some(&f(json!("x".repeat(129))))).is_err());
        assert!(user_id(Some(&f(json!("é".repeat(128))))).is_ok());
        assert!(user_id(Some(&f(json!({})))).is_err());
    }

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(
            username(Some(&f(json!("  Ishmael \n")))).unwrap(),
            "Ishmael"
        );
        assert!(username(Some(&f(json!("   ")))).is_err());
        assert!(username(Some(&f(json!("a".repeat(65))))).is_err());
        assert!(username(Some(&f(json!("a\u{7}b")))).is_err());
    }

    #[test]
    fn content_allows_newline_and_tab_only() {
        assert_eq!(
            content(Some(&f(json!(" a\n\tb "))), 4000).unwrap(),
            "a\n\tb"
        );
        assert!(content(Some(&f(json!("a\rb"))), 4000).is_err());
        assert!(content(Some(&f(json!(""))), 4000).is_err());
        assert!(content(Some(&f(json!("é".repeat(4000)))), 4000).is_ok());
        assert!(content(Some(&f(json!("é".repeat(4001)))), 4000).is_err());
    }

    #[test]
    fn payloads_must_be_objects_and_errors_name_the_field() {
        assert!(join(Some(&p(json!([1]))))
            .unwrap_err()
            .message
            .contains("object"));
        assert!(join(None).is_err());
        let err = message(
            Some(&p(json!({"bookId": 1, "userId": "u", "username": "n"}))),
            4000,
        )
        .unwrap_err();
        assert!(err.message.contains("content"));
        let ok = leave(Some(&p(json!({"bookId": "5", "username": "n"})))).unwrap();
        assert_eq!((ok.book_id, ok.user_id), (BookId(5), None));
    }

    #[test]
    fn payload_text_is_read_with_borrowed_strings_and_last_duplicate_wins() {
        let text = r#"{"bookId":2701,"x":[1,{"y":2}],"userId":"u1","username":"Ann","content":"a","content":"hi \u00e9"}"#;
        let payload = Payload::from_json(text).unwrap();
        let Payload::Object(fields) = &payload else {
            panic!("an object")
        };
        assert!(matches!(
            fields.user_id,
            Some(Field::Str(Cow::Borrowed("u1")))
        ));
        let request = message(Some(&payload), 4000).unwrap();
        assert_eq!(request.content, "hi \u{e9}");
        assert_eq!(request.book_id, BookId(2701));
    }

    #[test]
    fn history_requests_take_a_hex_cursor_and_a_whole_limit_up_to_a_hundred() {
        let ok = history(Some(&p(json!({"bookId": "7"})))).unwrap();
        assert_eq!(
            ok,
            HistoryRequest {
                book_id: BookId(7),
                before: None,
                limit: 50
            }
        );
        let ok = history(Some(&p(
            json!({"bookId": 7, "before": "000102030405060708090a0b", "limit": 100}),
        )))
        .unwrap();
        assert_eq!(
            ok.before,
            Some(MessageId([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))
        );
        assert_eq!(ok.limit, 100);
        assert_eq!(
            history(Some(&p(json!({"bookId": 7, "limit": 1.0}))))
                .unwrap()
                .limit,
            1
        );
        for (payload, field) in [
            (json!({"bookId": 7, "limit": 0}), "limit"),
            (json!({"bookId": 7, "limit": 101}), "limit"),
            (json!({"bookId": 7, "limit": 1.5}), "limit"),
            (json!({"bookId": 7, "limit": -3}), "limit"),
            (json!({"bookId": 7, "limit": "5"}), "limit"),
            (json!({"bookId": 7, "limit": null}), "limit"),
            (
                json!({"bookId": 7, "before": "000102030405060708090A0B"}),
                "before",
            ),
            (json!({"bookId": 7, "before": "0001"}), "before"),
            (json!({"bookId": 7, "before": 12}), "before"),
            (json!({"bookId": 7, "before": null}), "before"),
            (json!({"bookId": 0}), "bookId"),
            (json!({"before": "000102030405060708090a0b"}), "bookId"),
        ] {
            let err = history(Some(&p(payload.clone()))).unwrap_err();
            assert!(err.message.starts_with(field), "{payload}: {}", err.message);
        }
        assert!(history(Some(&p(json!([7])))).is_err());
    }

    #[test]
    fn a_content_of_two_hundred_thousand_numbers_is_refused_by_type() {
        let numbers = vec!["1"; 200_000].join(",");
        let text =
            format!(r#"{{"bookId":2701,"userId":"u1","username":"Ann","content":[{numbers}]}}"#);
        let payload = Payload::from_json(&text).unwrap();
        let Payload::Object(fields) = &payload else {
            panic!("an object")
        };
        assert_eq!(fields.content, Some(Field::Array));
        let err = message(Some(&payload), 4000).unwrap_err();
        assert_eq!(err.message, "content must be a string");
    }

    #[test]
    fn the_validation_check_holds_on_a_few_payloads() {
        super::checks::check(
            b"\x00{\"bookId\":7,\"userId\":\"u\",\"username\":\" Ann \",\"content\":\"hi\"}",
        );
        super::checks::check(b"\x01{\"bookId\":\"12\",\"userId\":5,\"username\":\"B\",\"content\":\"longer than eight\"}");
        super::checks::check(b"\x00[1,2]");
        super::checks::check(b"\x00{\"bookId\":0}");
    }
}
