//! Fuzz target `sio_packet`: the checks are in `readrealm_chat::socketio::packet::checks` (its module doc
//! says what is asserted and how the input is read), shared with `tests/fuzz_regressions.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| readrealm_chat::socketio::packet::checks::check(data));
