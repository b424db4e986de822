//! CPU and bytes of one export cycle, per exporter, on a realistic snapshot (the monitor's own
//! samples plus execution histograms and counters for five operation types):
//! each cycle also hands the push exporters 20 execution times per operation type.
//! OTLP = feed instruments + collect + protobuf encoding, the work the agent does before the
//! bytes go on the wire; DogStatsD = format + pack + send to a local UDP socket; Prometheus =
//! render the text page (what a scrape costs when the snapshot is fresh).
//! Bytes per cycle are printed before the timings. Run: `cargo bench --bench export_cycle`.

use std::io::Write;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use codex_sentinel::catalog;
use codex_sentinel::config::Config;
use codex_sentinel::export::otlp::{Instruments, Settings as OtlpSettings};
use codex_sentinel::export::statsd::{
    Sampled, Sender, Settings as StatsdSettings, Target, TimingKind,
};
use codex_sentinel::export::Origin;
use codex_sentinel::monitor::observed::Observed;
use codex_sentinel::monitor::snapshot::{Sample, SampleValue, Snapshot};
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

const OPS: &[&str] = &["review", "fix", "explain", "test", "refactor"];

/// The agent's real sample set after `round` cycles of traffic.
fn snapshot(round: u64) -> Arc<Snapshot> {
    let config = Arc::new(Config::default());
    let specs = codex_sentinel::probe_specs(&config);
    let (_tx, _rx, dropped) = codex_sentinel::monitor::channel();
    let base = codex_sentinel::monitor::Monitor::new(config, specs, dropped).snapshot(0);
    let mut samples: Vec<Sample> = base
        .samples
        .iter()
        .filter(|s| s.def.name != catalog::EXECUTION_TIME.name)
        .cloned()
        .collect();
    for (i, op) in OPS.iter().enumerate() {
        let n = round * (i as u64 + 1);
        samples.push(Sample {
            def: &catalog::EXECUTION_TIME,
            labels: vec![op.to_string()],
            value: SampleValue::Histogram {
                counts: vec![n, 2 * n, n, n / 2, 0, 0],
                sum: n as f64 * (0.5 + 2.0 * 3.0 + 7.0 + 0.5 * 20.0),
                count: n + 2 * n + n + n / 2,
            },
        });
        for (result, k) in [("success", 9), ("failure", 1)] {
            samples.push(Sample {
                def: &catalog::EXECUTIONS,
                labels: vec![op.to_string(), result.to_string()],
                value: SampleValue::Counter((n * k) as f64),
            });
        }
    }
    Arc::new(Snapshot::new(
        base.report.clone(),
        base.metrics.clone(),
        samples,
        true,
        2,
    ))
}

/// Executions per operation type and cycle handed to the push exporters.
const EXECUTIONS_PER_CYCLE: usize = 20;

/// The execution times observed in one cycle: [`EXECUTIONS_PER_CYCLE`] per operation type,
/// spread over 0.2 … 60 s.
fn observed(round: u64) -> Observed {
    let mut o = Observed::default();
    for (i, op) in OPS.iter().enumerate() {
        for k in 0..EXECUTIONS_PER_CYCLE {
            let x = ((round as usize * 31 + i * 7 + k * 13) % 97) as f64 / 97.0;
            o.push(
                &catalog::EXECUTION_TIME,
                &[op.to_string()],
                0.2 * 300f64.powf(x),
            );
        }
    }
    o
}

fn otlp_settings() -> OtlpSettings {
    let mut c = Config::default();
    c.export.otlp.endpoint = Some("http://127.0.0.1:4318".into());
    OtlpSettings::resolve(&c).unwrap().unwrap()
}

fn bench(c: &mut Criterion) {
    // — bytes per cycle
    let mut inst = Instruments::new(&otlp_settings());
    inst.record(&observed(1));
    let _ = inst.collect(&snapshot(1)).unwrap();
    inst.record(&observed(2));
    let rm = inst.collect(&snapshot(2)).unwrap();
    let proto = ExportMetricsServiceRequest::from(&rm).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&proto).unwrap();
    let gz = gz.finish().unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Loopback UDP is delivered during send: everything is queued when send returns.
    sink.set_nonblocking(true).unwrap();
    let settings = StatsdSettings {
        target: Target::Udp {
            host: "127.0.0.1".into(),
            port: sink.local_addr().unwrap().port(),
        },
        dogstatsd: true,
        prefix: String::new(),
        interval: Duration::from_secs(10),
        timing: TimingKind::Distribution,
        tags: vec!["env:prod".into(), "service:codex-sentinel".into()],
        enabled_origin: Origin::Key("export.statsd.enabled"),
        target_origin: Origin::Derived("host and port"),
        pack_values: true,
        max_values: 1000,
    };
    let mut values = Sampled::new(settings.max_values);
    let mut sender = Sender::connect(&settings).unwrap();
    let mut buf = [0u8; 65536];
    values.observe(&observed(1));
    sender.send(&snapshot(1), &mut values).unwrap();
    while sink.recv(&mut buf).is_ok() {}
    values.observe(&observed(2));
    sender.send(&snapshot(2), &mut values).unwrap();
    let (mut datagrams, mut bytes) = (0, 0);
    while let Ok(n) = sink.recv(&mut buf) {
        datagrams += 1;
        bytes += n;
    }
    let snap = snapshot(2);
    let text = codex_sentinel::export::prometheus::render(&snap.samples, false);
    let om = codex_sentinel::export::prometheus::render(&snap.samples, true);
    println!(
        "bytes per cycle ({} samples): OTLP protobuf {} (gzip {}), DogStatsD {} in {} datagrams, \
         Prometheus text {}, OpenMetrics {}",
        snap.samples.len(),
        proto.len(),
        gz.len(),
        bytes,
        datagrams,
        text.len(),
        om.len()
    );

    // — CPU per cycle (snapshots are built beforehand: not an exporter cost)
    let snaps: Vec<_> = (3..203).map(snapshot).collect();
    let batches: Vec<_> = (3..203).map(observed).collect();
    let mut i = 0;
    c.bench_function("otlp: feed + collect + encode", |b| {
        b.iter(|| {
            i = (i + 1) % snaps.len();
            inst.record(&batches[i]);
            let rm = inst.collect(&snaps[i]).unwrap();
            ExportMetricsServiceRequest::from(&rm).encode_to_vec()
        })
    });
    c.bench_function("dogstatsd: format + pack + send", |b| {
        b.iter(|| {
            i = (i + 1) % snaps.len();
            values.observe(&batches[i]);
            sender.send(&snaps[i], &mut values).unwrap();
            while sink.recv(&mut buf).is_ok() {}
        })
    });
    c.bench_function("prometheus: render text", |b| {
        b.iter(|| codex_sentinel::export::prometheus::render(&snap.samples, false))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
