//! Deep probes with the application's identity (the chart's `codexHome`): the application logs
//! Codex in (`codex login --with-api-key`, offline), the agent mounts that Codex home read-only
//! and runs `codex login status` as a deeper probe. With the real Codex CLI:
//! - as the application's user, with every file and directory of the home read-only, the probe
//!   is healthy: Codex needs no write access to its home for it;
//! - as another user (the agent image's 65532) it cannot read `auth.json` (mode 0600) and the
//!   probe fails (exit 1, "Not logged in"): why the chart runs the agent as the application's
//!   user.
//!
//! Needs root (to act as two users), as the pod test does.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{agent_bin, root};

/// The application's user in the chart's example (the node image's "node" user).
const APP_UID: u32 = 1000;
/// The agent image's own user.
const AGENT_UID: u32 = 65532;

/// The static Codex binary of npm's package (what the pod's images hold), copied to `dir` with
/// mode 0755: both users must be able to run it, whatever mode the shared install has.
fn static_codex(dir: &Path) -> PathBuf {
    let p = root().join(
        ".tools/codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
    );
    assert!(
        p.exists(),
        "{} missing: run scripts/setup.d/10-codex.sh",
        p.display()
    );
    let copy = dir.join("codex");
    std::fs::copy(&p, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn chown_r(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file 0400, every directory 0500: what a read-only mount leaves the owner.
fn make_read_only(path: &Path) {
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            make_read_only(&p);
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o500)).unwrap();
}

/// `codex-sentinel check --format json` as `uid`, with the deeper probe `codex login status`.
fn check_as(
    uid: u32,
    codex: &Path,
    codex_home: &Path,
    work: &Path,
) -> (Option<i32>, serde_json::Value) {
    let config = serde_json::json!({
        "codex": {
            "executable": codex,
            "probes": [{"name": "codex-login", "command": [codex, "login", "status"], "failureStatus": "critical"}]
        },
        "processes": {"enabled": false},
        "operationsLog": {"enabled": false},
        "stateDir": work.join("state"),
        "auditLog": {"enabled": false}
    });
    std::fs::write(work.join("monitoring.json"), config.to_string()).unwrap();
    // Seen here: the copy's mode had become 0400 after the login ran (as had the shared
    // install's); set it again right before both users run it.
    std::fs::set_permissions(codex, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(work, uid);
    let mut cmd = Command::new(agent_bin());
    cmd.args(["--config"])
        .arg(work.join("monitoring.json"))
        .args(["check", "--format", "json"])
        .current_dir(work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", work)
        .env("CODEX_HOME", codex_home)
        .stdin(Stdio::null())
        .uid(uid)
        .gid(uid);
    let out = cmd.output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn login_check(report: &serde_json::Value) -> (String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "codex-login")
        .unwrap_or_else(|| panic!("no codex-login check: {report}"));
    (
        c["status"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn login_status_reads_a_read_only_home_as_the_applications_user_only() {
    // Not under /tmp: Codex refuses to create its helpers there (a warning).
    let base = tempfile::tempdir_in(root().join("target")).unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let codex = static_codex(base.path());
    let home = base.path().join("codex-home");
    std::fs::create_dir(&home).unwrap();
    // The application logs in, as the application's user.
    let mut login = Command::new(&codex)
        .args(["login", "--with-api-key"])
        .env("CODEX_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), b"sk-test-not-a-real-key\n").unwrap();
    drop(login.stdin.take());
    assert!(login.wait().unwrap().success());
    let auth = std::fs::metadata(home.join("auth.json")).unwrap();
    assert_eq!(auth.permissions().mode() & 0o777, 0o600);
    chown_r(&home, APP_UID);
    make_read_only(&home);

    let work = base.path().join("as-app");
    std::fs::create_dir(&work).unwrap();
    let (code, report) = check_as(APP_UID, &codex, &home, &work);
    assert_eq!(login_check(&report).0, "healthy", "{report}");
    assert_eq!(code, Some(0), "{report}");
    // Nothing was written into the read-only home (it would have failed anyway).
    assert_eq!(
        std::fs::metadata(&home).unwrap().permissions().mode() & 0o777,
        0o500
    );

    let work = base.path().join("as-agent-user");
    std::fs::create_dir(&work).unwrap();
    let (_, report) = check_as(AGENT_UID, &codex, &home, &work);
    let (status, message) = login_check(&report);
    assert_eq!(status, "critical", "{report}");
    // `codex login status` exits 1 ("Not logged in") when it cannot read auth.json.
    assert!(message.contains("exited with code 1"), "{message}");
}
