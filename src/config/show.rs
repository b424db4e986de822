//! The configuration as flat `key → value` pairs: what `config show` starts from (the command
//! itself lives above, in `cli::show`, because it shows the exporters' resolved values too) and
//! what reloads compare. Secrets are already redacted by [`super::Secret`]'s serialization.

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
