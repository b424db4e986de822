//! The real agent binary raising the critical "Codex CLI Unavailable" alert (the executable
//! points to a missing file) and sending it to a recording webhook: the body compared field
//! by field with the specification's example, secrets kept out of every output, the
//! maintenance endpoint, and kill -9 during a pending send followed by a restart.

mod alerts_support;
mod common;

use std::time::Duration;

use alerts_support::{Answer, Receiver};
use common::{http_request, start_agent, AgentOptions};
use serde_json::Value;

/// The specification's "Webhook Alert Format" example, verbatim.
const SPEC_EXAMPLE: &str = r#"{
  "timestamp": 1703123456789,
  "severity": "critical|warning|info",
  "title": "Codex CLI Unavailable",
  "message": "Codex CLI executable not found in PATH",
  "category": "availability",
  "details": {
    "executable": "codex",
    "error": "spawn codex ENOENT",
    "duration": 5000,
    "retryCount": 3
  },
  "recommendations": [
    "Verify Codex CLI installation",
    "Check PATH environment variable",
    "Restart the service if necessary"
  ],
  "runbook": "https://docs.company.com/runbooks/codex-cli-unavailable"
}"#;

/// Environment of an agent that cannot find Codex and evaluates alerts quickly.
fn alerting_env(state_dir: &std::path::Path, webhook: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ENABLE_CODEX_ALERTING", "true".into()),
        (
            "CODEX_EXECUTABLE",
            state_dir.join("no-such-dir/codex").display().to_string(),
        ),
        ("CODEX_HEALTH_CHECK_INTERVAL", "300".into()),
        ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
        ("CODEX_ALERT_HOLD_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_CLEAR_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_DISABLED_RULES", "configuration-changed".into()),
        ("CODEX_ALERT_RETRY_BACKOFF", "200".into()),
        ("CODEX_ALERT_RETRY_MAX_BACKOFF", "1000".into()),
        ("CODEX_STATE_DIR", state_dir.display().to_string()),
        ("CODEX_ALERT_WEBHOOK_URL", webhook.to_string()),
        (
            "CODEX_ALERT_RUNBOOK_BASE_URL",
            "https://docs.company.com/runbooks/".into(),
        ),
    ]
}

/// Evaluations after which a wrongly repeated notification would have been decided.
const SETTLE_EVALUATIONS: u64 = 3;

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

#[test]
fn generic_webhook_body_is_the_specification_example_and_secrets_stay_hidden() {
    let rx = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let hook = rx.url("/hook/T0/SECRET-WEBHOOK-TOKEN");
    let mut env = alerting_env(state.path(), &hook);
    env.push((
        "CODEX_ALERT_WEBHOOK_HEADERS",
        "X-Receiver-Key=SECRET-HEADER-VALUE".into(),
    ));
    env.push(("CODEX_ALERT_MAINTENANCE_TOKEN", "SECRET-MAINT-TOKEN".into()));
    env.push(("CODEX_ALERT_SMTP_HOST", "127.0.0.1".into()));
    env.push(("CODEX_ALERT_SMTP_PORT", common::free_port().to_string()));
    env.push(("CODEX_ALERT_SMTP_TLS", "none".into()));
    env.push(("CODEX_ALERT_SMTP_USER", "alerts@company.com".into()));
    env.push(("CODEX_ALERT_SMTP_PASS", "SECRET-SMTP-PASS".into()));
    env.push(("CODEX_ALERT_EMAIL_RECIPIENTS", "admin@company.com".into()));
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    let before = common_now();
    let got = rx.wait_for(Duration::from_secs(20), "one accepted notification", |r| {
        r.iter().any(|r| r.accepted())
    });
    let req = got.iter().find(|r| r.accepted()).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook/T0/SECRET-WEBHOOK-TOKEN");
    assert_eq!(req.header("X-Receiver-Key"), Some("SECRET-HEADER-VALUE"));
    assert_eq!(req.header("X-Codex-Sentinel-Status"), Some("firing"));
    assert!(req
        .header("Idempotency-Key")
        .unwrap()
        .starts_with("codex-sentinel-"));

    // Field by field against the specification's example.
    let body = req.json();
    let spec: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    let (b, s) = (body.as_object().unwrap(), spec.as_object().unwrap());
    let mut bk: Vec<_> = b.keys().collect();
    let mut sk: Vec<_> = s.keys().collect();
    bk.sort();
    sk.sort();
    assert_eq!(bk, sk, "top-level fields");
    for (k, v) in s {
        assert_eq!(kind(&b[k]), kind(v), "type of {k}");
    }
    let (bd, sd) = (
        b["details"].as_object().unwrap(),
        s["details"].as_object().unwrap(),
    );
    // The specification's details, plus the alert's identity (docs/alerting.md).
    assert_eq!(bd["alertKey"], "codex-unavailable");
    assert_eq!(
        bd["fingerprint"],
        codex_sentinel::alerts::fingerprint::fingerprint("codex-unavailable")
    );
    let mut bdk: Vec<_> = bd
        .keys()
        .filter(|k| !["alertKey", "fingerprint"].contains(&k.as_str()))
        .collect();
    let mut sdk: Vec<_> = sd.keys().collect();
    bdk.sort();
    sdk.sort();
    assert_eq!(bdk, sdk, "details fields");
    for (k, v) in sd {
        assert_eq!(kind(&bd[k]), kind(v), "type of details.{k}");
    }
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["title"], spec["title"]);
    assert_eq!(body["category"], spec["category"]);
    assert_eq!(body["recommendations"], spec["recommendations"]);
    assert_eq!(body["runbook"], spec["runbook"]);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Codex CLI executable not found"));
    assert!(body["details"]["executable"]
        .as_str()
        .unwrap()
        .ends_with("no-such-dir/codex"));
    let error = body["details"]["error"].as_str().unwrap();
    assert!(
        !error.is_empty()
            && error
                == body["message"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Codex CLI executable not found: "),
        "{body}"
    );
    let ts = body["timestamp"].as_u64().unwrap();
    assert!(
        ts >= before - 60_000 && ts <= common_now(),
        "timestamp {ts} is epoch ms of now"
    );

    // The alert is active in both endpoints.
    let health = agent.wait_json("/health/codex", Duration::from_secs(5), |j| {
        j["alerts"].as_array().is_some_and(|a| !a.is_empty())
    });
    let alert = &health["alerts"][0];
    assert_eq!(alert["id"], "codex-unavailable");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["notified"], true);
    let (code, list) = agent.get_json("/health/codex/alerts");
    assert_eq!(code, 200);
    assert_eq!(list["enabled"], true);
    assert_eq!(list["alerts"][0]["title"], "Codex CLI Unavailable");
    assert_eq!(list["notifications"]["webhook"]["delivered"], 1);
    let metrics = agent.wait_text("/metrics", |t| {
        t.contains(
            r#"codex_sentinel_alert_notifications_total{sink="webhook",result="delivered"} 1"#,
        )
    });
    assert!(
        metrics.contains(r#"codex_sentinel_alerts_active{severity="critical"} 1"#),
        "{metrics}"
    );

    // Secrets appear nowhere: endpoints, metrics, logs (the email sink fails and logs too, so
    // its failure line is waited for before the logs are read).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !agent
        .stderr()
        .contains("alert notification failed; will retry")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the email sink's failures are logged:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut outputs = vec![agent.stderr()];
    for path in [
        "/health/codex",
        "/health/codex/alerts",
        "/health/codex/metrics",
        "/metrics",
        "/health/codex/status",
    ] {
        outputs.push(agent.get(path).1);
    }
    for text in &outputs {
        for secret in [
            "SECRET-WEBHOOK-TOKEN",
            "SECRET-HEADER-VALUE",
            "SECRET-MAINT-TOKEN",
            "SECRET-SMTP-PASS",
        ] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
    }
}

fn common_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

trait TextGet {
    fn wait_text(&self, path: &str, pred: impl Fn(&str) -> bool) -> String;
}

impl TextGet for common::Agent {
    fn wait_text(&self, path: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, text) = self.get(path);
            if pred(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never matched; last:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn maintenance_endpoint_needs_the_token_and_silences() {
    let rx = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let mut env = alerting_env(state.path(), &rx.url("/hook"));
    env.push(("CODEX_ALERT_MAINTENANCE_TOKEN", "maint-token-1".into()));
    // No Codex-unavailable alert here: only maintenance notifications are expected.
    env.retain(|(k, _)| *k != "CODEX_ALERT_DISABLED_RULES");
    env.push((
        "CODEX_ALERT_DISABLED_RULES",
        "configuration-changed,codex-unavailable".into(),
    ));
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    let url = agent.url("/health/codex/alerts/maintenance");
    let body = r#"{"duration": 600000, "reason": "Codex upgrade"}"#;
    let (code, _) = http_request("POST", &url, Some(body), &[]).unwrap();
    assert_eq!(code, 401);
    let (code, _) = http_request(
        "POST",
        &url,
        Some(body),
        &[("Authorization", "Bearer maint-token-2")],
    )
    .unwrap();
    assert_eq!(code, 401);
    let (code, resp) = http_request(
        "POST",
        &url,
        Some(body),
        &[("Authorization", "Bearer maint-token-1")],
    )
    .unwrap();
    assert_eq!(code, 200, "{resp}");
    let resp: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(resp["active"], true);
    assert_eq!(resp["maintenance"]["reason"], "Codex upgrade");
    let (_, list) = agent.get_json("/health/codex/alerts");
    assert_eq!(list["maintenance"]["source"], "api");
    let got = rx.wait_for(Duration::from_secs(10), "maintenance started", |r| {
        r.iter().any(|r| r.accepted())
    });
    assert_eq!(got[0].json()["category"], "maintenance");
    assert_eq!(got[0].header("X-Codex-Sentinel-Status"), Some("firing"));
    let (code, _) = http_request(
        "DELETE",
        &url,
        None,
        &[("Authorization", "Bearer maint-token-1")],
    )
    .unwrap();
    assert_eq!(code, 200);
    let got = rx.wait_for(Duration::from_secs(10), "maintenance ended", |r| {
        r.iter().filter(|r| r.accepted()).count() == 2
    });
    assert_eq!(got[1].header("X-Codex-Sentinel-Status"), Some("resolved"));
    assert_eq!(got[1].json()["title"], got[0].json()["title"]);
    assert_eq!(got[1].json()["details"]["status"], "resolved");
    assert_eq!(
        got[1].json()["details"]["fingerprint"],
        got[0].json()["details"]["fingerprint"]
    );
    let (_, list) = agent.get_json("/health/codex/alerts");
    assert!(list["maintenance"].is_null());
}

#[test]
fn kill_9_during_a_pending_send_then_restart_delivers_exactly_once() {
    let rx = Receiver::start();
    // The first agent's send stalls: it is killed mid-request.
    rx.set_default(Answer::Stall(Duration::from_secs(60)));
    let state = tempfile::tempdir().unwrap();
    let env = alerting_env(state.path(), &rx.url("/hook"));
    let mut first = start_agent(AgentOptions {
        env: env.clone(),
        ..Default::default()
    });
    let stalled = rx.wait_for(Duration::from_secs(20), "the first attempt", |r| {
        !r.is_empty()
    });
    let key = stalled[0].header("Idempotency-Key").unwrap().to_string();
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let persisted = std::fs::read_to_string(state.path().join("alerts/state.json")).unwrap();
    assert!(
        persisted.contains("\"outbox\":[{"),
        "the pending send is persisted: {persisted}"
    );

    rx.set_default(Answer::Status(200));
    let second = start_agent(AgentOptions {
        env: env.clone(),
        ..Default::default()
    });
    // Alert state came back with the restart: active and already notified (no new firing).
    let (_, list) = second.get_json("/health/codex/alerts");
    assert_eq!(list["alerts"][0]["id"], "codex-unavailable", "{list}");
    let got = rx.wait_for(Duration::from_secs(20), "delivery after restart", |r| {
        r.iter().any(|r| r.accepted())
    });
    // Delivered, nothing left to send, and the engine evaluated the firing alert again.
    let seen = alerts_support::evaluations(&second);
    alerts_support::wait_settled(&second, state.path(), seen + SETTLE_EVALUATIONS);
    let accepted = rx.accepted();
    assert_eq!(
        accepted.len(),
        1,
        "exactly once: {:#?}",
        got.iter()
            .map(|r| (r.header("Idempotency-Key"), r.answer))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        accepted[0].header("Idempotency-Key"),
        Some(key.as_str()),
        "the same notification"
    );
    drop(second); // kill -9 again, after delivery
    let third = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    // Past the hold (2 evaluations) and then some: a re-firing would be queued by now.
    alerts_support::wait_settled(&third, state.path(), 2 + SETTLE_EVALUATIONS);
    assert!(
        !third.stderr().contains("alert notification queued"),
        "{}",
        third.stderr()
    );
    assert_eq!(
        rx.accepted().len(),
        1,
        "a restart does not re-send what was delivered"
    );
    let (_, list) = third.get_json("/health/codex/alerts");
    assert_eq!(list["alerts"][0]["notified"], true);
}

#[test]
fn alerting_without_notifiers_shows_alerts_in_the_health_report() {
    let state = tempfile::tempdir().unwrap();
    let env: Vec<_> = alerting_env(state.path(), "unused")
        .into_iter()
        .filter(|(k, _)| *k != "CODEX_ALERT_WEBHOOK_URL")
        .collect();
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    let health = agent.wait_json("/health/codex", Duration::from_secs(20), |j| {
        j["alerts"].as_array().is_some_and(|a| !a.is_empty())
    });
    assert_eq!(health["alerts"][0]["title"], "Codex CLI Unavailable");
    assert_eq!(health["alerts"][0]["category"], "availability");
    let (_, list) = agent.get_json("/health/codex/alerts");
    assert_eq!(list["sinks"], serde_json::json!([]));
    assert_eq!(
        list["alerts"][0]["notified"], true,
        "nothing to send to, but not silenced"
    );
}

/// Names of the agent's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn one_thread_writes_the_alert_state_and_the_monitors_files() {
    let state = tempfile::tempdir().unwrap();
    let env: Vec<_> = alerting_env(state.path(), "unused")
        .into_iter()
        .filter(|(k, _)| *k != "CODEX_ALERT_WEBHOOK_URL")
        .collect();
    let agent = start_agent(AgentOptions {
        env,
        ..Default::default()
    });
    // An alert fired: the engine's store has written, and the monitor's writer ran too.
    agent.wait_json("/health/codex", Duration::from_secs(20), |j| {
        j["alerts"].as_array().is_some_and(|a| !a.is_empty())
    });
    let writers = thread_names(agent.child.id())
        .into_iter()
        .filter(|n| n == "state-writer")
        .count();
    assert_eq!(writers, 1, "threads: {:?}", thread_names(agent.child.id()));
    assert!(state.path().join("alerts/state.json").exists());
}
