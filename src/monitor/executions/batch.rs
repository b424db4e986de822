//! What the operations-log reader sends the monitor: executions, what became of each line, and
//! where the reader stands in every file. Defined here, with the statistics that consume them,
//! so that the monitor depends on no source.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What became of one line; the label of `codex_sentinel_oplog_lines_total{result=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineResult {
    /// Parsed and counted as an execution.
    Ok,
    /// Not JSON (syntax error, truncated, binary garbage, invalid UTF-8).
    Malformed,
    /// JSON, but not the expected shape: not an object, or a used field has the wrong type or
    /// an impossible value (negative duration, unreadable timestamp).
    Invalid,
    /// JSON object without `timing.duration` or `result.success`.
    MissingField,
    /// Longer than the line limit; skipped without being held in memory.
    TooLong,
    /// Nothing but whitespace.
    Empty,
    /// A duration or queue wait beyond [`MAX_PLAUSIBLE_MS`]: rejected, so that no sum, average
    /// or percentile (nor the saved state) can be ruined by one absurd line.
    Implausible,
}

/// The longest duration or queue wait (ms) an operations-log line may carry: 24 hours. Codex
/// operations time out long before; anything above is a unit mistake or garbage.
pub const MAX_PLAUSIBLE_MS: f64 = 86_400_000.0;

impl LineResult {
    pub const ALL: [LineResult; 7] = [
        LineResult::Ok,
        LineResult::Malformed,
        LineResult::Invalid,
        LineResult::MissingField,
        LineResult::TooLong,
        LineResult::Empty,
        LineResult::Implausible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineResult::Ok => "ok",
            LineResult::Malformed => "malformed",
            LineResult::Invalid => "invalid",
            LineResult::MissingField => "missing_field",
            LineResult::TooLong => "too_long",
            LineResult::Empty => "empty",
            LineResult::Implausible => "implausible",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How an execution ended. A timeout is never a success, whatever `result.success` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
}

impl Outcome {
    pub fn from_flags(success: bool, timed_out: bool) -> Self {
        match (success, timed_out) {
            (_, true) => Outcome::Timeout,
            (true, false) => Outcome::Success,
            (false, false) => Outcome::Failure,
        }
    }
}

/// One execution as the application logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Epoch ms.
    pub timestamp: u64,
    /// Index into [`ExecutionBatch::operation_types`].
    pub operation: u16,
    /// ms.
    pub duration: f64,
    pub outcome: Outcome,
    pub retry_count: u32,
    /// ms.
    pub queue_wait: Option<f64>,
    /// Kept for failures and timeouts only (shortened to [`super::ERROR_TEXT_LIMIT`]).
    pub error: Option<Box<str>>,
}

/// What the operations-log reader sends: executions, line results, and where it now stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionBatch {
    /// Names of the operation types the executions refer to by index.
    pub operation_types: Vec<String>,
    pub executions: Vec<Execution>,
    /// Lines by [`LineResult`] index.
    pub lines: [u64; LineResult::ALL.len()],
    /// Reading problems by kind (`open`, `read`, `truncated_without_copy`, …).
    pub read_errors: Vec<(&'static str, u64)>,
    /// The reader's position in every file it follows, after this batch.
    pub cursors: Vec<FileCursor>,
    /// Whether the log directory exists.
    pub dir_exists: bool,
    /// Held until the monitor has applied the batch: the reader counts the clones of its
    /// ticket to bound the batches in flight (and so its memory).
    pub ticket: std::sync::Arc<()>,
}

/// The position in one file, as persisted in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCursor {
    /// Where the file was last seen (for people; the identity is dev + inode).
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Bytes read: always just after a newline (or inside a skipped over-long line).
    pub offset: u64,
    /// Inside a line longer than the reader's line limit, being skipped to its newline.
    #[serde(default)]
    pub skipping: bool,
    /// Hash of the first `fp_len` bytes (`fp_len = min(offset, 1 KiB)`).
    pub fp_len: u64,
    pub fp_hash: u64,
}
