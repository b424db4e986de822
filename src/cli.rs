//! What the command line needs above the components: the configuration checked by every part
//! that owns a section of it. `config` checks its own sections; the exporters and the alert
//! rules check theirs here, so that the configuration layer knows nothing of either.

use figment::Figment;

use crate::config::{self, Check, Config, ConfigError, Sources};

/// Loads, merges and validates the configuration: every section, the exporters' and the alert
/// rules' included. What `run`, `check`, `config validate|show` and a reload use.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let fig = config::figment(sources)?;
    load_from(&fig)
}

/// [`load`] from an already built figment (`config show` keeps it to tell where values came from).
pub fn load_from(fig: &Figment) -> Result<Config, ConfigError> {
    let config = config::extract(fig)?;
    let check = Check::new(fig);
    for section in [
        crate::alerts::rules::validate(&config.alerting),
        crate::export::validate(&config),
    ] {
        if let Err((key, value, why)) = section {
            check.bad(key, value, &why)?;
        }
    }
    Ok(config)
}
