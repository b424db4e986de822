//! The Prometheus alerting rules shipped for platform mode (prometheus/alerts.yml): valid for
//! the real promtool, unit-tested by it (prometheus/alerts.test.yml), and naming the same
//! conditions, severities and titles as the built-in rules.

mod common;

use std::process::Command;

use codex_sentinel::alerts::notify::alertmanager::alert_name;
use codex_sentinel::alerts::rules::CHECK_RULES;

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(common::root().join("prometheus"))
        .output()
        .expect("promtool (Debian package prometheus; installed by scripts/test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 16 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_check_rule_has_its_prometheus_twin() {
    let text = std::fs::read_to_string(common::root().join("prometheus/alerts.yml")).unwrap();
    for r in CHECK_RULES {
        for needle in [
            format!("- alert: {}\n", alert_name(r.id)),
            format!("codex_health_status{{check=\"{}\"}}", r.check),
            format!("rule: {}\n", r.id),
            format!("summary: \"{}\"", r.title),
            format!("category: {}\n", r.category.as_str()),
            format!("#runbook-{}\"", r.runbook),
        ] {
            assert!(text.contains(&needle), "{}: `{needle}` missing", r.id);
        }
    }
}
