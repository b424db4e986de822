//! `export`: OTLP and StatsD exporters and the Kubernetes attributes they carry. The values
//! the exporters resolve from several keys together (endpoints, presets, headers) are checked
//! by the exporters themselves (`export::validate`), which this layer does not know.

use serde::{Deserialize, Serialize};

use super::{Check, Secret};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExportConfig {
    pub otlp: OtlpConfig,
    pub statsd: StatsdConfig,
    /// Which metrics the push exporters send (checked by `export::filter`).
    pub metrics: MetricsFilterConfig,
    /// Where the agent runs in Kubernetes (downward-API variables `K8S_*`): OTLP resource
    /// attributes `k8s.*` and DogStatsD tags.
    pub kubernetes: KubernetesConfig,
}

/// `export.metrics`: metric names or globs (`codex_sentinel.*`) the push exporters (OTLP,
/// StatsD) send (`include`, empty = all) and drop (`exclude`, wins). `/metrics` is not filtered.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MetricsFilterConfig {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
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
    /// `collector`, `newrelic`, `newrelic-eu` or `datadog` (checked by the OTLP exporter).
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
    /// How histograms are aggregated: `base2_exponential_bucket_histogram` (default; every
    /// value within about 1 % of its bucket) or `explicit_bucket_histogram` (the catalog's
    /// bounds, for backends without exponential histograms).
    pub histogram_aggregation: Option<String>,
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
            histogram_aggregation: None,
        }
    }
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
    /// Several values on one line (`name:1.2:0.4|d`, DogStatsD 1.1). Off for receivers that
    /// parse one value a line, such as the OpenTelemetry Collector's statsd receiver.
    pub pack_values: bool,
    /// Values of one histogram series sent per flush; beyond it a uniform sample of this many
    /// goes out with the sample rate (`|@0.25`) that keeps the platform's counts exact.
    pub max_values_per_interval: u64,
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
            pack_values: true,
            max_values_per_interval: 1000,
        }
    }
}

impl ExportConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if !matches!(
            self.statsd.timing_kind.as_str(),
            "distribution" | "histogram"
        ) {
            bad(
                "export.statsd.timingKind",
                format!("{:?}", self.statsd.timing_kind),
                "must be distribution or histogram",
            );
        }
        if let Some(t) = &self.otlp.temporality {
            if !matches!(
                t.to_ascii_lowercase().as_str(),
                "cumulative" | "delta" | "lowmemory"
            ) {
                bad(
                    "export.otlp.temporality",
                    format!("{t:?}"),
                    "must be cumulative, delta or lowmemory",
                );
            }
        }
        if let Some(p) = &self.otlp.protocol {
            if !matches!(p.as_str(), "grpc" | "http/protobuf") {
                bad(
                    "export.otlp.protocol",
                    format!("{p:?}"),
                    "must be grpc or http/protobuf",
                );
            }
        }
    }
}
