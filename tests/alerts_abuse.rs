//! The alerting endpoints under abuse and a stalled sink: wrong maintenance tokens are counted,
//! logged rate-limited and throttled per client; reasons and windows are bounded; the agent's
//! own notification queue (pending, dropped, per sink) is visible in `/health/codex/alerts`
//! and `/metrics` under names that cannot be taken for the application's queue.

mod alerts_support;
mod common;

use std::time::{Duration, Instant};

use alerts_support::{Answer, Receiver};
use common::{codex_bin, http_request, start_agent, Agent, AgentOptions};

const TOKEN: &str = "maint-token-1";

fn agent(webhook: &str, state: &std::path::Path) -> Agent {
    start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_ALERTING", "true".into()),
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_ALERT_EVALUATION_INTERVAL", "200".into()),
            (
                "CODEX_ALERT_DISABLED_RULES",
                "configuration-changed,codex-unavailable".into(),
            ),
            ("CODEX_ALERT_MAINTENANCE_TOKEN", TOKEN.into()),
            ("CODEX_STATE_DIR", state.display().to_string()),
            ("CODEX_ALERT_WEBHOOK_URL", webhook.to_string()),
            ("CODEX_ALERT_SEND_TIMEOUT", "30000".into()),
        ],
        ..Default::default()
    })
}

/// POST from the source address `from` (another loopback address is another client).
fn post_from(agent: &Agent, from: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let std_stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let s = socket
            .connect(format!("127.0.0.1:{}", agent.port).parse().unwrap())
            .await
            .unwrap();
        s.into_std().unwrap()
    });
    let mut s = std_stream;
    s.set_nonblocking(false).unwrap();
    let req = format!(
        "POST /health/codex/alerts/maintenance HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (code, raw)
}

/// The value of `series` once it equals `want` (metrics come with the next snapshot), or the
/// last value seen after 10 s.
fn metric(agent: &Agent, series: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = agent.get("/metrics");
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"));
        if v == want || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wrong_maintenance_tokens_are_counted_logged_and_throttled_per_client() {
    let rx = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(&rx.url("/hook"), state.path());
    let body = r#"{"duration": 600000, "reason": "upgrade"}"#;

    // A guesser on 127.0.0.2: five wrong tokens answered 401, then 429 even with the right one.
    let mut codes = Vec::new();
    for i in 0..200 {
        codes.push(post_from(&agent, "127.0.0.2", &format!("guess-{i}"), body).0);
    }
    assert!(codes[..5].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[5..].iter().all(|c| *c == 429), "{codes:?}");
    let (code, raw) = post_from(&agent, "127.0.0.2", TOKEN, body);
    assert_eq!(code, 429, "throttled whatever it sends");
    assert!(raw.to_ascii_lowercase().contains("retry-after: "), "{raw}");

    // Counted, and logged without flooding the log.
    assert_eq!(
        metric(
            &agent,
            "codex_sentinel_maintenance_auth_failures_total{reason=\"wrong_token\"} ",
            5.0
        ),
        5.0
    );
    assert_eq!(
        metric(
            &agent,
            "codex_sentinel_maintenance_auth_failures_total{reason=\"throttled\"} ",
            196.0
        ),
        196.0
    );
    let logged = agent
        .stderr()
        .lines()
        .filter(|l| l.contains("maintenance endpoint: request refused"))
        .count();
    assert!(
        (1..=2).contains(&logged),
        "{logged} lines:\n{}",
        agent.stderr()
    );

    // Another client is not affected.
    let (code, raw) = post_from(&agent, "127.0.0.1", TOKEN, body);
    assert_eq!(code, 200, "{raw}");
}

#[test]
fn maintenance_reasons_windows_and_bodies_are_bounded() {
    let rx = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(&rx.url("/hook"), state.path());
    let url = agent.url("/health/codex/alerts/maintenance");
    let auth = [("Authorization", "Bearer maint-token-1")];
    let post = |body: &str| http_request("POST", &url, Some(body), &auth).unwrap();

    let long = format!(r#"{{"duration": 600000, "reason": "{}"}}"#, "x".repeat(501));
    let (code, body) = post(&long);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("at most 500 characters"), "{body}");
    let huge = format!(
        r#"{{"duration": 600000, "reason": "{}"}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(post(&huge).0, 413);
    let (code, body) = post(r#"{"until": "9999-12-31T00:00:00Z", "reason": "forever"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("at most"), "{body}");
    let eight_days = 8 * 24 * 3_600_000u64;
    assert_eq!(post(&format!(r#"{{"duration": {eight_days}}}"#)).0, 400);
    let (code, body) = post(&format!(
        r#"{{"duration": 600000, "reason": "{}"}}"#,
        "y".repeat(500)
    ));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_agents_own_notification_queue_is_visible_per_sink() {
    // A sink that takes every request and never answers within the test.
    let rx = Receiver::start();
    rx.set_default(Answer::Stall(Duration::from_secs(60)));
    let state = tempfile::tempdir().unwrap();
    let agent = agent(&rx.url("/hook"), state.path());
    let url = agent.url("/health/codex/alerts/maintenance");
    let auth = [("Authorization", "Bearer maint-token-1")];
    // Each start and end of maintenance is a notification: six in all, one in flight.
    for _ in 0..3 {
        assert_eq!(
            http_request("POST", &url, Some(r#"{"duration": 600000}"#), &auth)
                .unwrap()
                .0,
            200
        );
        assert_eq!(http_request("DELETE", &url, None, &auth).unwrap().0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (_, list) = agent.get_json("/health/codex/alerts");
        if list["notificationQueue"]["webhook"]["pending"] == 6 {
            break list;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(list["notificationQueue"]["webhook"]["dropped"], 0);
    assert_eq!(list["notificationQueue"]["webhook"]["capacity"], 1000);
    assert_eq!(
        metric(
            &agent,
            "codex_sentinel_notifications_pending{sink=\"webhook\"} ",
            6.0
        ),
        6.0
    );
    assert_eq!(
        metric(
            &agent,
            "codex_sentinel_notifications_dropped_total{sink=\"webhook\"} ",
            0.0
        ),
        0.0
    );
}
