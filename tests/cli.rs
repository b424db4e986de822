//! The command line as an operator reads it: each subcommand's help describes its own options,
//! `check` tells what it is doing while it retries and how long it really took, its advice fits
//! the configuration, and a failed `baseline save` says why.

mod alerts_support;
mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alerts_support::{Answer, Receiver};
use common::{agent_bin, codex_bin, fixtures_bin, free_port};

fn run(args: &[&str], env: &[(&str, String)]) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(agent_bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let out = cmd.output().unwrap();
    (out, t0.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The help text of the `--format` option (from its line to the next option).
fn format_help(args: &[&str]) -> String {
    let (out, _) = run(args, &[]);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    let help = text(&out.stdout);
    let start = help
        .find("--format")
        .unwrap_or_else(|| panic!("{args:?}: no --format in\n{help}"));
    let rest = &help[start..];
    let end = rest[2..].find("\n  -").map_or(rest.len(), |i| i + 2);
    rest[..end].to_string()
}

#[test]
fn each_subcommand_describes_its_own_format_option() {
    let check = format_help(&["check", "--help"]);
    assert!(check.contains("/health/codex"), "{check}");
    assert!(check.contains("recommendations"), "{check}");
    let baseline = format_help(&["baseline", "show", "--help"]);
    assert!(
        baseline.contains("explicit, learned and effective"),
        "{baseline}"
    );
    let config = format_help(&["config", "show", "--help"]);
    assert!(config.contains("key = value"), "{config}");
    let report = format_help(&["report", "--help"]);
    assert!(report.contains("Markdown"), "{report}");
    for (name, help) in [
        ("check", &check),
        ("baseline show", &baseline),
        ("report", &report),
    ] {
        assert!(
            !help.contains("key = value") && !help.contains("\"source\""),
            "{name} --help describes config show's output:\n{help}"
        );
    }
    let (out, _) = run(&["baseline", "save", "--help"], &[]);
    let save = text(&out.stdout);
    assert!(save.contains("YYYY-MM-DD.json"), "{save}");
    assert!(save.contains("http://127.0.0.1:3000"), "{save}");
}

/// A `check` whose attempts all time out: a stand-in that never answers (the real CLI cannot
/// be made to hang on demand).
fn hanging_check(retries: u32) -> (Output, Duration) {
    run(
        &["check"],
        &[
            (
                "CODEX_EXECUTABLE",
                fixtures_bin().join("codex-hang").display().to_string(),
            ),
            ("CODEX_HEALTH_CHECK_TIMEOUT", "300".into()),
            ("CODEX_HEALTH_CHECK_RETRIES", retries.to_string()),
            ("CODEX_HEALTH_CHECK_RETRY_DELAY", "200".into()),
        ],
    )
}

/// The number in `"<prefix><digits> ms"`.
fn ms_after(text: &str, prefix: &str) -> u64 {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"));
    text[at + prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn check_reports_each_attempt_on_stderr_and_the_true_durations() {
    let (out, wall) = hanging_check(2);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("codex-availability: attempt"))
        .collect();
    assert_eq!(progress.len(), 3, "{stderr}");
    for (i, line) in progress.iter().enumerate() {
        let n = i + 1;
        assert!(
            line.starts_with(&format!(
                "codex-availability: attempt {n} of 3 timed out after "
            )),
            "{line}"
        );
        let ms = ms_after(line, "timed out after ");
        assert!((300..2000).contains(&ms), "{line}");
        assert_eq!(line.ends_with("; retrying in 200 ms"), n < 3, "{line}");
    }
    // Three attempts of 300 ms and two waits of 200 ms: at least 1300 ms, not one attempt's.
    let check_ms = ms_after(&stdout, "its process group was killed (");
    assert!(stdout.contains("ms, 3 attempts)"), "{stdout}");
    let total = ms_after(&stdout, "total: ");
    assert!(check_ms >= 1300, "{stdout}");
    assert!(total >= check_ms, "{stdout}");
    assert!(
        total as u128 <= wall.as_millis(),
        "{stdout} (wall {wall:?})"
    );
    // Retries are on: the advice is not to turn them on.
    assert!(!stdout.contains("Enable retries"), "{stdout}");
    assert!(
        stdout.contains("Retries are on (CODEX_HEALTH_CHECK_RETRIES=2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Increase CODEX_HEALTH_CHECK_TIMEOUT (now 300 ms)"),
        "{stdout}"
    );
}

#[test]
fn check_without_retries_suggests_them_and_a_healthy_check_says_one_attempt() {
    let (out, _) = hanging_check(0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Enable retries with CODEX_HEALTH_CHECK_RETRIES"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("codex-availability: attempt 1 of 1 timed out after "),
        "{}",
        text(&out.stderr)
    );

    let (out, _) = run(
        &["check"],
        &[("CODEX_EXECUTABLE", codex_bin().display().to_string())],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("codex-availability: attempt 1 of 1 exited with code 0 after "),
        "{stderr}"
    );
    assert!(!stdout.contains("attempts)"), "{stdout}");
    assert!(stdout.contains("total: "), "{stdout}");
}

#[test]
fn baseline_save_says_why_it_failed_without_the_query_string() {
    let closed = free_port();
    let (out, _) = run(
        &[
            "baseline",
            "save",
            "--url",
            &format!("http://127.0.0.1:{closed}/?token=baseline-secret"),
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("baseline-secret"), "{stderr}");

    let agent = Receiver::start();
    agent.set_default(Answer::Body(404, "no such path: try /health/codex"));
    let (out, _) = run(&["baseline", "save", "--url", &agent.url("")], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 404 Not Found: no such path: try /health/codex"),
        "{stderr}"
    );
}

/// `check` judges the log volumes as the running agent does: one walk of the operations-log
/// directory against its size limit (usage only: one sample has no growth rate).
#[test]
fn check_judges_the_log_volume_against_its_size_limit() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("codex-operations-2026-01-01.jsonl"),
        vec![b'x'; 40_000],
    )
    .unwrap();
    let env = |limit: &str| {
        vec![
            ("ENABLE_CODEX_HEALTH_MONITORING", "false".to_string()),
            (
                "CODEX_OPERATIONS_LOG_DIR",
                logs.path().display().to_string(),
            ),
            ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", limit.to_string()),
        ]
    };
    let disk_check = |out: &Output| -> serde_json::Value {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "disk-usage")
            .unwrap_or_else(|| panic!("no disk-usage check: {report}"))
            .clone()
    };
    // 40,000 bytes (at least 40 KiB in blocks) over a 32 KiB limit: critical, exit 2.
    let (out, _) = run(&["check", "--format", "json"], &env("32Ki"));
    let check = disk_check(&out);
    assert_eq!(check["status"], "critical", "{check}");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(check["details"]["operations_log"]["sizeLimit"], 32 * 1024);
    // The same directory under 1 MiB: healthy, exit 0.
    let (out, _) = run(&["check", "--format", "json"], &env("1Mi"));
    assert_eq!(disk_check(&out)["status"], "healthy");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
