//! A Job's pod ends right after its last executions: on SIGTERM the agent reads the operations
//! log one last time, applies it and exports it before exiting. The StatsD interval here is an
//! hour, so the only export that can carry the executions is the one at shutdown, and the lines
//! are written just before the signal, so only the last read can see them.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{start_agent, write_operations_log, AgentOptions};

/// Sums `codex.executions:N|c|…operation_type:OP…` over every datagram received until `quiet`
/// passes without one.
fn executions_received(socket: &UdpSocket, operation: &str, quiet: Duration) -> f64 {
    socket.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut total = 0.0;
    while let Ok(n) = socket.recv(&mut buf) {
        for line in String::from_utf8_lossy(&buf[..n]).lines() {
            if let Some(rest) = line.strip_prefix("codex.executions:") {
                if line.contains(&format!("operation_type:{operation}")) {
                    total += rest.split('|').next().unwrap().parse::<f64>().unwrap();
                }
            }
        }
    }
    total
}

#[test]
fn executions_written_just_before_sigterm_are_exported() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let mut agent = start_agent(AgentOptions {
        env: vec![
            ("ENABLE_CODEX_HEALTH_MONITORING", "false".into()),
            ("DD_DOGSTATSD_URL", format!("udp://127.0.0.1:{port}")),
            ("CODEX_STATSD_INTERVAL", "3600000".into()),
        ],
        ..AgentOptions::default()
    });
    write_operations_log(agent.path(), "release-build", &[120, 340, 560, 780, 910]);
    let t0 = Instant::now();
    let (code, _) = agent.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", agent.stderr());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        executions_received(&receiver, "release-build", Duration::from_millis(500)),
        5.0,
        "stderr:\n{}",
        agent.stderr()
    );
}
