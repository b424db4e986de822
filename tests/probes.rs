//! Probes against the real Codex CLI and against stand-ins for failures it cannot show on demand.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{codex_bin, fixtures_bin, start_agent, AgentOptions};
use serde_json::Value;

fn availability(report: &Value) -> &Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "codex-availability")
        .expect("availability check present")
}

fn first_probe_done(report: &Value) -> bool {
    report["checks"].as_array().is_some_and(|c| {
        c.iter().any(|c| {
            c["name"] == "codex-availability"
                && c["message"] != "Waiting for the first availability probe"
        })
    })
}

fn stub(name: &str) -> String {
    fixtures_bin().join(name).to_string_lossy().into_owned()
}

#[test]
fn real_codex_cli_is_healthy_and_its_version_is_reported() {
    let codex = codex_bin();
    let out = Command::new(&codex).arg("--version").output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let expected = printed.split_whitespace().last().unwrap().to_string();
    assert!(
        expected.chars().next().unwrap().is_ascii_digit(),
        "{printed}"
    );

    let agent = start_agent(AgentOptions {
        env: vec![("CODEX_EXECUTABLE", codex.to_string_lossy().into_owned())],
        ..Default::default()
    });
    let report = agent.wait_json("/health/codex", Duration::from_secs(20), first_probe_done);
    let check = availability(&report);
    assert_eq!(report["overall"], "healthy", "{report}");
    assert_eq!(check["status"], "healthy");
    assert_eq!(check["message"], "Codex CLI is available and responding");
    assert_eq!(check["details"]["version"], expected.as_str());
    assert_eq!(check["details"]["retryCount"], 0);
    assert!(check["duration"].as_u64().unwrap() > 0);
    let (code, status) = agent.get_json("/health/codex/status");
    assert_eq!(code, 200);
    assert_eq!(status["status"], "healthy");
    assert_eq!(status["codexAvailable"], true);
    let (_, metrics) = agent.get("/metrics");
    assert!(metrics.contains("codex_availability_status 1"), "{metrics}");
    assert!(
        metrics
            .contains(r#"codex_probe_runs_total{probe="codex-availability",result="success"} 1"#),
        "{metrics}"
    );
}

#[test]
fn check_command_exit_codes_follow_the_nagios_convention() {
    let codex = codex_bin().to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (codex.as_str(), 0, "HEALTHY"),
        (&*stub("codex-garbage"), 1, "WARNING"),
        (&*stub("codex-exit1"), 2, "CRITICAL"),
        ("/nonexistent/codex", 3, "UNAVAILABLE"),
    ];
    for (exe, code, word) in cases {
        let out = Command::new(common::agent_bin())
            .arg("check")
            .current_dir(dir.path())
            .env("CODEX_EXECUTABLE", exe)
            .env("CODEX_HEALTH_CHECK_TIMEOUT", "5000")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{exe}: {stdout}");
        assert!(stdout.starts_with(word), "{exe}: {stdout}");
    }
    let out = Command::new(common::agent_bin())
        .args(["check", "--format", "json"])
        .current_dir(dir.path())
        .env("CODEX_EXECUTABLE", "/nonexistent/codex")
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["overall"], "unavailable");
}

#[test]
fn missing_executable_is_unavailable_with_the_specifications_recommendations() {
    let agent = start_agent(AgentOptions {
        env: vec![("CODEX_EXECUTABLE", "codex-not-installed-here".into())],
        ..Default::default()
    });
    let report = agent.wait_json("/health/codex", Duration::from_secs(10), first_probe_done);
    assert_eq!(report["overall"], "unavailable");
    let check = availability(&report);
    assert_eq!(
        check["details"]["error"],
        "spawn codex-not-installed-here ENOENT"
    );
    assert_eq!(check["details"]["executable"], "codex-not-installed-here");
    let recs: Vec<&str> = report["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for r in [
        "Verify Codex CLI installation",
        "Check PATH environment variable",
        "Restart the service if necessary",
    ] {
        assert!(recs.contains(&r), "{recs:?}");
    }
    let (code, status) = agent.get_json("/health/codex/status");
    assert_eq!(code, 503);
    assert_eq!(status["status"], "unavailable");
    assert_eq!(status["codexAvailable"], false);
    assert_eq!(agent.get("/health/codex").0, 503);
    // The agent itself stays alive and ready: a broken Codex never restarts the sidecar.
    assert_eq!(agent.get("/livez").0, 200);
    assert_eq!(agent.get("/readyz").0, 200);
    let (_, metrics) = agent.get("/metrics");
    assert!(metrics.contains("codex_availability_status 0"), "{metrics}");
    assert!(
        metrics.contains(r#"codex_probe_runs_total{probe="codex-availability",result="error"} 1"#)
    );
}

#[test]
fn failing_executable_is_critical_with_exit_code_and_stderr() {
    let agent = start_agent(AgentOptions {
        env: vec![("CODEX_EXECUTABLE", stub("codex-exit1"))],
        ..Default::default()
    });
    let report = agent.wait_json("/health/codex", Duration::from_secs(10), first_probe_done);
    assert_eq!(report["overall"], "critical");
    let check = availability(&report);
    assert_eq!(check["details"]["exitCode"], 1);
    assert_eq!(
        check["details"]["stderr"],
        "error: something broke in the CLI"
    );
    assert_eq!(
        check["message"],
        "Codex CLI exited with code 1 (expected 0)"
    );
    assert_eq!(agent.get("/health/codex/status").0, 503);
}

#[test]
fn garbage_output_is_a_warning_and_still_available() {
    let agent = start_agent(AgentOptions {
        env: vec![("CODEX_EXECUTABLE", stub("codex-garbage"))],
        ..Default::default()
    });
    let report = agent.wait_json("/health/codex", Duration::from_secs(10), first_probe_done);
    assert_eq!(report["overall"], "warning");
    let check = availability(&report);
    assert!(check["details"].get("version").is_none());
    assert!(check["details"]["output"]
        .as_str()
        .unwrap()
        .contains("garbage output"));
    let (code, status) = agent.get_json("/health/codex/status");
    assert_eq!(code, 200, "warning still serves 200");
    assert_eq!(status["codexAvailable"], true);
}

#[test]
fn slow_but_within_timeout_is_measured_and_judged_against_the_threshold() {
    for (threshold, expected) in [("5000", "healthy"), ("100", "warning")] {
        let agent = start_agent(AgentOptions {
            env: vec![
                ("CODEX_EXECUTABLE", stub("codex-slow")),
                ("CODEX_STUB_DELAY", "0.4".into()),
                ("CODEX_HEALTH_CHECK_TIMEOUT", "5000".into()),
                (
                    "CODEX_HEALTH_THRESHOLD_AVAILABILITY_TIMEOUT",
                    threshold.into(),
                ),
            ],
            ..Default::default()
        });
        let report = agent.wait_json("/health/codex", Duration::from_secs(10), first_probe_done);
        let check = availability(&report);
        assert_eq!(check["status"], expected, "{report}");
        assert_eq!(check["details"]["version"], "9.9.9");
        let ms = check["duration"].as_u64().unwrap();
        assert!((400..5000).contains(&ms), "duration {ms}");
        if expected == "warning" {
            assert!(check["message"]
                .as_str()
                .unwrap()
                .starts_with("Codex CLI is responding slowly"));
        }
    }
}

#[test]
fn retries_are_attempted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("calls");
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", stub("codex-flaky")),
            ("CODEX_STUB_COUNTER", counter.to_string_lossy().into_owned()),
            ("CODEX_STUB_FAILS", "2".into()),
            ("CODEX_HEALTH_CHECK_RETRIES", "3".into()),
            ("CODEX_HEALTH_CHECK_RETRY_DELAY", "50".into()),
        ],
        ..Default::default()
    });
    let report = agent.wait_json("/health/codex", Duration::from_secs(10), first_probe_done);
    let check = availability(&report);
    assert_eq!(check["status"], "healthy", "{report}");
    assert_eq!(check["details"]["retryCount"], 2);
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains(r#"codex_probe_retries_total{probe="codex-availability"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"codex_probe_duration_seconds_count{probe="codex-availability"} 3"#),
        "{metrics}"
    );
}

/// (pid, process group) of processes whose command line contains `needle`.
fn pids_with_cmdline(needle: &str) -> Vec<(i32, i32)> {
    common::pids_with_cmdline(needle)
        .into_iter()
        .map(|pid| (pid, unsafe { libc::getpgid(pid) }))
        .collect()
}

/// Children of `ppid` that are zombies.
fn zombie_children(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f[0] == "Z" && f[1].parse::<i32>().ok() == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Watches a hanging probe through several timeouts; every process group it made must be gone.
fn assert_groups_killed(agent: &common::Agent, needle: &str, runs: u64, check_name: &str) {
    let mut groups = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (_, pgid) in pids_with_cmdline(needle) {
            if pgid > 0 {
                groups.insert(pgid);
            }
        }
        let (_, m) = agent.get_json("/health/codex/metrics");
        let timeouts = m["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == check_name)
            .map_or(0, |p| p["timeouts"].as_u64().unwrap());
        if timeouts >= runs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {timeouts} timeouts: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!groups.is_empty(), "never saw the hanging probe running");
    // Give the last kill a moment to be reaped, then nothing of any group may remain.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<i32> = groups
            .iter()
            .flat_map(|g| common::processes_in_group(*g))
            .collect();
        let zombies = zombie_children(agent.child.id() as i32);
        if left.is_empty() && zombies.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {left:?}, zombies: {zombies:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hanging_probe_is_timed_out_and_its_whole_process_group_killed_every_time() {
    // A private copy so that its command line identifies this test's probes only.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("codex-hang-private");
    std::fs::copy(fixtures_bin().join("codex-hang"), &exe).unwrap();
    let exe_s = exe.to_string_lossy().into_owned();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", exe_s.clone()),
            ("CODEX_HEALTH_CHECK_TIMEOUT", "300".into()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "400".into()),
        ],
        ..Default::default()
    });
    assert_groups_killed(&agent, &exe_s, 4, "codex-availability");
    let (_, report) = agent.get_json("/health/codex");
    let check = availability(&report);
    assert_eq!(check["status"], "critical");
    assert_eq!(check["details"]["timedOut"], true);
    assert_eq!(check["details"]["timeout"], 300);
    assert!(check["duration"].as_u64().unwrap() >= 300);
}

#[test]
fn real_codex_exec_as_a_deep_probe_times_out_and_leaves_nothing_behind() {
    let codex = codex_bin().to_string_lossy().into_owned();
    let marker = format!("codex-sentinel-deep-probe-{}", std::process::id());
    let config = serde_json::json!({
        "healthMonitoring": { "checkInterval": 60000 },
        "codex": {
            "executable": codex,
            "probes": [{
                "name": "codex-exec",
                "command": [codex, "exec", "--skip-git-repo-check", marker],
                "timeout": 4000,
                "interval": 4500
            }]
        }
    });
    let agent = start_agent(AgentOptions {
        config_json: Some(config.to_string()),
        ..Default::default()
    });
    assert_groups_killed(&agent, &marker, 2, "codex-exec");
    let (code, report) = agent.get_json("/health/codex");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "codex-exec")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "warning", "{report}");
    assert_eq!(check["details"]["timedOut"], true);
    assert_eq!(report["overall"], "warning");
    assert_eq!(code, 200);
    assert_eq!(availability(&report)["status"], "healthy");
}
