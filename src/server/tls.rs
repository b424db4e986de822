//! TLS for the HTTP endpoints: a rustls server configuration from a PEM certificate chain and
//! key, and the handshake the listener runs on each accepted connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the server configuration. An error names the file at fault and why.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<rustls::ServerConfig, (PathBuf, String)> {
    let at = |file: &Path, why: String| (file.to_path_buf(), why);
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            at(
                cert_file,
                format!("TLS certificate file cannot be read: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(at(
            cert_file,
            "TLS certificate file holds no PEM certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| at(key_file, format!("TLS key file cannot be read: {e}")))?;
    // Two crypto providers are linked (ring, aws-lc-rs via reqwest): name the one we use rather
    // than depend on a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| at(cert_file, format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            at(
                key_file,
                format!("TLS key does not fit the certificate in the certificate file: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
