//! What the command line needs above the components: the configuration checked by every part
//! that owns a section of it, and `config show`'s effective view. `config` checks its own
//! sections; the exporters and the alert rules check theirs here, so that the configuration
//! layer knows nothing of either.

pub mod show;

use figment::Figment;

use crate::config::{self, renames::Deprecation, Check, Config, ConfigError, Sources};

/// A loaded configuration with what `config show` and the start-up warnings need besides.
pub struct Loaded {
    pub config: Config,
    /// The layers, to tell where each value came from.
    pub figment: Figment,
    /// Old names the sources still use, each once ([`config::renames`]).
    pub deprecations: Vec<Deprecation>,
}

/// Loads, merges and validates the configuration: every section, the exporters' and the alert
/// rules' included. What `run`, `check`, `config validate|show` and a reload use.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    load_all(sources).map(|loaded| loaded.config)
}

/// [`load`], keeping the layers and the deprecated names found.
pub fn load_all(sources: &Sources) -> Result<Loaded, ConfigError> {
    let (figment, deprecations) = config::layers(sources)?;
    let config = load_from(&figment)?;
    Ok(Loaded {
        config,
        figment,
        deprecations,
    })
}

/// [`load`] from an already built figment. Every problem is reported, one a line.
pub fn load_from(fig: &Figment) -> Result<Config, ConfigError> {
    let check = Check::new(fig);
    let config = config::extract(fig, &check)?;
    let mut problems = crate::alerts::rules::validate(&config.alerting);
    problems.extend(crate::export::validate(&config).err());
    problems.extend(crate::server::webconfig::validate(&config).err());
    for (key, value, why) in problems {
        check.bad(key, value, &why);
    }
    check.finish()?;
    Ok(config)
}

/// The message of the start-up warning about an old name (fixed, to match on).
pub const DEPRECATED_MESSAGE: &str =
    "deprecated name in the configuration: use the new one, the old one stops working in the next release";

/// Says each deprecated name once, as a warning in the agent's log (at start-up).
pub fn log_deprecations(deprecations: &[Deprecation]) {
    for d in deprecations {
        tracing::warn!(
            renamed = d.rename.kind.noun(),
            old = d.rename.old,
            new = d.rename.new,
            since = d.rename.since,
            found_in = %d.source,
            "{DEPRECATED_MESSAGE}"
        );
    }
}
