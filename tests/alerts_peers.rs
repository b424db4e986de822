//! Alerting against real peers on loopback: Debian's aiosmtpd (SMTP) and Debian's
//! prometheus-alertmanager (API v2), driven by the real agent binary whose Codex executable
//! is missing (critical "Codex CLI Unavailable") and later appears (resolved).

mod alerts_support;
mod common;

use std::time::Duration;

use alerts_support::{Alertmanager, SmtpServer};
use common::{free_port, start_agent, AgentOptions};

fn base_env(state: &std::path::Path, codex: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("ENABLE_CODEX_ALERTING", "true".into()),
        ("CODEX_EXECUTABLE", codex.display().to_string()),
        ("CODEX_HEALTH_CHECK_INTERVAL", "300".into()),
        ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
        ("CODEX_ALERT_HOLD_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_CLEAR_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_DISABLED_RULES", "configuration-changed".into()),
        ("CODEX_ALERT_RETRY_BACKOFF", "300".into()),
        ("CODEX_ALERT_RETRY_MAX_BACKOFF", "1000".into()),
        ("CODEX_ALERT_MAX_ATTEMPTS", "100".into()),
        ("CODEX_STATE_DIR", state.display().to_string()),
    ]
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn email_through_real_smtp_server_down_then_up_is_delivered_once() {
    let state = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let mut env = base_env(state.path(), &state.path().join("missing/codex"));
    env.extend([
        ("CODEX_ALERT_SMTP_HOST", "127.0.0.1".to_string()),
        ("CODEX_ALERT_SMTP_PORT", smtp_port.to_string()),
        ("CODEX_ALERT_SMTP_TLS", "none".to_string()),
        (
            "CODEX_ALERT_SMTP_FROM",
            "GansAuditor-Codex <alerts@company.com>".to_string(),
        ),
        (
            "CODEX_ALERT_EMAIL_RECIPIENTS",
            "admin@company.com,devops@company.com".to_string(),
        ),
    ]);
    // The SMTP server is down when the alert fires.
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    let agent_ref = &agent;
    wait_until(Duration::from_secs(20), "failed email attempts", || {
        let (_, j) = agent_ref.get_json("/health/codex/alerts");
        j["notifications"]["email"]["retried"].as_u64().unwrap_or(0) >= 2
    });
    let smtp = SmtpServer::start(smtp_port);
    wait_until(Duration::from_secs(20), "the email", || {
        !smtp.messages().is_empty()
    });
    // Nothing left to send and the engine evaluated again: a second copy would be out by now.
    let seen = alerts_support::evaluations(&agent);
    alerts_support::wait_settled(&agent, state.path(), seen + 3);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "delivered once: {messages:#?}");
    let m = &messages[0];
    let session = smtp.session_log();
    assert_eq!(
        session.matches("sender: alerts@company.com").count(),
        1,
        "{session}"
    );
    assert_eq!(
        session.matches("recip: admin@company.com").count(),
        1,
        "{session}"
    );
    assert_eq!(
        session.matches("recip: devops@company.com").count(),
        1,
        "{session}"
    );
    assert!(
        m.contains("Subject: [CRITICAL] Codex CLI Unavailable"),
        "{m}"
    );
    assert!(
        m.contains("From: GansAuditor-Codex <alerts@company.com>"),
        "{m}"
    );
    assert!(
        m.contains("To: admin@company.com, devops@company.com"),
        "{m}"
    );
    assert!(m.contains("Codex CLI executable not found"), "{m}");
    assert!(
        m.contains(&format!(
            "Alert: codex-unavailable (fingerprint {})",
            codex_sentinel::alerts::fingerprint::fingerprint("codex-unavailable")
        )),
        "{m}"
    );
    assert!(
        m.contains("Recommendations:\n  - Verify Codex CLI installation"),
        "{m}"
    );
    assert!(
        m.contains("Runbook: docs/alerting.md#runbook-codex-cli-unavailable"),
        "{m}"
    );
    let (_, j) = agent.get_json("/health/codex/alerts");
    assert_eq!(j["notifications"]["email"]["delivered"], 1);
}

#[test]
fn alertmanager_shows_the_firing_alert_then_resolves_it() {
    let am = Alertmanager::start(free_port());
    let state = tempfile::tempdir().unwrap();
    // The executable path is missing at first, then becomes the real Codex CLI.
    let codex = state.path().join("bin/codex");
    let mut env = base_env(state.path(), &codex);
    env.push(("CODEX_ALERTMANAGER_URL", am.url("")));
    env.push(("CODEX_ALERTMANAGER_RESEND_INTERVAL", "1000".into()));
    env.push((
        "CODEX_ALERT_GENERATOR_URL",
        "http://codex-sentinel.example:3000/health/codex/alerts".into(),
    ));
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    let mut alert = serde_json::Value::Null;
    wait_until(Duration::from_secs(30), "the alert in Alertmanager", || {
        let alerts = am.alerts();
        if let Some(a) = alerts.as_array().and_then(|a| a.first()) {
            alert = a.clone();
            true
        } else {
            false
        }
    });
    assert_eq!(alert["labels"]["alertname"], "CodexUnavailable", "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["category"], "availability");
    assert_eq!(alert["labels"]["job"], "codex-sentinel");
    assert_eq!(
        alert["labels"]["fingerprint"],
        codex_sentinel::alerts::fingerprint::fingerprint("codex-unavailable"),
        "the alert's stable identity, as in every sink"
    );
    assert_eq!(alert["annotations"]["summary"], "Codex CLI Unavailable");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["generatorURL"],
        "http://codex-sentinel.example:3000/health/codex/alerts"
    );
    let starts = alert["startsAt"].as_str().unwrap().to_string();

    // Still firing after the first send's `endsAt` (re-sent, not expired): waited for on
    // Alertmanager's own view: `updatedAt` is when it last received the alert.
    let ms = |v: &serde_json::Value| {
        codex_sentinel::util::time::parse_time(v.as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("not a time: {v}"))
    };
    let first_ends = ms(&alert["endsAt"]);
    wait_until(
        Duration::from_secs(30),
        "a re-send past the first endsAt",
        || {
            am.alerts()
                .as_array()
                .and_then(|a| a.first())
                .is_some_and(|a| ms(&a["updatedAt"]) > first_ends)
        },
    );
    let alerts = am.alerts();
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_eq!(
        alerts[0]["startsAt"].as_str().unwrap(),
        starts,
        "same alert, same startsAt"
    );

    // Codex appears: the alert resolves and Alertmanager drops it from the active list.
    std::fs::create_dir_all(codex.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(common::codex_bin(), &codex).unwrap();
    wait_until(
        Duration::from_secs(30),
        "resolution in Alertmanager",
        || am.alerts().as_array().is_some_and(|a| a.is_empty()),
    );
    // The agent counts the resolved notification once Alertmanager has answered it.
    let agent_ref = &agent;
    wait_until(
        Duration::from_secs(10),
        "firing, then resolved, delivered",
        || {
            let (_, j) = agent_ref.get_json("/health/codex/alerts");
            j["notifications"]["alertmanager"]["delivered"] == 2
        },
    );
    let (_, j) = agent.get_json("/health/codex/alerts");
    assert!(j["alerts"].as_array().unwrap().is_empty(), "{j}");
}
