//! OTLP metrics export (gRPC or HTTP/protobuf) to an OpenTelemetry collector, New Relic or a
//! Datadog agent, through the OpenTelemetry SDK and `opentelemetry-otlp`.
//!
//! Shape: one task owns a meter provider with a [`ManualReader`]. Every interval it takes the
//! latest snapshot, feeds the instruments from the snapshot's samples, collects and exports
//! under a timeout. Instruments are made generically from the catalog:
//!
//! * gauge → observable gauge (observes the snapshot's value);
//! * counter → observable counter (observes the cumulative value; the SDK turns it into a
//!   cumulative or delta OTLP `Sum` according to the temporality);
//! * histogram → histogram fed with every observed value itself (execution and probe
//!   durations, [`crate::monitor::observed`]), with min and max; aggregated as a base-2
//!   exponential histogram (default: at most [`EXPONENTIAL_MAX_SIZE`] buckets, so the scale stays
//!   ≥ 6 — buckets 1.1 % wide — for values spanning up to 2^16, e.g. 10 ms … 11 min) or, with
//!   `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=explicit_bucket_histogram`, with
//!   the catalog's bounds for backends without exponential histograms.
//!
//! Where OpenTelemetry's semantic conventions name a metric, a twin is emitted too
//! ([`SEMCONV_TWINS`]). Scheduling, backoff and failure accounting are the common loop's
//! ([`super::run`]); an export in flight at shutdown is abandoned (the SDK rebuilds it from its
//! aggregation) and one last export is tried within [`FINAL_FLUSH_TIMEOUT`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::{Effective, Origin};
use super::{ExportError, Problem, PushExporter};
use crate::catalog::{MetricDef, MetricKind, CATALOG};
use crate::config::{Config, Secret};
use crate::monitor::observed::Observed;
use crate::monitor::snapshot::{Sample, SampleValue, Snapshot};
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};
use opentelemetry_sdk::Resource;

/// The `exporter` label value.
pub const EXPORTER: &str = "otlp";
/// Time the last export may take on shutdown (inside the agent's shutdown deadline).
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_millis(2500);
/// Most buckets of an exponential histogram point: the SDK lowers the scale until the values
/// fit, and 1024 keeps scale 6 (bucket width 2^(1/64) − 1 ≈ 1.09 %) for a range of 2^16.
pub const EXPONENTIAL_MAX_SIZE: u32 = 1024;
/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "codex-sentinel";

/// New Relic's OTLP endpoints (gRPC on 4317, HTTP on 4318).
pub const NEW_RELIC_US: &str = "https://otlp.nr-data.net";
pub const NEW_RELIC_EU: &str = "https://otlp.eu01.nr-data.net";

/// How histograms are aggregated, as `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramAggregation {
    Base2Exponential,
    /// The catalog's bounds (what Prometheus shows too).
    ExplicitBuckets,
}

impl HistogramAggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            HistogramAggregation::Base2Exponential => "base2_exponential_bucket_histogram",
            HistogramAggregation::ExplicitBuckets => "explicit_bucket_histogram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// As `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Protocol::Grpc => 4317,
            Protocol::HttpProtobuf => 4318,
        }
    }
}

/// Where the metrics go; each preset fills in endpoint, headers, temporality and compression
/// unless the configuration sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Any OTLP receiver; default endpoint localhost.
    Collector,
    /// New Relic: `api-key` header from `NEW_RELIC_LICENSE_KEY`, delta, gzip. EU keys (`eu…`)
    /// or the `newrelic-eu` preset pick the EU endpoint.
    NewRelic { eu: bool },
    /// The node's Datadog agent OTLP receiver (`DD_AGENT_HOST`), delta temporality.
    DatadogAgent,
}

impl Preset {
    /// As `CODEX_OTLP_PRESET` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Collector => "collector",
            Preset::NewRelic { eu: false } => "newrelic",
            Preset::NewRelic { eu: true } => "newrelic-eu",
            Preset::DatadogAgent => "datadog",
        }
    }

    /// Every preset name the agent accepts, as `CODEX_OTLP_PRESET` spells it. The Helm chart's
    /// names are checked against this list (`tests/names.rs`).
    pub const NAMES: &'static [&'static str] = &["collector", "newrelic", "newrelic-eu", "datadog"];
}

/// As `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` spells it.
pub fn temporality_name(t: Temporality) -> &'static str {
    match t {
        Temporality::Delta => "delta",
        Temporality::LowMemory => "lowmemory",
        _ => "cumulative",
    }
}

use super::semconv::{Convert, TwinKind, SEMCONV_TWINS};

/// Everything the exporter needs, resolved from configuration and presets.
#[derive(Debug, Clone)]
pub struct Settings {
    pub preset: Preset,
    pub protocol: Protocol,
    /// gRPC: the endpoint; HTTP: the full metrics URL.
    pub endpoint: String,
    pub headers: Vec<(String, Secret)>,
    pub timeout: Duration,
    pub interval: Duration,
    pub gzip: bool,
    pub temporality: Temporality,
    pub histograms: HistogramAggregation,
    pub resource: Vec<(String, String)>,
    /// The base endpoint (HTTP appends `/v1/metrics` to it), as `config show` prints it.
    pub base_endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// Where each setting came from; `headers` in the order of [`Settings::headers`].
    pub origins: Origins,
    /// `export.metrics`: the loop filters the catalog's metrics; the twins are made here.
    pub metrics: super::filter::MetricFilter,
}

/// Where each of [`Settings`]' values came from.
#[derive(Debug, Clone)]
pub struct Origins {
    pub enabled: Origin,
    pub preset: Origin,
    pub protocol: Origin,
    pub endpoint: Origin,
    pub metrics_endpoint: Origin,
    pub headers: Vec<Origin>,
    pub temporality: Origin,
    pub compression: Origin,
    pub service_name: Origin,
    pub histograms: Origin,
}

/// Whether OTLP export is on, and why: `enabled`, or — unset — whether an endpoint or a
/// preset is configured.
fn switched_on(c: &crate::config::OtlpConfig) -> (bool, Origin) {
    match c.enabled {
        Some(on) => (on, Origin::Key("export.otlp.enabled")),
        None if c.endpoint.is_some() || c.metrics_endpoint.is_some() || c.preset.is_some() => (
            true,
            Origin::Derived("on because an endpoint or a preset is set"),
        ),
        None => (
            false,
            Origin::Derived("off because no endpoint or preset is set"),
        ),
    }
}

/// The effective OTLP settings for `config show`, from [`Settings::resolve`] itself.
pub fn effective(config: &Config) -> Result<Vec<Effective>, Problem> {
    match Settings::resolve(config)? {
        Some(s) => Ok(s.effective()),
        None => {
            let (_, why) = switched_on(&config.export.otlp);
            Ok(vec![Effective::new("export.otlp.enabled", false, why)])
        }
    }
}

impl Settings {
    /// `Ok(None)` when OTLP export is off. On when `enabled` says so, or — `enabled` unset —
    /// when an endpoint or a preset is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` alone suffices).
    pub fn resolve(config: &Config) -> Result<Option<Settings>, Problem> {
        let c = &config.export.otlp;
        let (on, enabled_origin) = switched_on(c);
        if !on {
            return Ok(None);
        }
        let key_or = |k: &str| c.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k));
        let preset = match c.preset.as_deref() {
            None | Some("collector") => Preset::Collector,
            Some("newrelic") => Preset::NewRelic {
                eu: c
                    .api_key
                    .as_ref()
                    .is_some_and(|k| k.expose().to_ascii_lowercase().starts_with("eu")),
            },
            Some("newrelic-eu") => Preset::NewRelic { eu: true },
            Some("datadog") => Preset::DatadogAgent,
            Some(other) => {
                return Err((
                    "export.otlp.preset",
                    format!("{other:?}"),
                    format!("must be one of {}", Preset::NAMES.join(", ")),
                ))
            }
        };
        let preset_origin = if c.preset.is_some() {
            Origin::Key("export.otlp.preset")
        } else {
            Origin::Default
        };
        // What a preset filled in says so; `from` is the key its value is read from.
        let by_preset = |from: Option<&'static str>| Origin::Preset {
            preset: preset.as_str(),
            from,
        };
        let protocol_origin = match c.protocol {
            Some(_) => Origin::Key("export.otlp.protocol"),
            None => Origin::Default,
        };
        let protocol = match c.protocol.as_deref() {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err((
                    "export.otlp.protocol",
                    format!("{other:?}"),
                    "must be grpc or http/protobuf".into(),
                ))
            }
        };
        let port = protocol.default_port();
        let (base, endpoint_origin) = match (&c.endpoint, preset) {
            (Some(e), _) => (with_scheme(e), Origin::Key("export.otlp.endpoint")),
            (None, Preset::NewRelic { eu }) => (
                format!("{}:{port}", if eu { NEW_RELIC_EU } else { NEW_RELIC_US }),
                by_preset(None),
            ),
            (None, Preset::DatadogAgent) => match &config.export.statsd.host {
                Some(host) => (
                    format!("http://{host}:{port}"),
                    by_preset(Some("export.statsd.host")),
                ),
                None => (format!("http://localhost:{port}"), by_preset(None)),
            },
            (None, Preset::Collector) => (format!("http://localhost:{port}"), Origin::Default),
        };
        let (endpoint, metrics_endpoint_origin) = match (&c.metrics_endpoint, protocol) {
            (Some(full), _) => (
                with_scheme(full),
                Origin::Key("export.otlp.metricsEndpoint"),
            ),
            (None, Protocol::Grpc) => (base.clone(), Origin::Derived("the endpoint (gRPC)")),
            (None, Protocol::HttpProtobuf) => (
                format!("{}/v1/metrics", base.trim_end_matches('/')),
                Origin::Derived("the endpoint + /v1/metrics (HTTP)"),
            ),
        };
        let key = if c.metrics_endpoint.is_some() {
            "export.otlp.metricsEndpoint"
        } else {
            "export.otlp.endpoint"
        };
        match endpoint.parse::<axum::http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some_and(|h| !h.is_empty()) => {}
            _ => {
                return Err((
                    key,
                    format!("{endpoint:?}"),
                    "must be a URL such as http://collector:4318".into(),
                ))
            }
        }
        let mut headers: Vec<(String, Secret)> = Vec::new();
        let mut header_origins = Vec::new();
        for (name, value) in &c.headers {
            let lower = name.to_ascii_lowercase();
            let name_ok = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !name_ok {
                return Err((
                    "export.otlp.headers",
                    format!("{name:?}"),
                    "a header name may use letters, digits, '-', '_' and '.'".into(),
                ));
            }
            // OTEL_EXPORTER_OTLP_HEADERS values are URL-encoded (`api-key=a%3Db`).
            let value = Secret::new(crate::config::env::percent_decode(value.expose()));
            if !value.expose().bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err((
                    "export.otlp.headers",
                    format!("{name:?}"),
                    "header values must be printable ASCII".into(),
                ));
            }
            headers.push((lower, value));
            header_origins.push(Origin::Key("export.otlp.headers"));
        }
        if let Preset::NewRelic { .. } = preset {
            match &c.api_key {
                Some(k) if !key_or("api-key") => {
                    headers.push(("api-key".into(), k.clone()));
                    header_origins.push(by_preset(Some("export.otlp.apiKey")));
                }
                None if !key_or("api-key") => {
                    return Err((
                        "export.otlp.apiKey",
                        "unset".into(),
                        "the newrelic preset needs NEW_RELIC_LICENSE_KEY (sent as api-key)".into(),
                    ))
                }
                _ => {}
            }
        }
        let (temporality, temporality_origin) =
            match c.temporality.as_deref().map(str::to_ascii_lowercase) {
                Some(t) => (
                    t.parse::<Temporality>().map_err(|_| {
                        (
                            "export.otlp.temporality",
                            format!("{t:?}"),
                            "must be cumulative, delta or lowmemory".to_string(),
                        )
                    })?,
                    Origin::Key("export.otlp.temporality"),
                ),
                None => match preset {
                    Preset::NewRelic { .. } | Preset::DatadogAgent => {
                        (Temporality::Delta, by_preset(None))
                    }
                    Preset::Collector => (Temporality::Cumulative, Origin::Default),
                },
            };
        let (gzip, compression_origin) = match c.compression.as_deref() {
            Some("gzip") => (true, Origin::Key("export.otlp.compression")),
            Some("none") | Some("") => (false, Origin::Key("export.otlp.compression")),
            // gzip by default over HTTP: a third of the bytes (docs/PERFORMANCE.md, bench-wire);
            // over gRPC only where a preset asks, as receivers may lack the codec.
            None => match (preset, protocol) {
                (Preset::NewRelic { .. }, _) => (true, by_preset(None)),
                (_, Protocol::HttpProtobuf) => (true, Origin::Default),
                (_, Protocol::Grpc) => (false, Origin::Default),
            },
            Some(other) => {
                return Err((
                    "export.otlp.compression",
                    format!("{other:?}"),
                    "must be gzip or none".into(),
                ))
            }
        };
        if let Some(raw) = &c.resource_attributes {
            parse_resource_attributes(raw)
                .map_err(|why| ("export.otlp.resourceAttributes", format!("{raw:?}"), why))?;
        }
        let histograms_origin = match c.histogram_aggregation {
            Some(_) => Origin::Key("export.otlp.histogramAggregation"),
            None => Origin::Default,
        };
        let histograms = match c.histogram_aggregation.as_deref() {
            None | Some("base2_exponential_bucket_histogram") => {
                HistogramAggregation::Base2Exponential
            }
            Some("explicit_bucket_histogram") => HistogramAggregation::ExplicitBuckets,
            Some(other) => {
                return Err((
                    "export.otlp.histogramAggregation",
                    format!("{other:?}"),
                    "must be base2_exponential_bucket_histogram or explicit_bucket_histogram"
                        .into(),
                ))
            }
        };
        if c.interval == 0 {
            return Err(("export.otlp.interval", "0".into(), "must be > 0 ms".into()));
        }
        if c.timeout == 0 {
            return Err(("export.otlp.timeout", "0".into(), "must be > 0 ms".into()));
        }
        let resource = resource_attributes(config);
        if let Preset::NewRelic { .. } = preset {
            super::otlp_limits::check_resource(&resource).map_err(|why| {
                (
                    "export.otlp.resourceAttributes",
                    format!("{} attributes", resource.len()),
                    why,
                )
            })?;
        }
        // `service.name` as the resource carries it: the key, else the resource attributes.
        let service_name = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map_or_else(|| DEFAULT_SERVICE_NAME.to_string(), |(_, v)| v.clone());
        let service_name_origin = if c.service_name.is_some() {
            Origin::Key("export.otlp.serviceName")
        } else if service_name != DEFAULT_SERVICE_NAME {
            Origin::Key("export.otlp.resourceAttributes")
        } else {
            Origin::Default
        };
        Ok(Some(Settings {
            preset,
            protocol,
            endpoint,
            headers,
            timeout: Duration::from_millis(c.timeout),
            interval: Duration::from_millis(c.interval),
            gzip,
            temporality,
            resource,
            base_endpoint: base,
            service_name,
            origins: Origins {
                enabled: enabled_origin,
                preset: preset_origin,
                protocol: protocol_origin,
                endpoint: endpoint_origin,
                metrics_endpoint: metrics_endpoint_origin,
                headers: header_origins,
                temporality: temporality_origin,
                compression: compression_origin,
                service_name: service_name_origin,
                histograms: histograms_origin,
            },
            histograms,
            metrics: super::filter::MetricFilter::from_config(config)?,
        }))
    }

    /// `gzip` or `none`, as `OTEL_EXPORTER_OTLP_COMPRESSION` spells it.
    pub fn compression(&self) -> &'static str {
        if self.gzip {
            "gzip"
        } else {
            "none"
        }
    }

    /// The settings as `config show` prints them: endpoints redacted, header names only.
    pub fn effective(&self) -> Vec<Effective> {
        let o = &self.origins;
        let redacted = crate::logging::redact_urls;
        let mut out = vec![
            Effective::new("export.otlp.enabled", true, o.enabled.clone()),
            Effective::new("export.otlp.preset", self.preset.as_str(), o.preset.clone()),
            Effective::new(
                "export.otlp.protocol",
                self.protocol.as_str(),
                o.protocol.clone(),
            ),
            Effective::new(
                "export.otlp.endpoint",
                redacted(&self.base_endpoint),
                o.endpoint.clone(),
            ),
            Effective::new(
                "export.otlp.metricsEndpoint",
                redacted(&self.endpoint),
                o.metrics_endpoint.clone(),
            ),
            Effective::new(
                "export.otlp.temporality",
                temporality_name(self.temporality),
                o.temporality.clone(),
            ),
            Effective::new(
                "export.otlp.compression",
                self.compression(),
                o.compression.clone(),
            ),
            Effective::new(
                "export.otlp.serviceName",
                self.service_name.as_str(),
                o.service_name.clone(),
            ),
            Effective::new(
                "export.otlp.histogramAggregation",
                self.histograms.as_str(),
                o.histograms.clone(),
            ),
        ];
        for ((name, value), origin) in self.headers.iter().zip(&o.headers) {
            // The name only: a Secret serializes redacted.
            out.push(Effective::new(
                &format!("export.otlp.headers.{name}"),
                serde_json::to_value(value).expect("a secret serializes"),
                origin.clone(),
            ));
        }
        out
    }
}

/// `host:port` without a scheme means plaintext HTTP (the usual in-cluster collector).
fn with_scheme(endpoint: &str) -> String {
    let e = endpoint.trim();
    if e.contains("://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

/// `key=value,key=value` as `OTEL_RESOURCE_ATTRIBUTES` spells it (values URL-encoded); an entry
/// without `=` or with an empty key is an error, not silently dropped.
pub fn parse_resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!("{entry:?} is not key=value"));
        };
        let k = crate::config::env::percent_decode(k.trim());
        if k.is_empty() {
            return Err(format!("{entry:?} has an empty key"));
        }
        out.push((k, crate::config::env::percent_decode(v.trim())));
    }
    Ok(out)
}

/// Resource attributes, later ones winning: the defaults — `service.name` `codex-sentinel`,
/// `service.version` (the agent's), `service.instance.id` (pod name, else host name), `k8s.*`
/// from the downward API —, then Datadog's unified service tags (`DD_ENV` →
/// `deployment.environment.name`, `DD_SERVICE` → `service.name`, `DD_VERSION` →
/// `service.version`), then `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME`.
pub fn resource_attributes(config: &Config) -> Vec<(String, String)> {
    let c = &config.export.otlp;
    let k8s = &config.export.kubernetes;
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        attrs.retain(|(key, _)| key != k);
        attrs.push((k.to_string(), v));
    };
    set("service.name", DEFAULT_SERVICE_NAME.into());
    set("service.version", env!("CARGO_PKG_VERSION").into());
    let instance = match (&k8s.pod_name, &k8s.container_name) {
        (Some(pod), Some(container)) => format!("{pod}/{container}"),
        (Some(pod), None) => pod.clone(),
        _ => hostname().unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
    };
    set("service.instance.id", instance);
    for (key, value) in [
        ("k8s.pod.name", &k8s.pod_name),
        ("k8s.namespace.name", &k8s.namespace_name),
        ("k8s.node.name", &k8s.node_name),
        ("k8s.container.name", &k8s.container_name),
    ] {
        if let Some(v) = value {
            set(key, v.clone());
        }
    }
    let dd = &config.export.statsd;
    for (key, value) in [
        ("deployment.environment.name", &dd.env),
        ("service.name", &dd.service),
        ("service.version", &dd.version),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            set(key, v.to_string());
        }
    }
    if let Some(raw) = &c.resource_attributes {
        // Validated by `Settings::resolve`.
        for (k, v) in parse_resource_attributes(raw).unwrap_or_default() {
            set(&k, v);
        }
    }
    if let Some(name) = &c.service_name {
        set("service.name", name.clone());
    }
    attrs
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The OTLP exporter, what its HTTP client saw of the last failure, and what the SDK reported
/// only to its internal log ([`super::otlp_reports`]).
pub struct Exporter {
    metrics: MetricExporter,
    http_cause: Option<LastHttpFailure>,
    reports: super::otlp_reports::SdkReports,
}

impl Exporter {
    /// Exports once; the error says why, with the cause the SDK's own message leaves out. A
    /// partial success that rejected data points is an error too: they are lost.
    async fn export(&self, rm: &ResourceMetrics) -> Result<(), String> {
        if let Some(cause) = &self.http_cause {
            cause.clear();
        }
        let (result, reported) = self.reports.capture(self.metrics.export(rm)).await;
        match result {
            Ok(()) => match reported.rejected {
                Some((rejected, why)) if rejected > 0 => Err(partial_success(rejected, &why)),
                Some((_, why)) => {
                    // Accepted in full, with a warning from the receiver.
                    tracing::debug!(exporter = EXPORTER, warning = %why, "receiver accepted with a warning");
                    Ok(())
                }
                None => Ok(()),
            },
            Err(e) => {
                let sdk = crate::logging::redact_urls(&e.to_string());
                let cause = self
                    .http_cause
                    .as_ref()
                    .and_then(LastHttpFailure::take)
                    .or(reported.grpc_status);
                match cause {
                    Some(cause) => Err(format!(
                        "{sdk}: {}",
                        crate::logging::excerpt(&cause, crate::logging::BODY_EXCERPT)
                    )),
                    None => Err(sdk),
                }
            }
        }
    }
}

/// A receiver's partial success as an export failure: how many data points it rejected and a
/// bounded excerpt of its reason.
fn partial_success(rejected: i64, why: &str) -> String {
    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = format!("partial success: the receiver rejected {rejected} data points");
    if !why.is_empty() {
        out.push_str(": ");
        out.push_str(&crate::logging::excerpt(&why, crate::logging::BODY_EXCERPT));
    }
    crate::logging::redact_urls(&out)
}

/// The last failure the HTTP client saw, in full. opentelemetry-otlp 0.33 reports a transport
/// failure only as "network error" and an error answer only by its status code; the client
/// underneath still sees the cause (refused, DNS, TLS) and the body, and keeps them here.
#[derive(Debug, Clone, Default)]
struct LastHttpFailure(Arc<Mutex<Option<String>>>);

impl LastHttpFailure {
    fn set(&self, cause: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(cause);
    }
    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The exporter's HTTP client: reqwest, noting each failure's cause in [`LastHttpFailure`].
#[derive(Debug)]
struct ExplainingClient {
    inner: reqwest::Client,
    last_failure: LastHttpFailure,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExplainingClient {
    async fn send_bytes(
        &self,
        request: axum::http::Request<bytes::Bytes>,
    ) -> Result<axum::http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        match opentelemetry_http::HttpClient::send_bytes(&self.inner, request).await {
            Ok(response) => {
                let status = response.status();
                if status.is_redirection() {
                    let location = response
                        .headers()
                        .get(axum::http::header::LOCATION)
                        .and_then(|v| v.to_str().ok());
                    self.last_failure.set(crate::util::http::redirect_failure(
                        status.as_u16(),
                        location,
                    ));
                } else if !status.is_success() {
                    self.last_failure.set(crate::logging::http_failure(
                        status.as_u16(),
                        status.canonical_reason(),
                        response.body(),
                    ));
                }
                Ok(response)
            }
            Err(e) => {
                self.last_failure.set(crate::logging::error_chain(&*e));
                Err(e)
            }
        }
    }
}

/// Builds the OTLP exporter. Must run inside the tokio runtime (tonic channels bind to it).
pub fn build_exporter(s: &Settings) -> Result<Exporter, String> {
    let mut http_cause = None;
    let result = match s.protocol {
        Protocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (name, value) in &s.headers {
                let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes())
                    .map_err(|e| format!("header {name}: {e}"))?;
                let value = value
                    .expose()
                    .parse()
                    .map_err(|_| format!("header {name}: value is not valid"))?;
                metadata.insert(key, value);
            }
            let mut b = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(s.endpoint.clone())
                .with_timeout(s.timeout)
                .with_metadata(metadata);
            if s.gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.with_temporality(s.temporality).build()
        }
        Protocol::HttpProtobuf => {
            let headers: HashMap<String, String> = s
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect();
            // Our own client (async, as the export loop is async): for a plain-HTTP endpoint
            // without the root certificates, which would only cost memory.
            let mut client = crate::util::http::client_builder(s.timeout);
            if !s.endpoint.starts_with("https://") {
                client = client.tls_certs_only(std::iter::empty());
            }
            let client = client
                .build()
                .map_err(|e| crate::logging::error_chain(&e))?;
            let last_failure = LastHttpFailure::default();
            http_cause = Some(last_failure.clone());
            let mut b = MetricExporter::builder()
                .with_http()
                .with_http_client(ExplainingClient {
                    inner: client,
                    last_failure,
                })
                .with_endpoint(s.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(s.timeout)
                .with_headers(headers);
            if s.gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.with_temporality(s.temporality).build()
        }
    };
    let metrics = result.map_err(|e| crate::logging::error_chain(&e))?;
    Ok(Exporter {
        metrics,
        http_cause,
        reports: Default::default(),
    })
}

/// Lets the meter provider own a reader that the export loop also calls.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The SDK side: provider, instruments and the snapshot their callbacks read.
pub struct Instruments {
    provider: SdkMeterProvider,
    reader: SharedReader,
    current: Arc<RwLock<Option<Arc<Snapshot>>>>,
    /// By OpenTelemetry name.
    histograms: HashMap<&'static str, Histogram<f64>>,
}

/// A data point's attributes: `keys` with the label `values`.
fn attributes(keys: &[&'static str], values: &[String]) -> Vec<KeyValue> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// Runs `f` for every sample of `def` in the snapshot the callbacks currently see.
fn for_samples(
    current: &RwLock<Option<Arc<Snapshot>>>,
    def: &'static MetricDef,
    mut f: impl FnMut(&Sample),
) {
    let snap = current.read().ok().and_then(|g| g.clone());
    if let Some(snap) = snap {
        // By name: catalog entries are consts, so their addresses differ between uses.
        for s in snap.samples.iter().filter(|s| s.def.name == def.name) {
            f(s);
        }
    }
}

impl Instruments {
    pub fn new(settings: &Settings) -> Self {
        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(settings.temporality)
                .build(),
        ));
        let resource = Resource::builder_empty()
            .with_attributes(
                settings
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader.clone())
            .with_view(histogram_view(settings.histograms))
            .build();
        let meter = provider.meter("codex-sentinel");
        let current: Arc<RwLock<Option<Arc<Snapshot>>>> = Arc::new(RwLock::new(None));
        let mut histograms = HashMap::new();
        for &def in CATALOG {
            register(&meter, def, &current, &mut histograms);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        for twin in SEMCONV_TWINS {
            let Some(def) = CATALOG.iter().copied().find(|d| d.name == twin.source) else {
                continue;
            };
            if !settings.metrics.allows_twin(twin.name, def) {
                continue;
            }
            let cur = current.clone();
            let observe = move |f: &mut dyn FnMut(f64, &[KeyValue])| {
                for_samples(&cur, def, |s| {
                    let v = match s.value {
                        SampleValue::Gauge(v) | SampleValue::Counter(v) => v,
                        SampleValue::Histogram { .. } => return,
                    };
                    let v = match twin.convert {
                        Convert::Same => v,
                        Convert::PercentOfCoreToUtilization => v / 100.0 / cores,
                    };
                    f(v, &attributes(twin.attribute_keys, &s.labels));
                })
            };
            match twin.kind {
                TwinKind::Gauge => {
                    meter
                        .f64_observable_gauge(twin.name)
                        .with_unit(twin.unit)
                        .with_description(twin.help)
                        .with_callback(move |obs| observe(&mut |v, a| obs.observe(v, a)))
                        .build();
                }
                TwinKind::Counter => {
                    meter
                        .f64_observable_counter(twin.name)
                        .with_unit(twin.unit)
                        .with_description(twin.help)
                        .with_callback(move |obs| observe(&mut |v, a| obs.observe(v, a)))
                        .build();
                }
                TwinKind::UpDownCounter => {
                    meter
                        .f64_observable_up_down_counter(twin.name)
                        .with_unit(twin.unit)
                        .with_description(twin.help)
                        .with_callback(move |obs| observe(&mut |v, a| obs.observe(v, a)))
                        .build();
                }
            }
        }
        Instruments {
            provider,
            reader,
            current,
            histograms,
        }
    }

    /// Records every observed value in its histogram (the SDK aggregates in bounded memory).
    pub fn record(&self, observed: &Observed) {
        for series in &observed.series {
            let Some(hist) = self.histograms.get(series.def.name) else {
                continue;
            };
            let attrs = attributes(series.def.labels, &series.labels);
            for &v in &series.values {
                hist.record(v, &attrs);
            }
        }
    }

    /// Lets the gauges and counters observe `snapshot` and collects what the next export sends.
    pub fn collect(&mut self, snapshot: &Arc<Snapshot>) -> Result<ResourceMetrics, String> {
        if let Ok(mut cur) = self.current.write() {
            *cur = Some(snapshot.clone());
        }
        let mut rm = ResourceMetrics::default();
        self.reader.collect(&mut rm).map_err(|e| e.to_string())?;
        Ok(rm)
    }
}

impl Drop for Instruments {
    fn drop(&mut self) {
        // The manual reader holds no thread or connection; shutting down only unregisters.
        let _ = self.provider.shutdown();
    }
}

/// Histograms: base-2 exponential or the catalog's bounds, with min and max (real values).
fn histogram_view(
    aggregation: HistogramAggregation,
) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
    move |inst: &Instrument| {
        if inst.kind() != InstrumentKind::Histogram {
            return None;
        }
        let def = CATALOG.iter().find(|d| d.name == inst.name())?;
        let aggregation = match aggregation {
            HistogramAggregation::Base2Exponential => Aggregation::Base2ExponentialHistogram {
                max_size: EXPONENTIAL_MAX_SIZE,
                max_scale: 20,
                record_min_max: true,
            },
            HistogramAggregation::ExplicitBuckets => Aggregation::ExplicitBucketHistogram {
                boundaries: def.buckets.to_vec(),
                record_min_max: true,
            },
        };
        Stream::builder().with_aggregation(aggregation).build().ok()
    }
}

fn register(
    meter: &Meter,
    def: &'static MetricDef,
    current: &Arc<RwLock<Option<Arc<Snapshot>>>>,
    histograms: &mut HashMap<&'static str, Histogram<f64>>,
) {
    let cur = current.clone();
    match def.kind {
        MetricKind::Gauge => {
            meter
                .f64_observable_gauge(def.name)
                .with_unit(def.unit)
                .with_description(def.help)
                .with_callback(move |obs| {
                    for_samples(&cur, def, |s| {
                        if let SampleValue::Gauge(v) = s.value {
                            obs.observe(v, &attributes(def.labels, &s.labels));
                        }
                    })
                })
                .build();
        }
        MetricKind::Counter => {
            meter
                .f64_observable_counter(def.name)
                .with_unit(def.unit)
                .with_description(def.help)
                .with_callback(move |obs| {
                    for_samples(&cur, def, |s| {
                        if let SampleValue::Counter(v) = s.value {
                            obs.observe(v, &attributes(def.labels, &s.labels));
                        }
                    })
                })
                .build();
        }
        MetricKind::Histogram => {
            let h = meter
                .f64_histogram(def.name)
                .with_unit(def.unit)
                .with_description(def.help)
                .with_boundaries(def.buckets.to_vec())
                .build();
            histograms.insert(def.name, h);
        }
    }
}

/// The OTLP exporter: the SDK side, and the connection built on the first export.
pub struct OtlpExporter {
    settings: Settings,
    instruments: Instruments,
    exporter: Option<Exporter>,
}

/// The registry's constructor ([`super::REGISTRY`]).
pub fn configure(config: &Config) -> Result<Option<Box<dyn PushExporter>>, Problem> {
    Ok(Settings::resolve(config)?.map(|settings| {
        Box::new(OtlpExporter {
            instruments: Instruments::new(&settings),
            settings,
            exporter: None,
        }) as Box<dyn PushExporter>
    }))
}

impl OtlpExporter {
    async fn export_within(
        &mut self,
        snapshot: &Arc<Snapshot>,
        timeout: Duration,
    ) -> Result<(), ExportError> {
        if self.exporter.is_none() {
            // Builds inside the runtime (tonic channels bind to it).
            self.exporter = Some(
                build_exporter(&self.settings)
                    .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?,
            );
        }
        let exporter = self.exporter.as_ref().expect("built");
        Ok(export_once(&mut self.instruments, exporter, snapshot, timeout).await?)
    }
}

#[async_trait::async_trait]
impl PushExporter for OtlpExporter {
    fn name(&self) -> &'static str {
        EXPORTER
    }

    fn interval(&self) -> Duration {
        self.settings.interval
    }

    fn log_start(&self) {
        let s = &self.settings;
        tracing::info!(
            exporter = EXPORTER,
            endpoint = %crate::logging::redact_urls(&s.endpoint),
            protocol = s.protocol.as_str(),
            preset = s.preset.as_str(),
            temporality = temporality_name(s.temporality),
            histograms = s.histograms.as_str(),
            compression = s.compression(),
            interval_ms = s.interval.as_millis() as u64,
            "OTLP export on"
        );
    }

    fn observe(&mut self, observed: &Observed) {
        self.instruments.record(observed);
    }

    /// May be abandoned at any `.await`: the values stay in the SDK's aggregation (cumulative)
    /// or are the failed batch (delta).
    async fn export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError> {
        let timeout = self.settings.timeout;
        self.export_within(snapshot, timeout).await
    }

    async fn final_export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError> {
        let timeout = self.settings.timeout.min(FINAL_FLUSH_TIMEOUT);
        self.export_within(snapshot, timeout).await
    }
}

/// One collect + export under `timeout`.
pub async fn export_once(
    instruments: &mut Instruments,
    exporter: &Exporter,
    snapshot: &Arc<Snapshot>,
    timeout: Duration,
) -> Result<(), String> {
    let rm = instruments.collect(snapshot)?;
    // The exporter has its own timeout; this one also bounds its retries and DNS.
    match tokio::time::timeout(timeout + Duration::from_millis(250), exporter.export(&rm)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn resolve(f: impl FnOnce(&mut Config)) -> Result<Option<Settings>, Problem> {
        let mut c = Config::default();
        f(&mut c);
        Settings::resolve(&c)
    }

    #[test]
    fn off_unless_an_endpoint_or_preset_is_set_and_explicit_false_wins() {
        assert!(resolve(|_| {}).unwrap().is_none());
        let s = resolve(|c| c.export.otlp.endpoint = Some("http://col:4318".into()))
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint, "http://col:4318/v1/metrics");
        assert_eq!(s.temporality, Temporality::Cumulative);
        assert!(resolve(|c| {
            c.export.otlp.endpoint = Some("http://col:4318".into());
            c.export.otlp.enabled = Some(false);
        })
        .unwrap()
        .is_none());
    }

    #[test]
    fn newrelic_preset_fills_endpoint_header_delta_gzip() {
        let s = resolve(|c| {
            c.export.otlp.preset = Some("newrelic".into());
            c.export.otlp.api_key = Some(Secret::new("abc123NRAL"));
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "https://otlp.nr-data.net:4318/v1/metrics");
        assert_eq!(
            s.headers,
            vec![("api-key".into(), Secret::new("abc123NRAL"))]
        );
        assert_eq!(s.temporality, Temporality::Delta);
        assert!(s.gzip);
        let eu = resolve(|c| {
            c.export.otlp.preset = Some("newrelic".into());
            c.export.otlp.protocol = Some("grpc".into());
            c.export.otlp.api_key = Some(Secret::new("eu01xxabc"));
        })
        .unwrap()
        .unwrap();
        assert_eq!(eu.endpoint, "https://otlp.eu01.nr-data.net:4317");
        let missing = resolve(|c| c.export.otlp.preset = Some("newrelic".into())).unwrap_err();
        assert_eq!(missing.0, "export.otlp.apiKey");
    }

    #[test]
    fn datadog_agent_preset_uses_the_agent_host() {
        let s = resolve(|c| {
            c.export.otlp.preset = Some("datadog".into());
            c.export.otlp.protocol = Some("grpc".into());
            c.export.statsd.host = Some("10.0.0.7".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://10.0.0.7:4317");
        assert_eq!(s.temporality, Temporality::Delta);
    }

    #[test]
    fn metrics_endpoint_is_used_as_is_and_bad_urls_are_refused() {
        let s = resolve(|c| {
            c.export.otlp.endpoint = Some("http://base:4318".into());
            c.export.otlp.metrics_endpoint = Some("http://other:9/custom".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://other:9/custom");
        let e = resolve(|c| c.export.otlp.endpoint = Some("ftp://x".into())).unwrap_err();
        assert_eq!(e.0, "export.otlp.endpoint");
    }

    #[test]
    fn resource_attributes_follow_the_precedence() {
        let mut c = Config::default();
        c.export.kubernetes.pod_name = Some("web-7f9".into());
        c.export.kubernetes.namespace_name = Some("prod".into());
        c.export.otlp.resource_attributes =
            Some("deployment.environment=prod,service.name=ignored".into());
        c.export.otlp.service_name = Some("sentinel-a".into());
        let attrs = resource_attributes(&c);
        let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("service.name"), Some("sentinel-a"));
        assert_eq!(get("service.instance.id"), Some("web-7f9"));
        assert_eq!(get("k8s.pod.name"), Some("web-7f9"));
        assert_eq!(get("k8s.namespace.name"), Some("prod"));
        assert_eq!(get("k8s.node.name"), None);
        assert_eq!(get("deployment.environment"), Some("prod"));
    }

    #[test]
    fn datadog_unified_service_tags_become_resource_attributes_and_otel_wins() {
        let mut c = Config::default();
        c.export.statsd.env = Some("prod".into());
        c.export.statsd.service = Some("reviews".into());
        c.export.statsd.version = Some("2.1.0".into());
        let attrs = resource_attributes(&c);
        let get = |attrs: &[(String, String)], k: &str| {
            attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&attrs, "deployment.environment.name").as_deref(),
            Some("prod")
        );
        assert_eq!(get(&attrs, "service.name").as_deref(), Some("reviews"));
        assert_eq!(get(&attrs, "service.version").as_deref(), Some("2.1.0"));
        c.export.otlp.resource_attributes = Some("service.version=3".into());
        c.export.otlp.service_name = Some("svc".into());
        let attrs = resource_attributes(&c);
        assert_eq!(get(&attrs, "service.version").as_deref(), Some("3"));
        assert_eq!(get(&attrs, "service.name").as_deref(), Some("svc"));
    }

    #[test]
    fn malformed_resource_attributes_are_refused() {
        assert_eq!(
            parse_resource_attributes(" a=1, b=x%3Dy ,").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(parse_resource_attributes("team").is_err());
        assert!(parse_resource_attributes("=v").is_err());
        let e = resolve(|c| {
            c.export.otlp.endpoint = Some("http://col:4318".into());
            c.export.otlp.resource_attributes = Some("env=prod,broken".into());
        })
        .unwrap_err();
        assert_eq!(e.0, "export.otlp.resourceAttributes");
    }

    #[test]
    fn every_twin_names_an_agent_gauge_or_counter_once() {
        let mut names: Vec<_> = SEMCONV_TWINS.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SEMCONV_TWINS.len(), "one source per name");
        for twin in SEMCONV_TWINS {
            let def = CATALOG
                .iter()
                .find(|d| d.name == twin.source)
                .unwrap_or_else(|| panic!("{} is not in the catalog", twin.source));
            assert_ne!(def.kind, MetricKind::Histogram, "{}", twin.source);
            // `process.*` is the resource's process: the agent's own metrics only.
            assert!(
                twin.source.starts_with("codex_sentinel."),
                "{}",
                twin.source
            );
            assert_eq!(twin.attribute_keys.len(), def.labels.len(), "{}", twin.name);
            // A monotonic sum only from a counter.
            assert_eq!(
                twin.kind == TwinKind::Counter,
                def.kind == MetricKind::Counter,
                "{}",
                twin.name
            );
        }
    }

    /// TLS set-up happens when the exporter is built: an https preset must build (both
    /// protocols) without a crypto-provider panic.
    #[tokio::test]
    async fn https_presets_build() {
        for protocol in ["grpc", "http/protobuf"] {
            let s = resolve(|c| {
                c.export.otlp.preset = Some("newrelic".into());
                c.export.otlp.protocol = Some(protocol.into());
                c.export.otlp.api_key = Some(Secret::new("k"));
            })
            .unwrap()
            .unwrap();
            build_exporter(&s).unwrap();
        }
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    #[test]
    fn collect_yields_every_catalog_metric() {
        let mut c = Config::default();
        c.export.otlp.endpoint = Some("http://127.0.0.1:1".into());
        let s = Settings::resolve(&c).unwrap().unwrap();
        let config = Arc::new(Config::default());
        let specs = crate::monitor::probes::specs(&config);
        let (_tx, _rx, dropped) = crate::monitor::channel();
        let snap = Arc::new(crate::monitor::Monitor::new(config, specs, dropped).snapshot(0));
        let mut inst = Instruments::new(&s);
        let rm = inst.collect(&snap).unwrap();
        let names: Vec<String> = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .map(|m| m.name().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n == "codex.availability_status"),
            "{names:?}"
        );
    }

    fn settings(temporality: &str, histograms: Option<&str>) -> Settings {
        let mut c = Config::default();
        c.export.otlp.endpoint = Some("http://127.0.0.1:1".into());
        c.export.otlp.temporality = Some(temporality.into());
        c.export.otlp.histogram_aggregation = histograms.map(str::to_string);
        Settings::resolve(&c).unwrap().unwrap()
    }

    fn observed(values: &[f64]) -> Observed {
        let mut o = Observed::default();
        for &v in values {
            o.push(&crate::catalog::EXECUTION_TIME, &["review".into()], v);
        }
        o
    }

    fn empty_snapshot() -> Arc<Snapshot> {
        let config = Arc::new(Config::default());
        let specs = crate::monitor::probes::specs(&config);
        let (_tx, _rx, dropped) = crate::monitor::channel();
        Arc::new(crate::monitor::Monitor::new(config, specs, dropped).snapshot(0))
    }

    fn execution_time(rm: &ResourceMetrics) -> Option<&opentelemetry_sdk::metrics::data::Metric> {
        rm.scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == "codex.execution_time")
    }

    /// Every observed value goes into a base-2 exponential histogram with count, sum, min and
    /// max exact, cumulative or delta.
    #[test]
    fn observed_values_become_exact_exponential_histograms() {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        for (temporality, second) in [("cumulative", (5, 0.1, 40.0)), ("delta", (2, 3.0, 40.0))] {
            let s = settings(temporality, None);
            let mut inst = Instruments::new(&s);
            inst.record(&observed(&[0.1, 2.0, 30.0]));
            let rm = inst.collect(&empty_snapshot()).unwrap();
            let m = execution_time(&rm).expect("execution time exported");
            assert_eq!(m.unit(), "s");
            let AggregatedMetrics::F64(MetricData::ExponentialHistogram(h)) = m.data() else {
                panic!("not an exponential histogram: {:?}", m.data());
            };
            let p = h.data_points().next().expect("one point");
            assert_eq!(p.count(), 3);
            assert!((p.sum() - 32.1).abs() < 1e-9);
            assert_eq!((p.min(), p.max()), (Some(0.1), Some(30.0)));
            assert!(p.scale() >= 6, "scale {}", p.scale());
            inst.record(&observed(&[3.0, 40.0]));
            let rm = inst.collect(&empty_snapshot()).unwrap();
            let AggregatedMetrics::F64(MetricData::ExponentialHistogram(h)) =
                execution_time(&rm).unwrap().data()
            else {
                panic!("not an exponential histogram");
            };
            let p = h.data_points().next().unwrap();
            assert_eq!(
                (p.count(), p.min(), p.max()),
                (second.0, Some(second.1), Some(second.2)),
                "{temporality}"
            );
            assert_eq!(h.temporality(), s.temporality);
        }
    }

    /// The explicit option keeps the catalog's bounds (and min/max, which are real values now).
    #[test]
    fn explicit_buckets_on_request() {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let mut inst = Instruments::new(&settings("cumulative", Some("explicit_bucket_histogram")));
        inst.record(&observed(&[0.5, 2.0, 25.0, 25.0]));
        let rm = inst.collect(&empty_snapshot()).unwrap();
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = execution_time(&rm).unwrap().data()
        else {
            panic!("not an explicit histogram");
        };
        let p = h.data_points().next().unwrap();
        assert_eq!(
            p.bounds().collect::<Vec<_>>(),
            vec![1.0, 5.0, 10.0, 30.0, 60.0]
        );
        assert_eq!(
            p.bucket_counts().collect::<Vec<_>>(),
            vec![1, 1, 0, 2, 0, 0]
        );
        assert_eq!((p.min(), p.max()), (Some(0.5), Some(25.0)));
        assert!(resolve_aggregation("linear").is_err());
    }

    fn resolve_aggregation(name: &str) -> Result<Option<Settings>, Problem> {
        let mut c = Config::default();
        c.export.otlp.endpoint = Some("http://127.0.0.1:1".into());
        c.export.otlp.histogram_aggregation = Some(name.into());
        Settings::resolve(&c)
    }
}
