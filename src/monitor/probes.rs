//! The probes as the monitor sees them: what the configuration asks to run ([`specs`]) and what
//! a run reports ([`ProbeRun`]). The probe source (`sources::probe`) runs them.

use std::time::Duration;

use serde::Serialize;

use super::snapshot::Status;
use crate::config::{Config, Effective, ExecutableIn, Origin};

/// Name of the availability check, as in the specification's example.
pub const AVAILABILITY_CHECK: &str = "codex-availability";

/// An extra probe's command word that stands for the configured Codex (`codex.executable`).
pub const CODEX_COMMAND: &str = "codex";

/// The probes the configuration asks for: availability first, then the extra probes.
pub fn specs(config: &Config) -> Vec<ProbeSpec> {
    let hm = &config.health_monitoring;
    let mut specs = vec![ProbeSpec {
        name: AVAILABILITY_CHECK.into(),
        program: config.codex.executable.clone(),
        executable_in: config.codex.executable_in,
        args: config.codex.args.clone(),
        timeout: Duration::from_millis(hm.health_check_timeout),
        retries: hm.retries,
        retry_delay: Duration::from_millis(hm.retry_delay),
        interval: Duration::from_millis(hm.check_interval),
        expected_exit_code: 0,
        is_availability: true,
        failure_status: Status::Critical,
    }];
    for p in &config.codex.probes {
        // `codex login status` runs the same Codex as the availability probe, found the same way.
        let (program, executable_in) = if p.command[0] == CODEX_COMMAND {
            (config.codex.executable.clone(), config.codex.executable_in)
        } else {
            (p.command[0].clone(), ExecutableIn::Agent)
        };
        specs.push(ProbeSpec {
            name: p.name.clone(),
            program,
            executable_in,
            args: p.command[1..].to_vec(),
            timeout: Duration::from_millis(p.timeout.unwrap_or(hm.health_check_timeout)),
            retries: 0,
            retry_delay: Duration::from_millis(hm.retry_delay),
            interval: Duration::from_millis(p.interval.unwrap_or(hm.check_interval)),
            expected_exit_code: p.expected_exit_code,
            is_availability: false,
            failure_status: if p.failure_status == "critical" {
                Status::Critical
            } else {
                Status::Warning
            },
        });
    }
    specs
}

/// The extra probes as [`specs`] runs them (unset `timeout` and `interval` filled in):
/// `config show`'s view of `codex.probes`. Nothing when there is none.
pub fn effective(config: &Config) -> Vec<Effective> {
    if config.codex.probes.is_empty() {
        return Vec::new();
    }
    let specs = specs(config);
    let probes: Vec<serde_json::Value> = config
        .codex
        .probes
        .iter()
        .zip(&specs[1..])
        .map(|(probe, spec)| {
            let mut value = serde_json::to_value(probe).expect("probe serializes");
            value["timeout"] = (spec.timeout.as_millis() as u64).into();
            value["interval"] = (spec.interval.as_millis() as u64).into();
            value
        })
        .collect();
    let origin = if config
        .codex
        .probes
        .iter()
        .all(|p| p.timeout.is_some() && p.interval.is_some())
    {
        Origin::Key("codex.probes")
    } else {
        Origin::From {
            how: "unset timeout and interval: healthCheckTimeout and checkInterval",
            key: "codex.probes",
        }
    };
    vec![Effective::new("codex.probes", probes, origin)]
}

/// What to run and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    /// Health check name: `codex-availability` or an extra probe's name.
    pub name: String,
    pub program: String,
    /// Whose root filesystem `program` is found in.
    pub executable_in: ExecutableIn,
    pub args: Vec<String>,
    pub timeout: Duration,
    /// Extra attempts after a failed one.
    pub retries: u32,
    pub retry_delay: Duration,
    pub interval: Duration,
    pub expected_exit_code: i32,
    /// The availability probe parses a version and decides `codex_availability_status`.
    pub is_availability: bool,
    /// Status of the check when an extra probe fails.
    pub failure_status: Status,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Ending {
    /// The process exited (normally) with this code.
    Exited(i32),
    /// The process was ended by this signal (not by us).
    Signaled(i32),
    /// It ran past the timeout; its group was killed.
    TimedOut,
    /// The agent is shutting down; its group was killed.
    Cancelled,
    /// It could not be started; Node-style message such as `spawn codex ENOENT`.
    SpawnFailed { error: String, not_found: bool },
    /// The agent could not start it for a lack of its own resources (file descriptors,
    /// processes, memory). Says nothing about Codex: never reported as Codex being down.
    AgentFault { error: String },
}

/// For logs and the `check` command: `exited with code 0`, `timed out`, ….
impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Exited(code) => write!(f, "exited with code {code}"),
            Ending::Signaled(sig) => write!(f, "killed by signal {sig}"),
            Ending::TimedOut => f.write_str("timed out"),
            Ending::Cancelled => f.write_str("cancelled"),
            Ending::SpawnFailed { error, .. } => write!(f, "could not start: {error}"),
            Ending::AgentFault { error } => write!(f, "the agent could not start it: {error}"),
        }
    }
}

/// One attempt's record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Epoch ms.
    pub started: u64,
    pub duration: Duration,
    pub ending: Ending,
    pub stdout: String,
    pub stderr_tail: String,
    /// Pid of the attempt's process (also its process group id); 0 if it never started.
    pub pid: u32,
}

impl Attempt {
    pub fn succeeded(&self, expected_exit_code: i32) -> bool {
        self.ending == Ending::Exited(expected_exit_code)
    }
}

/// One probe run: every attempt, the last one deciding.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    pub spec_name: String,
    /// The program the attempts ran: the spec's, or its path in an application process's root
    /// (`/proc/<pid>/root/…`, `codex.executableIn: application`).
    pub program: String,
    pub attempts: Vec<Attempt>,
}

impl ProbeRun {
    pub fn last(&self) -> &Attempt {
        self.attempts
            .last()
            .expect("a run has at least one attempt")
    }
    pub fn retries(&self) -> u32 {
        self.attempts.len().saturating_sub(1) as u32
    }
    /// From the first attempt's start to the last one's end: attempts and the waits between.
    pub fn elapsed(&self) -> Duration {
        let first = self.attempts[0].started;
        let last = self.last();
        Duration::from_millis(
            (last.started + last.duration.as_millis() as u64).saturating_sub(first),
        )
    }
}

/// Extracts a semantic version (`0.171.0`, `1.2.3-beta.1`) from a `--version` output.
pub fn parse_version(output: &str) -> Option<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        // Not preceded by a digit or dot, so `v1.2.3` matches and `11.2.3.4` does not match `1.2.3`.
        regex::Regex::new(r"(?:^|[^0-9.])(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.\-+]*[0-9A-Za-z])?)")
            .expect("valid regex")
    });
    re.captures(output).map(|c| c[1].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_real_outputs() {
        assert_eq!(
            parse_version("codex-cli 0.171.0\n").as_deref(),
            Some("0.171.0")
        );
        assert_eq!(
            parse_version("v1.2.3-beta.1").as_deref(),
            Some("1.2.3-beta.1")
        );
        assert_eq!(parse_version("garbage \u{1}\u{2} 12"), None);
    }
}
