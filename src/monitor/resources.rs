//! Rolling resource statistics of the Codex processes, fed by the process sampler
//! ([`crate::sources::processes`]), and the `memory-usage` / `process-count` health checks.
//!
//! Units: the JSON reports memory in MB where 1 MB = 1,048,576 bytes (the specification's
//! example: `codex_memory_usage_bytes 257048576` ↔ `current: 245`), CPU in percent of one core
//! (100 = one full core), and process counts as Codex executions (see `docs/processes.md`).
//! Metrics carry bytes.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::health::Evaluated;
use super::limits::Limits;
use super::snapshot::{HealthCheck, ResourceMetrics, Sample, SampleValue, Stat3, Status};
use crate::catalog;

/// Name of the health check on the Codex processes' resident memory.
pub const MEMORY_CHECK: &str = "memory-usage";
/// Name of the health check on the number of Codex executions running at once.
pub const PROCESS_COUNT_CHECK: &str = "process-count";
/// Bytes in the JSON's "MB".
pub const BYTES_PER_MB: f64 = 1_048_576.0;

/// One matched process as listed in the detailed metrics' top-N.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub pid: u32,
    /// Percent of one core.
    pub cpu: f64,
    pub rss_bytes: u64,
    /// ms since the process started.
    pub age_ms: u64,
    /// Name and subcommand only (e.g. `codex exec`): prompts and flags are never shown.
    pub command: String,
    /// `execution` (counted), `wrapper` (the npm node launcher of an execution) or `child`
    /// (a matched process below another matched one).
    pub role: &'static str,
}

/// The agent's own cost, sampled with the Codex processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentFootprint {
    pub rss_bytes: u64,
    /// Percent of one core since the previous sample.
    pub cpu_percent: f64,
    /// CPU seconds in user mode since the agent started.
    pub cpu_user_seconds: f64,
    /// CPU seconds in kernel mode since the agent started.
    pub cpu_system_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
}

/// Cumulative counters of the sampler since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplerCounters {
    pub samples: u64,
    /// Full `/proc` listings.
    pub discoveries: u64,
    /// Distinct Codex executions seen (a PID with a new start time counts anew).
    pub executions_started: u64,
    /// Matched processes that were gone when read (exited between listing and reading).
    pub vanished: u64,
    /// Processes whose `/proc` entries a rule needed but could not read (other users).
    pub unreadable: u64,
    /// A known PID that turned out to be a different process.
    pub pid_reused: u64,
    /// Matched processes left out because they were zombies (exited, not yet reaped).
    pub zombies: u64,
    /// Samples that failed entirely (e.g. `/proc` not readable).
    pub failed: u64,
}

impl SamplerCounters {
    /// (event label, value) pairs for `codex_sentinel_sampler_events_total`.
    pub fn events(&self) -> [(&'static str, u64); 5] {
        [
            ("vanished", self.vanished),
            ("unreadable", self.unreadable),
            ("pid_reused", self.pid_reused),
            ("zombie", self.zombies),
            ("failed", self.failed),
        ]
    }
}

/// One sample of all matched Codex processes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSample {
    /// Epoch ms.
    pub timestamp: u64,
    /// Codex executions running: matched processes without a matched ancestor.
    pub processes: u64,
    /// Matched OS processes, wrappers and matched children included.
    pub os_processes: u64,
    /// Resident memory of every matched process, bytes.
    pub rss_bytes: u64,
    /// Percent of one core, summed over matched processes.
    pub cpu_percent: f64,
    /// `cpu_percent / 100` divided by the cores available to the agent (cgroup quota included).
    pub cpu_utilization: f64,
    /// Cores the utilisation is normalised by.
    pub cores: f64,
    /// Heaviest processes by resident memory, at most `processes.topN`.
    pub top: Vec<ProcessInfo>,
    pub agent: AgentFootprint,
    pub counters: SamplerCounters,
    /// Seconds the sample took (the sampler's own cost).
    pub duration_seconds: f64,
    /// Why the sample failed, when it did (values are then zeros).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Point {
    timestamp: u64,
    rss_bytes: f64,
    cpu_percent: f64,
    processes: f64,
}

/// Running peak and mean since the agent started.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    n: u64,
    sum: f64,
    peak: f64,
}

impl Running {
    fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.peak = self.peak.max(v);
    }

    fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

/// Keeps the samples of the window and running totals since start. Until the sampler has sent
/// a sample it reports honest zeros and contributes no health checks.
#[derive(Debug)]
pub struct ResourceStats {
    window_ms: u64,
    window: VecDeque<Point>,
    since_rss: Running,
    since_cpu: Running,
    since_processes: Running,
    last: Option<ResourceSample>,
}

impl Default for ResourceStats {
    fn default() -> Self {
        ResourceStats::new(300_000)
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl ResourceStats {
    /// `window_ms`: span of the rolling current/peak/average (`processes.window`).
    pub fn new(window_ms: u64) -> Self {
        ResourceStats {
            window_ms,
            window: VecDeque::new(),
            since_rss: Running::default(),
            since_cpu: Running::default(),
            since_processes: Running::default(),
            last: None,
        }
    }

    pub fn record(&mut self, sample: ResourceSample) {
        if sample.error.is_none() {
            let p = Point {
                timestamp: sample.timestamp,
                rss_bytes: sample.rss_bytes as f64,
                cpu_percent: sample.cpu_percent,
                processes: sample.processes as f64,
            };
            self.window.push_back(p);
            let cutoff = sample.timestamp.saturating_sub(self.window_ms);
            while self.window.front().is_some_and(|f| f.timestamp < cutoff) {
                self.window.pop_front();
            }
            self.since_rss.add(p.rss_bytes);
            self.since_cpu.add(p.cpu_percent);
            self.since_processes.add(p.processes);
        }
        self.last = Some(sample);
    }

    fn window_stat(&self, pick: impl Fn(&Point) -> f64, scale: f64) -> Stat3 {
        let Some(last) = self.window.back() else {
            return Stat3::default();
        };
        let (mut peak, mut sum) = (f64::MIN, 0.0);
        for p in &self.window {
            let v = pick(p);
            peak = peak.max(v);
            sum += v;
        }
        Stat3 {
            current: round2(pick(last) / scale),
            peak: round2(peak / scale),
            average: round2(sum / self.window.len() as f64 / scale),
        }
    }

    /// The specification's `resourceMetrics` over the rolling window.
    pub fn metrics(&self) -> ResourceMetrics {
        ResourceMetrics {
            memory_usage: self.window_stat(|p| p.rss_bytes, BYTES_PER_MB),
            cpu_usage: self.window_stat(|p| p.cpu_percent, 1.0),
            process_count: self.window_stat(|p| p.processes, 1.0),
            queue_metrics: Default::default(),
        }
    }

    /// Everything the detailed metrics endpoint shows beyond `resourceMetrics`: since-start
    /// peaks and averages, the top-N list, the sampler's counters and the agent's footprint.
    pub fn fill_extra(&self, extra: &mut Map<String, Value>) {
        let Some(last) = &self.last else {
            return;
        };
        let since = |r: &Running, scale: f64| json!({ "peak": round2(r.peak / scale), "average": round2(r.mean() / scale) });
        let top: Vec<Value> = last
            .top
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    "cpu": round2(p.cpu),
                    "rss": round2(p.rss_bytes as f64 / BYTES_PER_MB),
                    "age": p.age_ms,
                    "command": p.command,
                    "role": p.role,
                })
            })
            .collect();
        let mut section = json!({
            "windowMs": self.window_ms,
            "lastSample": last.timestamp,
            "osProcesses": last.os_processes,
            "cpuUtilization": (last.cpu_utilization * 10_000.0).round() / 10_000.0,
            "cores": last.cores,
            "sinceStart": {
                "memoryUsage": since(&self.since_rss, BYTES_PER_MB),
                "cpuUsage": since(&self.since_cpu, 1.0),
                "processCount": since(&self.since_processes, 1.0),
            },
            "topProcesses": top,
            "sampler": last.counters,
            "agent": last.agent,
        });
        if let Some(e) = &last.error {
            section["error"] = json!(e);
        }
        extra.insert("processes".into(), section);
    }

    /// The `memory-usage` and `process-count` checks against the limits; none before the
    /// first sample. A threshold of 0 turns its check off.
    pub fn checks(&self, limits: &Limits) -> Vec<Evaluated> {
        let Some(last) = &self.last else {
            return Vec::new();
        };
        let duration = (last.duration_seconds * 1000.0).round() as u64;
        let make = |name: &str, status, message: String, details: Value, recs: Vec<String>| {
            let Value::Object(details) = details else {
                unreachable!("details are an object")
            };
            Evaluated {
                check: HealthCheck {
                    name: name.into(),
                    status,
                    message,
                    timestamp: last.timestamp,
                    duration,
                    details,
                    recommendations: Vec::new(),
                    raises_alert: true,
                },
                recommendations: recs,
            }
        };
        if let Some(e) = &last.error {
            // About the agent, not Codex: shown, but not raised as a memory or process alert.
            return [MEMORY_CHECK, PROCESS_COUNT_CHECK]
                .iter()
                .map(|name| {
                    let mut e = make(
                        name,
                        Status::Warning,
                        format!("Codex processes could not be sampled: {e}"),
                        json!({ "error": e }),
                        vec!["Check that /proc is mounted and readable by the agent".into()],
                    );
                    e.check.raises_alert = false;
                    e
                })
                .collect();
        }
        let mut out = Vec::with_capacity(2);
        let memory = self.metrics().memory_usage;
        if let Some(bands) = limits.memory_mb {
            let status = bands.judge(memory.current);
            let message = match status {
                Status::Healthy => format!(
                    "Codex processes use {:.1} MB of memory (limit {} MB)",
                    memory.current, bands.warning
                ),
                Status::Warning => format!(
                    "Codex processes use {:.1} MB of memory, above the limit of {} MB",
                    memory.current, bands.warning
                ),
                _ => format!(
                    "Codex processes use {:.1} MB of memory, above the exhaustion level of {} MB",
                    memory.current, bands.critical
                ),
            };
            let recs = if status == Status::Healthy {
                Vec::new()
            } else {
                vec![
                    "Reduce concurrent Codex executions (MAX_CONCURRENT_AUDITS)".into(),
                    "Look for runaway executions in topProcesses of /health/codex/metrics".into(),
                    "Raise CODEX_HEALTH_THRESHOLD_MAX_MEMORY_USAGE if this load is expected".into(),
                ]
            };
            out.push(make(
                MEMORY_CHECK,
                status,
                message,
                json!({
                    "currentMb": memory.current,
                    "peakMb": memory.peak,
                    "averageMb": memory.average,
                    "thresholdMb": whole(bands.warning),
                    "criticalMb": round2(bands.critical),
                }),
                recs,
            ));
        }
        if let Some(bands) = limits.processes {
            let status = bands.judge(last.processes as f64);
            let message = match status {
                Status::Healthy => format!(
                    "{} Codex executions running (limit {})",
                    last.processes, bands.warning
                ),
                Status::Warning => format!(
                    "{} Codex executions running, above the limit of {}",
                    last.processes, bands.warning
                ),
                _ => format!(
                    "{} Codex executions running, above the critical level of {}",
                    last.processes, bands.critical
                ),
            };
            let recs = if status == Status::Healthy {
                Vec::new()
            } else {
                vec![
                    "Check for Codex executions that never exit (see topProcesses ages)".into(),
                    "Reduce concurrent Codex executions (MAX_CONCURRENT_AUDITS)".into(),
                ]
            };
            out.push(make(
                PROCESS_COUNT_CHECK,
                status,
                message,
                json!({
                    "current": last.processes,
                    "osProcesses": last.os_processes,
                    "threshold": whole(bands.warning),
                    "critical": round2(bands.critical),
                }),
                recs,
            ));
        }
        out
    }

    /// Metric samples beyond the three the monitor already publishes (memory, CPU, count).
    pub fn extra_samples(&self, out: &mut Vec<Sample>) {
        let Some(last) = &self.last else {
            return;
        };
        let mut gauge = |def, v: f64| {
            out.push(Sample {
                def,
                labels: vec![],
                value: SampleValue::Gauge(v),
            })
        };
        gauge(&catalog::CPU_UTILIZATION, last.cpu_utilization);
        gauge(&catalog::MATCHED_PROCESSES, last.os_processes as f64);
        let a = &last.agent;
        gauge(&catalog::AGENT_MEMORY_RSS, a.rss_bytes as f64);
        gauge(&catalog::AGENT_CPU_USAGE, a.cpu_percent);
        gauge(&catalog::AGENT_THREADS, a.threads as f64);
        gauge(&catalog::AGENT_OPEN_FDS, a.open_fds as f64);
        gauge(&catalog::AGENT_SAMPLE_DURATION, last.duration_seconds);
        let mut counter = |def, labels: Vec<String>, v: f64| {
            out.push(Sample {
                def,
                labels,
                value: SampleValue::Counter(v),
            })
        };
        counter(
            &catalog::EXECUTIONS_STARTED,
            vec![],
            last.counters.executions_started as f64,
        );
        counter(
            &catalog::AGENT_CPU_TIME,
            vec!["user".into()],
            a.cpu_user_seconds,
        );
        counter(
            &catalog::AGENT_CPU_TIME,
            vec!["system".into()],
            a.cpu_system_seconds,
        );
        counter(
            &catalog::AGENT_PROCESS_SAMPLES,
            vec![],
            last.counters.samples as f64,
        );
        for (event, n) in last.counters.events() {
            counter(&catalog::AGENT_SAMPLER_EVENTS, vec![event.into()], n as f64);
        }
    }

    pub fn active_processes(&self) -> u64 {
        self.last.as_ref().map_or(0, |s| s.processes)
    }

    pub fn rss_bytes(&self) -> u64 {
        self.last.as_ref().map_or(0, |s| s.rss_bytes)
    }

    pub fn cpu_percent(&self) -> f64 {
        self.last.as_ref().map_or(0.0, |s| s.cpu_percent)
    }
}

/// A threshold configured as an integer is shown as one (`500`, not `500.0`).
fn whole(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ts: u64, mb: f64, cpu: f64, n: u64) -> ResourceSample {
        ResourceSample {
            timestamp: ts,
            processes: n,
            os_processes: n * 2,
            rss_bytes: (mb * BYTES_PER_MB) as u64,
            cpu_percent: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn window_current_peak_average_and_since_start() {
        let mut s = ResourceStats::new(10_000);
        s.record(sample(0, 100.0, 50.0, 1));
        s.record(sample(5_000, 300.0, 150.0, 3));
        s.record(sample(10_000, 200.0, 100.0, 2));
        let m = s.metrics();
        assert_eq!(m.memory_usage.current, 200.0);
        assert_eq!(m.memory_usage.peak, 300.0);
        assert_eq!(m.memory_usage.average, 200.0);
        assert_eq!(m.cpu_usage.average, 100.0);
        assert_eq!(m.process_count.peak, 3.0);
        // The first sample leaves the 10 s window; since-start keeps it.
        s.record(sample(15_001, 50.0, 0.0, 0));
        let m = s.metrics();
        assert_eq!(m.memory_usage.peak, 200.0);
        assert_eq!(m.memory_usage.average, 125.0);
        let mut extra = Map::new();
        s.fill_extra(&mut extra);
        let since = &extra["processes"]["sinceStart"];
        assert_eq!(since["memoryUsage"]["peak"], 300.0);
        assert_eq!(since["memoryUsage"]["average"], 162.5);
        assert_eq!(since["processCount"]["peak"], 3.0);
    }

    #[test]
    fn no_sample_no_checks_and_zeros() {
        let s = ResourceStats::new(1000);
        assert!(s.checks(&Limits::default()).is_empty());
        assert_eq!(s.metrics(), ResourceMetrics::default());
    }

    #[test]
    fn check_levels_follow_thresholds() {
        let mut c = crate::config::Config::default();
        c.health_monitoring.thresholds.max_memory_usage = 100;
        c.health_monitoring.thresholds.max_concurrent_processes = 4;
        let t = Limits::from_config(&c);
        let status = |mb: f64, n: u64| {
            let mut s = ResourceStats::new(1000);
            s.record(sample(0, mb, 0.0, n));
            let c = s.checks(&t);
            (c[0].check.status, c[1].check.status)
        };
        assert_eq!(status(100.0, 4), (Status::Healthy, Status::Healthy));
        assert_eq!(status(100.5, 5), (Status::Warning, Status::Warning));
        assert_eq!(status(150.0, 6), (Status::Warning, Status::Warning));
        assert_eq!(status(151.0, 7), (Status::Critical, Status::Critical));
        let mut s = ResourceStats::new(1000);
        s.record(sample(0, 151.0, 0.0, 7));
        let c = s.checks(&t);
        assert_eq!(c[0].check.name, MEMORY_CHECK);
        assert_eq!(c[0].check.details["thresholdMb"], 100);
        assert!(!c[0].recommendations.is_empty());
        assert_eq!(c[1].check.name, PROCESS_COUNT_CHECK);
        assert_eq!(c[1].check.details["osProcesses"], 14);
    }

    #[test]
    fn zero_threshold_disables_the_check() {
        let mut c = crate::config::Config::default();
        c.health_monitoring.thresholds.max_memory_usage = 0;
        c.health_monitoring.thresholds.max_concurrent_processes = 0;
        let t = Limits::from_config(&c);
        let mut s = ResourceStats::new(1000);
        s.record(sample(0, 10_000.0, 0.0, 100));
        assert!(s.checks(&t).is_empty());
    }

    #[test]
    fn failed_sample_is_a_warning_and_not_a_zero_in_the_window() {
        let mut s = ResourceStats::new(10_000);
        s.record(sample(0, 100.0, 0.0, 1));
        s.record(ResourceSample {
            timestamp: 1000,
            error: Some("cannot read /proc".into()),
            ..Default::default()
        });
        assert_eq!(s.metrics().memory_usage.average, 100.0);
        let c = s.checks(&Limits::default());
        assert!(c.iter().all(|e| e.check.status == Status::Warning));
    }
}
