//! A real Prometheus server (Debian `prometheus`) scraping one target on loopback every second,
//! answering PromQL through its HTTP API. Used against the agent's own `/metrics` and against
//! the OpenTelemetry Collector's Prometheus exporter.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get};

/// A tool from the Debian packages of `scripts/setup.d/00-apt.sh`; panics with the set-up
/// command when it is missing.
pub fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} missing: run scripts/test (or scripts/setup.d/00-apt.sh, Debian package prometheus)"
    );
    name.to_string()
}

/// A running Prometheus with its own port and storage; killed on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `127.0.0.1:target_port/metrics` as job `job`, and waits until
    /// it is ready.
    pub fn start(job: &str, target_port: u16) -> Prometheus {
        Prometheus::start_with(job, target_port, &[])
    }

    /// As [`Prometheus::start`], with extra command-line flags (e.g.
    /// `--enable-feature=native-histograms`).
    /// The project's recording rules (`prometheus/rules.yml`) are loaded.
    pub fn start_with(job: &str, target_port: u16, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = super::root().join("prometheus/rules.yml");
        let rules = rules.display();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  evaluation_interval: 500ms\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(
            http_get(&format!("http://127.0.0.1:{port}/-/ready")),
            Ok((200, _))
        ) {
            assert!(Instant::now() < deadline, "prometheus not ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// Instant query; returns the `data.result` array (panics on an error status).
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            url_encode(promql)
        );
        let (code, body) = http_get(&url).unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (code, json["status"].as_str()),
            (200, Some("success")),
            "query {promql}: {body}"
        );
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Repeats `promql` until `pred` holds on its result, or panics after a minute.
    pub fn wait_query(
        &self,
        promql: &str,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.query(promql);
            if pred(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "{promql}: last result {r:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sample value of one element of a query result.
pub fn value(r: &serde_json::Value) -> f64 {
    r["value"][1].as_str().unwrap().parse().unwrap()
}

/// Every `expr` of every panel target in the Grafana dashboard, with Grafana's variables
/// replaced by what Grafana would put there.
pub fn grafana_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(super::root().join("dashboards/grafana.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                expr.replace("$__rate_interval", "1m")
                    .replace("$__interval", "15s")
                    .replace("$__range", "5m"),
            ));
        }
    }
    out
}
