//! Serving the router over TCP with the limits a hostile network needs.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection limit: a
//! half-sent header or an idle socket stayed open forever, and thousands of them got the agent
//! OOM-killed. This is the one place connections are accepted, in this order:
//!
//! ```text
//!  listener ─▶ limits (connection slots, probe reserve) ─▶ TLS (optional) ─▶ hyper HTTP/1 ─▶ router (auth)
//! ```
//!
//! - **Slots.** At most `max_connections` connections are served at once. One more beyond that
//!   is answered `503` and closed at once, without reading it.
//! - **Probe reserve.** [`PROBE_RESERVE`] more connections are kept for the kubelet: they answer
//!   only `/livez` and `/readyz` (anything else: `503`), one request each, with a short header
//!   deadline. A full server therefore never fails its liveness probe and never becomes a
//!   restart loop.
//! - **Header deadline.** A client has `header_read_timeout` to send a request's headers; the same
//!   deadline bounds the idle wait for the next request on a kept-alive connection.
//! - **Stall deadline.** A connection on which nothing is read or written for [`IO_TIMEOUT`]
//!   (a body that trickles, a client that does not read its answer) is closed.
//!
//! - **TLS.** When configured ([`Server::tls`]), the handshake runs under the connection's slot
//!   and must finish within the header deadline; [`serve_connection`] then takes the TLS
//!   session like any other `AsyncRead + AsyncWrite`. A refused connection still gets its
//!   `503` in plain text (refusing must not cost a handshake): a TLS client sees a failed
//!   handshake, which is as clear.
//!
//! Authentication is a layer of the router ([`super::auth`]); it changes none of the limits.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::logging::RateLimit;

/// The configuration's defaults (`healthMonitoring.endpoints`) are the listener's defaults.
pub use crate::config::{DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS};
/// Connections kept for `/livez` and `/readyz` beyond `max_connections`.
pub const PROBE_RESERVE: usize = 8;
/// Header deadline of a reserved (probe) connection: the kubelet sends its request at once.
pub const PROBE_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// No byte read or written for this long closes a connection, whatever it is doing.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Paths a reserved connection answers.
pub const PROBE_PATHS: [&str; 2] = ["/livez", "/readyz"];
/// Pause after a failed `accept` (out of file descriptors): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The answer of a refused connection, written without reading the request.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 56\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":\"too many connections to the health endpoints\"}";

/// The limits of [`Server`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub probe_reserve: usize,
    pub header_read_timeout: Duration,
    pub probe_header_read_timeout: Duration,
    pub io_timeout: Duration,
}

impl Limits {
    pub fn from_config(ep: &crate::config::Endpoints) -> Self {
        Limits {
            max_connections: ep.max_connections.max(1),
            header_read_timeout: Duration::from_millis(ep.header_read_timeout.max(1)),
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            probe_reserve: PROBE_RESERVE,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            probe_header_read_timeout: PROBE_HEADER_READ_TIMEOUT,
            io_timeout: IO_TIMEOUT,
        }
    }
}

/// The HTTP server: a bound listener and its limits. `Server::new(listener).limits(l).serve(app, stop)`.
pub struct Server {
    listener: TcpListener,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Which pool a connection took its slot from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pool {
    Main,
    ProbeReserve,
}

impl Server {
    pub fn new(listener: TcpListener) -> Self {
        Server {
            listener,
            limits: Limits::default(),
            tls: None,
        }
    }

    /// Serves HTTPS with this configuration instead of plain HTTP.
    pub fn tls(mut self, config: Option<Arc<rustls::ServerConfig>>) -> Self {
        self.tls = config.map(tokio_rustls::TlsAcceptor::from);
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Accepts and serves until `shutdown`, then lets open connections finish their current
    /// request (the caller bounds how long it waits).
    pub async fn serve(self, app: Router, shutdown: CancellationToken) {
        let Server {
            listener,
            limits,
            tls,
        } = self;
        let main = Arc::new(Semaphore::new(limits.max_connections));
        let reserve = Arc::new(Semaphore::new(limits.probe_reserve));
        let mut refused_log = RateLimit::new(Duration::from_secs(10));
        let mut accept_log = RateLimit::new(Duration::from_secs(10));
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        if let Some(suppressed) = accept_log.allow() {
                            tracing::warn!(error = %e, suppressed, "cannot accept an HTTP connection (the agent is short of a resource such as file descriptors); pausing accepts briefly");
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let (permit, pool) = match main.clone().try_acquire_owned() {
                Ok(p) => (p, Pool::Main),
                Err(_) => match reserve.clone().try_acquire_owned() {
                    Ok(p) => (p, Pool::ProbeReserve),
                    Err(_) => {
                        refuse(stream);
                        if let Some(suppressed) = refused_log.allow() {
                            tracing::warn!(%peer, max_connections = limits.max_connections, suppressed, "HTTP connection refused: connection limit reached");
                        }
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (app, limits, shutdown) = (app.clone(), limits.clone(), shutdown.clone());
            match tls.clone() {
                None => {
                    tokio::spawn(serve_connection(
                        stream, peer, app, pool, limits, permit, shutdown,
                    ));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        let deadline = match pool {
                            Pool::Main => limits.header_read_timeout,
                            Pool::ProbeReserve => limits.probe_header_read_timeout,
                        };
                        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(session)) => {
                                serve_connection(session, peer, app, pool, limits, permit, shutdown)
                                    .await
                            }
                            // A scanner, a plain-HTTP client or a wrong CA: the client's problem.
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        // Every connection gives its permit back when it closes: holding all of them again
        // means every connection has finished.
        let _ = main
            .acquire_many(limits.max_connections as u32)
            .await
            .map(|p| p.forget());
    }
}

/// Answers `503` and closes, without reading: refusing must cost almost nothing.
fn refuse(stream: tokio::net::TcpStream) {
    let _ = stream.try_write(REFUSAL);
    // Dropping closes it; unread request bytes make the kernel reset it, which is as clear.
}

/// Serves one connection over any byte stream (a TCP socket, later a TLS session).
async fn serve_connection<IO>(
    io: IO,
    peer: std::net::SocketAddr,
    app: Router,
    pool: Pool,
    limits: Limits,
    _permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(StallDeadline::new(io, limits.io_timeout));
    // Handlers may ask who is calling (`ConnectInfo`): the maintenance endpoint throttles per
    // client address.
    let app = app.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let result = match pool {
        Pool::Main => {
            http.header_read_timeout(limits.header_read_timeout);
            let conn = http.serve_connection(io, TowerToHyperService::new(app));
            drive(conn, shutdown).await
        }
        Pool::ProbeReserve => {
            http.header_read_timeout(limits.probe_header_read_timeout)
                .keep_alive(false);
            let full = TowerToHyperService::new(app);
            let probes_only = hyper::service::service_fn(move |req: Request<Incoming>| {
                let full = full.clone();
                async move {
                    if PROBE_PATHS.contains(&req.uri().path()) {
                        hyper::service::Service::call(&full, req).await
                    } else {
                        Ok(busy())
                    }
                }
            });
            drive(http.serve_connection(io, probes_only), shutdown).await
        }
    };
    if let Err(e) = result {
        // Timeouts and resets are what a hostile or broken client earns; not worth a warning.
        tracing::debug!(error = %e, "HTTP connection closed with an error");
    }
}

/// Runs a connection; at shutdown, lets it finish the request in progress and closes it.
async fn drive<C>(conn: C, shutdown: CancellationToken) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>> + GracefulConnection,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = shutdown.cancelled() => conn.as_mut().begin_graceful_shutdown(),
    }
    conn.await
}

/// hyper's connection types each have their own `graceful_shutdown`.
trait GracefulConnection {
    fn begin_graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> GracefulConnection for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// What a reserved connection answers for anything but the probe paths.
fn busy() -> Response<Body> {
    let mut r = Response::new(Body::from(
        r#"{"error":"too many connections to the health endpoints; only /livez and /readyz are answered"}"#,
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

/// A stream that fails with `TimedOut` once neither a read nor a write has made progress for
/// `limit` while someone waits on it.
struct StallDeadline<IO> {
    inner: IO,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> StallDeadline<IO> {
    fn new(inner: IO, limit: Duration) -> Self {
        StallDeadline {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.limit);
    }

    /// After the inner stream said `Pending`: whether the deadline has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn stall_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no progress on the connection")
}

impl<IO: AsyncRead + Unpin> AsyncRead for StallDeadline<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(stall_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StallDeadline<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(stall_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(stall_error())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_silent_stream_fails_after_the_stall_deadline() {
        let (a, _b) = tokio::io::duplex(64);
        let mut s = StallDeadline::new(a, LIMIT);
        let t0 = Instant::now();
        let err = s.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= LIMIT, "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn progress_moves_the_stall_deadline() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = StallDeadline::new(a, LIMIT);
        let t0 = Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(LIMIT / 2).await;
            b.write_all(b"x").await.unwrap();
            s.read_exact(&mut [0u8; 1]).await.unwrap();
        }
        // Three reads spread over 1.5 limits all succeeded; silence then ends it.
        assert!(t0.elapsed() >= LIMIT * 3 / 2);
        let err = s.read(&mut [0u8; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
