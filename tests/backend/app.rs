//! A backend started in-process for a test: real gRPC over TCP on port 0, real databases, and
//! the operator endpoints for its metrics.

use std::net::SocketAddr;
use std::path::Path;

use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{VerifyIntegrityRequest, VerifyIntegrityResponse};
use bhyt_verify::config::Config;
use bhyt_verify::server::App;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A configuration for tests: everything under `data_dir`, no Redis unless set, checkpoints
/// every second so tail checks see them quickly.
pub fn config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.data_dir = data_dir.to_path_buf();
    config.audit.checkpoint_interval_secs = 1;
    // These tests are about the service's logic; mutual TLS has tests of its own (tls.rs).
    config.tls.enabled = false;
    config.tls.dev_plaintext = true;
    // Generous: on a loaded 2-core machine a slow Redis reply must not look like an outage.
    config.cache.redis_timeout_ms = 2000;
    config
}

pub struct TestBackend {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestBackend {
    pub async fn start(config: Config) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let app = App::start(config).await.expect("backend starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(grpc, http, async {
                let _ = stopped.await;
            })
            .await
            .expect("backend serves");
        });
        Self {
            grpc: grpc_addr,
            http: http_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn verification(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::new(self.channel().await)
    }

    pub async fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel().await)
    }

    /// The audit log's integrity check over every chain.
    pub async fn integrity(&self) -> VerifyIntegrityResponse {
        self.audit()
            .await
            .verify_integrity(VerifyIntegrityRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    /// GET an operator endpoint; returns (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The sum of a Prometheus metric's samples whose line contains every `labels` fragment.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, body) = self.http_get("/metrics").await;
        crate::support::metric_in(&body, name, labels)
    }

    /// Stops serving; the audit log commits its queue and signs its closing checkpoint.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
