//! The metric tables of `docs/metrics.md`, generated from the catalog and the OpenTelemetry
//! semantic-convention twins. A test keeps the document in step; to refresh it run
//! `CODEX_SENTINEL_BLESS=1 cargo test --lib export::docs`.

use super::semconv::{Convert, SEMCONV_TWINS};
use crate::catalog::{MetricKind, CATALOG};

pub const BEGIN: &str = "<!-- generated from src/catalog.rs: begin -->";
pub const END: &str = "<!-- generated from src/catalog.rs: end -->";

/// The generated part of `docs/metrics.md`.
pub fn metrics_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "| OTLP name | kind | unit | Prometheus series | StatsD name | labels | description |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for def in CATALOG {
        let prom = def.prometheus_name();
        let (kind, series) = match def.kind {
            MetricKind::Gauge => ("gauge", format!("`{prom}`")),
            MetricKind::Counter => ("counter (OTLP monotonic Sum)", format!("`{prom}_total`")),
            MetricKind::Histogram => (
                "histogram",
                format!(
                    "`{prom}_bucket` (le {}), `_sum`, `_count`",
                    def.buckets
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        let labels = if def.labels.is_empty() {
            "—".to_string()
        } else {
            def.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} | {} |\n",
            def.name,
            kind,
            def.unit,
            series,
            def.statsd.map_or("—".to_string(), |s| format!("`{s}`")),
            labels,
            def.help.replace('|', "\\|"),
        ));
    }
    out.push_str(
        "\nOpenTelemetry semantic-convention names, emitted on OTLP in addition, for the agent's \
         own process only (the resource; the Codex processes keep their `codex.*` names):\n\n",
    );
    out.push_str("| OTLP name | instrument | unit | computed from | conversion | attributes |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for twin in SEMCONV_TWINS {
        let conversion = match twin.convert {
            Convert::Same => "same value",
            Convert::PercentOfCoreToUtilization => "percent of one core ÷ 100 ÷ available cores",
        };
        let attrs = twin
            .attribute_keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {} | `{}` | `{}` | {} | {} |\n",
            twin.name,
            twin.kind.as_str(),
            twin.unit,
            twin.source,
            conversion,
            if attrs.is_empty() {
                "—".into()
            } else {
                attrs
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_metrics_md_matches_the_catalog() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
        let doc = std::fs::read_to_string(&path).expect("docs/metrics.md");
        let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
        let end = doc.find(END).expect("end marker");
        let want = format!("\n{}", metrics_markdown());
        if doc[start..end] != want {
            if std::env::var_os("CODEX_SENTINEL_BLESS").is_some() {
                let fresh = format!("{}{}{}", &doc[..start], want, &doc[end..]);
                std::fs::write(&path, fresh).unwrap();
                return;
            }
            panic!(
                "docs/metrics.md is out of date with the catalog; run \
                 CODEX_SENTINEL_BLESS=1 cargo test --lib export::docs"
            );
        }
    }
}
