//! Old names keep working for a release (`config::renames::RENAMES`): the old name works and is
//! reported once, the new name works silently, `config validate` and `config show` say so.
//! (The start-up warning in the agent's own log is checked in tests/logs.rs.)

mod common;

use std::process::Command;

use codex_sentinel::cli;
use codex_sentinel::config::Sources;

fn sources(file: Option<&std::path::Path>, env: &[(&str, &str)]) -> Sources {
    Sources {
        file: file.map(|p| p.to_path_buf()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn run_cli(args: &[&str], env: &[(&str, &str)], cwd: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(common::agent_bin())
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_old_preset_name_works_and_is_reported_once_wherever_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitoring.json");
    std::fs::write(&file, r#"{"export":{"otlp":{"preset":"datadog-agent"}}}"#).unwrap();

    // In the file and in the environment: used as the new name, said once.
    let loaded = cli::load_all(&sources(
        Some(&file),
        &[("CODEX_OTLP_PRESET", "datadog-agent")],
    ))
    .unwrap();
    assert_eq!(loaded.config.export.otlp.preset.as_deref(), Some("datadog"));
    assert_eq!(loaded.deprecations.len(), 1, "{:?}", loaded.deprecations);
    let said = loaded.deprecations[0].to_string();
    assert!(said.contains("preset `datadog-agent`"), "{said}");
    assert!(said.contains("use `datadog` instead"), "{said}");

    // Only in the file: the warning names the file.
    let loaded = cli::load_all(&sources(Some(&file), &[])).unwrap();
    assert_eq!(loaded.config.export.otlp.preset.as_deref(), Some("datadog"));
    assert_eq!(loaded.deprecations.len(), 1);
    assert!(
        loaded.deprecations[0]
            .source
            .contains(&file.display().to_string()),
        "{}",
        loaded.deprecations[0]
    );

    // The new name: nothing to say.
    let loaded = cli::load_all(&sources(None, &[("CODEX_OTLP_PRESET", "datadog")])).unwrap();
    assert_eq!(loaded.config.export.otlp.preset.as_deref(), Some("datadog"));
    assert!(loaded.deprecations.is_empty(), "{:?}", loaded.deprecations);
}

#[test]
fn config_validate_prints_the_deprecation_and_still_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_cli(
        &["config", "validate"],
        &[("CODEX_OTLP_PRESET", "datadog-agent")],
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "configuration is valid");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].starts_with("codex-sentinel: warning: preset `datadog-agent` (environment variable CODEX_OTLP_PRESET) is deprecated"),
        "{stderr}"
    );

    let (code, _, stderr) = run_cli(
        &["config", "validate"],
        &[("CODEX_OTLP_PRESET", "datadog")],
        dir.path(),
    );
    assert_eq!((code, stderr.as_str()), (0, ""));

    // An unknown preset is still an error naming the variable and the accepted names.
    let (code, _, stderr) = run_cli(
        &["config", "validate"],
        &[("CODEX_OTLP_PRESET", "datadog-agnet")],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("CODEX_OTLP_PRESET")
            && stderr.contains("collector, newrelic, newrelic-eu, datadog"),
        "{stderr}"
    );
}

#[test]
fn config_show_shows_the_new_name_and_where_the_old_one_was() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_cli(
        &["config", "show", "--format", "json"],
        &[("CODEX_OTLP_PRESET", "datadog-agent")],
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["export.otlp.preset"]["value"], "datadog");
    assert_eq!(
        shown["export.otlp.preset"]["source"],
        "environment variable CODEX_OTLP_PRESET (deprecated name `datadog-agent`)"
    );
}
