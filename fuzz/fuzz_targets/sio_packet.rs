//! Fuzz target `sio_packet`: the checks are in `readrealm_chat::fuzz_checks::sio_packet` (its module doc
//! says what is asserted and how the input is read), shared with `tests/fuzz_regressions.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| readrealm_chat::fuzz_checks::sio_packet::check(data));
