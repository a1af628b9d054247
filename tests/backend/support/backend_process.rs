//! The real `bhyt-verify serve` as a process of its own, plain-text gRPC on a free port, for
//! tests about processes: overload (the load generator must not share the server's runtime) and
//! replicas (several servers on one Redis and one PostgreSQL).
//!
//! Configured through `BHYT_*` variables as an operator would; killed with the test process
//! however it ends (an [`ExitGuard`]), stopped gracefully by [`BackendProcess::stop`].

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

use super::{ExitGuard, free_port};

pub struct BackendProcess {
    pub grpc_port: u16,
    pub http_port: u16,
    child: Option<Child>,
    guard: Option<ExitGuard>,
}

impl BackendProcess {
    /// Serves from `data_dir` with the test defaults (plain text, checkpoints every second, no
    /// station limits in the way, a patient Redis timeout), then `env`, which wins.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let (grpc_port, http_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
            .arg("serve")
            .env("BHYT_DATA_DIR", data_dir)
            .env("BHYT_LISTEN", format!("127.0.0.1:{grpc_port}"))
            .env("BHYT_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("BHYT_TLS__ENABLED", "false")
            .env("BHYT_TLS__DEV_PLAINTEXT", "true")
            .env("BHYT_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")
            .env("BHYT_CACHE__REDIS_TIMEOUT_MS", "2000")
            .env("BHYT_ABUSE__STATION_RATE_PER_SEC", "1000000")
            .env("BHYT_ABUSE__STATION_BURST", "1000000")
            .env("BHYT_ABUSE__DISTINCT_SUBJECTS_PER_WINDOW", "1000000")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bhyt-verify starts");
        let guard = ExitGuard::spawn(Command::new("sh"), &format!("kill -9 {}", child.id()));
        let mut backend = Self {
            grpc_port,
            http_port,
            child: Some(child),
            guard: Some(guard),
        };
        super::wait_for("the backend's ports", || {
            let child = backend.child.as_mut().expect("running");
            assert!(
                child.try_wait().unwrap().is_none(),
                "bhyt-verify exited at start-up (a port taken?)"
            );
            std::net::TcpStream::connect(("127.0.0.1", grpc_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        backend
    }

    /// A new HTTP/2 connection to the gRPC port.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc_port))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("the backend accepts connections")
    }

    pub async fn verification(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::new(self.channel().await)
    }

    /// GET an operator endpoint; (status code, body).
    pub async fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// The sum of a metric's samples whose line contains every `labels` fragment.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, body) = self.http_get("/metrics").await.expect("/metrics");
        metric_in(&body, name, labels)
    }

    /// SIGTERM, then waits (at most 30 s) for the process to finish its calls, commit its audit
    /// queue and sign its closing checkpoint.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "bhyt-verify did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(guard) = self.guard.take() {
            guard.cancel();
        }
    }
}

/// The sum of a metric's samples in a Prometheus exposition.
pub fn metric_in(body: &str, name: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Reaped: its pid may be reused, so the guard must not signal it.
        if let Some(guard) = self.guard.take() {
            guard.cancel();
        }
    }
}
