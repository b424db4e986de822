//! The web configuration file (`--web.config.file`, `CODEX_HEALTH_WEB_CONFIG_FILE`): TLS and
//! basic authentication for the HTTP endpoints, in the Prometheus exporter toolkit's format so
//! that a file written for an exporter works here:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/codex-sentinel/tls/tls.crt
//!   key_file: /etc/codex-sentinel/tls/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...        # bcrypt hash (htpasswd -nbBC 10 "" PASSWORD)
//! bearer_tokens:                  # our extension: `Authorization: Bearer TOKEN`
//!   ci: $2y$10$...                # bcrypt hash of the token
//! ```
//!
//! Read once at start (a change needs a restart). Relative paths are relative to the file's
//! directory, as in the toolkit. A key the toolkit has and we do not (`client_ca_file`,
//! `min_version`, `http_server_config`, ...) is refused by name rather than silently ignored:
//! a setting that looks applied but is not would be a security hole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::auth::Authenticator;

/// What the file configures; both parts are optional.
pub struct WebConfig {
    /// The file it came from (for the log line).
    pub file: PathBuf,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<Authenticator>>,
}

/// A web config problem, always naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", file.display())]
pub struct WebConfigError {
    pub file: PathBuf,
    pub why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    bearer_tokens: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The configuration's check: the named file (and the files it names) can be loaded. A
/// problem names `healthMonitoring.endpoints.webConfigFile`, and the file at fault.
pub fn validate(config: &crate::config::Config) -> Result<(), (&'static str, String, String)> {
    let ep = &config.health_monitoring.endpoints;
    match &ep.web_config_file {
        Some(file) if ep.enabled => WebConfig::load(Path::new(file)).map(|_| ()).map_err(|e| {
            (
                "healthMonitoring.endpoints.webConfigFile",
                format!("{file:?}"),
                e.to_string(),
            )
        }),
        _ => Ok(()),
    }
}

impl WebConfig {
    /// Reads the file and everything it names (certificate, key), checking each.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let err = |file: &Path, why: String| WebConfigError {
            file: file.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path, format!("web config file cannot be read: {e}")))?;
        // An empty file is a valid (empty) YAML document: nothing configured.
        let parsed: File = if text.trim().is_empty() {
            File {
                tls_server_config: None,
                basic_auth_users: BTreeMap::new(),
                bearer_tokens: BTreeMap::new(),
            }
        } else {
            serde_yaml_ng::from_str(&text)
                .map_err(|e| err(path, format!("not a valid web config file: {e}")))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match parsed.tls_server_config {
            Some(t) => Some(Arc::new(
                super::tls::server_config(&dir.join(&t.cert_file), &dir.join(&t.key_file))
                    .map_err(|(file, why)| err(&file, why))?,
            )),
            None => None,
        };
        for (kind, map) in [
            ("basic_auth_users", &parsed.basic_auth_users),
            ("bearer_tokens", &parsed.bearer_tokens),
        ] {
            for (name, hash) in map {
                // The hash is a secret's fingerprint: name the entry, never print the hash.
                if hash.parse::<bcrypt::HashParts>().is_err() {
                    return Err(err(
                        path,
                        format!("{kind}.{name}: not a bcrypt hash (make one with `htpasswd -nbBC 10 \"\" PASSWORD`)"),
                    ));
                }
                if kind == "basic_auth_users" && name.contains(':') {
                    return Err(err(
                        path,
                        format!("{kind}: user name {name:?} contains ':', which basic authentication cannot carry"),
                    ));
                }
            }
        }
        let auth =
            (!parsed.basic_auth_users.is_empty() || !parsed.bearer_tokens.is_empty()).then(|| {
                Arc::new(Authenticator::new(
                    parsed.basic_auth_users,
                    parsed.bearer_tokens,
                ))
            });
        Ok(WebConfig {
            file: path.to_path_buf(),
            tls,
            auth,
        })
    }
}
