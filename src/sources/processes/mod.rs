//! The process sampler: which processes are Codex, and what they cost in CPU and memory.
//!
//! Cost model. One `sysinfo::System` lives as long as the sampler. Every
//! `processes.discoveryInterval` (default 5 s) a full `/proc` listing finds new processes and
//! applies the matching rules; every `processes.sampleInterval` (default 1 s) only the processes
//! already matched are read, with one read of `/proc/PID/stat` each (state, CPU times, start
//! time and RSS are all in it; sysinfo would read `status`, `stat` and `statm`). The per-sample
//! cost therefore grows with the number of matched processes, not with everything in `/proc`.
//!
//! Matching (see `docs/processes.md`): a process is Codex when its name (comm), its executable
//! path or its command line matches, or — with `npmWrapper` — when it is the npm `node …/codex`
//! launcher. Optionally only descendants of a PID or of named processes count, and the agent's
//! own children (its probes) never do. A matched process whose ancestor is also matched belongs
//! to that ancestor's execution: memory and CPU add up over every matched process, but
//! `processes` counts executions (matched processes without a matched ancestor) — the wrapper
//! and the native `codex` binary it starts are one execution.
//!
//! CPU is computed here, not by sysinfo: Δ(user + system time) / Δ(monotonic wall time) × 100,
//! i.e. percent of one core. On first sight a process has no previous reading, so its value is
//! its lifetime average (CPU time / age from `/proc/PID/stat` start time): neither a false 0
//! nor a spike.

mod cgroup;
mod matcher;
mod procfs;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, UpdateKind};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ProcessesConfig};
use crate::monitor::resources::{AgentFootprint, ProcessInfo, ResourceSample, SamplerCounters};
use crate::monitor::{Observation, ObservationSender};
use crate::util::now_ms;
use cgroup::affinity_cpus;
pub use cgroup::available_cores;
pub use matcher::{command_summary, is_npm_wrapper, Matcher, OwnMatch};
use procfs::{boot_ms, read_stat, reread_if_execed, Kernel, SelfMeter};

/// At most one warning about unreadable processes or failed samples per this period; the
/// counters keep the full count.
pub const WARN_EVERY: Duration = Duration::from_secs(600);
/// Depth limit when walking up the parent chain (guards against a cycle in a racing listing).
const MAX_ANCESTRY: usize = 128;

/// A matched process being followed.
#[derive(Debug)]
struct Tracked {
    /// sysinfo's start time (s since epoch): a different value means the PID was reused.
    start_time: u64,
    /// Start time in clock ticks since boot (0 until first read): identity and age.
    start_ticks: u64,
    role: &'static str,
    counted: bool,
    command: String,
    /// (CPU ticks, when) of the last reading; `None` before the first.
    last: Option<(u64, Instant)>,
    zombie: bool,
    cpu: f64,
    rss: u64,
}

/// Rate-limits a warning while counting everything.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    fn warn(&mut self, now: Instant, msg: impl FnOnce(u64) -> String) {
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= WARN_EVERY)
        {
            tracing::warn!("{}", msg(self.suppressed));
            self.last = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}

/// The sampler. Not `Sync`-shared: one task owns it.
pub struct Sampler {
    matcher: Matcher,
    sys: sysinfo::System,
    tracked: HashMap<Pid, Tracked>,
    /// Processes a rule could not inspect, counted once each (pruned at every discovery).
    unreadable_seen: HashSet<(Pid, u64)>,
    discovery_every: Duration,
    last_discovery: Option<Instant>,
    top_n: usize,
    cores: f64,
    max_cpu: f64,
    kernel: Kernel,
    meter: SelfMeter,
    counters: SamplerCounters,
    warn: WarnLimiter,
    /// Reused between reads of `/proc/PID/stat`.
    buf: String,
}

/// Why the sampler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("invalid processes.cmdlineRegex: {0}")]
    Regex(#[from] regex::Error),
    #[error("cannot initialise sysinfo: {0}")]
    Sysinfo(String),
}

impl Sampler {
    pub fn new(cfg: &ProcessesConfig) -> Result<Self, SamplerError> {
        let sys = sysinfo::System::new().map_err(|e| SamplerError::Sysinfo(e.to_string()))?;
        let kernel = Kernel::get();
        let cpus = affinity_cpus()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
        Ok(Sampler {
            matcher: Matcher::new(cfg)?,
            sys,
            tracked: HashMap::new(),
            unreadable_seen: HashSet::new(),
            discovery_every: Duration::from_millis(cfg.discovery_interval),
            last_discovery: None,
            top_n: cfg.top_n,
            cores: available_cores(),
            max_cpu: cpus.max(1.0) * 100.0,
            kernel,
            meter: SelfMeter { kernel, last: None },
            counters: SamplerCounters::default(),
            warn: WarnLimiter::default(),
            buf: String::with_capacity(512),
        })
    }

    /// How many processes are being followed (matched at the last discovery, still alive).
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Processes sysinfo holds (all of `/proc` at the last discovery).
    pub fn known(&self) -> usize {
        self.sys.processes().len()
    }

    /// Makes the next sample list `/proc` even if the discovery interval has not passed.
    pub fn force_discovery(&mut self) {
        self.last_discovery = None;
    }

    /// Takes one sample: discovery when due, then a reading of every matched process.
    pub fn sample(&mut self) -> ResourceSample {
        let started = Instant::now();
        let timestamp = now_ms();
        self.counters.samples += 1;
        let agent = match self.meter.read(started) {
            Ok(a) => a,
            Err(e) => return self.failed(timestamp, started, e),
        };
        if self
            .last_discovery
            .is_none_or(|l| started.duration_since(l) >= self.discovery_every)
        {
            self.discover(started);
        }
        let mut sample = self.measure(started);
        sample.timestamp = timestamp;
        sample.agent = agent;
        sample.duration_seconds = started.elapsed().as_secs_f64();
        sample
    }

    fn failed(&mut self, timestamp: u64, started: Instant, error: String) -> ResourceSample {
        self.counters.failed += 1;
        self.warn.warn(started, |suppressed| {
            format!("process sampling failed: {error} ({suppressed} similar warnings suppressed)")
        });
        ResourceSample {
            timestamp,
            counters: self.counters.clone(),
            duration_seconds: started.elapsed().as_secs_f64(),
            error: Some(error),
            cores: self.cores,
            ..Default::default()
        }
    }

    /// Lists `/proc`, applies the rules, and updates the set of followed processes.
    fn discover(&mut self, now: Instant) {
        self.last_discovery = Some(now);
        self.counters.discoveries += 1;
        self.cores = available_cores();
        let mut kind = ProcessRefreshKind::nothing().without_tasks();
        if self.matcher.needs_cmd() {
            kind = kind.with_cmd(UpdateKind::OnlyIfNotSet);
        }
        if self.matcher.needs_exe() {
            kind = kind.with_exe(UpdateKind::OnlyIfNotSet);
        }
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        let procs = self.sys.processes();

        // Own matches first, then ancestry (which needs to know every own match).
        let mut own: HashMap<Pid, OwnMatch> = HashMap::new();
        // Processes that exec'd after sysinfo first listed them: their fresh name and argv.
        let mut execed: HashMap<Pid, (String, Vec<OsString>)> = HashMap::new();
        let young_secs = self.discovery_every.as_secs() * 2 + 2;
        let mut unreadable = 0u64;
        for (pid, p) in procs {
            if p.thread_kind().is_some() {
                continue;
            }
            let name = p.name().to_string_lossy();
            if self.matcher.needs_exe() && p.exe().is_none() {
                // Other users' executables cannot be read: their exe rule cannot apply.
                if self.unreadable_seen.insert((*pid, p.start_time())) {
                    unreadable += 1;
                }
            }
            if let Some(m) = self.matcher.own_match(&name, p.exe(), p.cmd()) {
                own.insert(*pid, m);
            } else if p.run_time() <= young_secs {
                // sysinfo keeps the name and argv it saw first; a process listed between fork
                // and exec (`spawn` of Codex) would keep its parent's name for ever. Young
                // processes are re-read from /proc.
                if let Some((fresh, cmd)) = reread_if_execed(*pid, &name, &self.matcher) {
                    let exe = if self.matcher.needs_exe() {
                        std::fs::read_link(format!("/proc/{pid}/exe")).ok()
                    } else {
                        None
                    };
                    if let Some(m) = self.matcher.own_match(&fresh, exe.as_deref(), &cmd) {
                        own.insert(*pid, m);
                        execed.insert(*pid, (fresh, cmd));
                    }
                }
            }
        }
        self.unreadable_seen
            .retain(|(pid, start)| procs.get(pid).is_some_and(|p| p.start_time() == *start));
        if unreadable > 0 {
            self.counters.unreadable += unreadable;
            let total = self.counters.unreadable;
            self.warn.warn(now, |suppressed| {
                format!(
                    "{total} processes could not be inspected for the executable-path rule \
                     (owned by other users?); they are counted in \
                     codex_sentinel_sampler_events_total{{event=\"unreadable\"}} \
                     ({suppressed} similar warnings suppressed)"
                )
            });
        }

        let mut keep: HashSet<Pid> = HashSet::with_capacity(own.len());
        for (&pid, &m) in &own {
            let Some(p) = procs.get(&pid) else { continue };
            let mut has_matched_ancestor = false;
            let mut under_ancestor = !self.matcher.has_ancestor_rule();
            let mut excluded = false;
            let mut cur = p.parent();
            for _ in 0..MAX_ANCESTRY {
                let Some(ppid) = cur else { break };
                if Some(ppid) == self.matcher.agent_pid {
                    excluded = true;
                    break;
                }
                if Some(ppid) == self.matcher.ancestor_pid {
                    under_ancestor = true;
                }
                let Some(parent) = procs.get(&ppid) else {
                    break;
                };
                if own.contains_key(&ppid) {
                    has_matched_ancestor = true;
                }
                if !self.matcher.ancestor_names.is_empty() {
                    let pname = parent.name().to_string_lossy();
                    if self.matcher.ancestor_names.iter().any(|n| *n == pname) {
                        under_ancestor = true;
                    }
                }
                cur = parent.parent();
            }
            if excluded || !under_ancestor {
                continue;
            }
            let role = match (m, has_matched_ancestor) {
                (OwnMatch::Wrapper, _) => "wrapper",
                (OwnMatch::Codex, false) => "execution",
                (OwnMatch::Codex, true) => "child",
            };
            let counted = !has_matched_ancestor;
            keep.insert(pid);
            match self.tracked.get_mut(&pid) {
                Some(t) if t.start_time == p.start_time() => {
                    t.role = role;
                    t.counted = counted;
                }
                _ => {
                    let (name, cmd) = match execed.get(&pid) {
                        Some((n, c)) => (n.as_str().into(), c.as_slice()),
                        None => (p.name().to_string_lossy(), p.cmd()),
                    };
                    if counted {
                        self.counters.executions_started += 1;
                    }
                    self.tracked.insert(
                        pid,
                        Tracked {
                            start_time: p.start_time(),
                            start_ticks: 0,
                            role,
                            counted,
                            command: command_summary(&name, m == OwnMatch::Wrapper, cmd),
                            last: None,
                            zombie: false,
                            cpu: 0.0,
                            rss: 0,
                        },
                    );
                }
            }
        }
        // sysinfo's table drops exited processes at each listing (remove_dead), so its memory
        // follows the size of /proc; ours follows the number of matched processes.
        self.tracked.retain(|pid, _| keep.contains(pid));
    }

    /// Reads every followed process's `/proc/PID/stat` — one read gives state, CPU times,
    /// start time and RSS — and drops the ones that are gone or were replaced.
    fn measure(&mut self, now: Instant) -> ResourceSample {
        let boot_now = boot_ms();
        let (mut processes, mut os_processes, mut rss, mut cpu) = (0u64, 0u64, 0u64, 0.0f64);
        let kernel = self.kernel;
        let max_cpu = self.max_cpu;
        let counters = &mut self.counters;
        let buf = &mut self.buf;
        self.tracked.retain(|pid, t| {
            let Some(stat) = read_stat(*pid, buf) else {
                // Exited (and reaped) since it was listed or last read.
                if t.last.is_none() {
                    counters.vanished += 1;
                }
                return false;
            };
            if t.start_ticks == 0 {
                t.start_ticks = stat.start_ticks;
            } else if stat.start_ticks != t.start_ticks {
                counters.pid_reused += 1;
                return false;
            }
            if matches!(stat.state, b'Z' | b'X' | b'x') {
                if !t.zombie {
                    counters.zombies += 1;
                    t.zombie = true;
                }
                return true;
            }
            let value = match t.last {
                Some((prev, at)) => {
                    let dt = now.duration_since(at).as_secs_f64();
                    let used =
                        stat.cpu_ticks.saturating_sub(prev) as f64 / kernel.ticks_per_sec as f64;
                    if dt > 0.0 {
                        used / dt * 100.0
                    } else {
                        t.cpu
                    }
                }
                None => {
                    // First reading: the average since the process started.
                    let age_ms =
                        boot_now.saturating_sub(stat.start_ticks * 1000 / kernel.ticks_per_sec);
                    let used_ms = stat.cpu_ticks * 1000 / kernel.ticks_per_sec;
                    used_ms as f64 / age_ms.max(10) as f64 * 100.0
                }
            };
            t.last = Some((stat.cpu_ticks, now));
            t.cpu = value.clamp(0.0, max_cpu);
            t.rss = stat.rss_pages * kernel.page_size;
            os_processes += 1;
            processes += u64::from(t.counted);
            rss += t.rss;
            cpu += t.cpu;
            true
        });
        let top = self.top(boot_now);
        ResourceSample {
            timestamp: 0,
            processes,
            os_processes,
            rss_bytes: rss,
            cpu_percent: cpu,
            cpu_utilization: if self.cores > 0.0 {
                cpu / 100.0 / self.cores
            } else {
                0.0
            },
            cores: self.cores,
            top,
            agent: AgentFootprint::default(),
            counters: self.counters.clone(),
            duration_seconds: 0.0,
            error: None,
        }
    }

    /// The heaviest live processes by resident memory.
    fn top(&self, boot_now: u64) -> Vec<ProcessInfo> {
        if self.top_n == 0 {
            return Vec::new();
        }
        let mut best: Vec<(&Pid, &Tracked)> = Vec::with_capacity(self.top_n + 1);
        for (pid, t) in self
            .tracked
            .iter()
            .filter(|(_, t)| !t.zombie && t.last.is_some())
        {
            let at = best.partition_point(|(_, b)| b.rss >= t.rss);
            if at < self.top_n {
                best.insert(at, (pid, t));
                best.truncate(self.top_n);
            }
        }
        best.into_iter()
            .map(|(pid, t)| ProcessInfo {
                pid: pid.as_u32(),
                cpu: t.cpu,
                rss_bytes: t.rss,
                age_ms: boot_now.saturating_sub(t.start_ticks * 1000 / self.kernel.ticks_per_sec),
                command: t.command.clone(),
                role: t.role,
            })
            .collect()
    }
}

/// Samples every `processes.sampleInterval` until shutdown, sending each sample to the monitor.
/// A sample costs well under a millisecond for a handful of processes, so it runs inline.
pub async fn run(config: Arc<Config>, sender: ObservationSender, shutdown: CancellationToken) {
    let cfg = &config.processes;
    let mut sampler = match Sampler::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %crate::logging::error_chain(&e), "process sampler not started");
            return;
        }
    };
    tracing::info!(
        names = %crate::logging::Csv(&cfg.names),
        cmdline_regex = cfg.cmdline_regex.as_deref().unwrap_or(""),
        exe_paths = %crate::logging::Csv(&cfg.exe_paths),
        npm_wrapper = cfg.npm_wrapper,
        interval_ms = cfg.sample_interval,
        discovery_ms = cfg.discovery_interval,
        cores = sampler.cores,
        "process sampler started"
    );
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.sample_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => sender.send(Observation::Resources(sampler.sample())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process first listed before it exec'd Codex (sysinfo keeps the first name it saw)
    /// is still found once it has. The shell execs only when told to (a line on its stdin),
    /// after the first sample: no timing between the test and the child.
    #[test]
    fn a_process_that_execs_codex_later_is_found() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("cs-unit-exec");
        std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
        let script = format!("read -r _; exec {} 30", link.display());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let c = ProcessesConfig {
            names: vec!["cs-unit-exec".into()],
            // Only this test's own children: the same test running elsewhere on the machine
            // (another checkout's suite) must not be counted.
            ancestor_pid: Some(std::process::id()),
            exclude_agent_children: false,
            ..ProcessesConfig::default()
        };
        let mut s = Sampler::new(&c).unwrap();
        assert_eq!(s.sample().processes, 0, "still the shell");
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let comm = format!("/proc/{}/comm", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&comm).unwrap().trim() != "cs-unit-exec" {
            assert!(Instant::now() < deadline, "the shell never exec'd");
            std::thread::sleep(Duration::from_millis(10));
        }
        s.force_discovery();
        let after = s.sample();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(after.processes, 1, "{after:?}");
        assert_eq!(after.top[0].pid, child.id());
        assert_eq!(after.top[0].command, "cs-unit-exec");
    }

    /// A child of the test process is found, counted once, and its RSS read.
    #[test]
    fn sampler_sees_a_child_and_forgets_it_after_exit() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("cs-unit-sleep");
        std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
        let mut child = std::process::Command::new(&link).arg("30").spawn().unwrap();
        // Until it has exec'd, the child still carries the test binary's name.
        let comm = format!("/proc/{}/comm", child.id());
        while std::fs::read_to_string(&comm).unwrap().trim() != "cs-unit-sleep" {
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = ProcessesConfig {
            names: vec!["cs-unit-sleep".into()],
            ancestor_pid: Some(std::process::id()),
            npm_wrapper: false,
            exclude_agent_children: false,
            ..ProcessesConfig::default()
        };
        let mut s = Sampler::new(&c).unwrap();
        let first = s.sample();
        assert_eq!(first.processes, 1, "{first:?}");
        assert!(first.rss_bytes > 0);
        assert_eq!(first.top.len(), 1);
        assert_eq!(first.top[0].pid, child.id());
        assert_eq!(first.top[0].command, "cs-unit-sleep");
        assert_eq!(first.counters.executions_started, 1);
        // Children of the agent are left out when asked (the default).
        let mut excluding = Sampler::new(&ProcessesConfig {
            exclude_agent_children: true,
            ..c.clone()
        })
        .unwrap();
        assert_eq!(excluding.sample().processes, 0);
        child.kill().unwrap();
        child.wait().unwrap();
        let after = s.sample();
        assert_eq!(after.processes, 0);
        assert_eq!(s.tracked(), 0);
        assert_eq!(after.counters.executions_started, 1);
    }
}
