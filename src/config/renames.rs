//! Renamed names that keep working for one release: every old → new name in one table.
//!
//! **When you rename** a preset, an alert rule id or an environment variable, add one row to
//! [`RENAMES`] and one line to `CHANGELOG.md`. Configuration loading then accepts the old name,
//! uses the new one, and reports one [`Deprecation`] per old name in use: logged once at
//! start-up (`run`, `check`) and printed by `config validate`. Delete the row one release after
//! the one named in `since`.
//!
//! Variables are renamed where the environment is read ([`super::env::SpecEnv`]); values (preset
//! names, rule ids) in every layer, file and environment alike, by [`Renamed`], which wraps a
//! figment provider and keeps its metadata, so errors and `config show` still name the file or
//! the variable the value came from.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// What a row of [`RENAMES`] renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An environment variable (`old` and `new` are variable names).
    Variable,
    /// An OTLP preset name (`export.otlp.preset`).
    Preset,
    /// An alert rule id, wherever the configuration lists rule ids.
    RuleId,
}

impl Kind {
    /// The configuration keys whose values (a string, or the strings of a list) hold names of
    /// this kind.
    pub const fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Variable => &[],
            Kind::Preset => &["export.otlp.preset"],
            Kind::RuleId => &["alerting.rules.disabled"],
        }
    }

    /// As the deprecation warning says it.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Variable => "environment variable",
            Kind::Preset => "preset",
            Kind::RuleId => "rule id",
        }
    }
}

/// One renamed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rename {
    pub kind: Kind,
    pub old: &'static str,
    pub new: &'static str,
    /// The release that renamed it; the old name is accepted until the next one.
    pub since: &'static str,
}

/// Every renamed name, oldest first. See the module documentation before adding a row.
#[rustfmt::skip]
pub const RENAMES: &[Rename] = &[
    // The Helm chart, the docs and the binary now all say `datadog`.
    Rename { kind: Kind::Preset, old: "datadog-agent", new: "datadog", since: "0.2.0" },
];

/// An old name found in the configuration: said once at start-up and by `config validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    pub rename: Rename,
    /// Where the old name was found: `environment variable X` or `config file PATH`.
    pub source: String,
}

impl std::fmt::Display for Deprecation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Rename {
            kind,
            old,
            new,
            since,
        } = self.rename;
        match kind {
            Kind::Variable => write!(
                f,
                "environment variable {old} is deprecated since {since}: set {new} instead"
            ),
            _ => write!(
                f,
                "{} `{old}` ({}) is deprecated since {since}: use `{new}` instead",
                kind.noun(),
                self.source
            ),
        }?;
        f.write_str("; the old name stops working in the next release")
    }
}

/// Adds `found` unless the same old name was already reported: one warning per old name.
pub fn note(found: &mut Vec<Deprecation>, deprecation: Deprecation) {
    if !found.iter().any(|d| d.rename == deprecation.rename) {
        found.push(deprecation);
    }
}

/// The rows of `table` that renamed the variable `new`.
pub fn old_variables<'a>(
    table: &'a [Rename],
    new: &'a str,
) -> impl Iterator<Item = &'a Rename> + 'a {
    table
        .iter()
        .filter(move |r| r.kind == Kind::Variable && r.new == new)
}

/// A figment provider with every renamed value of another provider replaced by its new name.
/// Its metadata is the inner provider's, so sources are named as before.
pub struct Renamed {
    metadata: Metadata,
    data: Map<Profile, Dict>,
}

impl Renamed {
    /// Reads `inner` once, renames the old values of [`RENAMES`], and returns what it found.
    /// `None` when `inner` cannot be read (a file that does not parse): merge it as it is, and
    /// its error comes out of the extraction as usual.
    pub fn new(inner: &impl Provider) -> Option<(Self, Vec<Deprecation>)> {
        Self::with_table(inner, RENAMES)
    }

    fn with_table(inner: &impl Provider, table: &[Rename]) -> Option<(Self, Vec<Deprecation>)> {
        let metadata = inner.metadata();
        let mut data = inner.data().ok()?;
        let mut found = Vec::new();
        for (profile, dict) in data.iter_mut() {
            for rename in table.iter().filter(|r| r.kind != Kind::Variable) {
                for key in rename.kind.keys() {
                    let path: Vec<&str> = key.split('.').collect();
                    let Some(value) = find_mut(dict, &path) else {
                        continue;
                    };
                    if rename_in(value, rename) {
                        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                        let source =
                            super::describe_source(&metadata, &Some(profile.clone()), &path);
                        note(
                            &mut found,
                            Deprecation {
                                rename: *rename,
                                source,
                            },
                        );
                    }
                }
            }
        }
        Some((Renamed { metadata, data }, found))
    }
}

fn find_mut<'a>(dict: &'a mut Dict, path: &[&str]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let value = dict.get_mut(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Dict(_, inner) => find_mut(inner, rest),
        _ => None,
    }
}

/// Replaces `rename.old` by `rename.new` in a string or the strings of a list; true if it did.
fn rename_in(value: &mut Value, rename: &Rename) -> bool {
    match value {
        Value::String(tag, s) if s == rename.old => {
            *value = Value::String(*tag, rename.new.to_string());
            true
        }
        Value::Array(_, items) => {
            let mut any = false;
            for item in items {
                any |= rename_in(item, rename);
            }
            any
        }
        _ => false,
    }
}

impl Provider for Renamed {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(self.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format;

    #[test]
    fn every_row_renames_to_a_different_name_once() {
        for (i, r) in RENAMES.iter().enumerate() {
            assert_ne!(r.old, r.new, "{r:?}");
            assert!(
                !RENAMES[..i]
                    .iter()
                    .any(|o| o.kind == r.kind && o.old == r.old),
                "{} renamed twice",
                r.old
            );
            // A chain (a → b, b → c) would need two passes: rename a to c directly.
            assert!(
                !RENAMES.iter().any(|o| o.kind == r.kind && o.old == r.new),
                "{} is renamed again: point {} at the final name",
                r.new,
                r.old
            );
        }
    }

    const TABLE: &[Rename] = &[
        Rename {
            kind: Kind::RuleId,
            old: "old-rule",
            new: "cpu-usage",
            since: "0.2.0",
        },
        Rename {
            kind: Kind::Preset,
            old: "old-preset",
            new: "datadog",
            since: "0.2.0",
        },
    ];

    #[test]
    fn old_values_are_renamed_in_strings_and_lists_once_each_with_their_source() {
        let json = r#"{"export":{"otlp":{"preset":"old-preset"}},
            "alerting":{"rules":{"disabled":["old-rule","memory-usage","old-rule"]}}}"#;
        let file = figment::providers::Json::string(json);
        let (renamed, found) = Renamed::with_table(&file, TABLE).unwrap();
        let config: crate::config::Config = figment::Figment::new()
            .merge(figment::providers::Serialized::defaults(
                crate::config::Config::default(),
            ))
            .merge(renamed)
            .extract()
            .unwrap();
        assert_eq!(config.export.otlp.preset.as_deref(), Some("datadog"));
        assert_eq!(
            config.alerting.rules.disabled,
            ["cpu-usage", "memory-usage", "cpu-usage"]
        );
        let olds: Vec<&str> = found.iter().map(|d| d.rename.old).collect();
        assert_eq!(olds, ["old-rule", "old-preset"]);
        let shown = found[1].to_string();
        assert!(
            shown.starts_with("preset `old-preset` (") && shown.contains("use `datadog` instead"),
            "{shown}"
        );
    }

    #[test]
    fn new_values_are_left_alone_silently() {
        let file = figment::providers::Json::string(r#"{"export":{"otlp":{"preset":"datadog"}}}"#);
        let (_, found) = Renamed::with_table(&file, TABLE).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn renamed_variables_are_not_read_under_their_old_name_any_more() {
        for r in RENAMES.iter().filter(|r| r.kind == Kind::Variable) {
            assert!(
                super::super::env::ENV_VARS
                    .iter()
                    .any(|(v, ..)| *v == r.new),
                "{} is not a variable the agent reads",
                r.new
            );
            assert!(
                !super::super::env::ENV_VARS
                    .iter()
                    .any(|(v, ..)| *v == r.old),
                "{} is still in the variable table",
                r.old
            );
        }
    }
}
