//! HTTP/1.1 for Engine.IO: request heads, bodies, responses, CORS, routing by path.
//!
//! Owns the HTTP layer's codecs, sans-IO: [`request`] turns the bytes at the front of a
//! connection's read buffer into a [`RequestHead`] (the body, framed by its `Content-Length`,
//! starts at `head_len`); [`response`] appends complete responses — polling payloads, `ok`,
//! Engine.IO errors, the WebSocket `101` — to an output buffer; [`cors`] says which
//! `Access-Control-*` headers go on them.
//!
//! Must never: touch a socket, a clock or session state. Routing by path and the decisions
//! (which session, which error code, when to close) live in `server/`, which calls into this
//! module with bytes and gets bytes back; keeping it that way lets unit tests and the fuzz
//! target (`fuzz/fuzz_targets/http_head.rs`) drive every parser directly, and keeps a bug
//! here from blocking or panicking a shard.

pub mod cors;
pub mod request;
pub mod response;

pub use cors::{Cors, CorsPolicy};
pub use request::{parse_head, HeadError, HeadLimits, Method, Query, RequestHead};
pub use response::{
    write_eio_error, write_plain_error, write_response, write_text_head, write_websocket_accept,
    EioErrorCode, Status,
};
