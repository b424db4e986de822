//! `config show` shows the effective configuration: every value the agent fills in (presets,
//! exporter defaults, alert thresholds derived from health thresholds, the sinks' TLS mode,
//! port, format and From, probe timings) with where it came from, in text and JSON alike; a
//! `null` is left only for a key nothing sets and nothing fills in, and it says `unset`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// One line of `config show`: value and source.
type Shown = BTreeMap<String, (Value, String)>;

/// Runs `config show` in both formats with a clean environment plus `env` (and `file` as the
/// configuration file, if given); checks that the two formats agree; returns the JSON's lines.
fn show(env: &[(&str, &str)], file: Option<&str>) -> Shown {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["config".to_string(), "show".to_string()];
    if let Some(content) = file {
        let path = dir.path().join("monitoring.json");
        std::fs::write(&path, content).unwrap();
        args.insert(0, path.to_string_lossy().into_owned());
        args.insert(0, "--config".into());
    }
    let run = |format: &str| {
        let mut cmd = Command::new(common::agent_bin());
        cmd.args(&args)
            .args(["--format", format])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{env:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: BTreeMap<String, Value> = serde_json::from_str(&run("json")).unwrap();
    let shown: Shown = json
        .into_iter()
        .map(|(key, line)| {
            let source = line["source"].as_str().unwrap().to_string();
            (key, (line["value"].clone(), source))
        })
        .collect();
    let text = run("text");
    assert_eq!(text.lines().count(), shown.len(), "{text}");
    for line in text.lines() {
        let (key, rest) = line.split_once(" = ").unwrap();
        let (value, source) = rest.rsplit_once("# ").unwrap();
        let (json_value, json_source) = &shown[key];
        assert_eq!(value.trim(), json_value.to_string(), "{key}: text vs json");
        assert_eq!(source, json_source, "{key}: text vs json");
    }
    shown
}

/// Asserts the value at `key` and that its source contains every needle.
fn assert_shown(shown: &Shown, key: &str, value: Value, needles: &[&str]) {
    let (v, source) = shown.get(key).unwrap_or_else(|| panic!("{key} not shown"));
    assert_eq!(*v, value, "{key} ({source})");
    for n in needles {
        assert!(source.contains(n), "{key}: `{n}` not in source `{source}`");
    }
}

/// Every `null` says `unset` (nothing set it, nothing fills it in), and none of `resolved` is
/// `null`.
fn assert_nulls_are_only_unset_keys(shown: &Shown, resolved: &[&str]) {
    for (key, (value, source)) in shown {
        if value.is_null() {
            assert_eq!(source, "unset", "{key} is null but from {source}");
        } else {
            assert_ne!(source, "unset", "{key} has a value but says unset");
        }
    }
    for key in resolved {
        let (value, source) = shown.get(*key).unwrap_or_else(|| panic!("{key} not shown"));
        assert!(!value.is_null(), "{key} is null ({source})");
    }
}

#[test]
fn without_configuration_the_alert_thresholds_show_the_health_thresholds_they_follow() {
    let shown = show(&[], None);
    assert_shown(
        &shown,
        "alerting.rules.failureRateWarning",
        5.0.into(),
        &[
            "derived",
            "`healthMonitoring.thresholds.maxErrorRate` from defaults",
        ],
    );
    assert_shown(
        &shown,
        "alerting.rules.failureRateCritical",
        20.0.into(),
        &[
            "100 − minSuccessRate",
            "`healthMonitoring.thresholds.minSuccessRate` from defaults",
        ],
    );
    assert_shown(
        &shown,
        "alerting.rules.memoryCriticalMb",
        750.0.into(),
        &[
            "1.5 × maxMemoryUsage",
            "`healthMonitoring.thresholds.maxMemoryUsage` from defaults",
        ],
    );
    assert_shown(
        &shown,
        "healthMonitoring.checkInterval",
        30_000.into(),
        &["defaults"],
    );
    // Nothing sends email: its port and TLS mode are not filled in.
    assert_shown(&shown, "alerting.email.smtpPort", Value::Null, &["unset"]);
    assert_shown(&shown, "alerting.email.tls", Value::Null, &["unset"]);
    assert_nulls_are_only_unset_keys(
        &shown,
        &[
            "alerting.rules.failureRateWarning",
            "alerting.rules.failureRateCritical",
            "alerting.rules.memoryCriticalMb",
        ],
    );
}

#[test]
fn the_alert_thresholds_follow_the_health_variables_unless_overridden() {
    let shown = show(
        &[
            ("CODEX_HEALTH_THRESHOLD_SUCCESS_RATE", "85"),
            ("CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE", "1000"),
            ("CODEX_ALERT_FAILURE_RATE_WARNING", "12"),
        ],
        None,
    );
    assert_shown(
        &shown,
        "alerting.rules.failureRateCritical",
        15.0.into(),
        &["environment variable CODEX_HEALTH_THRESHOLD_SUCCESS_RATE"],
    );
    assert_shown(
        &shown,
        "alerting.rules.memoryCriticalMb",
        1500.0.into(),
        &["environment variable CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE"],
    );
    assert_shown(
        &shown,
        "alerting.rules.failureRateWarning",
        12.0.into(),
        &["environment variable CODEX_ALERT_FAILURE_RATE_WARNING"],
    );
    let shown = show(&[("CODEX_ALERT_MEMORY_CRITICAL_MB", "1200")], None);
    let (_, source) = &shown["alerting.rules.memoryCriticalMb"];
    assert_eq!(
        source,
        "environment variable CODEX_ALERT_MEMORY_CRITICAL_MB"
    );
    let shown = show(&[("CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE", "0")], None);
    assert_shown(
        &shown,
        "alerting.rules.memoryCriticalMb",
        Value::Null,
        &["memory check off"],
    );
}

const SMTP_PASS: &str = "smtp-password-SECRET";
const WEBHOOK_TOKEN: &str = "T0000/B0000/webhookSECRET";

/// Every sink on: a Slack webhook, email with only a user, Alertmanager.
fn all_sinks<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("ENABLE_CODEX_ALERTING", "true"),
        (
            "CODEX_ALERT_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0000/B0000/webhookSECRET",
        ),
        ("CODEX_ALERT_SMTP_HOST", "smtp.example.com"),
        ("CODEX_ALERT_SMTP_USER", "alerts@example.com"),
        ("CODEX_ALERT_SMTP_PASS", SMTP_PASS),
        ("CODEX_ALERT_EMAIL_RECIPIENTS", "ops@example.com"),
        ("CODEX_ALERTMANAGER_URL", "http://alertmanager:9093"),
        ("CODEX_HEALTH_PORT", "9464"),
    ];
    env.extend_from_slice(extra);
    env
}

#[test]
fn with_every_sink_on_their_filled_in_settings_are_shown_with_their_origin() {
    let shown = show(&all_sinks(&[]), None);
    assert_shown(
        &shown,
        "alerting.webhook.format",
        "slack".into(),
        &["derived", "hooks.slack.com"],
    );
    assert_shown(
        &shown,
        "alerting.email.tls",
        "starttls".into(),
        &["defaults"],
    );
    assert_shown(&shown, "alerting.email.smtpPort", 587.into(), &["derived"]);
    assert_shown(
        &shown,
        "alerting.email.smtpFrom",
        "alerts@example.com".into(),
        &["environment variable CODEX_ALERT_SMTP_USER"],
    );
    assert_shown(
        &shown,
        "alerting.generatorUrl",
        "http://127.0.0.1:9464/health/codex/alerts".into(),
        &["derived", "alerts endpoint"],
    );
    assert_shown(
        &shown,
        "alerting.email.smtpPass",
        "***redacted***".into(),
        &["CODEX_ALERT_SMTP_PASS"],
    );
    let all = serde_json::to_string(&shown).unwrap();
    assert!(!all.contains(SMTP_PASS) && !all.contains(WEBHOOK_TOKEN));
    assert_nulls_are_only_unset_keys(
        &shown,
        &[
            "alerting.webhook.format",
            "alerting.email.tls",
            "alerting.email.smtpPort",
            "alerting.email.smtpFrom",
            "alerting.generatorUrl",
            "alerting.rules.failureRateWarning",
            "alerting.rules.failureRateCritical",
            "alerting.rules.memoryCriticalMb",
        ],
    );

    // Port 465 means implicit TLS; `none` means port 25; a set format wins over the URL.
    let shown = show(
        &all_sinks(&[
            ("CODEX_ALERT_SMTP_PORT", "465"),
            ("CODEX_ALERT_WEBHOOK_FORMAT", "generic"),
            ("CODEX_ALERT_SMTP_FROM", "Codex <codex@example.com>"),
        ]),
        None,
    );
    assert_shown(
        &shown,
        "alerting.email.tls",
        "tls".into(),
        &["smtpPort is 465"],
    );
    assert_shown(
        &shown,
        "alerting.email.smtpPort",
        465.into(),
        &["environment variable CODEX_ALERT_SMTP_PORT"],
    );
    assert_shown(
        &shown,
        "alerting.webhook.format",
        "generic".into(),
        &["environment variable CODEX_ALERT_WEBHOOK_FORMAT"],
    );
    assert_shown(
        &shown,
        "alerting.email.smtpFrom",
        "Codex <codex@example.com>".into(),
        &["environment variable CODEX_ALERT_SMTP_FROM"],
    );
    let shown = show(&all_sinks(&[("CODEX_ALERT_SMTP_TLS", "none")]), None);
    assert_shown(&shown, "alerting.email.smtpPort", 25.into(), &["derived"]);
    let shown = show(
        &[(
            "CODEX_ALERT_WEBHOOK_URL",
            "https://receiver.example.com/hook",
        )],
        None,
    );
    assert_shown(
        &shown,
        "alerting.webhook.format",
        "generic".into(),
        &["derived"],
    );
}

#[test]
fn every_export_preset_shows_what_the_exporter_will_use() {
    let resolved = [
        "export.otlp.enabled",
        "export.otlp.preset",
        "export.otlp.protocol",
        "export.otlp.endpoint",
        "export.otlp.metricsEndpoint",
        "export.otlp.temporality",
        "export.otlp.compression",
        "export.otlp.serviceName",
        "export.otlp.histogramAggregation",
        "export.statsd.enabled",
        "export.statsd.url",
        "export.statsd.host",
    ];
    for (preset, source) in [
        ("collector", "defaults"),
        ("newrelic", "preset newrelic"),
        ("newrelic-eu", "preset newrelic-eu"),
        ("datadog", "preset datadog"),
    ] {
        let shown = show(
            &[
                ("CODEX_OTLP_PRESET", preset),
                ("NEW_RELIC_LICENSE_KEY", "0123456789abcdefNRAL"),
                ("DD_AGENT_HOST", "10.0.0.7"),
            ],
            None,
        );
        assert_nulls_are_only_unset_keys(&shown, &resolved);
        assert_shown(
            &shown,
            "export.otlp.preset",
            preset.into(),
            &["environment variable CODEX_OTLP_PRESET"],
        );
        assert_shown(
            &shown,
            "export.otlp.histogramAggregation",
            "base2_exponential_bucket_histogram".into(),
            &["defaults"],
        );
        let (_, temporality_source) = &shown["export.otlp.temporality"];
        assert!(
            temporality_source.contains(source),
            "{preset}: temporality from {temporality_source}"
        );
    }
    let shown = show(
        &[
            ("CODEX_OTLP_PRESET", "newrelic"),
            ("NEW_RELIC_LICENSE_KEY", "0123456789abcdefNRAL"),
        ],
        None,
    );
    assert_shown(
        &shown,
        "export.otlp.compression",
        "gzip".into(),
        &["preset newrelic"],
    );
    assert_shown(
        &shown,
        "export.otlp.endpoint",
        "https://otlp.nr-data.net:4318".into(),
        &["preset newrelic"],
    );
}

#[test]
fn extra_probes_show_the_timeout_and_interval_they_run_with() {
    let file = r#"{"codex":{"probes":[
        {"name":"codex-login","command":["codex","login","status"],"timeout":2000},
        {"name":"codex-models","command":["codex","models"],"interval":60000}
    ]}}"#;
    let shown = show(&[("CODEX_HEALTH_CHECK_INTERVAL", "15000")], Some(file));
    let (probes, source) = &shown["codex.probes"];
    assert_eq!(probes[0]["timeout"], 2000);
    assert_eq!(probes[0]["interval"], 15_000, "checkInterval");
    assert_eq!(probes[1]["timeout"], 10_000, "healthCheckTimeout");
    assert_eq!(probes[1]["interval"], 60_000);
    assert!(
        source.contains("config file") && source.contains("monitoring.json"),
        "{source}"
    );
    assert_nulls_are_only_unset_keys(&shown, &["codex.probes"]);
}
