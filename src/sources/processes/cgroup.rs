//! How many cores this process may use: its CPU affinity, capped by the tightest cgroup CPU
//! quota (v2 `cpu.max` or v1 `cpu.cfs_quota_us`) on its cgroup or any ancestor.

use std::path::Path;

/// Cores available to this process: CPUs it may run on, capped by a cgroup CPU quota.
pub fn available_cores() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let affinity = affinity_cpus().unwrap_or(cpus);
    match cgroup_quota_cores() {
        Some(q) if q > 0.0 => affinity.min(q),
        _ => affinity,
    }
}

pub(super) fn affinity_cpus() -> Option<f64> {
    // SAFETY: set is zeroed and sized as sched_getaffinity expects.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(libc::CPU_COUNT(&set) as f64)
    }
}

/// The tightest CPU quota (in cores) on this process's cgroup or its ancestors, v2 or v1.
fn cgroup_quota_cores() -> Option<f64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<f64> = None;
    let mut consider = |q: Option<f64>| {
        if let Some(q) = q {
            best = Some(best.map_or(q, |b: f64| b.min(q)));
        }
    };
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next()?, parts.next()?);
        if controllers.is_empty() {
            // cgroup v2: cpu.max = "max 100000" or "50000 100000", on every level up to the root.
            let mut dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            loop {
                consider(read_quota_v2(&dir.join("cpu.max")));
                if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for base in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
                let base = Path::new(base);
                for dir in [base.join(path.trim_start_matches('/')), base.to_path_buf()] {
                    consider(read_quota_v1(&dir));
                }
            }
        }
    }
    best
}

fn read_quota_v2(file: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut it = text.split_whitespace();
    let (quota, period) = (it.next()?, it.next()?);
    let (q, p): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
    (p > 0.0).then_some(q / p)
}

fn read_quota_v1(dir: &Path) -> Option<f64> {
    let q: f64 = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let p: f64 = std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (q > 0.0 && p > 0.0).then_some(q / p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.max"), "50000 100000\n").unwrap();
        assert_eq!(read_quota_v2(&dir.path().join("cpu.max")), Some(0.5));
        std::fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(read_quota_v2(&dir.path().join("cpu.max")), None);
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(dir.path().join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(read_quota_v1(dir.path()), Some(1.5));
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "-1\n").unwrap();
        assert_eq!(read_quota_v1(dir.path()), None);
        assert!(available_cores() > 0.0);
    }
}
