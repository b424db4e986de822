//! An OTLP metrics receiver for tests, built on the `opentelemetry-proto` crate's generated
//! types: a tonic server for gRPC, an axum route with prost decoding (gzip aware) for
//! HTTP/protobuf. It records every request with its headers, and can misbehave on demand.
#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use prost::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Grpc,
    Http,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// HTTP status (HTTP) or UNAVAILABLE (gRPC), nothing recorded.
    Fail(u16),
    /// Answers after this long.
    Slow(Duration),
    /// Records the request, then answers success with a partial success that rejected this
    /// many data points, with [`PARTIAL_SUCCESS_MESSAGE`] repeated to [`PARTIAL_SUCCESS_LEN`]
    /// bytes (a long reason: the agent must log it bounded).
    PartialSuccess(i64),
}

/// The reason a [`Mode::PartialSuccess`] answer gives, repeated.
pub const PARTIAL_SUCCESS_MESSAGE: &str = "metric name too long for this backend; ";
/// The length of that reason in bytes.
pub const PARTIAL_SUCCESS_LEN: usize = 40 * PARTIAL_SUCCESS_MESSAGE.len();

/// The answer of a receiver in `mode` after a request was recorded.
fn response(mode: Mode) -> ExportMetricsServiceResponse {
    match mode {
        Mode::PartialSuccess(rejected) => ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: PARTIAL_SUCCESS_MESSAGE.repeat(40),
            }),
        },
        _ => ExportMetricsServiceResponse::default(),
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case header (or gRPC metadata) names with their values.
    pub headers: Vec<(String, String)>,
    pub request: ExportMetricsServiceRequest,
    /// Bytes on the wire (HTTP body as sent; gRPC: the encoded message).
    pub wire_bytes: usize,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        self.request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics().find(|m| m.name == name)
    }

    pub fn resource_attr(&self, key: &str) -> Option<String> {
        self.request
            .resource_metrics
            .first()?
            .resource
            .as_ref()?
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(string_value)
    }
}

pub fn string_value(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

/// Attribute `key` of a data point's attributes.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(string_value)
}

pub struct Receiver {
    pub port: u16,
    pub records: Arc<Mutex<Vec<Received>>>,
    pub mode: Arc<Mutex<Mode>>,
    /// Requests answered with an error (Fail/Slow modes).
    pub refused: Arc<Mutex<u64>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct State {
    records: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    refused: Arc<Mutex<u64>>,
}

impl State {
    async fn behave(&self) -> Result<(), u16> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Ok | Mode::PartialSuccess(_) => Ok(()),
            Mode::Fail(code) => {
                *self.refused.lock().unwrap() += 1;
                Err(code)
            }
            Mode::Slow(d) => {
                *self.refused.lock().unwrap() += 1;
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

struct Grpc(State);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        if let Err(code) = self.0.behave().await {
            return Err(tonic::Status::unavailable(format!("test receiver: {code}")));
        }
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let req = request.into_inner();
        self.0.records.lock().unwrap().push(Received {
            headers,
            wire_bytes: req.encoded_len(),
            request: req,
            at: Instant::now(),
        });
        let mode = *self.0.mode.lock().unwrap();
        Ok(tonic::Response::new(response(mode)))
    }
}

async fn http_export(
    axum::extract::State(state): axum::extract::State<State>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    if let Err(code) = state.behave().await {
        return (axum::http::StatusCode::from_u16(code).unwrap(), Vec::new());
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let raw = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gzip body");
        out
    } else {
        body.to_vec()
    };
    let request = ExportMetricsServiceRequest::decode(&raw[..]).expect("protobuf body");
    state.records.lock().unwrap().push(Received {
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        request,
        wire_bytes: body.len(),
        at: Instant::now(),
    });
    let mode = *state.mode.lock().unwrap();
    (axum::http::StatusCode::OK, response(mode).encode_to_vec())
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:`port` on its own thread and runtime.
    pub fn start(proto: Proto, port: u16, mode: Mode) -> Receiver {
        let state = State {
            records: Arc::new(Mutex::new(Vec::new())),
            mode: Arc::new(Mutex::new(mode)),
            refused: Arc::new(Mutex::new(0)),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
                match proto {
                    Proto::Grpc => {
                        let svc = MetricsServiceServer::new(Grpc(st))
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                        let incoming = tonic::transport::server::TcpIncoming::bind(addr)
                            .expect("bind gRPC receiver");
                        ready_tx.send(()).unwrap();
                        tonic::transport::Server::builder()
                            .add_service(svc)
                            .serve_with_incoming_shutdown(incoming, async {
                                let _ = stopped.await;
                            })
                            .await
                            .unwrap();
                    }
                    Proto::Http => {
                        let app = axum::Router::new()
                            .route("/v1/metrics", axum::routing::post(http_export))
                            .with_state(st);
                        let listener = tokio::net::TcpListener::bind(addr)
                            .await
                            .expect("bind HTTP receiver");
                        ready_tx.send(()).unwrap();
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async {
                                let _ = stopped.await;
                            })
                            .await
                            .unwrap();
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver started");
        Receiver {
            port,
            records: state.records,
            mode: state.mode,
            refused: state.refused,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn snapshot(&self) -> Vec<Received> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over everything received; panics with `what` after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let recs = self.snapshot();
            if pred(&recs) {
                return recs;
            }
            assert!(
                Instant::now() < deadline,
                "receiver: {what} not seen within {timeout:?} ({} requests); last: {:?}",
                recs.len(),
                recs.last().map(|r| r
                    .metrics()
                    .map(|m| format!("{} {:?}", m.name, m.data))
                    .collect::<Vec<_>>())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
