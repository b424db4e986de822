//! `healthMonitoring`: the specification's section — probe timing, thresholds, endpoints.

use serde::{Deserialize, Serialize};

use super::Check;

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
    /// Percent of a directory's size limit used above which the `disk-usage` check is warning.
    pub max_disk_usage: f64,
    /// Percent of a directory's size limit used above which the `disk-usage` check is critical.
    pub critical_disk_usage: f64,
    /// Hours: a directory that, growing at its measured rate, fills its size limit sooner makes
    /// the `disk-usage` check warning.
    pub min_hours_to_full: f64,
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
            max_disk_usage: 80.0,
            critical_disk_usage: 95.0,
            min_hours_to_full: 24.0,
        }
    }
}

/// Connections served at once unless configured (`CODEX_HEALTH_MAX_CONNECTIONS`). Each idle
/// connection costs about 20 KiB; 128 of them stay far below the chart's memory limit and far
/// below a 1,024 file-descriptor limit, leaving descriptors for the probes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// ms to send a request's headers (and to start the next one on a kept-alive connection).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Endpoints {
    pub enabled: bool,
    /// Listen address. Loopback by default: in a pod, set `0.0.0.0` to be scraped.
    pub host: String,
    pub port: u16,
    /// Base path of the JSON endpoints; `/status` and `/metrics` hang below it.
    pub path: String,
    /// Connections served at once; more are refused at once (a few extra stay reserved for
    /// `/livez` and `/readyz`, see docs/operations.md).
    pub max_connections: usize,
    /// ms a client has to send a request's headers, also the idle time allowed between two
    /// requests on a kept-alive connection.
    pub header_read_timeout: u64,
    /// TLS and authentication of the endpoints: a web config file in the Prometheus exporter
    /// toolkit's format (see `server::webconfig`). None: plain HTTP, no authentication.
    pub web_config_file: Option<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 3000,
            path: "/health/codex".into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT_MS,
            web_config_file: None,
        }
    }
}

impl HealthMonitoring {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        let hm = self;
        if hm.check_interval == 0 {
            bad(
                "healthMonitoring.checkInterval",
                "0".into(),
                "must be > 0 ms",
            );
        }
        if hm.health_check_timeout == 0 {
            bad(
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
            (
                "healthMonitoring.thresholds.maxDiskUsage",
                hm.thresholds.max_disk_usage,
            ),
            (
                "healthMonitoring.thresholds.criticalDiskUsage",
                hm.thresholds.critical_disk_usage,
            ),
        ] {
            if !(0.0..=100.0).contains(&v) {
                bad(key, v.to_string(), "a percentage must be within 0..100");
            }
        }
        if !(hm.thresholds.min_hours_to_full >= 0.0 && hm.thresholds.min_hours_to_full.is_finite())
        {
            return bad(
                "healthMonitoring.thresholds.minHoursToFull",
                hm.thresholds.min_hours_to_full.to_string(),
                "must be a number of hours >= 0 (0 turns the growth judgement off)",
            );
        }
        if !hm.endpoints.path.starts_with('/') || hm.endpoints.path.len() < 2 {
            bad(
                "healthMonitoring.endpoints.path",
                format!("{:?}", hm.endpoints.path),
                "must start with / and name a path",
            );
        }
        if hm.endpoints.max_connections == 0 {
            bad(
                "healthMonitoring.endpoints.maxConnections",
                "0".into(),
                "must be at least 1",
            );
        }
        if hm.endpoints.header_read_timeout == 0 {
            bad(
                "healthMonitoring.endpoints.headerReadTimeout",
                "0".into(),
                "must be > 0 ms",
            );
        }
        if hm.endpoints.host.parse::<std::net::IpAddr>().is_err() {
            bad(
                "healthMonitoring.endpoints.host",
                format!("{:?}", hm.endpoints.host),
                "must be an IP address such as 127.0.0.1 or 0.0.0.0",
            );
        }
    }
}
