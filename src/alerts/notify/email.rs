//! Email over SMTP with lettre. `tls`: `starttls` (required; the default, port 587), `tls`
//! (implicit TLS, the default on port 465), `none` (plain text: only for a local relay, and
//! only when asked for). Subject carries severity and title; the body is plain text.
//! lettre's own timeout covers connecting only: the delivery task wraps every send in
//! `tokio::time::timeout`.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::webhook::{group_title, label};
use super::SendError;
use crate::alerts::Notification;
use crate::config::{EmailConfig, SmtpTls};
use crate::util::time::format_rfc3339;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(cfg: &EmailConfig, timeout: Duration) -> Result<Self, String> {
        let host = cfg.smtp_host.clone().unwrap_or_default();
        // The mode and port `config show` shows: resolved in one place, `EmailConfig`.
        let (port, _) = cfg.port();
        let builder = match cfg.tls_mode().0 {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| format!("SMTP {host}: {}", crate::logging::error_chain(&e)))?,
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| format!("SMTP {host}: {}", crate::logging::error_chain(&e)))?,
        }
        .port(port);
        let mut builder = builder.timeout(Some(timeout));
        if let Some(user) = &cfg.smtp_user {
            let pass = cfg
                .smtp_pass
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), pass));
        }
        let from_text = cfg.from_address().map(|(f, _)| f).unwrap_or_default();
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| format!("CODEX_ALERT_SMTP_FROM {from_text:?}: {e}"))?;
        let to = cfg
            .recipients
            .iter()
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| format!("CODEX_ALERT_EMAIL_RECIPIENTS {r:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email {
            transport: builder.build(),
            from,
            to,
        })
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let message = self.message(n)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
                "SMTP: {}",
                crate::logging::error_chain(&e)
            ))),
            Err(e) => Err(SendError::retryable(format!(
                "SMTP: {}",
                crate::logging::error_chain(&e)
            ))),
        }
    }

    fn message(&self, n: &Notification) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject(n))
            .message_id(Some(format!(
                "<{}@{}>",
                crate::alerts::identity::notification_key(n),
                crate::alerts::hostname()
            )))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(body(n))
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))
    }
}

/// `[CRITICAL] Codex CLI Unavailable`, `[RESOLVED] …`, `[CRITICAL] 3 Codex alerts: …`.
pub fn subject(n: &Notification) -> String {
    match n.events.as_slice() {
        [e] => format!("[{}] {}", label(e.body.severity, e.status), e.body.title),
        _ => format!(
            "[{}] {}",
            n.worst_severity().as_str().to_uppercase(),
            group_title(n)
        ),
    }
}

/// Plain text: per alert its message, details, recommendations and runbook.
pub fn body(n: &Notification) -> String {
    let mut out = String::new();
    for (i, e) in n.events.iter().enumerate() {
        if i > 0 {
            out.push_str("\n----------------------------------------\n\n");
        }
        let b = &e.body;
        out.push_str(&format!(
            "[{}] {}\n\n{}\n\n",
            label(b.severity, e.status),
            b.title,
            b.message
        ));
        out.push_str(&format!(
            "Severity: {}\nCategory: {}\nAlert: {} (fingerprint {})\nSince: {}\n",
            b.severity.as_str(),
            b.category.as_str(),
            e.key,
            e.fingerprint(),
            format_rfc3339(e.starts_at)
        ));
        if let Some(end) = e.ends_at {
            out.push_str(&format!("Resolved: {}\n", format_rfc3339(end)));
        }
        if !b.details.is_empty() {
            out.push_str("\nDetails:\n");
            for (k, v) in &b.details {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!("  {k}: {v}\n"));
            }
        }
        if !b.recommendations.is_empty() {
            out.push_str("\nRecommendations:\n");
            for r in &b.recommendations {
                out.push_str(&format!("  - {r}\n"));
            }
        }
        out.push_str(&format!("\nRunbook: {}\n", b.runbook));
    }
    out.push_str(&format!(
        "\n-- \ncodex-sentinel on {} (notification {})\n",
        crate::alerts::hostname(),
        n.id
    ));
    out
}
