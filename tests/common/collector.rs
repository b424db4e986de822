//! A real OpenTelemetry Collector (the distribution in `tools/otelcol/`, built by
//! `scripts/setup.d/50-otelcol.sh`) started for one test: its own tempdir, generated config and
//! free ports, ready when its health check says so, killed on drop.
//!
//! Pipelines, both fed by the receivers `otlp` (gRPC + HTTP) and `statsd`:
//! - `metrics`: processors `delta_to_cumulative`, `batch` → exporter `prometheus` (its own port),
//!   what a Prometheus-based deployment sees;
//! - `metrics/received`: no processor → exporter `file` (OTLP/JSON lines in the tempdir), exactly
//!   what the receivers produced (temporality, units, attributes as they arrived).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{free_port, http_get, root};

/// The execution-time buckets of the catalog, in seconds; the statsd receiver builds explicit
/// histograms with them for `codex.execution_time` (`|d`, `|h`), and with the same bounds in
/// milliseconds for StatsD timers (`|ms`, the plain-StatsD unit).
const EXECUTION_TIME_BUCKETS_S: [f64; 5] = [1.0, 5.0, 10.0, 30.0, 60.0];

/// The Collector binary; panics with the set-up command when it is missing.
pub fn otelcol_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CODEX_SENTINEL_TEST_OTELCOL") {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/otelcol/otelcol");
    assert!(
        p.exists(),
        "OpenTelemetry Collector missing at {}: run scripts/test (or scripts/setup.d/50-otelcol.sh)",
        p.display()
    );
    p
}

/// Options for [`Collector::start_with`].
pub struct CollectorOptions {
    /// The Collector's own log level. `debug` makes the statsd receiver log each line it cannot
    /// parse ("Error aggregating pmetric"), the only trace a dropped line leaves.
    pub log_level: &'static str,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions { log_level: "info" }
    }
}

/// A running Collector; killed on drop.
pub struct Collector {
    child: Child,
    config: PathBuf,
    dir: tempfile::TempDir,
    pub grpc_port: u16,
    pub http_port: u16,
    /// UDP.
    pub statsd_port: u16,
    /// The Prometheus exporter's port (`/metrics`).
    pub prometheus_port: u16,
    health_port: u16,
    log_lines: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    pub fn start() -> Collector {
        Collector::start_with(CollectorOptions::default())
    }

    /// Writes the config, starts the Collector and waits until its health check answers 200
    /// (it does once every pipeline has started, so every receiver is listening).
    pub fn start_with(opts: CollectorOptions) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let (grpc_port, http_port, prometheus_port, health_port) =
            (free_port(), free_port(), free_port(), free_port());
        let statsd_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let output = dir.path().join("metrics.jsonl");
        let config = dir.path().join("otelcol.yaml");
        std::fs::write(
            &config,
            config_yaml(
                [
                    grpc_port,
                    http_port,
                    statsd_port,
                    prometheus_port,
                    health_port,
                ],
                &output.display().to_string(),
                opts.log_level,
            ),
        )
        .unwrap();
        let log_lines = Arc::new(Mutex::new(Vec::new()));
        let child = spawn(&config, dir.path(), &log_lines);
        let mut collector = Collector {
            child,
            config,
            dir,
            grpc_port,
            http_port,
            statsd_port,
            prometheus_port,
            health_port,
            log_lines,
        };
        collector.wait_ready();
        collector
    }

    /// Stops the Collector (SIGKILL): its ports refuse connections until [`Collector::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the Collector again with the same configuration and ports; waits until ready.
    /// Its log continues in [`Collector::logs`].
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.config, self.dir.path(), &self.log_lines);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let health = format!("http://127.0.0.1:{}/", self.health_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(&health) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "Collector exited ({status}) before it was ready:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Collector not ready within 30 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the agent with `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the agent with `http/protobuf`.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The Prometheus exporter's page, as text.
    pub fn scrape(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.prometheus_port);
        match http_get(&url) {
            Ok((200, body)) => body,
            other => panic!("GET {url}: {other:?}\n{}", self.log_tail()),
        }
    }

    /// Scrapes the Prometheus exporter until `pred` holds on the page, or panics after 30 s
    /// with the last page and the Collector's log.
    pub fn wait_scrape(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = self.scrape();
            if pred(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "Collector's Prometheus exporter never showed {what}; last page:\n{page}\nCollector log (end):\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the receivers produced, unprocessed (the file exporter's output): one OTLP/JSON
    /// `ExportMetricsServiceRequest` a line.
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The Collector's log so far.
    pub fn logs(&self) -> String {
        self.log_lines.lock().unwrap().join("\n")
    }

    /// The last lines of the Collector's log, for failure messages (debug logs are long).
    fn log_tail(&self) -> String {
        let lines = self.log_lines.lock().unwrap();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .log_lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no Collector log line with {needle:?}; log (end):\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the Collector on `config` in `dir`, its stderr appended to `log_lines` line by line.
fn spawn(
    config: &std::path::Path,
    dir: &std::path::Path,
    log_lines: &Arc<Mutex<Vec<String>>>,
) -> Child {
    let mut child = Command::new(otelcol_bin())
        .arg(format!("--config={}", config.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the OpenTelemetry Collector");
    let stderr = child.stderr.take().unwrap();
    let sink = log_lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    child
}

fn config_yaml(
    [grpc, http, statsd, prometheus, health]: [u16; 5],
    output: &str,
    log_level: &str,
) -> String {
    let seconds = format!("{EXECUTION_TIME_BUCKETS_S:?}");
    let millis = format!("{:?}", EXECUTION_TIME_BUCKETS_S.map(|s| s * 1000.0));
    let mapping = |statsd_type: &str, buckets: &str| {
        format!(
            r#"      - statsd_type: {statsd_type}
        observer_type: histogram
        histogram:
          explicit_buckets:
            - matcher_pattern: "^codex\\.execution_time"
              buckets: {buckets}
"#
        )
    };
    format!(
        r#"extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
  statsd:
    endpoint: 127.0.0.1:{statsd}
    aggregation_interval: 500ms
    enable_metric_type: true
    is_monotonic_counter: true
    timer_histogram_mapping:
{distribution}{histogram}{timing}processors:
  delta_to_cumulative: {{}}
  batch:
    timeout: 200ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prometheus}
  file:
    path: {output}
    flush_interval: 100ms
service:
  extensions: [health_check]
  telemetry:
    logs:
      level: {log_level}
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp, statsd]
      processors: [delta_to_cumulative, batch]
      exporters: [prometheus]
    metrics/received:
      receivers: [otlp, statsd]
      exporters: [file]
"#,
        distribution = mapping("distribution", &seconds),
        histogram = mapping("histogram", &seconds),
        timing = mapping("timing", &millis),
    )
}

/// One sample of a Prometheus text page: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of series `name` (exact name, e.g. `codex_executions_total`) on a text page.
pub fn samples(page: &str, name: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let (labels, value) = inner.rsplit_once("} ")?;
                    (parse_labels(labels), value)
                }
                None => (BTreeMap::new(), rest.strip_prefix(' ')?),
            };
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some(Sample { labels, value })
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include all of `labels`.
pub fn sample_value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<Sample> = samples(page, name)
        .into_iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name}{labels:?} matches {} samples: {matching:?}",
        matching.len()
    );
    matching.first().map(|s| s.value)
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    out
}
