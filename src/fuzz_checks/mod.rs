//! The stateful checks behind the cargo-fuzz targets in `fuzz/`, and the table of every
//! target's check.
//!
//! Owns what the stateful fuzz targets assert (`eio_session`, `sio_connection`, `endpoint`:
//! drivers of one sans-IO unit or of the whole endpoint) and the input reader they share;
//! the codecs' checks sit beside their codecs, each in a `checks` module
//! (`engineio::packet::checks`, `http::request::checks`, `socketio::packet::checks`,
//! `chat::validate::checks`, and the WebSocket reader's `server::ws::checks`). The fuzzer and `cargo test` run the same code: a target in
//! `fuzz/fuzz_targets/` is a one-line call of a check, and
//! `tests/fuzz_regressions.rs` feeds every saved crash input (`fuzz/regressions/<target>/`) and
//! every corpus seed (`fuzz/seeds/<target>/`) through the same function on every test run.
//! Each function takes the raw fuzzer bytes, never returns an error and panics exactly when
//! an invariant of the code under test is broken; each submodule's doc says how it reads its
//! input and what it asserts.
//!
//! Not part of the server: built only for tests and with the `checks` feature (which the fuzz
//! build and the crate's own tests turn on), and nothing outside the fuzz targets and the
//! regression test calls it (hence `#[doc(hidden)]` in `lib.rs`). It only drives sans-IO code (codecs, the
//! Engine.IO session, the Socket.IO connection, the protocol endpoint through its test pair,
//! chat validation), so it builds without the `store` feature, which keeps RocksDB out of the
//! fuzz build. No check copies server glue: the stateful unit targets (`eio_session`,
//! `sio_connection`) check one sans-IO unit against a model, and `endpoint` drives the real
//! endpoint.

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod eio_session;
pub mod endpoint;
pub mod input;
pub mod sio_connection;

/// A fuzz target's check: panics when an invariant fails.
pub type Check = fn(&[u8]);

/// Every target, by its name in `fuzz/Cargo.toml`, with its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("chat_payload", crate::chat::validate::checks::check),
    ("eio_payload", crate::engineio::packet::checks::check),
    ("eio_session", eio_session::check),
    ("endpoint", endpoint::check),
    ("http_head", crate::http::request::checks::check),
    ("sio_connection", sio_connection::check),
    ("sio_packet", crate::socketio::packet::checks::check),
    ("ws_reader", crate::server::ws_checks::check),
];
