//! The error codes of docs/API.md and how a failed request is answered.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidPayload,
    NotInRoom,
    IdentityMismatch,
    TooManyRooms,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::IdentityMismatch => "identity_mismatch",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// A failed request: its code and a message for the developer reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
}

impl ChatError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ChatError {
        ChatError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ChatError {
        ChatError::new(ErrorCode::InvalidPayload, message)
    }

    /// The acknowledgement body: `{ ok: false, error: { code, message } }`.
    pub fn ack_body(&self) -> Value {
        json!({ "ok": false, "error": { "code": self.code.as_str(), "message": self.message } })
    }

    /// The `exception` event payload for a request without an ack.
    pub fn exception_body(&self, event: &str) -> Value {
        json!({ "status": "error", "event": event, "code": self.code.as_str(), "message": self.message })
    }
}
