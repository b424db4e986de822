//! Probes: run the Codex CLI (argv, never a shell), timed, with a timeout and retries.
//!
//! Each attempt runs in its own process group. The npm Codex CLI is a node wrapper that starts
//! the native binary, so killing the direct child is not enough: on timeout (or shutdown) the
//! whole group is killed with SIGKILL and reaped, leaving no zombie and no orphan.
//!
//! The agent is a child subreaper, so everything a probe leaves behind becomes its child. After
//! each attempt the group is killed, then reaped until it is gone. A descendant that left with
//! `setsid` is out of reach: it is not killed and keeps running; when it exits it is reaped after
//! the next attempt of any probe (only zombies outside the agent's session are taken, so tokio's
//! own children keep their exit statuses). One that only changed its process group (`setpgid`)
//! stays in the agent's session and is neither killed nor reaped.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::application_root;
use crate::config::ExecutableIn;
pub use crate::monitor::probes::{Attempt, Ending, ProbeRun, ProbeSpec};
use crate::util::now_ms;

/// Bytes of stdout kept (the version line is at the start).
const STDOUT_LIMIT: usize = 16 * 1024;
/// Bytes of stderr kept (the end is what explains a failure).
const STDERR_TAIL: usize = 2 * 1024;
/// How long to wait for a killed group to disappear before giving up on reaping it.
const REAP_DEADLINE: Duration = Duration::from_secs(2);

/// One finished attempt, as told to a watcher of [`run_probe_reporting`].
#[derive(Debug)]
pub struct AttemptReport<'a> {
    pub probe: &'a str,
    /// 1-based.
    pub number: usize,
    /// Attempts at most (`retries + 1`).
    pub max: usize,
    pub attempt: &'a Attempt,
    /// `Some(wait)` when another attempt follows after `wait`.
    pub retry_in: Option<Duration>,
}

/// Runs the probe: one attempt, plus up to `retries` more while attempts fail. A missing
/// executable is not retried: it will not appear between two attempts.
pub async fn run_probe(spec: &ProbeSpec, shutdown: &CancellationToken) -> ProbeRun {
    run_probe_reporting(spec, shutdown, &|_| {}).await
}

/// [`run_probe`], telling `report` about each attempt as it ends (`check` shows progress).
pub async fn run_probe_reporting(
    spec: &ProbeSpec,
    shutdown: &CancellationToken,
    report: &(dyn Fn(AttemptReport<'_>) + Sync),
) -> ProbeRun {
    let mut attempts = Vec::with_capacity(1);
    let mut program = spec.program.clone();
    loop {
        let attempt = match resolve(spec) {
            Ok(resolved) => {
                program = resolved;
                run_attempt(&program, &spec.args, spec.timeout, shutdown).await
            }
            Err(error) => Attempt {
                started: now_ms(),
                duration: Duration::ZERO,
                ending: Ending::SpawnFailed {
                    error,
                    not_found: true,
                },
                stdout: String::new(),
                stderr_tail: String::new(),
                pid: 0,
            },
        };
        let done = attempt.succeeded(spec.expected_exit_code)
            || matches!(
                attempt.ending,
                Ending::Cancelled
                    | Ending::SpawnFailed {
                        not_found: true,
                        ..
                    }
            )
            || attempts.len() as u32 >= spec.retries;
        report(AttemptReport {
            probe: &spec.name,
            number: attempts.len() + 1,
            max: spec.retries as usize + 1,
            attempt: &attempt,
            retry_in: (!done).then_some(spec.retry_delay),
        });
        attempts.push(attempt);
        if done {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(spec.retry_delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    ProbeRun {
        spec_name: spec.name.clone(),
        program,
        attempts,
    }
}

/// The program to start for `spec`: as configured, or found in an application process's root
/// filesystem (again before every attempt: the application's processes come and go).
fn resolve(spec: &ProbeSpec) -> Result<String, String> {
    match spec.executable_in {
        ExecutableIn::Agent => Ok(spec.program.clone()),
        ExecutableIn::Application => {
            application_root::find(&spec.program).map(|path| path.to_string_lossy().into_owned())
        }
    }
}

/// Runs the program once in a new process group, killing the group on timeout or shutdown.
pub async fn run_attempt(
    program: &str,
    args: &[String],
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Attempt {
    let started = now_ms();
    let t0 = Instant::now();
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if is_agent_resource_error(&e) => {
            return Attempt {
                started,
                duration: t0.elapsed(),
                ending: Ending::AgentFault {
                    error: format!("spawn {program}: {e}"),
                },
                stdout: String::new(),
                stderr_tail: String::new(),
                pid: 0,
            };
        }
        Err(e) => {
            let (code, not_found) = match e.kind() {
                std::io::ErrorKind::NotFound => ("ENOENT".to_string(), true),
                std::io::ErrorKind::PermissionDenied => ("EACCES".to_string(), false),
                _ => (e.to_string(), false),
            };
            return Attempt {
                started,
                duration: t0.elapsed(),
                ending: Ending::SpawnFailed {
                    error: format!("spawn {program} {code}"),
                    not_found,
                },
                stdout: String::new(),
                stderr_tail: String::new(),
                pid: 0,
            };
        }
    };
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let output = tokio::spawn(async move {
        tokio::join!(
            read_head(stdout, STDOUT_LIMIT),
            read_tail(stderr, STDERR_TAIL)
        )
    });

    enum Outcome {
        Done(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Cancelled,
    }
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Done(status),
        _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
        _ = shutdown.cancelled() => Outcome::Cancelled,
    };
    let duration = t0.elapsed();
    let ending = match outcome {
        Outcome::Done(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(sig)) => Ending::Signaled(sig),
                (None, None) => Ending::Exited(-1),
            }
        }
        Outcome::Done(Err(e)) => Ending::SpawnFailed {
            error: format!("wait for {program}: {e}"),
            not_found: false,
        },
        Outcome::TimedOut => Ending::TimedOut,
        Outcome::Cancelled => Ending::Cancelled,
    };
    if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
        kill_group(pid);
        let _ = child.wait().await;
    } else {
        // Descendants left in the group (a wrapper that exited before its child) go too.
        kill_group(pid);
    }
    // Until the group is gone: a killed member becomes a zombie only a moment after SIGKILL,
    // and one reaped too early would stay a zombie of ours (we are their subreaper).
    reap_group(pid).await;
    reap_escaped_zombies();
    // Output readers end at EOF, which a descendant outside the group could hold off: bound it.
    let (stdout, stderr_tail) = match tokio::time::timeout(Duration::from_millis(500), output).await
    {
        Ok(Ok(pair)) => pair,
        _ => (String::new(), String::new()),
    };
    Attempt {
        started,
        duration,
        ending,
        stdout,
        stderr_tail,
        pid,
    }
}

/// Whether a failed spawn is the agent's own shortage (descriptors for the pipes, a process
/// slot, memory) rather than something about the program.
pub fn is_agent_resource_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

/// SIGKILL to every process of the group `pgid` (which is the attempt's pid).
fn kill_group(pgid: u32) {
    if pgid == 0 {
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions; a stale group yields ESRCH.
    unsafe {
        libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
    }
}

/// Reaps members of the group that are our children (with `PR_SET_CHILD_SUBREAPER`, orphaned
/// descendants are), until the group no longer exists or [`REAP_DEADLINE`] passes. The group's
/// leader is tokio's child and has been waited for already, so no exit status is taken from
/// tokio (a `waitpid(-1)` would).
async fn reap_group(pgid: u32) {
    if pgid == 0 {
        return;
    }
    let deadline = Instant::now() + REAP_DEADLINE;
    loop {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG on a process group; writes only to `status`.
            let r = unsafe { libc::waitpid(-(pgid as libc::pid_t), &mut status, libc::WNOHANG) };
            if r <= 0 {
                break;
            }
        }
        // SAFETY: signal 0 only checks for existence.
        let gone = unsafe { libc::killpg(pgid as libc::pid_t, 0) } != 0;
        if gone || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reaps zombie children that left the agent's session (`setsid`): a probe's descendant that
/// escaped its process group cannot be killed with the group and, as we are the subreaper,
/// becomes our zombie when it exits. No process the agent or tokio spawns starts a session,
/// so none of their exit statuses can be taken here.
fn reap_escaped_zombies() {
    // SAFETY: getpid and getsid(0) have no preconditions.
    let (me, my_session) = unsafe { (libc::getpid(), libc::getsid(0)) };
    for pid in own_children() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().take(4).collect();
        let (state, ppid, session) = match f.as_slice() {
            [state, ppid, _pgrp, session] => (*state, ppid.parse().ok(), session.parse().ok()),
            _ => continue,
        };
        if state == "Z" && ppid == Some(me) && session != Some(my_session) {
            let mut status = 0;
            // SAFETY: waitpid on one pid with WNOHANG; writes only to `status`.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        }
    }
}

/// The agent's children, zombies included: the kernel's list of each of its threads' children
/// (`/proc/self/task/TID/children`; an orphan handed to a subreaper becomes the child of one of
/// its threads). A few reads instead of one per process on the machine, which at a probe a
/// second was most of the probes' CPU. Every pid in `/proc` where the kernel has no such list
/// (built without CONFIG_PROC_CHILDREN); the caller checks the parent either way.
fn own_children() -> Vec<libc::pid_t> {
    let pids = |text: &str| -> Vec<libc::pid_t> {
        text.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    // SAFETY: getpid has no preconditions.
    let main_thread = unsafe { libc::getpid() };
    if !std::path::Path::new(&format!("/proc/self/task/{main_thread}/children")).exists() {
        let Ok(all) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let names: Vec<String> = all
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        return pids(&names.join(" "));
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        // A thread that ended while listing has no list any more.
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(pids(&list));
        }
    }
    children
}

async fn read_head<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>, limit: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

async fn read_tail<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>, limit: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend(&buf[..n]);
        while kept.len() > limit {
            kept.pop_front();
        }
    }
    String::from_utf8_lossy(kept.make_contiguous()).into_owned()
}

/// Makes this process the reaper of its orphaned descendants, so that a probe's grandchildren
/// killed with their group are reaped by us rather than left as zombies of an absent init.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_own_shortages_are_told_apart_from_codex_failures() {
        for code in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
            assert!(is_agent_resource_error(&std::io::Error::from_raw_os_error(
                code
            )));
        }
        for code in [libc::ENOENT, libc::EACCES, libc::ENOEXEC] {
            assert!(!is_agent_resource_error(
                &std::io::Error::from_raw_os_error(code)
            ));
        }
    }
}
