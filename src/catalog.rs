//! Every metric the agent publishes, written once. Prometheus, OTLP and StatsD names all derive
//! from [`MetricDef`]: the OpenTelemetry name is the source; Prometheus replaces dots with
//! underscores and appends the unit suffix (`s` → `_seconds`, `By` → `_bytes`); StatsD uses the
//! OpenTelemetry name unless the specification fixes another one.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    /// Monotonic, cumulative since the agent started.
    Counter,
    Histogram,
}

/// One metric's definition.
#[derive(Debug, PartialEq)]
pub struct MetricDef {
    /// OpenTelemetry name (dots separate namespaces).
    pub name: &'static str,
    pub kind: MetricKind,
    /// UCUM unit as OpenTelemetry expects: `s`, `By`, `1`, `{process}`, `%`.
    pub unit: &'static str,
    pub help: &'static str,
    /// Attribute (label) keys, in order.
    pub labels: &'static [&'static str],
    /// The StatsD name when the specification fixes one; `None`: not sent over StatsD.
    pub statsd: Option<&'static str>,
    /// Histogram bucket upper bounds in the metric's unit (empty for other kinds).
    pub buckets: &'static [f64],
}

impl MetricDef {
    /// The Prometheus family name (without `_total`, which the encoder adds to counters).
    pub fn prometheus_name(&self) -> String {
        let base = self.name.replace('.', "_");
        match self.unit {
            "s" => format!("{base}_seconds"),
            "By" => format!("{base}_bytes"),
            "By/h" => format!("{base}_bytes_per_hour"),
            "%" => format!("{base}_percent"),
            _ => base,
        }
    }
}

/// Buckets of the specification's `codex_execution_time_seconds`.
pub const EXECUTION_TIME_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0];
/// Buckets for probe durations: `codex --version` takes tens to hundreds of milliseconds.
pub const PROBE_DURATION_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, $unit:literal, $help:literal, [$($label:literal),*], $statsd:expr, $buckets:expr) => {
        pub const $id: MetricDef = MetricDef {
            name: $name,
            kind: MetricKind::$kind,
            unit: $unit,
            help: $help,
            labels: &[$($label),*],
            statsd: $statsd,
            buckets: $buckets,
        };
    };
}

// — Codex, as the specification names it
metric!(
    AVAILABILITY,
    "codex.availability_status",
    Gauge,
    "1",
    "Codex CLI availability status (1=available, 0=unavailable)",
    [],
    Some("codex.availability"),
    &[]
);
metric!(
    HEALTH_STATUS,
    "codex.health_status",
    Gauge,
    "1",
    "Status of each health check (0=healthy, 1=warning, 2=critical, 3=unavailable)",
    ["check"],
    None,
    &[]
);
metric!(
    EXECUTION_TIME,
    "codex.execution_time",
    Histogram,
    "s",
    "Codex execution time in seconds, from the operations log",
    ["operation_type"],
    Some("codex.execution_time"),
    EXECUTION_TIME_BUCKETS
);
metric!(
    EXECUTION_TIME_P50,
    "codex.execution_time_p50",
    Gauge,
    "s",
    "Median execution time over the rolling window (all operation types), from the agent's own quantile sketch (within 0.5 %); absent while the window is empty",
    [],
    None,
    &[]
);
metric!(
    EXECUTION_TIME_P95,
    "codex.execution_time_p95",
    Gauge,
    "s",
    "95th percentile execution time over the rolling window (all operation types), from the agent's own quantile sketch (within 0.5 %); absent while the window is empty",
    [],
    None,
    &[]
);
metric!(
    EXECUTION_TIME_P99,
    "codex.execution_time_p99",
    Gauge,
    "s",
    "99th percentile execution time over the rolling window (all operation types), from the agent's own quantile sketch (within 0.5 %); absent while the window is empty",
    [],
    None,
    &[]
);
metric!(
    EXECUTIONS,
    "codex.executions",
    Counter,
    "1",
    "Codex executions read from the operations log, by result",
    ["operation_type", "result"],
    Some("codex.executions"),
    &[]
);
metric!(
    SUCCESS_RATE,
    "codex.success_rate",
    Gauge,
    "1",
    "Success rate of Codex operations in the rolling window (0..1; 1 when there were none)",
    [],
    Some("codex.success_rate"),
    &[]
);
metric!(
    MEMORY_USAGE,
    "codex.memory_usage",
    Gauge,
    "By",
    "Resident memory of all Codex processes in bytes",
    [],
    Some("codex.memory_usage"),
    &[]
);
metric!(
    CPU_USAGE,
    "codex.cpu_usage",
    Gauge,
    "%",
    "CPU of all Codex processes in percent of one core",
    [],
    Some("codex.cpu_usage"),
    &[]
);
metric!(
    ACTIVE_PROCESSES,
    "codex.active_processes",
    Gauge,
    "{process}",
    "Number of active Codex processes",
    [],
    Some("codex.active_processes"),
    &[]
);
metric!(
    CPU_UTILIZATION,
    "codex.cpu.utilization",
    Gauge,
    "1",
    "CPU of all Codex processes as a fraction (0..1) of the cores available to the agent, cgroup quota included (OpenTelemetry process.cpu.utilization semantics)",
    [],
    None,
    &[]
);
metric!(
    MATCHED_PROCESSES,
    "codex.os_processes",
    Gauge,
    "{process}",
    "Matched OS processes, npm node wrappers and matched children included (codex_active_processes counts each execution once)",
    [],
    None,
    &[]
);
metric!(
    EXECUTIONS_STARTED,
    "codex.processes_started",
    Counter,
    "{process}",
    "Codex executions seen by the process sampler since the agent started",
    [],
    None,
    &[]
);
// — probes
metric!(
    PROBE_DURATION,
    "codex.probe.duration",
    Histogram,
    "s",
    "Duration of each probe attempt in seconds",
    ["probe"],
    None,
    PROBE_DURATION_BUCKETS
);
metric!(
    PROBE_RUNS,
    "codex.probe.runs",
    Counter,
    "1",
    "Probe runs by outcome (success, failure, timeout, error)",
    ["probe", "result"],
    None,
    &[]
);
metric!(
    PROBE_RETRIES,
    "codex.probe.retries",
    Counter,
    "1",
    "Probe attempts beyond the first",
    ["probe"],
    None,
    &[]
);
// — the agent itself
metric!(
    AGENT_UPTIME,
    "codex_sentinel.uptime",
    Gauge,
    "s",
    "Seconds since the agent started",
    [],
    None,
    &[]
);
metric!(
    AGENT_BUILD_INFO,
    "codex_sentinel.build_info",
    Gauge,
    "1",
    "Always 1; the agent's version as a label",
    ["version"],
    None,
    &[]
);
metric!(
    AGENT_DROPPED_OBSERVATIONS,
    "codex_sentinel.dropped_observations",
    Counter,
    "1",
    "Observations dropped because the monitor's queue was full",
    ["source"],
    None,
    &[]
);
metric!(
    ALERTS_ACTIVE,
    "codex_sentinel.alerts_active",
    Gauge,
    "1",
    "Alerts firing now, by severity (standalone alerting)",
    ["severity"],
    None,
    &[]
);
metric!(
    ALERT_NOTIFICATIONS,
    "codex_sentinel.alert_notifications",
    Counter,
    "1",
    "Alert notification attempts by sink and result (delivered, retried, undelivered, rejected)",
    ["sink", "result"],
    None,
    &[]
);
metric!(
    NOTIFICATIONS_PENDING,
    "codex_sentinel.notifications_pending",
    Gauge,
    "1",
    "Alert notifications of the agent waiting for delivery, by sink (not the application's queue)",
    ["sink"],
    None,
    &[]
);
metric!(
    NOTIFICATIONS_DROPPED,
    "codex_sentinel.notifications_dropped",
    Counter,
    "1",
    "Alert notifications of the agent dropped undelivered because their sink's queue was full",
    ["sink"],
    None,
    &[]
);
metric!(
    MAINTENANCE_AUTH_FAILURES,
    "codex_sentinel.maintenance_auth_failures",
    Counter,
    "1",
    "Requests to the maintenance endpoint refused: wrong or missing token, or the client throttled",
    ["reason"],
    None,
    &[]
);
metric!(
    OPLOG_LINES,
    "codex_sentinel.oplog.lines",
    Counter,
    "1",
    "Operations-log lines read, by result (ok, malformed, invalid, missing_field, too_long, empty, implausible)",
    ["result"],
    None,
    &[]
);
metric!(
    OPLOG_READ_ERRORS,
    "codex_sentinel.oplog.read_errors",
    Counter,
    "1",
    "Problems reading the operations log, by kind (list, open, read, truncated_without_copy, lost_file, checkpoint_write)",
    ["kind"],
    None,
    &[]
);

metric!(
    AUDIT_LOG_LINES,
    "codex_sentinel.audit_log_lines",
    Counter,
    "1",
    "Lines for the audit log files by stream and result (written, failed: disk error, dropped: writer behind)",
    ["stream", "result"],
    None,
    &[]
);
metric!(
    CONFIG_RELOADS,
    "codex_sentinel.config_reloads",
    Counter,
    "1",
    "Configuration reloads by result (applied, unchanged, rejected)",
    ["result"],
    None,
    &[]
);
metric!(
    STATE_FILES_RECOVERED,
    "codex_sentinel.state_files_recovered",
    Counter,
    "1",
    "State files found corrupt or truncated, moved aside and started fresh, by kind",
    ["kind"],
    None,
    &[]
);
metric!(
    AGENT_EXPORT_ERRORS,
    "codex_sentinel.export_errors",
    Counter,
    "1",
    "Export cycles that failed, by exporter (otlp, statsd)",
    ["exporter"],
    Some("codex_sentinel.export_errors"),
    &[]
);

metric!(
    AGENT_MEMORY_RSS,
    "codex_sentinel.memory_rss",
    Gauge,
    "By",
    "Resident memory of the agent itself in bytes",
    [],
    Some("codex_sentinel.memory_rss"),
    &[]
);
metric!(
    AGENT_CPU_USAGE,
    "codex_sentinel.cpu_usage",
    Gauge,
    "%",
    "CPU of the agent itself in percent of one core, over the last sample interval",
    [],
    Some("codex_sentinel.cpu_usage"),
    &[]
);
metric!(
    AGENT_CPU_TIME,
    "codex_sentinel.cpu_time",
    Counter,
    "s",
    "CPU seconds used by the agent since it started, by mode (user, system)",
    ["cpu_mode"],
    None,
    &[]
);
metric!(
    AGENT_THREADS,
    "codex_sentinel.threads",
    Gauge,
    "{thread}",
    "Threads of the agent process",
    [],
    None,
    &[]
);
metric!(
    AGENT_OPEN_FDS,
    "codex_sentinel.open_fds",
    Gauge,
    "{fd}",
    "Open file descriptors of the agent process",
    [],
    None,
    &[]
);
metric!(
    AGENT_PROCESS_SAMPLES,
    "codex_sentinel.process_samples",
    Counter,
    "1",
    "Samples taken by the process sampler",
    [],
    None,
    &[]
);
metric!(
    AGENT_SAMPLE_DURATION,
    "codex_sentinel.process_sample_duration",
    Gauge,
    "s",
    "Seconds the last process sample took",
    [],
    None,
    &[]
);
metric!(
    AGENT_SAMPLER_EVENTS,
    "codex_sentinel.sampler_events",
    Counter,
    "1",
    "Process sampler events: vanished (exited between listing and reading), unreadable (permission), pid_reused, zombie, failed (whole sample)",
    ["event"],
    None,
    &[]
);

// — The application's own queue and retries, from the operations log (`timing.queueWait`,
//   `retryCount`): the specification's secondary metrics. Named `codex.operations.*`, apart
//   from the agent's notification queue (`codex_sentinel_notifications_pending{sink}`).
metric!(
    APP_QUEUE_SIZE,
    "codex.operations.queue_size",
    Gauge,
    "{operation}",
    "Operations waiting in the application's queue (queueMetrics.currentSize: average wait x arrival rate over the window)",
    [],
    Some("codex.operations.queue_size"),
    &[]
);
metric!(
    APP_QUEUE_WAIT,
    "codex.operations.queue_wait",
    Gauge,
    "s",
    "Average time operations waited in the application's queue over the window (queueMetrics.averageWaitTime)",
    [],
    Some("codex.operations.queue_wait"),
    &[]
);
metric!(
    APP_RETRY_RATE,
    "codex.operations.retry_rate",
    Gauge,
    "1",
    "Share of executions in the window the application retried at least once (0..1; reliabilityMetrics.retryRate / 100)",
    [],
    Some("codex.operations.retry_rate"),
    &[]
);

// — The log directories: bytes used (walked, not `statvfs`: an emptyDir's filesystem is the
//   node's disk), the volume's size limit the chart passes in, and the growth rate. `directory`
//   is `operations_log` (the application's operations log) or `audit_log` (the agent's files).
metric!(
    LOG_DISK_USAGE,
    "codex.logs.disk_usage",
    Gauge,
    "By",
    "Bytes used by a log directory (allocated blocks, as du counts them), by directory (operations_log, audit_log)",
    ["directory"],
    Some("codex.logs.disk_usage"),
    &[]
);
metric!(
    LOG_SIZE_LIMIT,
    "codex.logs.size_limit",
    Gauge,
    "By",
    "Size limit of a log directory's volume (operationsLog.sizeLimit, auditLog.sizeLimit); absent when not set",
    ["directory"],
    Some("codex.logs.size_limit"),
    &[]
);
metric!(
    LOG_GROWTH_RATE,
    "codex.logs.growth_rate",
    Gauge,
    "By/h",
    "Net growth of a log directory in bytes per hour over diskUsage.growthWindow (negative when rotation frees more than is written); absent until half the window is sampled",
    ["directory"],
    Some("codex.logs.growth_rate"),
    &[]
);

/// Every metric, in exposition order.
pub const CATALOG: &[&MetricDef] = &[
    &AVAILABILITY,
    &HEALTH_STATUS,
    &EXECUTION_TIME,
    &EXECUTION_TIME_P50,
    &EXECUTION_TIME_P95,
    &EXECUTION_TIME_P99,
    &EXECUTIONS,
    &SUCCESS_RATE,
    &MEMORY_USAGE,
    &CPU_USAGE,
    &ACTIVE_PROCESSES,
    &CPU_UTILIZATION,
    &MATCHED_PROCESSES,
    &EXECUTIONS_STARTED,
    &PROBE_DURATION,
    &PROBE_RUNS,
    &PROBE_RETRIES,
    &AGENT_UPTIME,
    &AGENT_BUILD_INFO,
    &AGENT_DROPPED_OBSERVATIONS,
    &ALERTS_ACTIVE,
    &ALERT_NOTIFICATIONS,
    &NOTIFICATIONS_PENDING,
    &NOTIFICATIONS_DROPPED,
    &MAINTENANCE_AUTH_FAILURES,
    &OPLOG_LINES,
    &OPLOG_READ_ERRORS,
    &AUDIT_LOG_LINES,
    &CONFIG_RELOADS,
    &STATE_FILES_RECOVERED,
    &AGENT_MEMORY_RSS,
    &AGENT_CPU_USAGE,
    &AGENT_CPU_TIME,
    &AGENT_THREADS,
    &AGENT_OPEN_FDS,
    &AGENT_PROCESS_SAMPLES,
    &AGENT_SAMPLE_DURATION,
    &AGENT_SAMPLER_EVENTS,
    &AGENT_EXPORT_ERRORS,
    &APP_QUEUE_SIZE,
    &APP_QUEUE_WAIT,
    &APP_RETRY_RATE,
    &LOG_DISK_USAGE,
    &LOG_SIZE_LIMIT,
    &LOG_GROWTH_RATE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specification_names_come_out() {
        assert_eq!(AVAILABILITY.prometheus_name(), "codex_availability_status");
        assert_eq!(
            EXECUTION_TIME.prometheus_name(),
            "codex_execution_time_seconds"
        );
        assert_eq!(SUCCESS_RATE.prometheus_name(), "codex_success_rate");
        assert_eq!(MEMORY_USAGE.prometheus_name(), "codex_memory_usage_bytes");
        assert_eq!(ACTIVE_PROCESSES.prometheus_name(), "codex_active_processes");
        assert_eq!(AVAILABILITY.statsd, Some("codex.availability"));
        assert_eq!(EXECUTION_TIME.buckets, &[1.0, 5.0, 10.0, 30.0, 60.0]);
        assert_eq!(
            LOG_GROWTH_RATE.prometheus_name(),
            "codex_logs_growth_rate_bytes_per_hour"
        );
        assert_eq!(
            LOG_DISK_USAGE.prometheus_name(),
            "codex_logs_disk_usage_bytes"
        );
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.prometheus_name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }
}
