//! Chat payload checks, the same rules, order and error texts as readrealm-chat's
//! `src/chat/validate.rs` (docs/API.md "Rules"), so both servers answer a bad request alike.

use serde_json::{Map, Value};

use crate::chat::ChatError;

pub const MAX_BOOK_ID: u64 = 9_007_199_254_740_991;
const MAX_USER_ID_CHARS: usize = 128;
const MAX_USERNAME_CHARS: usize = 64;

pub struct JoinRequest {
    pub book_id: u64,
    pub user_id: String,
    pub username: String,
}

pub struct MessageRequest {
    pub book_id: u64,
    pub user_id: String,
    pub username: String,
    pub content: String,
}

pub struct LeaveRequest {
    pub book_id: u64,
    pub username: String,
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

pub fn message(payload: Option<&Value>, max_content_chars: usize) -> Result<MessageRequest, ChatError> {
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

fn book_id(value: Option<&Value>) -> Result<u64, ChatError> {
    const RULE: &str = "bookId must be a whole number from 1 to 9007199254740991";
    let id = match value {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_BOOK_ID as f64)
                .map(|f| f as u64)
        }),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        None => return Err(ChatError::invalid("bookId is required")),
        _ => None,
    };
    id.filter(|id| (1..=MAX_BOOK_ID).contains(id))
        .ok_or_else(|| ChatError::invalid(RULE))
}

fn user_id(value: Option<&Value>) -> Result<String, ChatError> {
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

fn username(value: Option<&Value>) -> Result<String, ChatError> {
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
        return Err(ChatError::invalid("username must not contain control characters"));
    }
    Ok(name.to_owned())
}

fn content(value: Option<&Value>, max_chars: usize) -> Result<String, ChatError> {
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
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ChatError::invalid(
            "content must not contain control characters other than newline and tab",
        ));
    }
    Ok(text.to_owned())
}
