//! `processes`: which processes count as Codex and how often they are sampled.

use serde::{Deserialize, Serialize};

use super::Check;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProcessesConfig {
    pub enabled: bool,
    /// Process names (comm, 15 characters at most on Linux) that count as Codex.
    pub names: Vec<String>,
    /// Optional regular expression over the full command line.
    pub cmdline_regex: Option<String>,
    /// ms between samples.
    pub sample_interval: u64,
    /// ms of the rolling window for current/peak/average.
    pub window: u64,
    /// How many of the heaviest processes to list in the detailed metrics (0 = none).
    pub top_n: usize,
    /// Executable paths that count as Codex (`/proc/PID/exe`); a path ending in `/` matches
    /// every executable below that directory.
    pub exe_paths: Vec<String>,
    /// Count the npm `node …/codex` wrapper that launches the native binary. Its memory and CPU
    /// are added to the execution; the execution is still counted once.
    pub npm_wrapper: bool,
    /// Only processes that descend from this PID count.
    pub ancestor_pid: Option<u32>,
    /// Only processes that descend from a process with one of these names (comm) count.
    pub ancestor_names: Vec<String>,
    /// Leave out the agent's own children (its probes run `codex --version`).
    pub exclude_agent_children: bool,
    /// ms between full `/proc` listings that find new processes; between them only the
    /// processes already known are read.
    pub discovery_interval: u64,
}

impl Default for ProcessesConfig {
    fn default() -> Self {
        ProcessesConfig {
            enabled: true,
            names: vec!["codex".into()],
            cmdline_regex: None,
            sample_interval: 1_000,
            window: 300_000,
            top_n: 5,
            exe_paths: Vec::new(),
            npm_wrapper: true,
            ancestor_pid: None,
            ancestor_names: Vec::new(),
            exclude_agent_children: true,
            discovery_interval: 5_000,
        }
    }
}

impl ProcessesConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.sample_interval == 0 {
            bad("processes.sampleInterval", "0".into(), "must be > 0 ms");
        }
        if self.window < self.sample_interval {
            bad(
                "processes.window",
                self.window.to_string(),
                "must be at least one sample interval",
            );
        }
        if self.discovery_interval == 0 {
            bad("processes.discoveryInterval", "0".into(), "must be > 0 ms");
        }
        if let Some(re) = &self.cmdline_regex {
            if let Err(e) = regex::Regex::new(re) {
                bad("processes.cmdlineRegex", format!("{re:?}"), &e.to_string());
            }
        }
    }
}
