//! The one way the agent answers with JSON over HTTP, and the one way it builds an HTTP
//! client for its own requests (notifiers, exporters, the `report` command).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// A JSON answer that no cache keeps (every answer reflects the latest snapshot).
pub fn json(code: StatusCode, body: Bytes) -> Response {
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// The base of every outgoing HTTP client. Redirects are never followed: a webhook URL carries
/// a token and the requests carry secret headers and bodies; following a `307` to another host
/// would hand them over (reqwest strips only `Authorization`-like headers, not custom ones such
/// as `X-Api-Key`). No `Referer` either, as it would repeat the tokened URL. A redirect answer
/// is a failed delivery; [`redirect_failure`] says so.
pub fn client_builder(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .user_agent(concat!("codex-sentinel/", env!("CARGO_PKG_VERSION")))
}

/// Makes ring the process's TLS provider, once, before any HTTP client is built: reqwest is
/// linked without one of its own (see Cargo.toml), and building a client without a provider
/// panics. A provider installed earlier by an embedding program is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The failure a `3xx` answer is, naming where it pointed by scheme, host and port only (the
/// path and query of a `Location` may carry a token too).
pub fn redirect_failure(status: u16, location: Option<&str>) -> String {
    let target = location
        .and_then(|l| reqwest::Url::parse(l).ok())
        .map(|u| {
            let host = u.host_str().unwrap_or("?").to_string();
            match u.port() {
                Some(p) => format!(" to {}://{host}:{p}", u.scheme()),
                None => format!(" to {}://{host}", u.scheme()),
            }
        })
        .unwrap_or_default();
    format!(
        "HTTP {status} redirect{target} not followed: redirects are never followed, so that \
         tokens and secret headers cannot travel to another address; configure the final URL"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_failure_names_the_host_but_not_the_path() {
        let m = redirect_failure(307, Some("https://other.example:8443/steal?token=s3cret"));
        assert!(
            m.contains("307 redirect to https://other.example:8443 not followed"),
            "{m}"
        );
        assert!(!m.contains("s3cret") && !m.contains("steal"), "{m}");
        assert!(
            redirect_failure(302, Some("/relative")).starts_with("HTTP 302 redirect not followed")
        );
    }
}
