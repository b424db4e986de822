//! Cost of one process sample: with 10, 100 and 1,000 matched processes, and with 10 matched
//! among 1,000 unmatched ones; plus the cost of the periodic full `/proc` listing (discovery)
//! that finds new processes, which the per-sample figures exclude.
//!
//! `cargo bench --bench processes` (spawns up to ~2,000 `sleep` processes; they are killed at
//! the end). Results and the machine they came from: docs/PERFORMANCE.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use codex_sentinel::config::ProcessesConfig;
use codex_sentinel::sources::processes::Sampler;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const MATCHED: &str = "cs-bench-match";
const OTHER: &str = "cs-bench-other";

struct Pool {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Pool {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in [MATCHED, OTHER] {
            std::os::unix::fs::symlink("/bin/sleep", dir.path().join(name)).unwrap();
        }
        Pool {
            dir,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, name: &str, n: usize) {
        let path: PathBuf = self.dir.path().join(name);
        for _ in 0..n {
            self.children.push(spawn_sleep(&path));
        }
        // Let them exec before the next listing.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn kill_all(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn spawn_sleep(path: &Path) -> Child {
    Command::new(path)
        .arg("3600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

fn sampler(discovery_ms: u64) -> Sampler {
    let cfg = ProcessesConfig {
        names: vec![MATCHED.into()],
        exclude_agent_children: false,
        discovery_interval: discovery_ms,
        ..ProcessesConfig::default()
    };
    Sampler::new(&cfg).unwrap()
}

/// A sampler that has listed `/proc` once and will not list it again during the benchmark.
fn warmed(expect: usize) -> Sampler {
    let mut s = sampler(3_600_000);
    let first = s.sample();
    assert_eq!(first.processes as usize, expect, "matched processes");
    s
}

/// `cargo test --all-targets` runs this file once in test mode (no `--bench`): keep that
/// quick and light with 10× fewer processes.
fn scale() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        10
    }
}

fn bench(c: &mut Criterion) {
    let div = scale();
    let mut pool = Pool::new();
    let mut g = c.benchmark_group("sample");
    g.sample_size(50);
    let mut have = 0;
    for n in [10usize, 100, 1000].map(|n| (n / div).max(1)) {
        pool.spawn(MATCHED, n - have);
        have = n;
        let mut s = warmed(n);
        g.bench_with_input(BenchmarkId::new("matched", n), &n, |b, _| {
            b.iter(|| s.sample())
        });
    }
    pool.kill_all();
    pool.spawn(MATCHED, 10);
    pool.spawn(OTHER, 1000 / div);
    let mut s = warmed(10);
    g.bench_function("matched_10_among_1000_unmatched", |b| b.iter(|| s.sample()));
    g.finish();

    // The periodic listing, forced on every iteration: amortised over discoveryInterval.
    let mut g = c.benchmark_group("discovery");
    g.sample_size(20);
    let mut s = sampler(3_600_000);
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    g.bench_function(BenchmarkId::new("full_listing", procs), |b| {
        b.iter(|| {
            s.force_discovery();
            s.sample()
        })
    });
    pool.kill_all();
    let procs = std::fs::read_dir("/proc").unwrap().count();
    let mut s = sampler(3_600_000);
    g.bench_function(BenchmarkId::new("full_listing_idle_machine", procs), |b| {
        b.iter(|| {
            s.force_discovery();
            s.sample()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
