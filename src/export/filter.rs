//! `export.metrics.include` / `exclude`: which metrics the push exporters (OTLP, StatsD) send,
//! so a fleet can drop, say, the agent's self-metrics (`codex_sentinel.*`).
//!
//! A pattern is a metric name or a glob (`globset` syntax: `*`, `?`, `[ab]`, `{a,b}`; `*`
//! crosses dots). A metric is matched by its OpenTelemetry name (`codex.execution_time`) and,
//! when it has one, its StatsD name (`codex.availability`); an OTLP semantic-convention twin
//! (`process.memory.usage`) by its own name, and it goes wherever its source metric goes. Empty
//! `include` means every metric; `exclude` wins over `include`.
//!
//! Applied in one place for every push path: the scheduling loop ([`super::run`]) hands each
//! exporter the snapshot's samples and the observed values of the allowed metrics only. The
//! Prometheus page (`/metrics`) is not filtered: it is pulled, a scraper drops series itself
//! (`metric_relabel_configs`), and the shipped recording rules and dashboards read it whole.

use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::Problem;
use crate::catalog::{MetricDef, CATALOG};
use crate::config::Config;
use crate::monitor::observed::Observed;
use crate::monitor::snapshot::Snapshot;

/// The configuration keys, as errors name them.
pub const INCLUDE_KEY: &str = "export.metrics.include";
pub const EXCLUDE_KEY: &str = "export.metrics.exclude";

/// Which metrics the push exporters send.
#[derive(Debug, Clone, Default)]
pub struct MetricFilter {
    /// `None`: every metric.
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl MetricFilter {
    /// From `export.metrics`; a pattern that is not a valid glob, or matches no metric the
    /// agent exports (a typo would silently send everything or nothing), is a problem naming its
    /// key.
    pub fn from_config(config: &Config) -> Result<MetricFilter, Problem> {
        let m = &config.export.metrics;
        Ok(MetricFilter {
            include: globs(INCLUDE_KEY, &m.include)?,
            exclude: globs(EXCLUDE_KEY, &m.exclude)?,
        })
    }

    /// Whether nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether a metric with these names is sent.
    fn allows_names(&self, names: &[&str]) -> bool {
        let any = |set: &GlobSet| names.iter().any(|n| set.is_match(n));
        self.include.as_ref().is_none_or(any) && !self.exclude.as_ref().is_some_and(any)
    }

    /// Whether the catalog metric `def` is sent.
    pub fn allows(&self, def: &MetricDef) -> bool {
        match def.statsd {
            Some(statsd) => self.allows_names(&[def.name, statsd]),
            None => self.allows_names(&[def.name]),
        }
    }

    /// Whether the OTLP twin `name` of the catalog metric `source` is sent.
    pub fn allows_twin(&self, name: &str, source: &MetricDef) -> bool {
        self.allows(source) && self.allows_names(&[name])
    }

    /// `snapshot` with the samples of allowed metrics only (the same `Arc` when none is
    /// dropped).
    pub fn snapshot(&self, snapshot: &Arc<Snapshot>) -> Arc<Snapshot> {
        if snapshot.samples.iter().all(|s| self.allows(s.def)) {
            return snapshot.clone();
        }
        Arc::new(Snapshot::new(
            snapshot.report.clone(),
            snapshot.metrics.clone(),
            snapshot
                .samples
                .iter()
                .filter(|s| self.allows(s.def))
                .cloned()
                .collect(),
            snapshot.codex_available,
            snapshot.active_processes,
        ))
    }

    /// `observed` with the values of allowed metrics only.
    pub fn observed(&self, observed: &Arc<Observed>) -> Arc<Observed> {
        if observed.series.iter().all(|s| self.allows(s.def)) {
            return observed.clone();
        }
        Arc::new(Observed {
            series: observed
                .series
                .iter()
                .filter(|s| self.allows(s.def))
                .cloned()
                .collect(),
        })
    }
}

/// Every name a pattern may match: the catalog's OpenTelemetry and StatsD names and the OTLP
/// twins'.
fn known_names() -> impl Iterator<Item = &'static str> {
    CATALOG
        .iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.statsd))
        .chain(super::semconv::SEMCONV_TWINS.iter().map(|t| t.name))
}

fn globs(key: &'static str, patterns: &[String]) -> Result<Option<GlobSet>, Problem> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let bad = |why: String| (key, format!("{pattern:?}"), why);
        if pattern.trim().is_empty() {
            return Err(bad("an empty pattern".into()));
        }
        let glob = Glob::new(pattern.trim()).map_err(|e| bad(e.kind().to_string()))?;
        let matcher = glob.compile_matcher();
        if !known_names().any(|n| matcher.is_match(n)) {
            return Err(bad(
                "matches no metric the agent exports (docs/metrics.md lists them)".into(),
            ));
        }
        set.add(glob);
    }
    set.build()
        .map(Some)
        .map_err(|e| (key, format!("{patterns:?}"), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn filter(include: &[&str], exclude: &[&str]) -> Result<MetricFilter, Problem> {
        let mut c = Config::default();
        c.export.metrics.include = include.iter().map(|s| s.to_string()).collect();
        c.export.metrics.exclude = exclude.iter().map(|s| s.to_string()).collect();
        MetricFilter::from_config(&c)
    }

    #[test]
    fn names_and_globs_include_and_exclude_wins() {
        let all = filter(&[], &[]).unwrap();
        assert!(all.is_empty());
        assert!(CATALOG.iter().all(|d| all.allows(d)));

        let no_self = filter(&[], &["codex_sentinel.*"]).unwrap();
        assert!(no_self.allows(&catalog::EXECUTION_TIME));
        assert!(!no_self.allows(&catalog::AGENT_EXPORT_ERRORS));
        // The agent's semantic-convention twins go with their source.
        let rss = CATALOG
            .iter()
            .find(|d| d.name == "codex_sentinel.memory_rss")
            .unwrap();
        assert!(!no_self.allows_twin("process.memory.usage", rss));

        let only = filter(&["codex.execution_time", "codex.availability*"], &[]).unwrap();
        assert!(only.allows(&catalog::EXECUTION_TIME));
        assert!(only.allows(&catalog::AVAILABILITY));
        assert!(!only.allows(&catalog::AGENT_EXPORT_ERRORS));

        // The StatsD name matches too; exclude wins over include.
        let statsd = catalog::AVAILABILITY.statsd.unwrap();
        let f = filter(&["codex.*"], &[statsd]).unwrap();
        assert!(!f.allows(&catalog::AVAILABILITY));
        assert!(f.allows(&catalog::EXECUTION_TIME));

        let twins = filter(&[], &["process.cpu.*"]).unwrap();
        assert!(twins.allows(rss));
        assert!(twins.allows_twin("process.memory.usage", rss));
        let cpu = CATALOG
            .iter()
            .find(|d| d.name == "codex_sentinel.cpu_time")
            .unwrap();
        assert!(!twins.allows_twin("process.cpu.time", cpu));
    }

    #[test]
    fn bad_patterns_name_their_key() {
        let e = filter(&["codex.[execution"], &[]).unwrap_err();
        assert_eq!((e.0, e.1.as_str()), (INCLUDE_KEY, "\"codex.[execution\""));
        assert!(e.2.contains("unclosed character class"), "{}", e.2);
        let e = filter(&[], &["codex.exectuion_time"]).unwrap_err();
        assert_eq!(e.0, EXCLUDE_KEY);
        assert!(e.2.contains("matches no metric"), "{}", e.2);
        assert_eq!(filter(&[" "], &[]).unwrap_err().0, INCLUDE_KEY);
    }
}
