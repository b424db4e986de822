//! StatsD / DogStatsD export through cadence, over UDP or a Unix datagram socket.
//!
//! Every interval the latest snapshot becomes one batch of lines, packed into datagrams of at
//! most [`UDP_PAYLOAD`] (UDP) or [`UDS_PAYLOAD`] (Unix socket) bytes and flushed:
//!
//! * gauges → `name:value|g`;
//! * counters → `name:increase|c` (only when it grew since the last flush);
//! * execution times → every execution's own duration, in seconds, as a DogStatsD distribution
//!   (`|d`, default) or histogram (`|h`); several values a line (DogStatsD 1.1) unless
//!   `packValues` is off (the OpenTelemetry Collector's statsd receiver parses one value a
//!   line); in plain StatsD as timers in milliseconds (`|ms`), the unit StatsD daemons expect.
//!   Past `maxValuesPerInterval` values of one series in one flush, a uniform sample of that
//!   many goes out with its true sample rate (`|@0.25`), so the platform's counts stay exact
//!   ([`Sampled`]);
//! * DogStatsD only: the availability probe as the service check `_sc|codex.can_execute|0..3`.
//!
//! DogStatsD lines carry tags (`env`, `service`, `version`, pod, `DD_TAGS`,
//! `dd.internal.entity_id`, and the metric's labels). Plain StatsD has no tags: label values are
//! appended to the name (`codex.executions.review.success`; the value `all` adds nothing).
//!
//! Sockets are non-blocking: a full or missing receiver fails the send (counted as an export
//! error, logged rate-limited) instead of stalling. A host that does not resolve is retried.
//! A batch is sent without awaiting, so shutdown never cuts one in half (see
//! [`super::PushExporter`]).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, BufferedUnixMetricSink, MetricSink, StatsdClient};

use super::deltas::Deltas;
use super::{Effective, ExportError, Origin, Problem, PushExporter};
use crate::catalog::MetricDef;
use crate::config::Config;
use crate::monitor::health::AVAILABILITY_CHECK;
use crate::monitor::observed::Observed;
use crate::monitor::snapshot::{SampleValue, Snapshot, Status};

/// The `exporter` label value.
pub const EXPORTER: &str = "statsd";
/// Largest datagram on UDP: fits a 1500-byte Ethernet MTU (DogStatsD's own default).
pub const UDP_PAYLOAD: usize = 1432;
/// Largest datagram on a Unix socket (DogStatsD's default for UDS).
pub const UDS_PAYLOAD: usize = 8192;
/// The service check carrying the availability probe's verdict.
pub const SERVICE_CHECK: &str = "codex.can_execute";
/// At most this many values on one DogStatsD line.
const VALUES_PER_LINE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp { host: String, port: u16 },
    Unix(PathBuf),
}

/// As a URL: `udp://host:8125`, `unix:///var/run/datadog/dsd.socket`.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            Target::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            Target::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingKind {
    Distribution,
    Histogram,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    /// DogStatsD (tags, service check) or plain StatsD.
    pub dogstatsd: bool,
    pub prefix: String,
    pub interval: Duration,
    pub timing: TimingKind,
    /// Constant tags, `key:value` or bare values, in order.
    pub tags: Vec<String>,
    /// Why export is on, and where the destination came from.
    pub enabled_origin: Origin,
    pub target_origin: Origin,
    /// Several values on one line (DogStatsD 1.1).
    pub pack_values: bool,
    /// Values per histogram series and flush before sampling.
    pub max_values: usize,
}

/// Whether StatsD export is on, and why: `enabled`, or — unset — whether `DD_AGENT_HOST` or
/// `DD_DOGSTATSD_URL` (host or url) is configured.
fn switched_on(c: &crate::config::StatsdConfig) -> (bool, Origin) {
    match c.enabled {
        Some(on) => (on, Origin::Key("export.statsd.enabled")),
        None if c.host.is_some() || c.url.is_some() => {
            (true, Origin::Derived("on because a host or URL is set"))
        }
        None => (false, Origin::Derived("off because no host or URL is set")),
    }
}

/// The effective StatsD settings for `config show`, from [`Settings::resolve`] itself.
pub fn effective(config: &Config) -> Result<Vec<Effective>, Problem> {
    let Some(s) = Settings::resolve(config)? else {
        let (_, why) = switched_on(&config.export.statsd);
        return Ok(vec![Effective::new("export.statsd.enabled", false, why)]);
    };
    let mut out = vec![
        Effective::new("export.statsd.enabled", true, s.enabled_origin.clone()),
        Effective::new(
            "export.statsd.url",
            s.target.to_string(),
            s.target_origin.clone(),
        ),
    ];
    if let Target::Udp { host, .. } = &s.target {
        let origin = match config.export.statsd.host {
            Some(_) => Origin::Key("export.statsd.host"),
            None => Origin::Default,
        };
        out.push(Effective::new("export.statsd.host", host.as_str(), origin));
    }
    Ok(out)
}

impl Settings {
    /// `Ok(None)` when StatsD export is off. On when `enabled` says so, or — unset — when
    /// `DD_AGENT_HOST` or `DD_DOGSTATSD_URL` (host or url) is configured.
    pub fn resolve(config: &Config) -> Result<Option<Settings>, Problem> {
        let c = &config.export.statsd;
        let (on, enabled_origin) = switched_on(c);
        if !on {
            return Ok(None);
        }
        let target_origin = match &c.url {
            Some(_) => Origin::Key("export.statsd.url"),
            None => Origin::Derived("host and port"),
        };
        let target = match &c.url {
            Some(url) => parse_url(url).ok_or((
                "export.statsd.url",
                format!("{url:?}"),
                "must be udp://host:port or unix:///path/to/dsd.socket".to_string(),
            ))?,
            None => Target::Udp {
                host: c.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                port: c.port,
            },
        };
        if c.interval == 0 {
            return Err((
                "export.statsd.interval",
                "0".into(),
                "must be > 0 ms".into(),
            ));
        }
        let timing = match c.timing_kind.as_str() {
            "histogram" => TimingKind::Histogram,
            "distribution" => TimingKind::Distribution,
            other => {
                return Err((
                    "export.statsd.timingKind",
                    format!("{other:?}"),
                    "must be distribution or histogram".into(),
                ))
            }
        };
        let mut tags = Vec::new();
        let mut tag = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                tags.push(format!("{k}:{}", clean_tag(v)));
            }
        };
        tag("env", &c.env);
        tag("service", &c.service);
        tag("version", &c.version);
        let k8s = &config.export.kubernetes;
        tag("pod_name", &k8s.pod_name);
        tag("kube_namespace", &k8s.namespace_name);
        tag("kube_node", &k8s.node_name);
        tag("kube_container_name", &k8s.container_name);
        tag("dd.internal.entity_id", &c.entity_id);
        for t in c.extra_tags.iter().flat_map(|t| t.split(',')) {
            let t = t.trim();
            if !t.is_empty() {
                tags.push(clean_tag(t));
            }
        }
        if c.max_values_per_interval == 0 {
            return Err((
                "export.statsd.maxValuesPerInterval",
                "0".into(),
                "must be > 0".into(),
            ));
        }
        Ok(Some(Settings {
            target,
            dogstatsd: c.tags,
            prefix: c.prefix.clone(),
            interval: Duration::from_millis(c.interval),
            timing,
            tags,
            enabled_origin,
            target_origin,
            pack_values: c.pack_values,
            max_values: usize::try_from(c.max_values_per_interval).unwrap_or(usize::MAX),
        }))
    }

    pub fn payload(&self) -> usize {
        match self.target {
            Target::Udp { .. } => UDP_PAYLOAD,
            Target::Unix(_) => UDS_PAYLOAD,
        }
    }
}

/// `udp://host:port`, `unix:///path` (also `unixgram://`).
fn parse_url(url: &str) -> Option<Target> {
    if let Some(path) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("unixgram://"))
    {
        return path
            .starts_with('/')
            .then(|| Target::Unix(PathBuf::from(path)));
    }
    let rest = url.strip_prefix("udp://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some(Target::Udp {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

/// DogStatsD separators may not appear inside a tag.
fn clean_tag(t: &str) -> String {
    t.chars()
        .map(|c| {
            if matches!(c, ',' | '|' | '#' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Plain StatsD names: label values become name segments.
fn clean_segment(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A shared sink, so the service check can be written into the same datagrams as the metrics.
#[derive(Clone)]
struct SharedSink(Arc<dyn MetricSink + Send + Sync + std::panic::RefUnwindSafe>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A connected client: cadence for the metrics, the same sink for raw service-check lines.
pub struct Sender {
    settings: Settings,
    client: StatsdClient,
    sink: SharedSink,
    deltas: Deltas,
}

impl Sender {
    /// Opens the socket (non-blocking) and resolves the host. Fails when the host does not
    /// resolve; a missing Unix socket is not an error here (sends fail until it appears).
    pub fn connect(settings: &Settings) -> std::io::Result<Sender> {
        let sink: SharedSink = match &settings.target {
            Target::Udp { host, port } => {
                let bind = if host.contains(':') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let socket = std::net::UdpSocket::bind(bind)?;
                socket.set_nonblocking(true)?;
                let sink = BufferedUdpMetricSink::with_capacity(
                    (host.as_str(), *port),
                    socket,
                    UDP_PAYLOAD,
                )
                .map_err(|e| std::io::Error::other(crate::logging::error_chain(&e)))?;
                SharedSink(Arc::new(sink))
            }
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                SharedSink(Arc::new(BufferedUnixMetricSink::with_capacity(
                    path,
                    socket,
                    UDS_PAYLOAD,
                )))
            }
        };
        let mut builder = StatsdClient::builder(&settings.prefix, sink.clone());
        if settings.dogstatsd {
            for t in &settings.tags {
                builder = match t.split_once(':') {
                    Some((k, v)) => builder.with_tag(k, v),
                    None => builder.with_tag_value(t),
                };
            }
        }
        Ok(Sender {
            settings: settings.clone(),
            client: builder.build(),
            sink,
            deltas: Deltas::default(),
        })
    }

    /// Sends one batch — `snapshot`'s gauges and counter increases, the values in `values`
    /// (taken; they are gone afterwards whatever happens), the service check — and flushes.
    /// Returns the first error, if any (the rest of the batch is still attempted).
    pub fn send(&mut self, snapshot: &Snapshot, values: &mut Sampled) -> Result<(), String> {
        let mut first_error: Option<String> = None;
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        let dog = self.settings.dogstatsd;
        for sample in &snapshot.samples {
            let Some(name) = sample.def.statsd else {
                continue;
            };
            let increase = self.deltas.of(sample);
            let key = if dog {
                name.to_string()
            } else {
                plain_name(name, &sample.labels)
            };
            let tags = if dog {
                label_tags(sample.def, &sample.labels)
            } else {
                Vec::new()
            };
            let result = match (&sample.value, increase) {
                (SampleValue::Gauge(v), _) => {
                    let mut b = self.client.gauge_with_tags(&key, *v);
                    for (k, v) in &tags {
                        b = b.with_tag(k, v);
                    }
                    b.try_send().map(drop)
                }
                (SampleValue::Counter(_), Some(d)) if d >= 1.0 => {
                    let mut b = self.client.count_with_tags(&key, d.round() as i64);
                    for (k, v) in &tags {
                        b = b.with_tag(k, v);
                    }
                    b.try_send().map(drop)
                }
                _ => Ok(()),
            };
            note(result.map_err(|e| e.to_string()));
        }
        for series in values.take() {
            let Some(name) = series.def.statsd else {
                continue;
            };
            let (key, tags) = if dog {
                (name.to_string(), label_tags(series.def, &series.labels))
            } else {
                (plain_name(name, &series.labels), Vec::new())
            };
            note(self.send_values(&key, &tags, &series.kept, series.rate()));
        }
        if dog {
            let line = service_check_line(snapshot, &self.settings.tags);
            note(self.sink.emit(&line).map(drop).map_err(|e| e.to_string()));
        }
        note(self.sink.flush().map_err(|e| e.to_string()));
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Observations of a histogram metric (seconds), each standing for `1 / rate` executions.
    fn send_values(
        &self,
        key: &str,
        tags: &[(&str, &str)],
        values: &[f64],
        rate: Option<f64>,
    ) -> Result<(), String> {
        if !self.settings.dogstatsd {
            // Plain StatsD timers, in whole milliseconds, one a line.
            for v in values {
                let ms = (v * 1000.0).round().max(0.0) as u64;
                let mut b = self.client.time_with_tags(key, ms);
                if let Some(rate) = rate {
                    b = b.with_sampling_rate(rate);
                }
                b.try_send().map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        let per_line = if self.settings.pack_values {
            VALUES_PER_LINE
        } else {
            1
        };
        for chunk in values.chunks(per_line) {
            let values = chunk.to_vec();
            let result = match self.settings.timing {
                TimingKind::Distribution => {
                    let mut b = self.client.distribution_with_tags(key, values);
                    if let Some(rate) = rate {
                        b = b.with_sampling_rate(rate);
                    }
                    for (k, v) in tags {
                        b = b.with_tag(k, v);
                    }
                    b.try_send().map(drop)
                }
                TimingKind::Histogram => {
                    let mut b = self.client.histogram_with_tags(key, values);
                    if let Some(rate) = rate {
                        b = b.with_sampling_rate(rate);
                    }
                    for (k, v) in tags {
                        b = b.with_tag(k, v);
                    }
                    b.try_send().map(drop)
                }
            };
            result.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The values of one histogram series since the last flush.
#[derive(Debug)]
pub struct SampledSeries {
    pub def: &'static MetricDef,
    pub labels: Vec<String>,
    /// All values seen, or a uniform sample of them.
    pub kept: Vec<f64>,
    /// How many values were seen.
    pub seen: u64,
}

impl SampledSeries {
    /// `None` when every value is kept; else the fraction kept, the `|@rate` that makes each
    /// sent value count for `seen / kept` executions.
    pub fn rate(&self) -> Option<f64> {
        let kept = self.kept.len() as u64;
        (kept < self.seen && kept > 0).then(|| kept as f64 / self.seen as f64)
    }
}

/// Observed values waiting for the next flush, bounded per series: reservoir sampling keeps a
/// uniform sample of `max` values however many arrive, and counts them all.
#[derive(Debug)]
pub struct Sampled {
    max: usize,
    series: Vec<SampledSeries>,
    /// xorshift64 state: the sample needs uniformity, not unpredictability.
    rng: u64,
}

impl Sampled {
    pub fn new(max: usize) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Sampled {
            max: max.max(1),
            series: Vec::new(),
            rng: seed | 1,
        }
    }

    fn next_below(&mut self, n: u64) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % n
    }

    /// Adds every value of the series StatsD sends.
    pub fn observe(&mut self, observed: &Observed) {
        for o in observed.series.iter().filter(|o| o.def.statsd.is_some()) {
            let i = match self
                .series
                .iter()
                .position(|s| s.def.name == o.def.name && s.labels == o.labels)
            {
                Some(i) => i,
                None => {
                    self.series.push(SampledSeries {
                        def: o.def,
                        labels: o.labels.clone(),
                        kept: Vec::new(),
                        seen: 0,
                    });
                    self.series.len() - 1
                }
            };
            for &v in &o.values {
                let seen = self.series[i].seen;
                self.series[i].seen += 1;
                if self.series[i].kept.len() < self.max {
                    self.series[i].kept.push(v);
                } else {
                    // Algorithm R: the new value replaces a kept one with probability max/seen.
                    let j = self.next_below(seen + 1) as usize;
                    if j < self.max {
                        self.series[i].kept[j] = v;
                    }
                }
            }
        }
    }

    /// Everything waiting, emptied.
    pub fn take(&mut self) -> Vec<SampledSeries> {
        std::mem::take(&mut self.series)
    }
}

fn label_tags<'a>(def: &'static MetricDef, values: &'a [String]) -> Vec<(&'static str, &'a str)> {
    def.labels
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .collect()
}

fn plain_name(name: &str, labels: &[String]) -> String {
    let mut out = name.to_string();
    for v in labels.iter().filter(|v| v.as_str() != "all") {
        out.push('.');
        out.push_str(&clean_segment(v));
    }
    out
}

/// `_sc|codex.can_execute|<0..3>|#tags|m:<message>`: OK when the availability check is
/// healthy, WARNING when slow, CRITICAL when failing or Codex is missing, UNKNOWN before the
/// first probe.
pub fn service_check_line(snapshot: &Snapshot, tags: &[String]) -> String {
    let probed = snapshot
        .metrics
        .probes
        .iter()
        .any(|p| p.name == AVAILABILITY_CHECK && p.runs > 0);
    let check = snapshot
        .report
        .checks
        .iter()
        .find(|c| c.name == AVAILABILITY_CHECK);
    let (status, message) = match check {
        Some(c) if probed => (
            match c.status {
                Status::Healthy => 0,
                Status::Warning => 1,
                Status::Critical | Status::Unavailable => 2,
            },
            c.message.as_str(),
        ),
        Some(c) => (3, c.message.as_str()),
        None => (3, "no availability probe"),
    };
    let mut line = format!("_sc|{SERVICE_CHECK}|{status}");
    if !tags.is_empty() {
        line.push_str("|#");
        line.push_str(&tags.join(","));
    }
    let message: String = message
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '|') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if !message.is_empty() {
        line.push_str("|m:");
        line.push_str(&message);
    }
    line
}

/// The StatsD exporter: a lazily connected [`Sender`] and the values waiting for it.
pub struct StatsdExporter {
    settings: Settings,
    sender: Option<Sender>,
    values: Sampled,
}

/// The registry's constructor ([`super::REGISTRY`]).
pub fn configure(config: &Config) -> Result<Option<Box<dyn PushExporter>>, Problem> {
    Ok(Settings::resolve(config)?.map(|settings| {
        Box::new(StatsdExporter {
            values: Sampled::new(settings.max_values),
            settings,
            sender: None,
        }) as Box<dyn PushExporter>
    }))
}

#[async_trait::async_trait]
impl PushExporter for StatsdExporter {
    fn name(&self) -> &'static str {
        EXPORTER
    }

    fn interval(&self) -> Duration {
        self.settings.interval
    }

    fn log_start(&self) {
        tracing::info!(
            exporter = EXPORTER,
            destination = %self.settings.target,
            dogstatsd = self.settings.dogstatsd,
            pack_values = self.settings.pack_values,
            interval_ms = self.settings.interval.as_millis() as u64,
            "StatsD export on"
        );
    }

    fn observe(&mut self, observed: &Observed) {
        self.values.observe(observed);
    }

    /// Connecting may await (and be abandoned at shutdown); the batch itself is sent without
    /// awaiting, so it is never cut in half.
    async fn export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError> {
        connect(&self.settings, &mut self.sender).await?;
        let sender = self.sender.as_mut().expect("connected");
        Ok(sender.send(snapshot, &mut self.values)?)
    }

    async fn final_export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError> {
        self.export(snapshot).await
    }
}

/// How long opening the target (a DNS lookup for UDP) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects if needed. The connect resolves the host name, which blocks, so it runs on the
/// blocking pool under [`CONNECT_TIMEOUT`]: a slow resolver never holds a worker.
async fn connect(settings: &Settings, sender: &mut Option<Sender>) -> Result<(), String> {
    if sender.is_none() {
        let s = settings.clone();
        let connect = tokio::task::spawn_blocking(move || Sender::connect(&s));
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| "resolving the StatsD host timed out".to_string())?
            .map_err(|e| crate::logging::error_chain(&e))?
            .map_err(|e| {
                format!(
                    "cannot open the StatsD target {}: {}",
                    settings.target,
                    crate::logging::error_chain(&e)
                )
            })?;
        *sender = Some(connected);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("udp://10.0.0.1:8125"),
            Some(Target::Udp {
                host: "10.0.0.1".into(),
                port: 8125
            })
        );
        assert_eq!(
            parse_url("unix:///var/run/datadog/dsd.socket"),
            Some(Target::Unix("/var/run/datadog/dsd.socket".into()))
        );
        assert_eq!(parse_url("tcp://x:1"), None);
        assert_eq!(parse_url("unix://relative"), None);
    }

    #[test]
    fn zero_config_and_explicit_false() {
        let mut c = Config::default();
        assert!(Settings::resolve(&c).unwrap().is_none());
        c.export.statsd.host = Some("dd-agent".into());
        c.export.statsd.env = Some("prod".into());
        c.export.statsd.entity_id = Some("uid-1".into());
        c.export.statsd.extra_tags = vec!["team:ai,tier:1".into(), "canary".into()];
        let s = Settings::resolve(&c).unwrap().unwrap();
        assert_eq!(
            s.target,
            Target::Udp {
                host: "dd-agent".into(),
                port: 8125
            }
        );
        assert_eq!(
            s.tags,
            vec![
                "env:prod",
                "dd.internal.entity_id:uid-1",
                "team:ai",
                "tier:1",
                "canary"
            ]
        );
        c.export.statsd.enabled = Some(false);
        assert!(Settings::resolve(&c).unwrap().is_none());
    }

    #[test]
    fn plain_names_carry_label_values() {
        assert_eq!(
            plain_name(
                "codex.executions",
                &["code review".into(), "success".into()]
            ),
            "codex.executions.code_review.success"
        );
        assert_eq!(
            plain_name("codex.execution_time", &["all".into()]),
            "codex.execution_time"
        );
    }

    /// Past the bound a uniform sample goes out whose rate makes the counts exact; below it
    /// every value goes out as itself, without a rate.
    #[test]
    fn sampling_keeps_counts_exact_and_the_sample_uniform() {
        let labels = ["review".to_string()];
        let mut sampled = Sampled::new(1000);
        let mut observed = Observed::default();
        for i in 0..10_000 {
            observed.push(&crate::catalog::EXECUTION_TIME, &labels, f64::from(i));
        }
        // Probe durations have no StatsD name: not kept.
        observed.push(&crate::catalog::PROBE_DURATION, &labels, 1.0);
        sampled.observe(&observed);
        let series = sampled.take();
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!((s.kept.len(), s.seen), (1000, 10_000));
        let rate = s.rate().unwrap();
        assert_eq!(rate, 0.1);
        assert_eq!((s.kept.len() as f64 / rate).round(), 10_000.0);
        // Uniform: the sample's mean is near the population's (4999.5; sd of the mean ≈ 91).
        let mean = s.kept.iter().sum::<f64>() / 1000.0;
        assert!((mean - 4999.5).abs() < 500.0, "mean {mean}");
        assert!(sampled.take().is_empty(), "taken");
        let mut few = Observed::default();
        few.push(&crate::catalog::EXECUTION_TIME, &labels, 2.5);
        sampled.observe(&few);
        let s = sampled.take();
        assert_eq!((s[0].kept.clone(), s[0].rate()), (vec![2.5], None));
    }
}
