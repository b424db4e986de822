//! The sinks. Each turns a [`Notification`] into its own wire format and classifies failures
//! as retryable or not; retrying, backoff and bookkeeping live in [`super::delivery`].

pub mod alertmanager;
pub mod email;
pub mod slack;
pub mod webhook;

use std::time::{Duration, SystemTime};

use super::{Notification, SinkKind};
use crate::config::{Config, Effective, Origin, WebhookFormat};

/// Why a send failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Timeout, connection error, 5xx, 429, transient SMTP error.
    Retryable {
        reason: String,
        /// The sink said when to come back (HTTP 429 `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// 4xx other than 429, permanent SMTP error, a message that cannot be built.
    Permanent(String),
}

/// The reason alone, as logged.
impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retryable { reason, .. } | SendError::Permanent(reason) => {
                f.write_str(reason)
            }
        }
    }
}

impl SendError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        SendError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A configured sink.
pub enum Notifier {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    Email(email::Email),
    Alertmanager(alertmanager::Alertmanager),
}

impl Notifier {
    pub fn kind(&self) -> SinkKind {
        match self {
            Notifier::Webhook(_) => SinkKind::Webhook,
            Notifier::Slack(_) => SinkKind::Slack,
            Notifier::Email(_) => SinkKind::Email,
            Notifier::Alertmanager(_) => SinkKind::Alertmanager,
        }
    }

    /// Sends once. The caller wraps this in its own timeout.
    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        match self {
            Notifier::Webhook(w) => w.send(n).await,
            Notifier::Slack(s) => s.send(n).await,
            Notifier::Email(e) => e.send(n).await,
            Notifier::Alertmanager(a) => a.send(n).await,
        }
    }

    /// Least time between two sends (Slack allows about one message a second per webhook).
    pub fn min_spacing(&self) -> Option<Duration> {
        match self {
            Notifier::Slack(_) => Some(slack::MIN_SPACING),
            _ => None,
        }
    }
}

/// The HTTP client of the webhook-like sinks. Its own timeout backs up the delivery timeout.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::util::http::client_builder(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for alert notifications: {e}"))
}

/// Builds every sink the configuration turns on.
pub fn build(config: &Config) -> Result<Vec<Notifier>, String> {
    let a = &config.alerting;
    let timeout = Duration::from_millis(a.delivery.timeout);
    let mut out = Vec::new();
    if let Some(url) = &a.webhook.url {
        let client = http_client(timeout)?;
        if let Some((WebhookFormat::Slack, _)) = a.webhook.resolved_format() {
            out.push(Notifier::Slack(slack::Slack::new(
                client,
                url.clone(),
                a.slack.channel.clone(),
                a.slack.username.clone(),
            )));
        } else {
            out.push(Notifier::Webhook(webhook::Webhook::new(
                client,
                url.clone(),
                &a.webhook.headers,
            )?));
        }
    }
    match (a.email.smtp_host.is_some(), a.email.recipients.is_empty()) {
        (true, false) => out.push(Notifier::Email(email::Email::new(&a.email, timeout)?)),
        (true, true) => tracing::warn!("email alerts are off: CODEX_ALERT_SMTP_HOST is set but CODEX_ALERT_EMAIL_RECIPIENTS is empty"),
        (false, false) => tracing::warn!("email alerts are off: CODEX_ALERT_EMAIL_RECIPIENTS is set but CODEX_ALERT_SMTP_HOST is not"),
        (false, true) => {}
    }
    if let Some(url) = &a.alertmanager.url {
        out.push(Notifier::Alertmanager(alertmanager::Alertmanager::new(
            http_client(timeout)?,
            url.clone(),
            generator_url(config).0,
            Duration::from_millis(a.alertmanager.resend_interval),
        )));
    }
    Ok(out)
}

/// `alerting.generatorUrl`, else this agent's alerts endpoint on its host name; and where it
/// comes from.
pub fn generator_url(config: &Config) -> (String, Origin) {
    if let Some(u) = &config.alerting.generator_url {
        return (u.clone(), Origin::Key("alerting.generatorUrl"));
    }
    let ep = &config.health_monitoring.endpoints;
    let host = match ep.host.as_str() {
        "0.0.0.0" | "::" => super::hostname(),
        h => h.to_string(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    (
        format!("http://{host}:{}{}/alerts", ep.port, config.health_path()),
        Origin::Derived("this agent's alerts endpoint"),
    )
}

/// The sinks' settings that are filled in where they are used (webhook format, SMTP TLS mode,
/// port and From, Alertmanager's generatorURL), for the sinks that are on: `config show`'s
/// view of the sinks, from the functions [`build`] uses.
pub fn effective(config: &Config) -> Vec<Effective> {
    let a = &config.alerting;
    let mut out = Vec::new();
    if let Some((format, origin)) = a.webhook.resolved_format() {
        out.push(Effective::new(
            "alerting.webhook.format",
            format.as_str(),
            origin,
        ));
    }
    if a.email.is_on() {
        let (tls, tls_origin) = a.email.tls_mode();
        let (port, port_origin) = a.email.port();
        out.push(Effective::new(
            "alerting.email.tls",
            tls.as_str(),
            tls_origin,
        ));
        out.push(Effective::new("alerting.email.smtpPort", port, port_origin));
        if let Some((from, origin)) = a.email.from_address() {
            out.push(Effective::new("alerting.email.smtpFrom", from, origin));
        }
    }
    if a.alertmanager.url.is_some() {
        let (url, origin) = generator_url(config);
        out.push(Effective::new("alerting.generatorUrl", url, origin));
    }
    out
}

/// Turns an HTTP answer into the delivery verdict: 2xx delivered; 429 retried after
/// `Retry-After`; 5xx retried; a redirect is refused (never followed, see
/// [`crate::util::http::client_builder`]); other statuses are not retried and carry the body.
pub async fn classify_response(resp: reqwest::Response) -> Result<(), SendError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    if status.is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        return Err(SendError::Permanent(crate::util::http::redirect_failure(
            status.as_u16(),
            location,
        )));
    }
    let body = resp.bytes().await.unwrap_or_default();
    let reason = crate::logging::http_failure(status.as_u16(), status.canonical_reason(), &body);
    if status.as_u16() == 429 {
        Err(SendError::Retryable {
            reason,
            retry_after: Some(retry_after.unwrap_or(Duration::from_secs(1))),
        })
    } else if status.is_server_error() {
        Err(SendError::Retryable {
            reason,
            retry_after: None,
        })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// A request error (connection refused, reset, timeout) as a retryable failure. The URL is
/// removed: webhook URLs carry tokens.
pub fn request_error(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    if e.is_builder() {
        SendError::Permanent(format!(
            "invalid request: {}",
            crate::logging::error_chain(&e)
        ))
    } else {
        SendError::retryable(crate::logging::error_chain(&e))
    }
}

/// `Retry-After` in seconds, or as an HTTP date (IMF-fixdate).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // "Wed, 21 Oct 2015 07:28:00 GMT" (and the two obsolete HTTP date forms).
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_is_guessed_from_the_host_and_overridable() {
        let format = |url: &str, format: Option<WebhookFormat>| {
            let w = crate::config::WebhookConfig {
                url: Some(crate::config::Secret::new(url.to_string())),
                format,
                headers: Default::default(),
            };
            w.resolved_format().unwrap().0
        };
        let hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXX";
        assert_eq!(format(hook, None), WebhookFormat::Slack);
        assert_eq!(
            format(hook, Some(WebhookFormat::Generic)),
            WebhookFormat::Generic
        );
        assert_eq!(
            format("https://example.com/hooks.slack.com", None),
            WebhookFormat::Generic
        );
        assert_eq!(
            format("http://127.0.0.1:9/x", Some(WebhookFormat::Slack)),
            WebhookFormat::Slack
        );
    }

    #[test]
    fn retry_after_in_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
