//! What the alert engine keeps between evaluations and across restarts: the engine changes it,
//! the store persists it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::Finding;
use super::{AlertEvent, MaintenanceStatus, Severity};

/// One series' state; persisted so a restart keeps active alerts, their notified flags and
/// hysteresis counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// Consecutive evaluations with the condition.
    pub hits: u32,
    /// Consecutive evaluations without it.
    pub misses: u32,
    pub firing: bool,
    /// Epoch ms the condition was first seen (Alertmanager `startsAt`).
    pub since: u64,
    /// Epoch ms it started firing.
    pub fired_at: u64,
    /// A firing notification went out for this activation.
    pub notified: bool,
    /// Severity of the last firing notification (to notice escalations).
    pub notified_severity: Option<Severity>,
    /// The latest finding.
    pub finding: Finding,
    /// Evaluation number that last saw the condition (not persisted meaningfully).
    #[serde(skip)]
    pub(super) seen_in: u64,
}

impl PartialEq for Series {
    /// Decides whether the state must be written again, so it ignores what changes without
    /// changing the alert: `seen_in` (a per-process evaluation number) and the finding's
    /// measured values (message, details). A restart may show values a few evaluations old;
    /// the next evaluation refreshes them.
    fn eq(&self, o: &Self) -> bool {
        self.hits == o.hits
            && self.misses == o.misses
            && self.firing == o.firing
            && self.since == o.since
            && self.fired_at == o.fired_at
            && self.notified == o.notified
            && self.notified_severity == o.notified_severity
            && self.finding.severity == o.finding.severity
            && self.finding.title == o.finding.title
    }
}

/// Everything the engine keeps between evaluations and across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EngineState {
    pub series: BTreeMap<String, Series>,
    /// Epoch ms of the last firing notification per series (cooldown).
    pub last_notice: BTreeMap<String, u64>,
    /// Maintenance started through the endpoint.
    pub manual_maintenance: Option<MaintenanceStatus>,
    /// Maintenance in force at the last evaluation (to notice starts and ends).
    pub maintenance: Option<MaintenanceStatus>,
    /// The previous run's configuration, flattened and redacted (to notice changes).
    pub config: BTreeMap<String, String>,
    /// Events waiting for the end of the aggregation window.
    pub group: Vec<AlertEvent>,
    /// Epoch ms the current aggregation window opened.
    pub group_opened: Option<u64>,
    /// Info events that are not series (`configuration-changed`), the latest per key, shown
    /// by the endpoints for [`INFO_EVENT_TTL_MS`] after they were raised, sinks or not.
    pub recent_info: Vec<AlertEvent>,
}

/// How long an info event stays listed in `/health/codex` `alerts` (one hour).
pub const INFO_EVENT_TTL_MS: u64 = 3_600_000;
