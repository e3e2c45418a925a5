//! The cluster-mode settings as an operator meets them (`--cluster-*`, their
//! `READREALM_CLUSTER_*` variables and the TOML `[cluster]` table; docs/OPERATIONS.md
//! "Cluster"): layered like every setting, shown by `--print-config` with the Redis password
//! masked, listed by `--help`; a bad value stops the start with exit code 2 and a message
//! naming the flag and its variable but never the password.
//!
//! Each test runs the real binary with a clean environment (no `READREALM_*` of the caller's).
//! Nothing here talks to Redis: these are the settings only.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A password no output may ever contain.
const PASSWORD: &str = "never-print-me-7f3a";

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
        "readrealm-cluster-cfg-{tag}-{:016x}",
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

/// `--print-config`'s `[cluster]` table and the whole document's text.
fn printed_cluster(output: &Output) -> (toml::Table, String) {
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table: toml::Table = stdout.parse().expect("--print-config is TOML");
    let cluster = table["cluster"]
        .as_table()
        .expect("a [cluster] table")
        .clone();
    (cluster, stdout)
}

#[test]
fn print_config_layers_the_cluster_settings_and_masks_the_password() {
    let dir = temp_dir("print");
    let file = dir.join("chat.toml");
    std::fs::write(
        &file,
        "[cluster]\npartitions = 16\nretention = \"2d\"\nnode-ttl = 3000\ntimeout = 700\n",
    )
    .unwrap();
    let url = format!("redis://chat:{PASSWORD}@10.0.0.9:6380/2");
    let output = run(binary()
        .arg("--config")
        .arg(&file)
        .env("READREALM_CLUSTER_REDIS", &url)
        .env("READREALM_CLUSTER_TIMEOUT", "800")
        .env("READREALM_CLUSTER_MIN_REPLICAS", "1")
        .args(["--cluster-timeout", "900", "--print-config"]));
    let (cluster, stdout) = printed_cluster(&output);
    assert!(
        !stdout.contains(PASSWORD),
        "the password is printed:\n{stdout}"
    );
    assert!(!text(&output.stderr).contains(PASSWORD));
    assert_eq!(
        cluster["redis"].as_str(),
        Some("redis://chat:***@10.0.0.9:6380/2"),
        "the environment's URL, masked"
    );
    assert_eq!(cluster["partitions"].as_integer(), Some(16), "the file's");
    assert_eq!(cluster["retention"].as_str(), Some("2d"), "the file's");
    assert_eq!(cluster["node-ttl"].as_integer(), Some(3000), "the file's");
    assert_eq!(cluster["min-replicas"].as_integer(), Some(1), "the env's");
    assert_eq!(cluster["timeout"].as_integer(), Some(900), "the flag's");
    assert!(
        stdout.contains("The Redis password is shown as ***"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_redis_url_the_node_is_not_a_cluster_member_and_shows_the_defaults() {
    let output = run(binary().arg("--print-config"));
    let (cluster, stdout) = printed_cluster(&output);
    assert!(!cluster.contains_key("redis"), "{stdout}");
    assert!(stdout.contains("# redis = (not set)"), "{stdout}");
    assert_eq!(cluster["partitions"].as_integer(), Some(64));
    assert_eq!(cluster["retention"].as_str(), Some("7d"));
    assert_eq!(cluster["node-ttl"].as_integer(), Some(5000));
    assert_eq!(cluster["timeout"].as_integer(), Some(1000));
    assert_eq!(cluster["min-replicas"].as_integer(), Some(0));
    // An empty variable turns a file's URL off.
    let dir = temp_dir("off");
    let file = dir.join("chat.toml");
    std::fs::write(&file, "[cluster]\nredis = \"redis://10.0.0.9:6379\"\n").unwrap();
    let output = run(binary()
        .arg("--config")
        .arg(&file)
        .env("READREALM_CLUSTER_REDIS", "")
        .arg("--print-config"));
    let (cluster, _) = printed_cluster(&output);
    assert!(!cluster.contains_key("redis"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flags, environment variables, and the words the error must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn bad_cluster_settings_exit_2_naming_the_flag_but_not_the_password() {
    let wildcard = format!("redis://chat:{PASSWORD}@0.0.0.0:6379");
    let wrong_scheme = format!("https://chat:{PASSWORD}@redis.internal");
    let cases: Vec<Case> = vec![
        (
            vec!["--cluster-redis", "localhost:6379"],
            vec![],
            vec!["READREALM_CLUSTER_REDIS", "redis:// or rediss://"],
        ),
        (
            vec![],
            vec![("READREALM_CLUSTER_REDIS", wildcard.as_str())],
            vec![
                "--cluster-redis",
                "redis://chat:***@0.0.0.0:6379",
                "wildcard",
            ],
        ),
        (
            vec!["--cluster-redis", wrong_scheme.as_str()],
            vec![],
            vec!["--cluster-redis", "redis:// or rediss://"],
        ),
        (
            vec!["--cluster-partitions", "5000"],
            vec![],
            vec!["READREALM_CLUSTER_PARTITIONS", "from 1 to 4096"],
        ),
        (
            vec![],
            vec![("READREALM_CLUSTER_NODE_TTL", "500")],
            vec!["--cluster-node-ttl", "at least 1000"],
        ),
        (
            vec!["--cluster-retention", "1w"],
            vec![],
            vec!["READREALM_CLUSTER_RETENTION", "\"1w\""],
        ),
        (
            vec!["--cluster-timeout", "0"],
            vec![],
            vec!["READREALM_CLUSTER_TIMEOUT"],
        ),
        (
            vec!["--cluster-min-replicas", "some"],
            vec![],
            vec!["READREALM_CLUSTER_MIN_REPLICAS"],
        ),
    ];
    for (args, env, expected) in cases {
        let mut command = binary();
        command.args(&args).arg("--print-config");
        for (key, value) in &env {
            command.env(key, value);
        }
        let output = run(&mut command);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: printed a config");
        assert!(!stderr.contains(PASSWORD), "{args:?}: {stderr}");
        for word in expected {
            assert!(
                stderr.contains(word),
                "{args:?} {env:?}: {word} in {stderr}"
            );
        }
    }
    // The same check from the file names the key.
    let dir = temp_dir("bad");
    let file = dir.join("chat.toml");
    std::fs::write(&file, format!("[cluster]\nredis = \"{wildcard}\"\n")).unwrap();
    let output = run(binary().arg("--config").arg(&file).arg("--print-config"));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cluster.redis") && !stderr.contains(PASSWORD),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_lists_the_cluster_flags_with_their_variables() {
    let output = run(binary().arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for flag in [
        "cluster-redis",
        "cluster-partitions",
        "cluster-retention",
        "cluster-node-ttl",
        "cluster-timeout",
        "cluster-min-replicas",
    ] {
        let env = format!("READREALM_{}", flag.replace('-', "_").to_uppercase());
        assert!(help.contains(&format!("--{flag} <")), "--{flag} in {help}");
        assert!(help.contains(&format!("[env: {env}")), "{env} in {help}");
    }
}
