//! The log directories' disk usage: the samples the disk sampler (`sources::disk`) sends, the
//! growth rate over `diskUsage.growthWindow`, the `disk-usage` check and the catalog samples.
//!
//! Growth rate: the net change in bytes between the oldest and the newest sample of the window,
//! per hour of the time between them — what a volume's fill level follows, rotation and
//! deletions included (negative when they free more than is written). It is unknown (absent,
//! not judged) until the samples span half the window, so one burst right after the start does
//! not read as an hourly rate.

use std::collections::VecDeque;

use serde_json::{json, Map, Value};

use super::health::Evaluated;
use super::limits::{DirectoryState, Limits};
use super::snapshot::{HealthCheck, Sample, SampleValue, Status};
use crate::catalog;

/// Name of the check the `disk-usage` rule raises.
pub const DISK_USAGE_CHECK: &str = "disk-usage";

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Which log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directory {
    /// The application's operations log (`operationsLog.dir`).
    OperationsLog,
    /// The agent's audit files (`auditLog.dir`).
    AuditLog,
}

impl Directory {
    /// The `directory` label value.
    pub fn label(self) -> &'static str {
        match self {
            Directory::OperationsLog => "operations_log",
            Directory::AuditLog => "audit_log",
        }
    }

    /// How messages name it.
    fn title(self) -> &'static str {
        match self {
            Directory::OperationsLog => "operations log",
            Directory::AuditLog => "audit log",
        }
    }

    fn limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Directory::OperationsLog => limits.disk.operations_log_limit,
            Directory::AuditLog => limits.disk.audit_log_limit,
        }
    }
}

/// One directory measured once.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUsage {
    pub directory: Directory,
    /// Allocated bytes (`st_blocks × 512`) of the directory and everything below it.
    pub bytes: u64,
    pub files: u64,
    /// The walk stopped at `diskUsage.maxEntries`: `bytes` is a lower bound.
    pub truncated: bool,
    /// The first part that could not be read.
    pub error: Option<String>,
}

/// Every directory measured at `timestamp` (epoch ms).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSample {
    pub timestamp: u64,
    pub directories: Vec<DirectoryUsage>,
}

/// One directory's recent samples.
#[derive(Debug)]
struct Series {
    last: DirectoryUsage,
    /// (epoch ms, bytes), oldest first, within the growth window.
    points: VecDeque<(u64, u64)>,
}

/// What the monitor keeps about the log directories.
#[derive(Debug)]
pub struct DiskStats {
    window_ms: u64,
    last_sample: u64,
    series: Vec<Series>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1_048_576.0)
}

impl DiskStats {
    pub fn new(window_ms: u64) -> Self {
        DiskStats {
            window_ms,
            last_sample: 0,
            series: Vec::new(),
        }
    }

    pub fn record(&mut self, sample: DiskSample) {
        self.last_sample = sample.timestamp;
        for usage in sample.directories {
            let i = match self
                .series
                .iter()
                .position(|s| s.last.directory == usage.directory)
            {
                Some(i) => i,
                None => {
                    self.series.push(Series {
                        last: usage.clone(),
                        points: VecDeque::new(),
                    });
                    self.series.len() - 1
                }
            };
            let s = &mut self.series[i];
            s.points.push_back((sample.timestamp, usage.bytes));
            let oldest = sample.timestamp.saturating_sub(self.window_ms);
            while s.points.front().is_some_and(|(t, _)| *t < oldest) {
                s.points.pop_front();
            }
            s.last = usage;
        }
    }

    /// Net bytes per hour over the window; `None` until the samples span half of it.
    fn growth_per_hour(&self, s: &Series) -> Option<f64> {
        let (&(t0, b0), &(t1, b1)) = (s.points.front()?, s.points.back()?);
        let span = t1.saturating_sub(t0);
        if span == 0 || span * 2 < self.window_ms {
            return None;
        }
        Some((b1 as f64 - b0 as f64) * MS_PER_HOUR / span as f64)
    }

    /// The `disk-usage` check: present once a directory with a size limit has been measured.
    /// Its status is the worst directory's, judged by [`super::limits::DiskLimits::judge`].
    pub fn check(&self, limits: &Limits) -> Option<Evaluated> {
        let mut status = Status::Healthy;
        let mut worst: Option<String> = None;
        let mut parts = Vec::new();
        let mut details = Map::new();
        let mut recommendations = Vec::new();
        for s in &self.series {
            let d = s.last.directory;
            let Some(limit) = d.limit(limits) else {
                continue;
            };
            let growth = self.growth_per_hour(s);
            let v = limits.disk.judge(DirectoryState {
                used_bytes: s.last.bytes,
                limit_bytes: limit,
                growth_per_hour: growth,
            });
            let usage = format!(
                "{} uses {} of {} ({}%)",
                d.title(),
                mib(s.last.bytes as f64),
                mib(limit as f64),
                round1(v.usage_percent)
            );
            let why = if v.usage_status > Status::Healthy {
                let level = if v.usage_status == Status::Critical {
                    limits.disk.usage_percent.critical
                } else {
                    limits.disk.usage_percent.warning
                };
                format!("{usage}, above {level}%")
            } else if v.growth_status > Status::Healthy {
                format!(
                    "{usage} and grows {}/h: full in {} h (threshold {} h)",
                    mib(growth.unwrap_or_default()),
                    round1(v.hours_to_full.unwrap_or_default()),
                    limits.disk.min_hours_to_full
                )
            } else {
                usage
            };
            if v.status > status || worst.is_none() && v.status > Status::Healthy {
                worst = Some(why.clone());
            }
            status = status.max(v.status);
            parts.push(why);
            let mut entry = json!({
                "bytes": s.last.bytes,
                "files": s.last.files,
                "sizeLimit": limit,
                "usagePercent": round1(v.usage_percent),
                "growthBytesPerHour": growth.map(f64::round),
                "hoursToFull": v.hours_to_full.map(round1),
                "status": v.status,
            });
            if s.last.truncated {
                entry["truncated"] = json!(true);
            }
            if let Some(e) = &s.last.error {
                entry["error"] = json!(e);
            }
            details.insert(d.label().into(), entry);
            if v.usage_status > Status::Healthy || v.growth_status > Status::Healthy {
                let recs: &[&str] = match d {
                    Directory::OperationsLog => &[
                        "Rotate or compress the operations log (logrotate: daily, rotate, compress)",
                        "Raise the operations-log volume's sizeLimit (operationsLog.volume.sizeLimit in the chart)",
                    ],
                    Directory::AuditLog => &[
                        "Set auditLog.retentionDays (CODEX_AUDIT_LOG_RETENTION_DAYS) or rotate the audit files",
                        "Raise the state volume's sizeLimit (agent.stateDir.sizeLimit in the chart)",
                    ],
                };
                recommendations.extend(recs.iter().map(|r| r.to_string()));
            }
        }
        if parts.is_empty() {
            return None;
        }
        details.insert(
            "thresholds".into(),
            json!({
                "warningPercent": limits.disk.usage_percent.warning,
                "criticalPercent": limits.disk.usage_percent.critical,
                "minHoursToFull": limits.disk.min_hours_to_full,
            }),
        );
        let message = match (status, worst) {
            (Status::Healthy, _) | (_, None) => {
                format!(
                    "Log directories within their size limits: {}",
                    parts.join("; ")
                )
            }
            (_, Some(why)) => format!("Log directory filling up: {why}"),
        };
        Some(Evaluated {
            check: HealthCheck {
                name: DISK_USAGE_CHECK.into(),
                status,
                message,
                timestamp: self.last_sample,
                duration: 0,
                details,
                recommendations: Vec::new(),
                raises_alert: true,
            },
            recommendations,
        })
    }

    /// The catalog samples: bytes used always; the limit when one is set; growth once known.
    pub fn samples(&self, limits: &Limits, out: &mut Vec<Sample>) {
        for s in &self.series {
            let d = s.last.directory;
            let labels = vec![d.label().to_string()];
            let mut push = |def: &'static catalog::MetricDef, v: f64| {
                out.push(Sample {
                    def,
                    labels: labels.clone(),
                    value: SampleValue::Gauge(v),
                })
            };
            push(&catalog::LOG_DISK_USAGE, s.last.bytes as f64);
            if let Some(limit) = d.limit(limits) {
                push(&catalog::LOG_SIZE_LIMIT, limit as f64);
            }
            if let Some(g) = self.growth_per_hour(s) {
                push(&catalog::LOG_GROWTH_RATE, g);
            }
        }
    }

    /// `extra.diskUsage` of `/health/codex/metrics`.
    pub fn fill_extra(&self, limits: &Limits, extra: &mut Map<String, Value>) {
        if self.series.is_empty() {
            return;
        }
        let mut section = Map::new();
        for s in &self.series {
            let d = s.last.directory;
            section.insert(
                d.label().into(),
                json!({
                    "bytes": s.last.bytes,
                    "files": s.last.files,
                    "sizeLimit": d.limit(limits),
                    "growthBytesPerHour": self.growth_per_hour(s).map(f64::round),
                    "truncated": s.last.truncated,
                }),
            );
        }
        section.insert("lastSample".into(), json!(self.last_sample));
        section.insert("growthWindowMs".into(), json!(self.window_ms));
        extra.insert("diskUsage".into(), Value::Object(section));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MIB: u64 = 1 << 20;

    fn sample(t: u64, oplog: u64, audit: u64) -> DiskSample {
        let dir = |directory, bytes| DirectoryUsage {
            directory,
            bytes,
            files: 1,
            truncated: false,
            error: None,
        };
        DiskSample {
            timestamp: t,
            directories: vec![
                dir(Directory::OperationsLog, oplog),
                dir(Directory::AuditLog, audit),
            ],
        }
    }

    fn limits(oplog: Option<u64>, audit: Option<u64>) -> Limits {
        let mut c = Config::default();
        c.operations_log.size_limit = oplog;
        c.audit_log.size_limit = audit;
        Limits::from_config(&c)
    }

    fn gauge(out: &[Sample], def: &catalog::MetricDef, dir: &str) -> Option<f64> {
        out.iter()
            .find(|s| s.def.name == def.name && s.labels == [dir])
            .map(|s| match s.value {
                SampleValue::Gauge(v) => v,
                _ => panic!("gauge"),
            })
    }

    #[test]
    fn growth_is_the_net_change_per_hour_once_half_the_window_is_sampled() {
        // Window of one hour, a sample every 10 minutes, the operations log growing 1 MiB each.
        let mut d = DiskStats::new(3_600_000);
        let l = limits(Some(256 * MIB), None);
        d.record(sample(0, 10 * MIB, MIB));
        let mut out = Vec::new();
        d.samples(&l, &mut out);
        assert_eq!(
            gauge(&out, &catalog::LOG_DISK_USAGE, "operations_log"),
            Some((10 * MIB) as f64)
        );
        assert_eq!(
            gauge(&out, &catalog::LOG_DISK_USAGE, "audit_log"),
            Some(MIB as f64)
        );
        assert_eq!(
            gauge(&out, &catalog::LOG_GROWTH_RATE, "operations_log"),
            None
        );
        assert_eq!(gauge(&out, &catalog::LOG_SIZE_LIMIT, "audit_log"), None);
        for i in 1..=9u64 {
            d.record(sample(i * 600_000, (10 + i) * MIB, MIB));
        }
        let mut out = Vec::new();
        d.samples(&l, &mut out);
        // The window keeps an hour back from 90 min: 30 → 90 min, 6 MiB more in one hour.
        assert_eq!(
            gauge(&out, &catalog::LOG_GROWTH_RATE, "operations_log"),
            Some((6 * MIB) as f64)
        );
        assert_eq!(
            gauge(&out, &catalog::LOG_GROWTH_RATE, "audit_log"),
            Some(0.0)
        );
        assert_eq!(
            gauge(&out, &catalog::LOG_SIZE_LIMIT, "operations_log"),
            Some((256 * MIB) as f64)
        );
        assert_eq!(
            gauge(&out, &catalog::LOG_DISK_USAGE, "operations_log"),
            Some((19 * MIB) as f64)
        );
    }

    #[test]
    fn the_check_says_which_directory_fills_and_why() {
        let mut d = DiskStats::new(3_600_000);
        // No limit set: measured, exported, not judged.
        d.record(sample(0, 90 * MIB, MIB));
        assert!(d.check(&limits(None, None)).is_none());
        // 90 of 100 MiB: warning (above 80 %), the audit directory healthy.
        let e = d.check(&limits(Some(100 * MIB), Some(32 * MIB))).unwrap();
        assert_eq!(e.check.status, Status::Warning);
        assert_eq!(
            e.check.message,
            "Log directory filling up: operations log uses 90.0 MiB of 100.0 MiB (90%), above 80%"
        );
        assert_eq!(
            e.check.details["operations_log"]["usagePercent"],
            json!(90.0)
        );
        assert_eq!(e.check.details["audit_log"]["status"], json!("healthy"));
        assert!(e.recommendations[0].contains("Rotate or compress the operations log"));
        // Growing 20 MiB in 30 minutes with 30 MiB left: full in 45 minutes.
        let mut d = DiskStats::new(3_600_000);
        d.record(sample(0, 50 * MIB, MIB));
        d.record(sample(1_800_000, 70 * MIB, MIB));
        let e = d.check(&limits(Some(100 * MIB), None)).unwrap();
        assert_eq!(e.check.status, Status::Warning);
        assert_eq!(
            e.check.message,
            "Log directory filling up: operations log uses 70.0 MiB of 100.0 MiB (70%) and grows 40.0 MiB/h: full in 0.8 h (threshold 24 h)"
        );
        assert_eq!(e.check.details["operations_log"]["hoursToFull"], json!(0.8));
        // 97 %: critical.
        d.record(sample(1_900_000, 97 * MIB, MIB));
        let e = d.check(&limits(Some(100 * MIB), None)).unwrap();
        assert_eq!(e.check.status, Status::Critical);
        assert!(
            e.check.message.ends_with("above 95%"),
            "{}",
            e.check.message
        );
    }
}
