//! A stalled notifier delays neither probes nor rule evaluation: the real agent sends its
//! critical alert to a webhook that accepts the request and never answers, while probes keep
//! their schedule (`probes[].maxStartDelay` of `/health/codex/metrics` records the worst
//! lateness of any run) and evaluations keep counting.
//!
//! The stall is observed for [`stalled_runs`] runs of the once-a-second probe (5 in the suite;
//! `CODEX_SENTINEL_TEST_STALL_RUNS=60` gives the 60 s measurement recorded in
//! docs/PERFORMANCE.md): the window ends on the probe's own run counter, not on a sleep.

mod alerts_support;
mod common;

use std::time::{Duration, Instant};

use alerts_support::{Answer, Receiver};
use common::{start_agent, AgentOptions};
use serde_json::Value;

/// Runs of the once-a-second `codex-version` probe the stall is watched for.
fn stalled_runs() -> u64 {
    std::env::var("CODEX_SENTINEL_TEST_STALL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Longer than any observation: the receiver holds the request open until the test ends.
const NEVER: Duration = Duration::from_secs(3600);

fn probe<'a>(metrics: &'a Value, name: &str) -> &'a Value {
    metrics["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name}: {metrics}"))
}

#[test]
fn a_stalled_notifier_delays_neither_probes_nor_evaluation() {
    let rx = Receiver::start();
    rx.set_default(Answer::Stall(NEVER));
    let state = tempfile::tempdir().unwrap();
    let codex = common::codex_bin();
    // The availability probe finds no Codex (critical alert → webhook); a second probe runs the
    // real Codex CLI every second.
    let config = serde_json::json!({
        "codex": {"probes": [{"name": "codex-version", "command": [codex, "--version"], "interval": 1000}]}
    });
    let env = vec![
        ("ENABLE_CODEX_ALERTING", "true".to_string()),
        (
            "CODEX_EXECUTABLE",
            state.path().join("missing/codex").display().to_string(),
        ),
        ("CODEX_HEALTH_CHECK_INTERVAL", "250".into()),
        ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
        ("CODEX_ALERT_HOLD_EVALUATIONS", "2".into()),
        ("CODEX_ALERT_DISABLED_RULES", "configuration-changed".into()),
        // The send never times out while watched.
        ("CODEX_ALERT_SEND_TIMEOUT", "3600000".into()),
        ("CODEX_STATE_DIR", state.path().display().to_string()),
        ("CODEX_ALERT_WEBHOOK_URL", rx.url("/hook")),
    ];
    let agent = start_agent(AgentOptions {
        env,
        config_json: Some(config.to_string()),
        ..Default::default()
    });
    rx.wait_for(Duration::from_secs(20), "the stalled send", |r| {
        !r.is_empty()
    });
    let t0 = Instant::now();
    let (_, m0) = agent.get_json("/health/codex/metrics");
    let (_, a0) = agent.get_json("/health/codex/alerts");

    let version_runs_at = |m: &Value| probe(m, "codex-version")["runs"].as_u64().unwrap();
    let target = version_runs_at(&m0) + stalled_runs();
    // Generous: a probe held up by the stalled send would never get there.
    let deadline = t0 + Duration::from_secs(stalled_runs() * 3 + 10);
    let mut worst_request = Duration::ZERO;
    let m1 = loop {
        let t = Instant::now();
        let (code, _) = agent.get("/health/codex");
        worst_request = worst_request.max(t.elapsed());
        assert_eq!(code, 503, "Codex is missing: critical");
        let (_, m) = agent.get_json("/health/codex/metrics");
        if version_runs_at(&m) >= target {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "codex-version probe stuck at {} runs (want {target}) while the send stalls",
            version_runs_at(&m)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stalled_for = t0.elapsed();
    let (_, a1) = agent.get_json("/health/codex/alerts");

    let requests = rx.all();
    assert_eq!(requests.len(), 1, "still the one stalled request");
    assert!(
        requests[0].at < t0,
        "the send was stalled for the whole window"
    );
    let secs = stalled_for.as_secs_f64();
    let avail_runs = probe(&m1, "codex-availability")["runs"].as_u64().unwrap()
        - probe(&m0, "codex-availability")["runs"].as_u64().unwrap();
    let version_runs = probe(&m1, "codex-version")["runs"].as_u64().unwrap()
        - probe(&m0, "codex-version")["runs"].as_u64().unwrap();
    let max_delay_avail = probe(&m1, "codex-availability")["maxStartDelay"]
        .as_u64()
        .unwrap();
    let max_delay_version = probe(&m1, "codex-version")["maxStartDelay"]
        .as_u64()
        .unwrap();
    let evaluations = a1["evaluations"].as_u64().unwrap() - a0["evaluations"].as_u64().unwrap();
    eprintln!(
        "stall {secs:.1} s: availability probe runs {avail_runs} (expected {:.0}), codex-version runs {version_runs} (expected {:.0}), \
         maxStartDelay availability {max_delay_avail} ms, codex-version {max_delay_version} ms, evaluations {evaluations} (expected {:.0}), \
         slowest /health/codex {worst_request:?}",
        secs / 0.25,
        secs,
        secs / 0.2
    );
    // Generous bounds: the point is "not stalled for 60 s", not a latency figure.
    assert!(
        avail_runs as f64 >= secs / 0.25 * 0.8,
        "availability probe runs {avail_runs}"
    );
    assert!(
        version_runs as f64 >= secs * 0.8,
        "codex-version runs {version_runs}"
    );
    assert!(
        max_delay_avail < 1_000 && max_delay_version < 1_000,
        "a probe started late"
    );
    assert!(
        evaluations as f64 >= secs / 0.2 * 0.8,
        "evaluations {evaluations}"
    );
    assert!(
        worst_request < Duration::from_secs(1),
        "an endpoint waited: {worst_request:?}"
    );
    let alerts = a1["alerts"].as_array().unwrap();
    assert_eq!(alerts[0]["id"], "codex-unavailable");
}
