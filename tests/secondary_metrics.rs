//! The specification's secondary metrics on the agent's own endpoints: the application's queue
//! and retries (from the operations log) and the log directories' disk usage and growth, by
//! value, in `/metrics` and `/health/codex`, with the bytes checked against GNU `du` and the
//! `disk-usage` check driven from healthy to warning by a file written into the volume. The
//! other paths: `tests/statsd.rs` (Etsy StatsD) and `tests/collector.rs` (OpenTelemetry
//! Collector).

mod common;

use std::time::{Duration, Instant};

use common::collector::sample_value;
use common::{codex_bin, du_bytes, start_agent, write_queued_operations, Agent, AgentOptions};

/// 128 KiB: the operations-log volume's size limit in these tests.
const LIMIT: u64 = 128 * 1024;

fn agent() -> Agent {
    start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true".into()),
            ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "128Ki".into()),
            ("CODEX_DISK_USAGE_INTERVAL", "100".into()),
            ("CODEX_DISK_USAGE_GROWTH_WINDOW", "400".into()),
        ],
        ..Default::default()
    })
}

fn oplog_series<'a>() -> [(&'a str, &'a str); 1] {
    [("directory", "operations_log")]
}

/// Polls `/metrics` until `pred` holds for the page (the event that proves the point).
fn wait_metrics(agent: &Agent, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = agent.get("/metrics");
        if pred(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never seen in /metrics:\n{page}\nagent:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_carry_the_application_queue_retries_and_log_volume_usage() {
    let agent = agent();
    let oplog = agent.path().join("logs/codex");
    // Eight executions that each waited 3 s in the application's queue; two were retried.
    write_queued_operations(agent.path(), &[3000; 8], 2);
    let page = wait_metrics(&agent, "the queued executions, measured at rest", |p| {
        sample_value(p, "codex_operations_queue_wait_seconds", &[]) == Some(3.0)
            && sample_value(p, "codex_logs_growth_rate_bytes_per_hour", &oplog_series())
                == Some(0.0)
            && sample_value(p, "codex_logs_disk_usage_bytes", &oplog_series())
                == Some(du_bytes(&oplog) as f64)
    });
    assert_eq!(
        sample_value(&page, "codex_operations_retry_rate", &[]),
        Some(0.25)
    );
    // Queue size: the same Little's-law number as the JSON's queueMetrics.currentSize (one
    // snapshot renders both; fetched a moment apart they agree once no snapshot falls between).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = agent.get_json("/health/codex/metrics");
        let (_, page) = agent.get("/metrics");
        let (_, again) = agent.get_json("/health/codex/metrics");
        let json = &metrics["performance"]["resourceMetrics"]["queueMetrics"];
        if metrics["timestamp"] == again["timestamp"] {
            assert_eq!(
                sample_value(&page, "codex_operations_queue_size", &[]),
                json["currentSize"].as_f64()
            );
            assert_eq!(json["averageWaitTime"], 3000.0);
            assert_eq!(
                metrics["performance"]["reliabilityMetrics"]["retryRate"],
                25.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no two reads within one snapshot"
        );
    }
    // Named apart from the agent's own notification queue.
    assert!(!page.contains("codex_operations_notifications"));
    assert_eq!(
        sample_value(&page, "codex_logs_size_limit_bytes", &oplog_series()),
        Some(LIMIT as f64)
    );
    // The audit directory is measured too (no limit set: not judged).
    assert!(
        sample_value(
            &page,
            "codex_logs_disk_usage_bytes",
            &[("directory", "audit_log")]
        )
        .is_some(),
        "{page}"
    );
    assert_eq!(
        sample_value(
            &page,
            "codex_logs_size_limit_bytes",
            &[("directory", "audit_log")]
        ),
        None
    );
    let (_, health) = agent.get_json("/health/codex");
    let check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "disk-usage")
        .unwrap_or_else(|| panic!("no disk-usage check: {health}"))
        .clone();
    assert_eq!(check["status"], "healthy", "{check}");
    assert_eq!(check["details"]["operations_log"]["sizeLimit"], LIMIT);
    assert!(check["details"].get("audit_log").is_none(), "{check}");

    // The application fills the volume: 110,000 bytes more put it above 80 % of 128 KiB.
    std::fs::write(
        oplog.join("codex-operations-archive.jsonl.1"),
        vec![b'x'; 110_000],
    )
    .unwrap();
    let used = du_bytes(&oplog);
    assert!(
        used * 100 > LIMIT * 80 && used * 100 < LIMIT * 95,
        "{used} bytes"
    );
    let health = agent.wait_json("/health/codex", Duration::from_secs(30), |h| {
        h["checks"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["name"] == "disk-usage" && c["status"] == "warning")
        })
    });
    let check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "disk-usage")
        .unwrap();
    let message = check["message"].as_str().unwrap();
    assert!(
        message.starts_with("Log directory filling up: operations log uses"),
        "{message}"
    );
    assert_eq!(health["overall"], "warning", "{health}");
    let page = wait_metrics(&agent, "the grown directory", |p| {
        sample_value(p, "codex_logs_disk_usage_bytes", &oplog_series()) == Some(used as f64)
    });
    assert_eq!(
        sample_value(&page, "codex_health_status", &[("check", "disk-usage")]),
        Some(1.0)
    );
}
