//! Learned baselines reach the alert rules (performance-degradation, slow-responses) through the
//! configuration the agent runs with, and an explicit `CODEX_PERF_BASELINE_*` value always wins.

use std::sync::Arc;

use codex_sentinel::alerts::rules::{builtin_rules, Finding, Rule, RuleContext};
use codex_sentinel::cli;
use codex_sentinel::config::{Config, Sources};
use codex_sentinel::monitor::executions::sketch::Sketch;
use codex_sentinel::monitor::executions::{Execution, ExecutionBatch, Outcome};
use codex_sentinel::monitor::history::{apply_learned, Hour};
use codex_sentinel::monitor::snapshot::Snapshot;
use codex_sentinel::monitor::{self, Monitor, Observation};

const T0: u64 = 1_764_115_200_000;
const DAY: u64 = 86_400_000;

/// One day of history: 200 executions of 1,000 ms, all successful.
fn history() -> Vec<Hour> {
    let mut durations = Sketch::default();
    for _ in 0..200 {
        durations.record(1_000.0);
    }
    vec![Hour {
        start: T0,
        executions: 200,
        successes: 200,
        duration_sum: 200_000.0,
        duration_max: 1_000.0,
        durations,
        ..Default::default()
    }]
}

fn config(env: &[(&str, &str)]) -> Config {
    cli::load(&Sources {
        file: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .unwrap()
}

/// Executions three times slower than the history, as the monitor judges them.
fn slow_snapshot(cfg: &Arc<Config>) -> Snapshot {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = (**cfg).clone();
    cfg.state_dir = state.path().to_path_buf();
    cfg.history.enabled = false;
    let cfg = Arc::new(cfg);
    let (_, _, dropped) = monitor::channel();
    let mut m = Monitor::new(cfg.clone(), codex_sentinel::probe_specs(&cfg), dropped);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let slow = Execution {
        timestamp: now,
        operation: 0,
        duration: 3_000.0,
        outcome: Outcome::Success,
        retry_count: 0,
        queue_wait: None,
        error: None,
    };
    m.apply(Observation::Executions(ExecutionBatch {
        operation_types: vec!["audit".into()],
        executions: vec![slow; 50],
        ..Default::default()
    }));
    m.snapshot(now)
}

fn fired(cfg: Config) -> Vec<String> {
    let cfg = Arc::new(apply_learned(cfg, &history(), T0 + DAY));
    let rules: Vec<Box<dyn Rule>> = builtin_rules(&cfg);
    let snap = slow_snapshot(&cfg);
    let mut out: Vec<Finding> = Vec::new();
    for r in &rules {
        r.evaluate(
            &RuleContext {
                snapshot: &snap,
                now: T0 + DAY,
            },
            &mut out,
        );
    }
    let mut keys: Vec<String> = out.into_iter().map(|f| f.key).collect();
    keys.sort();
    keys
}

#[test]
fn learned_baselines_drive_the_rules_and_explicit_values_win() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    // Not learning: no baselines, nothing about degradation.
    let off = fired(config(&[]));
    assert!(
        !off.iter().any(|k| k.starts_with("performance-degradation")),
        "{off:?}"
    );

    let learn = [
        ("CODEX_PERF_BASELINE_LEARN", "true"),
        ("CODEX_PERF_BASELINE_LEARNING_DAYS", "1"),
    ];
    let cfg = apply_learned(config(&learn), &history(), T0 + DAY);
    assert_eq!(cfg.baselines.avg_time, Some(1_000));
    assert_eq!(cfg.baselines.success_rate, Some(100.0));
    let on = fired(config(&learn));
    assert!(
        on.contains(&"performance-degradation:avg-time".to_string()),
        "{on:?}"
    );
    assert!(on.contains(&"slow-responses".to_string()), "{on:?}");

    // An explicit value wins over the learned one.
    let mut explicit = learn.to_vec();
    explicit.push(("CODEX_PERF_BASELINE_AVG_TIME", "5000"));
    let cfg = apply_learned(config(&explicit), &history(), T0 + DAY);
    assert_eq!(cfg.baselines.avg_time, Some(5_000));
    assert_eq!(
        cfg.baselines.p95_time.map(|v| v.abs_diff(1_000) <= 5),
        Some(true)
    );
    let with_explicit = fired(config(&explicit));
    assert!(
        !with_explicit.contains(&"performance-degradation:avg-time".to_string()),
        "{with_explicit:?}"
    );
}
