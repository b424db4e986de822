//! The alerting settings: variables map where documented, and bad values are refused with the
//! variable's name — without echoing secrets.

use codex_sentinel::cli;
use codex_sentinel::config::{self, Sources};

fn load(env: &[(&str, &str)]) -> Result<config::Config, String> {
    cli::load(&Sources {
        file: Some(std::path::PathBuf::from("/dev/null/none")).filter(|_| false),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .map_err(|e| e.to_string())
}

#[test]
fn variables_reach_the_alerting_section() {
    let c = load(&[
        ("ENABLE_CODEX_ALERTING", "true"),
        ("CODEX_ALERT_HOLD_EVALUATIONS", "4"),
        ("CODEX_ALERT_CLEAR_EVALUATIONS", "5"),
        (
            "CODEX_ALERT_WEBHOOK_HEADERS",
            "Authorization=Bearer abc, X-Team=codex",
        ),
        ("CODEX_ALERT_MAINTENANCE_TOKEN", "12345"),
        (
            "CODEX_ALERT_DISABLED_RULES",
            "cpu-usage,performance-degradation",
        ),
        ("CODEX_ALERT_SMTP_HOST", "smtp.company.com"),
        (
            "CODEX_ALERT_SMTP_FROM",
            "GansAuditor-Codex <alerts@company.com>",
        ),
        (
            "CODEX_ALERT_EMAIL_RECIPIENTS",
            "admin@company.com,devops@company.com",
        ),
    ])
    .unwrap();
    let a = &c.alerting;
    assert!(a.enabled);
    assert_eq!((a.hold_evaluations, a.clear_evaluations), (4, 5));
    assert_eq!(a.webhook.headers["Authorization"].expose(), "Bearer abc");
    assert_eq!(a.webhook.headers["X-Team"].expose(), "codex");
    assert_eq!(
        a.maintenance.token.as_ref().unwrap().expose(),
        "12345",
        "digits stay a string"
    );
    assert_eq!(
        a.rules.disabled,
        vec!["cpu-usage", "performance-degradation"]
    );
    assert_eq!(a.email.recipients.len(), 2);
    let shown = serde_json::to_string(&c).unwrap();
    assert!(
        !shown.contains("Bearer abc") && !shown.contains("12345"),
        "{shown}"
    );
}

#[test]
fn bad_values_name_the_variable_and_keep_secrets() {
    let e = load(&[
        ("CODEX_ALERT_SMTP_HOST", "smtp.company.com"),
        (
            "CODEX_ALERT_EMAIL_RECIPIENTS",
            "admin@company.com,not an address",
        ),
        ("CODEX_ALERT_SMTP_FROM", "alerts@company.com"),
    ])
    .unwrap_err();
    assert!(
        e.contains("CODEX_ALERT_EMAIL_RECIPIENTS") && e.contains("not an address"),
        "{e}"
    );
    let e = load(&[(
        "CODEX_ALERT_WEBHOOK_URL",
        "hooks.slack.com/services/T0/SECRETPART",
    )])
    .unwrap_err();
    assert!(
        e.contains("CODEX_ALERT_WEBHOOK_URL") && !e.contains("SECRETPART"),
        "{e}"
    );
    let e = load(&[("CODEX_ALERT_DISABLED_RULES", "cpu")]).unwrap_err();
    assert!(e.contains("unknown rule") && e.contains("cpu-usage"), "{e}");
    let e = load(&[("CODEX_ALERT_HOLD_EVALUATIONS", "0")]).unwrap_err();
    assert!(e.contains("CODEX_ALERT_HOLD_EVALUATIONS"), "{e}");
    let e = load(&[("CODEX_ALERT_WEBHOOK_FORMAT", "teams")]).unwrap_err();
    assert!(
        e.contains("CODEX_ALERT_WEBHOOK_FORMAT")
            && e.contains("teams")
            && e.contains("generic")
            && e.contains("slack"),
        "{e}"
    );
    let e = load(&[("CODEX_ALERT_SMTP_TLS", "ssl")]).unwrap_err();
    assert!(
        e.contains("CODEX_ALERT_SMTP_TLS") && e.contains("ssl") && e.contains("starttls"),
        "{e}"
    );
    let e = load(&[
        ("CODEX_ALERT_SMTP_HOST", "smtp.company.com"),
        ("CODEX_ALERT_EMAIL_RECIPIENTS", "admin@company.com"),
    ])
    .unwrap_err();
    assert!(e.contains("CODEX_ALERT_SMTP_FROM"), "{e}");
}
