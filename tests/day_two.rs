//! Day-two operations against the real agent binary and the real Codex CLI: audit log files
//! rotated by renaming + SIGUSR1 while the agent runs (by hand and by the real logrotate with
//! the specification's stanza), an unwritable log directory, config-file watching, SIGHUP
//! reloads (valid, invalid, secret change) with the "configuration changed" info alert sent to
//! a recording webhook, and corrupt state files.

mod alerts_support;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use alerts_support::Receiver;
use common::{codex_bin, start_agent, Agent, AgentOptions};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
        })
        .collect()
}

fn today_file(agent: &Agent, prefix: &str) -> std::path::PathBuf {
    let day = codex_sentinel::audit::day_of(codex_sentinel::util::now_ms());
    agent.path().join(format!("logs/audit/{prefix}-{day}.log"))
}

fn wait_until(timeout: Duration, what: &str, agent: &Agent, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {timeout:?}; stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(agent: &Agent, sig: i32) {
    unsafe {
        libc::kill(agent.child.id() as i32, sig);
    }
}

fn stderr_count(agent: &Agent, needle: &str) -> usize {
    agent
        .stderr_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

fn metric(agent: &Agent, series: &str) -> f64 {
    let (_, text) = agent.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

/// Waits for a counter to reach `value` (metrics come with the next snapshot, within a second).
fn wait_metric(agent: &Agent, series: &str, value: f64) {
    wait_until(Duration::from_secs(10), series, agent, || {
        metric(agent, series) == value
    });
}

fn seqs(v: &[Value]) -> Vec<u64> {
    v.iter().map(|l| l["seq"].as_u64().expect("seq")).collect()
}

#[test]
fn audit_logs_survive_rename_and_sigusr1_without_losing_a_line() {
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "150".into()),
            ("CODEX_AUDIT_PERFORMANCE_INTERVAL", "150".into()),
        ],
        ..Default::default()
    });
    let health = today_file(&agent, "health-checks");
    let perf = today_file(&agent, "performance");
    wait_until(
        Duration::from_secs(30),
        "3 health-check lines",
        &agent,
        || lines(&health).len() >= 3 && lines(&perf).len() >= 2,
    );

    // logrotate without copytruncate: rename, then postrotate sends SIGUSR1.
    let rotated_health = health.with_extension("log.1");
    let rotated_perf = perf.with_extension("log.1");
    std::fs::rename(&health, &rotated_health).unwrap();
    std::fs::rename(&perf, &rotated_perf).unwrap();
    signal(&agent, libc::SIGUSR1);
    wait_until(
        Duration::from_secs(10),
        "reopen acknowledged",
        &agent,
        || stderr_count(&agent, "audit log files reopened") == 1,
    );
    let sizes = (
        std::fs::metadata(&rotated_health).unwrap().len(),
        std::fs::metadata(&rotated_perf).unwrap().len(),
    );
    wait_until(
        Duration::from_secs(30),
        "lines in the new files",
        &agent,
        || lines(&health).len() >= 3 && lines(&perf).len() >= 2,
    );
    assert_eq!(
        (
            std::fs::metadata(&rotated_health).unwrap().len(),
            std::fs::metadata(&rotated_perf).unwrap().len()
        ),
        sizes,
        "a line went to a renamed file after SIGUSR1 was handled"
    );

    for (old, new) in [(&rotated_health, &health), (&rotated_perf, &perf)] {
        let all: Vec<u64> = seqs(&lines(old))
            .into_iter()
            .chain(seqs(&lines(new)))
            .collect();
        let expected: Vec<u64> = (1..=all.len() as u64).collect();
        assert_eq!(
            all,
            expected,
            "lines lost or reordered across the rotation of {}",
            new.display()
        );
    }

    // Health-check lines are the probe results: real Codex, healthy, one line per run.
    // (The process sampler's memory-usage and process-count checks log their status changes
    // in the same file; this test is about the probe lines.)
    let checks: Vec<Value> = lines(&rotated_health)
        .into_iter()
        .chain(lines(&health))
        .filter(|c| c["check"] != "memory-usage" && c["check"] != "process-count")
        .collect();
    for c in &checks {
        assert_eq!(c["check"], "codex-availability", "{c}");
        assert_eq!(c["status"], "healthy", "{c}");
        assert!(
            c["details"]["version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{c}"
        );
        assert!(c["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
    let runs: Vec<u64> = checks.iter().map(|c| c["runs"].as_u64().unwrap()).collect();
    assert!(
        runs.windows(2).all(|w| w[0] < w[1]),
        "runs increase: {runs:?}"
    );
    let perf_line = &lines(&perf)[0];
    assert!(
        perf_line["performance"]["reliabilityMetrics"].is_object(),
        "{perf_line}"
    );
    assert_eq!(
        metric(
            &agent,
            "codex_sentinel_audit_log_lines_total{stream=\"health-checks\",result=\"failed\"}"
        ),
        0.0
    );
    // Counters come with the next snapshot (published every second).
    wait_until(
        Duration::from_secs(10),
        "written lines counted",
        &agent,
        || {
            metric(
                &agent,
                "codex_sentinel_audit_log_lines_total{stream=\"health-checks\",result=\"written\"}",
            ) >= checks.len() as f64
        },
    );
}

#[test]
fn an_unwritable_audit_directory_is_reported_once_counted_and_not_fatal() {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "150".into()),
            (
                "CODEX_AUDIT_LOG_DIR",
                blocker.path().join("audit").display().to_string(),
            ),
        ],
        ..Default::default()
    });
    let failed = "codex_sentinel_audit_log_lines_total{stream=\"health-checks\",result=\"failed\"}";
    wait_until(Duration::from_secs(30), "3 failed lines", &agent, || {
        metric(&agent, failed) >= 3.0
    });
    assert_eq!(
        stderr_count(&agent, "cannot write audit log"),
        1,
        "{}",
        agent.stderr()
    );
    let (code, status) = agent.get_json("/health/codex/status");
    assert_eq!(code, 200);
    assert_eq!(status["codexAvailable"], true);
}

#[test]
fn a_full_disk_is_reported_once_counted_and_not_fatal() {
    // /dev/full answers every write with ENOSPC, as a full filesystem does.
    let dir = tempfile::tempdir().unwrap();
    let day = codex_sentinel::audit::day_of(codex_sentinel::util::now_ms());
    std::os::unix::fs::symlink(
        "/dev/full",
        dir.path().join(format!("health-checks-{day}.log")),
    )
    .unwrap();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "150".into()),
            ("CODEX_AUDIT_LOG_DIR", dir.path().display().to_string()),
            ("CODEX_AUDIT_PERFORMANCE_INTERVAL", "150".into()),
        ],
        ..Default::default()
    });
    let failed = "codex_sentinel_audit_log_lines_total{stream=\"health-checks\",result=\"failed\"}";
    wait_until(Duration::from_secs(30), "3 failed lines", &agent, || {
        metric(&agent, failed) >= 3.0
    });
    let reports: Vec<String> = agent
        .stderr_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cannot write audit log"))
        .cloned()
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("No space left on device"),
        "{}",
        reports[0]
    );
    // The other streams, on the same directory, keep working.
    wait_until(Duration::from_secs(30), "performance lines", &agent, || {
        lines(&dir.path().join(format!("performance-{day}.log"))).len() >= 2
    });
}

/// Config file of the reload test; `extra` is merged into `healthMonitoring`.
fn config_json(check_interval: u64, min_success_rate: f64, token: &str) -> String {
    serde_json::json!({
        "healthMonitoring": {
            "checkInterval": check_interval,
            "thresholds": { "minSuccessRate": min_success_rate }
        },
        "alerting": { "maintenance": { "token": token } }
    })
    .to_string()
}

fn config_alerts(r: &Receiver) -> Vec<Value> {
    r.all()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["title"] == "Codex monitoring configuration changed")
        .collect()
}

#[test]
fn sighup_applies_a_valid_configuration_once_and_rejects_an_invalid_one() {
    let webhook = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let mut agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("ENABLE_CODEX_ALERTING", "true".into()),
            ("CODEX_ALERT_WEBHOOK_URL", webhook.url("/hook")),
            ("CODEX_ALERT_EVALUATION_INTERVAL", "100".into()),
            ("CODEX_STATE_DIR", state.path().display().to_string()),
        ],
        config_json: Some(config_json(3_600_000, 80.0, "first-token-value")),
        ..Default::default()
    });
    // The first probe runs at start; with a one-hour interval no second one comes.
    let before = agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["probes"][0]["runs"] == 1
    });
    let file = agent.path().join("config/monitoring.json");

    // Valid: a faster probe, a lower threshold, a new secret.
    std::fs::write(&file, config_json(200, 70.0, "second-token-value")).unwrap();
    signal(&agent, libc::SIGHUP);
    let got = webhook.wait_for(Duration::from_secs(20), "configuration changed", |all| {
        all.iter().any(|r| r.body.contains("configuration changed"))
    });
    // The probe runs on the new interval.
    let after = agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["probes"][0]["runs"].as_u64().unwrap() >= 4
    });
    // Run numbers and uptime go on across the reload (that the monitor keeps every statistic
    // when reconfigured is unit-tested in `monitor::reload_tests`).
    let health = today_file(&agent, "health-checks");
    wait_until(Duration::from_secs(10), "health lines", &agent, || {
        lines(&health).len() >= 4
    });
    let runs: Vec<u64> = lines(&health)
        .iter()
        .filter(|l| l["check"] == "codex-availability")
        .map(|l| l["runs"].as_u64().unwrap())
        .collect();
    assert_eq!(runs[0], 1);
    assert!(runs.windows(2).all(|w| w[0] < w[1]), "{runs:?}");
    assert!(after["uptime"].as_u64().unwrap() >= before["uptime"].as_u64().unwrap());
    let alerts = config_alerts(&webhook);
    assert_eq!(alerts.len(), 1, "{got:#?}");
    let a = &alerts[0];
    assert_eq!(a["severity"], "info");
    assert_eq!(a["category"], "configuration");
    let changes = a["details"]["changes"].as_array().unwrap();
    let keys: Vec<&str> = changes.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        vec![
            "alerting.maintenance.token",
            "healthMonitoring.checkInterval",
            "healthMonitoring.thresholds.minSuccessRate"
        ]
    );
    assert_eq!(changes[1]["previous"], "3600000");
    assert_eq!(changes[1]["current"], "200");
    assert_eq!(changes[1]["applied"], true);
    assert_eq!(changes[0]["current"], "\"***redacted***\"");
    assert_eq!(changes[0]["applied"], false);
    assert_eq!(
        a["details"]["restartRequired"],
        serde_json::json!(["alerting.maintenance.token"])
    );
    for r in webhook.all() {
        assert!(!r.body.contains("token-value"), "secret leaked: {}", r.body);
    }
    assert!(!agent.stderr().contains("token-value"));

    // Invalid: rejected with the reason, the running configuration kept, no alert.
    std::fs::write(&file, config_json(0, 70.0, "second-token-value")).unwrap();
    signal(&agent, libc::SIGHUP);
    wait_until(Duration::from_secs(10), "rejection logged", &agent, || {
        stderr_count(&agent, "configuration reload rejected") == 1
    });
    let rejection = agent
        .stderr_lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("configuration reload rejected"))
        .cloned()
        .unwrap();
    assert!(
        rejection.contains("healthMonitoring.checkInterval"),
        "{rejection}"
    );
    wait_metric(
        &agent,
        "codex_sentinel_config_reloads_total{result=\"rejected\"}",
        1.0,
    );
    let errors_file = today_file(&agent, "errors");
    wait_until(
        Duration::from_secs(10),
        "rejection in errors log",
        &agent,
        || {
            lines(&errors_file).iter().any(|e| {
                e["component"] == "reload"
                    && e["message"]
                        .as_str()
                        .unwrap()
                        .contains("healthMonitoring.checkInterval")
            })
        },
    );

    // Same as running: nothing to say. Then one more real change: exactly one more alert,
    // listing only that change (so the rejected reload raised none).
    std::fs::write(&file, config_json(200, 70.0, "second-token-value")).unwrap();
    signal(&agent, libc::SIGHUP);
    wait_until(Duration::from_secs(10), "unchanged reload", &agent, || {
        stderr_count(&agent, "nothing changed") == 1
    });
    std::fs::write(&file, config_json(200, 75.0, "second-token-value")).unwrap();
    signal(&agent, libc::SIGHUP);
    webhook.wait_for(
        Duration::from_secs(20),
        "second configuration alert",
        |all| {
            all.iter()
                .filter(|r| r.body.contains("configuration changed"))
                .count()
                >= 2
        },
    );
    let alerts = config_alerts(&webhook);
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[1]["details"]["changes"],
        serde_json::json!([{
            "key": "healthMonitoring.thresholds.minSuccessRate",
            "previous": "70.0",
            "current": "75.0"
        }])
    );
    wait_metric(
        &agent,
        "codex_sentinel_config_reloads_total{result=\"applied\"}",
        2.0,
    );

    // A restart with the configuration as it is now does not announce the reloaded changes
    // again: only what differs from the last reload (here the evaluation interval) is listed.
    let (code, _) = agent.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0));
    let again = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("ENABLE_CODEX_ALERTING", "true".into()),
            ("CODEX_ALERT_WEBHOOK_URL", webhook.url("/hook")),
            ("CODEX_ALERT_EVALUATION_INTERVAL", "120".into()),
            ("CODEX_STATE_DIR", state.path().display().to_string()),
        ],
        config_json: Some(config_json(200, 75.0, "second-token-value")),
        ..Default::default()
    });
    webhook.wait_for(
        Duration::from_secs(20),
        "restart's configuration alert",
        |all| {
            all.iter()
                .filter(|r| r.body.contains("configuration changed"))
                .count()
                >= 3
        },
    );
    let alerts = config_alerts(&webhook);
    let keys: Vec<&Value> = alerts[2]["details"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["key"])
        .collect();
    assert_eq!(keys, vec!["alerting.evaluationInterval"]);
    again.wait_json("/health/codex/alerts", Duration::from_secs(10), |a| {
        a["evaluations"].as_u64().unwrap_or(0) >= 3
    });
    assert_eq!(config_alerts(&webhook).len(), 3);
}

/// Each kind of state file, damaged the ways it happens: cut short by kill -9 / a full disk,
/// emptied, edited by hand into something else.
const DAMAGED: &[(&str, &str, &[u8], &str)] = &[
    (
        "alerts",
        "alerts/state.json",
        br#"{"engine":{"series":{"codex-unavail"#,
        "was corrupt (truncated",
    ),
    ("history", "history.json", b"", "was corrupt (empty file)"),
    (
        "oplog",
        "operations-log.json",
        br#"{"version": "one", "cursors": 7}"#,
        "was corrupt (invalid type",
    ),
];

#[test]
fn corrupt_state_files_of_each_kind_are_moved_aside_reported_and_the_agent_keeps_working() {
    for (kind, rel, bytes, reason) in DAMAGED {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        let agent = start_agent(AgentOptions {
            env: vec![
                ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
                ("CODEX_HEALTH_CHECK_INTERVAL", "200".into()),
                ("ENABLE_CODEX_ALERTING", "true".into()),
                ("CODEX_STATE_DIR", state.path().display().to_string()),
            ],
            ..Default::default()
        });
        let report = agent.wait_json("/health/codex", Duration::from_secs(30), |r| {
            r["checks"][0]["status"] == "healthy"
        });
        let recs = report["recommendations"].as_array().unwrap();
        assert!(
            recs.iter().any(|r| {
                let r = r.as_str().unwrap();
                r.contains(rel) && r.contains(reason)
            }),
            "{kind}: {recs:?}"
        );
        wait_metric(
            &agent,
            &format!("codex_sentinel_state_files_recovered_total{{kind=\"{kind}\"}}"),
            1.0,
        );
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let aside: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.corrupt-"))
            })
            .collect();
        assert_eq!(aside.len(), 1, "{kind}");
        assert_eq!(
            std::fs::read(&aside[0]).unwrap(),
            *bytes,
            "{kind}: kept as it was"
        );
        let errors_file = today_file(&agent, "errors");
        wait_until(
            Duration::from_secs(10),
            "recovery in errors log",
            &agent,
            || {
                lines(&errors_file)
                    .iter()
                    .any(|e| e["component"] == "state" && e["details"]["kind"] == *kind)
            },
        );
        // Keeps working: probes go on.
        agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
            m["probes"][0]["runs"].as_u64().unwrap() >= 3
        });
    }
}

#[test]
fn a_changed_config_file_is_reloaded_when_watching_is_on() {
    let mut agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_SENTINEL_RELOAD_WATCH", "true".into()),
            ("CODEX_SENTINEL_RELOAD_INTERVAL", "100".into()),
        ],
        config_json: Some(config_json(3_600_000, 80.0, "t")),
        ..Default::default()
    });
    agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["probes"][0]["runs"] == 1
    });
    let file = agent.path().join("config/monitoring.json");
    std::fs::write(&file, config_json(150, 80.0, "t")).unwrap();
    // Applied without a signal: the probe now runs every 150 ms.
    agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["probes"][0]["runs"].as_u64().unwrap() >= 4
    });
    let reloaded: Vec<String> = agent
        .stderr_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("configuration reloaded"))
        .cloned()
        .collect();
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert!(
        reloaded[0].contains("config file change"),
        "{}",
        reloaded[0]
    );
    assert!(
        reloaded[0].contains("healthMonitoring.checkInterval"),
        "{}",
        reloaded[0]
    );
    // A file that disappears (mid-replace) is waited for, not read as "defaults".
    std::fs::remove_file(&file).unwrap();
    wait_until(
        Duration::from_secs(10),
        "missing file noticed",
        &agent,
        || stderr_count(&agent, "configuration file missing") >= 1,
    );
    // Three more probe runs (every 150 ms) span several file polls (every 100 ms).
    let runs = |m: &serde_json::Value| m["probes"][0]["runs"].as_u64().unwrap();
    let (_, m) = agent.get_json("/health/codex/metrics");
    let later = runs(&m) + 3;
    agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        runs(m) >= later
    });
    assert_eq!(
        stderr_count(&agent, "configuration file missing"),
        1,
        "reported once"
    );
    assert_eq!(stderr_count(&agent, "configuration reloaded"), 1);
    // Back with new content: reloaded.
    std::fs::write(&file, config_json(150, 85.0, "t")).unwrap();
    wait_until(Duration::from_secs(10), "second reload", &agent, || {
        stderr_count(&agent, "configuration reloaded") == 2
    });
    let (code, _) = agent.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0));
}

const LOGROTATE: &str = "/usr/sbin/logrotate";

/// Lines of a file, gunzipped first when it ends in `.gz`.
fn lines_any(path: &Path) -> Vec<Value> {
    if path.extension().is_some_and(|e| e == "gz") {
        let out = std::process::Command::new("gzip")
            .args(["-dc"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        lines(path)
    }
}

#[test]
fn the_specifications_logrotate_stanza_with_sigusr1_loses_no_line() {
    assert!(
        Path::new(LOGROTATE).exists(),
        "logrotate missing at {LOGROTATE}: run scripts/test (or scripts/setup.d/45-logrotate.sh)"
    );
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "100".into()),
        ],
        ..Default::default()
    });
    let health = today_file(&agent, "health-checks");
    let audit = health.parent().unwrap().to_path_buf();
    // The specification's stanza for logs/audit, with the postrotate signal it describes.
    let conf = agent.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{}/*.log {{\n    daily\n    missingok\n    rotate 30\n    compress\n    delaycompress\n    notifempty\n    postrotate\n        kill -USR1 {} || true\n    endscript\n}}\n",
            audit.display(),
            agent.child.id()
        ),
    )
    .unwrap();
    let rotate = |round: usize| {
        let out = std::process::Command::new(LOGROTATE)
            .arg("-f")
            .arg("-s")
            .arg(agent.path().join("logrotate.state"))
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until(Duration::from_secs(10), "reopen", &agent, || {
            stderr_count(&agent, "audit log files reopened") == round
        });
        wait_until(
            Duration::from_secs(30),
            "lines in the new file",
            &agent,
            || lines(&health).len() >= 3,
        );
    };
    wait_until(Duration::from_secs(30), "first lines", &agent, || {
        lines(&health).len() >= 3
    });
    rotate(1);
    rotate(2);
    let name = health.file_name().unwrap().to_string_lossy().into_owned();
    let gz = audit.join(format!("{name}.2.gz"));
    let one = audit.join(format!("{name}.1"));
    assert!(
        gz.exists() && one.exists(),
        "compress + delaycompress as configured"
    );
    let all: Vec<u64> = [gz, one, health.clone()]
        .iter()
        .flat_map(|p| seqs(&lines_any(p)))
        .collect();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(
        all, expected,
        "a line was lost or misplaced across two rotations"
    );
}
