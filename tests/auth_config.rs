//! The token-authentication settings as an operator meets them (`--auth-jwt-*`, their
//! `READREALM_AUTH_JWT_*` variables and TOML keys): `--print-config` names the key file, the
//! issuer, audience and leeway and never the secret; a key file that is missing, empty, not a
//! public key, or set together with the other kind stops the start with exit code 2 and a
//! message naming the setting and the file but nothing the file holds.
//!
//! Each test runs the real binary with a clean environment (no `READREALM_*` of the caller's).

use std::path::PathBuf;
use std::process::{Command, Output};

const SECRET: &str = "correct-horse-battery-staple-0123456789";

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
        "readrealm-auth-{tag}-{:016x}",
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

#[test]
fn print_config_names_the_key_file_and_the_checks_but_no_secret() {
    let dir = temp_dir("print");
    let secret = dir.join("jwt-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let file = dir.join("chat.toml");
    std::fs::write(&file, "auth-jwt-issuer = \"https://api.readrealm.test\"\n").unwrap();
    let output = run(binary()
        .arg("--config")
        .arg(&file)
        .arg("--auth-jwt-secret-file")
        .arg(&secret)
        .args(["--print-config"])
        .env("READREALM_AUTH_JWT_AUDIENCE", "readrealm-chat")
        .env("READREALM_AUTH_JWT_LEEWAY", "5"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(!stdout.contains(SECRET), "the secret is printed:\n{stdout}");
    let table: toml::Table = stdout.parse().expect("--print-config is TOML");
    assert_eq!(
        table["auth-jwt-secret-file"].as_str(),
        Some(secret.to_str().unwrap())
    );
    assert_eq!(
        table["auth-jwt-issuer"].as_str(),
        Some("https://api.readrealm.test")
    );
    assert_eq!(table["auth-jwt-audience"].as_str(), Some("readrealm-chat"));
    assert_eq!(table["auth-jwt-leeway"].as_integer(), Some(5));
    assert!(!table.contains_key("auth-jwt-public-key-file"));
    // The defaults: no key, no checks, 30 s of leeway.
    let output = run(binary().arg("--print-config"));
    let table: toml::Table = text(&output.stdout).parse().unwrap();
    assert!(!table.contains_key("auth-jwt-secret-file"));
    assert!(!table.contains_key("auth-jwt-issuer"));
    assert_eq!(table["auth-jwt-leeway"].as_integer(), Some(30));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_key_files_stop_the_start_with_exit_code_2_naming_no_secret() {
    let dir = temp_dir("bad");
    let secret = dir.join("jwt-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let data = dir.join("data");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--auth-jwt-public-key-file".into(),
                secret.display().to_string(),
            ],
            "--auth-jwt-public-key-file",
        ),
        (
            vec![
                "--auth-jwt-secret-file".into(),
                dir.join("missing").display().to_string(),
            ],
            "cannot read",
        ),
        (
            vec!["--auth-jwt-secret-file".into(), empty.display().to_string()],
            "empty",
        ),
        (
            vec![
                "--auth-jwt-secret-file".into(),
                secret.display().to_string(),
                "--auth-jwt-public-key-file".into(),
                secret.display().to_string(),
            ],
            "both",
        ),
        (
            vec!["--auth-jwt-leeway".into(), "-1".into()],
            "READREALM_AUTH_JWT_LEEWAY",
        ),
    ];
    for (args, expected) in cases {
        let output = run(binary()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(&args));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(SECRET),
            "{args:?} printed the secret: {stderr}"
        );
        assert!(
            !text(&output.stdout).contains("listening"),
            "{args:?} started"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
