//! Sinks that cannot be reached — a name that does not resolve, a Unix socket that does not
//! exist — cost the agent nothing visible: endpoints answer at once, failures are counted per
//! exporter and logged rate-limited.

mod alerts_support;
mod common;

use std::time::{Duration, Instant};

use common::{codex_bin, start_agent, AgentOptions};

fn errors(page: &str, exporter: &str) -> f64 {
    let series = format!("codex_sentinel_export_errors_total{{exporter=\"{exporter}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

#[test]
fn unresolvable_hosts_and_a_missing_unix_socket_are_counted_not_felt() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://no-such-collector.invalid:4318".to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into()),
            ("DD_AGENT_HOST", "no-such-agent.invalid".into()),
        ],
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:9".to_string(),
            ),
            (
                "DD_DOGSTATSD_URL",
                format!("unix://{}", dir.path().join("dsd.socket").display()),
            ),
        ],
    ];
    for env in cases {
        let mut env = env;
        env.extend([
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
        ]);
        let agent = start_agent(AgentOptions {
            env: env.clone(),
            ..Default::default()
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t0 = Instant::now();
            let (code, page) = agent.get("/metrics");
            assert_eq!(code, 200);
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "/metrics took {:?} with unreachable sinks",
                t0.elapsed()
            );
            if errors(&page, "otlp") >= 3.0 && errors(&page, "statsd") >= 3.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{env:?}: errors not counted:\n{page}\n{}",
                agent.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let (code, _) = agent.get("/health/codex/status");
        assert_eq!(code, 200);
        let stderr = agent.stderr();
        for exporter in ["otlp", "statsd"] {
            let lines = stderr
                .lines()
                .filter(|l| {
                    l.contains("export failed") && l.contains(&format!("exporter=\"{exporter}\""))
                        || l.contains("export failed")
                            && l.contains(&format!("exporter={exporter}"))
                })
                .count();
            assert_eq!(
                lines, 1,
                "{exporter}: one warning, then rate-limited:\n{stderr}"
            );
        }
    }
}

#[test]
fn an_otlp_redirect_is_an_export_failure_and_is_not_followed() {
    use alerts_support::{Answer, Receiver};
    let thief = Receiver::start_on(std::net::TcpListener::bind("127.0.0.2:0").unwrap());
    let collector = Receiver::start();
    collector.set_default(Answer::Redirect(307));
    collector.set_location(&thief.url("/v1/metrics"));
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url("")),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret-otlp".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ],
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while errors(&agent.get("/metrics").1, "otlp") < 2.0 {
        assert!(Instant::now() < deadline, "{}", agent.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(collector.all().len() >= 2);
    assert!(thief.all().is_empty(), "followed: {:?}", thief.all());
    let stderr = agent.stderr();
    assert!(
        stderr.contains("307 redirect to http://127.0.0.2:") && stderr.contains("not followed"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-otlp"), "{stderr}");
}
