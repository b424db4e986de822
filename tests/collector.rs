//! The agent against a real OpenTelemetry Collector (built from the official Go modules in
//! `tools/otelcol/` by `scripts/setup.d/50-otelcol.sh`): OTLP over gRPC and over HTTP with gzip,
//! cumulative and delta, and DogStatsD into the Collector's statsd receiver. What comes out of
//! the Collector's Prometheus exporter is asserted by value, read directly and through a real
//! Prometheus scraping it. The names asserted here are today's translation of the catalog's
//! names (docs/export.md, "Through an OpenTelemetry Collector").

mod common;

use std::collections::BTreeSet;

use common::collector::{sample_value, Collector, CollectorOptions};
use common::prometheus::{grafana_exprs, value, Prometheus};
use common::{codex_bin, start_agent, write_operations_log, Agent, AgentOptions};

/// Execution durations (ms) the tests log: 0.8 s, 2.5 s, 7 s.
const DURATIONS_MS: [u64; 3] = [800, 2500, 7000];
/// Their cumulative counts in the buckets le 1, 5, 10, 30, 60, +Inf, and their sum in seconds.
const BUCKETS: [(&str, f64); 6] = [
    ("1", 1.0),
    ("5", 2.0),
    ("10", 3.0),
    ("30", 3.0),
    ("60", 3.0),
    ("+Inf", 3.0),
];
const SUM_S: f64 = 10.3;

/// The agent exporting OTLP to `endpoint` every 300 ms, probing Codex once (at start). On the
/// way to Prometheus histograms go as explicit buckets (docs/export.md: the Collector's
/// Prometheus exporter shows exponential histograms only as native histograms).
fn otlp_agent(endpoint: String, extra: &[(&'static str, &str)]) -> Agent {
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "explicit_bucket_histogram".to_string(),
        ),
        ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
        // One probe at start, then none for a minute: the probe counters stay put.
        ("CODEX_HEALTH_CHECK_INTERVAL", "60000".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".into()),
        // The log volumes' panels: a size limit, and a growth rate known after 200 ms.
        ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "64Mi".into()),
        ("CODEX_DISK_USAGE_INTERVAL", "100".into()),
        ("CODEX_DISK_USAGE_GROWTH_WINDOW", "400".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    start_agent(AgentOptions {
        env,
        ..Default::default()
    })
}

/// Codex is available (the probe succeeded) as the Collector's Prometheus exporter shows it.
/// Unit-`1` gauges get the `_ratio` suffix there.
fn wait_available(collector: &Collector) -> String {
    collector.wait_scrape("codex_availability_status_ratio 1", |page| {
        sample_value(page, "codex_availability_status_ratio", &[]) == Some(1.0)
    })
}

/// The logged executions, all of them, in the execution-time histogram and the counter.
fn wait_executions(collector: &Collector) -> String {
    collector.wait_scrape("three executions", |page| {
        sample_value(
            page,
            "codex_execution_time_seconds_count",
            &[("operation_type", "review")],
        ) == Some(3.0)
    })
}

/// The series every OTLP test checks on the exporter's page, with the agent's own numbers.
fn assert_agent_series(page: &str, agent: &Agent) {
    let review = [("operation_type", "review")];
    for (le, count) in BUCKETS {
        assert_eq!(
            sample_value(
                page,
                "codex_execution_time_seconds_bucket",
                &[("operation_type", "review"), ("le", le)]
            ),
            Some(count),
            "bucket le={le}\n{page}"
        );
    }
    let sum = sample_value(page, "codex_execution_time_seconds_sum", &review).unwrap();
    assert!((sum - SUM_S).abs() < 1e-9, "sum {sum}");
    assert_eq!(
        sample_value(
            page,
            "codex_executions_total",
            &[("operation_type", "review"), ("result", "success")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample_value(
            page,
            "codex_probe_runs_total",
            &[("probe", "codex-availability"), ("result", "success")]
        ),
        Some(1.0)
    );
    // The same numbers as the agent's own endpoint.
    let (_, status) = agent.get_json("/health/codex/status");
    assert_eq!(
        sample_value(page, "codex_success_rate_ratio", &[]),
        Some(status["successRate"].as_f64().unwrap() / 100.0)
    );
    assert_eq!(
        sample_value(page, "codex_active_processes", &[]),
        Some(status["activeProcesses"].as_f64().unwrap())
    );
    // The resource becomes `job` (service.name) and `instance` (service.instance.id) labels on
    // every series, its other attributes the `target_info` series.
    assert_eq!(
        sample_value(page, "target_info", &[("job", "codex-sentinel")]),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            page,
            "target_info",
            &[("service_version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}

/// Every metric named `name` in what the Collector's receivers produced.
fn received(collector: &Collector, name: &str) -> Vec<serde_json::Value> {
    collector
        .received()
        .iter()
        .flat_map(|r| r["resourceMetrics"].as_array().cloned().unwrap_or_default())
        .flat_map(|rm| rm["scopeMetrics"].as_array().cloned().unwrap_or_default())
        .flat_map(|sm| sm["metrics"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["name"] == name)
        .collect()
}

/// Agent → Collector over OTLP gRPC, cumulative; the Collector's Prometheus exporter scraped
/// directly and by a real Prometheus, which answers the Grafana dashboard's queries.
#[test]
fn grpc_cumulative_reaches_prometheus_through_the_collector() {
    let collector = Collector::start();
    let agent = otlp_agent(
        collector.grpc_endpoint(),
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    );
    wait_available(&collector);
    write_operations_log(agent.path(), "review", &DURATIONS_MS);
    let page = wait_executions(&collector);
    assert_agent_series(&page, &agent);

    // Cumulative on arrival: the receivers' output carries the totals.
    let sums = received(&collector, "codex.executions");
    assert!(!sums.is_empty());
    for m in &sums {
        assert_eq!(m["sum"]["aggregationTemporality"], 2, "cumulative: {m}");
        assert_eq!(m["sum"]["isMonotonic"], true);
    }

    // A real Prometheus scraping the exporter. Its own `job`/`instance` target labels win; the
    // exporter's become `exported_job`/`exported_instance`.
    let prom = Prometheus::start("otelcol", collector.prometheus_port);
    let r = prom.wait_query("codex_availability_status_ratio", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(r[0]["metric"]["job"], "otelcol");
    assert_eq!(r[0]["metric"]["exported_job"], "codex-sentinel");
    let r = prom.query("sum(codex_executions_total{result=\"success\"})");
    assert_eq!(value(&r[0]), 3.0);
    // The classic buckets pass unchanged: rank 1.5 of 3 lies halfway through (1, 5].
    let q = "histogram_quantile(0.5, sum by (le) (codex_execution_time_seconds_bucket))";
    let r = prom.query(q);
    assert!((value(&r[0]) - 3.0).abs() < 1e-9, "p50 {}", value(&r[0]));

    // The Grafana dashboard through the Collector: every panel answers (unit-`1` gauges are
    // queried under both spellings, `name or name_ratio`), and so do the specification's series
    // from prometheus/rules.yml.
    prom.wait_query("count_over_time(up[1m])", |r| {
        r.len() == 1 && value(&r[0]) >= 4.0
    });
    let empty: BTreeSet<String> = grafana_exprs()
        .into_iter()
        .map(|(_, expr)| expr)
        .chain(
            [
                "codex_execution_time_p95",
                "codex_execution_time_avg",
                "codex_memory_usage_mb",
            ]
            .map(String::from),
        )
        .filter(|expr| prom.query(expr).is_empty())
        .collect();
    assert!(
        empty.is_empty(),
        "queries without data through the Collector: {empty:?}"
    );
}

/// Agent → Collector over OTLP/HTTP with gzip, delta: the Collector receives increases and its
/// `delta_to_cumulative` processor turns them back into the totals the agent has.
#[test]
fn http_gzip_delta_is_made_cumulative_by_the_collector() {
    let collector = Collector::start();
    let agent = otlp_agent(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ],
    );
    wait_available(&collector);
    // Two batches, so that the totals are made of more than one delta.
    write_operations_log(agent.path(), "review", &DURATIONS_MS[..1]);
    collector.wait_scrape("the first execution", |page| {
        sample_value(
            page,
            "codex_execution_time_seconds_count",
            &[("operation_type", "review")],
        ) == Some(1.0)
    });
    write_operations_log(agent.path(), "review", &DURATIONS_MS[1..]);
    let page = wait_executions(&collector);
    assert_agent_series(&page, &agent);

    // What arrived: delta sums and histograms whose increases add up to those totals.
    let increases = |name: &str, field: &str, value_of: &dyn Fn(&serde_json::Value) -> f64| {
        received(&collector, name)
            .iter()
            .map(|m| {
                assert_eq!(m[field]["aggregationTemporality"], 1, "delta: {m}");
                m[field]["dataPoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| {
                        p["attributes"].as_array().unwrap().iter().any(|a| {
                            a["key"] == "result" && a["value"]["stringValue"] == "success"
                                || a["key"] == "operation_type"
                                    && a["value"]["stringValue"] == "review"
                                    && field == "histogram"
                        })
                    })
                    .map(value_of)
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>()
    };
    let executions = increases("codex.executions", "sum", &|p| {
        p["asDouble"]
            .as_f64()
            .or_else(|| p["asInt"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0.0)
    });
    assert!(executions.len() >= 2, "{executions:?}");
    assert_eq!(executions.iter().sum::<f64>(), 3.0, "{executions:?}");
    let counts = increases("codex.execution_time", "histogram", &|p| {
        p["count"].as_str().unwrap().parse().unwrap()
    });
    assert_eq!(counts.iter().sum::<f64>(), 3.0, "{counts:?}");
}

/// Agent DogStatsD → the Collector's statsd receiver → its Prometheus exporter. Gauges, counters
/// and single-value distributions arrive; a line with several values (DogStatsD 1.1 packing)
/// and the service check do not parse there.
#[test]
fn dogstatsd_reaches_the_collectors_statsd_receiver() {
    let collector = Collector::start_with(CollectorOptions { log_level: "debug" });
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "60000".into()),
            (
                "DD_DOGSTATSD_URL",
                format!("udp://127.0.0.1:{}", collector.statsd_port),
            ),
            ("DD_ENV", "ci".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
        ],
        ..Default::default()
    });
    // StatsD carries no unit: no suffix. Tags become labels, plus `metric_type`.
    collector.wait_scrape("codex_availability 1", |page| {
        sample_value(
            page,
            "codex_availability",
            &[("env", "ci"), ("metric_type", "gauge")],
        ) == Some(1.0)
    });
    collector.wait_log("invalid <name>:<value> format: _sc");

    // One execution in a flush: one value on its line, into the configured explicit buckets.
    write_operations_log(agent.path(), "review", &[800]);
    let review = [("operation_type", "review")];
    let page = collector.wait_scrape("the first execution", |page| {
        sample_value(page, "codex_execution_time_count", &review) == Some(1.0)
    });
    assert_eq!(
        sample_value(
            &page,
            "codex_execution_time_bucket",
            &[("operation_type", "review"), ("le", "1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&page, "codex_execution_time_sum", &review),
        Some(0.8)
    );

    // Three in one flush go out as `codex.execution_time:2.5:2.5:2.5|d`: the receiver parses one
    // value a line and drops it. The counter, one line, has them all.
    write_operations_log(agent.path(), "review", &[2500, 2500, 2500]);
    collector.wait_log("parse metric value string: 2.5:2.5");
    write_operations_log(agent.path(), "review", &[45000]);
    let page = collector.wait_scrape("the fifth execution counted", |page| {
        sample_value(
            page,
            "codex_executions_total",
            &[("operation_type", "review"), ("result", "success")],
        ) == Some(5.0)
            && sample_value(
                page,
                "codex_execution_time_bucket",
                &[("operation_type", "review"), ("le", "60")],
            )
            .is_some_and(|n| n >= 2.0)
    });
    let count = sample_value(&page, "codex_execution_time_count", &review).unwrap();
    assert!(count < 5.0, "the multi-value line was not dropped: {count}");
    let sum = sample_value(&page, "codex_execution_time_sum", &review).unwrap();
    // Whatever got through (normally nothing of the packed line) is 2.5 s each.
    assert!(
        (sum - (0.8 + 45.0 + 2.5 * (count - 2.0))).abs() < 1e-9,
        "sum {sum} count {count}"
    );
}

/// What an OTLP exponential histogram becomes on the way to Prometheus, for the exporter
/// rewrite that will send them (the agent sends explicit buckets today). The statsd receiver
/// builds one from `|d` values of a name outside its explicit-bucket patterns. The Collector's
/// Prometheus exporter does not drop it: the text page has only `+Inf`, `_sum` and `_count`,
/// and a Prometheus with native histograms enabled scrapes it (protobuf) as a native
/// histogram, whose quantiles come from the exponential buckets, and then has no `_count`
/// series.
#[test]
fn exponential_histograms_become_prometheus_native_histograms() {
    let collector = Collector::start();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for seconds in [0.8, 2.5, 7.0, 45.0] {
        let line = format!("sample.duration:{seconds}|d|#operation_type:review");
        socket
            .send_to(line.as_bytes(), ("127.0.0.1", collector.statsd_port))
            .unwrap();
    }
    let page = collector.wait_scrape("four samples", |page| {
        sample_value(page, "sample_duration_count", &[]) == Some(4.0)
    });
    assert_eq!(sample_value(&page, "sample_duration_sum", &[]), Some(55.3));
    let buckets = common::collector::samples(&page, "sample_duration_bucket");
    assert_eq!(buckets.len(), 1, "text format: only +Inf {buckets:?}");
    assert_eq!(buckets[0].labels["le"], "+Inf");
    let exponential = received(&collector, "sample.duration");
    assert!(
        exponential
            .iter()
            .all(|m| m.get("exponentialHistogram").is_some()),
        "{exponential:?}"
    );

    let prom = Prometheus::start_with(
        "otelcol",
        collector.prometheus_port,
        &["--enable-feature=native-histograms"],
    );
    let r = prom.wait_query("histogram_count(sample_duration)", |r| {
        r.len() == 1 && value(&r[0]) == 4.0
    });
    assert_eq!(r[0]["metric"]["operation_type"], "review");
    // The median of 0.8, 2.5, 7, 45 s, interpolated in a base-2 exponential bucket: within the
    // bucket around 2.5 s, not an explicit-bucket artefact.
    let p50 = value(&prom.query("histogram_quantile(0.5, sample_duration)")[0]);
    assert!((2.3..=2.8).contains(&p50), "p50 {p50}");
    assert!(prom.query("sample_duration_count").is_empty());
}

/// The secondary metrics over OTLP through the real Collector, by value: the application's
/// queue wait and retry rate, and the log volumes' bytes (against GNU `du`), size limit and
/// growth per hour, in the Collector's Prometheus translation (unit `1` → `_ratio`, `By/h` →
/// `_bytes_per_hour`).
#[test]
fn secondary_metrics_reach_prometheus_through_the_collector() {
    let collector = Collector::start();
    let agent = otlp_agent(
        collector.grpc_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true"),
        ],
    );
    // Eight executions that each waited 4 s in the application's queue; two were retried.
    common::write_queued_operations(agent.path(), &[4000; 8], 2);
    let oplog = agent.path().join("logs/codex");
    let directory = [("directory", "operations_log")];
    let page = collector.wait_scrape("the queue and the directory at rest", |page| {
        sample_value(page, "codex_operations_queue_wait_seconds", &[]) == Some(4.0)
            && sample_value(page, "codex_logs_disk_usage_bytes", &directory)
                == Some(common::du_bytes(&oplog) as f64)
            && sample_value(page, "codex_logs_growth_rate_bytes_per_hour", &directory) == Some(0.0)
    });
    assert_eq!(
        sample_value(&page, "codex_operations_retry_rate_ratio", &[]),
        Some(0.25)
    );
    assert!(sample_value(&page, "codex_operations_queue_size", &[]).is_some());
    assert_eq!(
        sample_value(&page, "codex_logs_size_limit_bytes", &directory),
        Some(64.0 * 1024.0 * 1024.0)
    );
    assert!(sample_value(
        &page,
        "codex_logs_disk_usage_bytes",
        &[("directory", "audit_log")]
    )
    .is_some());
    // As the receiver got them: gauges with the catalog's units.
    for (name, unit) in [
        ("codex.operations.queue_wait", "s"),
        ("codex.logs.disk_usage", "By"),
        ("codex.logs.growth_rate", "By/h"),
    ] {
        let metrics = received(&collector, name);
        assert!(!metrics.is_empty(), "{name} not received");
        assert_eq!(metrics[0]["unit"], unit, "{name}");
        assert!(metrics[0]["gauge"].is_object(), "{name} is a gauge");
    }
}

/// `codex_sentinel_export_errors_total{exporter="otlp"}` on the agent's own page.
fn otlp_errors(agent: &Agent) -> f64 {
    common::collector::sample_value(
        &agent.get("/metrics").1,
        "codex_sentinel_export_errors_total",
        &[("exporter", "otlp")],
    )
    .expect("export error counter")
}

/// Waits until `pred` holds for the agent's log; panics with the log after 30 s.
fn wait_stderr(agent: &Agent, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stderr = agent.stderr();
        if pred(&stderr) {
            return stderr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not in the agent's log:\n{stderr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A 4xx from the real Collector (a metrics path its OTLP/HTTP receiver does not serve): counted,
/// and one log line with the status and the Collector's own words, not "network error".
#[test]
fn a_collector_4xx_is_logged_with_its_status_and_body() {
    let collector = Collector::start();
    let agent = otlp_agent(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &format!("{}/v1/no-such-signal", collector.http_endpoint()),
            ),
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while otlp_errors(&agent) < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "404s not counted:\n{}",
            agent.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stderr = agent.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("export failed"))
        .collect();
    assert_eq!(lines.len(), 1, "rate-limited to one line:\n{stderr}");
    assert!(
        lines[0].contains("HTTP 404 Not Found: 404 page not found"),
        "{}",
        lines[0]
    );
}

/// The real Collector killed and started again on the same ports, under a gRPC and an HTTP
/// agent: both count the failures with their cause, then deliver again without a restart of
/// their own and say so once.
#[test]
fn a_restarted_collector_gets_data_again_on_both_protocols() {
    let mut collector = Collector::start();
    let grpc = otlp_agent(
        collector.grpc_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=grpc-agent"),
        ],
    );
    let http = otlp_agent(
        collector.http_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=http-agent"),
        ],
    );
    let both_available = |page: &str| {
        ["grpc-agent", "http-agent"].iter().all(|instance| {
            sample_value(
                page,
                "codex_availability_status_ratio",
                &[("instance", instance)],
            ) == Some(1.0)
        })
    };
    collector.wait_scrape("both agents", both_available);

    collector.stop();
    for (agent, cause) in [(&grpc, "Unavailable"), (&http, "Connection refused")] {
        let before = otlp_errors(agent);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while otlp_errors(agent) < before + 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "failures not counted:\n{}",
                agent.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let stderr = agent.stderr();
        let line = stderr
            .lines()
            .find(|l| l.contains("export failed"))
            .unwrap_or_else(|| panic!("no failure logged:\n{stderr}"));
        assert!(line.contains(cause), "{cause}: {line}");
    }

    collector.restart();
    collector.wait_scrape("both agents after the restart", both_available);
    for agent in [&grpc, &http] {
        wait_stderr(agent, "export resumed", |s| s.contains("export resumed"));
    }
}

/// `export.metrics.exclude` (`codex_sentinel.*`) on both push paths into the real Collector: the
/// agent's self-metrics (and their OTLP `process.*` twins) reach it neither over OTLP nor over
/// DogStatsD, the Codex metrics do; the agent's own `/metrics` keeps everything; the start-up
/// line counts the series pushed after the filter.
#[test]
fn excluded_metrics_reach_the_collector_on_no_push_path() {
    let collector = Collector::start();
    let statsd = format!("udp://127.0.0.1:{}", collector.statsd_port);
    let agent = otlp_agent(
        collector.grpc_endpoint(),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("DD_DOGSTATSD_URL", &statsd),
            ("CODEX_STATSD_INTERVAL", "300"),
            ("CODEX_EXPORT_METRICS_EXCLUDE", "codex_sentinel.*"),
        ],
    );
    // Several requests from both receivers, each a whole export.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let names = loop {
        let received = collector.received();
        let names: BTreeSet<String> = received
            .iter()
            .flat_map(|r| r["resourceMetrics"].as_array().cloned().unwrap_or_default())
            .flat_map(|rm| rm["scopeMetrics"].as_array().cloned().unwrap_or_default())
            .flat_map(|sm| sm["metrics"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect();
        // `codex.availability_status` over OTLP, `codex.availability` over DogStatsD.
        if received.len() >= 6
            && names.contains("codex.availability_status")
            && names.contains("codex.availability")
        {
            break names;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both paths not seen: {names:?}\n{}",
            agent.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let leaked: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("codex_sentinel") || n.starts_with("process."))
        .collect();
    assert!(leaked.is_empty(), "excluded metrics pushed: {leaked:?}");
    assert!(names.contains("codex.probe.runs"), "{names:?}");

    let (_, page) = agent.get("/metrics");
    assert!(page.contains("\ncodex_sentinel_uptime_seconds "), "{page}");
    let stderr = agent.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("metric series at start"))
        .unwrap_or_else(|| panic!("no series line:\n{stderr}"));
    let field = |name: &str| -> usize {
        let at = line.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        line[at..].split(' ').next().unwrap().parse().unwrap()
    };
    assert!(
        field("series") < field("prometheus_series"),
        "the count does not reflect the filter: {line}"
    );
    assert!(line.contains("filtered=true"), "{line}");
}

/// `packValues: false` into the real Collector's statsd receiver: every execution of a flush on
/// its own `|d` line, so all of them arrive — count, sum and buckets exact — where packed lines
/// are dropped (test above). Datadog's unified service tags (`DD_ENV`, `DD_SERVICE`,
/// `DD_VERSION`) arrive as `env`, `service`, `version` on every series.
#[test]
fn one_value_a_line_delivers_every_execution_with_unified_service_tags() {
    let collector = Collector::start();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "60000".into()),
            (
                "DD_DOGSTATSD_URL",
                format!("udp://127.0.0.1:{}", collector.statsd_port),
            ),
            ("CODEX_STATSD_PACK_VALUES", "false".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
            ("DD_ENV", "staging".into()),
            ("DD_SERVICE", "reviews-api".into()),
            ("DD_VERSION", "2.4.1".into()),
        ],
        ..Default::default()
    });
    let ust = [
        ("env", "staging"),
        ("service", "reviews-api"),
        ("version", "2.4.1"),
    ];
    collector.wait_scrape("codex_availability with the service tags", |page| {
        sample_value(page, "codex_availability", &ust) == Some(1.0)
    });
    // Three executions in one flush, then two more.
    write_operations_log(agent.path(), "review", &DURATIONS_MS);
    write_operations_log(agent.path(), "review", &[45_000, 2_500]);
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut labels = ust.to_vec();
        labels.push(("operation_type", "review"));
        labels.extend_from_slice(extra);
        labels
    };
    let page = collector.wait_scrape("five executions, one value a line", |page| {
        sample_value(page, "codex_execution_time_count", &with(&[])) == Some(5.0)
    });
    let sum = sample_value(&page, "codex_execution_time_sum", &with(&[])).unwrap();
    assert!((sum - (SUM_S + 47.5)).abs() < 1e-9, "sum {sum}");
    for (le, count) in [
        ("1", 1.0),
        ("5", 3.0),
        ("10", 4.0),
        ("30", 4.0),
        ("60", 5.0),
    ] {
        assert_eq!(
            sample_value(&page, "codex_execution_time_bucket", &with(&[("le", le)])),
            Some(count),
            "le={le}\n{page}"
        );
    }
    assert_eq!(
        sample_value(
            &page,
            "codex_executions_total",
            &with(&[("result", "success")])
        ),
        Some(5.0)
    );
}
