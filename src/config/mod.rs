//! Configuration: embedded defaults ← `config/monitoring.json` (or `--config FILE`) ← environment.
//!
//! The file keeps the specification's shape (`healthMonitoring.*`); everything the specification
//! does not describe lives in sibling sections (`codex`, `processes`, `operationsLog`, …).
//! Environment variables are mapped through one table ([`env::ENV_VARS`]) so that an error can
//! name the variable the user actually set, not an internal key path.

mod agent;
mod alerting;
mod baselines;
mod codex;
mod disk;
pub mod env;
mod export;
mod health;
mod oplog;
mod processes;
pub mod renames;
mod secret;
mod show;
pub mod update;

pub use agent::{ApplicationSettings, AuditLogConfig, HistoryConfig, LoggingConfig, ReloadConfig};
pub use alerting::{
    AlertRulesConfig, AlertingConfig, AlertmanagerConfig, DeliveryConfig, EmailConfig,
    MaintenanceConfig, MaintenanceWindow, SlackConfig, SmtpTls, WebhookConfig, WebhookFormat,
};
pub use baselines::Baselines;
pub use codex::{CodexConfig, ExecutableIn, ExtraProbe, MAX_PROBE_NAME_CHARS};
pub use disk::{parse_size, DiskUsageConfig};
pub use export::{ExportConfig, KubernetesConfig, OtlpConfig, StatsdConfig};
pub use health::{
    Endpoints, HealthMonitoring, Thresholds, DEFAULT_HEADER_READ_TIMEOUT_MS,
    DEFAULT_MAX_CONNECTIONS,
};
pub use oplog::OperationsLogConfig;
pub use processes::ProcessesConfig;
pub use secret::Secret;
pub use show::{flatten, leaves, Effective, Origin};

use std::path::{Path, PathBuf};

use figment::providers::{Format, Json, Serialized};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The source of a value that no file or variable sets: the built-in default.
pub const DEFAULTS_SOURCE: &str = "defaults";

/// Default location of the configuration file, relative to the working directory (as in the
/// specification). It is optional: a missing default file is not an error.
pub const DEFAULT_CONFIG_FILE: &str = "config/monitoring.json";

/// The whole configuration. Field names are the JSON keys (camelCase).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    pub health_monitoring: HealthMonitoring,
    pub codex: CodexConfig,
    pub baselines: Baselines,
    pub processes: ProcessesConfig,
    pub operations_log: OperationsLogConfig,
    pub alerting: AlertingConfig,
    pub export: ExportConfig,
    pub logging: LoggingConfig,
    /// Directory for persistent state (log positions, pending alerts, history).
    pub state_dir: PathBuf,
    /// Settings of the watched application that the specification documents next to the
    /// monitoring variables. The agent accepts and shows them but does not act on them.
    pub application: ApplicationSettings,
    /// The agent's own log files (health checks, errors, performance samples).
    pub audit_log: AuditLogConfig,
    /// Reloading the configuration while running (SIGHUP, config-file changes).
    pub reload: ReloadConfig,
    /// Per-hour history for reports and learned baselines.
    pub history: HistoryConfig,
    /// Measuring the operations-log and audit directories (bytes used, growth).
    pub disk_usage: DiskUsageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            health_monitoring: HealthMonitoring::default(),
            codex: CodexConfig::default(),
            baselines: Baselines::default(),
            processes: ProcessesConfig::default(),
            operations_log: OperationsLogConfig::default(),
            alerting: AlertingConfig::default(),
            export: ExportConfig::default(),
            logging: LoggingConfig::default(),
            state_dir: PathBuf::from(".codex-sentinel"),
            application: ApplicationSettings::default(),
            audit_log: AuditLogConfig::default(),
            reload: ReloadConfig::default(),
            history: HistoryConfig::default(),
            disk_usage: DiskUsageConfig::default(),
        }
    }
}

/// A configuration error, phrased for the person who wrote the bad value: which key, which
/// value, and where it came from (file path or environment variable). One problem a line:
/// a run reports every problem it finds, not only the first.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// The problems, one a line.
    pub fn problems(&self) -> impl Iterator<Item = &str> {
        self.0.lines()
    }

    fn from_problems(problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems.join("\n")))
        }
    }
}

/// Collects bad values, reported the same way for every section: key, value, where it came from
/// (file or environment variable) and why. Sections above this layer (exporters, alert rules)
/// check their parts of the configuration with it too; [`Check::finish`] then reports every
/// problem found, each once.
pub(crate) struct Check<'a> {
    fig: &'a Figment,
    problems: std::cell::RefCell<Vec<String>>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(fig: &'a Figment) -> Self {
        Check {
            fig,
            problems: Default::default(),
        }
    }

    /// Records the problem at `key`: `invalid value for `key` from SOURCE: VALUE (WHY)`.
    pub(crate) fn bad(&self, key: &str, value: String, why: &str) {
        let problem = format!(
            "invalid value for `{key}` from {}: {value} ({why})",
            source_of(self.fig, key)
        );
        let mut problems = self.problems.borrow_mut();
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }

    /// Every problem recorded, one a line, or `Ok` when there is none.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        ConfigError::from_problems(self.problems.into_inner())
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`: must exist. `None`: the default file, if present.
    pub file: Option<PathBuf>,
    /// The environment, as (name, value) pairs. Tests pass a map; `run` passes `std::env::vars()`.
    pub env: Vec<(String, String)>,
}

impl Sources {
    pub fn from_process(file: Option<PathBuf>) -> Self {
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }
}

/// Builds the layered figment (kept so `config show` can tell where each value came from).
pub fn figment(sources: &Sources) -> Result<Figment, ConfigError> {
    layers(sources).map(|(fig, _)| fig)
}

/// [`figment`], and the old names ([`renames::RENAMES`]) the sources use, each once.
pub fn layers(sources: &Sources) -> Result<(Figment, Vec<renames::Deprecation>), ConfigError> {
    let mut deprecations = Vec::new();
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    let file: Option<&Path> = match &sources.file {
        Some(path) => {
            // An explicitly named file must be readable: say so now, with the OS's reason.
            std::fs::metadata(path).map_err(|e| {
                ConfigError(format!(
                    "config file {}: cannot be read: {e}",
                    path.display()
                ))
            })?;
            Some(path.as_path())
        }
        None => {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            default.exists().then_some(default)
        }
    };
    if let Some(path) = file {
        if let Err(e) = std::fs::read(path) {
            return Err(ConfigError(format!(
                "config file {}: cannot be read: {e}",
                path.display()
            )));
        }
        fig = merge_renamed(fig, Json::file_exact(path), &mut deprecations);
    }
    let env = env::SpecEnv::new(&sources.env)?;
    for d in env.deprecations() {
        renames::note(&mut deprecations, d.clone());
    }
    fig = merge_renamed(fig, env, &mut deprecations);
    Ok((fig, deprecations))
}

/// Merges a layer with its old names replaced by the new ones ([`renames::Renamed`]). A layer
/// that cannot be read is merged as it is: its error then comes out of `extract` as before,
/// naming the file.
fn merge_renamed<P: figment::Provider>(
    fig: Figment,
    layer: P,
    found: &mut Vec<renames::Deprecation>,
) -> Figment {
    match renames::Renamed::new(&layer) {
        Some((renamed, deprecations)) => {
            for d in deprecations {
                renames::note(found, d);
            }
            fig.merge(renamed)
        }
        None => fig.merge(layer),
    }
}

/// Extracts a configuration from an already built figment and runs the checks of every section
/// this layer owns; the problems recorded in `check`. The sections of exporters and alert rules
/// are checked above (`codex_sentinel::cli::load`), which is what the agent and its commands use.
pub(crate) fn extract(fig: &Figment, check: &Check) -> Result<Config, ConfigError> {
    match fig.extract::<Config>() {
        Ok(config) => {
            config.validate(check);
            Ok(config)
        }
        Err(first) => {
            // serde stops at the first problem: list every unknown key, then extract each
            // section on its own to find the problems of the others too.
            let unknown = unknown_keys(fig);
            let mut problems: Vec<String> = unknown.iter().map(|(_, p)| p.clone()).collect();
            let mut add = |problem: String| {
                let new = !problems.contains(&problem);
                if new {
                    problems.push(problem);
                }
                new
            };
            for e in std::iter::once(first).chain(section_errors(fig).1) {
                if let figment::error::Kind::UnknownField(field, _) = &e.kind {
                    if unknown
                        .iter()
                        .any(|(k, _)| *k == unknown_key_path(&e.path, field))
                    {
                        continue;
                    }
                }
                add(describe_figment_error(fig, e));
            }
            // A section stops at its first bad value too: take away the unknown keys and each
            // bad value found, and extract again, until no new problem shows.
            // (A layer that cannot be read, such as a file that is not JSON, has no values.)
            let mut values = without(fig, unknown.iter().map(|(k, _)| k.as_str()));
            let mut taken: Vec<String> = Vec::new();
            for _ in 0..MAX_EXTRACTIONS {
                let Some(current) = &values else { break };
                let mut found = Vec::new();
                for mut e in section_errors(current).1 {
                    let key = e.path.join(".");
                    // The source is looked up by key in the real layers.
                    e.metadata = None;
                    add(describe_figment_error(fig, e));
                    if !taken.contains(&key) && !found.contains(&key) {
                        found.push(key);
                    }
                }
                if found.is_empty() {
                    break;
                }
                values = without(current, found.iter().map(String::as_str));
                taken.extend(found);
            }
            Err(ConfigError(problems.join("\n")))
        }
    }
}

/// Every key of the file or the environment that the configuration does not have, each once,
/// as (dotted key, problem), with the nearest known key as "did you mean". Keys inside lists
/// (`codex.probes`) are left to serde, which names them too.
fn unknown_keys(fig: &Figment) -> Vec<(String, String)> {
    fn walk(
        fig: &Figment,
        known: &serde_json::Map<String, serde_json::Value>,
        given: &figment::value::Dict,
        path: &mut Vec<String>,
        out: &mut Vec<(String, String)>,
    ) {
        for (key, value) in given {
            path.push(key.clone());
            match known.get(key) {
                None => {
                    let full = path.join(".");
                    let source = match fig.get_metadata(value.tag()) {
                        Some(md) => describe_source(md, &None, path),
                        None => "configuration".into(),
                    };
                    let expected: Vec<&str> = known.keys().map(String::as_str).collect();
                    let hint = closest(key, &expected)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    let problem = format!("unknown key `{full}` in {source}{hint}");
                    out.push((full, problem));
                }
                // An empty object by default is a map of free names (headers).
                Some(serde_json::Value::Object(inner)) if !inner.is_empty() => {
                    if let figment::value::Value::Dict(_, dict) = value {
                        walk(fig, inner, dict, path, out);
                    }
                }
                Some(_) => {}
            }
            path.pop();
        }
    }
    let known = serde_json::to_value(Config::default()).expect("config serializes");
    let given = fig
        .find_value("")
        .ok()
        .and_then(|v| v.into_dict())
        .unwrap_or_default();
    let mut out = Vec::new();
    if let serde_json::Value::Object(known) = &known {
        walk(fig, known, &given, &mut Vec::new(), &mut out);
    }
    out
}

/// Rounds of [`extract`]'s search for bad values hidden behind others in their section.
const MAX_EXTRACTIONS: usize = 32;

/// The merged values of `fig` without the dotted `keys`, as one layer: what the configuration
/// would be without them (keys inside lists stay: a list is one value here). `None` when the
/// values cannot be read.
fn without<'k>(fig: &Figment, keys: impl Iterator<Item = &'k str>) -> Option<Figment> {
    fn remove(dict: &mut figment::value::Dict, path: &[&str]) {
        match path {
            [] => {}
            [last] => {
                dict.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(figment::value::Value::Dict(_, inner)) = dict.get_mut(*first) {
                    remove(inner, rest);
                }
            }
        }
    }
    let mut dict = fig.find_value("").ok()?.into_dict()?;
    for key in keys {
        let path: Vec<&str> = key.split('.').collect();
        remove(&mut dict, &path);
    }
    Some(Figment::from(Serialized::defaults(dict)))
}

/// The dotted key of an unknown field: figment's path sometimes already ends with the field.
fn unknown_key_path(path: &[String], field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else if path.last().map(String::as_str) == Some(field) {
        path.join(".")
    } else {
        format!("{}.{field}", path.join("."))
    }
}

/// The first problem of each section, each section extracted on its own, and the sections'
/// keys: the fields of [`Config`] (a unit test keeps the list complete).
fn section_errors(fig: &Figment) -> (&'static [&'static str], Vec<figment::Error>) {
    fn section<T: serde::de::DeserializeOwned>(
        fig: &Figment,
        key: &str,
        out: &mut Vec<figment::Error>,
    ) {
        if let Err(errors) = fig.extract_inner::<T>(key) {
            for mut e in errors {
                // figment appends the section's key to the path; it leads.
                if !e.path.is_empty() {
                    e.path.rotate_right(1);
                }
                out.push(e);
            }
        }
    }
    let mut out = Vec::new();
    macro_rules! sections {
        ($($key:literal: $ty:ty),* $(,)?) => {{
            $(section::<$ty>(fig, $key, &mut out);)*
            &[$($key),*]
        }};
    }
    let keys: &'static [&'static str] = sections!(
        "healthMonitoring": HealthMonitoring,
        "codex": CodexConfig,
        "baselines": Baselines,
        "processes": ProcessesConfig,
        "operationsLog": OperationsLogConfig,
        "alerting": AlertingConfig,
        "export": ExportConfig,
        "logging": LoggingConfig,
        "stateDir": PathBuf,
        "application": ApplicationSettings,
        "auditLog": AuditLogConfig,
        "reload": ReloadConfig,
        "history": HistoryConfig,
        "diskUsage": DiskUsageConfig,
    );
    (keys, out)
}

/// Turns one of figment's errors into one line: key, value, source.
fn describe_figment_error(fig: &Figment, e: figment::Error) -> String {
    let key = e.path.join(".");
    let source = match &e.metadata {
        Some(md) => describe_source(md, &e.profile, &e.path),
        None if !key.is_empty() => source_of(fig, &key),
        None => "configuration".into(),
    };
    let what = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            let full = unknown_key_path(&e.path, field);
            let hint = closest(field, expected)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return format!("unknown key `{full}` in {source}{hint}");
        }
        kind => kind.to_string(),
    };
    if key.is_empty() {
        format!("invalid configuration in {source}: {what}")
    } else {
        format!("invalid value for `{key}` from {source}: {what}")
    }
}

/// The expected key nearest to a misspelt one (case-insensitive edit distance at most 2, or
/// a case-only difference), for "did you mean".
fn closest<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let lower = field.to_lowercase();
    expected
        .iter()
        .map(|k| (distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn describe_source(
    md: &figment::Metadata,
    profile: &Option<figment::Profile>,
    path: &[String],
) -> String {
    if md.name == env::METADATA_NAME {
        let default = figment::Profile::Default;
        let profile = profile.as_ref().unwrap_or(&default);
        return format!("environment variable {}", md.interpolate(profile, path));
    }
    match &md.source {
        Some(figment::Source::File(p)) => format!("config file {}", p.display()),
        // The only other provider is the embedded defaults.
        _ => DEFAULTS_SOURCE.into(),
    }
}

/// Where the value at `key` came from, in words.
pub fn source_of(fig: &Figment, key: &str) -> String {
    // figment does not index into arrays (`codex.probes.0.command`): an element comes from
    // wherever its array came from, so look up the nearest enclosing key that it knows.
    let parts: Vec<&str> = key.split('.').collect();
    let array = parts
        .iter()
        .position(|p| p.parse::<usize>().is_ok())
        .map_or(parts.len(), |i| i);
    let known = parts[..array].join(".");
    match fig.find_metadata(&known) {
        Some(md) => {
            let path: Vec<String> = known.split('.').map(str::to_string).collect();
            describe_source(md, &None, &path)
        }
        None => DEFAULTS_SOURCE.into(),
    }
}

impl Config {
    /// Each section's checks, in the order of the file.
    fn validate(&self, c: &Check) {
        self.health_monitoring.validate(c);
        self.codex.validate(c);
        self.processes.validate(c);
        self.operations_log.validate(c);
        self.logging.validate(c);
        self.alerting.validate(c);
        self.audit_log.validate(c);
        self.history.validate(c);
        self.disk_usage.validate(c);
        self.baselines.validate(c);
        self.reload.validate(c);
        self.export.validate(c);
    }

    /// Paths of the JSON endpoints derived from `endpoints.path`.
    pub fn health_path(&self) -> &str {
        self.health_monitoring.endpoints.path.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_of_the_configuration_is_extracted_on_its_own() {
        let fig = Figment::from(Serialized::defaults(Config::default()));
        let (keys, errors) = section_errors(&fig);
        assert!(errors.is_empty(), "{errors:?}");
        let tree = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<&str> = tree
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut keys = keys.to_vec();
        fields.sort();
        keys.sort();
        assert_eq!(keys, fields);
    }

    #[test]
    fn a_bad_type_is_named_under_its_full_key_when_its_section_is_extracted_alone() {
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(Json::string(
            r#"{"codex":{"probes":[{"name":"a","command":["x"],"timeout":"soon"}]}}"#,
        ));
        let (_, errors) = section_errors(&fig);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, ["codex", "probes", "0", "timeout"]);
    }
}
