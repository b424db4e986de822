//! Notification keys (`Idempotency-Key`) are unique per agent instance and across restarts,
//! even after the state directory was deleted: a receiver that de-duplicates never drops a
//! real alert. Failed state writes are retried and the state directory is recreated.

mod alerts_support;
mod common;

use std::time::Duration;

use alerts_support::Receiver;
use common::{codex_bin, http_request, start_agent, Agent, AgentOptions};

fn agent(webhook: &str, state: &std::path::Path) -> Agent {
    start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_ALERTING", "true".into()),
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
            (
                "CODEX_ALERT_DISABLED_RULES",
                "configuration-changed,codex-unavailable".into(),
            ),
            ("CODEX_ALERT_MAINTENANCE_TOKEN", "maint-token-1".into()),
            ("CODEX_STATE_DIR", state.display().to_string()),
            ("CODEX_ALERT_WEBHOOK_URL", webhook.to_string()),
        ],
        ..Default::default()
    })
}

/// Starts maintenance (one notification) and returns the Idempotency-Key it arrived with.
fn one_notification(agent: &Agent, rx: &Receiver) -> String {
    let before = rx.all().len();
    let url = agent.url("/health/codex/alerts/maintenance");
    let auth = [("Authorization", "Bearer maint-token-1")];
    let (code, body) = http_request("POST", &url, Some(r#"{"duration": 60000}"#), &auth).unwrap();
    assert_eq!(code, 200, "{body}");
    let all = rx.wait_for(Duration::from_secs(10), "a notification", |r| {
        r.len() > before
    });
    all[before].header("Idempotency-Key").unwrap().to_string()
}

#[test]
fn keys_differ_across_instances_and_after_the_state_was_deleted() {
    let rx = Receiver::start();
    let state_a = tempfile::tempdir().unwrap();
    let state_b = tempfile::tempdir().unwrap();
    let mut a = agent(&rx.url("/hook"), state_a.path());
    let b = agent(&rx.url("/hook"), state_b.path());
    let mut keys = vec![one_notification(&a, &rx), one_notification(&b, &rx)];

    // The state directory deleted while running, then a restart: new keys all the same.
    std::fs::remove_dir_all(state_a.path()).unwrap();
    assert_eq!(a.signal_and_wait(libc::SIGTERM).0, Some(0));
    let a = agent(&rx.url("/hook"), state_a.path());
    keys.push(one_notification(&a, &rx));
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "reused keys: {keys:?}");
    drop(b);
}
