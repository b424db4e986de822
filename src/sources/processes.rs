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

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, UpdateKind};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ProcessesConfig};
use crate::monitor::resources::{AgentFootprint, ProcessInfo, ResourceSample, SamplerCounters};
use crate::monitor::{Observation, ObservationSender};
use crate::util::now_ms;

/// At most one warning about unreadable processes or failed samples per this period; the
/// counters keep the full count.
pub const WARN_EVERY: Duration = Duration::from_secs(600);
/// Characters kept of a process's command summary.
const COMMAND_CHARS: usize = 60;
/// Depth limit when walking up the parent chain (guards against a cycle in a racing listing).
const MAX_ANCESTRY: usize = 128;

/// What a process's own attributes say (ancestry aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMatch {
    /// Matched by name, executable path or command line.
    Codex,
    /// The npm `node …/codex` launcher.
    Wrapper,
}

/// The matching rules, compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    names: Vec<String>,
    exe_paths: Vec<String>,
    cmdline: Option<Regex>,
    npm_wrapper: bool,
    ancestor_pid: Option<Pid>,
    ancestor_names: Vec<String>,
    /// The agent's PID when its children are to be left out.
    agent_pid: Option<Pid>,
}

/// Linux truncates comm to 15 bytes: compare a configured name the same way.
fn comm_of(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

impl Matcher {
    pub fn new(cfg: &ProcessesConfig) -> Result<Self, regex::Error> {
        Ok(Matcher {
            names: cfg.names.iter().map(|n| comm_of(n).to_string()).collect(),
            exe_paths: cfg.exe_paths.clone(),
            cmdline: cfg.cmdline_regex.as_deref().map(Regex::new).transpose()?,
            npm_wrapper: cfg.npm_wrapper,
            ancestor_pid: cfg.ancestor_pid.map(Pid::from_u32),
            ancestor_names: cfg
                .ancestor_names
                .iter()
                .map(|n| comm_of(n).to_string())
                .collect(),
            agent_pid: cfg
                .exclude_agent_children
                .then(|| Pid::from_u32(std::process::id())),
        })
    }

    /// Whether discovery must read command lines (only then are they kept in memory).
    pub fn needs_cmd(&self) -> bool {
        self.cmdline.is_some() || self.npm_wrapper
    }

    pub fn needs_exe(&self) -> bool {
        !self.exe_paths.is_empty()
    }

    fn has_ancestor_rule(&self) -> bool {
        self.ancestor_pid.is_some() || !self.ancestor_names.is_empty()
    }

    /// The rules on the process's own name, executable and command line.
    pub fn own_match(&self, name: &str, exe: Option<&Path>, cmd: &[OsString]) -> Option<OwnMatch> {
        if self.names.iter().any(|n| n == name) {
            return Some(OwnMatch::Codex);
        }
        if let Some(exe) = exe.and_then(Path::to_str) {
            let hit = self.exe_paths.iter().any(|p| {
                if p.ends_with('/') {
                    exe.starts_with(p.as_str())
                } else {
                    exe == p
                }
            });
            if hit {
                return Some(OwnMatch::Codex);
            }
        }
        if let Some(re) = &self.cmdline {
            if !cmd.is_empty() && re.is_match(&join_cmd(cmd)) {
                return Some(OwnMatch::Codex);
            }
        }
        if self.npm_wrapper && is_npm_wrapper(name, cmd) {
            return Some(OwnMatch::Wrapper);
        }
        None
    }
}

/// `node /…/bin/codex.js …` or `node /…/.bin/codex …` (the npm shim, run through its
/// `#!/usr/bin/env node` line): the launcher of the native binary.
pub fn is_npm_wrapper(name: &str, cmd: &[OsString]) -> bool {
    if !(name == "node" || name == "nodejs") {
        return false;
    }
    let Some(script) = cmd.get(1).and_then(|s| s.to_str()) else {
        return false;
    };
    matches!(basename(script), "codex" | "codex.js")
}

fn join_cmd(cmd: &[OsString]) -> String {
    let mut s = String::new();
    for (i, part) in cmd.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&part.to_string_lossy());
    }
    s
}

/// Name and subcommand, never the rest: command lines carry prompts, paths and tokens.
pub fn command_summary(name: &str, wrapper: bool, cmd: &[OsString]) -> String {
    fn word(s: Option<&OsString>) -> Option<&str> {
        s.and_then(|s| s.to_str()).filter(|w| {
            !w.is_empty()
                && w.len() <= 24
                && w.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    }
    let mut out = name.to_string();
    let (script, sub) = if wrapper {
        (
            cmd.get(1).and_then(|s| s.to_str()).map(basename),
            word(cmd.get(2)),
        )
    } else {
        (None, word(cmd.get(1)))
    };
    for part in [script, sub].into_iter().flatten() {
        out.push(' ');
        out.push_str(part);
    }
    out.chars().take(COMMAND_CHARS).collect()
}

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

/// Clock ticks per second and page size, read once.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    ticks_per_sec: u64,
    page_size: u64,
}

impl Kernel {
    fn get() -> Self {
        // SAFETY: sysconf only reads configuration values.
        let (t, p) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Kernel {
            ticks_per_sec: if t > 0 { t as u64 } else { 100 },
            page_size: if p > 0 { p as u64 } else { 4096 },
        }
    }
}

/// ms since boot on the clock `/proc/PID/stat` start times are measured against.
fn boot_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The fields after `comm` in `/proc/PID/stat` (field 3, the state, first).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let (_, rest) = text.rsplit_once(") ")?;
    Some(rest.split_ascii_whitespace().collect())
}

/// The current name and argv of a process whose name is no longer `known` (it exec'd);
/// `None` when unchanged or gone. argv is read only when a rule needs it.
fn reread_if_execed(pid: Pid, known: &str, matcher: &Matcher) -> Option<(String, Vec<OsString>)> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    if comm == known {
        return None;
    }
    let cmd = if matcher.needs_cmd() {
        use std::os::unix::ffi::OsStrExt;
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Some((comm.to_string(), cmd))
}

/// What one read of `/proc/PID/stat` tells about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: u8,
    /// utime + stime, clock ticks.
    cpu_ticks: u64,
    /// Clock ticks since boot: with the PID, the identity of the process.
    start_ticks: u64,
    rss_pages: u64,
}

/// Parses `/proc/PID/stat` (fields after the parenthesised comm, which may hold spaces).
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?.bytes().next()?;
    // f is now at field 4 (ppid); utime is field 14, stime 15, starttime 22, rss 24.
    let mut f = f.skip(10);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    let mut f = f.skip(6);
    let start_ticks = f.next()?.parse().ok()?;
    let _vsize = f.next()?;
    let rss_pages = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    Some(Stat {
        state,
        cpu_ticks: utime + stime,
        start_ticks,
        rss_pages,
    })
}

fn read_stat(pid: Pid, buf: &mut String) -> Option<Stat> {
    use std::io::Read;
    buf.clear();
    let mut path = [0u8; 32];
    let path = {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut path[..]);
        write!(cur, "/proc/{pid}/stat").ok()?;
        let n = cur.position() as usize;
        std::str::from_utf8(&path[..n]).ok()?
    };
    std::fs::File::open(path).ok()?.read_to_string(buf).ok()?;
    parse_stat(buf)
}

/// Cores available to this process: CPUs it may run on, capped by a cgroup CPU quota.
pub fn available_cores() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let affinity = affinity_cpus().unwrap_or(cpus);
    match cgroup_quota_cores() {
        Some(q) if q > 0.0 => affinity.min(q),
        _ => affinity,
    }
}

fn affinity_cpus() -> Option<f64> {
    // SAFETY: set is zeroed and sized as sched_getaffinity expects.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(libc::CPU_COUNT(&set) as f64)
    }
}

/// The tightest CPU quota (in cores) on this process's cgroup or its ancestors, v2 or v1.
fn cgroup_quota_cores() -> Option<f64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<f64> = None;
    let mut consider = |q: Option<f64>| {
        if let Some(q) = q {
            best = Some(best.map_or(q, |b: f64| b.min(q)));
        }
    };
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next()?, parts.next()?);
        if controllers.is_empty() {
            // cgroup v2: cpu.max = "max 100000" or "50000 100000", on every level up to the root.
            let mut dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            loop {
                consider(read_quota_v2(&dir.join("cpu.max")));
                if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for base in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
                let base = Path::new(base);
                for dir in [base.join(path.trim_start_matches('/')), base.to_path_buf()] {
                    consider(read_quota_v1(&dir));
                }
            }
        }
    }
    best
}

fn read_quota_v2(file: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut it = text.split_whitespace();
    let (quota, period) = (it.next()?, it.next()?);
    let (q, p): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
    (p > 0.0).then_some(q / p)
}

fn read_quota_v1(dir: &Path) -> Option<f64> {
    let q: f64 = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let p: f64 = std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (q > 0.0 && p > 0.0).then_some(q / p)
}

/// The agent's own cost, read from `/proc/self`.
#[derive(Debug)]
struct SelfMeter {
    kernel: Kernel,
    last: Option<(u64, Instant)>,
}

impl SelfMeter {
    fn read(&mut self, now: Instant) -> Result<AgentFootprint, String> {
        let text = std::fs::read_to_string("/proc/self/stat")
            .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
        let f = stat_fields(&text).ok_or("unparsable /proc/self/stat")?;
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Fields 14, 15 (utime, stime), 20 (threads), 24 (rss pages); f[0] is field 3.
        let ticks = num(11) + num(12);
        let cpu_ms = ticks * 1000 / self.kernel.ticks_per_sec;
        let cpu_percent = match self.last {
            Some((prev, at)) => {
                let dt = now.duration_since(at).as_secs_f64() * 1000.0;
                if dt > 0.0 {
                    cpu_ms.saturating_sub(prev) as f64 / dt * 100.0
                } else {
                    0.0
                }
            }
            None => {
                // No previous reading: the average since the agent started, like a new process.
                let start_ms = num(19) * 1000 / self.kernel.ticks_per_sec;
                cpu_ms as f64 / boot_ms().saturating_sub(start_ms).max(10) as f64 * 100.0
            }
        };
        self.last = Some((cpu_ms, now));
        // The directory handle read_dir holds is itself an open descriptor: not counted.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count().saturating_sub(1) as u64)
            .unwrap_or(0);
        Ok(AgentFootprint {
            rss_bytes: num(21) * self.kernel.page_size,
            cpu_percent,
            cpu_seconds: ticks as f64 / self.kernel.ticks_per_sec as f64,
            threads: num(17),
            open_fds,
        })
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

    fn cmd(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    fn cfg() -> ProcessesConfig {
        ProcessesConfig::default()
    }

    #[test]
    fn default_rules_match_native_binary_and_npm_wrapper_only() {
        let m = Matcher::new(&cfg()).unwrap();
        assert_eq!(
            m.own_match("codex", None, &cmd(&["/x/bin/codex", "exec", "hi"])),
            Some(OwnMatch::Codex)
        );
        assert_eq!(
            m.own_match(
                "node",
                None,
                &cmd(&["node", "/app/node_modules/.bin/codex", "exec", "hi"])
            ),
            Some(OwnMatch::Wrapper)
        );
        assert_eq!(
            m.own_match(
                "node",
                None,
                &cmd(&[
                    "/usr/bin/node",
                    "/usr/lib/node_modules/@openai/codex/bin/codex.js"
                ])
            ),
            Some(OwnMatch::Wrapper)
        );
        // The application itself (a node server) and a codex-named file as data are not Codex.
        assert_eq!(
            m.own_match("node", None, &cmd(&["node", "server.js"])),
            None
        );
        assert_eq!(m.own_match("cat", None, &cmd(&["cat", "codex"])), None);
        assert_eq!(m.own_match("codex-helper", None, &[]), None);
    }

    #[test]
    fn long_names_compare_as_the_kernel_truncates_them() {
        let c = ProcessesConfig {
            names: vec!["codex-sentinel-worker".into()],
            ..cfg()
        };
        let m = Matcher::new(&c).unwrap();
        assert_eq!(
            m.own_match("codex-sentinel-", None, &[]),
            Some(OwnMatch::Codex)
        );
    }

    #[test]
    fn exe_paths_and_cmdline_regex() {
        let c = ProcessesConfig {
            names: vec![],
            npm_wrapper: false,
            exe_paths: vec!["/opt/codex/".into(), "/usr/bin/codex-exact".into()],
            cmdline_regex: Some(r"^python3 .*codex_shim\.py".into()),
            ..cfg()
        };
        let m = Matcher::new(&c).unwrap();
        let exe = |p: &str| m.own_match("x", Some(Path::new(p)), &[]);
        assert_eq!(exe("/opt/codex/bin/codex"), Some(OwnMatch::Codex));
        assert_eq!(exe("/usr/bin/codex-exact"), Some(OwnMatch::Codex));
        assert_eq!(exe("/usr/bin/codex-exactly"), None);
        assert_eq!(
            m.own_match(
                "python3",
                None,
                &cmd(&["python3", "/srv/codex_shim.py", "-v"])
            ),
            Some(OwnMatch::Codex)
        );
        assert_eq!(
            m.own_match("node", None, &cmd(&["node", "/x/.bin/codex"])),
            None,
            "wrapper rule off"
        );
    }

    #[test]
    fn command_summary_hides_prompts_and_flags() {
        assert_eq!(
            command_summary("codex", false, &cmd(&["/x/codex", "exec", "secret prompt"])),
            "codex exec"
        );
        assert_eq!(
            command_summary("codex", false, &cmd(&["/x/codex", "--api-key=sk-123"])),
            "codex"
        );
        assert_eq!(
            command_summary(
                "node",
                true,
                &cmd(&["node", "/a/node_modules/.bin/codex", "exec", "TOKEN=abc"])
            ),
            "node codex exec"
        );
    }

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = "1234 (my (proc) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 3 0 \
                    98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                cpu_ticks: 200,
                start_ticks: 98765,
                rss_pages: 2048
            })
        );
        assert_eq!(parse_stat("1234 (x) Z"), None);
        let own = read_stat(Pid::from_u32(std::process::id()), &mut String::new()).unwrap();
        assert!(matches!(own.state, b'R' | b'S'));
        assert!(own.rss_pages > 0 && own.start_ticks > 0);
    }

    #[test]
    fn quota_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.max"), "50000 100000\n").unwrap();
        assert_eq!(read_quota_v2(&dir.path().join("cpu.max")), Some(0.5));
        std::fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(read_quota_v2(&dir.path().join("cpu.max")), None);
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(dir.path().join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(read_quota_v1(dir.path()), Some(1.5));
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "-1\n").unwrap();
        assert_eq!(read_quota_v1(dir.path()), None);
        assert!(available_cores() > 0.0);
    }

    #[test]
    fn own_footprint_is_read() {
        let mut m = SelfMeter {
            kernel: Kernel::get(),
            last: None,
        };
        let a = m.read(Instant::now()).unwrap();
        assert!(a.rss_bytes > 1 << 20, "{a:?}");
        assert!(a.threads >= 1);
        assert!(a.open_fds >= 3);
    }

    /// A process first listed before it exec'd Codex (sysinfo keeps the first name it saw)
    /// is still found once it has.
    #[test]
    fn a_process_that_execs_codex_later_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("cs-unit-exec");
        std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
        let script = format!("sleep 0.4; exec {} 30", link.display());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let c = ProcessesConfig {
            names: vec!["cs-unit-exec".into()],
            exclude_agent_children: false,
            ..cfg()
        };
        let mut s = Sampler::new(&c).unwrap();
        assert_eq!(s.sample().processes, 0, "still the shell");
        let comm = format!("/proc/{}/comm", child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&comm).unwrap().trim() != "cs-unit-exec" {
            assert!(Instant::now() < deadline);
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
            npm_wrapper: false,
            exclude_agent_children: false,
            ..cfg()
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
