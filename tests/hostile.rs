//! The hostile-client suite (issue 4, item 3): raw TCP, HTTP and WebSocket clients that break
//! every rule they can, against the real `readrealm-chat` binary (ChatApp over RocksDB in a
//! temp directory, two shards).
//!
//! Every case runs in a [`scene::Scene`] and proves four things: (a) the server keeps
//! running, (b) the hostile connection gets the protocol's answer — the HTTP status, the
//! Engine.IO error JSON, the Socket.IO CONNECT_ERROR, the chat error ack or `exception` event
//! of docs/API.md — or is closed, exactly as asserted: a WebSocket by a close frame whose
//! status code and reason name the cause (pings answered while waiting, so the heartbeat
//! cannot stand in for it), an HTTP connection by an answer that says `Connection: close`
//! and a close well before the request timeout, (c) the bystanders of a busy room get
//! every message once and in order, (d) the server's resident memory stays within a bound
//! and its descriptors return to where they were.

mod support;

#[path = "hostile/bystander.rs"]
mod bystander;
#[path = "hostile/chat.rs"]
mod chat;
#[path = "hostile/client.rs"]
mod client;
#[path = "hostile/engineio.rs"]
mod engineio;
#[path = "hostile/http.rs"]
mod http;
#[path = "hostile/memory.rs"]
mod memory;
#[path = "hostile/scene.rs"]
mod scene;
#[path = "hostile/server.rs"]
mod server;
#[path = "hostile/socketio.rs"]
mod socketio;
