//! The `codex-sentinel` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use codex_sentinel::cli::show::{self, ShowFormat};
use codex_sentinel::config::{self, Sources};
use codex_sentinel::monitor::history;
use codex_sentinel::report;

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
    /// Web config file: TLS and basic authentication of the HTTP endpoints, in the Prometheus
    /// exporter toolkit's format. The same as CODEX_HEALTH_WEB_CONFIG_FILE.
    #[arg(long = "web.config.file", global = true, value_name = "FILE")]
    web_config_file: Option<PathBuf>,
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
    /// Each attempt (with retries: attempt n of m) is reported on stderr as it ends.
    Check {
        /// What to print on stdout.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the report of a period from the agent's per-hour history (stateDir/history.json).
    Report {
        /// How far back: 7d, 24h, 90m, 2w.
        #[arg(long, default_value = "7d")]
        since: String,
        /// How to print the report.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Performance baselines: save a snapshot of the running agent's metrics, or show the
    /// learned and explicit baselines.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    /// The overall status, one line per check (status, name, message, duration), then the
    /// recommendations and the total duration.
    Text,
    /// The `/health/codex` document.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    /// Human-readable tables.
    Text,
    /// The report as one JSON document.
    Json,
    /// Markdown tables (for a weekly report page).
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum BaselineFormat {
    /// One line per baseline: explicit, learned and effective value.
    Text,
    /// The same as a JSON document.
    Json,
}

#[derive(Subcommand)]
enum BaselineAction {
    /// GET {path}/metrics from the running agent and save it as DIR/YYYY-MM-DD.json.
    Save {
        /// Where the agent listens, e.g. http://127.0.0.1:3000 (default: from the
        /// configuration's endpoints).
        #[arg(long)]
        url: Option<String>,
        /// Directory the snapshot is written to, as YYYY-MM-DD.json.
        #[arg(long, default_value = "monitoring/baselines")]
        dir: PathBuf,
    },
    /// Print the explicit, learned and effective baselines.
    Show {
        /// How to print the baselines.
        #[arg(long, value_enum, default_value = "text")]
        format: BaselineFormat,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration, secrets redacted, with where each value came from.
    Show {
        /// How to print the configuration.
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
    if let Some(file) = &cli.web_config_file {
        // The flag is the variable's command-line spelling: one path into the configuration
        // (so `config show` and a reload see it too). Set before any thread starts.
        std::env::set_var("CODEX_HEALTH_WEB_CONFIG_FILE", file);
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Config {
            action: ConfigAction::Validate { file },
        } => {
            let sources = Sources::from_process(file.or(cli.config));
            match codex_sentinel::cli::load_all(&sources) {
                Ok(loaded) => {
                    for d in &loaded.deprecations {
                        eprintln!("codex-sentinel: warning: {d}");
                    }
                    println!("configuration is valid");
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Config {
            action: ConfigAction::Show { format },
        } => {
            let loaded = match codex_sentinel::cli::load_all(&Sources::from_process(cli.config)) {
                Ok(loaded) => loaded,
                Err(e) => return config_error(e),
            };
            match show::effective(&loaded.config, &loaded.figment, &loaded.deprecations) {
                Ok(shown) => {
                    print!("{}", show::render(&shown, format));
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Report { since, format } => {
            let cfg = match codex_sentinel::cli::load(&Sources::from_process(cli.config)) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            let since_ms = match report::parse_since(&since) {
                Ok(ms) => ms,
                Err(e) => {
                    eprintln!("codex-sentinel: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let hours = match history::read(&cfg.state_dir) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("codex-sentinel: history: {e}");
                    return ExitCode::from(1);
                }
            };
            let r = report::build(&hours, codex_sentinel::util::now_ms(), since_ms, &since);
            match format {
                ReportFormat::Text => print!("{}", report::render_text(&r)),
                ReportFormat::Markdown => print!("{}", report::render_markdown(&r)),
                ReportFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&r).expect("report serializes")
                ),
            }
            ExitCode::SUCCESS
        }
        Command::Baseline {
            action: BaselineAction::Show { format },
        } => {
            let cfg = match codex_sentinel::cli::load(&Sources::from_process(cli.config)) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            let hours = match history::read(&cfg.state_dir) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("codex-sentinel: history: {e}");
                    return ExitCode::from(1);
                }
            };
            let view = report::baseline_view(&cfg, &hours, codex_sentinel::util::now_ms());
            match format {
                BaselineFormat::Text => print!("{}", report::render_baselines_text(&view)),
                BaselineFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&view).expect("baselines serialize")
                ),
            }
            ExitCode::SUCCESS
        }
        Command::Baseline {
            action: BaselineAction::Save { url, dir },
        } => {
            let cfg = match codex_sentinel::cli::load(&Sources::from_process(cli.config)) {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            let url = url.unwrap_or_else(|| {
                let ep = &cfg.health_monitoring.endpoints;
                let host = match ep.host.as_str() {
                    "0.0.0.0" => "127.0.0.1",
                    "::" => "[::1]",
                    h => h,
                };
                format!("http://{host}:{}", ep.port)
            });
            let url = format!("{}{}/metrics", url.trim_end_matches('/'), cfg.health_path());
            match runtime(1).block_on(save_baseline(&url, &dir)) {
                Ok(path) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("codex-sentinel: baseline save: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { format } => {
            let loaded = match codex_sentinel::cli::load_all(&Sources::from_process(cli.config)) {
                Ok(loaded) => loaded,
                Err(e) => return config_error(e),
            };
            let cfg = loaded.config;
            init_logging(&cfg, cli.log_format);
            codex_sentinel::cli::log_deprecations(&loaded.deprecations);
            let runtime = runtime(1);
            let outcome = runtime.block_on(codex_sentinel::check_once(cfg, |r| {
                eprintln!("{}", check_progress(&r))
            }));
            let snapshot = &outcome.snapshot;
            match format {
                CheckFormat::Json => {
                    println!("{}", String::from_utf8_lossy(&snapshot.health_json()))
                }
                CheckFormat::Text => print!("{}", check_text(&outcome)),
            }
            ExitCode::from(snapshot.report.overall.code())
        }
        Command::Run => {
            let sources = Sources::from_process(cli.config.clone());
            let loaded = match codex_sentinel::cli::load_all(&sources) {
                Ok(loaded) => loaded,
                Err(e) => return config_error(e),
            };
            let cfg = loaded.config;
            init_logging(&cfg, cli.log_format);
            // Once, at start-up; reloads do not repeat them.
            codex_sentinel::cli::log_deprecations(&loaded.deprecations);
            let runtime = runtime(2);
            runtime.block_on(run(cfg, cli.config))
        }
    }
}

/// One progress line of `check` on stderr: `codex-availability: attempt 1 of 3 timed out after
/// 1002 ms; retrying in 1000 ms`.
fn check_progress(r: &codex_sentinel::sources::probe::AttemptReport<'_>) -> String {
    let mut line = format!(
        "{}: attempt {} of {} {} after {} ms",
        r.probe,
        r.number,
        r.max,
        r.attempt.ending,
        r.attempt.duration.as_millis()
    );
    if let Some(wait) = r.retry_in {
        line.push_str(&format!("; retrying in {} ms", wait.as_millis()));
    }
    line
}

/// The text output of `check`: each check with the duration of its whole run (all attempts and
/// the waits between them), the recommendations, and how long the check took in all.
fn check_text(outcome: &codex_sentinel::CheckOutcome) -> String {
    let r = &outcome.snapshot.report;
    let mut out = format!("{}\n", r.overall.as_str().to_uppercase());
    for c in &r.checks {
        let run = outcome.runs.iter().find(|run| run.spec_name == c.name);
        let took = match run {
            Some(run) if run.attempts.len() > 1 => format!(
                "{} ms, {} attempts",
                run.elapsed().as_millis(),
                run.attempts.len()
            ),
            Some(run) => format!("{} ms", run.elapsed().as_millis()),
            None => format!("{} ms", c.duration),
        };
        out.push_str(&format!(
            "  {} {}: {} ({took})\n",
            c.status.as_str(),
            c.name,
            c.message
        ));
    }
    for rec in &r.recommendations {
        out.push_str(&format!("  - {rec}\n"));
    }
    out.push_str(&format!("total: {} ms\n", outcome.elapsed.as_millis()));
    out
}

fn config_error(e: config::ConfigError) -> ExitCode {
    for problem in e.problems() {
        eprintln!("codex-sentinel: {problem}");
    }
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
            let cause = codex_sentinel::logging::error_chain(&e);
            tracing::error!(error = %cause, "cannot start");
            eprintln!("codex-sentinel: {cause}");
            // A web config file that vanished between validation and start is still a
            // configuration error.
            return match e {
                codex_sentinel::StartError::WebConfig(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::from(1),
            };
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
    // A file that was loaded stays required: if it is missing at a reload, the reload is
    // rejected (the running configuration is kept) rather than silently replaced by the
    // built-in defaults. The default file counts as loaded once it was present.
    let mut required = config_file.clone();
    let note_default_file = |required: &mut Option<PathBuf>| {
        let default = std::path::Path::new(config::DEFAULT_CONFIG_FILE);
        if required.is_none() && default.exists() {
            *required = Some(default.to_path_buf());
        }
    };
    note_default_file(&mut required);
    let load = |required: &Option<PathBuf>| {
        codex_sentinel::cli::load(&Sources::from_process(required.clone()))
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                fingerprint = reload::file_fingerprint(&watched);
                let loaded = load(&required);
                if loaded.is_ok() {
                    note_default_file(&mut required);
                }
                agent.reload(loaded, "SIGHUP");
            }
            _ = usr1.recv() => agent.reopen_audit_log(),
            _ = poll.tick(), if watch.is_some() => {
                let now = reload::file_fingerprint(&watched);
                if now.is_none() && fingerprint.is_some() {
                    // Mid-replace by an editor or a ConfigMap update: wait for the new file
                    // rather than falling back to defaults.
                    tracing::warn!(file = %watched.display(), "configuration file missing; keeping the running configuration until it is back");
                    // Logged once: the file's return is then a change like any other.
                    fingerprint = None;
                    continue;
                }
                if now != fingerprint {
                    fingerprint = now;
                    let loaded = load(&required);
                    if loaded.is_ok() {
                        note_default_file(&mut required);
                    }
                    agent.reload(loaded, "config file change");
                }
            }
        }
    }
}

/// Fetches the detailed metrics and writes them, pretty-printed, to `dir/YYYY-MM-DD.json`
/// (the specification's `monitoring/baselines/$(date +%Y-%m-%d).json`).
async fn save_baseline(url: &str, dir: &std::path::Path) -> Result<PathBuf, String> {
    use codex_sentinel::logging::{error_chain, http_failure, redact_urls};
    let shown = redact_urls(url);
    codex_sentinel::util::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| error_chain(&e))?;
    // The URL is said once, redacted, in front; the error's own copy would repeat it.
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {shown}: {}", error_chain(&e.without_url())))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("GET {shown}: {}", error_chain(&e.without_url())))?;
    if !status.is_success() {
        return Err(format!(
            "GET {shown}: {}",
            http_failure(status.as_u16(), status.canonical_reason(), &bytes)
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("GET {shown}: not JSON: {}", error_chain(&e)))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), error_chain(&e)))?;
    let day = codex_sentinel::audit::day_of(codex_sentinel::util::now_ms());
    let path = dir.join(format!("{day}.json"));
    let text = serde_json::to_string_pretty(&body).expect("JSON serializes");
    std::fs::write(&path, text + "\n")
        .map_err(|e| format!("{}: {}", path.display(), error_chain(&e)))?;
    Ok(path)
}
