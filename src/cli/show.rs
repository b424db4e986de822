//! `codex-sentinel config show`: the effective configuration, one key a line, each value with
//! where it came from. Above the configuration and the parts that fill in its unset keys: the
//! configuration's own values come from [`config::leaves`], the resolved ones from the very
//! functions the parts run with — the exporters' ([`export::effective`]: presets and defaults),
//! the thresholds' ([`limits::effective`]), the sinks' ([`notify::effective`]) and the probes'
//! ([`probes::effective`]). A key still without a value is `null`, shown as `unset`.
//! Secrets are redacted by [`config::Secret`]'s serialization; endpoints by the exporters.

use figment::Figment;
use serde_json::{Map, Value};

use crate::alerts::notify;
use crate::config::renames::{Deprecation, Kind};
use crate::config::{self, source_of, Config, Effective, Origin};
use crate::export;
use crate::monitor::{limits, probes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    /// `key = value    # source`
    Text,
    /// `{"key": {"value": …, "source": "…"}}`
    Json,
}

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub key: String,
    pub value: Value,
    pub source: String,
}

/// The effective configuration in key order: every key of the configuration, the exporters'
/// keys replaced by what the exporters resolved (and their header names added).
pub fn effective(
    config: &Config,
    fig: &Figment,
    deprecations: &[Deprecation],
) -> Result<Vec<Shown>, config::ConfigError> {
    let mut resolved = match export::effective(config) {
        Ok(resolved) => resolved,
        Err((key, value, why)) => {
            let check = config::Check::new(fig);
            check.bad(key, value, &why);
            check.finish()?;
            Vec::new()
        }
    };
    resolved.extend(limits::effective(config));
    resolved.extend(notify::effective(config));
    resolved.extend(probes::effective(config));
    let replaces_headers = resolved
        .iter()
        .any(|e| e.key.starts_with("export.otlp.headers."));
    let mut shown: Vec<Shown> = config::leaves(config)
        .into_iter()
        // The resolved headers (names only) replace the configured ones.
        .filter(|(key, _)| {
            !(replaces_headers
                && (key == "export.otlp.headers" || key.starts_with("export.otlp.headers.")))
        })
        .map(|(key, value)| Shown {
            source: source_of(fig, &key),
            key,
            value,
        })
        // An optional key nobody set and nothing fills in: say so rather than "defaults".
        .map(|mut s| {
            if s.value.is_null() && s.source == config::DEFAULTS_SOURCE {
                s.source = UNSET.into();
            }
            s
        })
        .collect();
    for Effective { key, value, origin } in resolved {
        let source = describe(&origin, fig);
        match shown.iter_mut().find(|s| s.key == key) {
            Some(s) => {
                s.value = value;
                s.source = source;
            }
            None => shown.push(Shown { key, value, source }),
        }
    }
    // A value given under an old name says so next to its source.
    for d in deprecations {
        for s in shown.iter_mut() {
            let renamed = d.source == s.source
                && (d.rename.kind == Kind::Variable
                    || d.rename.kind.keys().contains(&s.key.as_str()));
            if renamed {
                s.source
                    .push_str(&format!(" (deprecated name `{}`)", d.rename.old));
            }
        }
    }
    shown.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(shown)
}

/// The source of a key without a value, set nowhere and filled in by nothing.
pub const UNSET: &str = "unset";

/// An origin in words: `preset newrelic`, `defaults`, the file or the variable, or how a value
/// is derived and where what it is derived from comes from.
fn describe(origin: &Origin, fig: &Figment) -> String {
    match origin {
        Origin::Key(key) => source_of(fig, key),
        Origin::Default => config::DEFAULTS_SOURCE.into(),
        Origin::Preset { preset, from: None } => format!("preset {preset}"),
        Origin::Preset {
            preset,
            from: Some(key),
        } => format!("preset {preset}, value from {}", source_of(fig, key)),
        Origin::Derived(why) => format!("derived: {why}"),
        Origin::From { how, key } => {
            format!("derived: {how}; `{key}` from {}", source_of(fig, key))
        }
    }
}

/// Renders [`effective`]'s lines.
pub fn render(shown: &[Shown], format: ShowFormat) -> String {
    match format {
        ShowFormat::Text => {
            let width = shown
                .iter()
                .map(|s| s.key.len() + s.value.to_string().len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for s in shown {
                let value = s.value.to_string();
                let pad = width + 4 - s.key.len() - value.len();
                out.push_str(&format!("{} = {value}{:pad$}# {}\n", s.key, "", s.source));
            }
            out
        }
        ShowFormat::Json => {
            let mut map = Map::new();
            for s in shown {
                map.insert(
                    s.key.clone(),
                    serde_json::json!({ "value": s.value, "source": s.source }),
                );
            }
            serde_json::to_string_pretty(&Value::Object(map)).expect("json") + "\n"
        }
    }
}
