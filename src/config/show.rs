//! `codex-sentinel config show`: the effective configuration, one key a line, with where each
//! value came from. Secrets are already redacted by [`super::Secret`]'s serialization.

use std::collections::BTreeMap;

use figment::Figment;
use serde_json::{Map, Value};

use super::{source_of, Config};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    /// `key = value    # source`
    Text,
    /// `{"key": {"value": …, "source": "…"}}`
    Json,
}

/// Renders the effective configuration.
pub fn render_show(config: &Config, fig: &Figment, format: ShowFormat) -> String {
    let leaves = leaves(config);
    match format {
        ShowFormat::Text => {
            let width = leaves
                .iter()
                .map(|(k, v)| k.len() + v.to_string().len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for (key, value) in &leaves {
                let shown = value.to_string();
                let pad = width + 4 - key.len() - shown.len();
                out.push_str(&format!(
                    "{key} = {shown}{:pad$}# {}\n",
                    "",
                    source_of(fig, key)
                ));
            }
            out
        }
        ShowFormat::Json => {
            let mut map = Map::new();
            for (key, value) in leaves {
                let source = source_of(fig, &key);
                map.insert(key, serde_json::json!({ "value": value, "source": source }));
            }
            serde_json::to_string_pretty(&Value::Object(map)).expect("json") + "\n"
        }
    }
}

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
