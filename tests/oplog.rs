//! The operations-log reader end to end: the real agent binary follows files that a writer
//! thread appends to while the real logrotate rotates them; totals must equal the lines
//! written, exactly (never lost, never counted twice), across kill -9 and restarts.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const LOGROTATE: &str = "/usr/sbin/logrotate";
const DAY1: &str = "codex-operations-2026-11-26.jsonl";
const DAY2: &str = "codex-operations-2026-11-27.jsonl";
/// Time between two rotations: several of the agent's polls.
const ROTATION_GAP: Duration = Duration::from_millis(800);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn logrotate() -> &'static str {
    assert!(
        Path::new(LOGROTATE).exists(),
        "logrotate missing at {LOGROTATE}: run scripts/test (or scripts/setup.d/45-logrotate.sh)"
    );
    LOGROTATE
}

/// An agent process in a working directory that outlives it (for restarts).
struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    fn start(workdir: &Path, env: &[(&str, &str)]) -> Agent {
        let port = common::free_port();
        let mut cmd = Command::new(common::agent_bin());
        cmd.current_dir(workdir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", workdir)
            .env("CODEX_HEALTH_PORT", port.to_string())
            // The probes are not under test here: a real executable that answers at once.
            .env("CODEX_EXECUTABLE", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(workdir.join(format!("agent-{port}.log"))).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start agent");
        let agent = Agent { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while common::http_get(&agent.url("/readyz")).map(|r| r.0) != Ok(200) {
            assert!(Instant::now() < deadline, "agent not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Without backfill the first look decides where reading starts: lines written before
        // it are (by design) not counted, so the tests write only after it.
        while agent.metrics()["operationsLog"]["readerStarted"] != true {
            assert!(Instant::now() < deadline, "operations-log reader not started");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn metrics(&self) -> Value {
        let (code, body) = common::http_get(&self.url("/health/codex/metrics")).unwrap();
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn total(&self) -> u64 {
        self.metrics()["executionMetricsSinceStart"]["totalExecutions"]
            .as_u64()
            .unwrap()
    }

    /// Waits until the since-start total is `want`, then checks it stays there (a late double
    /// count would show), and returns the metrics.
    fn expect_total(&self, want: u64, workdir: &Path) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.total();
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "total {got}, lines written {want}\nmetrics: {}\nlog:\n{}",
                self.metrics()["operationsLog"],
                agent_logs(workdir)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let m = self.metrics();
        assert_eq!(
            m["executionMetricsSinceStart"]["totalExecutions"], want,
            "counted again later: {}",
            m["operationsLog"]
        );
        m
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_logs(workdir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(workdir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("agent-") {
            out.push_str(&format!("== {name}\n"));
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

/// One generated execution line (~135 bytes, as the application writes them).
fn line(i: u64) -> String {
    let ops = ["audit", "review", "fix"];
    let success = i % 10 != 0;
    let timed_out = i % 50 == 0;
    format!(
        "{{\"timestamp\":{},\"operationType\":\"{}\",\"sessionId\":\"s-{i}\",\"timing\":{{\"duration\":{},\"queueWait\":{}}},\"result\":{{\"success\":{},\"timedOut\":{}}},\"retryCount\":{}}}\n",
        now_ms(),
        ops[(i % 3) as usize],
        100 + (i * 7919) % 90_000,
        i % 40,
        success && !timed_out,
        timed_out,
        i % 4
    )
}

#[derive(Clone, Copy, PartialEq)]
enum WriteMode {
    /// Open, append, close for every line (like `fs.appendFileSync`): follows renames at once.
    ReopenPerLine,
    /// One descriptor opened with O_APPEND and kept (what copytruncate is for).
    KeepOpen,
}

/// A thread appending lines until stopped; `target` names the file for each line.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(
        dir: PathBuf,
        mode: WriteMode,
        lock: Option<PathBuf>,
        target: impl Fn(u64) -> &'static str + Send + 'static,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (s, w) = (stop.clone(), written.clone());
        let handle = std::thread::spawn(move || {
            let lock = lock.map(|p| File::create(p).unwrap());
            let mut kept: Option<(String, File)> = None;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let name = target(i);
                let text = line(i);
                if let Some(l) = &lock {
                    unsafe { libc::flock(l.as_raw_fd(), libc::LOCK_EX) };
                }
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(name);
                let open = || {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .unwrap()
                };
                match mode {
                    WriteMode::ReopenPerLine => open().write_all(text.as_bytes()).unwrap(),
                    WriteMode::KeepOpen => {
                        if kept.as_ref().is_none_or(|(n, _)| n != name) {
                            kept = Some((name.to_string(), open()));
                        }
                        kept.as_mut().unwrap().1.write_all(text.as_bytes()).unwrap();
                    }
                }
                if let Some(l) = &lock {
                    unsafe { libc::flock(l.as_raw_fd(), libc::LOCK_UN) };
                }
                i += 1;
                w.store(i, Ordering::SeqCst);
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Writer {
            stop,
            written,
            handle: Some(handle),
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    fn wait_for(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.written() < n {
            assert!(Instant::now() < deadline, "writer stalled at {}", self.written());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.written()
    }
}

/// Runs the real logrotate once (forced) with `options` over the log directory.
fn rotate(dir: &Path, work: &Path, options: &str, lock: Option<&Path>) {
    let conf = work.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{}/*.jsonl {{\n  rotate 10\n  missingok\n  nodateext\n  {options}\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut cmd = match lock {
        Some(l) => {
            let mut c = Command::new("flock");
            c.arg(l).arg(logrotate());
            c
        }
        None => Command::new(logrotate()),
    };
    let out = cmd
        .arg("-f")
        .arg("-s")
        .arg(work.join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("run logrotate");
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs/codex");
    std::fs::create_dir_all(&logs).unwrap();
    (work, logs)
}

/// Lines ok and lines of every other result, from the metrics.
fn line_counts(m: &Value) -> (u64, u64) {
    let lines = m["operationsLog"]["lines"].as_object().unwrap();
    let ok = lines.get("ok").and_then(Value::as_u64).unwrap_or(0);
    let bad = lines
        .iter()
        .filter(|(k, _)| *k != "ok")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    (ok, bad)
}

/// Rotates three times with `options` while a writer appends; the totals must be exact.
fn rotation_case(options: &str, mode: WriteMode, with_lock: bool) -> (tempfile::TempDir, Value) {
    let (work, logs) = setup();
    let lock = with_lock.then(|| work.path().join("writer.lock"));
    let agent = Agent::start(work.path(), &[]);
    let writer = Writer::start(logs.clone(), mode, lock.clone(), |_| DAY1);
    for round in 1..=3 {
        writer.wait_for(round * 1500);
        rotate(&logs, work.path(), options, lock.as_deref());
        // A file must exist under a name the agent reads for at least one poll (250 ms) before
        // it is compressed away or deleted; daily rotation leaves a day.
        std::thread::sleep(ROTATION_GAP);
    }
    writer.wait_for(6000);
    let written = writer.finish();
    let m = agent.expect_total(written, work.path());
    assert_eq!(line_counts(&m), (written, 0), "{}", m["operationsLog"]);
    (work, m)
}

#[test]
fn logrotate_rename_and_create_with_a_concurrent_writer() {
    rotation_case("create 0644", WriteMode::ReopenPerLine, false);
}

#[test]
fn logrotate_copytruncate_with_a_concurrent_writer() {
    // The lock makes logrotate's copy-then-truncate atomic against the writer: without it
    // logrotate itself loses the lines written between its copy and its truncate.
    let (_work, m) = rotation_case("copytruncate", WriteMode::KeepOpen, true);
    assert!(m["operationsLog"]["readErrors"]
        .get("truncated_without_copy")
        .is_none());
}

#[test]
fn compressed_rotated_files_are_left_alone() {
    let (work, _) = rotation_case(
        "create 0644\n  compress\n  delaycompress",
        WriteMode::ReopenPerLine,
        false,
    );
    let logs = work.path().join("logs/codex");
    assert!(logs.join(format!("{DAY1}.2.gz")).exists());
    assert!(logs.join(format!("{DAY1}.1")).exists());
}

#[test]
fn compression_right_after_rename_is_drained_through_the_open_file() {
    rotation_case("create 0644\n  compress", WriteMode::ReopenPerLine, false);
}

#[test]
fn day_rollover_with_late_lines_in_yesterdays_file() {
    let (work, logs) = setup();
    let agent = Agent::start(work.path(), &[]);
    // Days change at line 3000; every 100th line after that still goes to yesterday's file
    // (a writer that had it open), some of them after the agent closed it as idle.
    let writer = Writer::start(logs.clone(), WriteMode::ReopenPerLine, None, |i| {
        if i < 3000 || i % 100 == 0 {
            DAY1
        } else {
            DAY2
        }
    });
    writer.wait_for(6000);
    let mut written = writer.finish();
    std::thread::sleep(Duration::from_secs(6)); // past the idle close
    let mut f = OpenOptions::new()
        .append(true)
        .open(logs.join(DAY1))
        .unwrap();
    f.write_all(line(1).as_bytes()).unwrap();
    written += 1;
    agent.expect_total(written, work.path());
}

#[test]
fn deleted_and_recreated_file_with_a_concurrent_writer() {
    let (work, logs) = setup();
    let agent = Agent::start(work.path(), &[]);
    let writer = Writer::start(logs.clone(), WriteMode::ReopenPerLine, None, |_| DAY1);
    for round in 1..=3 {
        writer.wait_for(round * 1500);
        std::fs::remove_file(logs.join(DAY1)).unwrap();
        std::thread::sleep(ROTATION_GAP);
    }
    writer.wait_for(6000);
    let written = writer.finish();
    // Lines of a deleted file can only be counted if the agent read them before it went away
    // or through its open descriptor; this one keeps the newest file open, so none is lost.
    agent.expect_total(written, work.path());
}

#[test]
fn directory_that_does_not_exist_yet() {
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs/codex");
    let agent = Agent::start(work.path(), &[]);
    std::thread::sleep(Duration::from_millis(600));
    let m = agent.metrics();
    assert_eq!(m["operationsLog"]["directoryExists"], false);
    let writer = Writer::start(logs, WriteMode::ReopenPerLine, None, |_| DAY1);
    writer.wait_for(2000);
    let written = writer.finish();
    let m = agent.expect_total(written, work.path());
    assert_eq!(m["operationsLog"]["directoryExists"], true);
}

#[test]
fn kill9_mid_file_and_restart_counts_every_line_once() {
    let (work, logs) = setup();
    // A backlog read from the start, and a writer that keeps appending through the crashes.
    let mut backlog = String::new();
    for i in 0..30_000 {
        backlog.push_str(&line(i));
    }
    std::fs::write(logs.join(DAY1), &backlog).unwrap();
    let env = [("CODEX_OPERATIONS_LOG_BACKFILL", "true")];
    let writer = Writer::start(logs.clone(), WriteMode::KeepOpen, None, |_| DAY1);
    for round in 0..3 {
        let agent = Agent::start(work.path(), &env);
        // Let it read part of what is there, and write at least one checkpoint.
        let seen = agent.total();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.total() <= seen + 1000 {
            assert!(Instant::now() < deadline, "agent does not read");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300 * (round + 1)));
        agent.kill9();
        // Down for a moment while the writer goes on.
        std::thread::sleep(Duration::from_millis(300));
    }
    // A clean stop too (its last checkpoint is written at shutdown).
    let agent = Agent::start(work.path(), &env);
    std::thread::sleep(Duration::from_millis(800));
    agent.stop();
    let agent = Agent::start(work.path(), &env);
    writer.wait_for(writer.written() + 500);
    let written = 30_000 + writer.finish();
    let m = agent.expect_total(written, work.path());
    assert_eq!(line_counts(&m), (written, 0));
    // The Prometheus counters agree.
    let (_, text) = common::http_get(&agent.url("/metrics")).unwrap();
    let counted: f64 = text
        .lines()
        .filter(|l| l.starts_with("codex_executions_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(counted as u64, written);
}

#[test]
fn backfill_switch_and_lines_appended_while_down() {
    let (work, logs) = setup();
    let file = logs.join(DAY1);
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&line(i));
    }
    std::fs::write(&file, &text).unwrap();
    // Default: start at the end of today's file.
    let agent = Agent::start(work.path(), &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(agent.total(), 0);
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    for i in 0..5 {
        f.write_all(line(i).as_bytes()).unwrap();
    }
    agent.expect_total(5, work.path());
    agent.stop();
    for i in 0..7 {
        f.write_all(line(i).as_bytes()).unwrap();
    }
    let agent = Agent::start(work.path(), &[]);
    agent.expect_total(12, work.path());
    drop(agent);

    // Backfill: the whole file, on a fresh state directory.
    let agent = Agent::start(
        work.path(),
        &[
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true"),
            ("CODEX_STATE_DIR", "other-state"),
        ],
    );
    agent.expect_total(112, work.path());
    assert!(work.path().join("other-state/operations-log.json").exists());
}
