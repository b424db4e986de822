//! The alert engine's decisions, driven with constructed snapshots and explicit clocks:
//! hysteresis (flapping never notifies), storms with aggregation and maxActiveAlerts, cooldown,
//! maintenance, escalation, persistence across a restart, and the built-in rules' thresholds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use codex_sentinel::alerts::engine::{Engine, EngineSettings, EngineState, INFO_EVENT_TTL_MS};
use codex_sentinel::alerts::rules::{self, builtin_rules, Finding, Rule, RuleContext};
use codex_sentinel::alerts::store::Store;
use codex_sentinel::alerts::{AlertStatus, Category, Notification, Severity, SinkKind};
use codex_sentinel::config::flatten as flatten_config;
use codex_sentinel::config::Config;
use codex_sentinel::monitor::disk::{Directory, DirectoryUsage, DiskSample};
use codex_sentinel::monitor::executions::{Execution, ExecutionBatch, Outcome};
use codex_sentinel::monitor::probes::{Attempt, Ending, ProbeRun};
use codex_sentinel::monitor::resources::ResourceSample;
use codex_sentinel::monitor::snapshot::{HealthCheck, HealthReport, Snapshot, Status};
use codex_sentinel::monitor::{self, Monitor, Observation};
use std::time::Duration;

/// A snapshot as the monitor makes it, changed by `f`, stamped `now`.
fn snapshot(now: u64, f: impl FnOnce(&mut HealthReport)) -> Snapshot {
    let cfg = Arc::new(Config::default());
    let (_, _, dropped) = monitor::channel();
    let base = Monitor::new(cfg.clone(), codex_sentinel::probe_specs(&cfg), dropped).snapshot(now);
    let mut report = base.report.clone();
    report.timestamp = now;
    f(&mut report);
    let mut metrics = base.metrics.clone();
    metrics.timestamp = now;
    Snapshot::new(report, metrics, vec![], true, 0)
}

/// A rule raising `count` warning conditions (`storm:0..count`); `count` changes at will.
struct Storm(Arc<AtomicUsize>, Severity);

impl Rule for Storm {
    fn id(&self) -> &'static str {
        "storm"
    }
    fn evaluate(&self, _ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        for i in 0..self.0.load(Ordering::Relaxed) {
            out.push(finding(&format!("storm:{i:02}"), self.1));
        }
    }
}

fn finding(key: &str, severity: Severity) -> Finding {
    Finding {
        key: key.into(),
        rule: key.split(':').next().unwrap().into(),
        severity,
        category: Category::Resources,
        title: format!("Condition {key}"),
        message: "test condition".into(),
        details: Default::default(),
        recommendations: vec!["do something".into()],
        runbook: "test".into(),
    }
}

fn settings() -> EngineSettings {
    EngineSettings {
        hold: 3,
        clear: 3,
        cooldown: 60_000,
        max_active: 50,
        aggregation_window: None,
        runbook_base: "https://runbooks.example/".into(),
        windows: vec![],
        maintenance_events: true,
    }
}

fn events(ns: &[Notification]) -> Vec<(String, AlertStatus)> {
    ns.iter()
        .flat_map(|n| n.events.iter().map(|e| (e.key.clone(), e.status)))
        .collect()
}

#[test]
fn flapping_condition_never_notifies() {
    let on = Arc::new(AtomicUsize::new(0));
    let mut engine = Engine::new(
        settings(),
        vec![Box::new(Storm(on.clone(), Severity::Critical))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    let mut sent = Vec::new();
    for i in 0..200u64 {
        // on, off, on, off, … and also on, on, off patterns shorter than `hold`
        let state = if i < 100 {
            i % 2
        } else {
            u64::from(i % 3 != 2)
        };
        on.store(state as usize, Ordering::Relaxed);
        sent.extend(engine.evaluate(&snap, i * 1000));
        assert!(
            engine.view(&[], Default::default()).active.is_empty(),
            "fired at {i}"
        );
    }
    assert!(
        sent.is_empty(),
        "flapping produced notifications: {:?}",
        events(&sent)
    );
}

#[test]
fn fires_after_hold_and_resolves_after_clear() {
    let on = Arc::new(AtomicUsize::new(1));
    let mut engine = Engine::new(
        settings(),
        vec![Box::new(Storm(on.clone(), Severity::Critical))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    assert!(engine.evaluate(&snap, 1_000).is_empty());
    assert!(engine.evaluate(&snap, 2_000).is_empty());
    let fired = engine.evaluate(&snap, 3_000);
    assert_eq!(
        events(&fired),
        vec![("storm:00".to_string(), AlertStatus::Firing)]
    );
    let e = &fired[0].events[0];
    assert_eq!(
        e.starts_at, 1_000,
        "startsAt is when the condition was first seen"
    );
    assert_eq!(e.body.runbook, "https://runbooks.example/test");
    assert_eq!(e.body.severity, Severity::Critical);
    // Still holding: no repeats.
    for t in 4..10 {
        assert!(engine.evaluate(&snap, t * 1000).is_empty());
    }
    on.store(0, Ordering::Relaxed);
    assert!(engine.evaluate(&snap, 10_000).is_empty());
    assert!(engine.evaluate(&snap, 11_000).is_empty());
    assert_eq!(
        engine.view(&[], Default::default()).active.len(),
        1,
        "still active until clear"
    );
    let resolved = engine.evaluate(&snap, 12_000);
    assert_eq!(
        events(&resolved),
        vec![("storm:00".to_string(), AlertStatus::Resolved)]
    );
    let r = &resolved[0].events[0];
    assert_eq!(r.ends_at, Some(12_000));
    // Named as when it fired; the status and `details.status` say it ended.
    assert_eq!(r.body.title, "Condition storm:00");
    assert_eq!(r.body.details["status"], "resolved");
    assert!(engine.view(&[], Default::default()).active.is_empty());
}

#[test]
fn storm_with_aggregation_sends_one_notification_per_window_within_max_active() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = settings();
    s.hold = 2;
    s.max_active = 10;
    s.aggregation_window = Some(30_000);
    let mut engine = Engine::new(
        s,
        vec![Box::new(Storm(count.clone(), Severity::Warning))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    count.store(50, Ordering::Relaxed);
    let mut per_window: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut all = Vec::new();
    for t in 0..120u64 {
        let now = t * 1000;
        if t == 70 {
            count.store(0, Ordering::Relaxed); // the storm ends
        }
        let out = engine.evaluate(&snap, now);
        for _ in &out {
            *per_window.entry(now / 30_000).or_default() += 1;
        }
        all.extend(out);
        let view = engine.view(&[], Default::default());
        assert!(
            view.active.len() <= 10,
            "{} active at {now}",
            view.active.len()
        );
        if (2..70).contains(&t) {
            assert_eq!(view.active.len(), 10);
            assert_eq!(view.held_back, 40, "at {now}");
        }
    }
    assert!(per_window.values().all(|n| *n == 1), "{per_window:?}");
    assert_eq!(
        all.len(),
        2,
        "one group when it fired, one when it resolved: {:?}",
        events(&all)
    );
    assert_eq!(all[0].events.len(), 10);
    assert!(all[0]
        .events
        .iter()
        .all(|e| e.status == AlertStatus::Firing));
    // The group was opened at the first event (t=1 s) and sent when the window ended.
    assert_eq!(all[0].created, 31_000);
    // Most severe first, then oldest, then by key: storm:00..09 got the slots.
    let keys: Vec<_> = all[0].events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys[0], "storm:00");
    assert_eq!(all[1].events.len(), 10);
    assert!(all[1]
        .events
        .iter()
        .all(|e| e.status == AlertStatus::Resolved));
}

#[test]
fn cooldown_delays_a_repeat_until_it_ends() {
    let on = Arc::new(AtomicUsize::new(1));
    let mut s = settings();
    s.hold = 1;
    s.clear = 1;
    s.cooldown = 10_000;
    let mut engine = Engine::new(
        s,
        vec![Box::new(Storm(on.clone(), Severity::Warning))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    assert_eq!(engine.evaluate(&snap, 0).len(), 1);
    on.store(0, Ordering::Relaxed);
    assert_eq!(
        events(&engine.evaluate(&snap, 1_000))[0].1,
        AlertStatus::Resolved
    );
    on.store(1, Ordering::Relaxed);
    for t in 2..10 {
        assert!(
            engine.evaluate(&snap, t * 1000).is_empty(),
            "repeat within cooldown at {t}s"
        );
    }
    let v = engine.view(&[], Default::default());
    assert_eq!(v.active.len(), 1);
    assert!(!v.active[0].notified);
    let again = engine.evaluate(&snap, 10_000);
    assert_eq!(
        events(&again),
        vec![("storm:00".to_string(), AlertStatus::Firing)]
    );
}

#[test]
fn escalation_is_notified_at_once() {
    struct Level(Arc<AtomicUsize>);
    impl Rule for Level {
        fn id(&self) -> &'static str {
            "level"
        }
        fn evaluate(&self, _: &RuleContext<'_>, out: &mut Vec<Finding>) {
            let sev = match self.0.load(Ordering::Relaxed) {
                0 => return,
                1 => Severity::Warning,
                _ => Severity::Critical,
            };
            out.push(finding("level", sev));
        }
    }
    let lvl = Arc::new(AtomicUsize::new(1));
    let mut s = settings();
    s.hold = 1;
    let mut engine = Engine::new(
        s,
        vec![Box::new(Level(lvl.clone()))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    assert_eq!(
        engine.evaluate(&snap, 0)[0].events[0].body.severity,
        Severity::Warning
    );
    lvl.store(2, Ordering::Relaxed);
    let up = engine.evaluate(&snap, 1_000);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].events[0].body.severity, Severity::Critical);
    lvl.store(1, Ordering::Relaxed);
    assert!(
        engine.evaluate(&snap, 2_000).is_empty(),
        "de-escalation is not a new notification"
    );
}

#[test]
fn maintenance_silences_new_notifications_but_keeps_state() {
    let count = Arc::new(AtomicUsize::new(1));
    let mut s = settings();
    s.hold = 1;
    s.clear = 1;
    s.cooldown = 0;
    let mut engine = Engine::new(
        s,
        vec![Box::new(Storm(count.clone(), Severity::Critical))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    assert_eq!(engine.evaluate(&snap, 0).len(), 1); // storm:00 notified before maintenance
    let started = engine.start_maintenance(100_000, "upgrade".into(), 1_000);
    assert_eq!(
        events(&started),
        vec![(rules::MAINTENANCE.to_string(), AlertStatus::Firing)]
    );
    assert_eq!(started[0].events[0].body.category, Category::Maintenance);
    count.store(3, Ordering::Relaxed);
    assert!(
        engine.evaluate(&snap, 2_000).is_empty(),
        "new alerts are silenced"
    );
    let v = engine.view(&[], Default::default());
    assert_eq!(
        v.active.len(),
        4,
        "3 storm alerts + the maintenance alert are active"
    );
    assert!(v.maintenance.is_some());
    // storm:00 was notified before: its resolution still goes out.
    count.store(0, Ordering::Relaxed);
    let out = engine.evaluate(&snap, 3_000);
    assert_eq!(
        events(&out),
        vec![("storm:00".to_string(), AlertStatus::Resolved)]
    );
    count.store(3, Ordering::Relaxed);
    engine.evaluate(&snap, 4_000);
    let ended = engine.end_maintenance(5_000);
    assert_eq!(
        events(&ended),
        vec![(rules::MAINTENANCE.to_string(), AlertStatus::Resolved)]
    );
    // Still firing after the window: notified now.
    let after = engine.evaluate(&snap, 6_000);
    let mut keys: Vec<_> = events(&after).into_iter().map(|e| e.0).collect();
    keys.sort();
    assert_eq!(keys, vec!["storm:00", "storm:01", "storm:02"]);
}

#[test]
fn planned_window_from_config() {
    let count = Arc::new(AtomicUsize::new(1));
    let mut s = settings();
    s.hold = 1;
    s.windows = vec![(10_000, 20_000, "planned".into())];
    let mut engine = Engine::new(
        s,
        vec![Box::new(Storm(count, Severity::Critical))],
        EngineState::default(),
    );
    let snap = snapshot(0, |_| {});
    let out = engine.evaluate(&snap, 10_000);
    assert_eq!(
        events(&out),
        vec![(rules::MAINTENANCE.to_string(), AlertStatus::Firing)]
    );
    assert!(engine.evaluate(&snap, 15_000).is_empty());
    let out = engine.evaluate(&snap, 20_000);
    assert_eq!(
        events(&out),
        vec![
            (rules::MAINTENANCE.to_string(), AlertStatus::Resolved),
            ("storm:00".to_string(), AlertStatus::Firing)
        ]
    );
}

#[test]
fn state_and_outbox_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let on = Arc::new(AtomicUsize::new(1));
    let mut s = settings();
    s.hold = 1;
    let sinks = [SinkKind::Webhook, SinkKind::Email];
    {
        let store = Store::open(dir.path(), &Default::default()).unwrap();
        let mut engine = Engine::new(
            s.clone(),
            vec![Box::new(Storm(on.clone(), Severity::Critical))],
            store.engine_state(),
        );
        let out = engine.evaluate(&snapshot(0, |_| {}), 0);
        let queued = store.commit(engine.state(), out, &sinks);
        // Ids are time-ordered (epoch ms × 1000 + sequence) and carry the agent's instance.
        assert!(queued[0].id >= 1_000_000);
        assert_eq!(queued[0].instance.len(), 16);
        store.remove(store.next_for(SinkKind::Webhook).unwrap().id); // webhook delivered
    }
    let store = Store::open(dir.path(), &Default::default()).unwrap();
    let pending = store.outbox();
    assert_eq!(pending.len(), 1, "only the email is still pending");
    assert_eq!(pending[0].sink, SinkKind::Email);
    let mut engine = Engine::new(
        s,
        vec![Box::new(Storm(on, Severity::Critical))],
        store.engine_state(),
    );
    let v = engine.view(&[], Default::default());
    assert_eq!(v.active.len(), 1);
    assert!(v.active[0].notified);
    assert!(
        engine.evaluate(&snapshot(0, |_| {}), 1_000).is_empty(),
        "not re-notified after restart"
    );
    let next = store.commit(
        engine.state(),
        vec![Notification {
            id: 0,
            instance: String::new(),
            created: 1,
            events: vec![],
        }],
        &sinks,
    );
    assert!(
        next[0].id > pending[0].notification.id,
        "ids keep increasing across restarts"
    );
    assert_eq!(
        next[0].instance, pending[0].notification.instance,
        "the instance id is kept in the state directory"
    );
}

#[test]
fn corrupt_state_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
    let store = Store::open(dir.path(), &Default::default()).unwrap();
    assert!(store.outbox().is_empty());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("state.json.corrupt-")),
        "{names:?}"
    );
}

#[test]
fn configuration_change_is_an_info_event() {
    let mut cfg = Config::default();
    let mut engine = Engine::new(settings(), vec![], EngineState::default());
    assert!(
        engine
            .config_changed(flatten_config(&cfg), true, 0)
            .is_empty(),
        "first run records only"
    );
    assert!(
        engine
            .config_changed(flatten_config(&cfg), true, 1)
            .is_empty(),
        "unchanged"
    );
    cfg.health_monitoring.check_interval = 60_000;
    cfg.alerting.webhook.url = Some(codex_sentinel::config::Secret::new(
        "https://hooks.example/T0/SECRET",
    ));
    let out = engine.config_changed(flatten_config(&cfg), true, 2);
    let e = &out[0].events[0];
    assert_eq!(e.body.severity, Severity::Info);
    assert_eq!(e.body.category, Category::Configuration);
    let changes = e.body.details["changes"].as_array().unwrap();
    let keys: Vec<_> = changes.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        vec!["alerting.webhook.url", "healthMonitoring.checkInterval"]
    );
    let text = serde_json::to_string(&out).unwrap();
    assert!(
        !text.contains("SECRET"),
        "secret leaked into an alert: {text}"
    );
}

fn fired(rules: &[Box<dyn Rule>], snap: &Snapshot, now: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in rules {
        r.evaluate(
            &RuleContext {
                snapshot: snap,
                now,
            },
            &mut out,
        );
    }
    out
}

#[test]
fn codex_unavailable_matches_the_specification_example() {
    let rules = builtin_rules(&Config::default());
    let snap = snapshot(5_000, |r| {
        let mut details = serde_json::Map::new();
        details.insert("executable".into(), "codex".into());
        details.insert(
            "error".into(),
            "No such file or directory (os error 2)".into(),
        );
        details.insert("retryCount".into(), 3.into());
        r.checks = vec![HealthCheck {
            name: "codex-availability".into(),
            status: Status::Unavailable,
            message: "Codex CLI executable not found: No such file or directory (os error 2)"
                .into(),
            timestamp: 5_000,
            duration: 5,
            details,
            recommendations: vec![
                "Verify Codex CLI installation".into(),
                "Check PATH environment variable".into(),
                "Restart the service if necessary".into(),
            ],
            raises_alert: true,
        }];
    });
    let found = fired(&rules, &snap, 5_000);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(
        (f.severity, f.category),
        (Severity::Critical, Category::Availability)
    );
    assert_eq!(f.title, "Codex CLI Unavailable");
    let keys: Vec<_> = f.details.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["duration", "error", "executable", "retryCount"]);
    assert_eq!(f.runbook, "codex-cli-unavailable");
    assert_eq!(f.recommendations.len(), 3);
}

/// The monitor of `cfg` after `observations`, snapshot at `now` (its own state directory, no
/// history).
fn monitored(cfg: &Config, now: u64, observations: Vec<Observation>) -> Snapshot {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = cfg.clone();
    cfg.state_dir = state.path().to_path_buf();
    cfg.history.enabled = false;
    let cfg = Arc::new(cfg);
    let (_, _, dropped) = monitor::channel();
    let mut m = Monitor::new(cfg.clone(), codex_sentinel::probe_specs(&cfg), dropped);
    for o in observations {
        m.apply(o);
    }
    m.snapshot(now)
}

/// The monitor stamps executions with the wall clock when it folds them in: the tests that
/// feed it executions take their "now" from the same clock.
fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn probe(name: &str, now: u64, duration_ms: u64, ending: Ending, stdout: &str) -> Observation {
    Observation::Probe {
        run: ProbeRun {
            spec_name: name.into(),
            program: "codex".into(),
            attempts: vec![Attempt {
                started: now,
                duration: Duration::from_millis(duration_ms),
                ending,
                stdout: stdout.into(),
                stderr_tail: String::new(),
                pid: 1,
            }],
        },
        start_delay: Duration::ZERO,
    }
}

/// 100 executions of `ms` each, `failed` of them failures and `timed_out` timeouts.
fn executions(now: u64, ms: f64, failed: usize, timed_out: usize) -> Observation {
    let exec = |outcome| Execution {
        timestamp: now,
        operation: 0,
        duration: ms,
        outcome,
        retry_count: 0,
        queue_wait: None,
        error: None,
    };
    let mut executions: Vec<Execution> = (0..failed).map(|_| exec(Outcome::Failure)).collect();
    executions.extend((0..timed_out).map(|_| exec(Outcome::Timeout)));
    executions.extend((failed + timed_out..100).map(|_| exec(Outcome::Success)));
    Observation::Executions(ExecutionBatch {
        operation_types: vec!["audit".into()],
        executions,
        ..Default::default()
    })
}

fn processes(now: u64, mb: u64, count: u64) -> Observation {
    Observation::Resources(ResourceSample {
        timestamp: now,
        processes: count,
        os_processes: count,
        rss_bytes: mb * 1_048_576,
        ..Default::default()
    })
}

/// The operations-log directory measured at `mib` MiB.
fn disk(now: u64, mib: u64) -> Observation {
    Observation::Disk(DiskSample {
        timestamp: now,
        directories: vec![DirectoryUsage {
            directory: Directory::OperationsLog,
            bytes: mib << 20,
            files: 3,
            truncated: false,
            error: None,
        }],
    })
}

/// Every health check driven to each level it has: the snapshot says that level, and the rules
/// raise exactly one alert, of the rule that owns the check, with that severity and the rule's
/// category, title and runbook — never `probe-failing` for a built-in check.
#[test]
fn every_check_raises_exactly_one_alert_at_its_level() {
    let now = wall_clock();
    let mut cfg = Config::default();
    cfg.operations_log.size_limit = Some(100 << 20);
    cfg.codex.probes = serde_json::from_value(serde_json::json!([
        {"name": "codex-login", "command": ["codex", "login", "status"]},
        {"name": "codex-exec", "command": ["codex", "exec", "hi"], "failureStatus": "critical"}
    ]))
    .unwrap();
    let healthy = || {
        vec![
            probe(
                "codex-availability",
                now,
                50,
                Ending::Exited(0),
                "codex-cli 0.63.0",
            ),
            probe("codex-login", now, 50, Ending::Exited(0), ""),
            probe("codex-exec", now, 50, Ending::Exited(0), ""),
            executions(now, 1_000.0, 0, 0),
            processes(now, 100, 2),
            disk(now, 10),
        ]
    };
    let rules = builtin_rules(&cfg);
    assert!(
        fired(&rules, &monitored(&cfg, now, healthy()), now).is_empty(),
        "a healthy snapshot raises nothing"
    );
    // (what is changed, the check, its status, rule, category, title, runbook)
    type Case = (
        Observation,
        &'static str,
        Status,
        &'static str,
        Category,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            probe(
                "codex-availability",
                now,
                6_000,
                Ending::Exited(0),
                "codex-cli 0.63.0",
            ),
            "codex-availability",
            Status::Warning,
            "codex-unavailable",
            Category::Availability,
            "Codex CLI Unavailable",
            "codex-cli-unavailable",
        ),
        (
            probe("codex-availability", now, 10_000, Ending::TimedOut, ""),
            "codex-availability",
            Status::Critical,
            "codex-unavailable",
            Category::Availability,
            "Codex CLI Unavailable",
            "codex-cli-unavailable",
        ),
        // 3 failed + 3 timed out: 6 % > maxErrorRate 5 % (timeouts count).
        (
            executions(now, 1_000.0, 3, 3),
            "error-rate",
            Status::Warning,
            "failure-rate",
            Category::Reliability,
            "High Codex failure rate",
            "high-failure-rate",
        ),
        // 21 % > 100 − minSuccessRate 80.
        (
            executions(now, 1_000.0, 11, 10),
            "error-rate",
            Status::Critical,
            "failure-rate",
            Category::Reliability,
            "High Codex failure rate",
            "high-failure-rate",
        ),
        (
            executions(now, 31_000.0, 0, 0),
            "execution-time",
            Status::Warning,
            "slow-responses",
            Category::Performance,
            "Slow Codex responses",
            "slow-responses",
        ),
        (
            processes(now, 600, 2),
            "memory-usage",
            Status::Warning,
            "memory-usage",
            Category::Resources,
            "High Codex memory usage",
            "memory-usage",
        ),
        (
            processes(now, 800, 2),
            "memory-usage",
            Status::Critical,
            "memory-usage",
            Category::Resources,
            "High Codex memory usage",
            "memory-usage",
        ),
        (
            processes(now, 100, 11),
            "process-count",
            Status::Warning,
            "process-count",
            Category::Resources,
            "High Codex process count",
            "high-process-count",
        ),
        (
            processes(now, 100, 16),
            "process-count",
            Status::Critical,
            "process-count",
            Category::Resources,
            "High Codex process count",
            "high-process-count",
        ),
        // 85 % of the operations log's 100 MiB > maxDiskUsage 80 %; 97 % > criticalDiskUsage 95 %.
        (
            disk(now, 85),
            "disk-usage",
            Status::Warning,
            "disk-usage",
            Category::Resources,
            "Codex log volume filling up",
            "disk-usage",
        ),
        (
            disk(now, 97),
            "disk-usage",
            Status::Critical,
            "disk-usage",
            Category::Resources,
            "Codex log volume filling up",
            "disk-usage",
        ),
        (
            probe("codex-login", now, 50, Ending::Exited(1), ""),
            "codex-login",
            Status::Warning,
            "probe-failing",
            Category::Availability,
            "Codex probe codex-login failing",
            "codex-probe-failing",
        ),
        (
            probe("codex-exec", now, 50, Ending::Exited(1), ""),
            "codex-exec",
            Status::Critical,
            "probe-failing",
            Category::Availability,
            "Codex probe codex-exec failing",
            "codex-probe-failing",
        ),
    ];
    for (change, check, status, rule, category, title, runbook) in cases {
        let mut obs = healthy();
        obs.push(change);
        // The executions of `healthy()` and of the change share one window: start it afresh.
        if matches!(obs.last(), Some(Observation::Executions(_))) {
            obs.remove(3);
        }
        let snap = monitored(&cfg, now, obs);
        let unhealthy: Vec<_> = snap
            .report
            .checks
            .iter()
            .filter(|c| c.status != Status::Healthy)
            .map(|c| (c.name.as_str(), c.status))
            .collect();
        let expected_checks: Vec<(&str, Status)> = if check == "error-rate" {
            // The success-rate check shows the same verdict from the success side.
            vec![("success-rate", status), ("error-rate", status)]
        } else {
            vec![(check, status)]
        };
        assert_eq!(unhealthy, expected_checks, "{check} at {status:?}");
        assert_eq!(snap.report.overall, status);
        let found = fired(&rules, &snap, now);
        assert_eq!(found.len(), 1, "{check} at {status:?}: {found:#?}");
        let f = &found[0];
        let severity = if status == Status::Warning {
            Severity::Warning
        } else {
            Severity::Critical
        };
        assert_eq!(
            (
                f.rule.as_str(),
                f.severity,
                f.category,
                f.title.as_str(),
                f.runbook.as_str()
            ),
            (rule, severity, category, title, runbook),
            "{check} at {status:?}"
        );
        let c = snap.report.checks.iter().find(|c| c.name == check).unwrap();
        assert_eq!(f.message, c.message, "the alert says what the check says");
        assert!(!f.recommendations.is_empty(), "{check}");
        assert_eq!(f.recommendations, c.recommendations);
    }
}

/// The specification's answer to "High Alert Volume": loosening the health thresholds loosens
/// the failure-rate alert; an alert-specific override wins over both for check and alert.
#[test]
fn health_thresholds_drive_the_failure_rate_alert_unless_overridden() {
    let now = wall_clock();
    let level = |cfg: &Config, failed: usize| {
        let snap = monitored(cfg, now, vec![executions(now, 1_000.0, failed, 0)]);
        let check = snap
            .report
            .checks
            .iter()
            .find(|c| c.name == "error-rate")
            .unwrap()
            .status;
        let alert = fired(&builtin_rules(cfg), &snap, now)
            .into_iter()
            .find(|f| f.rule == "failure-rate")
            .map(|f| f.severity);
        (check, alert)
    };
    let defaults = Config::default();
    assert_eq!(level(&defaults, 5), (Status::Healthy, None));
    assert_eq!(
        level(&defaults, 8),
        (Status::Warning, Some(Severity::Warning))
    );
    assert_eq!(
        level(&defaults, 21),
        (Status::Critical, Some(Severity::Critical))
    );

    let loose = codex_sentinel::cli::load(&codex_sentinel::config::Sources {
        file: None,
        env: [
            ("CODEX_HEALTH_THRESHOLD_SUCCESS_RATE", "85"),
            ("CODEX_HEALTH_THRESHOLD_MAX_ERROR_RATE", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    })
    .unwrap();
    assert_eq!(level(&loose, 8), (Status::Healthy, None));
    assert_eq!(
        level(&loose, 12),
        (Status::Warning, Some(Severity::Warning))
    );
    assert_eq!(
        level(&loose, 16),
        (Status::Critical, Some(Severity::Critical))
    );

    let mut overridden = loose.clone();
    overridden.alerting.rules.failure_rate_warning = Some(20.0);
    overridden.alerting.rules.failure_rate_critical = Some(40.0);
    assert_eq!(level(&overridden, 16), (Status::Healthy, None));
    assert_eq!(
        level(&overridden, 30),
        (Status::Warning, Some(Severity::Warning))
    );
    assert_eq!(
        level(&overridden, 41),
        (Status::Critical, Some(Severity::Critical))
    );
}

/// Rules without a health check compare their own thresholds.
#[test]
fn cpu_queue_and_baseline_rules_follow_their_thresholds() {
    let mut cfg = Config::default();
    cfg.baselines.avg_time = Some(2_500);
    let rules = builtin_rules(&cfg);
    let keys = |snap: &Snapshot| {
        fired(&rules, snap, snap.report.timestamp)
            .into_iter()
            .map(|f| (f.key, f.severity))
            .collect::<Vec<_>>()
    };
    let slow = snapshot(1, |r| {
        let m = &mut r.performance.execution_metrics;
        m.total_executions = 50;
        m.average_execution_time = 3_000.0;
    });
    assert_eq!(
        keys(&slow),
        vec![(
            "performance-degradation:avg-time".to_string(),
            Severity::Info
        )]
    );
    let queue = snapshot(1, |r| {
        r.performance.resource_metrics.queue_metrics.current_size = 25.0
    });
    assert_eq!(
        keys(&queue),
        vec![("queue-backlog".to_string(), Severity::Warning)]
    );
    let cpu = snapshot(1, |r| {
        r.performance.resource_metrics.cpu_usage.current = 95.0
    });
    assert_eq!(
        keys(&cpu),
        vec![("cpu-usage".to_string(), Severity::Warning)]
    );
    // A healthy, fresh snapshot raises nothing.
    assert!(fired(&rules, &snapshot(1, |_| {}), 1).is_empty());
}

/// One alert, one identity: the memory alert warns, escalates to exhaustion and resolves under
/// one title and one fingerprint; an engine that lost its state raises the same fingerprint.
#[test]
fn an_alert_keeps_its_title_and_fingerprint_through_escalation_resolution_and_lost_state() {
    let now = wall_clock();
    let cfg = Config::default();
    let at = |mb: u64| monitored(&cfg, now, vec![processes(now, mb, 1)]);
    let mut s = settings();
    s.hold = 1;
    s.clear = 1;
    let mut engine = Engine::new(s.clone(), builtin_rules(&cfg), EngineState::default());
    let mut sent = Vec::new();
    sent.extend(engine.evaluate(&at(600), now));
    sent.extend(engine.evaluate(&at(800), now + 5_000));
    sent.extend(engine.evaluate(&at(100), now + 10_000));
    let seen: Vec<_> = sent
        .iter()
        .flat_map(|n| &n.events)
        .map(|e| {
            (
                e.status,
                e.body.severity,
                e.body.title.clone(),
                e.body.details["fingerprint"].clone(),
            )
        })
        .collect();
    let fp = serde_json::json!(codex_sentinel::alerts::fingerprint::fingerprint(
        "memory-usage"
    ));
    let title = "High Codex memory usage".to_string();
    assert_eq!(
        seen,
        vec![
            (
                AlertStatus::Firing,
                Severity::Warning,
                title.clone(),
                fp.clone()
            ),
            (
                AlertStatus::Firing,
                Severity::Critical,
                title.clone(),
                fp.clone()
            ),
            (
                AlertStatus::Resolved,
                Severity::Critical,
                title.clone(),
                fp.clone()
            ),
        ]
    );
    assert_eq!(sent[2].events[0].body.details["alertKey"], "memory-usage");
    let mut amnesiac = Engine::new(s, builtin_rules(&cfg), EngineState::default());
    let again = amnesiac.evaluate(&at(800), now + 20_000);
    assert_eq!(again[0].events[0].body.details["fingerprint"], fp);
    assert_eq!(again[0].events[0].fingerprint(), fp.as_str().unwrap());
}

/// An info event without a series (configuration changed) is listed by the endpoints for an
/// hour whether or not a sink exists, then expires; nothing is left pending.
#[test]
fn info_events_are_listed_with_an_expiry_without_any_sink() {
    let mut engine = Engine::new(settings(), vec![], EngineState::default());
    let config = |v: &str| [("healthMonitoring.checkInterval".to_string(), v.to_string())].into();
    assert!(engine
        .config_changed(config("30000"), true, 1_000)
        .is_empty());
    let raised = engine.config_changed(config("10000"), true, 2_000);
    assert_eq!(
        events(&raised),
        vec![("configuration-changed".to_string(), AlertStatus::Firing)]
    );
    let listed = |engine: &Engine| {
        let v = engine.view(&[], Default::default());
        let json = v.to_json();
        assert_eq!(json["pending"], 0, "{json}");
        json["alerts"].as_array().unwrap().clone()
    };
    engine.evaluate(&snapshot(3_000, |_| {}), 3_000);
    let alerts = listed(&engine);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["id"], "configuration-changed");
    assert_eq!(alerts[0]["severity"], "info");
    assert_eq!(alerts[0]["notified"], false, "no sink: nothing was sent");
    assert_eq!(alerts[0]["expiresAt"], 2_000 + INFO_EVENT_TTL_MS);
    engine.evaluate(&snapshot(3_000, |_| {}), 2_000 + INFO_EVENT_TTL_MS - 1);
    assert_eq!(listed(&engine).len(), 1);
    engine.evaluate(&snapshot(3_000, |_| {}), 2_000 + INFO_EVENT_TTL_MS);
    assert!(listed(&engine).is_empty());
}

/// `CODEX_ALERT_DISABLED_RULES=maintenance` is accepted (the id docs/alerting.md lists) and
/// drops the maintenance start/end notifications; the window still silences.
#[test]
fn disabling_the_maintenance_rule_keeps_silencing_without_its_events() {
    let cfg = codex_sentinel::cli::load(&codex_sentinel::config::Sources {
        file: None,
        env: [(
            "CODEX_ALERT_DISABLED_RULES",
            "maintenance,performance-degradation",
        )]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    })
    .expect("maintenance is a known rule id");
    let s = EngineSettings::from_config(&cfg.alerting);
    assert!(!s.maintenance_events);
    let mut engine = Engine::new(s, vec![], EngineState::default());
    assert!(engine
        .start_maintenance(10_000, "deploy".into(), 1_000)
        .is_empty());
    assert!(engine.maintenance().is_some());
    assert!(engine.end_maintenance(2_000).is_empty());
    assert!(engine.maintenance().is_none());
}

#[test]
fn stalled_monitor_is_a_probe_machinery_failure() {
    let rules = builtin_rules(&Config::default());
    let snap = snapshot(1_000, |_| {});
    let found = fired(&rules, &snap, 1_000 + 60_000);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "probe-machinery");
    assert_eq!(found[0].severity, Severity::Critical);
}

#[test]
fn the_outbox_of_a_dead_sink_is_bounded() {
    use codex_sentinel::alerts::store::MAX_PENDING_PER_SINK;
    let store = Store::in_memory();
    let mk = || Notification {
        id: 0,
        instance: String::new(),
        created: 1,
        events: vec![],
    };
    let ns: Vec<Notification> = (0..MAX_PENDING_PER_SINK + 5).map(|_| mk()).collect();
    let (_, dropped) = store.commit_counting(&EngineState::default(), ns, &[SinkKind::Email]);
    assert_eq!(dropped.len(), 5);
    let pending = store.outbox();
    assert_eq!(pending.len(), MAX_PENDING_PER_SINK);
    // Ids increase by one within a commit: number them from the first.
    let first = pending[0].notification.id;
    assert_eq!(
        pending[1].notification.id - first,
        6,
        "the head (possibly mid-send) is kept, the oldest after it were dropped"
    );
}

#[test]
fn a_steady_alert_with_changing_values_does_not_dirty_the_state() {
    struct Ticking;
    impl Rule for Ticking {
        fn id(&self) -> &'static str {
            "ticking"
        }
        fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
            let mut f = finding("ticking", Severity::Warning);
            f.message = format!("value {}", ctx.now);
            out.push(f);
        }
    }
    let mut s = settings();
    s.hold = 2;
    let mut engine = Engine::new(s, vec![Box::new(Ticking)], EngineState::default());
    let snap = snapshot(0, |_| {});
    for t in 0..3 {
        engine.evaluate(&snap, t * 1000);
    }
    let saved = engine.state().clone();
    for t in 3..10 {
        assert!(engine.evaluate(&snap, t * 1000).is_empty());
        assert!(
            engine.state() == &saved,
            "state changed at {t}: a write per tick"
        );
    }
    // The endpoints still show the latest values.
    let v = engine.view(&[], Default::default());
    assert_eq!(v.active[0].body.message, "value 9000");
}

/// The engine tells the monitor what the monitor shows of it (active alerts, maintenance) as
/// an observation on the monitor's queue: once at start, then only when that changed. Steady
/// evaluations send nothing, so the monitor rebuilds no snapshot for them.
#[tokio::test]
async fn the_monitor_hears_of_alerts_only_when_what_it_shows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        state_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    cfg.alerting.enabled = true;
    cfg.alerting.evaluation_interval = 5;
    cfg.alerting.hold_evaluations = 2;
    // Stamped now: a monitor that published recently (an old stamp fires `probe-machinery`,
    // whose snapshot age changes at every evaluation).
    let now = codex_sentinel::util::now_ms();
    let healthy = snapshot(now, |_| {});
    let unavailable = snapshot(now, |r| {
        r.checks = vec![HealthCheck {
            name: "codex-availability".into(),
            status: Status::Unavailable,
            message: "Codex CLI executable not found".into(),
            timestamp: now,
            duration: 5,
            details: Default::default(),
            recommendations: vec![],
            raises_alert: true,
        }];
    });
    let (snapshots_tx, snapshots) = tokio::sync::watch::channel(Arc::new(healthy));
    let (sender, mut rx, _) = monitor::channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let persister = Arc::new(codex_sentinel::statefile::Persister::start());
    let handle = codex_sentinel::alerts::start(
        Arc::new(cfg),
        snapshots,
        None,
        &sender,
        persister,
        shutdown.clone(),
        &mut tasks,
    )
    .unwrap()
    .expect("alerting on");
    // Observations reach the monitor in order; the engine sends its view only after the
    // evaluation that made it, so once evaluation `n + 1` is visible, `n`'s is queued.
    let evaluated = |n: u64| {
        let view = handle.view.clone();
        async move {
            while view.borrow().evaluations <= n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let heard = |rx: &mut tokio::sync::mpsc::Receiver<Observation>| {
        let mut views = Vec::new();
        while let Ok(obs) = rx.try_recv() {
            match obs {
                Observation::Alerts(view) => views.push(view.alerts_json().len()),
                other => panic!("only the engine sends here: {other:?}"),
            }
        }
        views
    };
    evaluated(20).await;
    assert_eq!(
        heard(&mut rx),
        vec![0],
        "the start only, not 20 evaluations"
    );
    let at = handle.view.borrow().evaluations;
    snapshots_tx.send_replace(Arc::new(unavailable));
    evaluated(at + 20).await;
    assert_eq!(heard(&mut rx), vec![1], "one alert fired, told once");
    let at = handle.view.borrow().evaluations;
    snapshots_tx.send_replace(Arc::new(snapshot(now, |_| {})));
    evaluated(at + 20).await;
    assert_eq!(heard(&mut rx), vec![0], "resolved, told once");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
}
