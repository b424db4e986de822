//! A counting sink for footprint runs (`scripts/export-footprint.sh`): an OTLP gRPC receiver,
//! an OTLP HTTP/protobuf receiver and a StatsD UDP socket, built on the same
//! `opentelemetry-proto` types as the tests. Every second it rewrites `OUT` with the requests
//! and bytes received so far, as JSON.
//!
//! Usage: `export_sink GRPC_PORT HTTP_PORT STATSD_PORT OUT`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

#[derive(Default)]
struct Counts {
    grpc_requests: AtomicU64,
    grpc_bytes: AtomicU64,
    http_requests: AtomicU64,
    http_bytes: AtomicU64,
    statsd_datagrams: AtomicU64,
    statsd_bytes: AtomicU64,
}

struct Grpc(Arc<Counts>);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.grpc_requests.fetch_add(1, Ordering::Relaxed);
        self.0
            .grpc_bytes
            .fetch_add(request.get_ref().encoded_len() as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, grpc_port, http_port, statsd_port, out] = &args[..] else {
        eprintln!("usage: export_sink GRPC_PORT HTTP_PORT STATSD_PORT OUT");
        std::process::exit(2);
    };
    let counts = Arc::new(Counts::default());
    let grpc_addr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    let c = counts.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(
                MetricsServiceServer::new(Grpc(c))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve(grpc_addr)
            .await
            .unwrap();
    });
    let c = counts.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(move |body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                c.http_requests.fetch_add(1, Ordering::Relaxed);
                c.http_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                ExportMetricsServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{http_port}"))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let udp = tokio::net::UdpSocket::bind(format!("127.0.0.1:{statsd_port}"))
        .await
        .unwrap();
    let c = counts.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buf).await {
            c.statsd_datagrams.fetch_add(1, Ordering::Relaxed);
            c.statsd_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let json = format!(
            "{{\"grpc_requests\":{},\"grpc_bytes\":{},\"http_requests\":{},\"http_bytes\":{},\"statsd_datagrams\":{},\"statsd_bytes\":{}}}\n",
            counts.grpc_requests.load(Ordering::Relaxed),
            counts.grpc_bytes.load(Ordering::Relaxed),
            counts.http_requests.load(Ordering::Relaxed),
            counts.http_bytes.load(Ordering::Relaxed),
            counts.statsd_datagrams.load(Ordering::Relaxed),
            counts.statsd_bytes.load(Ordering::Relaxed),
        );
        let tmp = format!("{out}.tmp");
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(&tmp, out).unwrap();
    }
}
