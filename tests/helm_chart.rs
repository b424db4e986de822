//! The Helm chart's tests (`tests/helm`, pytest with Helm's own engine, Kubernetes schemas and
//! this crate's binary) as part of `cargo test`. The Python peers come from
//! `scripts/setup.d/30-helm.sh`.

use std::path::Path;
use std::process::Command;

#[test]
fn helm_chart_pytest_suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.d/30-helm.sh (or scripts/test) to install the Helm test peers",
        python.display()
    );
    let output = Command::new(&python)
        .args(["-m", "pytest", "tests/helm", "-q"])
        .current_dir(root)
        // The binary cargo built for this test run: the rendered monitoring.json is judged by
        // exactly this build.
        .env("CODEX_SENTINEL_BIN", env!("CARGO_BIN_EXE_codex-sentinel"))
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // pytest exits 0 when every test passed, 1 on failures, 5 when it collected nothing (a
    // failure too: the suite must not go missing silently).
    let code = output.status.code();
    assert_eq!(
        code,
        Some(0),
        "pytest tests/helm exited {code:?} (5 = no tests collected)\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed"))
        .unwrap_or("");
    let passed: u32 = summary
        .split_whitespace()
        .zip(summary.split_whitespace().skip(1))
        .find(|(_, word)| word.trim_end_matches(',') == "passed")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(passed > 0, "pytest reported no passed tests:\n{stdout}");
    assert!(
        !summary.contains("skipped"),
        "the Helm chart tests must not skip:\n{stdout}"
    );
    println!("tests/helm: {summary}");
}
