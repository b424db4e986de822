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
        // One log file per start, numbered in order.
        let started = std::fs::read_dir(workdir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
            .count();
        let log = workdir.join(format!("agent-{started}.log"));
        let mut cmd = Command::new(common::agent_bin());
        cmd.current_dir(workdir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", workdir)
            // The kernel picks the port; the agent logs it.
            .env("CODEX_HEALTH_PORT", "0")
            // The probes are not under test here: a real executable that answers at once.
            .env("CODEX_EXECUTABLE", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start agent");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // Whole lines only: a line being written could end in part of the port.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            let lines: Vec<String> = complete.lines().map(str::to_string).collect();
            if let Some(port) = common::bound_port(&lines) {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("agent exited ({status}) before serving:\n{text}");
            }
            assert!(Instant::now() < deadline, "agent not serving:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let agent = Agent { child, port };
        while common::http_get(&agent.url("/readyz")).map(|r| r.0) != Ok(200) {
            assert!(Instant::now() < deadline, "agent not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Without backfill the first look decides where reading starts: lines written before
        // it are (by design) not counted, so the tests write only after it.
        while agent.metrics()["operationsLog"]["readerStarted"] != true {
            assert!(
                Instant::now() < deadline,
                "operations-log reader not started"
            );
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

    /// Appends an empty line (counted as `empty`, never an execution) to the newest dated
    /// file and waits until the reader has counted it: proof that it looked at every file once
    /// more. Returns the metrics from then.
    fn poll_once_more(&self, workdir: &Path) -> Value {
        let empty = |m: &Value| m["operationsLog"]["lines"]["empty"].as_u64().unwrap_or(0);
        let before = empty(&self.metrics());
        let dir = workdir.join("logs/codex");
        let newest = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("codex-operations-") && n.ends_with(".jsonl"))
            .max()
            .unwrap_or_else(|| panic!("no dated file in {}", dir.display()));
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(newest))
            .unwrap();
        f.write_all(b"\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.metrics();
            if empty(&m) > before {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "the reader did not poll again: {}",
                m["operationsLog"]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the since-start total is `want`, then checks it stays there through one
    /// more poll (a late double count would show), and returns the metrics at `want`.
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
            std::thread::sleep(Duration::from_millis(50));
        }
        let m = self.metrics();
        let later = self.poll_once_more(workdir);
        assert_eq!(
            later["executionMetricsSinceStart"]["totalExecutions"], want,
            "counted again later: {}",
            later["operationsLog"]
        );
        m
    }

    fn wait_total_at_least(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.total() < n {
            assert!(Instant::now() < deadline, "agent stuck below {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
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
    let success = !i.is_multiple_of(10);
    let timed_out = i.is_multiple_of(50);
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
                if i.is_multiple_of(8) {
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
            assert!(
                Instant::now() < deadline,
                "writer stalled at {}",
                self.written()
            );
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
        // A file must have been seen by the agent before it is compressed away or deleted
        // (daily rotation leaves it a day): wait until it read from the current file. Its
        // unread tail is still being appended to when the rotation comes.
        agent.wait_total_at_least(round * 1500 - 500);
        rotate(&logs, work.path(), options, lock.as_deref());
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
    // (a writer that had it open), and one more after the writer stopped. A late line after
    // the agent closed yesterday's file as idle is driven on the tailer's clock in
    // `sources::oplog::tail::tests::an_idle_older_file_is_closed_and_its_late_lines_still_read`.
    let writer = Writer::start(logs.clone(), WriteMode::ReopenPerLine, None, |i| {
        if i < 3000 || i % 100 == 0 {
            DAY1
        } else {
            DAY2
        }
    });
    writer.wait_for(6000);
    let mut written = writer.finish();
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
        agent.wait_total_at_least(round * 1500 - 500);
        std::fs::remove_file(logs.join(DAY1)).unwrap();
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
    // `Agent::start` waited for the reader's first report, which says whether the directory
    // is there.
    let agent = Agent::start(work.path(), &[]);
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
    let checkpoint = work.path().join(".codex-sentinel/operations-log.json");
    let writer = Writer::start(logs.clone(), WriteMode::KeepOpen, None, |_| DAY1);
    for round in 0..3 {
        let before = std::fs::read(&checkpoint).ok();
        let agent = Agent::start(work.path(), &env);
        // Let it read part of what is there (more each round, so the crashes land at
        // different points), and write at least one checkpoint of its own.
        let seen = agent.total();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.total() <= seen + 1000 * (round + 1)
            || std::fs::read(&checkpoint).ok() == before
        {
            assert!(Instant::now() < deadline, "agent does not read");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent.kill9();
        // Down while the writer goes on.
        writer.wait_for(writer.written() + 500);
    }
    // A clean stop too (its last checkpoint is written at shutdown), after reading some.
    let agent = Agent::start(work.path(), &env);
    agent.wait_total_at_least(agent.total() + 1);
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
    agent.poll_once_more(work.path());
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

/// A deterministic generator (xorshift64*): the test's distribution is known and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Nearest-rank quantile of sorted values (the definition the agent documents).
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= want.abs() * rel
}

/// Runs a shell pipeline (the specification's commands) and returns its stdout.
fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; {script}"))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn percentiles_buckets_and_the_specifications_jq_commands_agree() {
    assert!(
        Command::new("jq").arg("--version").output().is_ok(),
        "jq missing: run scripts/test (scripts/setup.d/00-apt.sh installs it)"
    );
    const N: usize = 100_000;
    let (work, logs) = setup();
    let file = logs.join(DAY1);
    let ops = ["audit", "review", "fix", "explain"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let now = now_ms();
    let mut text = String::with_capacity(N * 160);
    let mut durations: Vec<f64> = Vec::with_capacity(N);
    let mut by_type: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    let (mut failed, mut timed_out) = (0u64, 0u64);
    for i in 0..N {
        // Log-normal around 2.5 s (σ = 1.2), in whole milliseconds as applications log them,
        // plus a tenth of sub-second ones with a fraction.
        let u1 = rng.unit().max(1e-12);
        let u2 = rng.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let mut d = (2500.0 * (1.2 * z).exp()).round().max(1.0);
        if i % 10 == 0 {
            d = (rng.unit() * 999.0 * 8.0).round() / 8.0;
        }
        let op = (rng.next() % ops.len() as u64) as usize;
        let roll = rng.next() % 100;
        let (success, to) = match roll {
            0..=3 => (false, true),
            4..=9 => (false, false),
            _ => (true, false),
        };
        if to {
            timed_out += 1;
        } else if !success {
            failed += 1;
        }
        let ts = now - 50 * 60_000 + (i as u64 * 3_000 * 1000 / N as u64);
        text.push_str(&format!(
            "{{\"timestamp\":{ts},\"operationType\":\"{}\",\"sessionId\":\"s-{i}\",\"timing\":{{\"duration\":{d},\"queueWait\":{}}},\"result\":{{\"success\":{success},\"timedOut\":{to}}},\"retryCount\":{}}}\n",
            ops[op],
            i % 17,
            u64::from(i % 9 == 0)
        ));
        durations.push(d);
        by_type[op].push(d);
    }
    std::fs::write(&file, &text).unwrap();

    let agent = Agent::start(work.path(), &[("CODEX_OPERATIONS_LOG_BACKFILL", "true")]);
    let m = agent.expect_total(N as u64, work.path());
    let window = &m["performance"]["executionMetrics"];
    let since = &m["executionMetricsSinceStart"];
    assert_eq!(window, since, "all timestamps are within the window");

    // Counts and average, exact.
    assert_eq!(window["totalExecutions"], N as u64);
    assert_eq!(window["failedExecutions"], failed);
    assert_eq!(window["timedOutExecutions"], timed_out);
    assert_eq!(
        window["successfulExecutions"],
        N as u64 - failed - timed_out
    );
    let mean = durations.iter().sum::<f64>() / N as f64;
    let avg = window["averageExecutionTime"].as_f64().unwrap();
    assert!(within(avg, mean, 1e-12), "average {avg} vs {mean}");

    // Percentiles within 1 % of the sorted values.
    let mut sorted = durations.clone();
    sorted.sort_by(f64::total_cmp);
    for (key, q) in [
        ("medianExecutionTime", 0.5),
        ("p95ExecutionTime", 0.95),
        ("p99ExecutionTime", 0.99),
    ] {
        let want = exact_quantile(&sorted, q);
        let got = window[key].as_f64().unwrap();
        assert!(within(got, want, 0.01), "{key}: {got} vs exact {want}");
    }
    for (i, op) in ops.iter().enumerate() {
        let mut v = by_type[i].clone();
        v.sort_by(f64::total_cmp);
        let t = &m["executionMetricsByOperationType"][op]["sinceStart"];
        assert_eq!(t["totalExecutions"], v.len() as u64);
        for (key, q) in [("medianExecutionTime", 0.5), ("p99ExecutionTime", 0.99)] {
            let got = t[key].as_f64().unwrap();
            let want = exact_quantile(&v, q);
            assert!(within(got, want, 0.01), "{op} {key}: {got} vs {want}");
        }
    }

    // Distribution buckets, exact, with the histogram's edges ((previous, bound] seconds).
    let edges = [1000.0, 5000.0, 10_000.0, 30_000.0, 60_000.0];
    let mut want = [0u64; 6];
    for d in &durations {
        want[edges.iter().position(|e| d <= e).unwrap_or(5)] += 1;
    }
    let dist = &window["executionTimeDistribution"];
    let got: Vec<u64> = [
        "under1s", "under5s", "under10s", "under30s", "under60s", "over60s",
    ]
    .iter()
    .map(|k| dist[k].as_u64().unwrap())
    .collect();
    assert_eq!(got, want.to_vec());

    // The Prometheus histogram says the same (cumulative buckets summed over types).
    let (_, prom) = common::http_get(&agent.url("/metrics")).unwrap();
    let series_sum = |prefix: &str| -> f64 {
        prom.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(
        series_sum("codex_execution_time_seconds_count{") as u64,
        N as u64
    );
    let mut cumulative = 0;
    for (i, le) in ["1", "5", "10", "30", "60"].iter().enumerate() {
        cumulative += want[i];
        let got = prom
            .lines()
            .filter(|l| {
                l.starts_with("codex_execution_time_seconds_bucket{")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>();
        assert_eq!(got, cumulative, "le={le}");
    }
    let sum_s = series_sum("codex_execution_time_seconds_sum{");
    assert!(within(sum_s, mean * N as f64 / 1000.0, 1e-9));
    // The populated page passes Prometheus' own linter.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; installed by scripts/test)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(prom.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );

    // The specification's own commands, run on the same file.
    let f = file.display();
    let out = sh(&format!(
        "cat {f} | jq '.timing.duration' | awk '{{sum+=$1; count++}} END {{print \"Average:\", sum/count \"ms\"}}'"
    ));
    let jq_avg: f64 = out
        .trim()
        .strip_prefix("Average: ")
        .and_then(|s| s.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .parse()
        .unwrap();
    // awk prints 6 significant digits.
    assert!(within(avg, jq_avg, 5e-6), "agent {avg} vs jq/awk {jq_avg}");
    let out = sh(&format!(
        "cat {f} | jq -r '.operationType' | sort | uniq -c | sort -nr"
    ));
    let mut jq_types = 0;
    for l in out.lines() {
        let (count, op) = l.trim().split_once(' ').unwrap();
        let agent_count =
            &m["executionMetricsByOperationType"][op]["sinceStart"]["totalExecutions"];
        assert_eq!(agent_count, count.parse::<u64>().unwrap(), "{op}");
        jq_types += 1;
    }
    assert_eq!(jq_types, ops.len());
    let out = sh(&format!(
        "cat {f} | jq 'select(.result.timedOut == true)' | jq -r '.timing.duration' | wc -l"
    ));
    assert_eq!(out.trim().parse::<u64>().unwrap(), timed_out);
    let out = sh(&format!(
        "cat {f} | jq -c 'select(.result.success == false)' | wc -l"
    ));
    assert_eq!(out.trim().parse::<u64>().unwrap(), failed + timed_out);
}

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn bad_lines_are_counted_and_skipped_with_bounded_memory() {
    let (work, logs) = setup();
    let file = logs.join(DAY1);
    std::fs::write(&file, "").unwrap();
    let mut agent = Agent::start(work.path(), &[]);
    let before = peak_rss_kib(agent.child.id());
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .filter(|b| *b != b'\n')
        .collect();
    garbage.insert(0, 0xff);
    garbage.push(b'\n');
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend(line(1).as_bytes());
    bytes.extend(b"{\"timestamp\":\n"); // malformed: cut short
    bytes.extend(b"{\"timing\":{},\"result\":{\"success\":true}}\n"); // missing duration
    bytes.extend(b"{\"timing\":{\"duration\":\"12\"},\"result\":{\"success\":true}}\n"); // wrong type
    bytes.extend(&garbage); // binary garbage: malformed
    bytes.extend(b"\n"); // empty
    bytes.extend(line(2).as_bytes());
    f.write_all(&bytes).unwrap();
    // A 10 MB line, written in pieces as a slow writer would.
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..10 {
        f.write_all(&piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    f.write_all(b"\n").unwrap();
    f.write_all(line(3).as_bytes()).unwrap();
    let m = agent.expect_total(3, work.path());
    let lines = &m["operationsLog"]["lines"];
    assert_eq!(lines["ok"], 3, "{lines}");
    assert_eq!(lines["malformed"], 2, "{lines}");
    assert_eq!(lines["missing_field"], 1, "{lines}");
    assert_eq!(lines["invalid"], 1, "{lines}");
    assert_eq!(lines["empty"], 1, "{lines}");
    assert_eq!(lines["too_long"], 1, "{lines}");
    let (_, prom) = common::http_get(&agent.url("/metrics")).unwrap();
    assert!(prom.contains("codex_sentinel_oplog_lines_total{result=\"malformed\"} 2"));
    // The long line was never held whole: the peak grew by far less than its 10 MB.
    let grown = peak_rss_kib(agent.child.id()).saturating_sub(before);
    assert!(grown < 6 * 1024, "peak RSS grew by {grown} KiB");
    assert!(agent.child.try_wait().unwrap().is_none(), "agent exited");
    // Warnings about bad lines are rate-limited: one for this burst (`expect_total` saw the
    // reader poll after it).
    let log = agent_logs(work.path());
    assert_eq!(
        log.matches("operations-log lines skipped").count(),
        1,
        "{log}"
    );
}

#[test]
fn unreadable_log_directory_is_reported_and_recovered_from() {
    // As root (the CI), file permissions cannot make a file unreadable; a directory path that
    // is a regular file fails to be listed for everyone.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("logs")).unwrap();
    std::fs::write(work.path().join("logs/codex"), "not a directory").unwrap();
    let agent = Agent::start(work.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.metrics()["operationsLog"]["readErrors"]["list"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "listing errors not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.metrics()["operationsLog"]["directoryExists"], false);
    let (_, prom) = common::http_get(&agent.url("/metrics")).unwrap();
    assert!(prom.contains("codex_sentinel_oplog_read_errors_total{kind=\"list\"}"));
    std::fs::remove_file(work.path().join("logs/codex")).unwrap();
    std::fs::create_dir_all(work.path().join("logs/codex")).unwrap();
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&line(i));
    }
    std::fs::write(work.path().join("logs/codex").join(DAY1), text).unwrap();
    agent.expect_total(10, work.path());
    assert_eq!(
        // The reader's warning (the disk sampler warns about the same path in its own words).
        agent_logs(work.path())
            .lines()
            .filter(|l| l.contains("operations-log directory") && l.contains("cannot be read"))
            .count(),
        1,
        "the warning is rate-limited"
    );
}

#[test]
fn absurd_durations_are_rejected_and_the_saved_state_survives_a_restart() {
    let (work, logs) = setup();
    let env = [("CODEX_OPERATIONS_LOG_BACKFILL", "true")];
    let agent = Agent::start(work.path(), &env);
    let huge = |d: &str| {
        format!(
            "{{\"timestamp\":{},\"operationType\":\"audit\",\"timing\":{{\"duration\":{d}}},\"result\":{{\"success\":true}}}}\n",
            now_ms()
        )
    };
    let mut text = huge("1.7e308") + &huge("1.7e308") + &huge("86400000");
    for i in 0..3 {
        text.push_str(&line(i));
    }
    std::fs::write(logs.join(DAY1), &text).unwrap();
    let m = agent.expect_total(4, work.path());
    assert_eq!(m["operationsLog"]["lines"]["implausible"], 2, "{m}");
    agent.stop();

    // The state written at shutdown reads back: nothing counted again, nothing thrown away.
    let agent = Agent::start(work.path(), &env);
    let m = agent.expect_total(4, work.path());
    assert_eq!(m["operationsLog"]["lines"]["implausible"], 2, "{m}");
    let logs_text = agent_logs(work.path());
    assert!(
        !logs_text.contains("corrupt") && !logs_text.contains("recovered"),
        "{logs_text}"
    );
}

/// Appends `n` lines numbered from `first` through `file` (one descriptor kept open with
/// O_APPEND, as an application using copytruncate does).
fn write_lines(file: &mut File, first: u64, n: u64) {
    let text: String = (first..first + n).map(line).collect();
    file.write_all(text.as_bytes()).unwrap();
}

fn run(cmd: &str, args: &[&Path]) {
    let status = Command::new(cmd).args(args).status().unwrap();
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

#[test]
fn log_directory_moved_away_and_back_is_counted_once() {
    let (work, logs) = setup();
    let agent = Agent::start(work.path(), &[]);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(DAY1))
        .unwrap();
    write_lines(&mut f, 0, 1000);
    agent.expect_total(1000, work.path());
    let away = work.path().join("logs/codex-away");
    std::fs::rename(&logs, &away).unwrap();
    // The reader reports the directory missing once it has given up on the files in it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.metrics()["operationsLog"]["directoryExists"] != false {
        assert!(Instant::now() < deadline, "the move was not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::rename(&away, &logs).unwrap();
    write_lines(&mut f, 1000, 10);
    let m = agent.expect_total(1010, work.path());
    assert_eq!(m["operationsLog"]["directoryExists"], true);
}

#[test]
fn copytruncate_over_an_existing_rotated_file_is_counted_once() {
    let (work, logs) = setup();
    let agent = Agent::start(work.path(), &[]);
    let (live, copy) = (logs.join(DAY1), logs.join(format!("{DAY1}.1")));
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    let mut written = 0;
    // Copies of different lengths, each over the previous rotation's `.1` (same inode).
    for lines in [1000, 500, 700] {
        write_lines(&mut f, written, lines);
        written += lines;
        agent.wait_total_at_least(written);
        // Ten lines the agent may not have read before the rotation: only the copy has them.
        write_lines(&mut f, written, 10);
        written += 10;
        run("cp", &[&live, &copy]);
        run("truncate", &[Path::new("-s0"), &live]);
    }
    write_lines(&mut f, written, 1);
    let m = agent.expect_total(written + 1, work.path());
    assert_eq!(line_counts(&m), (written + 1, 0), "{}", m["operationsLog"]);
}
