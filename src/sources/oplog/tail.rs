//! Following the operations-log files: discovery, rotation, truncation, positions.
//!
//! Files are identified by device and inode, never by name, so a rename (logrotate's default
//! `create` mode, or a day rollover) keeps its position, and an open descriptor keeps reading
//! a renamed or deleted file to its end. What was already read is fingerprinted (a hash of its
//! first KiB): a file that shrank or whose first bytes changed was truncated (logrotate's
//! `copytruncate`) or replaced; the lines between the position and the truncation are then
//! taken from the rotated copy (a sibling file with the same first bytes), and the file is read
//! again from its start. Compressed rotated files (`.gz`, …) are never read.
//!
//! Which files are read on first sight:
//! - with a checkpoint: positions resume; a dated file not in the checkpoint appeared while the
//!   agent was down and is read whole;
//! - without one (first start): the newest dated file from its end (or whole with backfill);
//!   older and rotated files are taken as already read;
//! - later: a new dated file is read whole; a new rotated name is a copy or an old file and is
//!   only used to recover lines around a truncation.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::parse::{parse_line, LineResult};
use super::throttle::Throttle;
pub use crate::monitor::executions::FileCursor;
use crate::monitor::executions::{
    Execution, ExecutionBatch, Outcome, ERROR_TEXT_LIMIT, UNKNOWN_OPERATION_TYPE,
};

/// Longest line accepted; longer ones are skipped without being held (counted `too_long`).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Bytes read per system call (at least one whole line of the maximum length).
const CHUNK_BYTES: usize = MAX_LINE_BYTES;
/// Bytes processed per poll before handing a batch over (bounds a batch's memory).
pub const POLL_BUDGET_BYTES: u64 = 4 << 20;
/// Bytes of a file's start that identify its content.
const FINGERPRINT_BYTES: u64 = 1024;
/// A file that is no longer the newest and has not grown for this long is closed (it is
/// reopened by name if it grows again).
const IDLE_CLOSE: Duration = Duration::from_secs(5);
/// A deleted file is drained through its descriptor for this long after its last growth.
const DELETED_GRACE: Duration = Duration::from_secs(2);
/// Positions of forgotten files kept in case they come back.
const FORGOTTEN_KEPT: usize = 64;
/// Operation types per batch; further ones are sent as "other" (the monitor bounds them too).
const MAX_BATCH_TYPES: usize = 64;
/// Longest operation type kept (longer names are cut).
pub const OPERATION_TYPE_LIMIT: usize = 64;
/// Names of compressed files that are never read.
const COMPRESSED_SUFFIXES: &[&str] = &[".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip"];

/// Where to look and how to start.
#[derive(Debug, Clone)]
pub struct TailConfig {
    pub dir: PathBuf,
    /// File name parts around `YYYY-MM-DD`.
    pub prefix: String,
    pub suffix: String,
    pub backfill: bool,
}

impl TailConfig {
    pub fn new(dir: PathBuf, pattern: &str, backfill: bool) -> Self {
        let (prefix, suffix) = pattern.split_once("YYYY-MM-DD").unwrap_or((pattern, ""));
        TailConfig {
            dir,
            prefix: prefix.into(),
            suffix: suffix.into(),
            backfill,
        }
    }

    /// The date of a dated (active) file name, e.g. `2026-11-26`.
    fn date_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        let date = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let b = date.as_bytes();
        let ok = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        ok.then_some(date)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    dated: bool,
    dev: u64,
    ino: u64,
    size: u64,
}

#[derive(Debug)]
struct Tracked {
    cursor: FileCursor,
    file: Option<File>,
    /// The name is a dated one (not a rotated sibling).
    dated: bool,
    /// Not in the directory any more (deleted, or compressed away).
    gone: bool,
    /// Seen under another name than at the previous poll.
    renamed: bool,
    last_growth: Instant,
}

/// What one poll produced.
#[derive(Debug)]
pub struct PollOutput {
    /// `None` when nothing changed.
    pub batch: Option<ExecutionBatch>,
    /// The budget ran out before the end: poll again at once.
    pub more: bool,
}

/// The reader's state between polls. Synchronous: the task runs [`Tailer::poll`] on the
/// blocking pool.
pub struct Tailer {
    cfg: TailConfig,
    tracked: Vec<Tracked>,
    /// No checkpoint was found: the first poll decides where to start.
    fresh: bool,
    first_poll_done: bool,
    buf: Vec<u8>,
    throttle: Throttle,
    last_sent_cursors: Option<Vec<FileCursor>>,
    dir_existed: Option<bool>,
    /// The monotonic time of the current poll: idle close and the deleted-file grace are
    /// measured on it, so tests can drive them without waiting.
    clock: Instant,
    /// Files that disappeared and were forgotten, newest last (at most [`FORGOTTEN_KEPT`]): a
    /// directory moved away and back, or a file renamed out of the pattern and back, is the
    /// same file again and continues where it was instead of being read twice.
    forgotten: std::collections::VecDeque<FileCursor>,
}

/// Accumulates one batch.
struct BatchBuilder {
    batch: ExecutionBatch,
    now: u64,
}

impl BatchBuilder {
    fn type_index(&mut self, name: Option<&str>) -> u16 {
        let name = name.unwrap_or(UNKNOWN_OPERATION_TYPE);
        let name = cut(name, OPERATION_TYPE_LIMIT);
        let types = &mut self.batch.operation_types;
        if let Some(i) = types.iter().position(|t| t == name) {
            return i as u16;
        }
        let name = if types.len() >= MAX_BATCH_TYPES - 1 {
            crate::monitor::executions::OTHER_OPERATION_TYPE
        } else {
            name
        };
        if let Some(i) = types.iter().position(|t| t == name) {
            return i as u16;
        }
        types.push(name.to_string());
        (types.len() - 1) as u16
    }

    fn line(&mut self, line: &[u8]) {
        match parse_line(line) {
            Ok(p) => {
                let operation = self.type_index(p.operation_type.as_deref());
                let outcome = Outcome::from_flags(p.success, p.timed_out);
                let error = if outcome == Outcome::Success {
                    None
                } else {
                    p.error.as_deref().map(|e| cut(e, ERROR_TEXT_LIMIT).into())
                };
                self.batch.executions.push(Execution {
                    timestamp: p.timestamp.unwrap_or(self.now),
                    operation,
                    duration: p.duration,
                    outcome,
                    retry_count: p.retry_count,
                    queue_wait: p.queue_wait,
                    error,
                });
                self.batch.lines[LineResult::Ok.index()] += 1;
            }
            Err(r) => self.batch.lines[r.index()] += 1,
        }
    }

    fn error(&mut self, kind: &'static str) {
        match self.batch.read_errors.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.batch.read_errors.push((kind, 1)),
        }
    }

    fn is_empty(&self) -> bool {
        self.batch.executions.is_empty()
            && self.batch.lines.iter().all(|n| *n == 0)
            && self.batch.read_errors.is_empty()
    }
}

/// At most `max` bytes, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// FNV-1a, 64 bit: stable across versions and platforms (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn read_exact_at(file: &File, len: u64, at: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, at)?;
    Ok(buf)
}

/// Hash of a file's first `len` bytes (`None` if it has fewer).
fn fingerprint(file: &File, len: u64) -> Option<u64> {
    if len == 0 {
        return Some(fnv1a(&[]));
    }
    read_exact_at(file, len, 0).ok().map(|b| fnv1a(&b))
}

impl Tailer {
    /// A tailer resuming from `cursors` (from the checkpoint), or starting fresh (`None`).
    pub fn new(cfg: TailConfig, cursors: Option<Vec<FileCursor>>) -> Self {
        let fresh = cursors.is_none();
        let now = Instant::now();
        let tracked = cursors
            .unwrap_or_default()
            .into_iter()
            .map(|cursor| Tracked {
                dated: false,
                cursor,
                file: None,
                gone: false,
                renamed: false,
                last_growth: now,
            })
            .collect();
        Tailer {
            cfg,
            tracked,
            fresh,
            first_poll_done: false,
            buf: Vec::new(),
            throttle: Throttle::new(Duration::from_secs(10)),
            last_sent_cursors: None,
            dir_existed: None,
            clock: now,
            forgotten: std::collections::VecDeque::new(),
        }
    }

    pub fn cursors(&self) -> Vec<FileCursor> {
        self.tracked.iter().map(|t| t.cursor.clone()).collect()
    }

    fn list(&mut self, out: &mut BatchBuilder) -> Vec<Entry> {
        let rd = match std::fs::read_dir(&self.cfg.dir) {
            Ok(rd) => rd,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    // Normal before the application's first execution: say it once, not as a warning.
                    if self.dir_existed != Some(false) {
                        tracing::info!(dir = %self.cfg.dir.display(), "operations-log directory does not exist yet; waiting for it");
                    }
                } else {
                    out.error("list");
                    self.throttle.warn("dir", || {
                        format!(
                            "operations-log directory {} cannot be read ({e}); waiting for it",
                            self.cfg.dir.display()
                        )
                    });
                }
                self.note_dir(false);
                return Vec::new();
            }
        };
        self.note_dir(true);
        let mut entries = Vec::new();
        for item in rd.flatten() {
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(&self.cfg.prefix)
                || COMPRESSED_SUFFIXES.iter().any(|s| name.ends_with(s))
            {
                continue;
            }
            let path = item.path();
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            if !md.is_file() {
                continue;
            }
            entries.push(Entry {
                dated: self.cfg.date_of(name).is_some(),
                path,
                dev: md.dev(),
                ino: md.ino(),
                size: md.len(),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }

    fn note_dir(&mut self, exists: bool) {
        if self.dir_existed != Some(exists) {
            if exists && self.dir_existed.is_some() {
                tracing::info!(dir = %self.cfg.dir.display(), "operations-log directory appeared");
            }
            self.dir_existed = Some(exists);
        }
    }

    /// One step: look at the directory, read what is new (up to the budget), report.
    pub fn poll(&mut self, now_ms: u64) -> PollOutput {
        self.poll_at(now_ms, Instant::now())
    }

    /// [`Tailer::poll`] at the monotonic time `clock` (never earlier than the previous poll's).
    pub fn poll_at(&mut self, now_ms: u64, clock: Instant) -> PollOutput {
        self.clock = self.clock.max(clock);
        let mut out = BatchBuilder {
            batch: ExecutionBatch::default(),
            now: now_ms,
        };
        let listing = self.list(&mut out);
        let mut budget = POLL_BUDGET_BYTES;

        // 1. Where are the files we follow now?
        for t in &mut self.tracked {
            match listing
                .iter()
                .find(|e| e.dev == t.cursor.dev && e.ino == t.cursor.ino)
            {
                Some(e) => {
                    t.renamed = t.cursor.path != e.path;
                    t.cursor.path = e.path.clone();
                    t.dated = e.dated;
                    t.gone = false;
                }
                None => t.gone = true,
            }
        }
        if !self.first_poll_done {
            // Restored files that vanished while the agent was down cannot be read any more.
            self.tracked.retain(|t| {
                if t.gone {
                    tracing::warn!(path = %t.cursor.path.display(), offset = t.cursor.offset,
                        "a file of the operations log disappeared while the agent was down; lines added to it after the last checkpoint are lost");
                    out.error("lost_file");
                }
                !t.gone
            });
        }

        // 2. New dated files.
        let newest_dated = listing
            .iter()
            .filter(|e| e.dated)
            .map(|e| &e.path)
            .max()
            .cloned();
        for e in listing.iter().filter(|e| e.dated) {
            if self.is_tracked(e) {
                continue;
            }
            let first_start = self.fresh && !self.first_poll_done;
            let offset = if !first_start {
                0
            } else if Some(&e.path) == newest_dated.as_ref() {
                if self.cfg.backfill {
                    0
                } else {
                    last_line_end(&e.path, e.size)
                }
            } else {
                e.size
            };
            if first_start {
                tracing::info!(path = %e.path.display(), offset, backfill = self.cfg.backfill, "operations log: starting");
            } else {
                tracing::info!(path = %e.path.display(), "operations log: following a new file");
            }
            self.track(e, offset);
        }

        // 3. Read every followed file with something new (recovering around truncations).
        for i in 0..self.tracked.len() {
            if budget == 0 {
                break;
            }
            self.read_tracked(i, &listing, &mut out, &mut budget);
        }

        // 4. Rotated names not followed yet: on first start, old files (taken as read); later,
        //    a copy of a followed file (copytruncate: taken as read, its lines come from the
        //    original or through the truncation recovery), or a file that was created and
        //    rotated between two looks (or while the agent was down): read whole.
        let first_start = self.fresh && !self.first_poll_done;
        for e in listing.iter().filter(|e| !e.dated) {
            if self.is_tracked(e) {
                continue;
            }
            if first_start {
                self.track(e, e.size);
            } else if e.size == 0 {
                // Nothing to lose yet; decided when it has content.
            } else if self.is_copy_of_followed(e) {
                self.track(e, e.size);
            } else {
                tracing::info!(path = %e.path.display(), "operations log: reading a rotated file never seen under its own name");
                self.track(e, 0);
                let i = self.tracked.len() - 1;
                self.read_tracked(i, &listing, &mut out, &mut budget);
            }
        }

        // 5. Close idle files, forget deleted ones once drained.
        let newest = self
            .tracked
            .iter()
            .filter(|t| t.dated && !t.gone)
            .map(|t| t.cursor.path.clone())
            .max();
        let now = self.clock;
        let budget_spent = budget == 0;
        let mut dropped = Vec::new();
        self.tracked.retain_mut(|t| {
            let idle = now.duration_since(t.last_growth);
            if t.gone {
                // Drained through the descriptor: kept while a writer may still append to it,
                // or while this poll's budget ran out before its end (a partial last line
                // alone does not keep it).
                let unread = budget_spent
                    && t.file
                        .as_ref()
                        .and_then(|f| f.metadata().ok())
                        .is_some_and(|md| md.len() > t.cursor.offset);
                let keep = t.file.is_some() && (idle < DELETED_GRACE || unread);
                if !keep {
                    dropped.push(t.cursor.clone());
                }
                return keep;
            }
            if t.file.is_some() && Some(&t.cursor.path) != newest.as_ref() && idle >= IDLE_CLOSE {
                t.file = None;
            }
            true
        });
        for cursor in dropped {
            if self.forgotten.len() == FORGOTTEN_KEPT {
                self.forgotten.pop_front();
            }
            self.forgotten.push_back(cursor);
        }
        self.first_poll_done = true;

        let more = budget == 0;
        let cursors = self.cursors();
        let cursors_changed = self.last_sent_cursors.as_ref() != Some(&cursors);
        let batch = if out.is_empty() && !cursors_changed && !self.never_reported() {
            None
        } else {
            let mut batch = out.batch;
            batch.cursors = cursors.clone();
            batch.dir_exists = self.dir_existed == Some(true);
            self.last_sent_cursors = Some(cursors);
            Some(batch)
        };
        PollOutput { batch, more }
    }

    /// The first poll always reports, so that the monitor learns the reader runs.
    fn never_reported(&self) -> bool {
        self.last_sent_cursors.is_none()
    }

    /// Whether `e` starts with the same bytes as a followed file (as far as both go): a copy.
    fn is_copy_of_followed(&self, e: &Entry) -> bool {
        let Ok(candidate) = File::open(&e.path) else {
            return false;
        };
        let n = e.size.min(FINGERPRINT_BYTES);
        let Ok(head) = read_exact_at(&candidate, n, 0) else {
            return false;
        };
        let itself = |t: &&Tracked| t.cursor.dev == e.dev && t.cursor.ino == e.ino;
        self.tracked
            .iter()
            .filter(|t| !t.gone && !itself(t))
            .any(|t| {
                let reopened;
                let file = match &t.file {
                    Some(f) => f,
                    None => match File::open(&t.cursor.path) {
                        Ok(f) => {
                            reopened = f;
                            &reopened
                        }
                        Err(_) => return false,
                    },
                };
                // Compare with what the followed file holds now, or, if it was truncated already,
                // with the fingerprint of what it held.
                let same_now = read_exact_at(file, n, 0).is_ok_and(|b| b == head);
                let same_before = t.cursor.fp_len > 0
                    && t.cursor.fp_len <= n
                    && fnv1a(&head[..t.cursor.fp_len as usize]) == t.cursor.fp_hash;
                same_now || same_before
            })
    }

    /// The position in `e` when it is a forgotten file come back: same device and inode, and
    /// the same first bytes (an inode number reused by another file has other content).
    fn remembered(&mut self, e: &Entry) -> Option<FileCursor> {
        let i = self
            .forgotten
            .iter()
            .rposition(|c| c.dev == e.dev && c.ino == e.ino)?;
        let mut cursor = self.forgotten.remove(i)?;
        let file = File::open(&e.path).ok()?;
        let same =
            e.size >= cursor.offset && fingerprint(&file, cursor.fp_len) == Some(cursor.fp_hash);
        same.then(|| {
            cursor.path = e.path.clone();
            cursor
        })
    }

    fn is_tracked(&self, e: &Entry) -> bool {
        self.tracked
            .iter()
            .any(|t| t.cursor.dev == e.dev && t.cursor.ino == e.ino)
    }

    fn track(&mut self, e: &Entry, offset: u64) {
        if let Some(cursor) = self.remembered(e) {
            tracing::info!(path = %e.path.display(), offset = cursor.offset, "operations log: a file seen before is back; continuing where it was");
            self.tracked.push(Tracked {
                cursor,
                file: None,
                dated: e.dated,
                gone: false,
                renamed: false,
                last_growth: Instant::now(),
            });
            return;
        }
        let mut cursor = FileCursor {
            path: e.path.clone(),
            dev: e.dev,
            ino: e.ino,
            offset,
            skipping: false,
            fp_len: 0,
            fp_hash: fnv1a(&[]),
        };
        if let Ok(f) = File::open(&e.path) {
            update_fingerprint(&f, &mut cursor);
        }
        self.tracked.push(Tracked {
            cursor,
            file: None,
            dated: e.dated,
            gone: false,
            renamed: false,
            last_growth: self.clock,
        });
    }

    fn read_tracked(
        &mut self,
        i: usize,
        listing: &[Entry],
        out: &mut BatchBuilder,
        budget: &mut u64,
    ) {
        let t = &self.tracked[i];
        let reopened = t.file.is_none();
        if reopened {
            if t.gone {
                return;
            }
            // Closed: reopen only if the directory shows something new or changed.
            let listed = listing
                .iter()
                .find(|e| e.dev == t.cursor.dev && e.ino == t.cursor.ino);
            if listed.is_some_and(|e| e.size == t.cursor.offset) {
                return;
            }
            match File::open(&t.cursor.path) {
                Ok(f) => match f.metadata() {
                    Ok(md) if md.dev() == t.cursor.dev && md.ino() == t.cursor.ino => {
                        self.tracked[i].file = Some(f);
                    }
                    _ => return, // replaced between listing and open: next poll sorts it out
                },
                Err(e) => {
                    out.error("open");
                    let path = t.cursor.path.clone();
                    self.throttle.warn("open", || {
                        format!("cannot open operations-log file {}: {e}", path.display())
                    });
                    return;
                }
            }
        }
        let t = &mut self.tracked[i];
        let file = t.file.as_ref().expect("opened above");
        let size = match file.metadata() {
            Ok(md) => md.len(),
            Err(_) => {
                out.error("read");
                return;
            }
        };
        let truncated =
            size < t.cursor.offset || fingerprint(file, t.cursor.fp_len) != Some(t.cursor.fp_hash);
        if !t.dated && (truncated || size > t.cursor.offset) {
            // A rotated name rewritten in place (`cp F F.1` over an existing `F.1`), whole or
            // half-made: a copy holds lines of a followed file, read there or recovered from
            // the copy when that file is truncated; never read them a second time here.
            let listed = listing
                .iter()
                .find(|e| e.dev == t.cursor.dev && e.ino == t.cursor.ino);
            if listed.is_some_and(|e| self.is_copy_of_followed(e)) {
                self.take_as_read(i);
                return;
            }
        }
        let t = &mut self.tracked[i];
        if truncated && t.renamed && reopened {
            // Another file under a reused inode (the old one was deleted while closed, and
            // logrotate created the new one at once): a new file, read from its start.
            tracing::info!(path = %t.cursor.path.display(), "operations log: new file (inode reused)");
        } else if truncated {
            let cursor = t.cursor.clone();
            self.recover_truncated(&cursor, listing, out, budget);
            let t = &mut self.tracked[i];
            t.cursor.offset = 0;
            t.cursor.skipping = false;
            t.cursor.fp_len = 0;
            t.cursor.fp_hash = fnv1a(&[]);
        }
        let t = &mut self.tracked[i];
        if size <= t.cursor.offset {
            return;
        }
        let file = t.file.as_ref().expect("opened above");
        let mut cursor = t.cursor.clone();
        let before = cursor.offset;
        let bad_before = bad_lines(&out.batch);
        let result = read_lines(
            file,
            &mut cursor.offset,
            &mut cursor.skipping,
            size,
            false,
            &mut self.buf,
            out,
            budget,
        );
        if let Err(e) = result {
            out.error("read");
            let path = cursor.path.clone();
            self.throttle.warn("read", || {
                format!("cannot read operations-log file {}: {e}", path.display())
            });
        }
        let bad_after: u64 = bad_lines(&out.batch);
        if bad_after > bad_before {
            let path = cursor.path.clone();
            let lines = out.batch.lines;
            self.throttle.warn("bad_lines", || {
                let counts: Vec<String> = LineResult::ALL
                    .iter()
                    .filter(|r| **r != LineResult::Ok && lines[r.index()] > 0)
                    .map(|r| format!("{} {}", lines[r.index()], r.as_str()))
                    .collect();
                format!(
                    "operations-log lines skipped in {} (this batch: {}); counted in codex_sentinel_oplog_lines_total",
                    path.display(),
                    counts.join(", ")
                )
            });
        }
        let t = &mut self.tracked[i];
        if cursor.offset > before {
            t.last_growth = self.clock;
        }
        if let Some(f) = &t.file {
            update_fingerprint(f, &mut cursor);
        }
        t.cursor = cursor;
    }

    /// Everything the followed file `i` holds now counts as read: position at its end, first
    /// bytes fingerprinted afresh.
    fn take_as_read(&mut self, i: usize) {
        let t = &mut self.tracked[i];
        let Some(file) = t.file.take().or_else(|| File::open(&t.cursor.path).ok()) else {
            return;
        };
        let size = match file.metadata() {
            Ok(md) if md.dev() == t.cursor.dev && md.ino() == t.cursor.ino => md.len(),
            _ => return, // replaced meanwhile: the next poll sorts it out
        };
        t.cursor.offset = size;
        t.cursor.skipping = false;
        t.cursor.fp_len = 0;
        t.cursor.fp_hash = fnv1a(&[]);
        update_fingerprint(&file, &mut t.cursor);
        t.file = Some(file);
    }

    /// The followed file `of` shrank or changed: read the lines it had past our position from
    /// its rotated copy, if there is one.
    fn recover_truncated(
        &mut self,
        of: &FileCursor,
        listing: &[Entry],
        out: &mut BatchBuilder,
        budget: &mut u64,
    ) {
        let name = of
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut candidates: Vec<&Entry> = listing
            .iter()
            .filter(|e| !(e.dev == of.dev && e.ino == of.ino) && e.size >= of.offset)
            .collect();
        // Rotated siblings of this name first (`name.1`, `name-20261127`).
        candidates.sort_by_key(|e| {
            let n = e.path.file_name().map(|n| n.to_string_lossy().into_owned());
            !n.is_some_and(|n| n.starts_with(&name) && n != name)
        });
        for e in candidates {
            let Ok(copy) = File::open(&e.path) else {
                continue;
            };
            if fingerprint(&copy, of.fp_len) != Some(of.fp_hash) {
                continue;
            }
            tracing::info!(file = %of.path.display(), copy = %e.path.display(), from = of.offset,
                "operations-log file was truncated (copytruncate): reading the rest from its copy");
            let mut offset = of.offset;
            let mut skipping = of.skipping;
            // The copy is complete: read all of it, whatever the budget.
            let mut unlimited = u64::MAX;
            if let Err(err) = read_lines(
                &copy,
                &mut offset,
                &mut skipping,
                e.size,
                true,
                &mut self.buf,
                out,
                &mut unlimited,
            ) {
                out.error("read");
                tracing::warn!(copy = %e.path.display(), error = %crate::logging::error_chain(&err), "cannot read the rotated copy");
            }
            *budget = budget.saturating_sub(e.size - of.offset);
            // All of the copy is accounted for now: if it is followed already (an earlier
            // rotation's copy overwritten in place), its position and first bytes are those of
            // its new content, or it would look replaced and be read again.
            match self
                .tracked
                .iter()
                .position(|t| t.cursor.dev == e.dev && t.cursor.ino == e.ino)
            {
                Some(j) => self.take_as_read(j),
                None => self.track(e, e.size),
            }
            return;
        }
        if of.offset > 0 {
            out.error("truncated_without_copy");
            let path = of.path.clone();
            self.throttle.warn("truncated", || {
                format!(
                    "operations-log file {} was truncated or replaced and no rotated copy holds its lines past byte {}; they may be lost",
                    path.display(),
                    of.offset
                )
            });
        }
    }
}

fn bad_lines(batch: &ExecutionBatch) -> u64 {
    let ok = batch.lines[LineResult::Ok.index()];
    batch.lines.iter().sum::<u64>() - ok
}

/// Sets the fingerprint over `min(offset, 1 KiB)` bytes when it covers less than that.
fn update_fingerprint(file: &File, cursor: &mut FileCursor) {
    let want = cursor.offset.min(FINGERPRINT_BYTES);
    if want > cursor.fp_len {
        if let Some(h) = fingerprint(file, want) {
            cursor.fp_len = want;
            cursor.fp_hash = h;
        }
    }
}

/// The position just after the last newline before `size` (where a reader starting at the
/// end begins, so that a line being written is read whole).
fn last_line_end(path: &Path, size: u64) -> u64 {
    let Ok(f) = File::open(path) else { return size };
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        if f.read_exact_at(chunk, start).is_err() {
            return size;
        }
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return start + i as u64 + 1;
        }
        end = start;
    }
    0
}

/// Reads complete lines from `*offset` up to `size`, advancing `*offset` past each newline.
/// A partial last line is left for the next call unless `is_final` (a static copy). Over-long
/// lines are skipped (`*skipping`) without being held in memory.
#[allow(clippy::too_many_arguments)]
fn read_lines(
    file: &File,
    offset: &mut u64,
    skipping: &mut bool,
    size: u64,
    is_final: bool,
    buf: &mut Vec<u8>,
    out: &mut BatchBuilder,
    budget: &mut u64,
) -> std::io::Result<()> {
    if buf.len() < CHUNK_BYTES {
        buf.resize(CHUNK_BYTES, 0);
    }
    while *offset < size && *budget > 0 {
        let want = ((size - *offset) as usize).min(CHUNK_BYTES);
        let n = file.read_at(&mut buf[..want], *offset)?;
        if n == 0 {
            break; // shrank meanwhile: the next poll notices
        }
        let data = &buf[..n];
        let mut start = 0usize;
        if *skipping {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    out.batch.lines[LineResult::TooLong.index()] += 1;
                    *skipping = false;
                    start = i + 1;
                }
                None => {
                    *offset += n as u64;
                    *budget = budget.saturating_sub(n as u64);
                    continue;
                }
            }
        }
        let mut line_start = start;
        for nl in memchr::memchr_iter(b'\n', &data[start..]) {
            let end = start + nl;
            out.line(&data[line_start..end]);
            line_start = end + 1;
        }
        let at_end = *offset + n as u64 >= size;
        if line_start == 0 && n < CHUNK_BYTES && !at_end {
            break; // a short read without a newline: try again next poll
        }
        if line_start == 0 && n == CHUNK_BYTES {
            // A whole chunk from a line's start without a newline: too long, skip it.
            *skipping = true;
            line_start = n;
        } else if line_start < n && at_end && is_final {
            out.line(&data[line_start..n]);
            line_start = n;
        }
        *offset += line_start as u64;
        *budget = budget.saturating_sub(line_start as u64);
        if line_start < n && at_end {
            break; // a partial last line: held until its newline arrives
        }
    }
    if *skipping && is_final && *offset >= size {
        out.batch.lines[LineResult::TooLong.index()] += 1;
        *skipping = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(i: u64) -> String {
        format!(
            "{{\"timestamp\":{},\"operationType\":\"audit\",\"timing\":{{\"duration\":{}}},\"result\":{{\"success\":true}}}}\n",
            1_700_000_000_000u64 + i,
            i
        )
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn ok_lines(out: &PollOutput) -> u64 {
        out.batch
            .as_ref()
            .map_or(0, |b| b.lines[LineResult::Ok.index()])
    }

    fn cfg(dir: &Path, backfill: bool) -> TailConfig {
        TailConfig::new(dir.into(), "codex-operations-YYYY-MM-DD.jsonl", backfill)
    }

    #[test]
    fn names_and_dates() {
        let c = TailConfig::new("x".into(), "codex-operations-YYYY-MM-DD.jsonl", false);
        assert_eq!(
            c.date_of("codex-operations-2026-11-26.jsonl"),
            Some("2026-11-26")
        );
        assert_eq!(c.date_of("codex-operations-2026-11-26.jsonl.1"), None);
        assert_eq!(c.date_of("codex-operations-2026-1-26.jsonl"), None);
    }

    #[test]
    fn partial_line_is_held_and_start_from_end_without_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("codex-operations-2026-11-26.jsonl");
        append(&f, &line(1));
        let half = line(2);
        append(&f, &half[..20]);
        let mut t = Tailer::new(cfg(dir.path(), false), None);
        let out = t.poll(0);
        assert_eq!(ok_lines(&out), 0, "started at the end");
        append(&f, &half[20..]);
        append(&f, &line(3)[..10]);
        assert_eq!(
            ok_lines(&t.poll(0)),
            1,
            "the line being written when we started"
        );
        assert_eq!(ok_lines(&t.poll(0)), 0);
        append(&f, &line(3)[10..]);
        assert_eq!(ok_lines(&t.poll(0)), 1);
    }

    #[test]
    fn a_directory_moved_away_and_back_is_not_read_again() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("codex");
        let away = root.path().join("codex-away");
        std::fs::create_dir(&logs).unwrap();
        let f = logs.join("codex-operations-2026-11-26.jsonl");
        let mut t = Tailer::new(cfg(&logs, true), None);
        t.poll(0);
        let text: String = (0..1000).map(line).collect();
        append(&f, &text);
        assert_eq!(ok_lines(&t.poll(0)), 1000);
        // Quiet for longer than the grace a deleted file is kept open for.
        for tr in &mut t.tracked {
            tr.last_growth -= DELETED_GRACE;
        }
        std::fs::rename(&logs, &away).unwrap();
        t.poll(0);
        assert!(t.tracked.is_empty(), "gone files are forgotten");
        std::fs::rename(&away, &logs).unwrap();
        assert_eq!(ok_lines(&t.poll(0)), 0, "the same file, already read");
        append(&f, &line(1000));
        assert_eq!(ok_lines(&t.poll(0)), 1, "and followed on from where it was");
    }

    /// `cp F F.1` over an existing `F.1`: the copy is written into the old inode (truncated
    /// first), first `upto` bytes only when the copy is seen half-made.
    fn copy_in_place(from: &Path, to: &Path, upto: Option<usize>) {
        let bytes = std::fs::read(from).unwrap();
        let upto = upto.unwrap_or(bytes.len());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(to)
            .unwrap();
        f.write_all(&bytes[..upto]).unwrap();
    }

    fn finish_copy(from: &Path, to: &Path) {
        let bytes = std::fs::read(from).unwrap();
        let have = std::fs::metadata(to).unwrap().len() as usize;
        append(to, std::str::from_utf8(&bytes[have..]).unwrap());
    }

    /// Which moments of `cp F F.1; truncate -s0 F` a poll sees.
    #[derive(Clone, Copy, Debug)]
    enum Seen {
        /// Only the end (copied and truncated).
        AfterBoth,
        /// The finished copy before the truncate, then the end.
        BetweenCopyAndTruncate,
        /// Half a copy, the finished copy, then the end.
        HalfCopy,
    }

    #[test]
    fn copytruncate_over_an_existing_rotated_file_is_counted_once() {
        for seen in [
            Seen::AfterBoth,
            Seen::BetweenCopyAndTruncate,
            Seen::HalfCopy,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("codex-operations-2026-11-26.jsonl");
            let rotated = dir.path().join("codex-operations-2026-11-26.jsonl.1");
            let mut t = Tailer::new(cfg(dir.path(), true), None);
            t.poll(0);
            let (mut written, mut counted) = (0u64, 0u64);
            // Each rotation's copy shorter or longer than the one it overwrites.
            for (round, lines) in [1000u64, 500, 700].into_iter().enumerate() {
                let first = round as u64 * 1000;
                // Lines read before the rotation, and lines only the copy holds.
                let read: String = (first..first + lines).map(line).collect();
                append(&f, &read);
                counted += ok_lines(&t.poll(0));
                let unread: String = (first + lines..first + lines + 10).map(line).collect();
                append(&f, &unread);
                written += lines + 10;
                match seen {
                    Seen::AfterBoth => copy_in_place(&f, &rotated, None),
                    Seen::BetweenCopyAndTruncate => {
                        copy_in_place(&f, &rotated, None);
                        counted += ok_lines(&t.poll(0));
                    }
                    Seen::HalfCopy => {
                        copy_in_place(&f, &rotated, Some(read.len() / 2 + 7));
                        counted += ok_lines(&t.poll(0));
                        finish_copy(&f, &rotated);
                        counted += ok_lines(&t.poll(0));
                    }
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                counted += ok_lines(&t.poll(0));
                assert_eq!(counted, written, "{seen:?}, rotation {}", round + 1);
            }
            append(&f, &line(9999));
            counted += ok_lines(&t.poll(0)) + ok_lines(&t.poll(0));
            assert_eq!(
                counted,
                written + 1,
                "{seen:?}: followed on after the rotations"
            );
        }
    }

    #[test]
    fn over_long_line_is_skipped_with_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("codex-operations-2026-11-26.jsonl");
        let mut t = Tailer::new(cfg(dir.path(), true), None);
        t.poll(0);
        append(&f, &line(1));
        append(&f, &"x".repeat(10 * 1024 * 1024 + 7));
        let mut too_long = 0;
        let mut ok = 0;
        for _ in 0..10 {
            let out = t.poll(0);
            if let Some(b) = &out.batch {
                too_long += b.lines[LineResult::TooLong.index()];
                ok += b.lines[LineResult::Ok.index()];
            }
        }
        assert_eq!((ok, too_long), (1, 0), "still inside the long line");
        assert!(t.tracked[0].cursor.skipping);
        append(&f, "\n");
        append(&f, &line(2));
        let out = t.poll(0);
        let b = out.batch.unwrap();
        assert_eq!(b.lines[LineResult::TooLong.index()], 1);
        assert_eq!(b.lines[LineResult::Ok.index()], 1);
        assert!(t.buf.len() <= CHUNK_BYTES);
    }

    #[test]
    fn an_idle_older_file_is_closed_and_its_late_lines_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let day1 = dir.path().join("codex-operations-2026-11-26.jsonl");
        let day2 = dir.path().join("codex-operations-2026-11-27.jsonl");
        append(&day1, &line(1));
        let mut t = Tailer::new(cfg(dir.path(), true), None);
        let t0 = Instant::now();
        assert_eq!(ok_lines(&t.poll_at(0, t0)), 1);
        append(&day2, &line(2));
        assert_eq!(ok_lines(&t.poll_at(0, t0)), 1, "the new day's file");
        let open = |t: &Tailer, path: &Path| {
            t.tracked
                .iter()
                .find(|f| f.cursor.path == path)
                .unwrap()
                .file
                .is_some()
        };
        let just_short = t0 + IDLE_CLOSE - Duration::from_millis(1);
        t.poll_at(0, just_short);
        assert!(
            open(&t, &day1),
            "idle for less than {IDLE_CLOSE:?}: kept open"
        );
        t.poll_at(0, t0 + IDLE_CLOSE);
        assert!(!open(&t, &day1), "yesterday's idle file is closed");
        assert!(open(&t, &day2), "the newest file stays open");
        // A writer that still had yesterday's file appends to it: reopened by name, read once.
        append(&day1, &line(3));
        assert_eq!(ok_lines(&t.poll_at(0, t0 + IDLE_CLOSE)), 1);
        assert!(open(&t, &day1));
        assert_eq!(ok_lines(&t.poll_at(0, t0 + IDLE_CLOSE * 3)), 0);
        assert!(!open(&t, &day1), "closed again once idle");
    }
}
