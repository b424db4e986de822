//! The agent's JSON logs as a log pipeline sees them, and the causes its errors carry.
//!
//! The real binary runs with `--log-format json`, every exporter and notifier on and failing in
//! the ways operators meet (a port nobody listens on, a name that does not resolve, a missing
//! Unix socket, a receiver answering 400 with an explanation). Every line it writes, start to
//! stop, is parsed by a parser that rejects duplicate keys, and checked: fixed top-level keys,
//! values as JSON types (no Rust Debug renderings), causes present, secrets absent.

mod alerts_support;
mod common;

use std::fmt;
use std::time::{Duration, Instant};

use alerts_support::{Answer, Receiver};
use common::{free_port, start_agent, Agent, AgentOptions};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// JSON with duplicate keys refused (serde_json alone keeps the last one silently).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[test]
fn strict_parser_refuses_duplicate_keys() {
    assert!(serde_json::from_str::<Strict>(r#"{"a":1,"b":{"c":[{"d":1}]}}"#).is_ok());
    let err = serde_json::from_str::<Strict>(r#"{"target":"x","f":{},"target":"y"}"#)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("duplicate key \"target\""),
        "{err}"
    );
    assert!(serde_json::from_str::<Strict>(r#"{"f":{"a":1,"a":2}}"#).is_err());
}

/// The top-level keys the agent writes (`codex_sentinel::logging::LINE_KEYS`).
const LINE_KEYS: &[&str] = &["timestamp", "level", "target", "message", "fields", "spans"];

/// A string that is a Rust Debug rendering or a number/boolean in disguise.
fn looks_untyped(s: &str) -> bool {
    let ident = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_uppercase())
            && w.chars().all(|c| c.is_ascii_alphanumeric())
    };
    let camel = |w: &str| {
        ident(w)
            && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
            && w.chars().any(|c| c.is_ascii_lowercase())
    };
    let first = s.split([' ', '(', '{']).next().unwrap_or("");
    let rest = &s[first.len()..];
    s.starts_with("Some(")
        || s == "None"
        || s.starts_with('[')
        || s.starts_with('{')
        || s.contains("\\\"")
        || camel(s)
        || (ident(first) && (rest.starts_with(" {") || rest.starts_with('(')))
        || s.parse::<f64>().is_ok()
        || s == "true"
        || s == "false"
}

#[test]
fn untyped_detector_catches_the_reported_renderings() {
    for bad in [
        "HttpProtobuf",
        "NewRelic { eu: true }",
        "[\"codex\"]",
        "Some(12.5)",
        "Exited(0)",
        "SpawnFailed { error: \"x\", not_found: true }",
        "Udp { host: \"h\", port: 1 }",
        "42",
        "true",
    ] {
        assert!(looks_untyped(bad), "{bad}");
    }
    for good in [
        "http/protobuf",
        "newrelic-eu",
        "codex,node",
        "udp://127.0.0.1:8125",
        "HTTP 400 Bad Request: invalid_payload",
        "exited with code 0",
        "0.1.0",
        "HTTP",
        "Connection refused (os error 111)",
        "field \"title\" missing",
    ] {
        assert!(!looks_untyped(good), "{good}");
    }
}

/// Every line of `stderr`, parsed strictly and checked for shape and types.
fn parse_lines(stderr: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let Strict(v) = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object without duplicate keys ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        for key in obj.keys() {
            assert!(
                LINE_KEYS.contains(&key.as_str()),
                "unexpected key {key:?}: {line}"
            );
        }
        for key in ["timestamp", "level", "target", "message"] {
            assert!(
                obj[key].is_string(),
                "{key} missing or not a string: {line}"
            );
        }
        let fields = obj["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("fields missing or not an object: {line}"));
        for (name, value) in fields {
            if let Some(s) = value.as_str() {
                assert!(
                    !looks_untyped(s),
                    "field {name} = {s:?} is a Debug rendering or an untyped number/boolean: {line}"
                );
            }
        }
        out.push(v);
    }
    out
}

/// Lines whose message contains `needle`.
fn with_message<'a>(lines: &'a [Value], needle: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
        .collect()
}

/// Waits until `pred` holds on the parsed lines so far.
fn wait_lines(agent: &Agent, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = parse_lines(&agent.stderr());
        if pred(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not logged within 30 s:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the agent and returns every line it wrote, up to its last ("stopped").
fn stop(mut agent: Agent) -> (String, Vec<Value>) {
    let (code, _) = agent.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", agent.stderr());
    let lines = wait_lines(&agent, "stopped", |l| {
        !with_message(l, "stopped").is_empty()
    });
    (agent.stderr(), lines)
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    &line["fields"][name]
}

/// The `error` (or `last_error`) of the first line with `message` and these field values.
fn error_of(lines: &[Value], message: &str, filter: &[(&str, &str)]) -> Option<String> {
    with_message(lines, message)
        .into_iter()
        .find(|l| filter.iter().all(|(k, v)| field(l, k) == *v))
        .and_then(|l| {
            field(l, "error")
                .as_str()
                .or(field(l, "last_error").as_str())
                .map(str::to_string)
        })
}

/// Environment of an agent that cannot find Codex and raises the availability alert fast.
fn alerting_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("ENABLE_CODEX_ALERTING", "true".into()),
        (
            "CODEX_EXECUTABLE",
            dir.join("no-such-dir/codex").display().to_string(),
        ),
        ("CODEX_HEALTH_CHECK_INTERVAL", "300".into()),
        ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
        ("CODEX_ALERT_HOLD_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_RETRY_BACKOFF", "200".into()),
        ("CODEX_ALERT_RETRY_MAX_BACKOFF", "400".into()),
        ("CODEX_ALERT_MAX_ATTEMPTS", "2".into()),
        ("CODEX_ALERT_SEND_TIMEOUT", "3000".into()),
        ("CODEX_STATE_DIR", dir.join("state").display().to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into()),
        ("CODEX_STATSD_INTERVAL", "200".into()),
        ("RUST_LOG", "info".into()),
    ]
}

#[test]
fn a_full_run_with_every_sink_failing_writes_typed_json_lines_with_causes_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = Receiver::start();
    webhook.set_default(Answer::Body(
        400,
        "invalid_payload: field \"title\" missing",
    ));
    let closed_otlp = free_port();
    let closed_smtp = free_port();
    let closed_am = free_port();
    let socket = dir.path().join("dsd.socket");
    let mut env = alerting_env(dir.path());
    env.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://otlpuser:otlp-password@127.0.0.1:{closed_otlp}"),
        ),
        ("DD_DOGSTATSD_URL", format!("unix://{}", socket.display())),
        (
            "CODEX_ALERT_WEBHOOK_URL",
            webhook.url("/hook?token=webhook-secret-token"),
        ),
        ("CODEX_ALERT_SMTP_HOST", "127.0.0.1".into()),
        ("CODEX_ALERT_SMTP_PORT", closed_smtp.to_string()),
        ("CODEX_ALERT_SMTP_TLS", "none".into()),
        ("CODEX_ALERT_SMTP_PASS", "smtp-secret-pass".into()),
        ("CODEX_ALERT_SMTP_USER", "sentinel".into()),
        ("CODEX_ALERT_SMTP_FROM", "sentinel@example.com".into()),
        ("CODEX_ALERT_EMAIL_RECIPIENTS", "oncall@example.com".into()),
        (
            "CODEX_ALERTMANAGER_URL",
            format!("http://127.0.0.1:{closed_am}"),
        ),
    ]);
    let agent = start_agent(AgentOptions {
        env,
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    wait_lines(&agent, "every sink's failure", |l| {
        error_of(l, "export failed", &[("exporter", "otlp")]).is_some()
            && error_of(l, "export failed", &[("exporter", "statsd")]).is_some()
            && error_of(l, "alert notification", &[("sink", "webhook")]).is_some()
            && error_of(l, "alert notification", &[("sink", "email")]).is_some()
            && error_of(l, "alert notification", &[("sink", "alertmanager")]).is_some()
    });
    let (stderr, lines) = stop(agent);

    // Only current names: no deprecation warning.
    assert!(with_message(&lines, "deprecated name").is_empty());
    for secret in ["otlp-password", "webhook-secret-token", "smtp-secret-pass"] {
        assert!(!stderr.contains(secret), "{secret} logged:\n{stderr}");
    }

    // Start-up lines: settings as their configuration spelling, numbers and booleans typed.
    let otlp_on = with_message(&lines, "OTLP export on")[0];
    assert_eq!(field(otlp_on, "protocol"), "http/protobuf");
    assert_eq!(field(otlp_on, "preset"), "collector");
    assert_eq!(field(otlp_on, "temporality"), "cumulative");
    // gzip: the default over HTTP.
    assert_eq!(field(otlp_on, "compression"), "gzip");
    assert_eq!(field(otlp_on, "interval_ms"), 200);
    assert_eq!(
        field(otlp_on, "endpoint"),
        format!("http://***@127.0.0.1:{closed_otlp}/v1/metrics").as_str()
    );
    let statsd_on = with_message(&lines, "StatsD export on")[0];
    assert_eq!(
        field(statsd_on, "destination"),
        format!("unix://{}", socket.display()).as_str()
    );
    assert_eq!(statsd_on["target"], "codex_sentinel::export::statsd");
    assert_eq!(field(statsd_on, "dogstatsd"), true);
    let sampler = with_message(&lines, "process sampler")[0];
    assert_eq!(field(sampler, "names"), "codex");

    // Causes.
    let otlp = error_of(&lines, "export failed", &[("exporter", "otlp")]).unwrap();
    assert!(
        otlp.to_ascii_lowercase().contains("connection refused"),
        "{otlp}"
    );
    let statsd = error_of(&lines, "export failed", &[("exporter", "statsd")]).unwrap();
    assert!(statsd.contains("No such file or directory"), "{statsd}");
    let hook = error_of(&lines, "alert notification", &[("sink", "webhook")]).unwrap();
    assert!(
        hook.contains("HTTP 400 Bad Request: invalid_payload: field \"title\" missing"),
        "{hook}"
    );
    let email = error_of(&lines, "alert notification", &[("sink", "email")]).unwrap();
    assert!(
        email.to_ascii_lowercase().contains("connection refused"),
        "{email}"
    );
    let am = error_of(&lines, "alert notification", &[("sink", "alertmanager")]).unwrap();
    assert!(
        am.to_ascii_lowercase().contains("connection refused"),
        "{am}"
    );
    let failed = with_message(&lines, "export failed")[0];
    assert!(field(failed, "consecutive_failures").is_u64(), "{failed}");
    let queued = with_message(&lines, "alert notification queued")[0];
    assert_eq!(field(queued, "sinks"), "webhook,email,alertmanager");
    assert!(field(queued, "notification").is_u64(), "{queued}");
}

#[test]
fn otlp_error_answers_dns_failures_and_refused_webhooks_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Receiver::start();
    collector.set_default(Answer::Body(400, "metric name \"x\" is not allowed"));
    let closed_hook = free_port();
    let mut env = alerting_env(dir.path());
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url("")),
        ("DD_AGENT_HOST", "no-such-agent.invalid".into()),
        (
            "CODEX_ALERT_WEBHOOK_URL",
            format!("http://127.0.0.1:{closed_hook}/hook"),
        ),
    ]);
    let agent = start_agent(AgentOptions {
        env,
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    wait_lines(&agent, "the failures", |l| {
        error_of(l, "export failed", &[("exporter", "otlp")]).is_some()
            && error_of(l, "export failed", &[("exporter", "statsd")]).is_some()
            && error_of(l, "alert notification", &[("sink", "webhook")]).is_some()
    });
    let (_, lines) = stop(agent);
    let otlp = error_of(&lines, "export failed", &[("exporter", "otlp")]).unwrap();
    assert!(
        otlp.contains("HTTP 400 Bad Request: metric name \"x\" is not allowed"),
        "{otlp}"
    );
    let statsd = error_of(&lines, "export failed", &[("exporter", "statsd")]).unwrap();
    assert!(
        statsd.contains("udp://no-such-agent.invalid:8125"),
        "{statsd}"
    );
    assert!(
        statsd.contains("failed to lookup address")
            || statsd.contains("Name or service not known")
            || statsd.contains("Temporary failure in name resolution"),
        "the resolver's own reason: {statsd}"
    );
    let hook = error_of(&lines, "alert notification", &[("sink", "webhook")]).unwrap();
    assert!(
        hook.to_ascii_lowercase().contains("connection refused"),
        "{hook}"
    );
}

#[test]
fn grpc_export_failures_name_the_transport_cause() {
    let closed = free_port();
    let agent = start_agent(AgentOptions {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{closed}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into()),
            ("CODEX_EXECUTABLE", "/nonexistent/codex".into()),
        ],
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    wait_lines(&agent, "the gRPC failure", |l| {
        error_of(l, "export failed", &[("exporter", "otlp")]).is_some()
    });
    let (_, lines) = stop(agent);
    let err = error_of(&lines, "export failed", &[("exporter", "otlp")]).unwrap();
    assert!(err.contains("Unavailable"), "{err}");
    assert!(
        err.to_ascii_lowercase().contains("connection refused"),
        "{err}"
    );
    let on = with_message(&lines, "OTLP export on")[0];
    assert_eq!(field(on, "protocol"), "grpc");
}

/// `config show --format json` with exactly this environment, in `cwd`.
fn config_show(env: &[(&str, String)], cwd: &std::path::Path) -> Value {
    let out = std::process::Command::new(common::agent_bin())
        .args(["config", "show", "--format", "json"])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn start_up_otlp_settings_are_config_shows_and_an_old_preset_name_warns_once() {
    // The datadog preset under its old name: it fills in the endpoint (from DD_AGENT_HOST) and
    // the temporality; the protocol comes from a variable, the compression is the default.
    let env: Vec<(&str, String)> = vec![
        ("CODEX_OTLP_PRESET", "datadog-agent".into()),
        ("DD_AGENT_HOST", "127.0.0.1".into()),
        ("CODEX_STATSD_ENABLED", "false".into()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "250".into()),
    ];
    let agent = start_agent(AgentOptions {
        env: env.clone(),
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    let shown = config_show(&env, agent.path());
    let (_, lines) = stop(agent);

    let on = with_message(&lines, "OTLP export on");
    assert_eq!(on.len(), 1);
    let shown_value = |key: &str| shown[key]["value"].clone();
    for (field_name, key) in [
        ("endpoint", "export.otlp.metricsEndpoint"),
        ("protocol", "export.otlp.protocol"),
        ("preset", "export.otlp.preset"),
        ("temporality", "export.otlp.temporality"),
        ("compression", "export.otlp.compression"),
        ("interval_ms", "export.otlp.interval"),
    ] {
        assert_eq!(
            field(on[0], field_name),
            &shown_value(key),
            "log field {field_name} vs config show {key}"
        );
    }
    // The values themselves, and where config show says they came from.
    let source = |key: &str| shown[key]["source"].as_str().unwrap().to_string();
    assert_eq!(shown_value("export.otlp.preset"), "datadog");
    assert_eq!(
        source("export.otlp.preset"),
        "environment variable CODEX_OTLP_PRESET (deprecated name `datadog-agent`)"
    );
    assert_eq!(shown_value("export.otlp.endpoint"), "http://127.0.0.1:4317");
    assert_eq!(
        source("export.otlp.endpoint"),
        "preset datadog, value from environment variable DD_AGENT_HOST"
    );
    assert_eq!(shown_value("export.otlp.temporality"), "delta");
    assert_eq!(source("export.otlp.temporality"), "preset datadog");
    assert_eq!(shown_value("export.otlp.compression"), "none");
    assert_eq!(source("export.otlp.compression"), "defaults");
    assert_eq!(
        source("export.otlp.protocol"),
        "environment variable OTEL_EXPORTER_OTLP_PROTOCOL"
    );

    // The old name: one warning at start-up, naming both names and where it was found.
    let deprecated = with_message(&lines, "deprecated name");
    assert_eq!(deprecated.len(), 1, "{deprecated:?}");
    assert_eq!(deprecated[0]["level"], "WARN");
    assert_eq!(field(deprecated[0], "old"), "datadog-agent");
    assert_eq!(field(deprecated[0], "new"), "datadog");
    assert_eq!(field(deprecated[0], "renamed"), "preset");
    assert_eq!(
        field(deprecated[0], "found_in"),
        "environment variable CODEX_OTLP_PRESET"
    );
}
