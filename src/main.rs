//! The `codex-sentinel` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use codex_sentinel::config::{self, ShowFormat, Sources};

/// Exit code for configuration errors (the same for every subcommand).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "codex-sentinel",
    version,
    about = "Watches the Codex CLI: probes, metrics, health endpoints, alerts"
)]
struct Cli {
    /// Configuration file (JSON, the specification's format). Default: config/monitoring.json if present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground (the default).
    Run,
    /// Run the probes once, print the status, exit 0 healthy, 1 warning, 2 critical, 3 unavailable.
    Check {
        #[arg(long, value_enum, default_value = "text")]
        format: ShowFormat,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration, secrets redacted, with where each value came from.
    Show {
        #[arg(long, value_enum, default_value = "text")]
        format: ShowFormat,
    },
    /// Check a configuration file (and the environment); exit 0 if valid, 2 if not.
    Validate {
        /// The file to check (default: --config, else config/monitoring.json).
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Config {
            action: ConfigAction::Validate { file },
        } => {
            let sources = Sources::from_process(file.or(cli.config));
            match config::load(&sources) {
                Ok(_) => {
                    println!("configuration is valid");
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Config {
            action: ConfigAction::Show { format },
        } => {
            let sources = Sources::from_process(cli.config);
            let fig = match config::figment(&sources) {
                Ok(f) => f,
                Err(e) => return config_error(e),
            };
            match config::load_from(&fig) {
                Ok(cfg) => {
                    print!("{}", config::render_show(&cfg, &fig, format));
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Check { format } => {
            let cfg = match config::load(&Sources::from_process(cli.config)) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            init_logging(&cfg, cli.log_format);
            let runtime = runtime(1);
            let snapshot = runtime.block_on(codex_sentinel::check_once(cfg));
            match format {
                ShowFormat::Json => {
                    println!("{}", String::from_utf8_lossy(&snapshot.health_json()))
                }
                ShowFormat::Text => {
                    let r = &snapshot.report;
                    println!("{}", r.overall.as_str().to_uppercase());
                    for c in &r.checks {
                        println!(
                            "  {} {}: {} ({} ms)",
                            c.status.as_str(),
                            c.name,
                            c.message,
                            c.duration
                        );
                    }
                    for rec in &r.recommendations {
                        println!("  - {rec}");
                    }
                }
            }
            ExitCode::from(snapshot.report.overall.code())
        }
        Command::Run => {
            let cfg = match config::load(&Sources::from_process(cli.config.clone())) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            init_logging(&cfg, cli.log_format);
            let runtime = runtime(2);
            runtime.block_on(run(cfg, cli.config))
        }
    }
}

fn config_error(e: config::ConfigError) -> ExitCode {
    eprintln!("codex-sentinel: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn init_logging(cfg: &config::Config, flag: Option<LogFormat>) {
    let json = match flag {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => cfg.logging.format == "json",
    };
    codex_sentinel::logging::init(json, cfg.logging.debug);
}

/// A multi-threaded runtime with at most `max_workers` workers: enough for the endpoints to
/// use both cores under load, small enough to stay a few MiB.
fn runtime(max_workers: usize) -> tokio::runtime::Runtime {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, max_workers))
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn run(cfg: config::Config, config_file: Option<PathBuf>) -> ExitCode {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "codex-sentinel starting"
    );
    let watch = cfg
        .reload
        .watch_file
        .then(|| std::time::Duration::from_millis(cfg.reload.watch_interval));
    let agent = match codex_sentinel::start(cfg).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("codex-sentinel: {e}");
            return ExitCode::from(1);
        }
    };
    serve_signals(&agent, config_file, watch).await;
    tracing::info!("shutting down");
    agent.stop().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Until SIGTERM or SIGINT: SIGHUP (and, when watched, a change of the configuration file)
/// reloads the configuration; SIGUSR1 reopens the audit log files.
async fn serve_signals(
    agent: &codex_sentinel::RunningAgent,
    config_file: Option<PathBuf>,
    watch: Option<std::time::Duration>,
) {
    use codex_sentinel::reload;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let watched = reload::watched_file(config_file.as_deref());
    let mut fingerprint = reload::file_fingerprint(&watched);
    let mut poll = tokio::time::interval(watch.unwrap_or(std::time::Duration::from_secs(3600)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let load = || config::load(&Sources::from_process(config_file.clone()));
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                fingerprint = reload::file_fingerprint(&watched);
                agent.reload(load(), "SIGHUP");
            }
            _ = usr1.recv() => codex_sentinel::audit::reopen(),
            _ = poll.tick(), if watch.is_some() => {
                let now = reload::file_fingerprint(&watched);
                if now.is_none() && fingerprint.is_some() {
                    // Mid-replace by an editor or a ConfigMap update: wait for the new file
                    // rather than falling back to defaults.
                    tracing::warn!(file = %watched.display(), "configuration file missing; keeping the running configuration");
                    continue;
                }
                if now != fingerprint {
                    fingerprint = now;
                    agent.reload(load(), "config file change");
                }
            }
        }
    }
}
