//! Configuration: embedded defaults ← `config/monitoring.json` (or `--config FILE`) ← environment.
//!
//! The file keeps the specification's shape (`healthMonitoring.*`); everything the specification
//! does not describe lives in sibling sections (`codex`, `processes`, `operationsLog`, …).
//! Environment variables are mapped through one table ([`env::ENV_VARS`]) so that an error can
//! name the variable the user actually set, not an internal key path.

pub mod env;
mod secret;
mod show;

pub use secret::Secret;
pub use show::{leaves, render_show, ShowFormat};

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
}

/// The specification's `logs/audit/*.log` files, written by the agent: one JSON object a line,
/// one file per stream and UTC day. `SIGUSR1` reopens them (logrotate's `postrotate`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditLogConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// Files of these streams older than this many days are deleted by the agent (0 = keep all,
    /// e.g. when logrotate does it).
    pub retention_days: u64,
    /// ms between lines of `performance-YYYY-MM-DD.log`.
    pub performance_interval: u64,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            enabled: true,
            dir: PathBuf::from("logs/audit"),
            retention_days: 0,
            performance_interval: 60_000,
        }
    }
}

/// How a running agent picks up a new configuration. `SIGHUP` always reloads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Also reload when the configuration file changes (checked every `watchInterval`).
    pub watch_file: bool,
    /// ms between checks of the configuration file.
    pub watch_interval: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch_file: false,
            watch_interval: 2_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HealthMonitoring {
    /// When false the agent still serves its endpoints but runs no probes.
    pub enabled: bool,
    /// Milliseconds between availability probes.
    pub check_interval: u64,
    /// Milliseconds one probe attempt may take before its process group is killed.
    pub health_check_timeout: u64,
    /// Extra attempts after a failed availability probe.
    pub retries: u32,
    /// Milliseconds between attempts.
    pub retry_delay: u64,
    pub thresholds: Thresholds,
    pub endpoints: Endpoints,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Thresholds {
    /// A probe slower than this (ms) makes the availability check `warning`.
    pub availability_timeout: u64,
    /// Executions slower than this (ms, p95) make the `execution-time` check `warning`.
    pub max_execution_time: u64,
    /// Percent.
    pub min_success_rate: f64,
    /// Percent.
    pub max_error_rate: f64,
    /// MB of resident memory across all Codex processes.
    pub max_memory_usage: u64,
    pub max_concurrent_processes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Endpoints {
    pub enabled: bool,
    /// Listen address. Loopback by default: in a pod, set `0.0.0.0` to be scraped.
    pub host: String,
    pub port: u16,
    /// Base path of the JSON endpoints; `/status` and `/metrics` hang below it.
    pub path: String,
}

/// How the Codex CLI is invoked by the probes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CodexConfig {
    /// Executable name (looked up in PATH) or path.
    pub executable: String,
    /// Arguments of the availability probe. Run without a shell.
    pub args: Vec<String>,
    /// The application's retry budget for one operation (`CODEX_MAX_RETRIES`); executions in the
    /// operations log with more retries than this count as exhausted.
    pub max_retries: u32,
    /// The application's per-operation timeout in ms (`CODEX_OPERATION_TIMEOUT`).
    pub operation_timeout: u64,
    /// Optional deeper probes, each on its own schedule.
    pub probes: Vec<ExtraProbe>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraProbe {
    /// Name of the health check this probe produces (e.g. `codex-login`).
    pub name: String,
    /// argv: the first element is the executable.
    pub command: Vec<String>,
    /// ms; defaults to `healthMonitoring.healthCheckTimeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// ms; defaults to `healthMonitoring.checkInterval`.
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub expected_exit_code: i32,
    /// Status of the check when the probe fails: `warning` (default) or `critical`.
    #[serde(default = "default_probe_failure_status")]
    pub failure_status: String,
}

fn default_probe_failure_status() -> String {
    "warning".into()
}

/// Performance baselines (`CODEX_PERF_BASELINE_*`). Unset values are not used, unless `learn`
/// fills them from history (an explicit value always wins).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Baselines {
    /// Fill unset baselines with the ones learned from history (`codex-sentinel baseline show`).
    pub learn: bool,
    /// Days of history a learned baseline needs and uses.
    pub learning_days: u64,
    pub avg_time: Option<u64>,
    pub p95_time: Option<u64>,
    pub p99_time: Option<u64>,
    pub success_rate: Option<f64>,
    pub availability: Option<f64>,
    pub memory_mb: Option<u64>,
    pub max_processes: Option<u64>,
}

impl Default for Baselines {
    fn default() -> Self {
        Baselines {
            learn: false,
            learning_days: 7,
            avg_time: None,
            p95_time: None,
            p99_time: None,
            success_rate: None,
            availability: None,
            memory_mb: None,
            max_processes: None,
        }
    }
}

/// Per-hour aggregates kept in `stateDir` for reports and learned baselines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HistoryConfig {
    pub enabled: bool,
    /// Days of hourly aggregates kept.
    pub retention_days: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProcessesConfig {
    pub enabled: bool,
    /// Process names (comm, 15 characters at most on Linux) that count as Codex.
    pub names: Vec<String>,
    /// Optional regular expression over the full command line.
    pub cmdline_regex: Option<String>,
    /// ms between samples.
    pub sample_interval: u64,
    /// ms of the rolling window for current/peak/average.
    pub window: u64,
    /// How many of the heaviest processes to list in the detailed metrics (0 = none).
    pub top_n: usize,
    /// Executable paths that count as Codex (`/proc/PID/exe`); a path ending in `/` matches
    /// every executable below that directory.
    pub exe_paths: Vec<String>,
    /// Count the npm `node …/codex` wrapper that launches the native binary. Its memory and CPU
    /// are added to the execution; the execution is still counted once.
    pub npm_wrapper: bool,
    /// Only processes that descend from this PID count.
    pub ancestor_pid: Option<u32>,
    /// Only processes that descend from a process with one of these names (comm) count.
    pub ancestor_names: Vec<String>,
    /// Leave out the agent's own children (its probes run `codex --version`).
    pub exclude_agent_children: bool,
    /// ms between full `/proc` listings that find new processes; between them only the
    /// processes already known are read.
    pub discovery_interval: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OperationsLogConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// File name with `YYYY-MM-DD` standing for the day.
    pub pattern: String,
    /// Read today's file from its start (true) or from its end (false) on first sight.
    pub backfill: bool,
    /// ms of the rolling window of execution metrics.
    pub window: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertingConfig {
    pub enabled: bool,
    /// ms between repeats of the same alert.
    pub cooldown: u64,
    pub max_active_alerts: usize,
    pub aggregation: bool,
    /// ms.
    pub aggregation_window: u64,
    /// ms between rule evaluations (each reads the latest snapshot).
    pub evaluation_interval: u64,
    /// Consecutive evaluations a condition must hold before its alert fires.
    pub hold_evaluations: u32,
    /// Consecutive evaluations a condition must be gone before its alert resolves.
    pub clear_evaluations: u32,
    /// Runbook links are this base followed by the rule's slug (e.g.
    /// `https://docs.company.com/runbooks/` → `…/runbooks/codex-cli-unavailable`).
    pub runbook_base_url: String,
    /// `generatorURL` sent to Alertmanager; default: this agent's alerts endpoint.
    pub generator_url: Option<String>,
    pub rules: AlertRulesConfig,
    pub delivery: DeliveryConfig,
    pub maintenance: MaintenanceConfig,
    pub webhook: WebhookConfig,
    pub slack: SlackConfig,
    pub email: EmailConfig,
    pub alertmanager: AlertmanagerConfig,
}

/// Thresholds of the alert rules that the health thresholds and baselines do not cover.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertRulesConfig {
    /// Percent of failed executions above which the failure-rate alert is a warning.
    pub failure_rate_warning: f64,
    /// Percent of failed executions above which the failure-rate alert is critical.
    pub failure_rate_critical: f64,
    /// Rate-based rules stay quiet until the window holds this many executions.
    pub min_executions: u64,
    /// MB of Codex memory that counts as exhaustion (critical); default twice `maxMemoryUsage`.
    pub memory_critical_mb: Option<u64>,
    /// Percent of one core (summed over Codex processes) above which CPU is a warning.
    pub cpu_warning_percent: f64,
    /// Queued operations above which the queue-backlog alert fires.
    pub queue_backlog: f64,
    /// ms of average queue wait above which the queue-backlog alert fires.
    pub queue_wait: f64,
    /// Rule ids that never fire (e.g. `performance-degradation`).
    pub disabled: Vec<String>,
}

/// How notifications are delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// ms one send may take (connect, request, response) before it counts as failed.
    pub timeout: u64,
    /// Attempts per notification and sink before it is logged as undelivered.
    pub max_attempts: u32,
    /// ms before the first retry; doubles each time, with jitter.
    pub initial_backoff: u64,
    /// ms; longest wait between retries.
    pub max_backoff: u64,
}

/// Maintenance windows silence new notifications; alert state is still kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Bearer token of `POST`/`DELETE {path}/alerts/maintenance`; unset: endpoint refuses.
    pub token: Option<Secret>,
    /// Planned windows (RFC 3339 or epoch ms).
    pub windows: Vec<MaintenanceWindow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Contains tokens for Slack: a secret.
    pub url: Option<Secret>,
    /// `generic` or `slack`; guessed from the URL when unset.
    pub format: Option<String>,
    /// Extra request headers (e.g. an `Authorization` for the receiver); values are secrets.
    pub headers: std::collections::BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SlackConfig {
    pub channel: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EmailConfig {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_user: Option<String>,
    pub smtp_pass: Option<Secret>,
    pub smtp_from: Option<String>,
    /// Comma-separated in the environment, a list in the file.
    pub recipients: Vec<String>,
    /// `starttls`, `tls` or `none`.
    pub tls: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub url: Option<Secret>,
    /// ms between re-sends of firing alerts (Alertmanager resolves alerts that stop coming).
    pub resend_interval: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExportConfig {
    pub otlp: OtlpConfig,
    pub statsd: StatsdConfig,
    /// Where the agent runs in Kubernetes (downward-API variables `K8S_*`): OTLP resource
    /// attributes `k8s.*` and DogStatsD tags.
    pub kubernetes: KubernetesConfig,
}

/// The pod the agent runs in, from the downward API. Unset outside Kubernetes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub pod_name: Option<String>,
    pub namespace_name: Option<String>,
    pub node_name: Option<String>,
    pub container_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `None` = decide from the environment (`OTEL_EXPORTER_OTLP_ENDPOINT` set turns it on).
    pub enabled: Option<bool>,
    /// `collector`, `newrelic`, `newrelic-eu` or `datadog-agent`.
    pub preset: Option<String>,
    /// Base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); HTTP appends `/v1/metrics`.
    pub endpoint: Option<String>,
    /// Full URL of the metrics signal (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), used as is; wins.
    pub metrics_endpoint: Option<String>,
    /// `service.name` (`OTEL_SERVICE_NAME`); default `codex-sentinel`.
    pub service_name: Option<String>,
    /// Extra resource attributes, `key=value,key=value` (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    /// ms between exports.
    pub interval: u64,
    /// ms per export request.
    pub timeout: u64,
    /// `cumulative` or `delta`.
    pub temporality: Option<String>,
    /// `gzip` or none.
    pub compression: Option<String>,
    /// Extra headers; values are secrets (API keys).
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// New Relic license key (`NEW_RELIC_LICENSE_KEY`), sent as `api-key` by the preset.
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// `None` = decide from the environment (`DD_AGENT_HOST` or `DD_DOGSTATSD_URL` set turns it on).
    pub enabled: Option<bool>,
    pub host: Option<String>,
    pub port: u16,
    /// `udp://host:port` or `unix:///path/to/dsd.socket`.
    pub url: Option<String>,
    /// DogStatsD tags on (true) or plain StatsD (false).
    pub tags: bool,
    pub prefix: String,
    /// ms between flushes.
    pub interval: u64,
    /// `distribution` or `histogram` for execution times.
    pub timing_kind: String,
    pub env: Option<String>,
    pub service: Option<String>,
    pub version: Option<String>,
    pub entity_id: Option<String>,
    pub extra_tags: Vec<String>,
    /// Datadog API key (only shown redacted; the agent sends through the local Datadog agent).
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `CODEX_DEBUG=true` raises the level to debug.
    pub debug: bool,
    /// `text` or `json`.
    pub format: String,
}

/// The application's own tuning variables from the specification's tuning guide. Accepted so that
/// a shared environment file does not trip the agent, shown by `config show`, otherwise unused.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApplicationSettings {
    pub audit_timeout_seconds: Option<u64>,
    pub max_concurrent_audits: Option<u64>,
    pub enable_audit_caching: Option<bool>,
    pub max_session_history: Option<u64>,
    pub session_cleanup_interval: Option<u64>,
    pub max_concurrent_sessions: Option<u64>,
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
        }
    }
}

impl Default for HealthMonitoring {
    fn default() -> Self {
        HealthMonitoring {
            enabled: true,
            check_interval: 30_000,
            health_check_timeout: 10_000,
            retries: 0,
            retry_delay: 1_000,
            thresholds: Thresholds::default(),
            endpoints: Endpoints::default(),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            availability_timeout: 5_000,
            max_execution_time: 30_000,
            min_success_rate: 80.0,
            max_error_rate: 5.0,
            max_memory_usage: 500,
            max_concurrent_processes: 10,
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 3000,
            path: "/health/codex".into(),
        }
    }
}

impl Default for CodexConfig {
    fn default() -> Self {
        CodexConfig {
            executable: "codex".into(),
            args: vec!["--version".into()],
            max_retries: 3,
            operation_timeout: 45_000,
            probes: Vec::new(),
        }
    }
}

impl Default for ProcessesConfig {
    fn default() -> Self {
        ProcessesConfig {
            enabled: true,
            names: vec!["codex".into()],
            cmdline_regex: None,
            sample_interval: 1_000,
            window: 300_000,
            top_n: 5,
            exe_paths: Vec::new(),
            npm_wrapper: true,
            ancestor_pid: None,
            ancestor_names: Vec::new(),
            exclude_agent_children: true,
            discovery_interval: 5_000,
        }
    }
}

impl Default for OperationsLogConfig {
    fn default() -> Self {
        OperationsLogConfig {
            enabled: true,
            dir: PathBuf::from("logs/codex"),
            pattern: "codex-operations-YYYY-MM-DD.jsonl".into(),
            backfill: false,
            window: 3_600_000,
        }
    }
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: false,
            cooldown: 300_000,
            max_active_alerts: 50,
            aggregation: false,
            aggregation_window: 300_000,
            evaluation_interval: 5_000,
            hold_evaluations: 3,
            clear_evaluations: 3,
            runbook_base_url: "docs/alerting.md#runbook-".into(),
            generator_url: None,
            rules: AlertRulesConfig::default(),
            delivery: DeliveryConfig::default(),
            maintenance: MaintenanceConfig::default(),
            webhook: WebhookConfig::default(),
            slack: SlackConfig::default(),
            email: EmailConfig::default(),
            alertmanager: AlertmanagerConfig::default(),
        }
    }
}

impl Default for AlertRulesConfig {
    fn default() -> Self {
        AlertRulesConfig {
            failure_rate_warning: 10.0,
            failure_rate_critical: 20.0,
            min_executions: 10,
            memory_critical_mb: None,
            cpu_warning_percent: 80.0,
            queue_backlog: 10.0,
            queue_wait: 60_000.0,
            disabled: Vec::new(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: 10_000,
            max_attempts: 10,
            initial_backoff: 1_000,
            max_backoff: 300_000,
        }
    }
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            url: None,
            resend_interval: 60_000,
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: None,
            preset: None,
            endpoint: None,
            metrics_endpoint: None,
            service_name: None,
            resource_attributes: None,
            protocol: None,
            interval: 10_000,
            timeout: 5_000,
            temporality: None,
            compression: None,
            headers: Default::default(),
            api_key: None,
        }
    }
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            enabled: None,
            host: None,
            port: 8125,
            url: None,
            tags: true,
            prefix: String::new(),
            interval: 10_000,
            timing_kind: "distribution".into(),
            env: None,
            service: None,
            version: None,
            entity_id: None,
            extra_tags: Vec::new(),
            api_key: None,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            debug: false,
            format: "text".into(),
        }
    }
}

/// A configuration error, phrased for the person who wrote the bad value: which key, which
/// value, and where it came from (file path or environment variable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
        fig = fig.merge(Json::file_exact(path));
    }
    fig = fig.merge(env::SpecEnv::new(&sources.env)?);
    Ok(fig)
}

/// Loads, merges and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let fig = figment(sources)?;
    load_from(&fig)
}

/// Extracts and validates a configuration from an already built figment.
pub fn load_from(fig: &Figment) -> Result<Config, ConfigError> {
    let config: Config = fig.extract().map_err(|e| describe_figment_error(fig, e))?;
    config.validate(fig)?;
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
        figment::error::Kind::UnknownField(field, _) => {
            let full = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError(format!("unknown key `{full}` in {source}"));
        }
        kind => kind.to_string(),
    };
    if key.is_empty() {
        ConfigError(format!("invalid configuration in {source}: {what}"))
    } else {
        ConfigError(format!("invalid value for `{key}` from {source}: {what}"))
    }
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
    match fig.find_metadata(key) {
        Some(md) => {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            describe_source(md, &None, &path)
        }
        None => "defaults".into(),
    }
}

impl Config {
    /// Semantic checks serde cannot express. Every problem names its key and source.
    pub fn validate(&self, fig: &Figment) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| {
            Err(ConfigError(format!(
                "invalid value for `{key}` from {}: {value} ({why})",
                source_of(fig, key)
            )))
        };
        let hm = &self.health_monitoring;
        if hm.check_interval == 0 {
            return bad(
                "healthMonitoring.checkInterval",
                "0".into(),
                "must be > 0 ms",
            );
        }
        if hm.health_check_timeout == 0 {
            return bad(
                "healthMonitoring.healthCheckTimeout",
                "0".into(),
                "must be > 0 ms",
            );
        }
        for (key, v) in [
            (
                "healthMonitoring.thresholds.minSuccessRate",
                hm.thresholds.min_success_rate,
            ),
            (
                "healthMonitoring.thresholds.maxErrorRate",
                hm.thresholds.max_error_rate,
            ),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return bad(key, v.to_string(), "a percentage must be within 0..100");
            }
        }
        if !hm.endpoints.path.starts_with('/') || hm.endpoints.path.len() < 2 {
            return bad(
                "healthMonitoring.endpoints.path",
                format!("{:?}", hm.endpoints.path),
                "must start with / and name a path",
            );
        }
        if hm.endpoints.host.parse::<std::net::IpAddr>().is_err() {
            return bad(
                "healthMonitoring.endpoints.host",
                format!("{:?}", hm.endpoints.host),
                "must be an IP address such as 127.0.0.1 or 0.0.0.0",
            );
        }
        if self.codex.executable.is_empty() {
            return bad("codex.executable", "\"\"".into(), "must not be empty");
        }
        for (i, p) in self.codex.probes.iter().enumerate() {
            let key = format!("codex.probes.{i}");
            if p.command.is_empty() || p.command[0].is_empty() {
                return bad(
                    &key,
                    format!("{:?}", p.command),
                    "command must name an executable",
                );
            }
            if p.name.is_empty() {
                return bad(&key, "\"\"".into(), "name must not be empty");
            }
            if !matches!(p.failure_status.as_str(), "warning" | "critical") {
                return bad(
                    &key,
                    p.failure_status.clone(),
                    "failureStatus must be warning or critical",
                );
            }
            if p.timeout == Some(0) || p.interval == Some(0) {
                return bad(&key, "0".into(), "timeout and interval must be > 0 ms");
            }
        }
        if self.processes.sample_interval == 0 {
            return bad("processes.sampleInterval", "0".into(), "must be > 0 ms");
        }
        if self.processes.window < self.processes.sample_interval {
            return bad(
                "processes.window",
                self.processes.window.to_string(),
                "must be at least one sample interval",
            );
        }
        if self.processes.discovery_interval == 0 {
            return bad("processes.discoveryInterval", "0".into(), "must be > 0 ms");
        }
        if let Some(re) = &self.processes.cmdline_regex {
            if let Err(e) = regex::Regex::new(re) {
                return bad("processes.cmdlineRegex", format!("{re:?}"), &e.to_string());
            }
        }
        if self.operations_log.window == 0 {
            return bad("operationsLog.window", "0".into(), "must be > 0 ms");
        }
        if !self.operations_log.pattern.contains("YYYY-MM-DD") {
            return bad(
                "operationsLog.pattern",
                format!("{:?}", self.operations_log.pattern),
                "must contain YYYY-MM-DD",
            );
        }
        if !matches!(self.logging.format.as_str(), "text" | "json") {
            return bad(
                "logging.format",
                format!("{:?}", self.logging.format),
                "must be text or json",
            );
        }
        if let Some(f) = &self.alerting.webhook.format {
            if !matches!(f.as_str(), "generic" | "slack") {
                return bad(
                    "alerting.webhook.format",
                    format!("{f:?}"),
                    "must be generic or slack",
                );
            }
        }
        if let Some(t) = &self.alerting.email.tls {
            if !matches!(t.as_str(), "starttls" | "tls" | "none") {
                return bad(
                    "alerting.email.tls",
                    format!("{t:?}"),
                    "must be starttls, tls or none",
                );
            }
        }
        self.validate_alerting(fig)?;
        if self.audit_log.enabled && self.audit_log.performance_interval == 0 {
            return bad("auditLog.performanceInterval", "0".into(), "must be > 0 ms");
        }
        if self.history.enabled && self.history.retention_days == 0 {
            return bad(
                "history.retentionDays",
                "0".into(),
                "must be at least 1 day",
            );
        }
        if self.baselines.learning_days == 0 {
            return bad(
                "baselines.learningDays",
                "0".into(),
                "must be at least 1 day",
            );
        }
        if self.reload.watch_file && self.reload.watch_interval == 0 {
            return bad("reload.watchInterval", "0".into(), "must be > 0 ms");
        }
        if !matches!(
            self.export.statsd.timing_kind.as_str(),
            "distribution" | "histogram"
        ) {
            return bad(
                "export.statsd.timingKind",
                format!("{:?}", self.export.statsd.timing_kind),
                "must be distribution or histogram",
            );
        }
        if let Some(t) = &self.export.otlp.temporality {
            if !matches!(
                t.to_ascii_lowercase().as_str(),
                "cumulative" | "delta" | "lowmemory"
            ) {
                return bad(
                    "export.otlp.temporality",
                    format!("{t:?}"),
                    "must be cumulative, delta or lowmemory",
                );
            }
        }
        if let Err((key, value, why)) = crate::export::validate(self) {
            return bad(key, value, &why);
        }
        if let Some(p) = &self.export.otlp.protocol {
            if !matches!(p.as_str(), "grpc" | "http/protobuf") {
                return bad(
                    "export.otlp.protocol",
                    format!("{p:?}"),
                    "must be grpc or http/protobuf",
                );
            }
        }
        if let Some(p) = &self.export.otlp.preset {
            if !matches!(
                p.as_str(),
                "collector" | "newrelic" | "newrelic-eu" | "datadog-agent"
            ) {
                return bad(
                    "export.otlp.preset",
                    format!("{p:?}"),
                    "must be collector, newrelic, newrelic-eu or datadog-agent",
                );
            }
        }
        Ok(())
    }

    /// Checks of the `alerting` section (see docs/alerting.md).
    fn validate_alerting(&self, fig: &Figment) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| {
            Err(ConfigError(format!(
                "invalid value for `{key}` from {}: {value} ({why})",
                source_of(fig, key)
            )))
        };
        let a = &self.alerting;
        for (key, v) in [
            ("alerting.evaluationInterval", a.evaluation_interval),
            ("alerting.delivery.timeout", a.delivery.timeout),
            (
                "alerting.delivery.initialBackoff",
                a.delivery.initial_backoff,
            ),
            (
                "alerting.alertmanager.resendInterval",
                a.alertmanager.resend_interval,
            ),
        ] {
            if v == 0 {
                return bad(key, "0".into(), "must be > 0 ms");
            }
        }
        if a.aggregation && a.aggregation_window == 0 {
            return bad("alerting.aggregationWindow", "0".into(), "must be > 0 ms");
        }
        for (key, v) in [
            ("alerting.holdEvaluations", a.hold_evaluations),
            ("alerting.clearEvaluations", a.clear_evaluations),
            ("alerting.delivery.maxAttempts", a.delivery.max_attempts),
        ] {
            if v == 0 {
                return bad(key, "0".into(), "must be at least 1");
            }
        }
        if a.max_active_alerts == 0 {
            return bad("alerting.maxActiveAlerts", "0".into(), "must be at least 1");
        }
        for (key, v) in [
            (
                "alerting.rules.failureRateWarning",
                a.rules.failure_rate_warning,
            ),
            (
                "alerting.rules.failureRateCritical",
                a.rules.failure_rate_critical,
            ),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return bad(key, v.to_string(), "a percentage must be within 0..100");
            }
        }
        for id in &a.rules.disabled {
            if !crate::alerts::rules::RULE_IDS.contains(&id.as_str()) {
                return bad(
                    "alerting.rules.disabled",
                    format!("{id:?}"),
                    &format!(
                        "unknown rule; known: {}",
                        crate::alerts::rules::RULE_IDS.join(", ")
                    ),
                );
            }
        }
        for (i, w) in a.maintenance.windows.iter().enumerate() {
            let key = format!("alerting.maintenance.windows.{i}");
            let start = crate::alerts::clock::parse_time(&w.start);
            let end = crate::alerts::clock::parse_time(&w.end);
            match (start, end) {
                (Some(s), Some(e)) if s < e => {}
                (Some(_), Some(_)) => return bad(&key, w.end.clone(), "end must be after start"),
                _ => {
                    return bad(
                        &key,
                        format!("{:?} .. {:?}", w.start, w.end),
                        "start and end must be RFC 3339 (2026-11-26T22:00:00Z) or epoch ms",
                    )
                }
            }
        }
        for (key, url) in [
            ("alerting.webhook.url", &a.webhook.url),
            ("alerting.alertmanager.url", &a.alertmanager.url),
        ] {
            if let Some(url) = url {
                // The value is a secret: say what is wrong without echoing it.
                if reqwest::Url::parse(url.expose())
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
                {
                    return bad(
                        key,
                        secret::REDACTED.into(),
                        "must be an http:// or https:// URL",
                    );
                }
            }
        }
        for name in a.webhook.headers.keys() {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return bad(
                    "alerting.webhook.headers",
                    format!("{name:?}"),
                    "not a valid header name",
                );
            }
        }
        if a.generator_url
            .as_deref()
            .is_some_and(|u| reqwest::Url::parse(u).is_err())
        {
            return bad(
                "alerting.generatorUrl",
                format!("{:?}", a.generator_url.as_deref().unwrap_or_default()),
                "must be an absolute URL",
            );
        }
        let email = &a.email;
        // Email is on only with both a host and recipients (one alone is reported at start).
        if email.smtp_host.is_some() && !email.recipients.is_empty() {
            for r in &email.recipients {
                if r.parse::<lettre::message::Mailbox>().is_err() {
                    return bad(
                        "alerting.email.recipients",
                        format!("{r:?}"),
                        "not an email address",
                    );
                }
            }
            let from = email.smtp_from.as_ref().or(email.smtp_user.as_ref());
            match from {
                Some(f) if f.parse::<lettre::message::Mailbox>().is_ok() => {}
                Some(f) => {
                    return bad(
                        "alerting.email.smtpFrom",
                        format!("{f:?}"),
                        "not an email address",
                    )
                }
                None => {
                    return bad(
                        "alerting.email.smtpFrom",
                        "unset".into(),
                        "set CODEX_ALERT_SMTP_FROM (or an address in CODEX_ALERT_SMTP_USER)",
                    )
                }
            }
        }
        Ok(())
    }

    /// Paths of the JSON endpoints derived from `endpoints.path`.
    pub fn health_path(&self) -> &str {
        self.health_monitoring.endpoints.path.trim_end_matches('/')
    }
}
