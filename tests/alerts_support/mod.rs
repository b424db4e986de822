//! Test peers for alerting that the real services cannot play on demand: an HTTP receiver
//! that records every request and answers as scripted (200, 500, 429 + Retry-After, stall),
//! plus helpers to run the real SMTP server and the real Alertmanager.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The one minimal HTTP client of the tests; every test crate using this module declares `common`.
use crate::common::http_get;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    /// Reads the request, then answers nothing for this long, then closes.
    Stall(Duration),
    /// This status with this body (an error answer that explains itself).
    Body(u16, &'static str),
    /// This redirect status with `Location:` set by [`Receiver::set_location`].
    Redirect(u16),
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
    pub answer: Answer,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn accepted(&self) -> bool {
        matches!(
            self.answer,
            Answer::Status(200..=299) | Answer::Body(200..=299, _)
        )
    }
}

/// An HTTP/1.1 receiver on loopback.
pub struct Receiver {
    pub port: u16,
    pub ip: std::net::IpAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
    location: Arc<Mutex<String>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    pub fn start_on(listener: TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let default = Arc::new(Mutex::new(Answer::Status(200)));
        let location = Arc::new(Mutex::new(String::new()));
        let (r, s, d, l) = (
            requests.clone(),
            script.clone(),
            default.clone(),
            location.clone(),
        );
        let ip = listener.local_addr().unwrap().ip();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s, d, l) = (r.clone(), s.clone(), d.clone(), l.clone());
                std::thread::spawn(move || serve(stream, r, s, d, l));
            }
        });
        Receiver {
            port,
            ip,
            requests,
            script,
            default,
            location,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.ip, self.port, path)
    }

    /// Where [`Answer::Redirect`] points.
    pub fn set_location(&self, url: &str) {
        *self.location.lock().unwrap() = url.to_string();
    }

    /// Answers for the next requests, in order; then the default.
    pub fn script(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub fn set_default(&self, a: Answer) {
        *self.default.lock().unwrap() = a;
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.accepted()).collect()
    }

    /// Waits until `pred` holds on the recorded requests.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "receiver: {what} not seen within {timeout:?}; got {} request(s): {:#?}",
                all.len(),
                all.iter()
                    .map(|r| (&r.path, r.answer, &r.body))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The deliveries still waiting in `<stateDir>/alerts/state.json` (the engine's outbox).
pub fn outbox(state_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let path = state_dir.join("alerts/state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let state: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()));
    state["outbox"].as_array().cloned().unwrap_or_default()
}

/// Rule evaluations the agent's engine has run since it started.
pub fn evaluations(agent: &crate::common::Agent) -> u64 {
    agent.get_json("/health/codex/alerts").1["evaluations"]
        .as_u64()
        .expect("evaluations counter")
}

/// Waits until the engine has run at least `min_evaluations` evaluations and the outbox is
/// empty. Each evaluation persists what it decided before `evaluations` counts it, so from
/// then on any notification decided so far has been sent: the point at which "nothing more
/// was sent" can be asserted without waiting a guessed time.
pub fn wait_settled(
    agent: &crate::common::Agent,
    state_dir: &std::path::Path,
    min_evaluations: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = evaluations(agent);
        let pending = outbox(state_dir);
        if done >= min_evaluations && pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {done} evaluation(s) of {min_evaluations}, outbox {pending:?}\nstderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(
    stream: TcpStream,
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
    location: Arc<Mutex<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*default.lock().unwrap());
        requests.lock().unwrap().push(Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
            answer,
        });
        let response = match answer {
            Answer::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Answer::Status(code) => format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok"),
            Answer::Redirect(code) => format!(
                "HTTP/1.1 {code} Moved\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
                location.lock().unwrap()
            ),
            Answer::Body(code, body) => format!(
                "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            Answer::TooMany(secs) => format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\nContent-Length: 4\r\n\r\nslow"
            ),
        };
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Debian's aiosmtpd, run by Debian's interpreter, printing each message to stdout.
pub struct SmtpServer {
    pub child: Child,
    pub port: u16,
    pub output: Arc<Mutex<String>>,
    /// The SMTP session log (`-d`): envelope `mail FROM` / `rcpt TO` commands.
    pub session: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

impl SmtpServer {
    pub fn start(port: u16) -> SmtpServer {
        let python = "/usr/bin/python3";
        let probe = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .unwrap_or_else(|e| {
                panic!("{python} missing ({e}): run scripts/setup.d/60-alerting.sh")
            });
        assert!(
            probe.success(),
            "python3-aiosmtpd missing: run scripts/setup.d/60-alerting.sh"
        );
        let mut child = Command::new(python)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-d",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let output = Arc::new(Mutex::new(String::new()));
        let session = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), output.clone());
        collect(child.stderr.take().unwrap(), session.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            output,
            session,
        }
    }

    pub fn session_log(&self) -> String {
        self.session.lock().unwrap().clone()
    }

    /// The messages printed so far (aiosmtpd's Debugging handler frames each one).
    pub fn messages(&self) -> Vec<String> {
        let text = self.output.lock().unwrap().clone();
        text.split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .map(|m| {
                m.split("------------ END MESSAGE ------------")
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's prometheus-alertmanager on loopback with a throw-away config and storage.
pub struct Alertmanager {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";

impl Alertmanager {
    pub fn start(port: u16) -> Alertmanager {
        assert!(
            std::path::Path::new(ALERTMANAGER_BIN).exists(),
            "{ALERTMANAGER_BIN} missing: run scripts/setup.d/60-alerting.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let child = Command::new(ALERTMANAGER_BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = http_get(&am.url("/-/ready")) {
                return am;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn alerts(&self) -> serde_json::Value {
        let (code, body) = http_get(&self.url("/api/v2/alerts")).unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
