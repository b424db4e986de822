//! Reading the agent's state files so that a damaged one never stops the agent.
//!
//! Every file under `stateDir` is written atomically (temp file, fsync, rename), but a file
//! can still be damaged: a disk that filled up, a kill -9 on a filesystem without ordered
//! renames, a hand edit. Such a file is moved aside to `<name>.corrupt-<epoch ms>` (kept for a
//! post-mortem, never overwritten), reported once — error log, `errors-*.log` line, the
//! `codex_sentinel_state_files_recovered_total{kind}` counter and a recommendation in
//! `/health/codex` — and the agent starts that part with fresh state.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::catalog;
use crate::monitor::Telemetry;

/// Reads and parses `path`. Missing: `Ok(None)`. Unparsable (corrupt, truncated, empty, not
/// UTF-8): moved aside, reported, `Ok(None)`. Unreadable for another reason (permissions):
/// `Err`, since moving it would not help and the operator must fix the directory.
pub fn load_json<T: DeserializeOwned>(
    path: &Path,
    kind: &'static str,
    telemetry: &Telemetry,
) -> Result<Option<T>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            quarantine(path, kind, &describe(&e, bytes.len()), telemetry);
            Ok(None)
        }
    }
}

fn describe(e: &serde_json::Error, len: usize) -> String {
    if len == 0 {
        "empty file".into()
    } else if e.is_eof() {
        format!("truncated after {len} bytes ({e})")
    } else {
        e.to_string()
    }
}

/// Moves a damaged state file aside and reports it.
pub fn quarantine(path: &Path, kind: &'static str, error: &str, telemetry: &Telemetry) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let stamp = crate::util::now_ms();
    let mut moved_to = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut n = 1;
    while moved_to.exists() {
        moved_to = path.with_file_name(format!("{name}.corrupt-{stamp}-{n}"));
        n += 1;
    }
    let moved = std::fs::rename(path, &moved_to);
    match &moved {
        Ok(()) => {
            tracing::error!(kind, file = %path.display(), moved_to = %moved_to.display(), error, "state file corrupt: moved aside, starting this part with fresh state")
        }
        Err(e) => {
            tracing::error!(kind, file = %path.display(), error, rename_error = %crate::logging::error_chain(&e), "state file corrupt and cannot be moved aside: it will be overwritten with fresh state")
        }
    }
    telemetry.error(
        "state",
        &format!("state file {} corrupt: {error}", path.display()),
        serde_json::json!({ "kind": kind, "file": path, "movedTo": moved.is_ok().then_some(&moved_to) }),
    );
    telemetry.add(&catalog::STATE_FILES_RECOVERED, &[kind], 1);
    telemetry.recommend(format!(
        "State file {} was corrupt ({}); moved to {} and started fresh: inspect it, then delete it",
        path.display(),
        error,
        moved_to.display()
    ));
}

/// Publishes `codex_sentinel_state_files_recovered_total{kind}` for every kind, zero included.
pub fn declare(telemetry: &Telemetry) {
    for kind in KINDS {
        telemetry.declare(&catalog::STATE_FILES_RECOVERED, &[kind]);
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content:
/// temporary file, fsync, rename, fsync of the directory (where the filesystem allows it).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Every kind of state file the agent keeps.
pub const KINDS: &[&str] = &["alerts", "oplog", "history"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_moved_aside_and_missing_ones_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.json");
        let t = Telemetry::default();
        assert_eq!(
            load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
            None
        );
        for bad in [&b""[..], b"{\"a\": [1, 2", b"\xff\xfe", b"{} trailing"] {
            std::fs::write(&f, bad).unwrap();
            assert_eq!(
                load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
                None
            );
            assert!(!f.exists(), "moved aside");
        }
        assert_eq!(t.get(&catalog::STATE_FILES_RECOVERED, &["history"]), 4);
        assert_eq!(t.recommendations().len(), 4);
        let aside = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(aside >= 1);
        std::fs::write(&f, b"{\"a\": 1}").unwrap();
        assert_eq!(
            load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
            Some(serde_json::json!({"a": 1}))
        );
    }
}
