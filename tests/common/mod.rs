//! Shared test harness: start the real `codex-sentinel` binary on a free port with a given
//! environment and configuration, read its endpoints, stop it with a signal.
#![allow(dead_code)]

pub mod collector;
pub mod prometheus;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent binary cargo built for these tests, or `CODEX_SENTINEL_TEST_AGENT` (another
/// build, e.g. the previous commit's, to show that a regression test fails there).
pub fn agent_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CODEX_SENTINEL_TEST_AGENT") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_codex-sentinel"))
}

/// Project root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Codex CLI installed by `scripts/setup.d/10-codex.sh` into `.tools/codex`.
/// Panics with the set-up command when it is missing: these tests need the real thing.
pub fn codex_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CODEX_SENTINEL_TEST_CODEX") {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/codex/node_modules/.bin/codex");
    assert!(
        p.exists(),
        "real Codex CLI missing at {}: run scripts/test (or scripts/setup.d/10-codex.sh)",
        p.display()
    );
    p
}

/// Directory holding the stand-in executables of `tests/fixtures/bin`.
pub fn fixtures_bin() -> PathBuf {
    root().join("tests/fixtures/bin")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running agent process; killed on drop if still running.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Options for [`start_agent`].
#[derive(Default)]
pub struct AgentOptions<'a> {
    /// Extra environment variables.
    pub env: Vec<(&'a str, String)>,
    /// JSON written to `config/monitoring.json` inside the agent's working directory.
    pub config_json: Option<String>,
    /// Extra command-line arguments after the binary.
    pub args: Vec<&'a str>,
    /// The agent's open-file limit (`ulimit -n`), when the test needs a small one.
    pub nofile_limit: Option<u64>,
}

/// Starts the agent in a fresh working directory and waits until `/readyz` answers 200.
pub fn start_agent(opts: AgentOptions) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    if let Some(json) = &opts.config_json {
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/monitoring.json"), json).unwrap();
    }
    let mut cmd = Command::new(agent_bin());
    cmd.current_dir(dir.path())
        .args(&opts.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        // Port 0: the kernel picks a free port, which the agent logs; no other test can race
        // for it between choosing and binding.
        .env("CODEX_HEALTH_PORT", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(limit) = opts.nofile_limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("start agent");
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut agent = Agent {
        child,
        port: 0,
        dir,
        stderr_lines: lines,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    agent.port = loop {
        if let Some(port) = bound_port(&agent.stderr_lines.lock().unwrap()) {
            break port;
        }
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!(
                "agent exited ({status}) before serving; stderr:\n{}",
                agent.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "agent never said where it serves; stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    loop {
        if let Ok((200, _)) = agent.try_get("/readyz") {
            return agent;
        }
        assert!(
            Instant::now() < deadline,
            "agent not ready; stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the agent's "serving health endpoints" log line (text or JSON format).
pub fn bound_port(lines: &[String]) -> Option<u16> {
    let re = regex::Regex::new(r"bound\W*(?:\d{1,3}\.){3}\d{1,3}:(\d+)").unwrap();
    lines
        .iter()
        .filter(|l| l.contains("serving health endpoints"))
        .find_map(|l| re.captures(l)?[1].parse().ok())
}

impl Agent {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET returning (status, body); errors if the connection fails.
    pub fn try_get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(&self.url(path))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = self.get(path);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (code, json)
    }

    /// Polls `path` until `pred` holds on its JSON, or panics after `timeout`.
    pub fn wait_json(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, json) = self.get_json(path);
            if pred(&json) {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met on {path} within {timeout:?}; last: {json}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a signal and waits for exit; returns (exit code, time taken).
    pub fn signal_and_wait(&mut self, signal: i32) -> (Option<i32>, Duration) {
        let t0 = Instant::now();
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), t0.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over std (no runtime needed in tests).
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    http_request("GET", url, None, &[])
}

/// A minimal HTTP/1.1 request over std; returns (status, body).
pub fn http_request(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("http only")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream =
        std::net::TcpStream::connect(hostport).map_err(|e| format!("connect {hostport}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every pid whose process group is `pgid` (from /proc), zombies included.
pub fn processes_in_group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised comm: state ppid pgrp ...
        if let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a) {
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Epoch milliseconds, as the agent reports them.
pub fn now_ms_for_tests() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (pid, command line contains `needle`) for every process on the machine.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Appends successful executions (durations in ms) to today's operations log, as the
/// application writes it (`logs/codex/codex-operations-YYYY-MM-DD.jsonl`, UTC date).
pub fn write_operations_log(workdir: &std::path::Path, operation: &str, durations_ms: &[u64]) {
    append_to_todays_log(workdir, |i, at_ms| {
        let ms = durations_ms.get(i)?;
        Some(format!(
            "{{\"timestamp\":{at_ms},\"operationType\":\"{operation}\",\"timing\":{{\"duration\":{ms}}},\"result\":{{\"success\":true}}}}\n"
        ))
    });
}

/// Appends executions the application queued and retried to today's operations log: `waits_ms`
/// each waited that long (`timing.queueWait`), and the first `retried` were retried once
/// (`retryCount: 1`). All succeeded in 1 s.
pub fn write_queued_operations(workdir: &std::path::Path, waits_ms: &[u64], retried: usize) {
    append_to_todays_log(workdir, |i, at_ms| {
        let wait = waits_ms.get(i)?;
        Some(format!(
            "{{\"timestamp\":{at_ms},\"operationType\":\"review\",\"timing\":{{\"duration\":1000,\"queueWait\":{wait}}},\"result\":{{\"success\":true}},\"retryCount\":{}}}\n",
            u8::from(i < retried)
        ))
    });
}

/// Appends the lines `line(i, timestamp_ms)` gives (until it gives `None`) to today's
/// operations log, timestamped from one second ago, a millisecond apart.
fn append_to_todays_log(workdir: &std::path::Path, line: impl Fn(usize, u64) -> Option<String>) {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (y, m, d) = codex_sentinel::util::time::civil_from_days((now.as_secs() / 86_400) as i64);
    let dir = workdir.join("logs/codex");
    std::fs::create_dir_all(&dir).unwrap();
    let start_ms = now.as_millis() as u64 - 1000;
    let lines: String = (0..).map_while(|i| line(i, start_ms + i as u64)).collect();
    let path = dir.join(format!("codex-operations-{y:04}-{m:02}-{d:02}.jsonl"));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, lines.as_bytes()).unwrap();
}

/// Bytes `du` (GNU coreutils) counts for `dir`: allocated blocks, the directory included.
pub fn du_bytes(dir: &std::path::Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .expect("du");
    assert!(
        out.status.success(),
        "du: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du prints bytes first")
}
