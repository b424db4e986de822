//! Operations-log ingestion throughput against the specification's jq pipeline, measured in
//! the same run on the same file, and tail latency of the real agent binary.
//!
//! `cargo bench --bench oplog_ingest` (add `-- --quick` for a shorter run). Under
//! `cargo test --all-targets` (no `--bench` argument) it only checks that it works, on a small
//! file, and claims no figures. Prints:
//! - lines/s of the agent's reader + statistics on one core (this thread pinned to CPU 0):
//!   read, split with memchr, parse the used fields, fold into the execution statistics;
//! - the time of `cat FILE | jq '.timing.duration' | awk '{sum+=$1; count++} END {...}'`;
//! - the ratio of the two;
//! - the parser alone (criterion);
//! - how long a line appended to the log takes to show in `/health/codex/metrics`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_sentinel::monitor::executions::ExecutionStats;
use codex_sentinel::sources::oplog::parse::parse_line;
use codex_sentinel::sources::oplog::tail::{TailConfig, Tailer};
use std::hint::black_box;

use criterion::{Criterion, Throughput};

const BENCH_LINES: usize = 1_000_000;
/// Lines when run as a test (`cargo test --all-targets`): a smoke run, no figures.
const SMOKE_LINES: usize = 10_000;
const FILE: &str = "codex-operations-2026-11-26.jsonl";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A line like the application writes (~135 bytes).
fn line(i: usize, ts: u64) -> String {
    let ops = ["audit", "review", "fix"];
    format!(
        "{{\"timestamp\":{ts},\"operationType\":\"{}\",\"sessionId\":\"s-{:06}\",\"timing\":{{\"duration\":{},\"queueWait\":{}}},\"result\":{{\"success\":{}}},\"retryCount\":0}}\n",
        ops[i % 3],
        i % 1_000_000,
        100 + (i * 7919) % 60_000,
        i % 40,
        !i.is_multiple_of(10)
    )
}

fn pin_to_cpu0() {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Reads the whole file with the agent's reader and folds every batch into the statistics.
fn ingest(dir: &Path) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut tailer = Tailer::new(
        TailConfig::new(dir.into(), "codex-operations-YYYY-MM-DD.jsonl", true),
        None,
    );
    let mut stats = ExecutionStats::default();
    let now = now_ms();
    let mut lines = 0;
    loop {
        let out = tailer.poll(now);
        if let Some(batch) = out.batch {
            lines += batch.lines.iter().sum::<u64>();
            stats.apply(batch, now, None);
        }
        if !out.more {
            break;
        }
    }
    black_box(stats.metrics(now));
    (lines, t0.elapsed())
}

fn jq_pipeline(file: &Path) -> (String, Duration) {
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; cat {} | jq '.timing.duration' | awk '{{sum+=$1; count++}} END {{print \"Average:\", sum/count \"ms\"}}'",
            file.display()
        ))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "jq pipeline failed (is jq installed? scripts/setup.d/00-apt.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        t0.elapsed(),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn throughput_vs_jq(lines: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE);
    let ts = now_ms() - 1_800_000;
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for i in 0..lines {
        w.write_all(line(i, ts + i as u64).as_bytes()).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "file: {lines} lines, {:.1} MB ({:.0} bytes/line)",
        bytes as f64 / 1e6,
        bytes as f64 / lines as f64
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut jq_out = String::new();
    // Warm the page cache once so both read from memory.
    let _ = std::fs::read(&file).unwrap();
    for _ in 0..rounds {
        let (n, t) = ingest(dir.path());
        assert_eq!(n, lines as u64);
        ours.push(t);
        let (out, t) = jq_pipeline(&file);
        jq_out = out;
        theirs.push(t);
    }
    let (o, j) = (median(ours), median(theirs));
    let ours_rate = lines as f64 / o.as_secs_f64();
    let jq_rate = lines as f64 / j.as_secs_f64();
    println!(
        "agent reader + statistics (one core): {:.3} s, {:.0} lines/s, {:.0} MB/s",
        o.as_secs_f64(),
        ours_rate,
        bytes as f64 / 1e6 / o.as_secs_f64()
    );
    println!(
        "jq pipeline ({jq_out}): {:.3} s, {:.0} lines/s",
        j.as_secs_f64(),
        jq_rate
    );
    println!(
        "ratio: {:.1}x the jq pipeline (target >= 4.5x, >= 2,000,000 lines/s)",
        ours_rate / jq_rate
    );
}

fn parser(c: &mut Criterion) {
    let text = line(7, now_ms());
    let bytes = text.trim_end().as_bytes();
    let mut g = c.benchmark_group("oplog");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse_line", |b| {
        b.iter(|| parse_line(black_box(bytes)).is_ok())
    });
    g.finish();
}

/// Starts the release agent, appends lines one at a time, measures until each is counted.
fn tail_latency(samples: usize) {
    let bin = env!("CARGO_BIN_EXE_codex-sentinel");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs/codex");
    std::fs::create_dir_all(&logs).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .env("CODEX_HEALTH_PORT", port.to_string())
        .env("CODEX_EXECUTABLE", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let total = || -> Option<u64> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            s,
            "GET /health/codex/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        std::io::Read::read_to_string(&mut s, &mut body).ok()?;
        let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").nth(1)?).ok()?;
        if json["operationsLog"]["readerStarted"] != true {
            return None;
        }
        json["executionMetricsSinceStart"]["totalExecutions"].as_u64()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while total().is_none() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(FILE))
        .unwrap();
    let mut lat = Vec::new();
    for i in 0..samples {
        // Spread appends over the poll cycle.
        std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7) + 10));
        let before = total().unwrap();
        let t0 = Instant::now();
        f.write_all(line(i, now_ms()).as_bytes()).unwrap();
        while total() == Some(before) {
            std::thread::sleep(Duration::from_millis(5));
        }
        lat.push(t0.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "tail latency over {samples} appends: median {:.0} ms, p95 {:.0} ms, max {:.0} ms (target <= 1000 ms)",
        ms(lat[lat.len() / 2]),
        ms(lat[(lat.len() * 95).div_ceil(100) - 1]),
        ms(*lat.last().unwrap())
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        throughput_vs_jq(SMOKE_LINES, 1);
        assert!(parse_line(line(1, now_ms()).trim_end().as_bytes()).is_ok());
        tail_latency(2);
        println!("(smoke run under cargo test: the figures above mean nothing)");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    pin_to_cpu0();
    if filter.is_empty() || "throughput".contains(&filter) {
        throughput_vs_jq(BENCH_LINES, if quick { 1 } else { 3 });
    }
    if filter.is_empty() || "parse_line".contains(&filter) {
        let mut c = Criterion::default()
            .measurement_time(Duration::from_secs(if quick { 1 } else { 3 }))
            .warm_up_time(Duration::from_millis(500));
        parser(&mut c);
        c.final_summary();
    }
    if filter.is_empty() || "latency".contains(&filter) {
        tail_latency(if quick { 10 } else { 30 });
    }
}
