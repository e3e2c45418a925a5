//! Fuzz target `ws_reader`: the check is in `readrealm_chat::server::ws_checks` (its module doc
//! says what is asserted and how the input is read), shared with `tests/fuzz_regressions.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| readrealm_chat::server::ws_checks::check(data));
