//! `alerting`: standalone alerting — evaluation, hysteresis, delivery, maintenance windows and
//! the sinks. The rule ids of `rules.disabled` are checked by the rules themselves
//! (`alerts::rules::validate`), which this layer does not know.

use serde::{Deserialize, Serialize};

use super::{secret, Check, Origin, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertingConfig {
    pub enabled: bool,
    /// ms between repeats of the same alert.
    pub cooldown: u64,
    pub max_active_alerts: usize,
    pub aggregation: bool,
    /// ms.
    pub aggregation_window: u64,
    /// ms between rule evaluations (each reads the latest snapshot).
    pub evaluation_interval: u64,
    /// Consecutive evaluations a condition must hold before its alert fires.
    pub hold_evaluations: u32,
    /// Consecutive evaluations a condition must be gone before its alert resolves.
    pub clear_evaluations: u32,
    /// Runbook links are this base followed by the rule's slug (e.g.
    /// `https://docs.company.com/runbooks/` → `…/runbooks/codex-cli-unavailable`).
    pub runbook_base_url: String,
    /// `generatorURL` sent to Alertmanager; default: this agent's alerts endpoint.
    pub generator_url: Option<String>,
    pub rules: AlertRulesConfig,
    pub delivery: DeliveryConfig,
    pub maintenance: MaintenanceConfig,
    pub webhook: WebhookConfig,
    pub slack: SlackConfig,
    pub email: EmailConfig,
    pub alertmanager: AlertmanagerConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: false,
            cooldown: 300_000,
            max_active_alerts: 50,
            aggregation: false,
            aggregation_window: 300_000,
            evaluation_interval: 5_000,
            hold_evaluations: 3,
            clear_evaluations: 3,
            runbook_base_url: "docs/alerting.md#runbook-".into(),
            generator_url: None,
            rules: AlertRulesConfig::default(),
            delivery: DeliveryConfig::default(),
            maintenance: MaintenanceConfig::default(),
            webhook: WebhookConfig::default(),
            slack: SlackConfig::default(),
            email: EmailConfig::default(),
            alertmanager: AlertmanagerConfig::default(),
        }
    }
}

/// Thresholds of the alert rules that the health thresholds and baselines do not cover.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertRulesConfig {
    /// Percent of executions that did not succeed (failed or timed out) above which the
    /// `error-rate` check and the `failure-rate` alert are a warning; unset: the health
    /// threshold `maxErrorRate` (see `monitor::limits`).
    pub failure_rate_warning: Option<f64>,
    /// Percent above which they are critical; unset: `100 − minSuccessRate`.
    pub failure_rate_critical: Option<f64>,
    /// Rates are not judged (checks healthy, rules quiet) until the window holds this many
    /// executions.
    pub min_executions: u64,
    /// MB of Codex memory that counts as exhaustion (critical, for the `memory-usage` check and
    /// alert); unset: 1.5 × `maxMemoryUsage`.
    pub memory_critical_mb: Option<u64>,
    /// Percent of one core (summed over Codex processes) above which CPU is a warning.
    pub cpu_warning_percent: f64,
    /// Queued operations above which the queue-backlog alert fires.
    pub queue_backlog: f64,
    /// ms of average queue wait above which the queue-backlog alert fires.
    pub queue_wait: f64,
    /// Rule ids that never fire (e.g. `performance-degradation`).
    pub disabled: Vec<String>,
}

impl Default for AlertRulesConfig {
    fn default() -> Self {
        AlertRulesConfig {
            failure_rate_warning: None,
            failure_rate_critical: None,
            min_executions: 10,
            memory_critical_mb: None,
            cpu_warning_percent: 80.0,
            queue_backlog: 10.0,
            queue_wait: 60_000.0,
            disabled: Vec::new(),
        }
    }
}

/// How notifications are delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// ms one send may take (connect, request, response) before it counts as failed.
    pub timeout: u64,
    /// Attempts per notification and sink before it is logged as undelivered.
    pub max_attempts: u32,
    /// ms before the first retry; doubles each time, with jitter.
    pub initial_backoff: u64,
    /// ms; longest wait between retries.
    pub max_backoff: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: 10_000,
            max_attempts: 10,
            initial_backoff: 1_000,
            max_backoff: 300_000,
        }
    }
}

/// Maintenance windows silence new notifications; alert state is still kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Bearer token of `POST`/`DELETE {path}/alerts/maintenance`; unset: endpoint refuses.
    pub token: Option<Secret>,
    /// Planned windows (RFC 3339 or epoch ms).
    pub windows: Vec<MaintenanceWindow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Contains tokens for Slack: a secret.
    pub url: Option<Secret>,
    /// `generic` or `slack`; guessed from the URL when unset ([`WebhookConfig::resolved_format`]).
    pub format: Option<WebhookFormat>,
    /// Extra request headers (e.g. an `Authorization` for the receiver); values are secrets.
    pub headers: std::collections::BTreeMap<String, Secret>,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Generic,
    Slack,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Generic => "generic",
            WebhookFormat::Slack => "slack",
        }
    }
}

impl WebhookConfig {
    /// The body the webhook gets, and why: `format` if set, else Slack's for a
    /// `hooks.slack.com` address (Slack rejects the generic body). `None` without a URL.
    pub fn resolved_format(&self) -> Option<(WebhookFormat, Origin)> {
        let url = self.url.as_ref()?;
        if let Some(format) = self.format {
            return Some((format, Origin::Key("alerting.webhook.format")));
        }
        let slack_host = reqwest::Url::parse(url.expose())
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h.eq_ignore_ascii_case("hooks.slack.com"))
            })
            .unwrap_or(false);
        Some(if slack_host {
            (
                WebhookFormat::Slack,
                Origin::Derived("slack because the URL's host is hooks.slack.com"),
            )
        } else {
            (
                WebhookFormat::Generic,
                Origin::Derived("generic because the URL is not a hooks.slack.com address"),
            )
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SlackConfig {
    pub channel: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EmailConfig {
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_user: Option<String>,
    pub smtp_pass: Option<Secret>,
    pub smtp_from: Option<String>,
    /// Comma-separated in the environment, a list in the file.
    pub recipients: Vec<String>,
    /// `starttls`, `tls` or `none`; unset: by the port ([`EmailConfig::tls_mode`]).
    pub tls: Option<SmtpTls>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required.
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte (SMTPS).
    #[serde(rename = "tls")]
    Implicit,
    /// Plain text: only for a local relay, and only when asked for.
    #[serde(rename = "none")]
    None,
}

impl SmtpTls {
    /// The value of `alerting.email.tls` that selects it.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "tls",
            SmtpTls::None => "none",
        }
    }

    /// The port used when `smtpPort` is unset.
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

impl EmailConfig {
    /// Email is on only with both a host and recipients (one alone is reported at start).
    pub fn is_on(&self) -> bool {
        self.smtp_host.is_some() && !self.recipients.is_empty()
    }

    /// `tls` if set, else implicit TLS on port 465 and STARTTLS on any other port.
    pub fn tls_mode(&self) -> (SmtpTls, Origin) {
        match self.tls {
            Some(tls) => (tls, Origin::Key("alerting.email.tls")),
            None if self.smtp_port == Some(465) => (
                SmtpTls::Implicit,
                Origin::Derived("tls because smtpPort is 465"),
            ),
            None => (SmtpTls::StartTls, Origin::Default),
        }
    }

    /// `smtpPort` if set, else the port of the TLS mode (587, 465 or 25).
    pub fn port(&self) -> (u16, Origin) {
        match self.smtp_port {
            Some(p) => (p, Origin::Key("alerting.email.smtpPort")),
            None => (
                self.tls_mode().0.default_port(),
                Origin::Derived("the TLS mode's port: starttls 587, tls 465, none 25"),
            ),
        }
    }

    /// The From address: `smtpFrom`, else `smtpUser` (an address for most providers).
    pub fn from_address(&self) -> Option<(&str, Origin)> {
        match (&self.smtp_from, &self.smtp_user) {
            (Some(from), _) => Some((from, Origin::Key("alerting.email.smtpFrom"))),
            (None, Some(user)) => Some((
                user,
                Origin::From {
                    how: "the SMTP user",
                    key: "alerting.email.smtpUser",
                },
            )),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub url: Option<Secret>,
    /// ms between re-sends of firing alerts (Alertmanager resolves alerts that stop coming).
    pub resend_interval: u64,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            url: None,
            resend_interval: 60_000,
        }
    }
}

impl AlertingConfig {
    /// Checks of the `alerting` section (see docs/alerting.md).
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        let a = self;
        for (key, v) in [
            ("alerting.evaluationInterval", a.evaluation_interval),
            ("alerting.delivery.timeout", a.delivery.timeout),
            (
                "alerting.delivery.initialBackoff",
                a.delivery.initial_backoff,
            ),
            (
                "alerting.alertmanager.resendInterval",
                a.alertmanager.resend_interval,
            ),
        ] {
            if v == 0 {
                bad(key, "0".into(), "must be > 0 ms");
            }
        }
        if a.aggregation && a.aggregation_window == 0 {
            bad("alerting.aggregationWindow", "0".into(), "must be > 0 ms");
        }
        for (key, v) in [
            ("alerting.holdEvaluations", a.hold_evaluations),
            ("alerting.clearEvaluations", a.clear_evaluations),
            ("alerting.delivery.maxAttempts", a.delivery.max_attempts),
        ] {
            if v == 0 {
                bad(key, "0".into(), "must be at least 1");
            }
        }
        if a.max_active_alerts == 0 {
            bad("alerting.maxActiveAlerts", "0".into(), "must be at least 1");
        }
        for (key, v) in [
            (
                "alerting.rules.failureRateWarning",
                a.rules.failure_rate_warning,
            ),
            (
                "alerting.rules.failureRateCritical",
                a.rules.failure_rate_critical,
            ),
        ] {
            if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
                bad(key, v.to_string(), "a percentage must be within 0..100");
            }
        }
        for (i, w) in a.maintenance.windows.iter().enumerate() {
            let key = format!("alerting.maintenance.windows.{i}");
            let start = crate::util::time::parse_time(&w.start);
            let end = crate::util::time::parse_time(&w.end);
            match (start, end) {
                (Some(s), Some(e)) if s < e => {}
                (Some(_), Some(_)) => bad(&key, w.end.clone(), "end must be after start"),
                _ => bad(
                    &key,
                    format!("{:?} .. {:?}", w.start, w.end),
                    "start and end must be RFC 3339 (2026-11-26T22:00:00Z) or epoch ms",
                ),
            }
        }
        for (key, url) in [
            ("alerting.webhook.url", &a.webhook.url),
            ("alerting.alertmanager.url", &a.alertmanager.url),
        ] {
            if let Some(url) = url {
                // The value is a secret: say what is wrong without echoing it.
                if reqwest::Url::parse(url.expose())
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
                {
                    bad(
                        key,
                        secret::REDACTED.into(),
                        "must be an http:// or https:// URL",
                    );
                }
            }
        }
        for name in a.webhook.headers.keys() {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                bad(
                    "alerting.webhook.headers",
                    format!("{name:?}"),
                    "not a valid header name",
                );
            }
        }
        if a.generator_url
            .as_deref()
            .is_some_and(|u| reqwest::Url::parse(u).is_err())
        {
            bad(
                "alerting.generatorUrl",
                format!("{:?}", a.generator_url.as_deref().unwrap_or_default()),
                "must be an absolute URL",
            );
        }
        let email = &a.email;
        if email.is_on() {
            for r in &email.recipients {
                if r.parse::<lettre::message::Mailbox>().is_err() {
                    bad(
                        "alerting.email.recipients",
                        format!("{r:?}"),
                        "not an email address",
                    );
                }
            }
            match email.from_address().map(|(f, _)| f) {
                Some(f) if f.parse::<lettre::message::Mailbox>().is_ok() => {}
                Some(f) => bad(
                    "alerting.email.smtpFrom",
                    format!("{f:?}"),
                    "not an email address",
                ),
                None => bad(
                    "alerting.email.smtpFrom",
                    "unset".into(),
                    "set CODEX_ALERT_SMTP_FROM (or an address in CODEX_ALERT_SMTP_USER)",
                ),
            }
        }
    }
}
