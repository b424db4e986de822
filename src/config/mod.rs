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
    MaintenanceConfig, MaintenanceWindow, SlackConfig, WebhookConfig,
};
pub use baselines::Baselines;
pub use codex::{CodexConfig, ExecutableIn, ExtraProbe};
pub use disk::{parse_size, DiskUsageConfig};
pub use export::{ExportConfig, KubernetesConfig, OtlpConfig, StatsdConfig};
pub use health::{
    Endpoints, HealthMonitoring, Thresholds, DEFAULT_HEADER_READ_TIMEOUT_MS,
    DEFAULT_MAX_CONNECTIONS,
};
pub use oplog::OperationsLogConfig;
pub use processes::ProcessesConfig;
pub use secret::Secret;
pub use show::{flatten, leaves};

use std::path::{Path, PathBuf};

use figment::providers::{Format, Json, Serialized};
use figment::Figment;
use serde::{Deserialize, Serialize};

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
/// value, and where it came from (file path or environment variable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reports a bad value the same way for every section: key, value, where it came from (file or
/// environment variable) and why. Sections above this layer (exporters, alert rules) check their
/// parts of the configuration with it too.
pub(crate) struct Check<'a> {
    fig: &'a Figment,
}

impl<'a> Check<'a> {
    pub(crate) fn new(fig: &'a Figment) -> Self {
        Check { fig }
    }

    /// The error for `key`: `invalid value for `key` from SOURCE: VALUE (WHY)`.
    pub(crate) fn bad(&self, key: &str, value: String, why: &str) -> Result<(), ConfigError> {
        Err(ConfigError(format!(
            "invalid value for `{key}` from {}: {value} ({why})",
            source_of(self.fig, key)
        )))
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
/// this layer owns. The sections of exporters and alert rules are checked above
/// (`codex_sentinel::cli::load`), which is what the agent and its commands use.
pub(crate) fn extract(fig: &Figment) -> Result<Config, ConfigError> {
    let config: Config = fig.extract().map_err(|e| describe_figment_error(fig, e))?;
    config.validate(&Check::new(fig))?;
    Ok(config)
}

/// Turns figment's error into one line: key, value, source.
fn describe_figment_error(fig: &Figment, err: figment::Error) -> ConfigError {
    let first = err.into_iter().next();
    let Some(e) = first else {
        return ConfigError("invalid configuration".into());
    };
    let key = e.path.join(".");
    let source = match &e.metadata {
        Some(md) => describe_source(md, &e.profile, &e.path),
        None if !key.is_empty() => source_of(fig, &key),
        None => "configuration".into(),
    };
    let what = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            // figment's path sometimes already ends with the field: name it once.
            let full = if key.is_empty() {
                field.clone()
            } else if e.path.last() == Some(field) {
                key.clone()
            } else {
                format!("{key}.{field}")
            };
            let hint = closest(field, expected)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return ConfigError(format!("unknown key `{full}` in {source}{hint}"));
        }
        kind => kind.to_string(),
    };
    if key.is_empty() {
        ConfigError(format!("invalid configuration in {source}: {what}"))
    } else {
        ConfigError(format!("invalid value for `{key}` from {source}: {what}"))
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
        _ => "defaults".into(),
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
        None => "defaults".into(),
    }
}

impl Config {
    /// Each section's checks, in the order of the file.
    fn validate(&self, c: &Check) -> Result<(), ConfigError> {
        self.health_monitoring.validate(c)?;
        self.codex.validate(c)?;
        self.processes.validate(c)?;
        self.operations_log.validate(c)?;
        self.logging.validate(c)?;
        self.alerting.validate(c)?;
        self.audit_log.validate(c)?;
        self.history.validate(c)?;
        self.disk_usage.validate(c)?;
        self.baselines.validate(c)?;
        self.reload.validate(c)?;
        self.export.validate(c)?;
        Ok(())
    }

    /// Paths of the JSON endpoints derived from `endpoints.path`.
    pub fn health_path(&self) -> &str {
        self.health_monitoring.endpoints.path.trim_end_matches('/')
    }
}
