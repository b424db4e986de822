//! The Prometheus page as Prometheus itself sees it: `promtool check metrics` on the text
//! format, OpenMetrics on Prometheus's own Accept header, a real Prometheus server (Debian
//! `prometheus`) scraping the agent on loopback and answering PromQL, including every panel of
//! `dashboards/grafana.json`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::prometheus::{grafana_exprs, tool, value, Prometheus};
use common::{codex_bin, http_request, start_agent, write_operations_log, AgentOptions};

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn agent_env() -> Vec<(&'static str, String)> {
    vec![
        ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
        ("CODEX_HEALTH_CHECK_INTERVAL", "1000".into()),
        ("CODEX_OPERATIONS_LOG_BACKFILL", "true".into()),
        // The log volumes' panels: a size limit, and a growth rate known after 200 ms.
        ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "64Mi".into()),
        ("CODEX_DISK_USAGE_INTERVAL", "100".into()),
        ("CODEX_DISK_USAGE_GROWTH_WINDOW", "400".into()),
    ]
}

#[test]
fn promtool_finds_the_text_format_clean() {
    let agent = start_agent(AgentOptions {
        env: agent_env(),
        ..Default::default()
    });
    agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |j| {
        j["probes"][0]["runs"].as_u64().unwrap_or(0) >= 1
    });
    let (code, text) = agent.get("/metrics");
    assert_eq!(code, 200);
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n--- page:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every family has HELP and TYPE.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split_whitespace().nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
}

#[test]
fn openmetrics_is_served_to_prometheus_accept_header() {
    let agent = start_agent(AgentOptions {
        env: agent_env(),
        ..Default::default()
    });
    let url = agent.url("/metrics");
    let raw = raw_get(&url, PROMETHEUS_ACCEPT);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(body.contains("# TYPE codex_probe_duration_seconds histogram"));
    assert!(body.contains("# TYPE codex_sentinel_export_errors counter"));
    assert!(body.contains("codex_sentinel_export_errors_total{exporter=\"otlp\"} 0"));
    // Plain text when nothing is asked for.
    let (code, text) = http_request("GET", &url, None, &[]).unwrap();
    assert_eq!(code, 200);
    assert!(!text.contains("# EOF"));
}

fn raw_get(url: &str, accept: &str) -> String {
    use std::io::Read;
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn real_prometheus_scrapes_the_agent_and_answers_every_grafana_panel() {
    let agent = start_agent(AgentOptions {
        env: agent_env(),
        ..Default::default()
    });
    let prom = Prometheus::start("codex-sentinel", agent.port);
    prom.wait_query("up{job=\"codex-sentinel\"}", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    let r = prom.wait_query("codex_availability_status", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(r[0]["metric"]["job"], "codex-sentinel");
    // The application logs one execution; once Prometheus has the new series, 19 more:
    // 10 × 2.5 s, 5 × 7 s, 3 × 20 s, 45 s. (A series is born with its first value, so only what
    // comes after shows in rate().) Increase per bucket: le 1: 0, 5: 10, 10: 15, 30: 18, 60: 19.
    write_operations_log(agent.path(), "review", &[800]);
    prom.wait_query("sum(codex_execution_time_seconds_count)", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    let mut durations = vec![2500u64; 10];
    durations.extend([7000; 5]);
    durations.extend([20000; 3]);
    durations.push(45000);
    write_operations_log(agent.path(), "review", &durations);
    prom.wait_query("sum(codex_execution_time_seconds_count)", |r| {
        r.len() == 1 && value(&r[0]) == 20.0
    });
    // Over all 20 (1, 11, 16, 19, 20 per bucket), p95 is rank 19: the top of (10, 30].
    let q = "histogram_quantile(0.95, sum by (le) (codex_execution_time_seconds_bucket))";
    let r = prom.query(q);
    assert!((value(&r[0]) - 30.0).abs() < 1e-9, "p95 {}", value(&r[0]));
    let r = prom
        .query("sum(codex_execution_time_seconds_sum) / sum(codex_execution_time_seconds_count)");
    assert!(
        (value(&r[0]) - 8.29).abs() < 1e-9,
        "average {}",
        value(&r[0])
    );
    // As the dashboard asks it, over the last minute: the 19 later executions put p95 in
    // (30, 60] (rate() extrapolates each bucket a little differently, hence a range).
    let q = "histogram_quantile(0.95, sum by (le) (rate(codex_execution_time_seconds_bucket[1m])))";
    let r = prom.wait_query(q, |r| r.len() == 1 && value(&r[0]).is_finite());
    assert!(
        value(&r[0]) > 30.0 && value(&r[0]) <= 60.0,
        "p95 over 1m {}",
        value(&r[0])
    );
    // With data behind it (the probe-duration histogram fills every second), a real number
    // within the buckets.
    let r = prom.wait_query(
        "histogram_quantile(0.95, sum by (le) (rate(codex_probe_duration_seconds_bucket[1m])))",
        |r| r.len() == 1 && value(&r[0]).is_finite(),
    );
    assert!(value(&r[0]) > 0.0 && value(&r[0]) <= 30.0);
    // Enough samples for rate() over every panel.
    prom.wait_query("count_over_time(up[1m])", |r| {
        r.len() == 1 && value(&r[0]) >= 4.0
    });
    // The agent's exact windowed percentiles (nearest rank, within the sketch's 0.5 %): over
    // the 20 executions p50 is rank 10 (2.5 s), p95 rank 19 (20 s), p99 rank 20 (45 s) — where
    // the buckets above could only say "somewhere in (10, 30]". Then the specification's
    // series from prometheus/rules.yml.
    for (series, exact) in [
        ("codex_execution_time_p50_seconds", 2.5),
        ("codex_execution_time_p95_seconds", 20.0),
        ("codex_execution_time_p99_seconds", 45.0),
    ] {
        let r = prom.wait_query(series, |r| !r.is_empty());
        assert!(
            (value(&r[0]) - exact).abs() <= exact * 0.005,
            "{series} {} vs {exact}",
            value(&r[0])
        );
    }
    for series in [
        "codex_execution_time_p95",
        "codex_execution_time_avg",
        "codex_memory_usage_mb",
    ] {
        prom.wait_query(series, |r| !r.is_empty());
    }
    let mut failures = Vec::new();
    for (title, expr) in grafana_exprs() {
        let result = prom.query(&expr);
        if result.is_empty() {
            failures.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "panels without data:\n{}",
        failures.join("\n")
    );
}
