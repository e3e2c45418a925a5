//! The optional TOML settings file, the layering of defaults, file, environment and flags, and
//! the effective settings printed back as TOML (`--print-config`).
//!
//! The file's keys are the flag names without `--` (`ping-interval = 25000`); each goes
//! through [`Settings::set`], so a bad value is refused with the same message naming the
//! setting as a bad flag. Precedence, lowest first: defaults, the file, `READREALM_*`
//! environment variables, flags. The file is named by `--config FILE` or `READREALM_CONFIG`;
//! [`load_settings`] puts the layers together.
//!
//! This module depends on [`crate::config`] (the settings, their flags and their one
//! validator) and never the reverse: `config` knows no file.

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::config::{settings_flags, Flags, Settings};

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

/// Apply the keys of a TOML document; the error names the key.
pub fn apply_toml(settings: &mut Settings, text: &str) -> Result<(), String> {
    let flags = settings_flags();
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for (key, value) in &table {
        let flag = format!("--{key}");
        if key == "config" || !flags.iter().any(|(f, _)| *f == flag) {
            return Err(format!("unknown setting {key:?}"));
        }
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
            .set(&flag, &value)
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
    for (flag, help) in settings_flags() {
        let key = flag.trim_start_matches('-');
        if flag == "--config" {
            continue;
        }
        out.push_str(&format!("\n# {help}\n"));
        match get(settings, &flag) {
            Some(value) => out.push_str(&format!("{key} = {}\n", toml_value(&value))),
            None => out.push_str(&format!("# {key} = (not set)\n")),
        }
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
