//! The OpenTelemetry semantic-convention names the OTLP exporter emits beside the catalog's
//! (the "twins"): a table of its own, since the metric filter and the generated docs read it as
//! well as the exporter.

/// A metric emitted on OTLP under an OpenTelemetry semantic-convention name as well, computed
/// from a catalog gauge or counter. `docs/metrics.md` lists these; a test checks it against
/// this table.
///
/// One naming scheme: `codex.*` describes the watched Codex processes (sums over all of them),
/// `codex_sentinel.*` the agent itself; the `process.*` names of the conventions describe one
/// process, the resource's, which is the agent — so they are emitted for the agent only, and
/// `sum(process.memory.usage)` on a backend never adds the agent to Codex.
#[derive(Debug)]
pub struct SemconvTwin {
    /// The catalog metric's OpenTelemetry name.
    pub source: &'static str,
    pub name: &'static str,
    /// The instrument the conventions prescribe.
    pub kind: TwinKind,
    pub unit: &'static str,
    pub help: &'static str,
    /// Attribute keys for the source's labels, in order (`cpu_mode` → `cpu.mode`).
    pub attribute_keys: &'static [&'static str],
    pub convert: Convert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinKind {
    Gauge,
    /// Monotonic sum.
    Counter,
    /// Non-monotonic sum (a count or size that goes up and down); cumulative whatever the
    /// temporality preference, as the SDK's delta selector leaves it.
    UpDownCounter,
}

impl TwinKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TwinKind::Gauge => "Gauge",
            TwinKind::Counter => "Counter (monotonic Sum)",
            TwinKind::UpDownCounter => "UpDownCounter (non-monotonic Sum)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    Same,
    /// Percent of one core → fraction of all cores (`process.cpu.utilization`).
    PercentOfCoreToUtilization,
}

pub const SEMCONV_TWINS: &[SemconvTwin] = &[
    SemconvTwin {
        source: "codex_sentinel.memory_rss",
        name: "process.memory.usage",
        kind: TwinKind::UpDownCounter,
        unit: "By",
        help: "The agent's physical memory (RSS) in bytes",
        attribute_keys: &[],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex_sentinel.cpu_usage",
        name: "process.cpu.utilization",
        kind: TwinKind::Gauge,
        unit: "1",
        help: "The agent's CPU as a fraction of the available cores (0..1)",
        attribute_keys: &[],
        convert: Convert::PercentOfCoreToUtilization,
    },
    SemconvTwin {
        source: "codex_sentinel.cpu_time",
        name: "process.cpu.time",
        kind: TwinKind::Counter,
        unit: "s",
        help: "CPU seconds used by the agent since it started, by cpu.mode (user, system)",
        attribute_keys: &["cpu.mode"],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex_sentinel.threads",
        name: "process.thread.count",
        kind: TwinKind::UpDownCounter,
        unit: "{thread}",
        help: "The agent's threads",
        attribute_keys: &[],
        convert: Convert::Same,
    },
    SemconvTwin {
        source: "codex_sentinel.open_fds",
        name: "process.unix.file_descriptor.count",
        kind: TwinKind::UpDownCounter,
        unit: "{file_descriptor}",
        help: "The agent's open file descriptors",
        attribute_keys: &[],
        convert: Convert::Same,
    },
];
