//! Reading `/proc`: one `stat` read per tracked process (state, CPU time, start time, RSS),
//! a process that exec'd since it was listed, and the agent's own footprint.

use std::ffi::OsString;
use std::time::Instant;

use sysinfo::Pid;

use super::matcher::Matcher;
use crate::monitor::resources::AgentFootprint;

/// Clock ticks per second and page size, read once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kernel {
    pub(super) ticks_per_sec: u64,
    pub(super) page_size: u64,
}

impl Kernel {
    pub(super) fn get() -> Self {
        // SAFETY: sysconf only reads configuration values.
        let (t, p) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Kernel {
            ticks_per_sec: if t > 0 { t as u64 } else { 100 },
            page_size: if p > 0 { p as u64 } else { 4096 },
        }
    }
}

/// ms since boot on the clock `/proc/PID/stat` start times are measured against.
pub(super) fn boot_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The fields after `comm` in `/proc/PID/stat` (field 3, the state, first).
pub(super) fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let (_, rest) = text.rsplit_once(") ")?;
    Some(rest.split_ascii_whitespace().collect())
}

/// The current name and argv of a process whose name is no longer `known` (it exec'd);
/// `None` when unchanged or gone. argv is read only when a rule needs it.
pub(super) fn reread_if_execed(
    pid: Pid,
    known: &str,
    matcher: &Matcher,
) -> Option<(String, Vec<OsString>)> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    if comm == known {
        return None;
    }
    let cmd = if matcher.needs_cmd() {
        use std::os::unix::ffi::OsStrExt;
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Some((comm.to_string(), cmd))
}

/// What one read of `/proc/PID/stat` tells about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) state: u8,
    /// utime + stime, clock ticks.
    pub(super) cpu_ticks: u64,
    /// Clock ticks since boot: with the PID, the identity of the process.
    pub(super) start_ticks: u64,
    pub(super) rss_pages: u64,
}

/// Parses `/proc/PID/stat` (fields after the parenthesised comm, which may hold spaces).
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?.bytes().next()?;
    // f is now at field 4 (ppid); utime is field 14, stime 15, starttime 22, rss 24.
    let mut f = f.skip(10);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    let mut f = f.skip(6);
    let start_ticks = f.next()?.parse().ok()?;
    let _vsize = f.next()?;
    let rss_pages = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    Some(Stat {
        state,
        cpu_ticks: utime + stime,
        start_ticks,
        rss_pages,
    })
}

pub(super) fn read_stat(pid: Pid, buf: &mut String) -> Option<Stat> {
    use std::io::Read;
    buf.clear();
    let mut path = [0u8; 32];
    let path = {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut path[..]);
        write!(cur, "/proc/{pid}/stat").ok()?;
        let n = cur.position() as usize;
        std::str::from_utf8(&path[..n]).ok()?
    };
    std::fs::File::open(path).ok()?.read_to_string(buf).ok()?;
    parse_stat(buf)
}

/// The agent's own cost, read from `/proc/self`.
#[derive(Debug)]
pub(super) struct SelfMeter {
    pub(super) kernel: Kernel,
    pub(super) last: Option<(u64, Instant)>,
}

impl SelfMeter {
    pub(super) fn read(&mut self, now: Instant) -> Result<AgentFootprint, String> {
        let text = std::fs::read_to_string("/proc/self/stat")
            .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
        let f = stat_fields(&text).ok_or("unparsable /proc/self/stat")?;
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Fields 14, 15 (utime, stime), 20 (threads), 24 (rss pages); f[0] is field 3.
        let ticks = num(11) + num(12);
        let cpu_ms = ticks * 1000 / self.kernel.ticks_per_sec;
        let cpu_percent = match self.last {
            Some((prev, at)) => {
                let dt = now.duration_since(at).as_secs_f64() * 1000.0;
                if dt > 0.0 {
                    cpu_ms.saturating_sub(prev) as f64 / dt * 100.0
                } else {
                    0.0
                }
            }
            None => {
                // No previous reading: the average since the agent started, like a new process.
                let start_ms = num(19) * 1000 / self.kernel.ticks_per_sec;
                cpu_ms as f64 / boot_ms().saturating_sub(start_ms).max(10) as f64 * 100.0
            }
        };
        self.last = Some((cpu_ms, now));
        // The directory handle read_dir holds is itself an open descriptor: not counted.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count().saturating_sub(1) as u64)
            .unwrap_or(0);
        Ok(AgentFootprint {
            rss_bytes: num(21) * self.kernel.page_size,
            cpu_percent,
            cpu_user_seconds: num(11) as f64 / self.kernel.ticks_per_sec as f64,
            cpu_system_seconds: num(12) as f64 / self.kernel.ticks_per_sec as f64,
            threads: num(17),
            open_fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = "1234 (my (proc) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 3 0 \
                    98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                cpu_ticks: 200,
                start_ticks: 98765,
                rss_pages: 2048
            })
        );
        assert_eq!(parse_stat("1234 (x) Z"), None);
        let own = read_stat(Pid::from_u32(std::process::id()), &mut String::new()).unwrap();
        assert!(matches!(own.state, b'R' | b'S'));
        assert!(own.rss_pages > 0 && own.start_ticks > 0);
    }

    #[test]
    fn own_footprint_is_read() {
        let mut m = SelfMeter {
            kernel: Kernel::get(),
            last: None,
        };
        let a = m.read(Instant::now()).unwrap();
        assert!(a.rss_bytes > 1 << 20, "{a:?}");
        assert!(a.threads >= 1);
        assert!(a.open_fds >= 3);
    }
}
