//! Replays every saved fuzz input through the fuzz targets' own checks.
//!
//! For each target of `readrealm_chat::fuzz_checks::TARGETS` this runs every file in
//! `fuzz/regressions/<target>/` (the minimized input of each crash ever found) and in
//! `fuzz/seeds/<target>/` (the small minimized corpus) through the same check function the
//! cargo-fuzz target calls, so a fixed bug that comes back fails `cargo test`. Every failing
//! file is named; a target with no inputs at all fails too (its seeds went missing).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use readrealm_chat::fuzz_checks::{Check, TARGETS};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let check: Check = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let files = inputs(target);
    assert!(!files.is_empty(), "no seeds or regressions for {target}");
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("readable input");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {target} fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn every_target_is_replayed_here() {
    let mut names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut tested = vec![
        "chat_payload",
        "eio_payload",
        "eio_session",
        "endpoint",
        "http_head",
        "sio_connection",
        "sio_packet",
        "ws_reader",
    ];
    tested.sort_unstable();
    assert_eq!(names, tested, "add a test below for each new target");
}

#[test]
fn chat_payload() {
    replay("chat_payload");
}

#[test]
fn eio_payload() {
    replay("eio_payload");
}

#[test]
fn eio_session() {
    replay("eio_session");
}

#[test]
fn http_head() {
    replay("http_head");
}

#[test]
fn endpoint() {
    replay("endpoint");
}

#[test]
fn sio_connection() {
    replay("sio_connection");
}

#[test]
fn sio_packet() {
    replay("sio_packet");
}

#[test]
fn ws_reader() {
    replay("ws_reader");
}
