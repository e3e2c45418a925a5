//! Command-line options: `--name value` pairs and bare `--flag`s, parsed by hand so the tool
//! stays a small build. Owns only parsing and typed look-ups with defaults; each scenario
//! decides which names it reads.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed options of one invocation.
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

/// Option names that take no value.
const FLAGS: &[&str] = &["json", "check", "child", "help", "quiet"];

impl Args {
    /// Parses `--name value` and `--name=value` pairs and the bare flags in [`FLAGS`].
    pub fn parse(items: &[String]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < items.len() {
            let item = &items[i];
            let name = item
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {item:?}"))?;
            if let Some((k, v)) = name.split_once('=') {
                values.insert(k.to_string(), v.to_string());
            } else if FLAGS.contains(&name) {
                flags.push(name.to_string());
            } else {
                let v = items
                    .get(i + 1)
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v.clone());
                i += 1;
            }
            i += 1;
        }
        Ok(Args { values, flags })
    }

    /// True when the bare flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// The raw value of `--name`, if given.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as `T`, or `default` when absent; exits on a bad value.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("loadgen: bad value {v:?} for --{name}");
                std::process::exit(2)
            }),
        }
    }
}
