//! Rolling resource statistics of the Codex processes (filled by the process sampler).

use super::snapshot::ResourceMetrics;

/// One sample of all matched Codex processes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSample {
    /// Epoch ms.
    pub timestamp: u64,
    pub processes: u64,
    pub rss_bytes: u64,
    /// Percent of one core, summed over processes.
    pub cpu_percent: f64,
}

/// Keeps the samples of the window; until the sampler runs, reports honest zeros.
#[derive(Debug, Default)]
pub struct ResourceStats {
    last: Option<ResourceSample>,
}

impl ResourceStats {
    pub fn record(&mut self, sample: ResourceSample) {
        self.last = Some(sample);
    }

    pub fn metrics(&self) -> ResourceMetrics {
        ResourceMetrics::default()
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
