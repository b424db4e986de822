//! `codex-sentinel report --since 7d`: the weekly report of the specification's maintenance
//! script, from the per-hour history ([`crate::history`]), as text, JSON or Markdown; and
//! `codex-sentinel baseline show`.

use serde::Serialize;

use crate::config::{Baselines, Config};
use crate::monitor::history::{self, Hour, Learned};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Parses `7d`, `24h`, `90m`, `2w` into milliseconds.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| {
        format!("--since {text:?}: expected a number and a unit, e.g. 7d, 24h, 90m, 2w")
    })?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => HOUR_MS,
        "d" | "" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return Err(format!("--since {text:?}: unit must be m, h, d or w")),
    };
    if n == 0 {
        return Err(format!("--since {text:?}: must be more than 0"));
    }
    Ok(n * unit_ms)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Percent, rounded to 0.01; `None` without executions.
    pub success_rate: Option<f64>,
    /// ms.
    pub average_execution_time: Option<f64>,
    pub p50_execution_time: Option<f64>,
    pub p95_execution_time: Option<f64>,
    pub p99_execution_time: Option<f64>,
    pub max_execution_time: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    pub samples: u64,
    pub memory_average_mb: Option<f64>,
    pub memory_peak_mb: Option<f64>,
    pub cpu_average_percent: Option<f64>,
    pub cpu_peak_percent: Option<f64>,
    pub processes_peak: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub executions: ExecutionSummary,
    pub probes: u64,
    /// Percent of availability probes that found Codex usable.
    pub availability: Option<f64>,
    pub resources: ResourceSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    #[serde(flatten)]
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Epoch ms.
    pub from: u64,
    pub to: u64,
    pub since: String,
    /// Hours of the period with any data.
    pub hours_with_data: usize,
    pub total: Period,
    pub days: Vec<Day>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The summary of a set of merged hours.
pub fn period(h: &Hour) -> Period {
    let n = h.executions;
    let some = |v: f64| (n > 0).then_some(v);
    let r = h.resource_samples;
    Period {
        executions: ExecutionSummary {
            total: n,
            successful: h.successes,
            failed: h.failures,
            timed_out: h.timeouts,
            success_rate: some(history::percent(h.successes, n)),
            average_execution_time: some(h.duration_sum / n.max(1) as f64),
            p50_execution_time: some(h.durations.quantile(0.5)),
            p95_execution_time: some(h.durations.quantile(0.95)),
            p99_execution_time: some(h.durations.quantile(0.99)),
            max_execution_time: some(h.duration_max),
        },
        probes: h.probes,
        availability: (h.probes > 0).then(|| history::percent(h.probes_available, h.probes)),
        resources: ResourceSummary {
            samples: r,
            memory_average_mb: (r > 0).then(|| round2(h.memory_sum_mb / r as f64)),
            memory_peak_mb: (r > 0).then_some(round2(h.memory_max_mb)),
            cpu_average_percent: (r > 0).then(|| round2(h.cpu_sum / r as f64)),
            cpu_peak_percent: (r > 0).then_some(round2(h.cpu_max)),
            processes_peak: h.processes_max,
        },
    }
}

/// Builds the report over the hours overlapping `[now - since_ms, now]`.
pub fn build(hours: &[Hour], now: u64, since_ms: u64, since: &str) -> Report {
    let from = now.saturating_sub(since_ms);
    let used: Vec<&Hour> = hours
        .iter()
        .filter(|h| h.start + HOUR_MS > from && h.start <= now)
        .collect();
    let total = history::total_since(used.iter().copied(), from);
    let mut days: std::collections::BTreeMap<String, Hour> = Default::default();
    for h in &used {
        days.entry(crate::audit::day_of(h.start))
            .or_default()
            .merge(h);
    }
    Report {
        from,
        to: now,
        since: since.to_string(),
        hours_with_data: used.len(),
        total: period(&total),
        days: days
            .into_iter()
            .map(|(date, h)| Day {
                date,
                period: period(&h),
            })
            .collect(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2} %"))
}

fn mb(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} MB"))
}

/// Human text.
pub fn render_text(r: &Report) -> String {
    let t = &r.total;
    let e = &t.executions;
    let mut out = format!(
        "Codex report: last {} ({} .. {})\n\n",
        r.since,
        crate::util::time::format_rfc3339(r.from),
        crate::util::time::format_rfc3339(r.to)
    );
    out += &format!(
        "Executions      {} ({} successful, {} failed, {} timed out)\n",
        e.total, e.successful, e.failed, e.timed_out
    );
    out += &format!("Success rate    {}\n", pct(e.success_rate));
    out += &format!(
        "Execution time  avg {}, p50 {}, p95 {}, p99 {}, max {}\n",
        ms(e.average_execution_time),
        ms(e.p50_execution_time),
        ms(e.p95_execution_time),
        ms(e.p99_execution_time),
        ms(e.max_execution_time)
    );
    out += &format!(
        "Availability    {} ({} probes)\n",
        pct(t.availability),
        t.probes
    );
    out += &format!(
        "Memory          avg {}, peak {}\nCPU             avg {}, peak {}\nProcesses       peak {}\n",
        mb(t.resources.memory_average_mb),
        mb(t.resources.memory_peak_mb),
        pct(t.resources.cpu_average_percent),
        pct(t.resources.cpu_peak_percent),
        t.resources.processes_peak
    );
    if !r.days.is_empty() {
        out += "\nDay         executions  success   avg        p95        availability\n";
        for d in &r.days {
            let e = &d.period.executions;
            out += &format!(
                "{}  {:>10}  {:>8}  {:>9}  {:>9}  {}\n",
                d.date,
                e.total,
                pct(e.success_rate),
                ms(e.average_execution_time),
                ms(e.p95_execution_time),
                pct(d.period.availability)
            );
        }
    } else {
        out += "\nNo history in this period (is the agent running with history.enabled?).\n";
    }
    out
}

/// Markdown (for a wiki page or a ticket).
pub fn render_markdown(r: &Report) -> String {
    let t = &r.total;
    let e = &t.executions;
    let mut out = format!(
        "# Codex report: last {}\n\n{} – {}\n\n| Metric | Value |\n|---|---|\n",
        r.since,
        crate::util::time::format_rfc3339(r.from),
        crate::util::time::format_rfc3339(r.to)
    );
    for (k, v) in [
        ("Executions", e.total.to_string()),
        ("Successful", e.successful.to_string()),
        ("Failed", e.failed.to_string()),
        ("Timed out", e.timed_out.to_string()),
        ("Success rate", pct(e.success_rate)),
        ("Average execution time", ms(e.average_execution_time)),
        ("p50 execution time", ms(e.p50_execution_time)),
        ("p95 execution time", ms(e.p95_execution_time)),
        ("p99 execution time", ms(e.p99_execution_time)),
        ("Max execution time", ms(e.max_execution_time)),
        ("Availability", pct(t.availability)),
        (
            "Memory (avg / peak)",
            format!(
                "{} / {}",
                mb(t.resources.memory_average_mb),
                mb(t.resources.memory_peak_mb)
            ),
        ),
        (
            "CPU (avg / peak)",
            format!(
                "{} / {}",
                pct(t.resources.cpu_average_percent),
                pct(t.resources.cpu_peak_percent)
            ),
        ),
        ("Processes (peak)", t.resources.processes_peak.to_string()),
    ] {
        out += &format!("| {k} | {v} |\n");
    }
    if !r.days.is_empty() {
        out += "\n## By day\n\n| Day | Executions | Success rate | Average | p95 | Availability |\n|---|---|---|---|---|---|\n";
        for d in &r.days {
            let e = &d.period.executions;
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                d.date,
                e.total,
                pct(e.success_rate),
                ms(e.average_execution_time),
                ms(e.p95_execution_time),
                pct(d.period.availability)
            );
        }
    }
    out
}

/// `baseline show`: per baseline, the explicit value, the learned one, and the one in use.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineView {
    pub learn: bool,
    pub learning_days: u64,
    /// The learned proposal.
    pub learned: Option<Learned>,
    /// Why there is none yet (learning period not covered, no history).
    pub not_learned: Option<String>,
    pub explicit: Baselines,
    pub effective: Baselines,
}

pub fn baseline_view(config: &Config, hours: &[Hour], now: u64) -> BaselineView {
    let b = &config.baselines;
    let learned = history::learn(
        hours,
        now,
        b.learning_days,
        config.alerting.rules.min_executions,
    );
    let effective = match (&learned, b.learn) {
        (Ok(l), true) => history::fill_baselines(b, l),
        _ => b.clone(),
    };
    let (learned, not_learned) = match learned {
        Ok(l) => (Some(l), None),
        Err(why) => (None, Some(why)),
    };
    BaselineView {
        learn: b.learn,
        learning_days: b.learning_days,
        learned,
        not_learned,
        explicit: b.clone(),
        effective,
    }
}

/// Variable, explicit, learned, in use.
type BaselineRow = (&'static str, Option<f64>, Option<f64>, Option<f64>);

pub fn render_baselines_text(v: &BaselineView) -> String {
    let mut out = String::new();
    match &v.learned {
        Some(l) => {
            out += &format!(
                "Learned from {} executions, {} .. {}\n",
                l.executions,
                crate::util::time::format_rfc3339(l.from),
                crate::util::time::format_rfc3339(l.to)
            )
        }
        None => {
            out += &format!(
                "No learned baselines yet: {}\n",
                v.not_learned.as_deref().unwrap_or("no history")
            )
        }
    }
    out += &format!(
        "Learned baselines are {} (CODEX_PERF_BASELINE_LEARN); explicit CODEX_PERF_BASELINE_* values always win.\n\n",
        if v.learn { "in use" } else { "proposals only" }
    );
    out += "Baseline                          explicit    learned     in use\n";
    let l = v.learned.as_ref();
    let (e, f) = (&v.explicit, &v.effective);
    let u = |x: Option<u64>| x.map(|x| x as f64);
    let rows: [BaselineRow; 6] = [
        (
            "CODEX_PERF_BASELINE_AVG_TIME",
            u(e.avg_time),
            u(l.and_then(|l| l.avg_time)),
            u(f.avg_time),
        ),
        (
            "CODEX_PERF_BASELINE_P95_TIME",
            u(e.p95_time),
            u(l.and_then(|l| l.p95_time)),
            u(f.p95_time),
        ),
        (
            "CODEX_PERF_BASELINE_P99_TIME",
            u(e.p99_time),
            u(l.and_then(|l| l.p99_time)),
            u(f.p99_time),
        ),
        (
            "CODEX_PERF_BASELINE_SUCCESS_RATE",
            e.success_rate,
            l.and_then(|l| l.success_rate),
            f.success_rate,
        ),
        (
            "CODEX_PERF_BASELINE_AVAILABILITY",
            e.availability,
            l.and_then(|l| l.availability),
            f.availability,
        ),
        (
            "CODEX_PERF_BASELINE_MEMORY_MB",
            u(e.memory_mb),
            u(l.and_then(|l| l.memory_mb)),
            u(f.memory_mb),
        ),
    ];
    let show = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
    for (name, explicit, learned, effective) in rows {
        out += &format!(
            "{name:<34}{:<12}{:<12}{}\n",
            show(explicit),
            show(learned),
            show(effective)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_units() {
        assert_eq!(parse_since("7d").unwrap(), 7 * DAY_MS);
        assert_eq!(parse_since("24h").unwrap(), DAY_MS);
        assert_eq!(parse_since("90m").unwrap(), 90 * 60_000);
        assert_eq!(parse_since("2w").unwrap(), 14 * DAY_MS);
        assert!(parse_since("0d").is_err());
        assert!(parse_since("7y").is_err());
        assert!(parse_since("d").is_err());
    }
}
