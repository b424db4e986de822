//! A malformed header list (`OTEL_EXPORTER_OTLP_HEADERS`, `CODEX_ALERT_WEBHOOK_HEADERS`) is
//! rejected by `config validate`, `config show` and `run` alike, exit 2, and nothing after the
//! separator the user got wrong is echoed: that part is usually the secret.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent_bin;

/// Runs the agent with `args` and one variable set; returns (exit code, stdout + stderr).
fn run(args: &[&str], var: &str, value: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(agent_bin())
        .current_dir(dir.path())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_HEALTH_PORT", "0")
        .env(var, value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `run` with a valid configuration would keep running: bound the wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn malformed_header_lists_are_rejected_everywhere_without_echoing_the_secret() {
    let cases = [
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key:S3CRET-VALUE"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-team=a,api-key S3CRET-VALUE",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "=S3CRET-VALUE"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=S3CRET\nVALUE"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=S3CRET%0AVALUE"),
        ("CODEX_ALERT_WEBHOOK_HEADERS", "X-Api-Key:S3CRET-VALUE"),
    ];
    for (var, value) in cases {
        for args in [
            &["config", "validate"][..],
            &["config", "show"][..],
            &["run"][..],
        ] {
            let (code, out) = run(args, var, value);
            assert_eq!(code, Some(2), "{args:?} {var}={value:?}: {out}");
            assert!(
                out.contains(var),
                "{args:?} {var}={value:?} names the variable: {out}"
            );
            for secret in ["S3CRET", "VALUE"] {
                assert!(
                    !out.contains(secret),
                    "{args:?} {var}={value:?} echoed the secret: {out}"
                );
            }
        }
    }
}

#[test]
fn well_formed_header_lists_still_pass() {
    let (code, out) = run(
        &["config", "validate"],
        "OTEL_EXPORTER_OTLP_HEADERS",
        "api-key=S3CRET-VALUE, x-team=a%3Db",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("S3CRET"), "{out}");
}
