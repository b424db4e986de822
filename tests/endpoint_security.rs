//! TLS and authentication of the HTTP endpoints (the web config file): a real TLS handshake
//! against a CA made here, with reqwest and curl; 401 for every wrong or missing credential,
//! alike; `/livez` and `/readyz` open; bcrypt run once per distinct credential; a missing file
//! is a configuration error naming the file (exit 2).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use base64::Engine;
use codex_sentinel::server::auth::Authenticator;
use common::{agent_bin, free_port};

/// bcrypt's lowest cost keeps the tests fast; the verification path is the same.
const COST: u32 = 4;
const PASSWORD: &str = "s3cret-scrape";
const TOKEN: &str = "ci-token-0123456789";

/// A CA and a server certificate for `localhost` and 127.0.0.1, written as PEM files
/// (`ca.crt`, `tls.crt`, `tls.key`).
struct Pki {
    ca_pem: String,
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "codex-sentinel test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
    }
}

/// A web config file with TLS (relative paths: resolved against the file's directory), one
/// basic-auth user and one bearer token.
fn write_web_config(dir: &Path) -> PathBuf {
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: {}\nbearer_tokens:\n  ci: {}\n",
            bcrypt::hash(PASSWORD, COST).unwrap(),
            bcrypt::hash(TOKEN, COST).unwrap()
        ),
    )
    .unwrap();
    file
}

struct Running {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_command(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("CODEX_HEALTH_PORT", port.to_string())
        .env("ENABLE_CODEX_HEALTH_MONITORING", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn client(ca_pem: &str) -> reqwest::Client {
    // reqwest is linked without a TLS provider of its own (the agent's is ring).
    codex_sentinel::util::install_tls_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// Starts the agent with TLS and auth from `--web.config.file`; waits for `/readyz` over HTTPS.
async fn start_secured() -> (Running, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let web = write_web_config(dir.path());
    let port = free_port();
    let child = agent_command(dir.path(), port)
        .arg("--web.config.file")
        .arg(&web)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running {
        child,
        port,
        _dir: dir,
    };
    let c = client(&pki.ca_pem);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = c
            .get(format!("https://localhost:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "agent not ready over HTTPS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (running, pki)
}

async fn get(c: &reqwest::Client, url: &str, auth: Option<&str>) -> (u16, String, Option<String>) {
    let mut req = c.get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.text().await.unwrap(), challenge)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn https_with_basic_auth_and_bearer_tokens() {
    let (agent, pki) = start_secured().await;
    let c = client(&pki.ca_pem);
    let base = format!("https://localhost:{}", agent.port);

    // The kubelet's probes need no credentials.
    for path in ["/livez", "/readyz"] {
        assert_eq!(
            get(&c, &format!("{base}{path}"), None).await.0,
            200,
            "{path}"
        );
    }
    // Right credentials, either kind.
    let good = basic("prometheus", PASSWORD);
    let (code, body, _) = get(&c, &format!("{base}/health/codex"), Some(&good)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\""), "{body}");
    let (code, body, _) = get(
        &c,
        &format!("{base}/metrics"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("codex_"), "{body}");

    // Every refusal is the same 401: no hint of which part was wrong.
    let refusals = [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("nobody", PASSWORD)),
        Some(basic("prometheus", "")),
        Some("Basic !!!not-base64".to_string()),
        Some("Bearer wrong-token".to_string()),
        Some(format!("Digest {TOKEN}")),
    ];
    let mut answers = Vec::new();
    for auth in &refusals {
        for path in ["/health/codex", "/health/codex/status", "/metrics"] {
            let (code, body, challenge) = get(&c, &format!("{base}{path}"), auth.as_deref()).await;
            assert_eq!(code, 401, "{path} with {auth:?}");
            answers.push((body, challenge));
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].0, r#"{"error":"unauthorized"}"#);
    assert_eq!(
        answers[0].1.as_deref(),
        Some(r#"Basic realm="codex-sentinel", charset="UTF-8""#)
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = common::http_get(&format!("http://127.0.0.1:{}/livez", agent.port));
    assert!(!matches!(plain, Ok((200, _))), "{plain:?}");
}

#[tokio::test]
async fn curl_verifies_the_certificate_and_sends_credentials() {
    let (agent, _pki) = start_secured().await;
    let dir = agent._dir.path();
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dir.join("ca.crt"))
            .args(args)
            .output()
            .expect("curl (Debian's curl package)");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let url = format!("https://localhost:{}/health/codex", agent.port);
    assert_eq!(
        curl(&["-u", &format!("prometheus:{PASSWORD}"), &url]),
        "200"
    );
    assert_eq!(curl(&["-u", "prometheus:nope", &url]), "401");
    assert_eq!(curl(&[&url]), "401");
    // Without the CA, curl refuses the certificate (no HTTP status at all).
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
}

#[tokio::test]
async fn each_distinct_credential_costs_one_bcrypt_verification() {
    let users = BTreeMap::from([("u".to_string(), bcrypt::hash(PASSWORD, COST).unwrap())]);
    let auth = Authenticator::new(users, BTreeMap::new());
    let good = HeaderValue::from_str(&basic("u", PASSWORD)).unwrap();
    let bad = HeaderValue::from_str(&basic("u", "guess")).unwrap();
    for _ in 0..50 {
        assert!(auth.allows(Some(&good)).await);
    }
    assert_eq!(
        auth.verifications(),
        1,
        "the good password is verified once"
    );
    for _ in 0..50 {
        assert!(!auth.allows(Some(&bad)).await);
    }
    assert_eq!(
        auth.verifications(),
        2,
        "a repeated wrong password is verified once"
    );
    // A flood of distinct wrong passwords, concurrently: each verified, one at a time, and
    // never evicting the good one.
    let auth = std::sync::Arc::new(auth);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..20 {
        let auth = auth.clone();
        flood.spawn(async move {
            let v = HeaderValue::from_str(&basic("u", &format!("guess-{i}"))).unwrap();
            auth.allows(Some(&v)).await
        });
    }
    while let Some(r) = flood.join_next().await {
        assert!(!r.unwrap());
    }
    assert_eq!(auth.verifications(), 22);
    assert!(auth.allows(Some(&good)).await);
    assert_eq!(
        auth.verifications(),
        22,
        "the good password is still cached"
    );
    // Neither a missing header nor an unparsable one costs a verification.
    assert!(!auth.allows(None).await);
    assert!(
        !auth
            .allows(Some(&HeaderValue::from_static("Basic %%%")))
            .await
    );
    assert_eq!(auth.verifications(), 22);
}

/// Runs the agent until it exits (it must, at once); returns (code, stderr).
fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_missing_or_unreadable_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();

    // The web config file itself, from the flag and from the variable.
    let missing = dir.path().join("no-such-web.yml");
    let mut cmd = agent_command(dir.path(), port);
    cmd.arg("--web.config.file").arg(&missing);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    let mut cmd = agent_command(dir.path(), port);
    cmd.env("CODEX_HEALTH_WEB_CONFIG_FILE", &missing);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("CODEX_HEALTH_WEB_CONFIG_FILE"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    // The key file it names is missing; then the certificate file is not a certificate.
    make_pki(dir.path());
    let web = write_web_config(dir.path());
    std::fs::rename(dir.path().join("tls.key"), dir.path().join("moved.key")).unwrap();
    let mut cmd = agent_command(dir.path(), port);
    cmd.arg("--web.config.file").arg(&web);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("tls.key").display().to_string()),
        "{stderr}"
    );
    std::fs::rename(dir.path().join("moved.key"), dir.path().join("tls.key")).unwrap();
    std::fs::write(dir.path().join("tls.crt"), "not a certificate\n").unwrap();
    let mut cmd = agent_command(dir.path(), port);
    cmd.arg("--web.config.file").arg(&web);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("tls.crt").display().to_string()),
        "{stderr}"
    );

    // A key the exporter toolkit has but we do not is refused by name; a hash is never printed.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.crt\n",
    )
    .unwrap();
    let mut cmd = agent_command(dir.path(), port);
    cmd.arg("--web.config.file").arg(&web);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("client_ca_file"), "{stderr}");
    std::fs::write(
        &web,
        "basic_auth_users:\n  prometheus: plain-text-password\n",
    )
    .unwrap();
    let mut cmd = agent_command(dir.path(), port);
    cmd.arg("--web.config.file").arg(&web);
    let (code, stderr) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("basic_auth_users.prometheus"), "{stderr}");
    assert!(!stderr.contains("plain-text-password"), "{stderr}");
}
