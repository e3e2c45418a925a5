//! The `readrealm-chat` command line as an operator meets it: flags, `READREALM_*` variables
//! and the `--config` file layered (defaults < file < environment < flags), read back with
//! `--print-config`; bad values refused with exit code 2 and a message naming the flag and its
//! variable; `--help` listing every flag; and the log lines in both `--log-format`s.
//!
//! Each test runs the real binary with a clean environment (no `READREALM_*` of the caller's).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The binary, with no `READREALM_*` variable inherited.
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("READREALM_") {
            command.env_remove(key);
        }
    }
    command
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "readrealm-cli-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> Output {
    command.output().expect("readrealm-chat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--print-config`'s document, parsed.
fn printed(output: &Output) -> toml::Table {
    assert!(
        output.status.success(),
        "--print-config failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
        .parse()
        .expect("--print-config is TOML")
}

#[test]
fn print_config_layers_defaults_file_environment_and_flags() {
    let dir = temp_dir("layers");
    let file = dir.join("chat.toml");
    std::fs::write(
        &file,
        "ping-interval = 300\nping-timeout = 400\nmax-rooms = 7\nconnect-timeout = 900\n\
         log-format = \"json\"\n",
    )
    .unwrap();
    let output = run(binary()
        .env("READREALM_CONFIG", &file)
        .env("READREALM_PING_TIMEOUT", "450")
        .env("READREALM_MAX_ROOMS", "8")
        .env("READREALM_LOG", "debug")
        .args(["--max-rooms", "9", "--log=warn", "--print-config"]));
    let settings = printed(&output);
    // The file over the defaults.
    assert_eq!(settings["ping-interval"].as_integer(), Some(300));
    assert_eq!(settings["connect-timeout"].as_integer(), Some(900));
    assert_eq!(settings["log-format"].as_str(), Some("json"));
    // The environment over the file.
    assert_eq!(settings["ping-timeout"].as_integer(), Some(450));
    // Flags over the environment.
    assert_eq!(settings["max-rooms"].as_integer(), Some(9));
    assert_eq!(settings["log"].as_str(), Some("warn"));
    // The defaults where nothing else speaks.
    assert_eq!(settings["upgrade-timeout"].as_integer(), Some(10_000));
    assert_eq!(settings["max-payload"].as_integer(), Some(1_000_000));
    assert_eq!(settings["listen"].as_str(), Some("0.0.0.0:3000"));
    assert_eq!(settings["sync-writes"].as_bool(), Some(false));
    let said = text(&output.stdout);
    assert!(
        said.contains(&format!("# read from {}", file.display())),
        "{said}"
    );

    // What it printed reads back to the same settings.
    let again = dir.join("again.toml");
    std::fs::write(&again, &output.stdout).unwrap();
    let output = run(binary().arg("--config").arg(&again).arg("--print-config"));
    let reread = printed(&output);
    assert_eq!(reread, settings);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flags, environment variables, and the words the error must contain.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn bad_settings_exit_2_naming_the_flag_and_its_variable() {
    let cases: [Case; 7] = [
        (
            &["--shards", "0"],
            &[],
            &["--shards", "READREALM_SHARDS", "from 1 to 64"],
        ),
        (
            &[],
            &[("READREALM_MAX_PAYLOAD", "12")],
            &["--max-payload", "READREALM_MAX_PAYLOAD", "\"12\""],
        ),
        (
            &["--message-rate", "-1"],
            &[],
            &["--message-rate", "READREALM_MESSAGE_RATE"],
        ),
        (
            &["--log-format", "xml"],
            &[],
            &["--log-format", "READREALM_LOG_FORMAT", "logfmt or json"],
        ),
        (&["--nope", "1"], &[], &["--nope"]),
        (&["--ping-interval"], &[], &["--ping-interval"]),
        (
            &[],
            &[("READREALM_CONFIG", "/nonexistent/readrealm.toml")],
            &["/nonexistent/readrealm.toml"],
        ),
    ];
    for (args, env, expected) in cases {
        let mut command = binary();
        command.args(args).arg("--print-config");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = run(&mut command);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: printed a config");
        for word in expected {
            assert!(
                stderr.contains(word),
                "{args:?} {env:?}: {word} in {stderr}"
            );
        }
    }
}

#[test]
fn help_lists_every_flag_with_its_variable() {
    let output = run(binary().arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    // Wrapped lines joined, so a help text or `[env: …]` split over two lines still reads as one.
    let help = text(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for flag in [
        "listen",
        "data-dir",
        "sync-writes",
        "shards",
        "cors-origin",
        "ping-interval",
        "ping-timeout",
        "connect-timeout",
        "max-payload",
        "upgrade-timeout",
        "max-connections",
        "max-connections-per-ip",
        "trusted-proxies",
        "request-timeout",
        "max-head-bytes",
        "max-headers",
        "max-json-depth",
        "max-json-elements",
        "max-attachments",
        "max-namespaces",
        "max-outbound-bytes",
        "max-rooms",
        "message-rate",
        "message-burst",
        "max-content-length",
        "config",
        "log",
        "log-format",
        "client-js",
    ] {
        let env = format!("READREALM_{}", flag.replace('-', "_").to_uppercase());
        assert!(help.contains(&format!("--{flag} <")), "--{flag} in {help}");
        assert!(help.contains(&format!("[env: {env}")), "{env} in {help}");
    }
    assert!(help.contains("--print-config"), "{help}");
    assert!(
        help.contains("backup --data-dir DIR --to NEW_DIR"),
        "{help}"
    );
}

/// The lines the server logs on stderr when started with `args`, up to and with the first
/// that names `event`.
fn log_lines_until(args: &[&str], event: &str) -> Vec<String> {
    let dir = temp_dir("log");
    let mut child = binary()
        .args(["--listen", "127.0.0.1:0", "--shards", "1"])
        .arg("--data-dir")
        .arg(&dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("readrealm-chat starts");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("a log line");
        let found = line.contains(event);
        lines.push(line);
        if found || lines.len() == 20 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    lines
}

#[test]
fn log_lines_are_logfmt_by_default_and_json_objects_on_request() {
    let lines = log_lines_until(&[], "listening");
    for line in &lines {
        assert!(
            line.starts_with("ts=20") && line.contains(" level="),
            "{line}"
        );
    }
    let line = lines.last().expect("a line");
    assert!(
        line.contains(" level=info event=listening addr=127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains(" shards=1 "), "{line}");

    let lines = log_lines_until(&["--log-format", "json"], "listening");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("each line one JSON object"))
        .collect();
    let (line, object) = (lines.last().expect("a line"), objects.last().expect("one"));
    assert_eq!(object["level"], "INFO", "{line}");
    assert_eq!(object["event"], "listening", "{line}");
    assert_eq!(object["shards"], "1", "{line}");
    let addr = object["addr"].as_str().expect("addr");
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let ts = object["timestamp"].as_str().expect("timestamp");
    assert!(
        ts.starts_with("20") && ts.ends_with('Z') && ts.len() == 24,
        "{ts}"
    );

    // The level flag still filters: at error nothing is logged while starting.
    let dir = temp_dir("quiet");
    let mut child = binary()
        .args(["--listen", "127.0.0.1:0", "--shards", "1", "--log", "error"])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("readrealm-chat starts");
    let mut said = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut said)
        .expect("listening on stdout");
    assert!(said.starts_with("listening on "), "{said}");
    let _ = child.kill();
    let output = child.wait_with_output().expect("exit");
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
