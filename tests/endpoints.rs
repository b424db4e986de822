//! The HTTP endpoints: shapes checked against the specification's own examples, status codes,
//! Prometheus exposition validated by promtool, lifecycle and logs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{codex_bin, fixtures_bin, http_request, start_agent, AgentOptions};
use serde_json::Value;

/// A fact copied from the specification into `tests/fixtures/spec` (see its README).
fn spec_fixture(name: &str) -> String {
    let path = common::root().join("tests/fixtures/spec").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One of the specification's JSON examples.
fn spec_json(name: &str) -> Value {
    serde_json::from_str(&spec_fixture(name)).unwrap()
}

/// Field names of a TypeScript interface in the specification, as (path, name): top-level
/// fields have an empty path, fields of nested objects the parent's name. Fields of array items
/// (`Array<{ … }>`) are left out: an empty array has none.
fn spec_interface_fields(name: &str) -> Vec<(String, String)> {
    let text = spec_fixture("performance-interfaces.ts");
    let from = text.find(&format!("interface {name} {{")).unwrap();
    let body = &text[from..];
    let body = &body[..body.find("\n}").unwrap()];
    let re = regex::Regex::new(r"^(\s+)(\w+):").unwrap();
    let mut out = Vec::new();
    let mut parent = String::new();
    let mut in_array = false;
    for line in body.lines().skip(1) {
        if let Some(c) = re.captures(line) {
            let depth = c[1].len();
            if depth == 2 {
                parent.clear();
                in_array = line.contains("Array<{");
                out.push((String::new(), c[2].to_string()));
                if line.trim_end().ends_with('{') && !in_array {
                    parent = c[2].to_string();
                }
            } else if !in_array {
                out.push((parent.clone(), c[2].to_string()));
            }
        }
    }
    out
}

/// Waits until the agent's log as a whole satisfies `pred`; returns it.
fn wait_stderr(agent: &common::Agent, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stderr = agent.stderr();
        if pred(&stderr) {
            return stderr;
        }
        assert!(Instant::now() < deadline, "{what} not logged:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `expected` exists in `actual` with the same JSON type, recursively (arrays: the
/// first element of each, when both have one).
fn assert_shape(path: &str, expected: &Value, actual: &Value) {
    assert_eq!(kind(expected), kind(actual), "{path}: {actual}");
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {actual}"));
                assert_shape(&format!("{path}.{k}"), ev, av);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(e0), Some(a0)) = (e.first(), a.first()) {
                assert_shape(&format!("{path}[0]"), e0, a0);
            }
        }
        _ => {}
    }
}

fn healthy_agent() -> common::Agent {
    start_agent(AgentOptions {
        env: vec![(
            "CODEX_EXECUTABLE",
            codex_bin().to_string_lossy().into_owned(),
        )],
        ..Default::default()
    })
}

fn wait_probed(agent: &common::Agent) -> Value {
    agent.wait_json("/health/codex", Duration::from_secs(20), |r| {
        r["checks"][0]["details"].get("version").is_some()
    })
}

#[test]
fn health_report_has_the_specifications_shape_field_by_field() {
    let t0 = common::now_ms_for_tests();
    let agent = healthy_agent();
    let report = wait_probed(&agent);
    let example = spec_json("health-report.json");
    assert_shape("report", &example, &report);
    // Exactly the specification's top-level keys, nothing invented at the top.
    let mut keys: Vec<_> = report.as_object().unwrap().keys().cloned().collect();
    let mut want: Vec<_> = example.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want);
    // Interfaces: every field the specification's TypeScript declares, at its place.
    let perf = &report["performance"];
    for (interface, key) in [
        ("ExecutionMetrics", "executionMetrics"),
        ("ResourceMetrics", "resourceMetrics"),
        ("ReliabilityMetrics", "reliabilityMetrics"),
    ] {
        let fields = spec_interface_fields(interface);
        assert!(fields.len() >= 6, "{interface}: {fields:?}");
        for (parent, field) in fields {
            let node = if parent.is_empty() {
                &perf[key]
            } else {
                &perf[key][&parent]
            };
            assert!(
                node.get(&field).is_some(),
                "{key}.{parent}.{field} missing: {}",
                perf[key]
            );
        }
    }
    // Epoch milliseconds and uptime in milliseconds.
    let now = common::now_ms_for_tests();
    let ts = report["timestamp"].as_u64().unwrap();
    assert!(ts >= t0 && ts <= now, "timestamp {ts} not in [{t0}, {now}]");
    let uptime = report["uptime"].as_u64().unwrap();
    assert!(uptime <= now - t0 + 1000, "uptime {uptime} ms");
    let check = &report["checks"][0];
    assert_eq!(check["name"], "codex-availability");
    assert!(check["timestamp"].as_u64().unwrap() >= t0);
    assert_eq!(report["alerts"], serde_json::json!([]));
}

#[test]
fn status_and_metrics_endpoints_have_the_specifications_shape() {
    let agent = healthy_agent();
    wait_probed(&agent);
    let (code, status) = agent.get_json("/health/codex/status");
    assert_eq!(code, 200);
    let example = spec_json("health-status.json");
    assert_shape("status", &example, &status);
    assert_eq!(
        status.as_object().unwrap().len(),
        example.as_object().unwrap().len()
    );
    assert_eq!(status["successRate"], 100.0);
    // Any Codex process on the machine counts, so only its type is certain here.
    assert!(status["activeProcesses"].is_u64(), "{status}");

    let (code, metrics) = agent.get_json("/health/codex/metrics");
    assert_eq!(code, 200);
    // The specification's troubleshooting reads `.performance` from this endpoint.
    let report = agent.get_json("/health/codex").1;
    assert_shape(
        "metrics.performance",
        &report["performance"],
        &metrics["performance"],
    );
    let probe = &metrics["probes"][0];
    assert_eq!(probe["name"], "codex-availability");
    assert!(probe["runs"].as_u64().unwrap() >= 1);
    assert_eq!(probe["successes"], probe["runs"]);
}

#[test]
fn status_codes_paths_and_methods() {
    let agent = healthy_agent();
    wait_probed(&agent);
    for path in [
        "/health/codex",
        "/health/codex/status",
        "/health/codex/metrics",
        "/metrics",
        "/livez",
        "/readyz",
    ] {
        assert_eq!(agent.get(path).0, 200, "{path}");
        let (code, _) = http_request("HEAD", &agent.url(path), None, &[]).unwrap();
        assert_eq!(code, 200, "HEAD {path}");
    }
    for path in ["/", "/health", "/health/codex/nope", "/metricsx"] {
        assert_eq!(agent.get(path).0, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (code, _) = http_request(method, &agent.url("/health/codex"), Some("{}"), &[]).unwrap();
        assert_eq!(code, 405, "{method}");
    }
}

#[test]
fn base_path_is_configurable() {
    let agent = start_agent(AgentOptions {
        env: vec![
            (
                "CODEX_EXECUTABLE",
                codex_bin().to_string_lossy().into_owned(),
            ),
            ("CODEX_HEALTH_PATH", "/status/codex".into()),
        ],
        ..Default::default()
    });
    assert_eq!(agent.get("/status/codex/status").0, 200);
    assert_eq!(agent.get("/health/codex").0, 404);
}

fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; installed by scripts/test)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn prometheus_page_passes_promtool_with_no_complaint_and_negotiates_openmetrics() {
    let agent = healthy_agent();
    wait_probed(&agent);
    let (code, text) = agent.get("/metrics");
    assert_eq!(code, 200);
    let (ok, said) = promtool_check(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    for needle in [
        "# TYPE codex_availability_status gauge",
        "codex_availability_status 1",
        // codex_execution_time_seconds has series per operation type from the first execution
        // in the operations log on (tests/oplog.rs); the log's line counters are always there.
        r#"codex_sentinel_oplog_lines_total{result="ok"} 0"#,
        "# TYPE codex_probe_duration_seconds histogram",
        r#"codex_probe_duration_seconds_count{probe="codex-availability"} "#,
        "# TYPE codex_probe_runs_total counter",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // Content types.
    let raw = raw_get(agent.port, "/metrics", "text/plain");
    assert!(
        raw.contains("Content-Type: text/plain; version=0.0.4")
            || raw.contains("content-type: text/plain; version=0.0.4"),
        "{raw}"
    );
    let raw = raw_get(
        agent.port,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    );
    assert!(
        raw.to_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{raw}"
    );
    assert!(raw.trim_end().ends_with("# EOF"), "{raw}");
}

fn raw_get(port: u16, path: &str, accept: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn sigterm_and_sigint_stop_the_agent_within_five_seconds_killing_a_running_probe() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join(format!("codex-hang-signal-{signal}"));
        std::fs::copy(fixtures_bin().join("codex-hang"), &exe).unwrap();
        let mut agent = start_agent(AgentOptions {
            env: vec![
                ("CODEX_EXECUTABLE", exe.to_string_lossy().into_owned()),
                ("CODEX_HEALTH_CHECK_TIMEOUT", "60000".into()),
            ],
            ..Default::default()
        });
        // Wait until the hanging probe runs, and remember its process group.
        let deadline = Instant::now() + Duration::from_secs(10);
        let pgid = loop {
            if let Some(pid) = common::pids_with_cmdline(&exe.to_string_lossy()).first() {
                break unsafe { libc::getpgid(*pid) };
            }
            assert!(Instant::now() < deadline, "probe never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        let (code, took) = agent.signal_and_wait(signal);
        assert_eq!(
            code,
            Some(0),
            "exit code after signal {signal}: {}",
            agent.stderr()
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let deadline = Instant::now() + Duration::from_secs(3);
        while !common::processes_in_group(pgid).is_empty() {
            assert!(
                Instant::now() < deadline,
                "probe group {pgid} survived shutdown"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(agent.stderr().contains("stopped"), "{}", agent.stderr());
    }
}

#[test]
fn logs_are_json_on_request_and_debug_with_codex_debug() {
    let agent = start_agent(AgentOptions {
        env: vec![
            (
                "CODEX_EXECUTABLE",
                fixtures_bin()
                    .join("codex-slow")
                    .to_string_lossy()
                    .into_owned(),
            ),
            ("CODEX_STUB_DELAY", "0".into()),
            ("CODEX_DEBUG", "true".into()),
            ("RUST_LOG", String::new()),
        ],
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    agent.wait_json("/health/codex", Duration::from_secs(10), |r| {
        r["overall"] == "healthy"
    });
    let stderr = wait_stderr(&agent, "a debug line", |e| {
        e.lines()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["level"] == "DEBUG"))
    });
    let mut debug_seen = false;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some(),
            "{line}"
        );
        debug_seen |= v["level"] == "DEBUG";
    }
    assert!(debug_seen, "CODEX_DEBUG=true gives debug lines:\n{stderr}");
}

#[test]
fn disabled_monitoring_runs_no_probe_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("calls");
    let agent = start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_HEALTH_MONITORING", "false".into()),
            (
                "CODEX_EXECUTABLE",
                fixtures_bin()
                    .join("codex-flaky")
                    .to_string_lossy()
                    .into_owned(),
            ),
            ("CODEX_STUB_COUNTER", counter.to_string_lossy().into_owned()),
        ],
        ..Default::default()
    });
    // The probe supervisor has decided (this is where it would have started the probe loops).
    wait_stderr(&agent, "the disabled-monitoring line", |e| {
        e.contains("health monitoring disabled")
    });
    assert!(
        !counter.exists(),
        "a probe ran although monitoring is disabled"
    );
    let (_, metrics) = agent.get_json("/health/codex/metrics");
    assert!(
        metrics["probes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["runs"] == 0),
        "{metrics}"
    );
    let (_, report) = agent.get_json("/health/codex");
    assert!(
        report["recommendations"][0]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{report}"
    );
}

#[test]
fn endpoints_can_be_turned_off() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::agent_bin())
        .current_dir(dir.path())
        .env("ENABLE_CODEX_HEALTH_ENDPOINTS", "false")
        .env("CODEX_HEALTH_PORT", port.to_string())
        .env("CODEX_EXECUTABLE", "/nonexistent")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The probes are scheduled after the point where the listener would have been bound.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let done = line.contains("probe scheduled");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("probe scheduled")),
        "agent stopped before scheduling its probes:\n{}",
        seen.join("\n")
    );
    assert!(child.try_wait().unwrap().is_none(), "agent exited");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_port_in_use_is_a_clear_startup_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::agent_bin())
        .current_dir(dir.path())
        .env("CODEX_HEALTH_PORT", port.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
