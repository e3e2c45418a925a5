//! Fuzz target `chat_payload`: the checks are in `readrealm_chat::chat::validate::checks` (its module doc
//! says what is asserted and how the input is read), shared with `tests/fuzz_regressions.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| readrealm_chat::chat::validate::checks::check(data));
