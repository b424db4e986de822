//! Environment variables → configuration keys, in one table.
//!
//! figment's own `Env` provider lowercases names and cannot express the specification's
//! spellings (`CODEX_HEALTH_CHECK_INTERVAL` → `healthMonitoring.checkInterval`), so this module
//! provides a small figment [`Provider`] driven by [`ENV_VARS`]. Its metadata interpolates a key
//! path back to the variable name, so every error names the variable the user set.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

use super::{renames, ConfigError};

/// Name of the provider in figment metadata; used to recognise environment-sourced values.
pub const METADATA_NAME: &str = "environment";

/// How a variable's text becomes a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true/false/1/0/yes/no/on/off`, any case.
    Bool,
    /// An integer (milliseconds, ports, counts).
    Int,
    /// A number, possibly fractional (percentages).
    Float,
    /// Kept verbatim, even when it looks like a number (API keys, hosts).
    Str,
    /// Comma-separated list of strings.
    List,
    /// Whitespace-separated argv.
    Args,
    /// Comma-separated `name=value` pairs (HTTP headers).
    Map,
}

/// Every variable the agent reads: (variable, key path, kind, documentation).
/// `docs/configuration.md` is checked against this table by a test.
#[rustfmt::skip]
pub const ENV_VARS: &[(&str, &str, Kind, &str)] = &[
    // — the specification's health-check variables
    ("ENABLE_CODEX_HEALTH_MONITORING", "healthMonitoring.enabled", Kind::Bool, "Run the probes. false: no probe runs (check included); the availability check says so, availability and probe series are absent, the other checks go on."),
    ("CODEX_HEALTH_CHECK_INTERVAL", "healthMonitoring.checkInterval", Kind::Int, "ms between availability probes."),
    ("CODEX_HEALTH_CHECK_TIMEOUT", "healthMonitoring.healthCheckTimeout", Kind::Int, "ms one probe attempt may take."),
    ("CODEX_HEALTH_CHECK_RETRIES", "healthMonitoring.retries", Kind::Int, "Extra attempts after a failed probe."),
    ("CODEX_HEALTH_CHECK_RETRY_DELAY", "healthMonitoring.retryDelay", Kind::Int, "ms between attempts."),
    ("ENABLE_CODEX_HEALTH_ENDPOINTS", "healthMonitoring.endpoints.enabled", Kind::Bool, "Serve the HTTP endpoints."),
    ("CODEX_HEALTH_PORT", "healthMonitoring.endpoints.port", Kind::Int, "Port of the HTTP endpoints."),
    ("CODEX_HEALTH_HOST", "healthMonitoring.endpoints.host", Kind::Str, "Listen address of the HTTP endpoints (new)."),
    ("CODEX_HEALTH_PATH", "healthMonitoring.endpoints.path", Kind::Str, "Base path of the JSON endpoints (new)."),
    ("CODEX_HEALTH_MAX_CONNECTIONS", "healthMonitoring.endpoints.maxConnections", Kind::Int, "Connections the HTTP endpoints serve at once; more are refused (new)."),
    ("CODEX_HEALTH_HEADER_TIMEOUT", "healthMonitoring.endpoints.headerReadTimeout", Kind::Int, "ms a client has to send a request's headers, and the keep-alive idle limit (new)."),
    ("CODEX_HEALTH_WEB_CONFIG_FILE", "healthMonitoring.endpoints.webConfigFile", Kind::Str, "Web config file (TLS, basic auth; the Prometheus exporter toolkit's format); also `--web.config.file` (new)."),
    ("CODEX_HEALTH_THRESHOLD_AVAILABILITY_TIMEOUT", "healthMonitoring.thresholds.availabilityTimeout", Kind::Int, "ms; a slower probe is a warning."),
    ("CODEX_HEALTH_THRESHOLD_MAX_EXECUTION_TIME", "healthMonitoring.thresholds.maxExecutionTime", Kind::Int, "ms; p95 above it is a warning."),
    ("CODEX_HEALTH_THRESHOLD_SUCCESS_RATE", "healthMonitoring.thresholds.minSuccessRate", Kind::Float, "Percent; success below it (error rate above 100 − it) makes the success-rate and error-rate checks and the failure-rate alert critical."),
    ("CODEX_HEALTH_THRESHOLD_MAX_ERROR_RATE", "healthMonitoring.thresholds.maxErrorRate", Kind::Float, "Percent of executions failed or timed out; above it the error-rate check and the failure-rate alert are a warning."),
    ("CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE", "healthMonitoring.thresholds.maxMemoryUsage", Kind::Int, "MB across Codex processes."),
    ("CODEX_HEALTH_THRESHOLD_MAX_CONCURRENT_PROCESSES", "healthMonitoring.thresholds.maxConcurrentProcesses", Kind::Int, "Codex processes at once."),
    ("CODEX_HEALTH_THRESHOLD_MAX_DISK_USAGE", "healthMonitoring.thresholds.maxDiskUsage", Kind::Float, "Percent of a log directory's size limit; above it the disk-usage check is a warning (new)."),
    ("CODEX_HEALTH_THRESHOLD_CRITICAL_DISK_USAGE", "healthMonitoring.thresholds.criticalDiskUsage", Kind::Float, "Percent of a log directory's size limit; above it the disk-usage check is critical (new)."),
    ("CODEX_HEALTH_THRESHOLD_MIN_HOURS_TO_FULL", "healthMonitoring.thresholds.minHoursToFull", Kind::Float, "Hours; a log directory that would fill its size limit sooner at its measured growth rate makes the disk-usage check a warning; 0 turns this off (new)."),
    // — how Codex is run
    ("CODEX_EXECUTABLE", "codex.executable", Kind::Str, "Codex executable name or path (new)."),
    ("CODEX_EXECUTABLE_IN", "codex.executableIn", Kind::Str, "Where the probes find `codex.executable`: `agent` (its own filesystem, default) or `application` (an absolute path in the root filesystem of an application process of the pod, run without copying it) (new)."),
    ("CODEX_PROBE_ARGS", "codex.args", Kind::Args, "Arguments of the availability probe, space-separated (new)."),
    ("CODEX_MAX_RETRIES", "codex.maxRetries", Kind::Int, "The application's retry budget per operation."),
    ("CODEX_OPERATION_TIMEOUT", "codex.operationTimeout", Kind::Int, "The application's per-operation timeout, ms."),
    ("CODEX_DEBUG", "logging.debug", Kind::Bool, "Debug-level logs."),
    ("CODEX_SENTINEL_LOG_FORMAT", "logging.format", Kind::Str, "text or json (new)."),
    ("CODEX_STATE_DIR", "stateDir", Kind::Str, "Directory for persistent state (new)."),
    // — the agent's own log files and reloading (new)
    ("ENABLE_CODEX_AUDIT_LOGS", "auditLog.enabled", Kind::Bool, "Write logs/audit/health-checks|errors|performance-YYYY-MM-DD.log (new)."),
    ("CODEX_AUDIT_LOG_DIR", "auditLog.dir", Kind::Str, "Directory of the audit log files (new)."),
    ("CODEX_AUDIT_LOG_RETENTION_DAYS", "auditLog.retentionDays", Kind::Int, "Delete audit log files older than this many days; 0 keeps them (new)."),
    ("CODEX_AUDIT_PERFORMANCE_INTERVAL", "auditLog.performanceInterval", Kind::Int, "ms between performance log lines (new)."),
    ("CODEX_AUDIT_LOG_SIZE_LIMIT", "auditLog.sizeLimit", Kind::Str, "Size limit of the audit directory's volume: bytes or a Kubernetes quantity (32Mi); unset: usage measured, not judged (new)."),
    ("ENABLE_CODEX_DISK_USAGE", "diskUsage.enabled", Kind::Bool, "Measure the bytes used by the operations-log and audit directories (new)."),
    ("CODEX_DISK_USAGE_INTERVAL", "diskUsage.sampleInterval", Kind::Int, "ms between two walks of those directories (new)."),
    ("CODEX_DISK_USAGE_GROWTH_WINDOW", "diskUsage.growthWindow", Kind::Int, "ms of samples the log growth rate is computed over (new)."),
    ("CODEX_DISK_USAGE_MAX_ENTRIES", "diskUsage.maxEntries", Kind::Int, "Files and directories one walk reads at most; beyond, the usage is a lower bound (new)."),
    ("CODEX_SENTINEL_RELOAD_WATCH", "reload.watchFile", Kind::Bool, "Reload when the configuration file changes, not only on SIGHUP (new)."),
    ("CODEX_SENTINEL_RELOAD_INTERVAL", "reload.watchInterval", Kind::Int, "ms between checks of the configuration file (new)."),
    // — performance baselines
    ("CODEX_PERF_BASELINE_AVG_TIME", "baselines.avgTime", Kind::Int, "ms."),
    ("CODEX_PERF_BASELINE_P95_TIME", "baselines.p95Time", Kind::Int, "ms."),
    ("CODEX_PERF_BASELINE_P99_TIME", "baselines.p99Time", Kind::Int, "ms."),
    ("CODEX_PERF_BASELINE_SUCCESS_RATE", "baselines.successRate", Kind::Float, "Percent."),
    ("CODEX_PERF_BASELINE_AVAILABILITY", "baselines.availability", Kind::Float, "Percent."),
    ("CODEX_PERF_BASELINE_MEMORY_MB", "baselines.memoryMb", Kind::Int, "MB."),
    ("CODEX_PERF_BASELINE_MAX_PROCESSES", "baselines.maxProcesses", Kind::Int, "Processes."),
    ("CODEX_PERF_BASELINE_LEARN", "baselines.learn", Kind::Bool, "Fill unset baselines with ones learned from history; explicit values win (new)."),
    ("CODEX_PERF_BASELINE_LEARNING_DAYS", "baselines.learningDays", Kind::Int, "Days of history a learned baseline needs and uses (new)."),
    ("ENABLE_CODEX_HISTORY", "history.enabled", Kind::Bool, "Keep per-hour aggregates in stateDir for reports and learned baselines (new)."),
    ("CODEX_HISTORY_RETENTION_DAYS", "history.retentionDays", Kind::Int, "Days of per-hour aggregates kept (new)."),
    // — process sampling (new names)
    ("CODEX_PROCESS_NAMES", "processes.names", Kind::List, "Comma-separated process names that count as Codex."),
    ("CODEX_PROCESS_CMDLINE_REGEX", "processes.cmdlineRegex", Kind::Str, "Regular expression over the command line."),
    ("CODEX_SAMPLE_INTERVAL", "processes.sampleInterval", Kind::Int, "ms between process samples."),
    ("CODEX_PROCESS_EXE_PATHS", "processes.exePaths", Kind::List, "Comma-separated executable paths that count as Codex; a trailing / matches a directory."),
    ("CODEX_PROCESS_ANCESTOR_PID", "processes.ancestorPid", Kind::Int, "Only descendants of this PID count."),
    ("CODEX_PROCESS_ANCESTOR_NAMES", "processes.ancestorNames", Kind::List, "Only descendants of processes with these names count."),
    ("CODEX_PROCESS_DISCOVERY_INTERVAL", "processes.discoveryInterval", Kind::Int, "ms between full /proc listings that find new processes."),
    ("CODEX_PROCESS_WINDOW", "processes.window", Kind::Int, "ms of the rolling window of resource metrics."),
    ("CODEX_PROCESS_TOP_N", "processes.topN", Kind::Int, "Heaviest processes listed in the detailed metrics (0 = none)."),
    // — operations log (new names)
    ("CODEX_OPERATIONS_LOG_DIR", "operationsLog.dir", Kind::Str, "Directory of codex-operations-YYYY-MM-DD.jsonl."),
    ("CODEX_OPERATIONS_LOG_BACKFILL", "operationsLog.backfill", Kind::Bool, "First start without a checkpoint: read today's file from its start, not its end."),
    ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "operationsLog.sizeLimit", Kind::Str, "Size limit of the operations-log directory's volume: bytes or a Kubernetes quantity (256Mi); unset: usage measured, not judged (new)."),
    // — alerting
    ("ENABLE_CODEX_ALERTING", "alerting.enabled", Kind::Bool, "Evaluate alert rules."),
    ("CODEX_ALERT_COOLDOWN", "alerting.cooldown", Kind::Int, "ms between repeats of one alert."),
    ("CODEX_MAX_ACTIVE_ALERTS", "alerting.maxActiveAlerts", Kind::Int, "Active alerts at most."),
    ("CODEX_ALERT_AGGREGATION", "alerting.aggregation", Kind::Bool, "Group alerts raised close together."),
    ("CODEX_ALERT_AGGREGATION_WINDOW", "alerting.aggregationWindow", Kind::Int, "ms of one group."),
    ("CODEX_ALERT_WEBHOOK_URL", "alerting.webhook.url", Kind::Str, "Webhook (Slack when hooks.slack.com). Secret."),
    ("CODEX_ALERT_WEBHOOK_FORMAT", "alerting.webhook.format", Kind::Str, "generic or slack (new)."),
    ("CODEX_ALERT_SLACK_CHANNEL", "alerting.slack.channel", Kind::Str, "Legacy Slack webhooks only."),
    ("CODEX_ALERT_SLACK_USERNAME", "alerting.slack.username", Kind::Str, "Legacy Slack webhooks only."),
    ("CODEX_ALERT_SMTP_HOST", "alerting.email.smtpHost", Kind::Str, "SMTP server."),
    ("CODEX_ALERT_SMTP_PORT", "alerting.email.smtpPort", Kind::Int, "SMTP port."),
    ("CODEX_ALERT_SMTP_USER", "alerting.email.smtpUser", Kind::Str, "SMTP user."),
    ("CODEX_ALERT_SMTP_PASS", "alerting.email.smtpPass", Kind::Str, "SMTP password. Secret."),
    ("CODEX_ALERT_SMTP_FROM", "alerting.email.smtpFrom", Kind::Str, "From header."),
    ("CODEX_ALERT_SMTP_TLS", "alerting.email.tls", Kind::Str, "starttls, tls or none (new)."),
    ("CODEX_ALERT_EMAIL_RECIPIENTS", "alerting.email.recipients", Kind::List, "Comma-separated recipients."),
    ("CODEX_ALERTMANAGER_URL", "alerting.alertmanager.url", Kind::Str, "Alertmanager base URL (new). Secret."),
    ("CODEX_ALERTMANAGER_RESEND_INTERVAL", "alerting.alertmanager.resendInterval", Kind::Int, "ms between re-sends of firing alerts to Alertmanager (new)."),
    ("CODEX_ALERT_EVALUATION_INTERVAL", "alerting.evaluationInterval", Kind::Int, "ms between rule evaluations (new)."),
    ("CODEX_ALERT_HOLD_EVALUATIONS", "alerting.holdEvaluations", Kind::Int, "Evaluations a condition must hold before firing (new)."),
    ("CODEX_ALERT_CLEAR_EVALUATIONS", "alerting.clearEvaluations", Kind::Int, "Evaluations a condition must be gone before resolving (new)."),
    ("CODEX_ALERT_RUNBOOK_BASE_URL", "alerting.runbookBaseUrl", Kind::Str, "Runbook link prefix; the rule's slug is appended (new)."),
    ("CODEX_ALERT_GENERATOR_URL", "alerting.generatorUrl", Kind::Str, "generatorURL sent to Alertmanager (new)."),
    ("CODEX_ALERT_MAINTENANCE_TOKEN", "alerting.maintenance.token", Kind::Str, "Bearer token of the maintenance endpoint (new). Secret."),
    ("CODEX_ALERT_WEBHOOK_HEADERS", "alerting.webhook.headers", Kind::Map, "Extra webhook headers, Name=value,Name2=value2 (new). Secret."),
    ("CODEX_ALERT_SEND_TIMEOUT", "alerting.delivery.timeout", Kind::Int, "ms one notification send may take (new)."),
    ("CODEX_ALERT_MAX_ATTEMPTS", "alerting.delivery.maxAttempts", Kind::Int, "Attempts per notification and sink (new)."),
    ("CODEX_ALERT_RETRY_BACKOFF", "alerting.delivery.initialBackoff", Kind::Int, "ms before the first retry, doubling (new)."),
    ("CODEX_ALERT_RETRY_MAX_BACKOFF", "alerting.delivery.maxBackoff", Kind::Int, "ms; longest wait between retries (new)."),
    ("CODEX_ALERT_FAILURE_RATE_WARNING", "alerting.rules.failureRateWarning", Kind::Float, "Overrides CODEX_HEALTH_THRESHOLD_MAX_ERROR_RATE for the error-rate check and failure-rate alert (new)."),
    ("CODEX_ALERT_FAILURE_RATE_CRITICAL", "alerting.rules.failureRateCritical", Kind::Float, "Overrides 100 − CODEX_HEALTH_THRESHOLD_SUCCESS_RATE as the critical error rate (new)."),
    ("CODEX_ALERT_MIN_EXECUTIONS", "alerting.rules.minExecutions", Kind::Int, "Executions in the window before rates are judged by checks and rules (new)."),
    ("CODEX_ALERT_MEMORY_CRITICAL_MB", "alerting.rules.memoryCriticalMb", Kind::Int, "MB that counts as memory exhaustion, for check and alert; default 1.5 × max memory (new)."),
    ("CODEX_ALERT_CPU_WARNING_PERCENT", "alerting.rules.cpuWarningPercent", Kind::Float, "Percent of one core for a CPU warning (new)."),
    ("CODEX_ALERT_QUEUE_BACKLOG", "alerting.rules.queueBacklog", Kind::Float, "Queued operations for a backlog warning (new)."),
    ("CODEX_ALERT_QUEUE_WAIT", "alerting.rules.queueWait", Kind::Float, "ms of average queue wait for a backlog warning (new)."),
    ("CODEX_ALERT_DISABLED_RULES", "alerting.rules.disabled", Kind::List, "Comma-separated rule ids that never fire (new)."),
    // — the ecosystems' own variables
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "export.otlp.endpoint", Kind::Str, "Setting it alone turns OTLP export on."),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "export.otlp.metricsEndpoint", Kind::Str, "Full metrics URL, used as is (wins over the base endpoint)."),
    ("OTEL_EXPORTER_OTLP_HEADERS", "export.otlp.headers", Kind::Map, "key=value,… headers on every export (URL-encoded values). Secret."),
    ("OTEL_SERVICE_NAME", "export.otlp.serviceName", Kind::Str, "service.name resource attribute (default codex-sentinel)."),
    ("OTEL_RESOURCE_ATTRIBUTES", "export.otlp.resourceAttributes", Kind::Str, "key=value,… extra resource attributes."),
    ("CODEX_OTLP_ENABLED", "export.otlp.enabled", Kind::Bool, "Force OTLP export on or off (new; default: on when an endpoint or preset is set)."),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "export.otlp.protocol", Kind::Str, "grpc or http/protobuf."),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "export.otlp.compression", Kind::Str, "gzip or none."),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "export.otlp.timeout", Kind::Int, "ms per export."),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "export.otlp.temporality", Kind::Str, "cumulative or delta."),
    ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "export.otlp.histogramAggregation", Kind::Str, "base2_exponential_bucket_histogram (default) or explicit_bucket_histogram."),
    ("OTEL_METRIC_EXPORT_INTERVAL", "export.otlp.interval", Kind::Int, "ms between exports."),
    ("CODEX_OTLP_PRESET", "export.otlp.preset", Kind::Str, "collector, newrelic, newrelic-eu, datadog (new; datadog-agent is a deprecated alias)."),
    ("NEW_RELIC_LICENSE_KEY", "export.otlp.apiKey", Kind::Str, "Sent as api-key by the newrelic preset. Secret."),
    ("DD_AGENT_HOST", "export.statsd.host", Kind::Str, "Setting it alone turns DogStatsD on."),
    ("DD_DOGSTATSD_PORT", "export.statsd.port", Kind::Int, "DogStatsD port."),
    ("DD_DOGSTATSD_URL", "export.statsd.url", Kind::Str, "udp://host:port or unix:///path."),
    ("DD_ENV", "export.statsd.env", Kind::Str, "env tag."),
    ("DD_SERVICE", "export.statsd.service", Kind::Str, "service tag."),
    ("DD_VERSION", "export.statsd.version", Kind::Str, "version tag."),
    ("DD_ENTITY_ID", "export.statsd.entityId", Kind::Str, "dd.internal.entity_id tag."),
    ("DD_TAGS", "export.statsd.extraTags", Kind::Args, "Extra DogStatsD tags, key:value separated by spaces or commas."),
    ("CODEX_EXPORT_METRICS_INCLUDE", "export.metrics.include", Kind::List, "Metric names or globs the push exporters (OTLP, StatsD) send, comma-separated; empty: all (new)."),
    ("CODEX_EXPORT_METRICS_EXCLUDE", "export.metrics.exclude", Kind::List, "Metric names or globs the push exporters drop, comma-separated, e.g. `codex_sentinel.*` (the agent's self-metrics); wins over include (new)."),
    ("CODEX_STATSD_ENABLED", "export.statsd.enabled", Kind::Bool, "Force StatsD export on or off (new; default: on when DD_AGENT_HOST or DD_DOGSTATSD_URL is set)."),
    ("CODEX_STATSD_TAGS", "export.statsd.tags", Kind::Bool, "DogStatsD tags and service checks (true) or plain StatsD (false) (new)."),
    ("CODEX_STATSD_TIMING_KIND", "export.statsd.timingKind", Kind::Str, "distribution or histogram for execution times (new)."),
    ("CODEX_STATSD_INTERVAL", "export.statsd.interval", Kind::Int, "ms between StatsD flushes (new)."),
    ("CODEX_STATSD_PACK_VALUES", "export.statsd.packValues", Kind::Bool, "Several values a DogStatsD line (default true; false for an OpenTelemetry Collector's statsd receiver) (new)."),
    ("CODEX_STATSD_MAX_VALUES", "export.statsd.maxValuesPerInterval", Kind::Int, "Values per histogram series and flush before sampling with |@rate (default 1000) (new)."),
    ("CODEX_STATSD_PREFIX", "export.statsd.prefix", Kind::Str, "Prefix before every StatsD name (new)."),
    // — Kubernetes downward API (set by the Helm chart)
    ("K8S_POD_NAME", "export.kubernetes.podName", Kind::Str, "k8s.pod.name resource attribute and pod_name tag."),
    ("K8S_NAMESPACE_NAME", "export.kubernetes.namespaceName", Kind::Str, "k8s.namespace.name resource attribute and kube_namespace tag."),
    ("K8S_NODE_NAME", "export.kubernetes.nodeName", Kind::Str, "k8s.node.name resource attribute and kube_node tag."),
    ("K8S_CONTAINER_NAME", "export.kubernetes.containerName", Kind::Str, "k8s.container.name resource attribute and kube_container_name tag."),
    // — the application's own tuning variables (accepted and shown, not used by the agent)
    ("AUDIT_TIMEOUT_SECONDS", "application.auditTimeoutSeconds", Kind::Int, "Application setting."),
    ("MAX_CONCURRENT_AUDITS", "application.maxConcurrentAudits", Kind::Int, "Application setting."),
    ("ENABLE_AUDIT_CACHING", "application.enableAuditCaching", Kind::Bool, "Application setting."),
    ("MAX_SESSION_HISTORY", "application.maxSessionHistory", Kind::Int, "Application setting."),
    ("SESSION_CLEANUP_INTERVAL", "application.sessionCleanupInterval", Kind::Int, "Application setting."),
    ("MAX_CONCURRENT_SESSIONS", "application.maxConcurrentSessions", Kind::Int, "Application setting."),
];

/// Variables whose value must never be shown.
pub fn is_secret_var(name: &str) -> bool {
    matches!(
        name,
        "CODEX_ALERT_WEBHOOK_URL"
            | "CODEX_ALERT_SMTP_PASS"
            | "NEW_RELIC_LICENSE_KEY"
            | "CODEX_ALERTMANAGER_URL"
            | "CODEX_ALERT_MAINTENANCE_TOKEN"
            | "CODEX_ALERT_WEBHOOK_HEADERS"
            | "OTEL_EXPORTER_OTLP_HEADERS"
    )
}

/// The variable that sets `key`, if any. When several do, the one listed last wins, as in
/// [`SpecEnv`]'s merge order.
pub fn var_for_key(key: &str) -> Option<&'static str> {
    ENV_VARS
        .iter()
        .rev()
        .find(|(_, k, _, _)| *k == key)
        .map(|(v, _, _, _)| *v)
}

/// The figment provider over the variables of [`ENV_VARS`] present in a given environment.
pub struct SpecEnv {
    values: Dict,
    /// Which variable set each key path, for error messages and `config show`.
    set_by: std::sync::Arc<std::collections::HashMap<String, &'static str>>,
    deprecations: Vec<renames::Deprecation>,
}

impl SpecEnv {
    /// Collects the known variables from `env`, old names ([`renames::RENAMES`]) included.
    /// Empty values count as unset.
    pub fn new(env: &[(String, String)]) -> Result<Self, ConfigError> {
        Self::with_renames(env, renames::RENAMES)
    }

    fn with_renames(
        env: &[(String, String)],
        table: &[renames::Rename],
    ) -> Result<Self, ConfigError> {
        let mut values = Dict::new();
        let mut set_by = std::collections::HashMap::new();
        let mut deprecations = Vec::new();
        let set = |name: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, raw)| raw.trim())
                .filter(|raw| !raw.is_empty())
        };
        for (var, key, kind, _) in ENV_VARS {
            // A variable's old name (renames::RENAMES) still works; the new one wins.
            let mut found = set(var).map(|raw| (*var, raw));
            for rename in renames::old_variables(table, var) {
                if let Some(raw) = set(rename.old) {
                    renames::note(
                        &mut deprecations,
                        renames::Deprecation {
                            rename: *rename,
                            source: format!("environment variable {}", rename.old),
                        },
                    );
                    found = found.or(Some((rename.old, raw)));
                }
            }
            let Some((name, raw)) = found else {
                continue;
            };
            if *kind == Kind::Map && is_secret_var(var) {
                check_header_list(name, raw)?;
            }
            insert_path(&mut values, key, parse(raw, *kind));
            set_by.insert(key.to_string(), name);
        }
        Ok(SpecEnv {
            values,
            set_by: std::sync::Arc::new(set_by),
            deprecations,
        })
    }

    /// The old variable names this environment uses.
    pub fn deprecations(&self) -> &[renames::Deprecation] {
        &self.deprecations
    }
}

/// Checks a `name=value,…` header list before anything else sees it. The message names the
/// variable, the entry's position and the valid start of its name, never anything from the
/// first wrong character on: `api-key:VALUE` or a value with a newline is usually a secret
/// typed slightly wrong, and error messages end up in container logs.
pub fn check_header_list(var: &str, raw: &str) -> Result<(), ConfigError> {
    let header_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    for (i, entry) in raw.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let n = i + 1;
        let name = entry.split_once('=').map_or(entry, |(name, _)| name).trim();
        let valid: String = name.chars().take_while(|c| header_char(*c)).collect();
        if valid.len() < name.len() || !entry.contains('=') {
            let why = match name[valid.len()..].chars().next() {
                Some(c) if c.is_ascii_graphic() => format!("then a '{c}'"),
                Some(_) => "then a space or control character".to_string(),
                None => "then no '='".to_string(),
            };
            let start = if valid.is_empty() {
                "an empty header name".to_string()
            } else {
                format!("the name `{valid}`")
            };
            return Err(ConfigError(format!(
                "invalid value for {var}: entry {n} has {start} {why}; write name=value \
                 (the rest of the entry is not shown: it may hold a secret)"
            )));
        }
        if valid.is_empty() {
            return Err(ConfigError(format!(
                "invalid value for {var}: entry {n} has an empty header name before '='"
            )));
        }
        let value = entry.split_once('=').map_or("", |(_, v)| v).trim();
        let decoded = percent_decode(value);
        if decoded.chars().any(|c| c.is_control()) {
            return Err(ConfigError(format!(
                "invalid value for {var}: the value of header `{valid}` (entry {n}) holds a \
                 control character such as a newline (the value is not shown)"
            )));
        }
    }
    Ok(())
}

fn parse(raw: &str, kind: Kind) -> Value {
    match kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::from(true),
            "false" | "0" | "no" | "off" => Value::from(false),
            _ => Value::from(raw.to_string()),
        },
        Kind::Int => match raw.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(raw.to_string()),
        },
        Kind::Float => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() => Value::from(n),
            _ => Value::from(raw.to_string()),
        },
        Kind::Str => Value::from(raw.to_string()),
        Kind::List => Value::from(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_string()))
                .collect::<Vec<_>>(),
        ),
        Kind::Args => Value::from(
            raw.split_whitespace()
                .map(|s| Value::from(s.to_string()))
                .collect::<Vec<_>>(),
        ),
        Kind::Map => {
            let mut map = Dict::new();
            for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                map.insert(
                    name.trim().to_string(),
                    Value::from(value.trim().to_string()),
                );
            }
            Value::from(map)
        }
    }
}

/// Parses the OpenTelemetry `key=value,key=value` list (headers, resource attributes): entries
/// without `=` or with an empty key are skipped; values are percent-decoded.
pub fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split(',')
        .filter_map(|entry| {
            let (k, v) = entry.split_once('=')?;
            let k = percent_decode(k.trim());
            (!k.is_empty()).then(|| (k, percent_decode(v.trim())))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && s.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn insert_path(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

impl Provider for SpecEnv {
    fn metadata(&self) -> Metadata {
        let set_by = self.set_by.clone();
        Metadata::named(METADATA_NAME).interpolater(move |_profile: &Profile, keys: &[&str]| {
            let key = keys.join(".");
            // A map variable (webhook headers) sets keys below its own: walk up to it.
            let mut path = key.as_str();
            let mut found = set_by.get(path).copied().or_else(|| var_for_key(path));
            while found.is_none() {
                let Some((parent, _)) = path.rsplit_once('.') else {
                    break;
                };
                path = parent;
                found = set_by.get(path).copied().or_else(|| var_for_key(path));
            }
            found
                .map(str::to_string)
                .unwrap_or_else(|| format!("for `{key}`"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_path_exists_in_the_config() {
        let json = serde_json::to_value(crate::config::Config::default()).unwrap();
        for (var, key, _, _) in ENV_VARS {
            let mut node = &json;
            for part in key.split('.') {
                node = node
                    .get(part)
                    .unwrap_or_else(|| panic!("{var} maps to unknown key {key}"));
            }
        }
    }

    #[test]
    fn an_old_variable_name_still_sets_its_key_once_and_the_new_name_wins() {
        use renames::{Kind, Rename};
        const TABLE: &[Rename] = &[Rename {
            kind: Kind::Variable,
            old: "CODEX_HEALTH_TIMEOUT_OLD",
            new: "CODEX_HEALTH_CHECK_TIMEOUT",
            since: "0.2.0",
        }];
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old =
            SpecEnv::with_renames(&env(&[("CODEX_HEALTH_TIMEOUT_OLD", "7000")]), TABLE).unwrap();
        let deprecations = old.deprecations().to_vec();
        let fig = figment::Figment::from(figment::providers::Serialized::defaults(
            crate::config::Config::default(),
        ))
        .merge(old);
        let config: crate::config::Config = fig.extract().unwrap();
        assert_eq!(config.health_monitoring.health_check_timeout, 7000);
        // Errors and `config show` name the variable the user set.
        assert_eq!(
            crate::config::source_of(&fig, "healthMonitoring.healthCheckTimeout"),
            "environment variable CODEX_HEALTH_TIMEOUT_OLD"
        );
        assert_eq!(deprecations.len(), 1);
        assert!(deprecations[0]
            .to_string()
            .starts_with("environment variable CODEX_HEALTH_TIMEOUT_OLD is deprecated"));

        let both = SpecEnv::with_renames(
            &env(&[
                ("CODEX_HEALTH_TIMEOUT_OLD", "7000"),
                ("CODEX_HEALTH_CHECK_TIMEOUT", "9000"),
            ]),
            TABLE,
        )
        .unwrap();
        assert_eq!(
            both.set_by["healthMonitoring.healthCheckTimeout"],
            "CODEX_HEALTH_CHECK_TIMEOUT"
        );
        assert_eq!(
            both.deprecations().len(),
            1,
            "the old name is still reported"
        );

        let new =
            SpecEnv::with_renames(&env(&[("CODEX_HEALTH_CHECK_TIMEOUT", "9000")]), TABLE).unwrap();
        assert!(new.deprecations().is_empty());
    }

    #[test]
    fn kinds_parse_as_documented() {
        assert_eq!(parse("YES", Kind::Bool), Value::from(true));
        assert_eq!(parse("off", Kind::Bool), Value::from(false));
        assert_eq!(parse("0123", Kind::Str), Value::from("0123".to_string()));
        assert_eq!(
            parse("a@x, b@y,,", Kind::List),
            Value::from(vec![
                Value::from("a@x".to_string()),
                Value::from("b@y".to_string())
            ])
        );
        assert_eq!(parse("12.5", Kind::Float), Value::from(12.5));
        assert_eq!(parse("soon", Kind::Int), Value::from("soon".to_string()));
        assert_eq!(
            parse_pairs("api-key=abc%3D%3D, x-team = a%20b,broken,=v"),
            vec![
                ("api-key".to_string(), "abc==".to_string()),
                ("x-team".to_string(), "a b".to_string())
            ]
        );
    }
}
