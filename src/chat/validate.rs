//! Chat payloads: parsed and checked against docs/API.md's rules before anything else happens.
//!
//! Everything here comes from the network, so every field is checked for presence, type and
//! range, and the error message names the field. Values are returned normalised: the book id
//! as a number, the user id as a string, names and content trimmed.

use serde_json::{Map, Value};

use super::errors::ChatError;

/// The largest book id: JavaScript's `Number.MAX_SAFE_INTEGER`.
pub const MAX_BOOK_ID: u64 = 9_007_199_254_740_991;
/// Longest user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Longest username after trimming, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub book_id: u64,
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRequest {
    pub book_id: u64,
    pub user_id: String,
    pub username: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveRequest {
    pub book_id: u64,
    pub username: String,
    /// Optional on leave; checked against the bound identity when present.
    pub user_id: Option<String>,
}

fn object(payload: Option<&Value>) -> Result<&Map<String, Value>, ChatError> {
    payload
        .and_then(Value::as_object)
        .ok_or_else(|| ChatError::invalid("payload must be an object"))
}

pub fn join(payload: Option<&Value>) -> Result<JoinRequest, ChatError> {
    let fields = object(payload)?;
    Ok(JoinRequest {
        book_id: book_id(fields.get("bookId"))?,
        user_id: user_id(fields.get("userId"))?,
        username: username(fields.get("username"))?,
    })
}

pub fn message(
    payload: Option<&Value>,
    max_content_chars: usize,
) -> Result<MessageRequest, ChatError> {
    let fields = object(payload)?;
    Ok(MessageRequest {
        book_id: book_id(fields.get("bookId"))?,
        user_id: user_id(fields.get("userId"))?,
        username: username(fields.get("username"))?,
        content: content(fields.get("content"), max_content_chars)?,
    })
}

pub fn leave(payload: Option<&Value>) -> Result<LeaveRequest, ChatError> {
    let fields = object(payload)?;
    let user_id = match fields.get("userId") {
        None | Some(Value::Null) => None,
        some => Some(user_id(some)?),
    };
    Ok(LeaveRequest {
        book_id: book_id(fields.get("bookId"))?,
        username: username(fields.get("username"))?,
        user_id,
    })
}

/// A whole number from 1 to 2^53-1, as a JSON number or a string of decimal digits.
pub fn book_id(value: Option<&Value>) -> Result<u64, ChatError> {
    const RULE: &str = "bookId must be a whole number from 1 to 9007199254740991";
    let id = match value {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_BOOK_ID as f64)
                .map(|f| f as u64)
        }),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>().ok()
        }
        None => return Err(ChatError::invalid("bookId is required")),
        _ => None,
    };
    id.filter(|id| (1..=MAX_BOOK_ID).contains(id))
        .ok_or_else(|| ChatError::invalid(RULE))
}

/// A non-empty string of at most 128 characters; a JSON number becomes its decimal string.
pub fn user_id(value: Option<&Value>) -> Result<String, ChatError> {
    let id = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
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
pub fn username(value: Option<&Value>) -> Result<String, ChatError> {
    let name = match value {
        Some(Value::String(s)) => s.trim(),
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
pub fn content(value: Option<&Value>, max_chars: usize) -> Result<String, ChatError> {
    let text = match value {
        Some(Value::String(s)) => s.trim(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn book_ids_accept_numbers_and_digit_strings_in_range() {
        assert_eq!(book_id(Some(&json!(2701))).unwrap(), 2701);
        assert_eq!(book_id(Some(&json!("2701"))).unwrap(), 2701);
        assert_eq!(
            book_id(Some(&json!(9_007_199_254_740_991u64))).unwrap(),
            MAX_BOOK_ID
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
            assert!(book_id(Some(&bad)).is_err(), "{bad}");
        }
        assert!(book_id(None).unwrap_err().message.contains("bookId"));
    }

    #[test]
    fn user_ids_are_strings_or_numbers() {
        assert_eq!(user_id(Some(&json!("u-17"))).unwrap(), "u-17");
        assert_eq!(user_id(Some(&json!(17))).unwrap(), "17");
        assert!(user_id(Some(&json!(""))).is_err());
        assert!(user_id(Some(&json!("x".repeat(129)))).is_err());
        assert!(user_id(Some(&json!("é".repeat(128)))).is_ok());
        assert!(user_id(Some(&json!({}))).is_err());
    }

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(username(Some(&json!("  Ishmael \n"))).unwrap(), "Ishmael");
        assert!(username(Some(&json!("   "))).is_err());
        assert!(username(Some(&json!("a".repeat(65)))).is_err());
        assert!(username(Some(&json!("a\u{7}b"))).is_err());
    }

    #[test]
    fn content_allows_newline_and_tab_only() {
        assert_eq!(content(Some(&json!(" a\n\tb ")), 4000).unwrap(), "a\n\tb");
        assert!(content(Some(&json!("a\rb")), 4000).is_err());
        assert!(content(Some(&json!("")), 4000).is_err());
        assert!(content(Some(&json!("é".repeat(4000))), 4000).is_ok());
        assert!(content(Some(&json!("é".repeat(4001))), 4000).is_err());
    }

    #[test]
    fn payloads_must_be_objects_and_errors_name_the_field() {
        assert!(join(Some(&json!([1])))
            .unwrap_err()
            .message
            .contains("object"));
        assert!(join(None).is_err());
        let err = message(
            Some(&json!({"bookId": 1, "userId": "u", "username": "n"})),
            4000,
        )
        .unwrap_err();
        assert!(err.message.contains("content"));
        let ok = leave(Some(&json!({"bookId": "5", "username": "n"}))).unwrap();
        assert_eq!((ok.book_id, ok.user_id), (5, None));
    }
}
