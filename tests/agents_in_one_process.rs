//! Two agents started in one process share nothing: what one counts of itself (configuration
//! reloads, audit-log lines) never shows in the other's snapshots.

use std::sync::Arc;
use std::time::Duration;

use codex_sentinel::catalog::{self, MetricDef};
use codex_sentinel::config::{Config, ConfigError};
use codex_sentinel::monitor::snapshot::{SampleValue, Snapshot};
use codex_sentinel::reload::Outcome;
use tokio::sync::watch;

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.health_monitoring.enabled = false;
    c.health_monitoring.endpoints.enabled = false;
    c.processes.enabled = false;
    c.operations_log.enabled = false;
    c.state_dir = dir.join("state");
    c.audit_log.enabled = true;
    c.audit_log.dir = dir.join("audit");
    c
}

fn counter(snap: &Snapshot, def: &'static MetricDef, labels: &[&str]) -> f64 {
    let sample = snap
        .samples
        .iter()
        .find(|s| s.def.name == def.name && s.labels.iter().eq(labels.iter()))
        .unwrap_or_else(|| panic!("no sample {}{labels:?}", def.name));
    match sample.value {
        SampleValue::Counter(v) => v,
        ref other => panic!("{} is not a counter: {other:?}", def.name),
    }
}

/// The `errors-<day>.log` files under the agent's audit directory.
fn error_files(dir: &std::path::Path) -> usize {
    match std::fs::read_dir(dir.join("audit")) {
        Ok(entries) => entries
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("errors-")
            })
            .count(),
        Err(_) => 0,
    }
}

/// Waits for a published snapshot that satisfies `ok`.
async fn wait_for(
    snapshots: &mut watch::Receiver<Arc<Snapshot>>,
    ok: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let snap = snapshots.borrow_and_update().clone();
            if ok(&snap) {
                return snap;
            }
            snapshots.changed().await.expect("the monitor publishes");
        }
    })
    .await
    .expect("the snapshot came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_in_one_process_count_apart() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = codex_sentinel::start(config(dir_a.path())).await.unwrap();
    let b = codex_sentinel::start(config(dir_b.path())).await.unwrap();
    let rejected = |s: &Snapshot| counter(s, &catalog::CONFIG_RELOADS, &["rejected"]);
    let errors_written =
        |s: &Snapshot| counter(s, &catalog::AUDIT_LOG_LINES, &["errors", "written"]);

    let outcome = a.reload(Err(ConfigError("bad value".into())), "test");
    assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
    // A counts its rejected reload and writes its errors line (on its own writer thread).
    let mut a_snapshots = a.snapshots.clone();
    wait_for(&mut a_snapshots, |s| {
        rejected(s) == 1.0 && errors_written(s) == 1.0
    })
    .await;
    assert_eq!(error_files(dir_a.path()), 1, "A wrote errors-<day>.log");

    // B publishes again after that (its tick), still at zero: nothing reached it.
    let mut b_snapshots = b.snapshots.clone();
    let before = b_snapshots.borrow_and_update().report.timestamp;
    let later = wait_for(&mut b_snapshots, |s| s.report.timestamp > before).await;
    assert_eq!(rejected(&later), 0.0);
    assert_eq!(errors_written(&later), 0.0);
    assert_eq!(error_files(dir_b.path()), 0, "B wrote no errors line");
    a.stop().await;
    b.stop().await;
}
