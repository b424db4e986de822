//! Turning observations into health checks: status, message, details and recommendations.

use serde_json::{json, Map, Value};

pub use super::probes::AVAILABILITY_CHECK;
use super::probes::{parse_version, Ending, ProbeRun, ProbeSpec};
use super::snapshot::{HealthCheck, Status};
use crate::config::Thresholds;

/// A check together with what an operator should do about it.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub check: HealthCheck,
    pub recommendations: Vec<String>,
}

/// What a probe run says about Codex.
#[derive(Debug, Clone)]
pub struct ProbeVerdict {
    pub evaluated: Evaluated,
    /// Codex ran and exited as expected (even if slow or with an unreadable version).
    pub available: bool,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Evaluates a probe run against the thresholds.
pub fn evaluate_probe(spec: &ProbeSpec, run: &ProbeRun, thresholds: &Thresholds) -> ProbeVerdict {
    let last = run.last();
    let duration_ms = last.duration.as_millis() as u64;
    let mut details = Map::new();
    details.insert("executable".into(), json!(run.program));
    if !spec.is_availability {
        details.insert("command".into(), json!(command_line(spec)));
    }
    details.insert("retryCount".into(), json!(run.retries()));
    let (status, message, recommendations, available) = match &last.ending {
        Ending::SpawnFailed { error, not_found } => {
            details.insert("error".into(), json!(error));
            let recs = if *not_found {
                strings(&[
                    "Verify Codex CLI installation",
                    "Check PATH environment variable",
                    "Restart the service if necessary",
                ])
            } else {
                strings(&[
                    "Check that the Codex executable is executable by the agent's user",
                    "Verify Codex CLI installation",
                ])
            };
            let message = if *not_found {
                format!("Codex CLI executable not found: {error}")
            } else {
                format!("Codex CLI could not be started: {error}")
            };
            let status = if spec.is_availability {
                Status::Unavailable
            } else {
                spec.failure_status
            };
            (status, message, recs, false)
        }
        Ending::AgentFault { error } => {
            details.insert("error".into(), json!(error));
            details.insert("agentFault".into(), json!(true));
            (
                Status::Warning,
                format!("The agent could not start the probe, so Codex's state is unknown (an agent problem, not Codex): {error}"),
                strings(&[
                    "Check the agent's file-descriptor limit (ulimit -n) and open connections",
                    "Check the container's process and memory limits",
                ]),
                false,
            )
        }
        Ending::TimedOut => {
            details.insert("timedOut".into(), json!(true));
            details.insert("timeout".into(), json!(spec.timeout.as_millis() as u64));
            stderr_detail(&mut details, &last.stderr_tail);
            (
                failure_status(spec),
                format!(
                    "Codex CLI did not answer within {} ms; its process group was killed",
                    spec.timeout.as_millis()
                ),
                timeout_recommendations(spec),
                false,
            )
        }
        Ending::Exited(code) if *code != spec.expected_exit_code => {
            details.insert("exitCode".into(), json!(code));
            stderr_detail(&mut details, &last.stderr_tail);
            (
                failure_status(spec),
                format!(
                    "Codex CLI exited with code {code} (expected {})",
                    spec.expected_exit_code
                ),
                vec![
                    format!("Run `{}` by hand to see the error", command_line(spec)),
                    "Reinstall or update the Codex CLI".to_string(),
                ],
                false,
            )
        }
        Ending::Signaled(sig) => {
            details.insert("signal".into(), json!(sig));
            stderr_detail(&mut details, &last.stderr_tail);
            (
                failure_status(spec),
                format!("Codex CLI was killed by signal {sig}"),
                strings(&["Check the node for memory pressure (OOM killer)"]),
                false,
            )
        }
        Ending::Cancelled => (
            Status::Warning,
            "Probe cancelled: the agent is shutting down".to_string(),
            Vec::new(),
            false,
        ),
        Ending::Exited(_) => {
            let mut status = Status::Healthy;
            let mut message = if spec.is_availability {
                "Codex CLI is available and responding".to_string()
            } else {
                format!("Probe `{}` succeeded", spec.name)
            };
            let mut recs = Vec::new();
            if spec.is_availability {
                match parse_version(&last.stdout) {
                    Some(v) => {
                        details.insert("version".into(), json!(v));
                    }
                    None => {
                        status = Status::Warning;
                        message = "Codex CLI answered but printed no recognisable version".into();
                        details.insert("output".into(), json!(truncate(&last.stdout, 200)));
                        recs.push("Check that the configured executable is the Codex CLI".into());
                    }
                }
                if duration_ms > thresholds.availability_timeout {
                    status = status.max(Status::Warning);
                    message = format!(
                        "Codex CLI is responding slowly ({duration_ms} ms > {} ms)",
                        thresholds.availability_timeout
                    );
                    recs.push("Check system load (CPU, memory) on the node".into());
                }
            }
            (status, message, recs, true)
        }
    };
    ProbeVerdict {
        evaluated: Evaluated {
            check: HealthCheck {
                name: spec.name.clone(),
                status,
                message,
                timestamp: last.started,
                duration: duration_ms,
                details,
                recommendations: Vec::new(),
                raises_alert: true,
            },
            recommendations,
        },
        available,
    }
}

/// What to do about a timeout, given how the probe is configured: the timeout's own setting and
/// its current value; retries suggested only where they are off and can be turned on.
fn timeout_recommendations(spec: &ProbeSpec) -> Vec<String> {
    let timeout = spec.timeout.as_millis();
    let mut recs = vec!["Check system load (CPU, memory) on the node".to_string()];
    if spec.is_availability {
        recs.push(format!(
            "Increase CODEX_HEALTH_CHECK_TIMEOUT (now {timeout} ms) if the host is slow"
        ));
        if spec.retries == 0 {
            recs.push("Enable retries with CODEX_HEALTH_CHECK_RETRIES".into());
        } else {
            recs.push(format!(
                "Retries are on (CODEX_HEALTH_CHECK_RETRIES={}) and the last attempt still timed out: run `{}` by hand to see why it hangs",
                spec.retries,
                command_line(spec)
            ));
        }
    } else {
        recs.push(format!(
            "Increase this probe's timeout (codex.probes[].timeout, now {timeout} ms) if the host is slow"
        ));
    }
    recs
}

fn failure_status(spec: &ProbeSpec) -> Status {
    if spec.is_availability {
        Status::Critical
    } else {
        spec.failure_status
    }
}

fn command_line(spec: &ProbeSpec) -> String {
    std::iter::once(spec.program.as_str())
        .chain(spec.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn stderr_detail(details: &mut Map<String, Value>, tail: &str) {
    let tail = tail.trim();
    if !tail.is_empty() {
        details.insert("stderr".into(), json!(truncate(tail, 500)));
    }
}

/// Keeps at most `max` bytes, cut at a character boundary, from the end for long texts.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// The placeholder shown before the first availability probe has finished: about the agent,
/// not Codex, so it raises no alert.
pub fn pending_check(now: u64) -> Evaluated {
    Evaluated {
        check: HealthCheck {
            name: AVAILABILITY_CHECK.into(),
            status: Status::Warning,
            message: "Waiting for the first availability probe".into(),
            timestamp: now,
            duration: 0,
            details: Map::new(),
            recommendations: Vec::new(),
            raises_alert: false,
        },
        recommendations: Vec::new(),
    }
}

/// The availability check when probes are switched off: healthy (nothing is known to be wrong),
/// saying why nothing is probed; it raises no alert.
pub fn probes_disabled_check(now: u64) -> Evaluated {
    let mut details = Map::new();
    details.insert("probes".into(), json!("disabled"));
    Evaluated {
        check: HealthCheck {
            name: AVAILABILITY_CHECK.into(),
            status: Status::Healthy,
            message: "Probes are disabled (ENABLE_CODEX_HEALTH_MONITORING=false): Codex availability is not checked".into(),
            timestamp: now,
            duration: 0,
            details,
            recommendations: Vec::new(),
            raises_alert: false,
        },
        recommendations: Vec::new(),
    }
}

/// Overall status: the worst check; no checks at all is healthy.
pub fn overall(checks: &[Evaluated]) -> Status {
    checks
        .iter()
        .map(|e| e.check.status)
        .max()
        .unwrap_or(Status::Healthy)
}

/// Recommendations of the unhealthy checks, worst first, without repeats.
pub fn recommendations(checks: &[Evaluated]) -> Vec<String> {
    let mut sorted: Vec<&Evaluated> = checks
        .iter()
        .filter(|e| e.check.status != Status::Healthy)
        .collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.check.status));
    let mut out: Vec<String> = Vec::new();
    for e in sorted {
        for r in &e.recommendations {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
    out
}
