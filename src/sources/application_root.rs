//! Codex from the application's image without copying it (`codex.executableIn: application`).
//!
//! In a pod with `shareProcessNamespace: true` the agent sees the application's processes, and
//! `/proc/<pid>/root` of such a process is the application container's root filesystem as that
//! process sees it. Running `/proc/<pid>/root/<path>` runs the application's own Codex binary:
//! no copy, no init container, no version drift. The kernel allows the lookup when the agent may
//! read the process in the ptrace sense (same user, no capability the agent lacks): the agent
//! must run as the application's user. CAP_SYS_PTRACE would do too, but Pod Security's
//! "baseline" and "restricted" profiles forbid it. The binary must be static (npm's Codex
//! ships a static musl binary): a dynamic one would look for its loader in the agent's root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The path of `path` (absolute, in the application's image) in the root filesystem of an
/// application process: the lowest-numbered process of this PID namespace whose root is not
/// the agent's own and holds `path` as a file. On failure, a message naming `path` and why.
pub fn find(path: &str) -> Result<PathBuf, String> {
    find_in(Path::new("/proc"), path)
}

fn find_in(proc: &Path, path: &str) -> Result<PathBuf, String> {
    let relative = path.trim_start_matches('/');
    // Processes sharing the agent's root (its probes, the agent itself) are not the application.
    let own_root = std::fs::metadata(proc.join("self/root"))
        .map(|m| (m.dev(), m.ino()))
        .map_err(|e| format!("{path}: cannot read {}/self/root: {e}", proc.display()))?;
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .map_err(|e| format!("{path}: cannot list {}: {e}", proc.display()))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut denied = 0usize;
    let mut without: Vec<String> = Vec::new();
    for pid in pids {
        let root = proc.join(pid.to_string()).join("root");
        match std::fs::metadata(&root) {
            Ok(m) if (m.dev(), m.ino()) == own_root => continue,
            Ok(_) => {}
            // Another user's process (the pod's pause process, a container of another user).
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied += 1;
                continue;
            }
            // Exited while listed.
            Err(_) => continue,
        }
        let candidate = root.join(relative);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
        if without.len() < 3 {
            let comm = std::fs::read_to_string(proc.join(pid.to_string()).join("comm"))
                .unwrap_or_default();
            without.push(format!("{pid} ({})", comm.trim()));
        }
    }
    if !without.is_empty() {
        return Err(format!(
            "{path} is not in the root filesystem of the application processes {} \
             (codex.executable must be the static Codex binary's path in the application's image)",
            without.join(", ")
        ));
    }
    Err(if denied == 0 {
        format!(
            "{path}: no application process to find it in: the agent sees no other process (the \
             pod needs shareProcessNamespace, and the application must have started)"
        )
    } else {
        format!(
            "{path}: no application process to find it in: the {denied} other processes the agent \
             sees belong to another user (the agent must run as the application's user)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake /proc: `self/root` and each pid's `root` are directories (or links to them), as
    /// the kernel's magic links resolve.
    fn fake_proc(dir: &Path, own: &Path, pids: &[(u32, &Path, &str)]) -> PathBuf {
        let proc = dir.join("proc");
        std::fs::create_dir_all(proc.join("self")).unwrap();
        symlink(own, proc.join("self/root")).unwrap();
        for (pid, root, comm) in pids {
            let d = proc.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            symlink(root, d.join("root")).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        }
        proc
    }

    fn image(dir: &Path, name: &str, with_codex: bool) -> PathBuf {
        let root = dir.join(name);
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        if with_codex {
            std::fs::write(root.join("usr/local/bin/codex"), b"\x7fELF").unwrap();
        }
        root
    }

    #[test]
    fn the_lowest_application_process_holding_the_path_wins_and_the_agents_own_root_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let agent = image(dir.path(), "agent", true);
        let sidecar = image(dir.path(), "other-sidecar", false);
        let app = image(dir.path(), "app", true);
        let proc = fake_proc(
            dir.path(),
            &agent,
            &[
                (3, &agent, "codex-sentinel"),
                (5, &sidecar, "envoy"),
                (9, &app, "sh"),
                (12, &app, "codex"),
            ],
        );
        let found = find_in(&proc, "/usr/local/bin/codex").unwrap();
        assert_eq!(found, proc.join("9/root/usr/local/bin/codex"));
    }

    #[test]
    fn a_missing_path_is_named_with_the_processes_searched() {
        let dir = tempfile::tempdir().unwrap();
        let agent = image(dir.path(), "agent", false);
        let app = image(dir.path(), "app", false);
        let proc = fake_proc(dir.path(), &agent, &[(7, &app, "workload")]);
        let err = find_in(&proc, "/opt/codex/bin/codex").unwrap_err();
        assert!(
            err.starts_with("/opt/codex/bin/codex is not in the root filesystem"),
            "{err}"
        );
        assert!(err.contains("7 (workload)"), "{err}");
    }

    #[test]
    fn no_application_process_says_so_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let agent = image(dir.path(), "agent", true);
        let proc = fake_proc(dir.path(), &agent, &[(1, &agent, "codex-sentinel")]);
        let err = find_in(&proc, "/usr/local/bin/codex").unwrap_err();
        assert!(
            err.starts_with("/usr/local/bin/codex: no application process"),
            "{err}"
        );
        assert!(err.contains("shareProcessNamespace"), "{err}");
    }
}
