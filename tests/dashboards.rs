//! The dashboards in `dashboards/`: every metric they name is in the catalog (in the spelling of
//! the pipeline each one reads), and the Datadog one deserializes into Datadog's own API client
//! models (PyPI `datadog-api-client`) with nothing left unparsed. The Grafana panels' PromQL is
//! run against a real Prometheus in `tests/prometheus_export.rs`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use codex_sentinel::catalog::{MetricKind, CATALOG};
use codex_sentinel::export::semconv::SEMCONV_TWINS;
use codex_sentinel::export::statsd::SERVICE_CHECK;

fn load(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(common::root().join("dashboards").join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Identifiers made of `[a-z0-9_.]` that start with `prefix`, in `text`.
fn identifiers(text: &str, prefixes: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b'.');
        if starts_word && prefixes.iter().any(|p| text[i..].starts_with(p)) {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .map_or(text.len(), |e| i + e);
            out.push(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Prometheus series names the catalog produces (families plus their sample suffixes).
fn prometheus_series() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for def in CATALOG {
        let name = def.prometheus_name();
        match def.kind {
            MetricKind::Gauge => {
                // A Collector's Prometheus exporter adds `_ratio` to unit-`1` gauges.
                if def.unit == "1" {
                    out.insert(format!("{name}_ratio"));
                }
                out.insert(name);
            }
            MetricKind::Counter => {
                out.insert(format!("{name}_total"));
            }
            MetricKind::Histogram => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    out
}

#[test]
fn grafana_names_only_catalog_series() {
    let dash = load("grafana.json");
    let known = prometheus_series();
    let mut named = 0;
    for panel in dash["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["type"], "prometheus");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for id in identifiers(expr, &["codex_"]) {
                assert!(
                    known.contains(&id),
                    "grafana: {id} (in `{expr}`) is not in the catalog"
                );
                named += 1;
            }
        }
    }
    assert!(named >= 10);
}

#[test]
fn datadog_names_only_catalog_statsd_metrics() {
    let dash = load("datadog.json");
    let known: BTreeSet<&str> = CATALOG.iter().filter_map(|d| d.statsd).collect();
    let text = serde_json::to_string(&dash).unwrap();
    let mut named = BTreeSet::new();
    for widget in dash["widgets"].as_array().unwrap() {
        let def = &widget["definition"];
        if def["type"] == "check_status" {
            assert_eq!(def["check"], SERVICE_CHECK);
            continue;
        }
        for request in def["requests"].as_array().unwrap() {
            for q in request["queries"].as_array().unwrap() {
                let query = q["query"].as_str().unwrap();
                // `aggregation:metric{scope}…`
                let metric = query
                    .split_once(':')
                    .and_then(|(_, rest)| rest.split_once('{'))
                    .map(|(m, _)| m)
                    .unwrap_or_else(|| panic!("datadog: cannot read `{query}`"));
                assert!(
                    known.contains(metric),
                    "datadog: {metric} is not a StatsD name of the catalog"
                );
                named.insert(metric.to_string());
            }
        }
    }
    for spec_name in [
        "codex.availability",
        "codex.success_rate",
        "codex.execution_time",
        "codex.active_processes",
        "codex.memory_usage",
    ] {
        assert!(
            named.contains(spec_name),
            "datadog dashboard lacks {spec_name}"
        );
    }
    assert!(text.contains("p95:codex.execution_time"));
}

/// Every widget of a Datadog dashboard as (title, queries); a check widget as its check.
fn datadog_widgets(dash: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    dash["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let def = &w["definition"];
            let queries = match def["type"].as_str() {
                Some("check_status") => vec![format!("check:{}", def["check"].as_str().unwrap())],
                _ => def["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["queries"].as_array().unwrap())
                    .map(|q| q["query"].as_str().unwrap().to_string())
                    .collect(),
            };
            (def["title"].as_str().unwrap().to_string(), queries)
        })
        .collect()
}

/// The metric of a Datadog query, `aggregation:metric{scope}…`.
fn datadog_metric(query: &str) -> &str {
    query
        .split_once(':')
        .and_then(|(_, rest)| rest.split_once('{'))
        .map(|(m, _)| m)
        .unwrap_or_else(|| panic!("datadog: cannot read `{query}`"))
}

/// Through the Datadog Agent's OTLP receiver metrics keep their OpenTelemetry names
/// (`codex.availability_status`, not DogStatsD's `codex.availability`) and there is no service
/// check: `datadog-otlp.json` is `datadog.json` with exactly that changed, so the two modes show
/// the same panels, and it names only metrics the agent sends over OTLP.
#[test]
fn datadog_otlp_dashboard_is_the_dogstatsd_one_with_otlp_names() {
    let statsd = datadog_widgets(&load("datadog.json"));
    let otlp = datadog_widgets(&load("datadog-otlp.json"));
    let otlp_names: BTreeSet<&str> = CATALOG.iter().map(|d| d.name).collect();
    let by_statsd_name = |name: &str| {
        CATALOG
            .iter()
            .find(|d| d.statsd == Some(name))
            .unwrap_or_else(|| panic!("{name} is not a StatsD name"))
            .name
    };
    let expected: Vec<(String, Vec<String>)> = statsd
        .into_iter()
        .filter(|(_, queries)| !queries.iter().any(|q| q.starts_with("check:")))
        .map(|(title, queries)| {
            let queries = queries
                .iter()
                .map(|q| {
                    let metric = datadog_metric(q);
                    q.replacen(
                        &format!(":{metric}{{"),
                        &format!(":{}{{", by_statsd_name(metric)),
                        1,
                    )
                })
                .collect();
            (title, queries)
        })
        .collect();
    assert_eq!(otlp, expected);
    for (_, queries) in &otlp {
        for q in queries {
            assert!(otlp_names.contains(datadog_metric(q)), "{q}");
        }
    }
    assert!(otlp
        .iter()
        .any(|(_, q)| q.iter().any(|q| q.contains(":codex.availability_status{"))));
    let dash = load("datadog-otlp.json");
    let vars: Vec<&str> = dash["template_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        vars,
        ["env", "service"],
        "unified service tags from the resource"
    );
}

#[test]
fn newrelic_names_only_catalog_otlp_metrics() {
    let dash = load("newrelic.json");
    let known: BTreeSet<&str> = CATALOG
        .iter()
        .map(|d| d.name)
        .chain(SEMCONV_TWINS.iter().map(|t| t.name))
        .collect();
    let mut named = 0;
    for page in dash["pages"].as_array().unwrap() {
        for widget in page["widgets"].as_array().unwrap() {
            for q in widget["rawConfiguration"]["nrqlQueries"]
                .as_array()
                .unwrap()
            {
                let nrql = q["query"].as_str().unwrap();
                assert!(
                    nrql.starts_with("SELECT ") && nrql.contains(" FROM Metric "),
                    "{nrql}"
                );
                // The service from the dashboard's variable, never a fixed name.
                assert!(
                    nrql.contains(" WHERE service.name IN ({{service}})"),
                    "newrelic: `{nrql}` does not take the service from the variable"
                );
                for id in identifiers(nrql, &["codex.", "codex_sentinel.", "process."]) {
                    if id == "process.executable.name" {
                        continue; // an attribute, not a metric
                    }
                    assert!(
                        known.contains(id.as_str()),
                        "newrelic: {id} (in `{nrql}`) is not exported over OTLP"
                    );
                    named += 1;
                }
            }
        }
    }
    assert!(named >= 10);
    // `{{service}}`: the services that send the agent's availability, codex-sentinel first.
    let vars = dash["variables"].as_array().unwrap();
    assert_eq!(vars.len(), 1);
    let service = &vars[0];
    assert_eq!(service["name"], "service");
    assert_eq!(service["type"], "NRQL");
    assert_eq!(service["replacementStrategy"], "STRING");
    assert_eq!(service["isMultiSelection"], true);
    let query = service["nrqlQuery"]["query"].as_str().unwrap();
    assert!(
        query.starts_with("SELECT uniques(service.name) FROM Metric")
            && query.contains("'codex.availability_status'"),
        "{query}"
    );
    assert_eq!(
        service["defaultValues"][0]["value"]["string"],
        codex_sentinel::export::otlp::DEFAULT_SERVICE_NAME
    );
    assert!(!serde_json::to_string(&dash["pages"])
        .unwrap()
        .contains("'codex-sentinel'"));
}

#[test]
fn datadog_dashboard_parses_into_the_official_client_models() {
    let python = common::root().join(".tools/datadog-venv/bin/python");
    assert!(
        python.exists(),
        "datadog-api-client venv missing at {}: run scripts/test (or scripts/setup.d/40-export-peers.sh)",
        python.display()
    );
    for dashboard in ["datadog.json", "datadog-otlp.json"] {
        let out = Command::new(&python)
            .arg(common::root().join("scripts/check_datadog_dashboard.py"))
            .arg(common::root().join("dashboards").join(dashboard))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "datadog-api-client, {dashboard}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"));
    }
}

/// The recording rules behind the specification's Grafana series parse (`promtool check rules`)
/// and compute what their unit tests say (`promtool test rules`, prometheus/rules_test.yml).
#[test]
fn recording_rules_pass_promtool_check_and_unit_tests() {
    let promtool = common::prometheus::tool("promtool");
    let dir = common::root().join("prometheus");
    for args in [
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules_test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "promtool {args:?}:\n{text}");
    }
    // Every series a rule reads is one the catalog produces.
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let known = prometheus_series();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if line.contains("record:") {
            continue;
        }
        for id in identifiers(line, &["codex_"]) {
            assert!(
                known.contains(&id),
                "rules.yml reads {id}, not in the catalog"
            );
        }
    }
}

/// The specification's secondary metrics — the application's queue and retries, the log
/// volumes' usage and growth — are on every dashboard, each in the spelling of its pipeline.
#[test]
fn every_dashboard_shows_the_secondary_metrics() {
    use codex_sentinel::catalog::{
        APP_QUEUE_SIZE, APP_QUEUE_WAIT, APP_RETRY_RATE, LOG_DISK_USAGE, LOG_GROWTH_RATE,
        LOG_SIZE_LIMIT,
    };
    let secondary = [
        &APP_QUEUE_SIZE,
        &APP_QUEUE_WAIT,
        &APP_RETRY_RATE,
        &LOG_DISK_USAGE,
        &LOG_SIZE_LIMIT,
        &LOG_GROWTH_RATE,
    ];
    let grafana = load("grafana.json");
    let exprs: Vec<String> = grafana["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let grafana_ids: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| identifiers(e, &["codex_"]))
        .collect();
    let datadog = serde_json::to_string(&load("datadog.json")).unwrap();
    let newrelic = serde_json::to_string(&load("newrelic.json")).unwrap();
    for def in secondary {
        let prom = def.prometheus_name();
        assert!(grafana_ids.contains(&prom), "grafana lacks {prom}");
        let statsd = def.statsd.expect("sent over StatsD");
        assert!(
            datadog.contains(&format!(":{statsd}{{")),
            "datadog lacks {statsd}"
        );
        assert!(
            newrelic.contains(&format!("({})", def.name)),
            "newrelic lacks {}",
            def.name
        );
    }
}
