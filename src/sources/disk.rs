//! The disk-usage sampler: bytes used by the operations-log and audit directories, measured by
//! walking them — `statvfs` on an emptyDir answers for the node's whole disk, not the volume.
//!
//! Cost model: every `diskUsage.sampleInterval` (default 60 s) one walk per directory on the
//! blocking pool (`spawn_blocking`: never on an async worker), reading one `lstat` per entry and
//! at most `diskUsage.maxEntries` entries per directory; a directory with more is reported with
//! the bytes counted so far and `truncated`. Bytes are allocated blocks (`st_blocks × 512`), as
//! `du` and the kubelet's emptyDir accounting count them; a file with several hard links counts
//! once; symbolic links are not followed.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::monitor::disk::{Directory, DirectoryUsage, DiskSample};
use crate::monitor::{Observation, ObservationSender};
use crate::util::now_ms;

/// The directories to measure under a configuration, with their size limits.
pub fn directories(config: &Config) -> Vec<(Directory, PathBuf)> {
    let mut out = Vec::new();
    if config.operations_log.enabled {
        out.push((Directory::OperationsLog, config.operations_log.dir.clone()));
    }
    if config.audit_log.enabled {
        out.push((Directory::AuditLog, config.audit_log.dir.clone()));
    }
    out
}

/// Walks `root` (not following symbolic links), reading at most `max_entries` entries.
pub fn measure(directory: Directory, root: &Path, max_entries: u64) -> DirectoryUsage {
    let mut usage = DirectoryUsage {
        directory,
        bytes: 0,
        files: 0,
        truncated: false,
        error: None,
    };
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        // Not made yet (no operation logged, audit files off until the first line): empty.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return usage,
        Err(e) => {
            usage.error = Some(format!("{}: {e}", root.display()));
            return usage;
        }
    };
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let mut entries = 1u64;
    usage.bytes += meta.blocks() * 512;
    let mut pending = vec![root.to_path_buf()];
    'walk: while let Some(dir) = pending.pop() {
        let list = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            // Deleted between listing and reading (rotation): nothing to count.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                usage.error.get_or_insert(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for entry in list {
            if entries >= max_entries {
                usage.truncated = true;
                break 'walk;
            }
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            entries += 1;
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            usage.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                usage.files += 1;
            }
        }
    }
    usage
}

/// Measures every directory once, on the blocking pool. `None` when nothing is measured
/// (disk usage off, or neither log enabled) or the walk panicked.
pub async fn sample_once(config: &Config) -> Option<DiskSample> {
    let dirs = directories(config);
    if !config.disk_usage.enabled || dirs.is_empty() {
        return None;
    }
    let max_entries = config.disk_usage.max_entries;
    tokio::task::spawn_blocking(move || measure_all(&dirs, max_entries))
        .await
        .ok()
}

fn measure_all(dirs: &[(Directory, PathBuf)], max_entries: u64) -> DiskSample {
    DiskSample {
        timestamp: now_ms(),
        directories: dirs
            .iter()
            .map(|(d, path)| measure(*d, path, max_entries))
            .collect(),
    }
}

/// Measures every directory each `diskUsage.sampleInterval` until shutdown, the first time at
/// once, and sends the sample to the monitor.
pub async fn run(config: Arc<Config>, sender: ObservationSender, shutdown: CancellationToken) {
    let dirs = directories(&config);
    if dirs.is_empty() {
        return;
    }
    let max_entries = config.disk_usage.max_entries;
    let mut last_errors: Vec<Option<String>> = vec![None; dirs.len()];
    let mut ticks = tokio::time::interval(Duration::from_millis(config.disk_usage.sample_interval));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let dirs = dirs.clone();
        let walk = tokio::task::spawn_blocking(move || measure_all(&dirs, max_entries));
        let sample = tokio::select! {
            s = walk => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "disk usage walk failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        // Logged when a directory becomes unreadable and when it recovers, not every sample.
        for (d, last) in sample.directories.iter().zip(last_errors.iter_mut()) {
            if d.error != *last {
                match &d.error {
                    Some(e) => {
                        tracing::warn!(directory = d.directory.label(), error = %e, "disk usage: part of the directory cannot be read; its bytes are not counted")
                    }
                    None => tracing::info!(
                        directory = d.directory.label(),
                        "disk usage: the directory can be read again"
                    ),
                }
                last.clone_from(&d.error);
            }
        }
        sender.send(Observation::Disk(sample));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_empty_and_the_walk_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let missing = measure(Directory::AuditLog, &dir.path().join("nope"), 100);
        assert_eq!(
            (missing.bytes, missing.files, missing.truncated),
            (0, 0, false)
        );
        assert!(missing.error.is_none());
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), [b'x'; 5000]).unwrap();
        }
        let all = measure(Directory::AuditLog, dir.path(), 1000);
        assert_eq!((all.files, all.truncated), (20, false));
        let part = measure(Directory::AuditLog, dir.path(), 5);
        assert!(part.truncated);
        assert_eq!(part.files, 4, "the root and four files: five entries");
        assert!(part.bytes < all.bytes);
    }

    #[test]
    fn hard_links_count_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![b'x'; 40_000]).unwrap();
        let one = measure(Directory::OperationsLog, dir.path(), 100).bytes;
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        let linked = measure(Directory::OperationsLog, dir.path(), 100);
        assert_eq!(linked.bytes, one);
    }
}
