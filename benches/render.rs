//! Cost of rendering the endpoints' bodies from a snapshot. Each snapshot renders each body
//! once (then serves the cached bytes), so this is the per-publication cost, not per request.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use codex_sentinel::config::{Config, ExtraProbe};
use codex_sentinel::export::prometheus;
use codex_sentinel::monitor::{self, Monitor, Observation};
use codex_sentinel::sources::probe::{Attempt, Ending, ProbeRun};

/// A monitor that has seen probe runs of every probe, the availability one with retries.
fn busy_monitor() -> Monitor {
    let mut config = Config::default();
    for i in 0..3 {
        config.codex.probes.push(ExtraProbe {
            name: format!("deep-{i}"),
            command: vec!["codex".into(), "exec".into()],
            timeout: None,
            interval: None,
            expected_exit_code: 0,
            failure_status: "warning".into(),
        });
    }
    let specs = codex_sentinel::probe_specs(&config);
    let (_tx, _rx, dropped) = monitor::channel();
    let mut m = Monitor::new(Arc::new(config), specs.clone(), dropped);
    for (n, spec) in specs.iter().enumerate().cycle().take(400) {
        let attempt = |ms: u64, ending: Ending| Attempt {
            started: 1_700_000_000_000 + n as u64 * 1000,
            duration: Duration::from_millis(ms),
            ending,
            stdout: "codex-cli 0.171.0\n".into(),
            stderr_tail: String::new(),
            pid: 42,
        };
        let attempts = if n % 7 == 0 {
            vec![
                attempt(900, Ending::Exited(1)),
                attempt(120, Ending::Exited(0)),
            ]
        } else {
            vec![attempt(80 + n as u64 % 300, Ending::Exited(0))]
        };
        m.apply(Observation::Probe {
            run: ProbeRun {
                spec_name: spec.name.clone(),
                program: spec.program.clone(),
                attempts,
            },
            start_delay: Duration::from_millis(1),
        });
    }
    m
}

fn render(c: &mut Criterion) {
    let monitor = busy_monitor();
    c.bench_function("snapshot build", |b| {
        b.iter(|| monitor.snapshot(1_700_000_500_000))
    });
    c.bench_function("render /health/codex", |b| {
        b.iter_batched(
            || monitor.snapshot(1),
            |s| s.health_json(),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("render /health/codex/status", |b| {
        b.iter_batched(
            || monitor.snapshot(1),
            |s| s.status_json(),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("render /metrics (text 0.0.4)", |b| {
        b.iter_batched(
            || monitor.snapshot(1),
            |s| prometheus::exposition(&s, false),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("serve cached /metrics body", |b| {
        let s = monitor.snapshot(1);
        prometheus::exposition(&s, false);
        b.iter(|| prometheus::exposition(&s, false))
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
