//! The HTTP server under abuse, on loopback, bounded in time and count: half-sent headers,
//! idle and kept-alive sockets are closed by the header deadline; a connection flood beyond
//! the limit is refused at once while `/livez` and `/readyz` keep answering; and a probe that
//! cannot start for a lack of the agent's own file descriptors is an agent problem, never
//! "Codex unavailable".

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{codex_bin, start_agent, Agent, AgentOptions};
use serde_json::Value;

fn connect(agent: &Agent) -> TcpStream {
    TcpStream::connect(("127.0.0.1", agent.port)).expect("connect")
}

/// Reads until the server closes the connection; returns what it sent and when it closed,
/// or `None` if it was still open at `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Duration)> {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(t0.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some((got, t0.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some((got, t0.elapsed())),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Whether the server has closed `stream` (without waiting).
fn closed_now(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let r = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break Some(got),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
            Err(e) => panic!("read: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    r
}

fn wait_for(what: &str, timeout: Duration, agent: &Agent, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {timeout:?}; stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn availability_lines(agent: &Agent) -> Vec<Value> {
    let day = codex_sentinel::audit::day_of(codex_sentinel::util::now_ms());
    let file = agent
        .path()
        .join(format!("logs/audit/health-checks-{day}.log"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["check"] == "codex-availability")
        .collect()
}

#[test]
fn half_sent_headers_idle_and_kept_alive_sockets_are_closed_by_the_header_deadline() {
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_HEADER_TIMEOUT", "1000".into()),
        ],
        ..Default::default()
    });
    let mut slowloris = connect(&agent);
    slowloris
        .write_all(b"GET /health/codex HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = connect(&agent);
    let mut kept_alive = connect(&agent);
    kept_alive
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept_alive.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    for (name, stream) in [
        ("half-sent header", &mut slowloris),
        ("idle socket", &mut idle),
        ("kept-alive socket", &mut kept_alive),
    ] {
        let closed = read_until_closed(stream, Duration::from_secs(5));
        let (_, after) = closed.unwrap_or_else(|| panic!("{name} still open after 5 s"));
        assert!(
            after <= Duration::from_millis(2500),
            "{name}: closed after {after:?}"
        );
    }
    // Another client is served as usual.
    assert_eq!(agent.get("/livez").0, 200);
}

#[test]
fn a_connection_flood_is_refused_at_once_while_probes_and_codex_checks_go_on() {
    const MAX: usize = 40;
    const RESERVE: usize = codex_sentinel::server::listener::PROBE_RESERVE;
    const FLOOD: usize = 300;
    // The trial's conditions: 256 descriptors, 300 held connections.
    let mut agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "300".into()),
            ("CODEX_HEALTH_MAX_CONNECTIONS", MAX.to_string()),
            ("CODEX_HEALTH_HEADER_TIMEOUT", "60000".into()),
        ],
        nofile_limit: Some(256),
        ..Default::default()
    });
    wait_for(
        "a first availability verdict",
        Duration::from_secs(30),
        &agent,
        || {
            availability_lines(&agent)
                .iter()
                .any(|l| l["status"] == "healthy")
        },
    );

    let t0 = Instant::now();
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let mut s = connect(&agent);
            s.write_all(b"GET /health/codex HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // Everything beyond the limit and the probe reserve is answered 503 and closed at once.
    let expected_refused = FLOOD - MAX - RESERVE;
    let mut refused = Vec::new();
    wait_for("the excess refused", Duration::from_secs(5), &agent, || {
        refused = flood.iter_mut().filter_map(closed_now).collect::<Vec<_>>();
        refused.len() >= expected_refused
    });
    assert!(t0.elapsed() < Duration::from_secs(5));
    // A refused client reads a 503 or, when its request was already in flight, a reset.
    assert!(
        refused
            .iter()
            .all(|r| r.is_empty() || r.starts_with(b"HTTP/1.1 503")),
        "a refusal is a 503 or a reset"
    );

    // The kubelet's probes still get answers: the reserve's slots free up within its short
    // header deadline, the main slots stay taken by the flood.
    for path in ["/livez", "/readyz"] {
        wait_for(path, Duration::from_secs(10), &agent, || {
            matches!(agent.try_get(path), Ok((200, _)))
        });
    }
    let (code, body) = agent.get("/health/codex");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("only /livez and /readyz"), "{body}");

    // Probes went on during the flood and found Codex available.
    let seen = availability_lines(&agent).len();
    wait_for(
        "two probes during the flood",
        Duration::from_secs(20),
        &agent,
        || availability_lines(&agent).len() >= seen + 2,
    );
    let lines = availability_lines(&agent);
    assert!(
        lines.iter().all(|l| l["status"] == "healthy"),
        "no probe may fail because of the flood: {lines:?}"
    );
    assert!(agent.child.try_wait().unwrap().is_none(), "agent died");
    drop(flood);
    // The slots come back as the server notices the closed sockets.
    wait_for(
        "the full service back",
        Duration::from_secs(5),
        &agent,
        || matches!(agent.try_get("/health/codex"), Ok((200, _))),
    );
}

#[test]
fn a_probe_that_cannot_spawn_for_lack_of_descriptors_is_an_agent_problem_not_codex_down() {
    // A limit set too high for the descriptors on purpose, so connections exhaust them.
    let agent = start_agent(AgentOptions {
        env: vec![
            ("CODEX_EXECUTABLE", codex_bin().display().to_string()),
            ("CODEX_HEALTH_CHECK_INTERVAL", "200".into()),
            ("CODEX_HEALTH_CHECK_RETRIES", "0".into()),
            ("CODEX_HEALTH_MAX_CONNECTIONS", "1000".into()),
            ("CODEX_HEALTH_HEADER_TIMEOUT", "60000".into()),
        ],
        nofile_limit: Some(64),
        ..Default::default()
    });
    wait_for(
        "a first availability verdict",
        Duration::from_secs(30),
        &agent,
        || {
            availability_lines(&agent)
                .iter()
                .any(|l| l["status"] == "healthy")
        },
    );
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = connect(&agent);
            let _ = s.write_all(b"GET /health/codex HTTP/1.1\r\n");
            s
        })
        .collect();
    wait_for(
        "a probe that could not start",
        Duration::from_secs(20),
        &agent,
        || {
            availability_lines(&agent).iter().any(|l| {
                l["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("agent problem")
            })
        },
    );
    drop(flood);
    let lines = availability_lines(&agent);
    let statuses: Vec<&str> = lines.iter().filter_map(|l| l["status"].as_str()).collect();
    assert!(
        statuses.iter().all(|s| *s == "healthy" || *s == "warning"),
        "an agent-side failure must never read as Codex down: {statuses:?}"
    );
    // With descriptors back, the endpoints and the probe recover.
    wait_for("endpoints back", Duration::from_secs(10), &agent, || {
        matches!(agent.try_get("/livez"), Ok((200, _)))
    });
    let n = availability_lines(&agent).len();
    wait_for(
        "a healthy probe again",
        Duration::from_secs(20),
        &agent,
        || {
            let l = availability_lines(&agent);
            l.len() > n && l.last().unwrap()["status"] == "healthy"
        },
    );
}
