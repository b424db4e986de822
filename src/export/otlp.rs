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
//! * histogram → histogram with the catalog's bucket bounds, fed with the observations that
//!   arrived since the last export ([`super::histogram::representatives`]: bucket counts, count
//!   and sum exact; min/max are not recorded because they would be estimates).
//!
//! Where OpenTelemetry's semantic conventions name a metric, a twin is emitted too
//! ([`SEMCONV_TWINS`]). Failures are counted, logged rate-limited, and the next attempts are
//! spaced out (skipped cycles are not collected, so nothing is lost but the failed batch itself
//! under delta temporality). On shutdown one last export is tried within [`FINAL_FLUSH_TIMEOUT`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::histogram::{representatives, Delta, Deltas};
use super::{Effective, ExportErrors, FailureLog, Origin, MAX_BACKOFF_SKIPS};
use crate::catalog::{MetricDef, MetricKind, CATALOG};
use crate::config::{Config, Secret};
use crate::monitor::snapshot::{Sample, SampleValue, Snapshot};

/// The `exporter` label value.
pub const EXPORTER: &str = "otlp";
/// Time the last export may take on shutdown (inside the agent's shutdown deadline).
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_millis(2500);
/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "codex-sentinel";

/// New Relic's OTLP endpoints (gRPC on 4317, HTTP on 4318).
pub const NEW_RELIC_US: &str = "https://otlp.nr-data.net";
pub const NEW_RELIC_EU: &str = "https://otlp.eu01.nr-data.net";

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

/// A metric emitted on OTLP under an OpenTelemetry semantic-convention name as well, computed
/// from a catalog gauge or counter (the twin has the same kind). `docs/metrics.md` lists these; a test checks it against this table.
#[derive(Debug)]
pub struct SemconvTwin {
    /// The catalog metric's OpenTelemetry name.
    pub source: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub help: &'static str,
    /// Attributes added to every point.
    pub attributes: &'static [(&'static str, &'static str)],
    pub convert: Convert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    Same,
    /// Percent of one core → fraction of all cores (`process.cpu.utilization`).
    PercentOfCoreToUtilization,
}

pub const SEMCONV_TWINS: &[SemconvTwin] = &[
    // `process.*` describe one process: without attributes the agent itself (the resource);
    // with `process.executable.name=codex` the sum over the Codex processes it watches.
    SemconvTwin {
        source: "codex.memory_usage",
        name: "process.memory.usage",
        unit: "By",
        help: "Physical memory (RSS) in bytes: the agent, or with process.executable.name=codex the sum over the Codex processes",
        attributes: &[("process.executable.name", "codex")],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex_sentinel.memory_rss",
        name: "process.memory.usage",
        unit: "By",
        help: "Physical memory (RSS) in bytes: the agent, or with process.executable.name=codex the sum over the Codex processes",
        attributes: &[],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex.cpu.utilization",
        name: "process.cpu.utilization",
        unit: "1",
        help: "CPU as a fraction of the available cores (0..1): the agent, or with process.executable.name=codex the sum over the Codex processes",
        attributes: &[("process.executable.name", "codex")],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex_sentinel.cpu_usage",
        name: "process.cpu.utilization",
        unit: "1",
        help: "CPU as a fraction of the available cores (0..1): the agent, or with process.executable.name=codex the sum over the Codex processes",
        attributes: &[],
        convert: Convert::PercentOfCoreToUtilization,
    },
    SemconvTwin {
        source: "codex_sentinel.cpu_time",
        name: "process.cpu.time",
        unit: "s",
        help: "CPU seconds (user + system) used by the agent since it started",
        attributes: &[],
        convert: Convert::Same,
    },
];

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
    pub resource: Vec<(String, String)>,
    /// The base endpoint (HTTP appends `/v1/metrics` to it), as `config show` prints it.
    pub base_endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// Where each setting came from; `headers` in the order of [`Settings::headers`].
    pub origins: Origins,
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

type Problem = (&'static str, String, String);

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
            None => match preset {
                Preset::NewRelic { .. } => (true, by_preset(None)),
                _ => (false, Origin::Default),
            },
            Some(other) => {
                return Err((
                    "export.otlp.compression",
                    format!("{other:?}"),
                    "must be gzip or none".into(),
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
            },
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

/// Resource attributes: `service.name` (`OTEL_SERVICE_NAME` wins over everything),
/// `service.version`, `service.instance.id` (pod name, else host name), `k8s.*` from the
/// downward API, then `OTEL_RESOURCE_ATTRIBUTES` (which may override all but `service.name`
/// when `OTEL_SERVICE_NAME` is set).
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
    if let Some(raw) = &c.resource_attributes {
        for (k, v) in crate::config::env::parse_pairs(raw) {
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

/// The OTLP exporter, and for HTTP what its client saw of the last failure.
pub struct Exporter {
    metrics: MetricExporter,
    http_cause: Option<LastHttpFailure>,
}

impl Exporter {
    /// Exports once; the error says why, with the cause the SDK's own message leaves out.
    async fn export(&self, rm: &ResourceMetrics) -> Result<(), String> {
        if let Some(cause) = &self.http_cause {
            cause.clear();
        }
        match self.metrics.export(rm).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let sdk = e.to_string();
                match self.http_cause.as_ref().and_then(LastHttpFailure::take) {
                    Some(cause) => Err(format!("{sdk}: {cause}")),
                    None => Err(crate::logging::redact_urls(&sdk)),
                }
            }
        }
    }
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
    deltas: Deltas,
}

fn attributes(sample: &Sample) -> Vec<KeyValue> {
    sample
        .def
        .labels
        .iter()
        .zip(&sample.labels)
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
            .with_view(histogram_view)
            .build();
        let meter = provider.meter("codex-sentinel");
        let current: Arc<RwLock<Option<Arc<Snapshot>>>> = Arc::new(RwLock::new(None));
        let mut histograms = HashMap::new();
        for &def in CATALOG {
            register(&meter, def, &current, &mut histograms);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        // One instrument per semantic-convention name; several twins may feed it (e.g. the
        // Codex processes with `process.executable.name=codex`, the agent itself without).
        let mut names: Vec<&'static str> = SEMCONV_TWINS.iter().map(|t| t.name).collect();
        names.dedup();
        for name in names {
            let group: Vec<(&'static SemconvTwin, &'static MetricDef)> = SEMCONV_TWINS
                .iter()
                .filter(|t| t.name == name)
                .filter_map(|t| Some((t, CATALOG.iter().copied().find(|d| d.name == t.source)?)))
                .collect();
            let Some(&(first, def)) = group.first() else {
                continue;
            };
            let cur = current.clone();
            let observe_all = move |f: &mut dyn FnMut(f64, &[KeyValue])| {
                for &(twin, def) in &group {
                    for_samples(&cur, def, |s| {
                        let v = match s.value {
                            SampleValue::Gauge(v) | SampleValue::Counter(v) => v,
                            SampleValue::Histogram { .. } => return,
                        };
                        let v = match twin.convert {
                            Convert::Same => v,
                            Convert::PercentOfCoreToUtilization => v / 100.0 / cores,
                        };
                        let mut attrs = attributes(s);
                        attrs.extend(twin.attributes.iter().map(|(k, v)| KeyValue::new(*k, *v)));
                        f(v, &attrs);
                    })
                }
            };
            match def.kind {
                MetricKind::Gauge => {
                    meter
                        .f64_observable_gauge(first.name)
                        .with_unit(first.unit)
                        .with_description(first.help)
                        .with_callback(move |obs| observe_all(&mut |v, a| obs.observe(v, a)))
                        .build();
                }
                MetricKind::Counter => {
                    meter
                        .f64_observable_counter(first.name)
                        .with_unit(first.unit)
                        .with_description(first.help)
                        .with_callback(move |obs| observe_all(&mut |v, a| obs.observe(v, a)))
                        .build();
                }
                // Histogram twins would need their own feeding; none is defined.
                MetricKind::Histogram => {}
            }
        }
        Instruments {
            provider,
            reader,
            current,
            histograms,
            deltas: Deltas::default(),
        }
    }

    /// Feeds the instruments from `snapshot` and collects what the next export sends.
    pub fn collect(&mut self, snapshot: &Arc<Snapshot>) -> Result<ResourceMetrics, String> {
        if let Ok(mut cur) = self.current.write() {
            *cur = Some(snapshot.clone());
        }
        for sample in &snapshot.samples {
            if sample.def.kind != MetricKind::Histogram {
                continue;
            }
            let Some(hist) = self.histograms.get(sample.def.name) else {
                continue;
            };
            if let Some(Delta::Histogram { counts, sum }) = self.deltas.of(sample) {
                let attrs = attributes(sample);
                for r in representatives(sample.def.buckets, &counts, sum) {
                    for _ in 0..r.count {
                        hist.record(r.value, &attrs);
                    }
                }
            }
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

/// Histograms keep the catalog's bounds and record no min/max (they would be estimates).
fn histogram_view(inst: &Instrument) -> Option<Stream> {
    if inst.kind() != InstrumentKind::Histogram {
        return None;
    }
    let def = CATALOG.iter().find(|d| d.name == inst.name())?;
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: def.buckets.to_vec(),
            record_min_max: false,
        })
        .build()
        .ok()
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
                            obs.observe(v, &attributes(s));
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
                            obs.observe(v, &attributes(s));
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

/// The export loop. Runs until `shutdown`, then tries one last export.
pub async fn run(
    settings: Settings,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    errors: Arc<ExportErrors>,
    shutdown: CancellationToken,
) {
    let exporter = match build_exporter(&settings) {
        Ok(e) => e,
        Err(e) => {
            errors.increment(EXPORTER);
            tracing::error!(exporter = EXPORTER, error = %e, "cannot build the OTLP exporter; OTLP export is off");
            return;
        }
    };
    tracing::info!(
        exporter = EXPORTER,
        endpoint = %crate::logging::redact_urls(&settings.endpoint),
        protocol = settings.protocol.as_str(),
        preset = settings.preset.as_str(),
        temporality = temporality_name(settings.temporality),
        compression = settings.compression(),
        interval_ms = settings.interval.as_millis() as u64,
        "OTLP export on"
    );
    let mut instruments = Instruments::new(&settings);
    let mut log = FailureLog::new(EXPORTER);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.interval,
        settings.interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut skip = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let snapshot = snapshots.borrow().clone();
        let attempt = export_once(&mut instruments, &exporter, &snapshot, settings.timeout);
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = attempt => r,
        };
        match result {
            Ok(()) => log.success(),
            Err(e) => {
                errors.increment(EXPORTER);
                log.failure(&e);
                skip = log.backoff_skips(MAX_BACKOFF_SKIPS);
            }
        }
    }
    let snapshot = snapshots.borrow().clone();
    let deadline = settings.timeout.min(FINAL_FLUSH_TIMEOUT);
    match export_once(&mut instruments, &exporter, &snapshot, deadline).await {
        Ok(()) => tracing::debug!(exporter = EXPORTER, "final export sent"),
        Err(e) => {
            errors.increment(EXPORTER);
            tracing::warn!(exporter = EXPORTER, error = %e, "final export failed");
        }
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
    fn every_twin_names_a_catalog_gauge_or_counter() {
        for twin in SEMCONV_TWINS {
            let def = CATALOG
                .iter()
                .find(|d| d.name == twin.source)
                .unwrap_or_else(|| panic!("{} is not in the catalog", twin.source));
            assert_ne!(def.kind, MetricKind::Histogram, "{}", twin.source);
            // Twins sharing a name share an instrument: same kind and unit, listed together.
            for other in SEMCONV_TWINS.iter().filter(|o| o.name == twin.name) {
                let other_def = CATALOG.iter().find(|d| d.name == other.source).unwrap();
                assert_eq!(
                    (other_def.kind, other.unit),
                    (def.kind, twin.unit),
                    "{}",
                    twin.name
                );
            }
        }
        let mut names: Vec<_> = SEMCONV_TWINS.iter().map(|t| t.name).collect();
        let listed = names.len();
        names.dedup();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            names.len(),
            unique.len(),
            "twins of one name must be adjacent"
        );
        assert!(listed >= unique.len());
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

    fn execution_histogram(counts: Vec<u64>, sum: f64) -> Sample {
        Sample {
            def: &crate::catalog::EXECUTION_TIME,
            labels: vec!["review".into()],
            value: SampleValue::Histogram {
                count: counts.iter().sum(),
                counts,
                sum,
            },
        }
    }

    fn snapshot_with(samples: Vec<Sample>) -> Arc<Snapshot> {
        let config = Arc::new(Config::default());
        let specs = crate::monitor::probes::specs(&config);
        let (_tx, _rx, dropped) = crate::monitor::channel();
        let base = crate::monitor::Monitor::new(config, specs, dropped).snapshot(0);
        Arc::new(Snapshot::new(
            base.report.clone(),
            base.metrics.clone(),
            samples,
            true,
            0,
        ))
    }

    /// (bounds, bucket counts, count, sum, temporality) of `codex.execution_time`.
    fn exported(rm: &ResourceMetrics) -> (Vec<f64>, Vec<u64>, u64, f64, Temporality) {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let m = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == "codex.execution_time")
            .expect("execution time exported");
        assert_eq!(m.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() else {
            panic!("not an f64 histogram");
        };
        let p = h.data_points().next().expect("one point");
        assert_eq!(p.min(), None);
        assert_eq!(p.max(), None);
        (
            p.bounds().collect(),
            p.bucket_counts().collect(),
            p.count(),
            p.sum(),
            h.temporality(),
        )
    }

    /// The snapshot's histogram goes through the real SDK with the catalog's bounds, and the
    /// exported buckets, count and sum are the snapshot's, cumulative or delta.
    #[test]
    fn execution_histogram_is_exact_in_both_temporalities() {
        for (temporality, second) in [
            (
                "cumulative",
                (vec![1, 1, 0, 3, 0, 0], 5, 0.5 + 2.0 + 25.0 * 3.0),
            ),
            ("delta", (vec![0, 0, 0, 1, 0, 0], 1, 25.0)),
        ] {
            let mut c = Config::default();
            c.export.otlp.endpoint = Some("http://127.0.0.1:1".into());
            c.export.otlp.temporality = Some(temporality.into());
            let s = Settings::resolve(&c).unwrap().unwrap();
            let mut inst = Instruments::new(&s);
            let rm = inst
                .collect(&snapshot_with(vec![execution_histogram(
                    vec![1, 1, 0, 2, 0, 0],
                    0.5 + 2.0 + 50.0,
                )]))
                .unwrap();
            let (bounds, counts, count, sum, _) = exported(&rm);
            assert_eq!(bounds, vec![1.0, 5.0, 10.0, 30.0, 60.0]);
            assert_eq!(counts, vec![1, 1, 0, 2, 0, 0]);
            assert_eq!(count, 4);
            assert!((sum - 52.5).abs() < 1e-9, "{sum}");
            let rm = inst
                .collect(&snapshot_with(vec![execution_histogram(
                    vec![1, 1, 0, 3, 0, 0],
                    0.5 + 2.0 + 75.0,
                )]))
                .unwrap();
            let (_, counts, count, sum, t) = exported(&rm);
            assert_eq!((counts, count), (second.0, second.1), "{temporality}");
            assert!((sum - second.2).abs() < 1e-9, "{temporality}: {sum}");
            assert_eq!(t, s.temporality);
        }
    }
}
