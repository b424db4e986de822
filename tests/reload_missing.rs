//! A configuration file that was loaded and is gone by the next SIGHUP is a rejected reload:
//! the agent keeps its thresholds and intervals instead of falling back to built-in defaults.

mod common;

use std::time::{Duration, Instant};

use common::{codex_bin, start_agent, AgentOptions};

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn sighup_with_the_default_config_file_deleted_is_a_rejected_reload() {
    let agent = start_agent(AgentOptions {
        env: vec![("CODEX_EXECUTABLE", codex_bin().display().to_string())],
        config_json: Some(
            r#"{"healthMonitoring": {"checkInterval": 12345, "thresholds": {"minSuccessRate": 42}}}"#
                .into(),
        ),
        ..Default::default()
    });
    std::fs::remove_file(agent.path().join("config/monitoring.json")).unwrap();
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGHUP);
    }
    let series = "codex_sentinel_config_reloads_total{result=\"rejected\"} ";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&agent.get("/metrics").1, series) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "reload not rejected:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = agent.stderr();
    assert!(
        stderr.contains("configuration reload rejected")
            && stderr.contains("config/monitoring.json"),
        "{stderr}"
    );
    let (_, page) = agent.get("/metrics");
    assert_eq!(
        metric(
            &page,
            "codex_sentinel_config_reloads_total{result=\"applied\"} "
        ),
        0.0
    );
}
