//! Prometheus exposition of the snapshot's samples, through the Prometheus org's
//! `prometheus-client` encoders (text 0.0.4 by default, OpenMetrics when asked).

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::catalog::{MetricDef, MetricKind};
use crate::monitor::snapshot::{Rendering, Sample, SampleValue, Snapshot};

pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus does when it prefers it).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// The snapshot's `/metrics` page, rendered once per snapshot however many scrapes ask.
pub fn exposition(snapshot: &Snapshot, openmetrics: bool) -> bytes::Bytes {
    let kind = if openmetrics {
        Rendering::OpenMetricsText
    } else {
        Rendering::PrometheusText
    };
    snapshot.rendered(kind, |s| render(&s.samples, openmetrics).into())
}

/// Renders the samples; families come out in catalog order, series in sample order.
pub fn render(samples: &[Sample], openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SampleCollector(samples.to_vec())));
    let mut out = String::with_capacity(4096);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("write to String");
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("write to String");
    }
    out
}

#[derive(Debug)]
struct SampleCollector(Vec<Sample>);

impl prometheus_client::collector::Collector for SampleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut defs: Vec<&'static MetricDef> = Vec::new();
        for s in &self.0 {
            // Compared by name: catalog entries are consts, so one metric may have several
            // addresses, and a family split in two would be rejected by Prometheus.
            if !defs.iter().any(|d| d.name == s.def.name) {
                defs.push(s.def);
            }
        }
        for def in defs {
            let name = def.prometheus_name();
            let metric_type = match def.kind {
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Histogram => MetricType::Histogram,
            };
            // No unit is passed: the suffix is already in the name and would be appended twice.
            let mut family = encoder.encode_descriptor(&name, def.help, None, metric_type)?;
            for sample in self.0.iter().filter(|s| s.def.name == def.name) {
                let labels: Vec<(&str, &str)> = def
                    .labels
                    .iter()
                    .copied()
                    .zip(sample.labels.iter().map(String::as_str))
                    .collect();
                let mut series = family.encode_family(&labels)?;
                SeriesValue(&sample.value, def).encode(&mut series)?;
            }
        }
        Ok(())
    }
}

struct SeriesValue<'a>(&'a SampleValue, &'a MetricDef);

impl SeriesValue<'_> {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match self.0 {
            SampleValue::Gauge(v) => encoder.encode_gauge(v),
            SampleValue::Counter(v) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(v, None)
            }
            SampleValue::Histogram { counts, sum, count } => {
                let mut buckets: Vec<(f64, u64)> = self
                    .1
                    .buckets
                    .iter()
                    .copied()
                    .zip(counts.iter().copied())
                    .collect();
                buckets.push((f64::INFINITY, counts.last().copied().unwrap_or(0)));
                encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    *sum, *count, &buckets, None,
                )
            }
        }
    }
}
