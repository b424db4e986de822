//! History, reports and learned baselines, end to end: a generated operations log spanning 30
//! hours is read by the real agent (backfill), its per-hour history written at shutdown, and
//! `codex-sentinel report` / `baseline show` compared with values computed here, independently,
//! from the same generated lines. Plus `baseline save` against the running agent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{agent_bin, start_agent, AgentOptions};
use serde_json::Value;

const N: u64 = 600;
const HOUR: u64 = 3_600_000;

struct Exec {
    ts: u64,
    duration: f64,
    success: bool,
    timed_out: bool,
}

/// Deterministic executions spread over the last 30 hours.
fn generate(now: u64) -> Vec<Exec> {
    (0..N)
        .map(|i| {
            let timed_out = i % 37 == 0;
            Exec {
                ts: now - 30 * HOUR + (i * 30 * HOUR) / N + 1,
                duration: (50 + (i * 7919) % 20_000) as f64 + if i % 3 == 0 { 0.5 } else { 0.0 },
                success: i % 11 != 0 && !timed_out,
                timed_out,
            }
        })
        .collect()
}

fn write_log(dir: &Path, execs: &[Exec]) {
    let day = codex_sentinel::audit::day_of(codex_sentinel::util::now_ms());
    let logs = dir.join("logs/codex");
    std::fs::create_dir_all(&logs).unwrap();
    let mut text = String::new();
    for (i, e) in execs.iter().enumerate() {
        text += &format!(
            "{{\"timestamp\":{},\"operationType\":\"audit\",\"sessionId\":\"s-{i}\",\"timing\":{{\"duration\":{}}},\"result\":{{\"success\":{},\"timedOut\":{}}}}}\n",
            e.ts, e.duration, e.success, e.timed_out
        );
    }
    std::fs::write(logs.join(format!("codex-operations-{day}.jsonl")), text).unwrap();
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn percent(part: u64, whole: u64) -> f64 {
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

fn close(got: &Value, want: f64, rel: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (g - want).abs() <= want.abs() * rel + 1e-9,
        "{what}: got {g}, want {want} (±{rel})"
    );
}

fn cli(dir: &Path, state: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(agent_bin())
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODEX_STATE_DIR", state)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn report_and_learned_baselines_equal_values_computed_from_the_log() {
    let now = codex_sentinel::util::now_ms();
    let execs = generate(now);
    let state = tempfile::tempdir().unwrap();
    // The log is there before the agent's first look (backfill reads today's file).
    let logs = tempfile::tempdir().unwrap();
    write_log(logs.path(), &execs);
    let mut agent = start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_HEALTH_MONITORING", "false".into()),
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true".into()),
            (
                "CODEX_OPERATIONS_LOG_DIR",
                logs.path().join("logs/codex").display().to_string(),
            ),
            ("CODEX_STATE_DIR", state.path().display().to_string()),
        ],
        ..Default::default()
    });
    agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["executionMetricsSinceStart"]["totalExecutions"] == N
    });
    // `baseline save` against the running agent: the detailed metrics, as served.
    let port = agent.port.to_string();
    let (code, out, err) = cli(
        agent.path(),
        state.path(),
        &["baseline", "save", "--dir", "monitoring/baselines"],
        &[("CODEX_HEALTH_PORT", port.as_str())],
    );
    assert_eq!(code, 0, "{err}");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.path().join(out.trim())).unwrap())
            .unwrap();
    assert_eq!(saved["executionMetricsSinceStart"]["totalExecutions"], N);
    assert!(out
        .trim()
        .ends_with(&format!("{}.json", codex_sentinel::audit::day_of(now))));

    // Shutdown writes the history.
    let (code, _) = agent.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", agent.stderr());

    // Independently: everything from the generated executions.
    let mut durations: Vec<f64> = execs.iter().map(|e| e.duration).collect();
    durations.sort_by(f64::total_cmp);
    let ok = execs.iter().filter(|e| e.success).count() as u64;
    let timeouts = execs.iter().filter(|e| e.timed_out).count() as u64;
    let sum: f64 = durations.iter().sum();

    let (code, out, err) = cli(
        agent.path(),
        state.path(),
        &["report", "--since", "7d", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let e = &r["total"]["executions"];
    assert_eq!(e["total"], N);
    assert_eq!(e["successful"], ok);
    assert_eq!(e["timedOut"], timeouts);
    assert_eq!(e["failed"], N - ok - timeouts);
    assert_eq!(e["successRate"], percent(ok, N));
    close(&e["averageExecutionTime"], sum / N as f64, 1e-12, "average");
    assert_eq!(e["maxExecutionTime"], *durations.last().unwrap());
    for (key, q) in [
        ("p50ExecutionTime", 0.5),
        ("p95ExecutionTime", 0.95),
        ("p99ExecutionTime", 0.99),
    ] {
        // The history keeps a quantile sketch with 0.5 % relative accuracy.
        close(&e[key], nearest_rank(&durations, q), 0.005, key);
    }
    // By UTC day, exactly.
    let mut by_day: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for x in &execs {
        let d = by_day
            .entry(codex_sentinel::audit::day_of(x.ts))
            .or_default();
        d.0 += 1;
        d.1 += u64::from(x.success);
    }
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), by_day.len());
    for (d, (date, (n, ok))) in days.iter().zip(&by_day) {
        assert_eq!(d["date"], *date);
        assert_eq!(d["executions"]["total"], *n);
        assert_eq!(d["executions"]["successRate"], percent(*ok, *n));
    }
    // A shorter period holds only the executions of its hours.
    let (_, out, _) = cli(
        agent.path(),
        state.path(),
        &["report", "--since", "2h", "--format", "json"],
        &[],
    );
    let short: Value = serde_json::from_str(&out).unwrap();
    let from = short["from"].as_u64().unwrap();
    let want = execs
        .iter()
        .filter(|x| x.ts - x.ts % HOUR + HOUR > from)
        .count() as u64;
    assert_eq!(short["total"]["executions"]["total"], want);

    // Text and Markdown carry the same numbers.
    let (_, text, _) = cli(agent.path(), state.path(), &["report"], &[]);
    assert!(
        text.contains(&format!("Executions      {N} ({ok} successful")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Success rate    {:.2} %", percent(ok, N))),
        "{text}"
    );
    let (_, md, _) = cli(
        agent.path(),
        state.path(),
        &["report", "--format", "markdown"],
        &[],
    );
    assert!(md.contains(&format!("| Executions | {N} |")), "{md}");

    // Learned baselines over one day; the explicit p95 wins.
    let learn = [
        ("CODEX_PERF_BASELINE_LEARN", "true"),
        ("CODEX_PERF_BASELINE_LEARNING_DAYS", "1"),
        ("CODEX_PERF_BASELINE_P95_TIME", "12345"),
    ];
    let (code, out, err) = cli(
        agent.path(),
        state.path(),
        &["baseline", "show", "--format", "json"],
        &learn,
    );
    assert_eq!(code, 0, "{err}");
    let b: Value = serde_json::from_str(&out).unwrap();
    let day_from = b["learned"]["from"].as_u64().unwrap();
    let used: Vec<&Exec> = execs
        .iter()
        .filter(|x| x.ts - x.ts % HOUR + HOUR > day_from)
        .collect();
    let mut used_d: Vec<f64> = used.iter().map(|x| x.duration).collect();
    used_d.sort_by(f64::total_cmp);
    let used_ok = used.iter().filter(|x| x.success).count() as u64;
    assert_eq!(b["learned"]["executions"], used.len() as u64);
    assert_eq!(
        b["learned"]["avgTime"],
        (used_d.iter().sum::<f64>() / used.len() as f64).round() as u64
    );
    close(
        &b["learned"]["p99Time"],
        nearest_rank(&used_d, 0.99).round(),
        0.006,
        "learned p99",
    );
    assert_eq!(
        b["learned"]["successRate"],
        percent(used_ok, used.len() as u64)
    );
    assert_eq!(b["effective"]["p95Time"], 12345);
    assert_eq!(b["effective"]["avgTime"], b["learned"]["avgTime"]);
    assert_eq!(b["explicit"]["avgTime"], Value::Null);

    // Too short a history: nothing learned, said so.
    let (_, out, _) = cli(
        agent.path(),
        state.path(),
        &["baseline", "show"],
        &[
            ("CODEX_PERF_BASELINE_LEARN", "true"),
            ("CODEX_PERF_BASELINE_LEARNING_DAYS", "7"),
        ],
    );
    assert!(
        out.contains("No learned baselines yet: learning: history covers"),
        "{out}"
    );

    // The agent itself uses them at start.
    let agent = start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_HEALTH_MONITORING", "false".into()),
            ("CODEX_STATE_DIR", state.path().display().to_string()),
            ("CODEX_PERF_BASELINE_LEARN", "true".into()),
            ("CODEX_PERF_BASELINE_LEARNING_DAYS", "1".into()),
            ("CODEX_PERF_BASELINE_P95_TIME", "12345".into()),
        ],
        ..Default::default()
    });
    let log = agent.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("baselines learned from history"))
        .unwrap_or_else(|| panic!("no learning logged:\n{log}"));
    // Logged as plain numbers, not `Some(..)` renderings.
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.contains(&"p95_time=12345"), "{line}");
    let avg = format!("avg_time={}", b["learned"]["avgTime"]);
    assert!(words.contains(&avg.as_str()), "{line}");
}
