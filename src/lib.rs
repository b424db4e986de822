//! codex-sentinel: watches the Codex CLI for an application that depends on it.
//!
//! Data flows one way: sources (probes, process sampler, operations log) send observations to
//! the monitor, the single owner of state, which publishes immutable snapshots that the HTTP
//! server and the exporters read.

pub mod alerts;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod export;

pub mod logging;
pub mod monitor;
pub mod reload;
pub mod report;
pub mod server;
pub mod sources;
pub mod statefile;
pub mod telemetry;
pub mod util;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use config::Config;
use monitor::probes::ProbeSpec;
use monitor::snapshot::Snapshot;
use monitor::{history, Monitor, Observation};
use sources::probe;

/// How long shutdown may take before remaining tasks are abandoned.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

pub use monitor::probes::specs as probe_specs;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("alerting: {0}")]
    Alerting(String),
    /// The web config file or a file it names is missing or invalid (a configuration error).
    #[error("web config file: {0}")]
    WebConfig(#[from] server::webconfig::WebConfigError),
}

/// A running agent: where it listens and how to stop it.
pub struct RunningAgent {
    pub addr: Option<SocketAddr>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    /// The last words, in order (see [`RunningAgent::stop`]).
    readers: tokio::task::JoinSet<()>,
    stop_monitor: CancellationToken,
    monitor: Option<tokio::task::JoinHandle<()>>,
    stop_exporters: CancellationToken,
    reloader: Arc<reload::Reloader>,
    audit_log: audit::AuditLog,
}

impl RunningAgent {
    /// Stops probes (killing any running probe's process group), drains HTTP requests, and
    /// waits for the tasks, at most [`SHUTDOWN_DEADLINE`] in all. What happened last still
    /// reaches the platform (a Job's pod ends right after its last execution), in order:
    /// 1. the operations-log reader reads the log one last time and hands it to the monitor;
    /// 2. the monitor applies everything queued and publishes a final snapshot;
    /// 3. the exporters export that snapshot.
    pub async fn stop(mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
        self.shutdown.cancel();
        let readers = async { while self.readers.join_next().await.is_some() {} };
        let read = tokio::time::timeout_at(deadline, readers).await.is_ok();
        self.stop_monitor.cancel();
        if let Some(monitor) = self.monitor.take() {
            let _ = tokio::time::timeout_at(deadline, monitor).await;
        }
        self.stop_exporters.cancel();
        let drained = {
            let drain = async { while self.tasks.join_next().await.is_some() {} };
            tokio::time::timeout_at(deadline, drain).await.is_ok()
        };
        if !read || !drained {
            tracing::warn!("shutdown deadline reached; abandoning remaining tasks");
            self.readers.abort_all();
            self.tasks.abort_all();
        }
    }

    /// Applies a newly loaded configuration without dropping state, or rejects it with the
    /// reason and keeps the running one (`SIGHUP`, config-file change).
    pub fn reload(
        &self,
        loaded: Result<Config, config::ConfigError>,
        trigger: &str,
    ) -> reload::Outcome {
        self.reloader.reload(loaded, trigger)
    }

    /// Closes the audit log files; the next line of each opens its file by name again
    /// (`SIGUSR1`, after logrotate renamed them).
    pub fn reopen_audit_log(&self) {
        self.audit_log.reopen();
    }

    /// A token that stops the agent when cancelled (signal handlers hold one).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts every part the configuration enables. Must be called inside a tokio runtime.
pub async fn start(config: Config) -> Result<RunningAgent, StartError> {
    probe::become_subreaper();
    // Everything this agent counts of itself, and the queue to its monitor: nothing is shared
    // with another agent started in the same process.
    let (sender, rx, telemetry) = monitor::channel();
    // First, so that problems found while starting (a corrupt state file) reach errors-*.log.
    let audit_log = audit::start_writer(&config.audit_log, &telemetry);
    statefile::declare(&telemetry);
    let export_errors = Arc::new(export::ExportErrors::new(telemetry.clone()));
    let loaded = Arc::new(config.clone());
    let config = if config.baselines.learn && config.history.enabled {
        let hours = history::load(&config.state_dir, &telemetry).unwrap_or_default();
        history::apply_learned(config, &hours, util::now_ms())
    } else {
        config
    };
    let config = Arc::new(config);
    let (reloader, updates) = reload::Reloader::new(config.clone(), loaded, telemetry.clone());
    let shutdown = CancellationToken::new();
    let specs = probe_specs(&config);
    let observed = monitor::observed::ObservedSender::default();
    // One thread writes every state file (checkpoint, history, alert state): no fsync on the
    // async workers, and one place that coalesces, retries and counts failed writes.
    let persister = Arc::new(statefile::Persister::start());
    let monitor = Monitor::with_persister(
        config.clone(),
        specs.clone(),
        telemetry.clone(),
        persister.clone(),
    )
    .with_observed(observed.clone());
    let (publish, snapshots) = watch::channel(Arc::new(monitor.snapshot(util::now_ms())));
    let heartbeat = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    audit::spawn_recorder(
        audit_log.clone(),
        &config.audit_log,
        snapshots.clone(),
        shutdown.clone(),
        &mut tasks,
    );

    // Alert rules run in their own task on the published snapshots; what the monitor shows
    // of them (active alerts, maintenance) comes back on its queue as an observation.
    let alerting = alerts::start(
        config.clone(),
        snapshots.clone(),
        Some(updates.clone()),
        &sender,
        persister,
        shutdown.clone(),
        &mut tasks,
    )
    .map_err(StartError::Alerting)?;
    let monitor = monitor.with_config_updates(updates.clone());

    let mut addr = None;
    if config.health_monitoring.endpoints.enabled {
        let ep = &config.health_monitoring.endpoints;
        let web = match &ep.web_config_file {
            Some(file) => Some(server::webconfig::WebConfig::load(std::path::Path::new(
                file,
            ))?),
            None => None,
        };
        let want: SocketAddr = SocketAddr::new(ep.host.parse().expect("validated"), ep.port);
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|source| StartError::Bind { addr: want, source })?;
        let bound = listener.local_addr().unwrap_or(want);
        addr = Some(bound);
        let app = server::router(
            config.health_path(),
            server::AppState {
                snapshot: snapshots.clone(),
                heartbeat: heartbeat.clone(),
                alerting: alerting.clone(),
            },
        );
        let (tls, auth) = match web {
            Some(w) => (w.tls, w.auth),
            None => (None, None),
        };
        let app = server::secured(app, auth.clone());
        let limits = server::listener::Limits::from_config(ep);
        tracing::info!(%bound, path = config.health_path(), max_connections = limits.max_connections, tls = tls.is_some(), authentication = auth.is_some(), "serving health endpoints");
        tasks.spawn(
            server::listener::Server::new(listener)
                .limits(limits)
                .tls(tls)
                .serve(app, shutdown.clone()),
        );
    }

    // Shutdown runs in three steps (RunningAgent::stop): readers, then monitor, then exporters.
    let stop_monitor = CancellationToken::new();
    let stop_exporters = CancellationToken::new();
    let monitor = tokio::spawn(monitor.run(rx, publish, heartbeat, stop_monitor.clone()));
    let mut readers = tokio::task::JoinSet::new();

    if config.operations_log.enabled {
        readers.spawn(sources::oplog::run(
            config.clone(),
            sender.clone(),
            shutdown.clone(),
        ));
    }

    // Exporters: each on its own task, reading snapshots and observed values; they
    // stop last, after the monitor's final snapshot.
    export::start(
        &config,
        &snapshots,
        &observed,
        &export_errors,
        &stop_exporters,
        &mut tasks,
    );

    tasks.spawn(probe_supervisor(
        specs,
        config.health_monitoring.enabled,
        updates,
        sender.clone(),
        shutdown.clone(),
    ));

    if config.disk_usage.enabled {
        tasks.spawn(sources::disk::run(
            config.clone(),
            sender.clone(),
            shutdown.clone(),
        ));
    }

    if config.processes.enabled {
        tasks.spawn(sources::processes::run(
            config.clone(),
            sender.clone(),
            shutdown.clone(),
        ));
    }

    Ok(RunningAgent {
        addr,
        snapshots,
        shutdown,
        tasks,
        readers,
        stop_monitor,
        monitor: Some(monitor),
        stop_exporters,
        reloader: Arc::new(reloader),
        audit_log,
    })
}

/// Runs the probe loops; after a reload that changes a probe (interval, timeout, command,
/// the list itself) or turns probing on or off, stops the loops and starts the new set. Their
/// statistics live in the monitor and survive.
async fn probe_supervisor(
    mut specs: Vec<ProbeSpec>,
    mut enabled: bool,
    mut updates: watch::Receiver<Arc<reload::Update>>,
    sender: monitor::ObservationSender,
    shutdown: CancellationToken,
) {
    updates.mark_unchanged();
    let mut updates = Some(updates);
    loop {
        let token = shutdown.child_token();
        let mut loops = tokio::task::JoinSet::new();
        if enabled {
            for spec in &specs {
                tracing::info!(probe = %spec.name, program = %spec.program, interval_ms = spec.interval.as_millis() as u64, "probe scheduled");
                loops.spawn(sources::scheduler::probe_loop(
                    spec.clone(),
                    sender.clone(),
                    token.clone(),
                ));
            }
        } else {
            tracing::warn!("health monitoring disabled: no probes will run");
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    while loops.join_next().await.is_some() {}
                    return;
                }
                update = reload::next_update(&mut updates) => {
                    let new_specs = probe_specs(&update.config);
                    let new_enabled = update.config.health_monitoring.enabled;
                    if new_specs != specs || new_enabled != enabled {
                        specs = new_specs;
                        enabled = new_enabled;
                        break;
                    }
                }
            }
        }
        token.cancel();
        while loops.join_next().await.is_some() {}
    }
}

/// Runs every probe once, measures the log directories once, and returns the resulting snapshot
/// (`codex-sentinel check`).
pub async fn check_once(
    config: Config,
    on_attempt: impl Fn(probe::AttemptReport<'_>) + Send + Sync + 'static,
) -> CheckOutcome {
    let t0 = std::time::Instant::now();
    probe::become_subreaper();
    let on_attempt = Arc::new(on_attempt);
    let config = Arc::new(config);
    // `check` honours ENABLE_CODEX_HEALTH_MONITORING=false: no probe runs, and the availability
    // check says the probes are disabled.
    let specs = if config.health_monitoring.enabled {
        probe_specs(&config)
    } else {
        Vec::new()
    };
    let (_sender, _rx, telemetry) = monitor::channel();
    let disk = sources::disk::sample_once(&config).await;
    let mut monitor = Monitor::new(config, specs.clone(), telemetry);
    // The log volumes, judged as the running agent judges them (usage only: one sample has
    // no growth rate).
    if let Some(sample) = disk {
        monitor.apply(Observation::Disk(sample));
    }
    let token = CancellationToken::new();
    let mut runs = tokio::task::JoinSet::new();
    for spec in specs {
        let token = token.clone();
        let on_attempt = on_attempt.clone();
        runs.spawn(
            async move { probe::run_probe_reporting(&spec, &token, &|r| on_attempt(r)).await },
        );
    }
    let mut done = Vec::new();
    while let Some(run) = runs.join_next().await {
        if let Ok(run) = run {
            done.push(run.clone());
            monitor.apply(Observation::Probe {
                run,
                start_delay: Duration::ZERO,
            });
        }
    }
    CheckOutcome {
        snapshot: Arc::new(monitor.snapshot(util::now_ms())),
        runs: done,
        elapsed: t0.elapsed(),
    }
}

/// What [`check_once`] found: the snapshot, every probe run and how long it all took.
pub struct CheckOutcome {
    pub snapshot: Arc<Snapshot>,
    pub runs: Vec<probe::ProbeRun>,
    pub elapsed: Duration,
}
