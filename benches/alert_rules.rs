//! Cost of one alert evaluation tick: 100 rules over a snapshot with 1,000 failing probe
//! checks, i.e. 1,000 active (firing) series kept by the engine; plus the view published after
//! each tick. Results: docs/PERFORMANCE.md ("Standalone alerting").

use std::sync::Arc;

use codex_sentinel::alerts::engine::{Engine, EngineSettings, EngineState};
use codex_sentinel::alerts::rules::{
    self, builtin_rules, Finding, ProbeFailing, Rule, RuleContext,
};
use codex_sentinel::alerts::{Category, Severity};
use codex_sentinel::config::Config;
use codex_sentinel::monitor::snapshot::{HealthCheck, Snapshot, Status};
use codex_sentinel::monitor::{self, Monitor};
use criterion::{criterion_group, criterion_main, Criterion};

/// A synthetic rule that scans every check (as a real per-check rule would) and fires for
/// checks slower than its threshold: none here, so it costs a scan and raises nothing.
struct SlowCheck(u64);

impl Rule for SlowCheck {
    fn id(&self) -> &'static str {
        "slow-check"
    }
    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        for c in &ctx.snapshot.report.checks {
            if c.duration > self.0 {
                out.push(Finding {
                    key: format!("slow-check:{}:{}", self.0, c.name),
                    rule: "slow-check".into(),
                    severity: Severity::Warning,
                    category: Category::Performance,
                    title: format!("{} slow", c.name),
                    message: String::new(),
                    details: Default::default(),
                    recommendations: vec![],
                    runbook: "x".into(),
                });
            }
        }
    }
}

fn snapshot(now: u64, failing_checks: usize) -> Snapshot {
    let cfg = Arc::new(Config::default());
    let (_, _, dropped) = monitor::channel();
    let base = Monitor::new(cfg.clone(), codex_sentinel::probe_specs(&cfg), dropped).snapshot(now);
    let mut report = base.report.clone();
    report.timestamp = now;
    for i in 0..failing_checks {
        let mut details = serde_json::Map::new();
        details.insert("exitCode".into(), 1.into());
        report.checks.push(HealthCheck {
            name: format!("probe-{i:04}"),
            status: Status::Warning,
            message: "Codex CLI exited with code 1 (expected 0)".into(),
            timestamp: now,
            duration: 120,
            details,
            recommendations: vec!["Run the probe's command by hand".into()],
            raises_alert: true,
        });
    }
    Snapshot::new(report, base.metrics.clone(), vec![], true, 0)
}

/// The built-in rules with `probe-failing` watching the 1,000 probes of [`snapshot`].
fn rules(config: &Config) -> Vec<Box<dyn Rule>> {
    let mut rules = builtin_rules(config);
    rules.retain(|r| r.id() != rules::PROBE_FAILING);
    rules.push(Box::new(ProbeFailing {
        probes: (0..1_000).map(|i| format!("probe-{i:04}")).collect(),
    }));
    let mut t = 10_000;
    while rules.len() < 100 {
        rules.push(Box::new(SlowCheck(t)));
        t += 1;
    }
    rules
}

fn settings() -> EngineSettings {
    let mut config = Config::default();
    config.alerting.max_active_alerts = 2_000;
    config.alerting.hold_evaluations = 1;
    EngineSettings::from_config(&config.alerting)
}

fn bench(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("alert_tick");

    let snap = snapshot(1_000, 1_000);
    let mut engine = Engine::new(settings(), rules(&config), EngineState::default());
    let first = engine.evaluate(&snap, 1_000);
    assert_eq!(first.len(), 1_000, "every failing check fires");
    assert_eq!(engine.view(&[], Default::default()).active.len(), 1_000);
    let mut now = 1_000;
    group.bench_function("100_rules_1000_active_series", |b| {
        b.iter(|| {
            now += 1;
            let out = engine.evaluate(&snap, now);
            assert!(out.is_empty());
        })
    });
    group.bench_function("view_1000_active", |b| {
        b.iter(|| engine.view(&[], Default::default()))
    });

    let quiet = snapshot(1_000, 0);
    let mut engine = Engine::new(settings(), rules(&config), EngineState::default());
    let mut now = 1_000;
    group.bench_function("100_rules_nothing_alerting", |b| {
        b.iter(|| {
            now += 1;
            engine.evaluate(&quiet, now)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
