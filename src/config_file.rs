//! The optional TOML settings file, the layering of defaults, file, environment and flags, and
//! the effective settings printed back as TOML (`--print-config`).
//!
//! The file's keys are the flag names without `--` (`ping-interval = 25000`), the cluster
//! ones also in a `[cluster]` table without their `cluster-` prefix ([`CLUSTER_TABLE`]); each
//! goes through [`Settings::set`], so a bad value is refused with the same message naming the
//! setting as a bad flag. Precedence, lowest first: defaults, the file, `READREALM_*`
//! environment variables, flags. The file is named by `--config FILE` or `READREALM_CONFIG`;
//! [`load_settings`] puts the layers together.
//!
//! This module depends on [`crate::config`] (the settings, their flags and their one
//! validator) and never the reverse: `config` knows no file.

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::config::{format_duration, settings_flags, Flags, Settings, MASKED_PASSWORD};

/// The binary's settings from its command line (`args`, the program name first) and the
/// environment, over the TOML file they name, over the defaults; and the parsed [`Flags`]
/// (for `--print-config`).
///
/// # Errors
///
/// A [`clap::Error`] to print with [`clap::Error::exit`]: `--help` and `--version` (exit 0),
/// an unknown flag or a flag without its value (clap's message, exit 2), a bad value
/// (the message of [`Settings::set`], naming the flag and its environment variable; exit 2),
/// or an unreadable or bad settings file (exit 2).
pub fn load_settings<I, T>(args: I) -> Result<(Flags, Settings), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Flags::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let flags = Flags::from_arg_matches(&matches)?;
    let invalid = |e: String| {
        command
            .clone()
            .error(clap::error::ErrorKind::ValueValidation, e)
    };
    let mut settings = Settings::default();
    // Lowest after the defaults: the TOML file named by --config or READREALM_CONFIG.
    if let Some(path) = &flags.config {
        if path.is_empty() {
            return Err(invalid(
                "invalid --config (env READREALM_CONFIG): \"\" (a file path)".into(),
            ));
        }
        load(&mut settings, Path::new(path)).map_err(invalid)?;
    }
    // Then each flag's value, from the command line or else its environment variable.
    settings.apply_flags(&matches).map_err(invalid)?;
    Ok((flags, settings))
}

/// Apply every key of the TOML file at `path` through [`Settings::set`].
pub fn load(settings: &mut Settings, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    apply_toml(settings, &text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    settings.ops.config = Some(path.to_path_buf());
    Ok(())
}

/// The TOML table holding the `--cluster-*` settings, keyed without the `cluster-` prefix
/// (`[cluster]` then `redis = "redis://…"`); the flat keys (`cluster-redis = …`) are read too.
pub const CLUSTER_TABLE: &str = "cluster";

/// Apply the keys of a TOML document; the error names the key.
pub fn apply_toml(settings: &mut Settings, text: &str) -> Result<(), String> {
    let flags = settings_flags();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    // (key as written, flag, value): the top-level keys, then the [cluster] table's.
    let mut entries = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(cluster) if key == CLUSTER_TABLE => {
                for (sub, value) in cluster {
                    let written = format!("{CLUSTER_TABLE}.{sub}");
                    entries.push((written, format!("--{CLUSTER_TABLE}-{sub}"), value));
                }
            }
            _ => entries.push((key.clone(), format!("--{key}"), value)),
        }
    }
    let mut applied: Vec<&str> = Vec::new();
    for (key, flag, value) in &entries {
        if flag == "--config" || !flags.iter().any(|(f, _)| f == flag) {
            return Err(format!("unknown setting {key:?}"));
        }
        if applied.contains(&flag.as_str()) {
            return Err(format!(
                "{key}: set twice (as a key and in [{CLUSTER_TABLE}])"
            ));
        }
        applied.push(flag);
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{key}: a list must hold strings only"))?
                .join(","),
            _ => return Err(format!("{key}: expected a string, number or boolean")),
        };
        settings
            .set(flag, &value)
            .map_err(|e| format!("key {key}: {e}"))?;
    }
    Ok(())
}

/// The effective value of a setting, as `set` reads it; None for an unknown flag or a
/// setting with no value (no client script found).
pub fn get(settings: &Settings, flag: &str) -> Option<String> {
    let server = &settings.server;
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    Some(match flag {
        "--listen" => server.listen.to_string(),
        "--data-dir" => settings.data_dir.display().to_string(),
        "--sync-writes" => settings.sync_writes.to_string(),
        "--shards" => server.shards.to_string(),
        "--cors-origin" => match &server.cors {
            crate::http::cors::CorsPolicy::AnyOrigin => "*".to_owned(),
            crate::http::cors::CorsPolicy::Disabled => "none".to_owned(),
            crate::http::cors::CorsPolicy::Origins(origins) => origins.join(","),
        },
        "--ping-interval" => ms(server.ping_interval),
        "--ping-timeout" => ms(server.ping_timeout),
        "--connect-timeout" => ms(server.connect_timeout),
        "--upgrade-timeout" => ms(server.upgrade_timeout),
        "--recovery-window" => ms(server.recovery_window),
        "--request-timeout" => ms(server.request_timeout),
        "--write-delay" => crate::config::format_write_delay(server.write_delay),
        "--max-payload" => server.max_payload.to_string(),
        "--max-connections" => server.max_connections.to_string(),
        "--max-connections-per-ip" => server.max_connections_per_ip.to_string(),
        "--trusted-proxies" => server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "--max-head-bytes" => server.max_head_bytes.to_string(),
        "--max-headers" => server.max_headers.to_string(),
        "--max-json-depth" => server.max_json_depth.to_string(),
        "--max-json-elements" => server.max_json_elements.to_string(),
        "--max-attachments" => server.max_attachments.to_string(),
        "--max-namespaces" => server.max_namespaces_per_connection.to_string(),
        "--max-outbound-bytes" => server.max_outbound_bytes.to_string(),
        "--max-rooms" => settings.chat.max_rooms_per_connection.to_string(),
        "--message-rate" => settings.chat.message_rate.to_string(),
        "--message-burst" => settings.chat.message_burst.to_string(),
        "--max-content-length" => settings.chat.max_content_chars.to_string(),
        "--auth-jwt-secret-file" => settings.auth.secret_file.as_ref()?.display().to_string(),
        "--auth-jwt-public-key-file" => settings
            .auth
            .public_key_file
            .as_ref()?
            .display()
            .to_string(),
        "--auth-jwt-issuer" => settings.auth.issuer.clone()?,
        "--auth-jwt-audience" => settings.auth.audience.clone()?,
        "--auth-jwt-leeway" => settings.auth.leeway_secs.to_string(),
        "--log" => settings.ops.log.to_string(),
        "--log-format" => settings.ops.log_format.to_string(),
        "--client-js" => settings.ops.client_js_path()?.display().to_string(),
        "--config" => settings.ops.config.as_ref()?.display().to_string(),
        // The URL only with its password masked: --print-config never shows the secret.
        "--cluster-redis" => settings.cluster.as_ref()?.redis_url_masked(),
        "--cluster-redis-ca" => settings
            .cluster_values()
            .redis_ca
            .as_ref()?
            .path()
            .display()
            .to_string(),
        "--cluster-partitions" => settings.cluster_values().partitions.to_string(),
        "--cluster-retention" => format_duration(settings.cluster_values().retention),
        "--cluster-node-ttl" => ms(settings.cluster_values().node_ttl),
        "--cluster-timeout" => ms(settings.cluster_values().timeout),
        "--cluster-min-replicas" => settings.cluster_values().min_replicas.to_string(),
        _ => return None,
    })
}

/// The effective settings as a TOML document that `--config` reads back to the same
/// settings (`--print-config`).
pub fn to_toml(settings: &Settings) -> String {
    let mut out =
        String::from("# ReadRealm Chat: effective settings (defaults < file < env < flags)\n");
    if let Some(path) = &settings.ops.config {
        out.push_str(&format!("# read from {}\n", path.display()));
    }
    let cluster_prefix = format!("--{CLUSTER_TABLE}-");
    let (cluster, top): (Vec<_>, Vec<_>) = settings_flags()
        .into_iter()
        .filter(|(flag, _)| flag != "--config")
        .partition(|(flag, _)| flag.starts_with(&cluster_prefix));
    let entry = |out: &mut String, flag: &str, key: &str, help: &str| {
        out.push_str(&format!("\n# {help}\n"));
        match get(settings, flag) {
            Some(value) => out.push_str(&format!("{key} = {}\n", toml_value(&value))),
            None => out.push_str(&format!("# {key} = (not set)\n")),
        }
    };
    for (flag, help) in &top {
        entry(&mut out, flag, flag.trim_start_matches('-'), help);
    }
    // A table comes after every top-level key: the cluster settings last.
    let mut table = format!("\n[{CLUSTER_TABLE}]\n");
    if settings.cluster.is_none() {
        table.push_str("# Not a cluster member: one process, no Redis (set redis to join one).\n");
    } else if settings.cluster.as_ref().is_some_and(|c| c.has_password()) {
        table.push_str(&format!(
            "# The Redis password is shown as {MASKED_PASSWORD}: put the real one back, or give \
             it in READREALM_CLUSTER_REDIS.\n"
        ));
    }
    out.push_str(&table);
    for (flag, help) in &cluster {
        entry(
            &mut out,
            flag,
            flag.trim_start_matches(&cluster_prefix),
            help,
        );
    }
    out
}

/// A value as TOML: numbers and booleans bare, everything else a quoted string.
fn toml_value(value: &str) -> String {
    let number = value.parse::<i64>().is_ok()
        || (value.parse::<f64>().is_ok_and(f64::is_finite)
            && value.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if number || value == "true" || value == "false" {
        value.to_owned()
    } else {
        toml::Value::String(value.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Level;
    use std::path::PathBuf;
    use std::time::Duration;

    /// [`load_settings`] for `args` after the program name; the error as clap prints it.
    pub(crate) fn from_args(args: &[String]) -> Result<Settings, String> {
        let argv = std::iter::once("readrealm-chat".to_owned()).chain(args.iter().cloned());
        load_settings(argv)
            .map(|(_, settings)| settings)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn file_keys_are_flag_names_and_errors_name_the_key() {
        let mut settings = Settings::default();
        apply_toml(
            &mut settings,
            "ping-interval = 300\nsync-writes = true\ncors-origin = [\"https://a.example\", \"https://b.example\"]\nlog = \"debug\"\nmessage-rate = 2.5\n",
        )
        .unwrap();
        assert_eq!(settings.server.ping_interval, Duration::from_millis(300));
        assert!(settings.sync_writes);
        assert_eq!(settings.ops.log, Level::Debug);
        assert_eq!(settings.chat.message_rate, 2.5);
        assert_eq!(
            get(&settings, "--cors-origin").as_deref(),
            Some("https://a.example,https://b.example")
        );

        let err = apply_toml(&mut Settings::default(), "shards = 0").unwrap_err();
        assert!(
            err.contains("shards") && err.contains("from 1 to 64"),
            "{err}"
        );
        let err = apply_toml(&mut Settings::default(), "ping-intervall = 1").unwrap_err();
        assert!(err.contains("ping-intervall"), "{err}");
        let err = apply_toml(&mut Settings::default(), "config = \"x.toml\"").unwrap_err();
        assert!(err.contains("config"), "{err}");
        let err = apply_toml(&mut Settings::default(), "log = \"loud\"").unwrap_err();
        assert!(
            err.contains("--log") && err.contains("READREALM_LOG"),
            "{err}"
        );
        assert!(apply_toml(&mut Settings::default(), "listen = ").is_err());
        assert!(apply_toml(&mut Settings::default(), "[section]\nx = 1").is_err());
    }

    #[test]
    fn every_flag_has_a_value_and_print_config_reads_back() {
        let mut settings = Settings::default();
        settings.ops.client_js = Some(PathBuf::from("/srv/socket.io.min.js"));
        settings.set("--cors-origin", "https://a.example").unwrap();
        settings.set("--message-burst", "7").unwrap();
        settings
            .set("--auth-jwt-secret-file", "/etc/chat/jwt-secret")
            .unwrap();
        settings
            .set("--auth-jwt-public-key-file", "/etc/chat/jwt.pub.pem")
            .unwrap();
        settings
            .set("--auth-jwt-issuer", "https://api.readrealm.example")
            .unwrap();
        settings
            .set("--auth-jwt-audience", "readrealm-chat")
            .unwrap();
        settings
            .set("--cluster-redis", "redis://chat:s3cret-pw@10.0.0.9:6379/1")
            .unwrap();
        settings.set("--cluster-retention", "36h").unwrap();
        // --cluster-redis-ca is read when set: a real (throwaway) CA certificate.
        let ca = std::env::temp_dir().join(format!("rr-print-ca-{}.pem", std::process::id()));
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        settings
            .set("--cluster-redis-ca", ca.to_str().unwrap())
            .unwrap();
        for (flag, _) in settings_flags() {
            if flag != "--config" {
                let value = get(&settings, &flag);
                assert!(value.is_some(), "{flag} has no getter in config_file::get");
            }
        }
        let printed = to_toml(&settings);
        let mut again = Settings::default();
        apply_toml(&mut again, &printed).unwrap();
        assert_eq!(to_toml(&again), printed);
        for (flag, _) in settings_flags() {
            assert_eq!(get(&again, &flag), get(&settings, &flag), "{flag}");
        }
        // The cluster settings are in a [cluster] table, the password masked.
        let table: toml::Table = printed.parse().unwrap();
        let cluster = table["cluster"].as_table().unwrap();
        assert_eq!(
            cluster["redis"].as_str(),
            Some("redis://chat:***@10.0.0.9:6379/1")
        );
        assert_eq!(cluster["retention"].as_str(), Some("36h"));
        assert_eq!(cluster["partitions"].as_integer(), Some(64));
        assert_eq!(cluster["redis-ca"].as_str(), ca.to_str());
        std::fs::remove_file(&ca).unwrap();
        assert!(!table.contains_key("cluster-redis"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn cluster_settings_come_from_a_table_or_flat_keys_but_not_both() {
        let mut settings = Settings::default();
        apply_toml(
            &mut settings,
            "shards = 2\n[cluster]\nredis = \"redis://10.0.0.9:6379\"\npartitions = 16\n\
             retention = \"2d\"\nnode-ttl = 3000\ntimeout = 500\nmin-replicas = 1\n",
        )
        .unwrap();
        let cluster = settings.cluster.clone().unwrap();
        assert_eq!(cluster.redis_url, "redis://10.0.0.9:6379");
        assert_eq!(cluster.partitions, 16);
        assert_eq!(cluster.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(cluster.node_ttl, Duration::from_millis(3000));
        assert_eq!(cluster.timeout, Duration::from_millis(500));
        assert_eq!(cluster.min_replicas, 1);
        assert_eq!(settings.server.shards, 2);

        let mut flat = Settings::default();
        apply_toml(
            &mut flat,
            "cluster-redis = \"redis://10.0.0.9:6379\"\ncluster-partitions = 16\n",
        )
        .unwrap();
        assert_eq!(flat.cluster.unwrap().partitions, 16);

        let err = apply_toml(
            &mut Settings::default(),
            "cluster-partitions = 8\n[cluster]\npartitions = 16\n",
        )
        .unwrap_err();
        assert!(err.contains("partitions") && err.contains("twice"), "{err}");
        let err = apply_toml(&mut Settings::default(), "[cluster]\npartition = 16\n").unwrap_err();
        assert!(err.contains("cluster.partition"), "{err}");
        let err = apply_toml(&mut Settings::default(), "[cluster]\nnode-ttl = 10\n").unwrap_err();
        assert!(
            err.contains("cluster.node-ttl") && err.contains("READREALM_CLUSTER_NODE_TTL"),
            "{err}"
        );
        let err = apply_toml(
            &mut Settings::default(),
            "[cluster]\nredis = \"redis://u:s3cret-pw@0.0.0.0:1\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("cluster.redis") && !err.contains("s3cret"),
            "{err}"
        );
        // Without a URL the file's knobs are kept but the node is not a cluster member.
        let mut knobs = Settings::default();
        apply_toml(&mut knobs, "[cluster]\npartitions = 16\n").unwrap();
        assert_eq!(knobs.cluster, None);
        assert_eq!(get(&knobs, "--cluster-partitions").as_deref(), Some("16"));
        assert_eq!(get(&knobs, "--cluster-redis"), None);
    }

    #[test]
    fn the_file_gives_the_knobs_and_the_environment_the_url() {
        let dir = std::env::temp_dir().join(format!("readrealm-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.toml");
        std::fs::write(&path, "[cluster]\npartitions = 32\ntimeout = 700\n").unwrap();
        let args: Vec<String> = vec![
            "--config".into(),
            path.display().to_string(),
            "--cluster-redis".into(),
            "redis://10.0.0.9:6379".into(),
            "--cluster-timeout=900".into(),
        ];
        let cluster = from_args(&args).unwrap().cluster.unwrap();
        assert_eq!(cluster.redis_url, "redis://10.0.0.9:6379");
        assert_eq!(cluster.partitions, 32, "the file's");
        assert_eq!(cluster.timeout, Duration::from_millis(900), "the flag's");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("readrealm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.toml");
        std::fs::write(
            &path,
            "ping-interval = 300\nping-timeout = 400\nmax-rooms = 7\n",
        )
        .unwrap();
        let args: Vec<String> = vec![
            "--config".into(),
            path.display().to_string(),
            "--ping-timeout=500".into(),
        ];
        let settings = from_args(&args).unwrap();
        assert_eq!(settings.server.ping_interval, Duration::from_millis(300));
        assert_eq!(settings.server.ping_timeout, Duration::from_millis(500));
        assert_eq!(settings.chat.max_rooms_per_connection, 7);
        assert_eq!(settings.ops.config.as_deref(), Some(path.as_path()));
        std::fs::write(&path, "max-rooms = 0\n").unwrap();
        let err = from_args(&args).unwrap_err();
        assert!(
            err.contains("max-rooms") && err.contains("chat.toml"),
            "{err}"
        );
        let missing = vec![
            "--config".into(),
            dir.join("nope.toml").display().to_string(),
        ];
        assert!(from_args(&missing).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
