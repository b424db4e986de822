//! Authentication of the HTTP endpoints: basic auth against bcrypt hashes (the exporter
//! toolkit's `basic_auth_users`) and, as our extension, bearer tokens against bcrypt hashes
//! (`bearer_tokens`).
//!
//! bcrypt is slow on purpose (tens of ms per check at cost 10): verifying every request would
//! hand an attacker a CPU lever and make a scraper's every request pay. So:
//! - **Outcomes are cached**, keyed by a SHA-256 of the presented credentials (the credentials
//!   themselves are not kept). Successes and failures have separate bounded caches: a flood of
//!   made-up passwords fills and clears only the failure cache, never evicting a real client.
//! - **One verification at a time** ([`MAX_CONCURRENT_VERIFICATIONS`]) on a blocking thread: a
//!   flood of distinct wrong passwords costs the agent at most that much CPU, and cached
//!   clients are answered without waiting for it.
//! - An unknown user costs a verification against a dummy hash too, so timing tells nothing of
//!   which users exist. Every refusal is the same `401` (no hint of what was wrong).
//!
//! `/livez` and `/readyz` stay open: the kubelet probes them without credentials, and they
//! reveal nothing but "the agent runs".

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use tokio::sync::Semaphore;

/// Paths answered without credentials (the kubelet's probes).
pub const OPEN_PATHS: [&str; 2] = ["/livez", "/readyz"];
/// Distinct verified credentials remembered.
pub const VERIFIED_CACHE_CAPACITY: usize = 256;
/// Distinct refused credentials remembered (cleared whole when full).
pub const REFUSED_CACHE_CAPACITY: usize = 4096;
/// bcrypt verifications running at once.
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 1;
/// Verified against for an unknown user (cost 10, as htpasswd's default), so that refusing an
/// unknown user takes as long as refusing a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| bcrypt::hash("codex-sentinel", 10).expect("bcrypt of a short string"));

/// Checks credentials; shared by every connection.
pub struct Authenticator {
    users: BTreeMap<String, String>,
    tokens: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    refused: Mutex<HashSet<[u8; 32]>>,
    verifier: Semaphore,
    verifications: AtomicU64,
}

/// What a request presented.
enum Presented<'a> {
    Basic { user: String, password: String },
    Bearer(&'a str),
}

impl Authenticator {
    /// `users`: user → bcrypt hash; `tokens`: name → bcrypt hash of the token.
    pub fn new(users: BTreeMap<String, String>, tokens: BTreeMap<String, String>) -> Self {
        Authenticator {
            users,
            tokens,
            verified: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashSet::new()),
            verifier: Semaphore::new(MAX_CONCURRENT_VERIFICATIONS),
            verifications: AtomicU64::new(0),
        }
    }

    /// bcrypt verifications run so far (cache misses).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether the `Authorization` header's value grants access.
    pub async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = parse(value) else {
            return false;
        };
        let key = cache_key(value.as_bytes());
        if self.verified.lock().expect("cache").contains(&key) {
            return true;
        }
        if self.refused.lock().expect("cache").contains(&key) {
            return false;
        }
        // Only one verification at a time; a waiter may find its answer cached meanwhile.
        let Ok(_permit) = self.verifier.acquire().await else {
            return false;
        };
        if self.verified.lock().expect("cache").contains(&key) {
            return true;
        }
        if self.refused.lock().expect("cache").contains(&key) {
            return false;
        }
        // (secret, hash, whether a match grants access): an unknown user is verified against
        // the dummy hash and refused whatever the result.
        let checks: Vec<(String, String, bool)> = match &presented {
            Presented::Basic { user, password } => match self.users.get(user) {
                Some(hash) => vec![(password.clone(), hash.clone(), true)],
                None => vec![(password.clone(), DUMMY_HASH.clone(), false)],
            },
            Presented::Bearer(token) => self
                .tokens
                .values()
                .map(|hash| (token.to_string(), hash.clone(), true))
                .collect(),
        };
        let count = checks.len() as u64;
        let ok = tokio::task::spawn_blocking(move || {
            checks.iter().any(|(secret, hash, grants)| {
                bcrypt::verify(secret, hash).unwrap_or(false) && *grants
            })
        })
        .await
        .unwrap_or(false);
        self.verifications.fetch_add(count, Ordering::Relaxed);
        let (cache, capacity) = if ok {
            (&self.verified, VERIFIED_CACHE_CAPACITY)
        } else {
            (&self.refused, REFUSED_CACHE_CAPACITY)
        };
        let mut cache = cache.lock().expect("cache");
        if cache.len() >= capacity {
            cache.clear();
        }
        cache.insert(key);
        ok
    }
}

/// `Basic base64(user:password)` or `Bearer token`; the scheme in any case.
fn parse(value: &HeaderValue) -> Option<Presented<'_>> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some(Presented::Basic {
            user: user.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Some(Presented::Bearer(rest))
    } else {
        None
    }
}

fn cache_key(authorization: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, authorization);
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The router layer: every path but [`OPEN_PATHS`] needs credentials.
pub async fn require(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path())
        || auth
            .allows(request.headers().get(header::AUTHORIZATION))
            .await
    {
        return next.run(request).await;
    }
    unauthorized()
}

/// The one refusal: the same for a missing, malformed or wrong credential.
fn unauthorized() -> Response {
    let mut r = Response::new(axum::body::Body::from(r#"{"error":"unauthorized"}"#));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="codex-sentinel", charset="UTF-8""#),
    );
    r
}
