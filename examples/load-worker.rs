//! A worker with a known load, for the process sampler's tests and `scripts/footprint`:
//! holds touched memory and/or burns a share of one core, then exits after an optional lifetime.
//!
//! ```text
//! load-worker [--rss-mib N] [--cpu PERCENT] [--lifetime-ms N]
//! ```
//!
//! The CPU share is regulated against the process's own CPU clock (CLOCK_PROCESS_CPUTIME_ID):
//! it spins while below `PERCENT` of the wall time since start and sleeps 1 ms otherwise, so the
//! average over any second is close to the target whenever a core is free.

use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let mut rss_mib = 0usize;
    let mut cpu = 0.0f64;
    let mut lifetime: Option<Duration> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .expect("missing value")
                .parse::<f64>()
                .expect("number")
        };
        match a.as_str() {
            "--rss-mib" => rss_mib = value() as usize,
            "--cpu" => cpu = value() / 100.0,
            "--lifetime-ms" => lifetime = Some(Duration::from_millis(value() as u64)),
            other => panic!("unknown argument {other}"),
        }
    }
    // Touch every page so it is resident, not just reserved.
    let mut memory = vec![0u8; rss_mib << 20];
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&memory);
    let start = Instant::now();
    let cpu0 = cpu_time();
    loop {
        let wall = start.elapsed();
        if lifetime.is_some_and(|l| wall >= l) {
            break;
        }
        if cpu > 0.0 && (cpu_time() - cpu0).as_secs_f64() < cpu * wall.as_secs_f64() {
            // Spin a short slice.
            let until = Instant::now() + Duration::from_micros(500);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        } else {
            let nap = if cpu > 0.0 { 1 } else { 50 };
            std::thread::sleep(Duration::from_millis(nap));
        }
    }
    std::hint::black_box(&memory);
}
