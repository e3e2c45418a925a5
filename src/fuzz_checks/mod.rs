//! The checks behind the cargo-fuzz targets in `fuzz/`, one function per target.
//!
//! Owns what every fuzz target asserts, so that the fuzzer and `cargo test` run the same
//! code: a target in `fuzz/fuzz_targets/` is a one-line call of a function here, and
//! `tests/fuzz_regressions.rs` feeds every saved crash input (`fuzz/regressions/<target>/`) and
//! every corpus seed (`fuzz/seeds/<target>/`) through the same function on every test run.
//! Each function takes the raw fuzzer bytes, never returns an error and panics exactly when
//! an invariant of the code under test is broken; each submodule's doc says how it reads its
//! input and what it asserts.
//!
//! Not part of the server: nothing outside the fuzz targets and the regression test calls
//! it (hence `#[doc(hidden)]` in `lib.rs`). It only drives sans-IO code (codecs, the
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

pub mod chat_payload;
pub mod eio_payload;
pub mod eio_session;
pub mod endpoint;
pub mod http_head;
pub mod input;
pub mod json;
pub mod sio_connection;
pub mod sio_packet;

/// A fuzz target's check: panics when an invariant fails.
pub type Check = fn(&[u8]);

/// Every target, by its name in `fuzz/Cargo.toml`, with its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("chat_payload", chat_payload::check),
    ("eio_payload", eio_payload::check),
    ("eio_session", eio_session::check),
    ("endpoint", endpoint::check),
    ("http_head", http_head::check),
    ("sio_connection", sio_connection::check),
    ("sio_packet", sio_packet::check),
];
