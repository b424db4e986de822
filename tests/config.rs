//! Configuration: every variable of the table is mapped, precedence, bad values, redaction.

mod common;

use std::process::Command;

use codex_sentinel::cli;
use codex_sentinel::config::env::{Kind, ENV_VARS};
use codex_sentinel::config::{self, source_of, Sources};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn lookup<'a>(json: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    key.split('.').fold(json, |node, part| &node[part])
}

/// A value of the right kind that differs from every default.
fn sample_value(var: &str, kind: Kind) -> (&'static str, serde_json::Value) {
    match (var, kind) {
        ("OTEL_EXPORTER_OTLP_PROTOCOL", _) => ("http/protobuf", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", _) => ("delta", "delta".into()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", _) => ("gzip", "gzip".into()),
        // newrelic would also need NEW_RELIC_LICENSE_KEY.
        ("CODEX_OTLP_PRESET", _) => ("datadog", "datadog".into()),
        ("CODEX_STATSD_TIMING_KIND", _) => ("histogram", "histogram".into()),
        ("DD_DOGSTATSD_URL", _) => (
            "unix:///var/run/datadog/dsd.socket",
            "unix:///var/run/datadog/dsd.socket".into(),
        ),
        ("CODEX_ALERT_WEBHOOK_FORMAT", _) => ("slack", "slack".into()),
        ("CODEX_ALERT_SMTP_TLS", _) => ("none", "none".into()),
        ("CODEX_ALERT_WEBHOOK_URL", _) => ("https://hooks.example/T0/x", "***redacted***".into()),
        ("CODEX_ALERTMANAGER_URL", _) => ("http://am.example:9093", "***redacted***".into()),
        ("CODEX_ALERT_GENERATOR_URL", _) => {
            ("http://agent.example/a", "http://agent.example/a".into())
        }
        ("CODEX_EXPORT_METRICS_INCLUDE" | "CODEX_EXPORT_METRICS_EXCLUDE", _) => (
            "codex_sentinel.*, process.cpu.time",
            serde_json::json!(["codex_sentinel.*", "process.cpu.time"]),
        ),
        ("CODEX_ALERT_DISABLED_RULES", _) => (
            "cpu-usage, queue-backlog",
            serde_json::json!(["cpu-usage", "queue-backlog"]),
        ),
        (_, Kind::Map) => (
            "X-A=1,X-B=2",
            serde_json::json!({"X-A": "***redacted***", "X-B": "***redacted***"}),
        ),
        // Kubernetes quantities, read as bytes.
        ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", _) => ("256Mi", serde_json::json!(268_435_456)),
        ("CODEX_AUDIT_LOG_SIZE_LIMIT", _) => ("32Mi", serde_json::json!(33_554_432)),
        // Must hold two default sample intervals.
        ("CODEX_DISK_USAGE_GROWTH_WINDOW", _) => ("7200000", serde_json::json!(7_200_000)),
        ("CODEX_SENTINEL_LOG_FORMAT", _) => ("json", "json".into()),
        // `application` also needs an absolute codex.executable (a bad case below).
        ("CODEX_EXECUTABLE_IN", _) => ("agent", "agent".into()),
        ("CODEX_HEALTH_HOST", _) => ("0.0.0.0", "0.0.0.0".into()),
        ("CODEX_HEALTH_PATH", _) => ("/status/codex", "/status/codex".into()),
        // The file must be readable; an empty one configures nothing.
        ("CODEX_HEALTH_WEB_CONFIG_FILE", _) => ("/dev/null", "/dev/null".into()),
        ("CODEX_PROCESS_CMDLINE_REGEX", _) => ("codex( |$)", "codex( |$)".into()),
        (_, Kind::Bool) => ("false", serde_json::json!(false)),
        (_, Kind::Int) => ("4242", serde_json::json!(4242)),
        (_, Kind::Float) => ("42.5", serde_json::json!(42.5)),
        (_, Kind::Str) => ("some-value", "some-value".into()),
        (_, Kind::List) => ("a, b", serde_json::json!(["a", "b"])),
        (_, Kind::Args) => ("exec --json", serde_json::json!(["exec", "--json"])),
    }
}

#[test]
fn every_variable_sets_its_key_and_is_named_as_the_source() {
    for (var, key, kind, _) in ENV_VARS {
        let (raw, expected) = sample_value(var, *kind);
        let sources = Sources {
            file: None,
            env: env(&[(var, raw)]),
        };
        let fig = config::figment(&sources).unwrap();
        let cfg = cli::load_from(&fig).unwrap_or_else(|e| panic!("{var}={raw}: {e}"));
        let json = serde_json::to_value(&cfg).unwrap();
        let got = lookup(&json, key);
        if codex_sentinel::config::env::is_secret_var(var) && *kind != Kind::Map {
            assert_eq!(got, "***redacted***", "{var} must stay secret");
        } else {
            assert_eq!(got, &expected, "{var} → {key}");
        }
        assert_eq!(
            source_of(&fig, key),
            format!("environment variable {var}"),
            "source of {key}"
        );
    }
}

#[test]
fn the_specifications_variables_are_all_in_the_table() {
    // The specification's shell examples, copied into the repository (see its README).
    let spec = std::fs::read_to_string(
        common::root().join("tests/fixtures/spec/environment-variables.sh"),
    )
    .unwrap();
    let re = regex::Regex::new(r"export ([A-Z][A-Z0-9_]+)=").unwrap();
    let known: Vec<&str> = ENV_VARS.iter().map(|(v, ..)| *v).collect();
    let mut seen = 0;
    for cap in re.captures_iter(&spec) {
        seen += 1;
        assert!(known.contains(&&cap[1]), "{} is not accepted", &cap[1]);
    }
    assert!(
        seen >= 30,
        "expected the specification's variables, found {seen}"
    );
}

#[test]
fn environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitoring.json");
    std::fs::write(
        &file,
        r#"{"healthMonitoring":{"checkInterval":10000,"healthCheckTimeout":7000,"thresholds":{"minSuccessRate":90}}}"#,
    )
    .unwrap();
    let sources = Sources {
        file: Some(file.clone()),
        env: env(&[("CODEX_HEALTH_CHECK_INTERVAL", "20000")]),
    };
    let fig = config::figment(&sources).unwrap();
    let cfg = cli::load_from(&fig).unwrap();
    assert_eq!(cfg.health_monitoring.check_interval, 20_000);
    assert_eq!(cfg.health_monitoring.health_check_timeout, 7_000);
    assert_eq!(cfg.health_monitoring.thresholds.min_success_rate, 90.0);
    assert_eq!(cfg.health_monitoring.thresholds.max_error_rate, 5.0);
    assert_eq!(
        source_of(&fig, "healthMonitoring.checkInterval"),
        "environment variable CODEX_HEALTH_CHECK_INTERVAL"
    );
    assert_eq!(
        source_of(&fig, "healthMonitoring.healthCheckTimeout"),
        format!("config file {}", file.display())
    );
    assert_eq!(
        source_of(&fig, "healthMonitoring.thresholds.maxErrorRate"),
        "defaults"
    );
}

#[test]
fn the_shipped_example_file_is_valid_and_matches_the_specification() {
    let path = common::root().join("config/monitoring.json");
    let cfg = cli::load(&Sources {
        file: Some(path),
        env: vec![],
    })
    .unwrap();
    let hm = &cfg.health_monitoring;
    assert!(hm.enabled);
    assert_eq!(
        (hm.check_interval, hm.health_check_timeout),
        (30_000, 10_000)
    );
    let t = &hm.thresholds;
    assert_eq!(
        (
            t.availability_timeout,
            t.max_execution_time,
            t.max_memory_usage,
            t.max_concurrent_processes
        ),
        (5_000, 30_000, 500, 10)
    );
    assert_eq!((t.min_success_rate, t.max_error_rate), (80.0, 5.0));
    assert_eq!(hm.endpoints.path, "/health/codex");
}

/// Runs the binary with a clean environment plus `env`; returns (exit code, stdout, stderr).
fn run_cli(args: &[&str], env: &[(&str, &str)], cwd: &std::path::Path) -> (i32, String, String) {
    let mut cmd = Command::new(common::agent_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (environment, file content, words the error line must contain)
type BadCase<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>, Vec<&'a str>);

/// A resource attribute value past New Relic's 4095 characters.
const LONG_RESOURCE_ATTRIBUTE: &str =
    concat!("team=", include_str!("fixtures/long-attribute-value.txt"));

/// A probe named with 65 characters: its name is a label on every platform.
const LONG_PROBE_NAME: &str = r#"{"codex":{"probes":[{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","command":["codex","--help"]}]}}"#;

#[test]
fn bad_values_exit_2_with_one_line_naming_key_value_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let cases: Vec<BadCase> = vec![
        (
            vec![("CODEX_HEALTH_CHECK_INTERVAL", "-5")],
            None,
            vec!["CODEX_HEALTH_CHECK_INTERVAL", "-5"],
        ),
        (
            vec![("CODEX_HEALTH_CHECK_INTERVAL", "soon")],
            None,
            vec!["CODEX_HEALTH_CHECK_INTERVAL", "soon"],
        ),
        (
            vec![("CODEX_HEALTH_CHECK_INTERVAL", "0")],
            None,
            vec![
                "CODEX_HEALTH_CHECK_INTERVAL",
                "healthMonitoring.checkInterval",
            ],
        ),
        (
            vec![("ENABLE_CODEX_HEALTH_MONITORING", "maybe")],
            None,
            vec!["ENABLE_CODEX_HEALTH_MONITORING", "maybe"],
        ),
        (
            vec![("CODEX_HEALTH_PORT", "70000")],
            None,
            vec!["CODEX_HEALTH_PORT", "70000"],
        ),
        (
            vec![("CODEX_EXECUTABLE_IN", "container")],
            None,
            vec!["CODEX_EXECUTABLE_IN", "container"],
        ),
        (
            vec![("CODEX_EXECUTABLE_IN", "application")],
            None,
            vec!["codex.executable", "absolute path", "codex"],
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=ai,canary"),
            ],
            None,
            vec!["OTEL_RESOURCE_ATTRIBUTES", "canary", "key=value"],
        ),
        (
            vec![("CODEX_EXPORT_METRICS_EXCLUDE", "codex_sentinel.*,codex.[x")],
            None,
            vec![
                "CODEX_EXPORT_METRICS_EXCLUDE",
                "codex.[x",
                "unclosed character class",
            ],
        ),
        (
            vec![],
            Some(r#"{"export":{"metrics":{"include":["codex.exectuion_time"]}}}"#),
            vec![
                "export.metrics.include",
                "codex.exectuion_time",
                "monitoring.json",
                "matches no metric",
            ],
        ),
        (
            vec![
                ("CODEX_OTLP_PRESET", "newrelic"),
                ("NEW_RELIC_LICENSE_KEY", "0123456789abcdef0123NRAL"),
                ("OTEL_RESOURCE_ATTRIBUTES", LONG_RESOURCE_ATTRIBUTE),
            ],
            None,
            vec!["OTEL_RESOURCE_ATTRIBUTES", "New Relic's 4095 characters"],
        ),
        (
            vec![],
            Some(LONG_PROBE_NAME),
            vec!["codex.probes.0", "at most 64 characters", "monitoring.json"],
        ),
        (
            vec![("CODEX_HEALTH_THRESHOLD_SUCCESS_RATE", "120")],
            None,
            vec!["CODEX_HEALTH_THRESHOLD_SUCCESS_RATE", "120"],
        ),
        // A size limit that is not a Kubernetes quantity; a growth window too short for two
        // samples; a disk-usage percentage above 100.
        (
            vec![("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "12MB")],
            None,
            vec!["CODEX_OPERATIONS_LOG_SIZE_LIMIT", "12MB", "unknown suffix"],
        ),
        (
            vec![("CODEX_DISK_USAGE_GROWTH_WINDOW", "60000")],
            None,
            vec![
                "CODEX_DISK_USAGE_GROWTH_WINDOW",
                "diskUsage.growthWindow",
                "two samples",
            ],
        ),
        (
            vec![("CODEX_HEALTH_THRESHOLD_MAX_DISK_USAGE", "150")],
            None,
            vec!["CODEX_HEALTH_THRESHOLD_MAX_DISK_USAGE", "150"],
        ),
        (
            vec![("CODEX_PERF_BASELINE_SUCCESS_RATE", "101")],
            None,
            vec!["CODEX_PERF_BASELINE_SUCCESS_RATE", "101"],
        ),
        (
            vec![("CODEX_ALERT_FAILURE_RATE_CRITICAL", "150")],
            None,
            vec!["CODEX_ALERT_FAILURE_RATE_CRITICAL", "150"],
        ),
        (
            vec![],
            Some(r#"{"healthMonitoring":{"checkInterval":"fast"}}"#),
            vec!["healthMonitoring.checkInterval", "fast", "monitoring.json"],
        ),
        (
            vec![],
            Some(r#"{"healthMonitoring":{"bogus":1}}"#),
            vec!["healthMonitoring.bogus", "monitoring.json"],
        ),
        (
            vec![],
            Some(r#"{"healthMonitoring":{"checkIntervall":1}}"#),
            vec![
                "unknown key `healthMonitoring.checkIntervall` in",
                "monitoring.json",
                "did you mean `checkInterval`?",
            ],
        ),
        (
            vec![],
            Some(r#"{"healthMonitoring":{"checkInterval":-1}}"#),
            vec!["healthMonitoring.checkInterval", "-1", "monitoring.json"],
        ),
        (
            vec![],
            Some(r#"{"codex":{"probes":[{"name":"x","command":[]}]}}"#),
            vec!["codex.probes.0", "monitoring.json"],
        ),
        (
            vec![],
            Some(
                r#"{"alerting":{"maintenance":{"windows":[{"start":"2026-01-02T00:00:00Z","end":"2026-01-01T00:00:00Z"}]}}}"#,
            ),
            vec!["alerting.maintenance.windows.0", "monitoring.json"],
        ),
        (vec![], Some("{not json"), vec!["monitoring.json"]),
    ];
    for (env, file, needles) in cases {
        let mut args = vec!["config", "validate"];
        let path = cwd.join("monitoring.json");
        let path_str = path.to_string_lossy().into_owned();
        if let Some(content) = file {
            std::fs::write(&path, content).unwrap();
            args.push(&path_str);
        }
        let (code, _, stderr) = run_cli(&args, &env, cwd);
        assert_eq!(code, 2, "{env:?} {file:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !stderr.contains("bogus.bogus") && !stderr.contains("Intervall.checkIntervall"),
            "an unknown key is named once: {stderr}"
        );
        for n in needles {
            assert!(
                stderr.contains(n),
                "{env:?} {file:?}: `{n}` missing in: {stderr}"
            );
        }
    }
    let (code, _, stderr) = run_cli(
        &["--config", "/nonexistent/monitoring.json", "check"],
        &[],
        cwd,
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/monitoring.json"), "{stderr}");
}

#[test]
fn config_show_redacts_secrets_and_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        (
            "CODEX_ALERT_WEBHOOK_URL",
            "https://hooks.slack.com/services/T000/B000/SECRETTOKEN1",
        ),
        ("CODEX_ALERT_SMTP_PASS", "hunter2-smtp-password"),
        ("NEW_RELIC_LICENSE_KEY", "0123456789abcdefNRAL"),
        (
            "CODEX_ALERTMANAGER_URL",
            "http://user:amsecret@alertmanager:9093",
        ),
    ];
    let mut env: Vec<(&str, &str)> = secrets.to_vec();
    env.push(("CODEX_HEALTH_CHECK_TIMEOUT", "15000"));
    for format in ["text", "json"] {
        let (code, stdout, stderr) =
            run_cli(&["config", "show", "--format", format], &env, dir.path());
        assert_eq!(code, 0, "{stderr}");
        for (_, secret) in secrets {
            assert!(
                !stdout.contains(secret),
                "secret leaked in {format}: {stdout}"
            );
        }
        assert!(stdout.contains("***redacted***"));
        assert!(stdout.contains("environment variable CODEX_HEALTH_CHECK_TIMEOUT"));
        assert!(stdout.contains("15000"));
    }
    let (_, stdout, _) = run_cli(&["config", "show", "--format", "json"], &env, dir.path());
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["healthMonitoring.checkInterval"]["value"], 30000);
    assert_eq!(json["healthMonitoring.checkInterval"]["source"], "defaults");
    assert_eq!(json["alerting.email.smtpPass"]["value"], "***redacted***");
}

#[test]
fn configuration_reference_lists_every_variable() {
    let doc = std::fs::read_to_string(common::root().join("docs/configuration.md")).unwrap();
    for (var, key, _, _) in ENV_VARS {
        assert!(
            doc.contains(&format!("`{var}`")),
            "docs/configuration.md misses {var}"
        );
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/configuration.md misses key {key}"
        );
    }
}

/// Runs `config validate` on `file` (written as monitoring.json) with `env`; (exit code, the
/// problems, one a line, each without the program's prefix).
fn validate_problems(file: &str, env: &[(&str, &str)]) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("monitoring.json");
    std::fs::write(&path, file).unwrap();
    let path = path.to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(&["config", "validate", &path], env, dir.path());
    let problems = stderr
        .lines()
        .map(|l| {
            l.strip_prefix("codex-sentinel: ")
                .unwrap_or_else(|| panic!("a problem a line: {l}"))
                .to_string()
        })
        .collect();
    (code, problems)
}

/// Asserts that exactly one problem names `key` and that it contains every needle.
fn one_problem(problems: &[String], key: &str, needles: &[&str]) {
    let named: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains(&format!("`{key}`")))
        .collect();
    assert_eq!(named.len(), 1, "`{key}` once in {problems:#?}");
    for n in needles {
        assert!(named[0].contains(n), "`{n}` missing in {}", named[0]);
    }
}

#[test]
fn unknown_keys_and_bad_types_of_every_section_are_reported_in_one_run() {
    let file = r#"{
        "healthMonitoring": {"bogus": {"bogus": 1}, "checkIntervl": 5,
                             "thresholds": {"maxErrorRate": "lots", "minSuccessRate": "most"}},
        "processes": {"sampleInterval": "fast"},
        "exprt": {}
    }"#;
    let env = [
        ("CODEX_ALERT_COOLDOWN", "soon"),
        ("CODEX_ALERT_EVALUATION_INTERVAL", "often"),
    ];
    let (code, problems) = validate_problems(file, &env);
    assert_eq!(code, 2, "{problems:#?}");
    assert_eq!(problems.len(), 8, "{problems:#?}");
    one_problem(
        &problems,
        "healthMonitoring.bogus",
        &["unknown key", "monitoring.json"],
    );
    assert!(
        !problems.iter().any(|p| p.contains("bogus.bogus")),
        "{problems:#?}"
    );
    one_problem(
        &problems,
        "healthMonitoring.checkIntervl",
        &["monitoring.json", "did you mean `checkInterval`?"],
    );
    one_problem(
        &problems,
        "exprt",
        &["monitoring.json", "did you mean `export`?"],
    );
    one_problem(
        &problems,
        "processes.sampleInterval",
        &["fast", "monitoring.json"],
    );
    one_problem(
        &problems,
        "alerting.cooldown",
        &["soon", "environment variable CODEX_ALERT_COOLDOWN"],
    );
    // Bad values behind an unknown key or another bad value of their section show too.
    one_problem(
        &problems,
        "alerting.evaluationInterval",
        &[
            "often",
            "environment variable CODEX_ALERT_EVALUATION_INTERVAL",
        ],
    );
    one_problem(
        &problems,
        "healthMonitoring.thresholds.maxErrorRate",
        &["lots", "config file", "monitoring.json"],
    );
    one_problem(
        &problems,
        "healthMonitoring.thresholds.minSuccessRate",
        &["most", "config file", "monitoring.json"],
    );
}

#[test]
fn every_bad_value_is_reported_in_one_run_naming_its_key_and_source() {
    let file = r#"{
        "codex": {"probes": [{"name": "", "command": ["codex", "login", "status"]}]},
        "alerting": {"maintenance": {"windows": [{"start": "tomorrow", "end": "later"}]}},
        "baselines": {"availability": 100.5}
    }"#;
    let env = [
        ("CODEX_HEALTH_CHECK_INTERVAL", "0"),
        ("CODEX_HEALTH_THRESHOLD_MAX_ERROR_RATE", "101"),
        ("CODEX_ALERT_FAILURE_RATE_WARNING", "250"),
        (
            "CODEX_ALERT_DISABLED_RULES",
            "nope,maintenance,cpu-usage,nada",
        ),
    ];
    let (code, problems) = validate_problems(file, &env);
    assert_eq!(code, 2, "{problems:#?}");
    assert_eq!(problems.len(), 8, "{problems:#?}");
    one_problem(
        &problems,
        "healthMonitoring.checkInterval",
        &["environment variable CODEX_HEALTH_CHECK_INTERVAL", "> 0 ms"],
    );
    one_problem(
        &problems,
        "healthMonitoring.thresholds.maxErrorRate",
        &["CODEX_HEALTH_THRESHOLD_MAX_ERROR_RATE", "101", "0..100"],
    );
    one_problem(
        &problems,
        "alerting.rules.failureRateWarning",
        &["CODEX_ALERT_FAILURE_RATE_WARNING", "250", "0..100"],
    );
    one_problem(
        &problems,
        "baselines.availability",
        &["config file", "monitoring.json", "100.5", "0..100"],
    );
    // Values inside lists come from the file, not "defaults".
    one_problem(
        &problems,
        "codex.probes.0",
        &["config file", "monitoring.json", "name must not be empty"],
    );
    one_problem(
        &problems,
        "alerting.maintenance.windows.0",
        &["config file", "monitoring.json", "tomorrow", "RFC 3339"],
    );
    let rules: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("`alerting.rules.disabled`"))
        .collect();
    assert_eq!(rules.len(), 2, "{problems:#?}");
    assert!(rules[0].contains("\"nope\"") && rules[1].contains("\"nada\""));
    assert!(rules
        .iter()
        .all(|p| p.contains("environment variable CODEX_ALERT_DISABLED_RULES")));
}

/// The rule ids of docs/alerting.md's table are exactly the ones `CODEX_ALERT_DISABLED_RULES`
/// accepts: each can be disabled, and the binary knows no other.
#[test]
fn the_rule_ids_of_the_alerting_table_are_the_ones_that_can_be_disabled() {
    let doc = std::fs::read_to_string(common::root().join("docs/alerting.md")).unwrap();
    let table: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| condition |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    // A row with an empty rule cell continues the row above (another severity).
    let mut documented: Vec<String> = table
        .iter()
        .map(|row| row.split('|').nth(3).unwrap().trim())
        .filter(|rule| !rule.is_empty())
        .map(|rule| rule.trim_matches('`').to_string())
        .collect();
    documented.sort();
    documented.dedup();
    let mut known: Vec<String> = codex_sentinel::alerts::rules::RULE_IDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    known.sort();
    assert_eq!(documented, known, "docs/alerting.md's table vs the rules");
    let all = documented.join(",");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_cli(
        &["config", "validate"],
        &[("CODEX_ALERT_DISABLED_RULES", &all)],
        dir.path(),
    );
    assert_eq!(code, 0, "{all}: {stderr}");
}
