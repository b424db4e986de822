//! The process sampler end to end: the real agent binary watching real processes with known
//! load (`examples/load-worker.rs`), churn, and the real Codex CLI.
//!
//! Each test names its workers uniquely (symlinks, since the kernel's comm is the executable's
//! file name) so that parallel tests — and anything else on the machine — are not counted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{start_agent, Agent, AgentOptions};
use serde_json::Value;

/// The tests measure CPU: run them one at a time so they do not steal each other's cores.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: f64 = 1_048_576.0;

/// The load worker cargo builds with the examples (`cargo test` builds examples).
fn worker_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/load-worker");
    assert!(
        p.exists(),
        "load worker missing at {}: build it with `cargo build --example load-worker` \
         (scripts/test builds every target)",
        p.display()
    );
    p
}

/// A symlink to the worker under `name` (≤ 15 characters: the kernel's comm).
fn named_worker(dir: &Path, name: &str) -> PathBuf {
    assert!(name.len() <= 15);
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(worker_bin(), &link).unwrap();
    }
    link
}

fn spawn(path: &Path, args: &[&str]) -> Child {
    Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn metrics(agent: &Agent) -> Value {
    agent.get_json("/health/codex/metrics").1
}

fn samples(m: &Value) -> u64 {
    m["processes"]["sampler"]["samples"].as_u64().unwrap_or(0)
}

fn agent_with(env: Vec<(&'static str, String)>) -> Agent {
    let mut all = vec![
        // Probes are not what these tests look at: keep them rare.
        ("CODEX_HEALTH_CHECK_INTERVAL", "600000".to_string()),
        ("CODEX_EXECUTABLE", "true".to_string()),
        // Only this test's descendants count: Codex CLIs that other suites on the machine run
        // (npm wrappers match by default) must not.
        ("CODEX_PROCESS_ANCESTOR_PID", std::process::id().to_string()),
    ];
    all.extend(env);
    start_agent(AgentOptions {
        env: all,
        ..Default::default()
    })
}

/// Prometheus sample value of a series without labels.
fn prom_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[test]
fn known_memory_and_cpu_load_are_measured() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id() % 100_000;
    let (mem_name, cpu_name) = (format!("cs-mem-{tag}"), format!("cs-cpu-{tag}"));
    let mem = spawn(&named_worker(dir.path(), &mem_name), &["--rss-mib", "64"]);
    let cpu = spawn(&named_worker(dir.path(), &cpu_name), &["--cpu", "50"]);
    let (mem_pid, cpu_pid) = (mem.id(), cpu.id());
    let _guard = Killed(vec![mem, cpu]);
    // Both workers under way before the first reading: the memory touched, the burner burning.
    let deadline = Instant::now() + Duration::from_secs(20);
    while kernel_rss_kib(mem_pid) < 64 * 1024 || kernel_cpu_ticks(cpu_pid) < 10 {
        assert!(Instant::now() < deadline, "load workers did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let agent = agent_with(vec![
        ("CODEX_PROCESS_NAMES", format!("{mem_name},{cpu_name}")),
        ("CODEX_SAMPLE_INTERVAL", "1000".into()),
        ("CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE", "50".into()),
        (
            "CODEX_HEALTH_THRESHOLD_MAX_CONCURRENT_PROCESSES",
            "1".into(),
        ),
    ]);
    agent.wait_json("/health/codex/metrics", Duration::from_secs(20), |m| {
        samples(m) >= 2
    });
    // The burner gets what the scheduler gives it (less than its 50 % when every core is
    // busy): the agent's figure is compared with the kernel's count over the same interval,
    // from just after one sample to just after the next.
    let (ticks0, at0, _) = after_next_sample(&agent, cpu_pid);
    let (ticks1, at1, m) = after_next_sample(&agent, cpu_pid);
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let kernel_burn = (ticks1 - ticks0) as f64 / ticks_per_sec * 100.0 / (at1 - at0).as_secs_f64();
    assert!(
        kernel_burn > 5.0,
        "the burner did not run: {kernel_burn:.1} %"
    );
    let top = m["processes"]["topProcesses"].as_array().unwrap();
    let find = |pid: u32| {
        top.iter()
            .find(|p| p["pid"] == pid)
            .unwrap_or_else(|| panic!("pid {pid} not in top list: {m}"))
    };
    let mem_rss = find(mem_pid)["rss"].as_f64().unwrap();
    assert!(
        (mem_rss - 64.0).abs() <= 6.4,
        "64 MiB worker measured at {mem_rss} MB: {m}"
    );
    let burn = find(cpu_pid)["cpu"].as_f64().unwrap();
    assert!(
        (burn - kernel_burn).abs() <= 15.0,
        "burner at {kernel_burn:.1} % (kernel) measured at {burn} %: {m}"
    );
    assert_eq!(find(cpu_pid)["command"], cpu_name.as_str());
    assert_eq!(find(mem_pid)["role"], "execution");

    let res = &m["performance"]["resourceMetrics"];
    assert_eq!(res["processCount"]["current"], 2.0, "{m}");
    let total_mb = res["memoryUsage"]["current"].as_f64().unwrap();
    assert!(total_mb >= mem_rss && total_mb < mem_rss + 10.0, "{m}");
    let total_cpu = res["cpuUsage"]["current"].as_f64().unwrap();
    assert!(
        (total_cpu - kernel_burn).abs() <= 16.0,
        "kernel {kernel_burn:.1} %: {m}"
    );
    let util = m["processes"]["cpuUtilization"].as_f64().unwrap();
    let cores = m["processes"]["cores"].as_f64().unwrap();
    assert!((util - total_cpu / 100.0 / cores).abs() < 0.01, "{m}");

    // The same numbers in Prometheus units (bytes, percent of one core).
    let (_, text) = agent.get("/metrics");
    let bytes = prom_value(&text, "codex_memory_usage_bytes");
    assert!(
        (bytes / MIB - total_mb).abs() < 2.0,
        "{bytes} vs {total_mb} MB"
    );
    assert_eq!(prom_value(&text, "codex_active_processes"), 2.0);
    let prom_cpu = prom_value(&text, "codex_cpu_usage_percent");
    assert!(
        (prom_cpu - kernel_burn).abs() <= 16.0,
        "{prom_cpu} % vs kernel {kernel_burn:.1} %"
    );
    assert!(prom_value(&text, "codex_sentinel_memory_rss_bytes") > MIB);
    assert!(prom_value(&text, "codex_sentinel_threads") >= 1.0);
    assert!(prom_value(&text, "codex_sentinel_open_fds") >= 3.0);

    // 66 MB > 50 MB limit (≤ 75: warning); 2 executions > 1.5 × 1: critical.
    let (code, health) = agent.get_json("/health/codex");
    let check = |name: &str| {
        health["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {health}"))
            .clone()
    };
    assert_eq!(check("memory-usage")["status"], "warning", "{health}");
    assert_eq!(check("memory-usage")["details"]["thresholdMb"], 50);
    assert_eq!(check("process-count")["status"], "critical", "{health}");
    assert_eq!(health["overall"], "critical");
    assert_eq!(code, 503);
    assert_eq!(
        health["performance"]["resourceMetrics"]["processCount"]["current"],
        2.0
    );
    let (_, status) = agent.get_json("/health/codex/status");
    assert_eq!(status["activeProcesses"], 2);
}

/// Waits for the agent's next process sample; returns the CPU ticks of `pid` and the time
/// right after it, with the metrics of that sample.
fn after_next_sample(agent: &Agent, pid: u32) -> (u64, Instant, Value) {
    let seen = samples(&metrics(agent));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(agent);
        if samples(&m) > seen {
            return (kernel_cpu_ticks(pid), Instant::now(), m);
        }
        assert!(Instant::now() < deadline, "no new sample");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// VmRSS of `pid` in KiB, as the kernel reports it (0 when unreadable).
fn kernel_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of `pid` in clock ticks (0 when unreadable).
fn kernel_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, after)) = stat.rsplit_once(") ") else {
        return 0;
    };
    // Fields after the command: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    tick(11) + tick(12)
}

/// Reads the agent's own RSS (bytes) and sample count from the detailed metrics.
fn own_rss(agent: &Agent) -> (u64, u64) {
    let m = metrics(agent);
    (
        m["processes"]["agent"]["rssBytes"].as_u64().unwrap(),
        samples(&m),
    )
}

/// Samples before the agent's memory is taken as settled.
const WARM_UP_SAMPLES: u64 = 500;
/// Samples over which its RSS must stay flat.
const MEASURED_SAMPLES: u64 = 1_500;
/// Growth allowed over [`MEASURED_SAMPLES`]: about 350 bytes a sample.
const MAX_GROWTH_BYTES: f64 = 0.5 * MIB;

#[test]
fn churn_is_counted_exactly_and_does_not_grow_the_agent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let name = format!("cs-churn-{}", std::process::id() % 100_000);
    let worker = named_worker(dir.path(), &name);
    let agent = agent_with(vec![
        ("CODEX_PROCESS_NAMES", name.clone()),
        ("CODEX_SAMPLE_INTERVAL", "10".into()),
        ("CODEX_PROCESS_DISCOVERY_INTERVAL", "20".into()),
        ("CODEX_PROCESS_WINDOW", "2000".into()),
    ]);

    // 100 short-lived executions, 10 at a time, 400 ms each.
    for _wave in 0..10 {
        let mut wave: Vec<Child> = (0..10)
            .map(|_| spawn(&worker, &["--lifetime-ms", "400"]))
            .collect();
        for c in &mut wave {
            assert!(c.wait().unwrap().success());
        }
    }
    let m = agent.wait_json("/health/codex/metrics", Duration::from_secs(10), |m| {
        m["performance"]["resourceMetrics"]["processCount"]["current"] == 0.0 && samples(m) > 0
    });
    assert_eq!(
        m["processes"]["sampler"]["executionsStarted"], 100,
        "every execution seen exactly once: {m}"
    );
    assert_eq!(
        m["processes"]["sinceStart"]["processCount"]["peak"], 10.0,
        "{m}"
    );
    let (_, text) = agent.get("/metrics");
    assert_eq!(prom_value(&text, "codex_processes_started_total"), 100.0);

    // 25 held at once: counted exactly, then gone.
    let held = Killed(
        (0..25)
            .map(|_| spawn(&worker, &["--lifetime-ms", "60000"]))
            .collect(),
    );
    agent.wait_json("/health/codex/metrics", Duration::from_secs(10), |m| {
        m["performance"]["resourceMetrics"]["processCount"]["current"] == 25.0
    });
    drop(held);
    agent.wait_json("/health/codex/metrics", Duration::from_secs(10), |m| {
        m["performance"]["resourceMetrics"]["processCount"]["current"] == 0.0
    });

    // Thousands of samples under constant churn: the agent's own memory stays flat.
    let churn_until = |target: u64| {
        let mut alive: Vec<Child> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            alive.retain_mut(|c| c.try_wait().unwrap().is_none());
            while alive.len() < 5 {
                alive.push(spawn(&worker, &["--lifetime-ms", "100"]));
            }
            let (rss, n) = own_rss(&agent);
            if n >= target {
                for c in &mut alive {
                    let _ = c.wait();
                }
                return (rss, n);
            }
            assert!(Instant::now() < deadline, "sampling too slow: {n} samples");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // 1,500 samples after a warm-up of 500: a leak of 350 bytes a sample would pass the bound.
    let (_, start) = own_rss(&agent);
    let (rss_warm, _) = churn_until(start + WARM_UP_SAMPLES);
    let (rss_end, n_end) = churn_until(start + WARM_UP_SAMPLES + MEASURED_SAMPLES);
    let growth = rss_end as f64 - rss_warm as f64;
    eprintln!(
        "agent RSS at sample {}: {rss_warm} bytes; at sample {n_end}: {rss_end} bytes",
        start + WARM_UP_SAMPLES
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "agent RSS grew {:.0} KiB from sample {} to {n_end} ({rss_warm} → {rss_end} bytes)",
        growth / 1024.0,
        start + WARM_UP_SAMPLES
    );
    let m = metrics(&agent);
    let started = m["processes"]["sampler"]["executionsStarted"]
        .as_u64()
        .unwrap();
    assert!(started > 125, "churned executions counted: {m}");
    assert!(
        !agent.stderr().contains("panicked"),
        "agent log: {}",
        agent.stderr()
    );
}

#[test]
fn the_real_codex_cli_is_seen_while_it_lives() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let codex = common::codex_bin();
    let home = tempfile::tempdir().unwrap();
    // `codex exec` without network hangs retrying: a real, long-enough execution.
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(&codex)
            .args(["exec", "--skip-git-repo-check", "say hi"])
            .current_dir(home.path())
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let pgid = child.id() as i32;
    struct Group(i32);
    impl Drop for Group {
        fn drop(&mut self) {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
    let group = Group(pgid);

    // Only this test's descendants count (agent_with): other Codex processes do not.
    let agent = agent_with(vec![
        ("CODEX_SAMPLE_INTERVAL", "250".into()),
        ("CODEX_PROCESS_DISCOVERY_INTERVAL", "250".into()),
    ]);
    // Both processes seen, and both past their start (on a busy machine the native binary
    // can be sampled before it has mapped its first 10 MB).
    let m = agent.wait_json("/health/codex/metrics", Duration::from_secs(30), |m| {
        m["processes"]["osProcesses"] == 2
            && m["processes"]["topProcesses"]
                .as_array()
                .is_some_and(|top| top.iter().all(|p| p["rss"].as_f64() > Some(10.0)))
    });
    let res = &m["performance"]["resourceMetrics"];
    assert_eq!(
        res["processCount"]["current"], 1.0,
        "wrapper + native binary are one execution: {m}"
    );
    let top = m["processes"]["topProcesses"].as_array().unwrap();
    let by_role = |role: &str| {
        top.iter()
            .find(|p| p["role"] == role)
            .unwrap_or_else(|| panic!("no {role} in {m}"))
            .clone()
    };
    let wrapper = by_role("wrapper");
    let native = by_role("child");
    assert_eq!(wrapper["pid"], child.id());
    assert!(wrapper["command"]
        .as_str()
        .unwrap()
        .starts_with("node codex exec"));
    assert_eq!(native["command"], "codex exec");
    let native_mb = native["rss"].as_f64().unwrap();
    let wrapper_mb = wrapper["rss"].as_f64().unwrap();
    assert!(native_mb > 10.0, "native codex RSS {native_mb} MB: {m}");
    assert!(wrapper_mb > 10.0, "node wrapper RSS {wrapper_mb} MB: {m}");
    // The execution's memory is what both processes hold (read at one instant).
    let total = res["memoryUsage"]["current"].as_f64().unwrap();
    assert!((total - native_mb - wrapper_mb).abs() < 0.1, "{m}");
    // Cross-check with the kernel's own figure. The native binary is still growing while it
    // starts up, so compare readings taken close together until they agree.
    let native_pid = native["pid"].as_u64().unwrap();
    let kernel_mb = || {
        let status = std::fs::read_to_string(format!("/proc/{native_pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(&agent);
        let top = m["processes"]["topProcesses"].as_array().unwrap().clone();
        let agent_mb = top
            .iter()
            .find(|p| p["pid"] == native_pid)
            .and_then(|p| p["rss"].as_f64())
            .unwrap();
        let kernel = kernel_mb();
        if (kernel - agent_mb).abs() / kernel < 0.05 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel says {kernel:.1} MB, agent {agent_mb} MB"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    drop(group);
    let _ = child.wait();
    let m = agent.wait_json("/health/codex/metrics", Duration::from_secs(10), |m| {
        m["processes"]["osProcesses"] == 0
    });
    assert_eq!(
        m["performance"]["resourceMetrics"]["processCount"]["current"],
        0.0
    );
    assert_eq!(m["processes"]["sampler"]["executionsStarted"], 1, "{m}");
    // The killed group is reaped (by init or the subreaper) shortly after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::processes_in_group(pgid).is_empty() {
        assert!(Instant::now() < deadline, "codex process group left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
}
