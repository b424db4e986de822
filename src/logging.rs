//! Structured logs on stderr: human text by default, JSON on request. `RUST_LOG` wins over
//! the configured level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `debug` raises the level (`CODEX_DEBUG=true`).
pub fn init(json: bool, debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}
