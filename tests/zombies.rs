//! The agent is a child subreaper: whatever a probe leaves behind becomes its child. A probe
//! that leaves a child running (`(trap "" TERM; sleep 300) &`) and one that escapes with
//! `setsid` and exits later must not leave one zombie per run.

mod common;

use std::time::{Duration, Instant};

use common::{fixtures_bin, start_agent, AgentOptions};

/// (state, ppid) of every process, from /proc.
fn children_of(pid: u32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": the comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((child, state));
        }
    }
    out
}

#[test]
fn fifty_probe_runs_that_leave_children_behind_leave_no_zombie() {
    let agent = start_agent(AgentOptions {
        env: vec![
            (
                "CODEX_EXECUTABLE",
                fixtures_bin()
                    .join("codex-leaves-child")
                    .display()
                    .to_string(),
            ),
            ("CODEX_HEALTH_CHECK_INTERVAL", "20".into()),
        ],
        ..Default::default()
    });
    let pid = agent.child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = agent.get("/metrics");
        let done = metrics
            .lines()
            .filter(|l| {
                l.starts_with("codex_probe_runs_total{") && l.contains("codex-availability")
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>();
        if done >= 50.0 {
            break;
        }
        assert!(Instant::now() < deadline, "50 runs not reached: {done}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The escapees exit 0.2 s after their run; give the last ones time to exit and be reaped.
    let settle = Instant::now() + Duration::from_secs(5);
    let zombies = loop {
        let zombies: Vec<i32> = children_of(pid)
            .into_iter()
            .filter(|(_, s)| *s == 'Z')
            .map(|(p, _)| p)
            .collect();
        if zombies.len() <= 1 || Instant::now() > settle {
            break zombies;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // At most the run in progress may hold one for a moment.
    assert!(zombies.len() <= 1, "zombies of the agent: {zombies:?}");
    let sleepers = common::pids_with_cmdline("sleep 300")
        .into_iter()
        .filter(|p| children_of(pid).iter().any(|(c, _)| c == p))
        .count();
    assert_eq!(sleepers, 0, "left-behind children must be killed");
}
