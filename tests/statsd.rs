//! StatsD / DogStatsD export: byte-exact datagrams read from a real UDP socket and a real Unix
//! datagram socket, packing limits, and the real Etsy StatsD daemon (npm `statsd`, installed by
//! scripts/setup.d/40-export-peers.sh) receiving the running agent's metrics.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_sentinel::catalog;
use codex_sentinel::config::Config;
use codex_sentinel::export::statsd::{
    Sampled, Sender, Settings, Target, TimingKind, UDP_PAYLOAD, UDS_PAYLOAD,
};
use codex_sentinel::export::Origin;
use codex_sentinel::monitor::observed::Observed;
use codex_sentinel::monitor::snapshot::{Sample, SampleValue, Snapshot, Status};
use common::{codex_bin, free_port, start_agent, AgentOptions};

const TAGS: &[&str] = &[
    "env:test",
    "service:codex-sentinel",
    "version:1.2.3",
    "pod_name:web-0",
    "dd.internal.entity_id:uid-42",
];

fn settings(target: Target, dogstatsd: bool) -> Settings {
    Settings {
        target,
        dogstatsd,
        prefix: String::new(),
        interval: Duration::from_secs(10),
        timing: TimingKind::Distribution,
        tags: TAGS.iter().map(|t| t.to_string()).collect(),
        enabled_origin: Origin::Key("export.statsd.enabled"),
        target_origin: Origin::Key("export.statsd.url"),
        pack_values: true,
        max_values: 1000,
    }
}

/// A snapshot with the monitor's real report (availability pending) and the given samples.
fn snapshot(samples: Vec<Sample>, probed: Option<Status>) -> Snapshot {
    let config = Config::default();
    let specs = codex_sentinel::probe_specs(&config);
    let (_tx, _rx, dropped) = codex_sentinel::monitor::channel();
    let base = codex_sentinel::monitor::Monitor::new(Arc::new(config), specs, dropped).snapshot(0);
    let mut report = base.report.clone();
    let mut metrics = base.metrics.clone();
    if let Some(status) = probed {
        report.checks[0].status = status;
        report.checks[0].message = "Codex CLI answered: codex-cli 0.171.0".into();
        metrics.probes[0].runs = 1;
    }
    Snapshot::new(report, metrics, samples, true, 0)
}

fn gauge(def: &'static catalog::MetricDef, v: f64) -> Sample {
    Sample {
        def,
        labels: vec![],
        value: SampleValue::Gauge(v),
    }
}

fn executions(op: &str, result: &str, n: f64) -> Sample {
    Sample {
        def: &catalog::EXECUTIONS,
        labels: vec![op.into(), result.into()],
        value: SampleValue::Counter(n),
    }
}

/// Execution times of `review` executions, observed since the last flush.
fn exec_times(values: &[f64]) -> Sampled {
    let mut observed = Observed::default();
    for &v in values {
        observed.push(&catalog::EXECUTION_TIME, &["review".into()], v);
    }
    let mut sampled = Sampled::new(1000);
    sampled.observe(&observed);
    sampled
}

const T: &str =
    "#env:test,service:codex-sentinel,version:1.2.3,pod_name:web-0,dd.internal.entity_id:uid-42";

/// The two batches every transport must deliver byte for byte.
fn expected_batches() -> (Vec<(Snapshot, Sampled)>, Vec<String>) {
    let first = snapshot(
        vec![
            gauge(&catalog::AVAILABILITY, 1.0),
            gauge(&catalog::SUCCESS_RATE, 0.96),
            gauge(&catalog::MEMORY_USAGE, 257048576.0),
            gauge(&catalog::ACTIVE_PROCESSES, 3.0),
            executions("review", "success", 2.0),
            // Not in StatsD (no StatsD name): must not appear.
            gauge(&catalog::AGENT_UPTIME, 12.0),
        ],
        None,
    );
    let second = snapshot(
        vec![
            gauge(&catalog::AVAILABILITY, 1.0),
            executions("review", "success", 5.0),
        ],
        Some(Status::Healthy),
    );
    let batches = vec![
        [
            format!("codex.availability:1|g|{T}"),
            format!("codex.success_rate:0.96|g|{T}"),
            format!("codex.memory_usage:257048576|g|{T}"),
            format!("codex.active_processes:3|g|{T}"),
            format!("codex.executions:2|c|{T},operation_type:review,result:success"),
            // Each execution's own duration, packed on one line.
            format!("codex.execution_time:3:4.25|d|{T},operation_type:review"),
            format!("_sc|codex.can_execute|3|{T}|m:Waiting for the first availability probe"),
            String::new(),
        ]
        .join("\n"),
        [
            format!("codex.availability:1|g|{T}"),
            // Only the increase since the last flush.
            format!("codex.executions:3|c|{T},operation_type:review,result:success"),
            // Only the executions since the last flush.
            format!("codex.execution_time:20:25.5|d|{T},operation_type:review"),
            format!("_sc|codex.can_execute|0|{T}|m:Codex CLI answered: codex-cli 0.171.0"),
            String::new(),
        ]
        .join("\n"),
    ];
    (
        vec![
            (first, exec_times(&[3.0, 4.25])),
            (second, exec_times(&[20.0, 25.5])),
        ],
        batches,
    )
}

#[test]
fn dogstatsd_datagrams_are_byte_exact_over_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let mut sender = Sender::connect(&settings(
        Target::Udp {
            host: "127.0.0.1".into(),
            port,
        },
        true,
    ))
    .unwrap();
    let (mut snaps, expected) = expected_batches();
    let mut buf = [0u8; 65536];
    for ((snap, values), want) in snaps.iter_mut().zip(&expected) {
        sender.send(snap, values).unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf[..n]), *want);
    }
}

#[test]
fn dogstatsd_datagrams_are_byte_exact_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let mut sender = Sender::connect(&settings(Target::Unix(path.clone()), true)).unwrap();
    let (mut snaps, expected) = expected_batches();
    // The socket does not exist yet: the send fails (counted by the exporter), nothing blocks.
    assert!(sender.send(&snaps[0].0, &mut Sampled::new(1000)).is_err());
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sender = Sender::connect(&settings(Target::Unix(path.clone()), true)).unwrap();
    let mut buf = [0u8; 65536];
    for ((snap, values), want) in snaps.iter_mut().zip(&expected) {
        sender.send(snap, values).unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf[..n]), *want);
    }
}

/// 200 counter series: lines are packed into datagrams of at most 1432 (UDP) or 8192 (UDS)
/// bytes, never split, nothing lost, order kept.
#[test]
fn datagrams_are_packed_to_the_transport_limit() {
    let samples: Vec<Sample> = (0..200)
        .map(|i| executions(&format!("operation-{i:03}"), "success", 1.0))
        .collect();
    let want: Vec<String> = (0..200)
        .map(|i| format!("codex.executions:1|c|{T},operation_type:operation-{i:03},result:success"))
        .chain([format!(
            "_sc|codex.can_execute|3|{T}|m:Waiting for the first availability probe"
        )])
        .collect();
    let snap = snapshot(samples, None);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = udp.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let uds = UnixDatagram::bind(&path).unwrap();
    uds.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();

    type Recv<'a> = Box<dyn Fn(&mut [u8]) -> std::io::Result<usize> + 'a>;
    let cases: Vec<(Target, usize, Recv)> = vec![
        (
            Target::Udp {
                host: "127.0.0.1".into(),
                port,
            },
            UDP_PAYLOAD,
            Box::new(|b: &mut [u8]| udp.recv(b)),
        ),
        (
            Target::Unix(path.clone()),
            UDS_PAYLOAD,
            Box::new(|b: &mut [u8]| uds.recv(b)),
        ),
    ];
    for (target, limit, recv) in cases {
        let mut sender = Sender::connect(&settings(target.clone(), true)).unwrap();
        sender.send(&snap, &mut Sampled::new(1000)).unwrap();
        let mut lines = Vec::new();
        let mut sizes = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = recv(&mut buf) {
            sizes.push(n);
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            // Every line ends with a newline, the last one too.
            let body = datagram.strip_suffix('\n').expect("ends with a newline");
            lines.extend(body.split('\n').map(str::to_string));
        }
        assert!(sizes.iter().all(|&n| n <= limit), "{target:?}: {sizes:?}");
        let total: usize = want.iter().map(|l| l.len() + 1).sum();
        assert!(
            sizes.len() <= total / (limit - 120) + 1,
            "{target:?}: poorly packed {sizes:?}"
        );
        assert_eq!(lines, want, "{target:?}");
    }
}

#[test]
fn plain_statsd_has_no_tags_and_no_service_check() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let mut sender = Sender::connect(&settings(
        Target::Udp {
            host: "127.0.0.1".into(),
            port,
        },
        false,
    ))
    .unwrap();
    let (mut snaps, _) = expected_batches();
    let (snap, values) = &mut snaps[0];
    sender.send(snap, values).unwrap();
    let mut buf = [0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        [
            "codex.availability:1|g",
            "codex.success_rate:0.96|g",
            "codex.memory_usage:257048576|g",
            "codex.active_processes:3|g",
            "codex.executions.review.success:2|c",
            "codex.execution_time.review:3000|ms",
            "codex.execution_time.review:4250|ms",
            "",
        ]
        .join("\n")
    );
}

// — the real Etsy StatsD daemon

struct EtsyStatsd {
    child: Child,
    mgmt_port: u16,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl EtsyStatsd {
    fn start() -> EtsyStatsd {
        let stats_js = common::root().join(".tools/statsd/node_modules/statsd/stats.js");
        assert!(
            stats_js.exists(),
            "Etsy StatsD missing at {}: run scripts/test (or scripts/setup.d/40-export-peers.sh)",
            stats_js.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let mgmt_port = free_port();
        let config: PathBuf = dir.path().join("config.js");
        std::fs::write(
            &config,
            format!(
                "{{ port: {port}, mgmt_port: {mgmt_port}, address: \"127.0.0.1\", mgmt_address: \"127.0.0.1\", \
                 backends: [\"./backends/console\"], flushInterval: 60000, deleteIdleStats: false }}"
            ),
        )
        .unwrap();
        let child = Command::new("node")
            .arg(&stats_js)
            .arg(&config)
            .current_dir(stats_js.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node statsd");
        let s = EtsyStatsd {
            child,
            mgmt_port,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.admin("health").is_err() {
            assert!(Instant::now() < deadline, "statsd admin interface not up");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// One admin command (`gauges`, `counters`, `timers`, `stats`, `health`), answer up to END.
    fn admin(&self, command: &str) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.mgmt_port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("{command}\n").as_bytes())?;
        let mut out = String::new();
        let mut reader = BufReader::new(s.try_clone()?);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            if line.trim() == "END" {
                break;
            }
            out.push_str(&line);
            if command == "health" {
                break;
            }
        }
        let _ = s.write_all(b"quit\n");
        let _ = s.read(&mut [0u8; 1]);
        Ok(out)
    }
}

impl Drop for EtsyStatsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `'name': value` in the admin interface's dump of gauges or counters.
fn admin_value(dump: &str, name: &str) -> Option<f64> {
    let needle = format!("'{name}': ");
    let start = dump.find(&needle)? + needle.len();
    let rest = &dump[start..];
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[test]
fn etsy_statsd_receives_the_agents_metrics() {
    let statsd = EtsyStatsd::start();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", statsd.port.to_string()),
            ("CODEX_STATSD_TAGS", "false".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true".into()),
        ],
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let gauges = loop {
        let gauges = statsd.admin("gauges").unwrap();
        if admin_value(&gauges, "codex.availability") == Some(1.0) {
            break gauges;
        }
        assert!(
            Instant::now() < deadline,
            "statsd never saw codex.availability=1; gauges: {gauges}\nagent:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The same numbers as the agent's own endpoint.
    let (_, status) = agent.get_json("/health/codex/status");
    assert_eq!(
        admin_value(&gauges, "codex.success_rate"),
        Some(status["successRate"].as_f64().unwrap() / 100.0)
    );
    assert_eq!(
        admin_value(&gauges, "codex.active_processes"),
        Some(status["activeProcesses"].as_f64().unwrap())
    );
    assert!(
        admin_value(&gauges, "codex.memory_usage").is_some(),
        "{gauges}"
    );
    // Executions from the operations log: timers in ms, counts by result.
    common::write_operations_log(agent.path(), "review", &[2500, 2500, 2500]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let timers = statsd.admin("timers").unwrap();
        let counters = statsd.admin("counters").unwrap();
        if timers.contains("'codex.execution_time.review': [ 2500, 2500, 2500 ]")
            && admin_value(&counters, "codex.executions.review.success") == Some(3.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "executions not seen by statsd; timers: {timers}\ncounters: {counters}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything the agent sent parsed: no bad lines.
    let counters = statsd.admin("counters").unwrap();
    assert_eq!(
        admin_value(&counters, "statsd.bad_lines_seen"),
        Some(0.0),
        "{counters}"
    );
    let stats = statsd.admin("stats").unwrap();
    assert!(stats.contains("last_msg_seen"), "{stats}");
}

/// DogStatsD mode against the same daemon: Etsy StatsD parses DogStatsD tags into
/// `name;tag=value` keys, so the agent's tags arrive with the values.
#[test]
fn etsy_statsd_parses_the_agents_dogstatsd_tags() {
    let statsd = EtsyStatsd::start();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            (
                "DD_DOGSTATSD_URL",
                format!("udp://127.0.0.1:{}", statsd.port),
            ),
            ("DD_ENV", "ci".into()),
            ("DD_SERVICE", "sentinel".into()),
            ("K8S_POD_NAME", "web-1".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
        ],
        ..Default::default()
    });
    let key = "codex.availability;env=ci;service=sentinel;pod_name=web-1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gauges = statsd.admin("gauges").unwrap();
        if admin_value(&gauges, key) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "statsd never saw {key}=1; gauges: {gauges}\nagent:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The secondary metrics over DogStatsD into the real daemon, by value: the application's
/// queue wait and retry rate from the operations log, the log volumes' bytes (against GNU `du`)
/// and size limit tagged by directory (Etsy StatsD keeps tags as `name;tag=value`).
#[test]
fn etsy_statsd_receives_the_secondary_metrics() {
    let statsd = EtsyStatsd::start();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            (
                "DD_DOGSTATSD_URL",
                format!("udp://127.0.0.1:{}", statsd.port),
            ),
            ("CODEX_STATSD_INTERVAL", "200".into()),
            ("CODEX_OPERATIONS_LOG_BACKFILL", "true".into()),
            ("CODEX_OPERATIONS_LOG_SIZE_LIMIT", "64Mi".into()),
            ("CODEX_DISK_USAGE_INTERVAL", "100".into()),
            ("CODEX_DISK_USAGE_GROWTH_WINDOW", "400".into()),
        ],
        ..Default::default()
    });
    // Eight executions that each waited 1.5 s in the application's queue; two were retried.
    common::write_queued_operations(agent.path(), &[1500; 8], 2);
    let oplog = agent.path().join("logs/codex");
    let key = |name: &str, directory: Option<&str>| match directory {
        Some(d) => format!("{name};directory={d}"),
        None => name.to_string(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let gauges = loop {
        let gauges = statsd.admin("gauges").unwrap();
        let used = common::du_bytes(&oplog) as f64;
        if admin_value(&gauges, &key("codex.operations.queue_wait", None)) == Some(1.5)
            && admin_value(
                &gauges,
                &key("codex.logs.disk_usage", Some("operations_log")),
            ) == Some(used)
            && admin_value(
                &gauges,
                &key("codex.logs.growth_rate", Some("operations_log")),
            ) == Some(0.0)
        {
            break gauges;
        }
        assert!(
            Instant::now() < deadline,
            "statsd never saw the queue wait and the directory at rest; gauges: {gauges}\nagent:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        admin_value(&gauges, &key("codex.operations.retry_rate", None)),
        Some(0.25),
        "{gauges}"
    );
    assert!(
        admin_value(&gauges, &key("codex.operations.queue_size", None)).is_some(),
        "{gauges}"
    );
    assert_eq!(
        admin_value(
            &gauges,
            &key("codex.logs.size_limit", Some("operations_log"))
        ),
        Some(64.0 * 1024.0 * 1024.0)
    );
    assert!(
        admin_value(&gauges, &key("codex.logs.disk_usage", Some("audit_log"))).is_some(),
        "{gauges}"
    );
}

/// Unified service tagging from the agent's own environment: with `DD_ENV`, `DD_SERVICE` and
/// `DD_VERSION` set, every line the running agent sends — gauges, counters, distribution values
/// and the service check — starts its tags with `env:…,service:…,version:…`, as Datadog
/// requires for unified service tagging (read from a real UDP socket).
#[test]
fn every_datagram_line_carries_the_unified_service_tags() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            (
                "DD_DOGSTATSD_URL",
                format!("udp://127.0.0.1:{}", server.local_addr().unwrap().port()),
            ),
            ("DD_ENV", "prod".into()),
            ("DD_SERVICE", "reviews-api".into()),
            ("DD_VERSION", "2.4.1".into()),
            ("CODEX_STATSD_INTERVAL", "200".into()),
        ],
        ..Default::default()
    });
    common::write_operations_log(agent.path(), "review", &[800, 2500]);
    let mut lines = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("codex.execution_time:"))
        || !lines.iter().any(|l| l.starts_with("_sc|"))
    {
        assert!(Instant::now() < deadline, "lines so far: {lines:#?}");
        let n = server.recv(&mut buf).unwrap();
        lines.extend(String::from_utf8_lossy(&buf[..n]).lines().map(String::from));
    }
    for line in &lines {
        assert!(
            line.contains("|#env:prod,service:reviews-api,version:2.4.1"),
            "{line}"
        );
    }
    drop(agent);
}
