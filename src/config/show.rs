//! The configuration as flat `key → value` pairs: what `config show` starts from (the command
//! itself lives above, in `cli::show`, because it shows the exporters' and the alerts' resolved
//! values too) and what reloads compare. Secrets are already redacted by [`super::Secret`]'s
//! serialization. [`Effective`] is one resolved value: the parts that fill in unset keys
//! (exporters, alert thresholds, sinks) return them from the very function they run with, so
//! what is shown is what runs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Config;

/// The configuration as (dotted key, value) pairs in key order; secrets already redacted.
/// Objects are walked; scalars and arrays are leaves.
pub fn leaves(config: &Config) -> Vec<(String, Value)> {
    let tree = serde_json::to_value(config).expect("config serializes");
    let mut out = Vec::new();
    collect_leaves("", &tree, &mut out);
    out
}

fn collect_leaves(prefix: &str, node: &Value, out: &mut Vec<(String, Value)>) {
    match node {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// The configuration as `key → value` lines (secrets already redacted by serialization).
pub fn flatten(config: &Config) -> BTreeMap<String, String> {
    leaves(config)
        .into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect()
}

/// Where an effective setting came from. `config show` prints it next to the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The value at this configuration key: the file, a variable or the key's own default
    /// (the figment knows which).
    Key(&'static str),
    /// The default of an unset key, filled in where it is used.
    Default,
    /// Filled in by a preset; `from` is the key the value itself is read from (the license
    /// key, the agent's host), if any.
    Preset {
        preset: &'static str,
        from: Option<&'static str>,
    },
    /// Decided from other settings, in words (`on because an endpoint or preset is set`).
    Derived(&'static str),
    /// Computed from another key's value (`1.5 × maxMemoryUsage`), whose source is shown too.
    From {
        how: &'static str,
        key: &'static str,
    },
}

/// One effective setting, under the configuration key it resolves.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub key: String,
    pub value: serde_json::Value,
    pub origin: Origin,
}

impl Effective {
    pub fn new(key: &str, value: impl Into<serde_json::Value>, origin: Origin) -> Self {
        Effective {
            key: key.to_string(),
            value: value.into(),
            origin,
        }
    }
}
