//! `codex`: how the Codex CLI is invoked by the probes, and the application's retry budget.

use serde::{Deserialize, Serialize};

use super::Check;

/// How the Codex CLI is invoked by the probes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CodexConfig {
    /// Executable name (looked up in PATH) or path.
    pub executable: String,
    /// Whose root filesystem `executable` is found in: the agent's own, or the application's.
    pub executable_in: ExecutableIn,
    /// Arguments of the availability probe. Run without a shell.
    pub args: Vec<String>,
    /// The application's retry budget for one operation (`CODEX_MAX_RETRIES`); executions in the
    /// operations log with more retries than this count as exhausted.
    pub max_retries: u32,
    /// The application's per-operation timeout in ms (`CODEX_OPERATION_TIMEOUT`).
    pub operation_timeout: u64,
    /// Optional deeper probes, each on its own schedule.
    pub probes: Vec<ExtraProbe>,
}

impl Default for CodexConfig {
    fn default() -> Self {
        CodexConfig {
            executable: "codex".into(),
            executable_in: ExecutableIn::Agent,
            args: vec!["--version".into()],
            max_retries: 3,
            operation_timeout: 45_000,
            probes: Vec::new(),
        }
    }
}

/// Where the probes find `codex.executable`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecutableIn {
    /// The agent's own filesystem: a path, or a name looked up in PATH.
    Agent,
    /// The root filesystem of an application process in the agent's PID namespace (a pod with
    /// `shareProcessNamespace`): `executable` is an absolute path in the application's image,
    /// run as `/proc/<pid>/root/<path>`. Nothing is copied, and the probe runs exactly the
    /// application's Codex; the kernel lets the agent in only when it runs as the application's
    /// user (ptrace read access, no capability needed). See `sources::application_root`.
    Application,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraProbe {
    /// Name of the health check this probe produces (e.g. `codex-login`).
    pub name: String,
    /// argv: the first element is the executable; `codex` stands for the configured Codex
    /// (`codex.executable`, found where `codex.executableIn` says).
    pub command: Vec<String>,
    /// ms; defaults to `healthMonitoring.healthCheckTimeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// ms; defaults to `healthMonitoring.checkInterval`.
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub expected_exit_code: i32,
    /// Status of the check when the probe fails: `warning` (default) or `critical`.
    #[serde(default = "default_probe_failure_status")]
    pub failure_status: String,
}

fn default_probe_failure_status() -> String {
    "warning".into()
}

/// Longest probe name: it becomes the `probe` label/attribute/tag on every platform (Datadog
/// tags stop at 200 characters, New Relic attribute values at 4095).
pub const MAX_PROBE_NAME_CHARS: usize = 64;

impl CodexConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.executable.is_empty() {
            bad("codex.executable", "\"\"".into(), "must not be empty");
        }
        if self.executable_in == ExecutableIn::Application && !self.executable.starts_with('/') {
            return bad(
                "codex.executable",
                self.executable.clone(),
                "must be an absolute path in the application's image when codex.executableIn is application",
            );
        }
        for (i, p) in self.probes.iter().enumerate() {
            let key = format!("codex.probes.{i}");
            if p.command.is_empty() || p.command[0].is_empty() {
                bad(
                    &key,
                    format!("{:?}", p.command),
                    "command must name an executable",
                );
            }
            if p.name.is_empty() {
                bad(&key, "\"\"".into(), "name must not be empty");
            }
            if p.name.chars().count() > MAX_PROBE_NAME_CHARS {
                return bad(
                    &key,
                    format!("{:?}", p.name),
                    "name must be at most 64 characters (it is a label on every platform)",
                );
            }
            if !matches!(p.failure_status.as_str(), "warning" | "critical") {
                bad(
                    &key,
                    p.failure_status.clone(),
                    "failureStatus must be warning or critical",
                );
            }
            if p.timeout == Some(0) || p.interval == Some(0) {
                bad(&key, "0".into(), "timeout and interval must be > 0 ms");
            }
        }
    }
}
