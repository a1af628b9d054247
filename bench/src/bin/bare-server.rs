//! The baseline: a tonic server implementing `VerificationService.CheckCoverage` with a
//! constant answer, built like the backend's (same tonic, same runtime), so the difference
//! between the two is the work of a check, not the stack. Its throughput is the most this
//! machine's gRPC stack can give on one core. With `--ca` it serves mutual TLS through the
//! backend's own acceptor, as the backend does; without, plain text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bhyt_verify::tls::{HandshakeFailure, ServerTls, TlsSettings, serve_incoming};

use bhyt_proto::v1::verification_service_server::{VerificationService, VerificationServiceServer};
use bhyt_proto::v1::{
    BatchItemResult, CacheInfo, CacheStatus, CheckCoverageRequest, CheckCoverageResponse, Coverage,
    Date, IssuePresenceChallengeRequest, LocalizedText, PresenceChallenge, ResultCode,
};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50052")]
    listen: SocketAddr,
    /// Mutual TLS, with the backend's own acceptor (src/tls): the CA clients' certificates
    /// chain to, the server's certificate and key, the CRL directory. Without them, plain text.
    #[arg(long, requires_all = ["cert", "key", "crl_dir"])]
    ca: Option<PathBuf>,
    #[arg(long, requires = "ca")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "ca")]
    key: Option<PathBuf>,
    #[arg(long, requires = "ca")]
    crl_dir: Option<PathBuf>,
}

struct Bare(CheckCoverageResponse);

type BatchStream = Pin<Box<dyn Stream<Item = Result<BatchItemResult, Status>> + Send>>;

#[tonic::async_trait]
impl VerificationService for Bare {
    async fn check_coverage(
        &self,
        request: Request<CheckCoverageRequest>,
    ) -> Result<Response<CheckCoverageResponse>, Status> {
        let mut answer = self.0.clone();
        answer.request_id = request.into_inner().request_id;
        Ok(Response::new(answer))
    }

    async fn issue_presence_challenge(
        &self,
        _request: Request<IssuePresenceChallengeRequest>,
    ) -> Result<Response<PresenceChallenge>, Status> {
        Err(Status::unimplemented(
            "the baseline answers single checks only",
        ))
    }

    type CheckCoverageBatchStream = BatchStream;

    async fn check_coverage_batch(
        &self,
        _request: Request<Streaming<CheckCoverageRequest>>,
    ) -> Result<Response<BatchStream>, Status> {
        Err(Status::unimplemented(
            "the baseline answers single checks only",
        ))
    }
}

/// An answer of the size and shape the backend sends for a valid card.
fn constant_answer() -> CheckCoverageResponse {
    let date = |year, month, day| Some(Date { year, month, day });
    CheckCoverageResponse {
        request_id: String::new(),
        result: ResultCode::CardValid as i32,
        source_result_code: "000".into(),
        usable: true,
        message: Some(LocalizedText {
            vi: "Thẻ BHYT còn giá trị sử dụng.".into(),
            en: "The BHYT card is valid.".into(),
        }),
        coverage: Some(Coverage {
            card_number: "DN4010123456789".into(),
            social_insurance_number: "0123456789".into(),
            category: "DN".into(),
            benefit_level: 4,
            benefit_percent: 80,
            benefit_description: "80% within the benefit list".into(),
            valid_from: date(2025, 1, 1),
            valid_to: date(2026, 12, 31),
            primary_care_facility: "01821".into(),
            primary_care_is_this_facility: true,
            area_code: String::new(),
            five_year_date: date(2027, 6, 30),
            issuing_office: "BHXH Hà Nội".into(),
            new_card: None,
        }),
        cache: Some(CacheInfo {
            status: CacheStatus::Hit as i32,
            age_seconds: 1,
            stale: false,
        }),
        audit_record_id: "w-0000000000000000:1".into(),
        checked_at: Some(prost_types::Timestamp {
            seconds: 1_760_000_000,
            nanos: 0,
        }),
        source: "registry".into(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same server settings as the backend's (src/server.rs), so only the work differs.
    let router = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(512)
        .load_shed(true)
        .timeout(Duration::from_secs(10))
        .add_service(VerificationServiceServer::new(Bare(constant_answer())));
    let listener = TcpListener::bind(args.listen).await?;
    let (Some(ca_cert), Some(server_cert), Some(server_key), Some(crl_dir)) =
        (args.ca, args.cert, args.key, args.crl_dir)
    else {
        // No Nagle delay, as on the backend's plain-text path.
        let incoming = TcpListenerStream::new(listener).map(|tcp| {
            tcp.inspect(|tcp| {
                let _ = tcp.set_nodelay(true);
            })
        });
        router.serve_with_incoming(incoming).await?;
        return Ok(());
    };
    // The backend's TLS acceptor and settings (TLS 1.3 only, client certificates checked
    // against the CA and the CRLs at the handshake); a refused handshake is only dropped here.
    let tls = ServerTls::load(TlsSettings {
        ca_cert,
        server_cert,
        server_key,
        crl_dir,
        allow_tls12: false,
        crl_reload: Duration::from_secs(3600),
        handshake_timeout: Duration::from_secs(10),
    })?;
    let (failures, mut refused) = mpsc::channel::<HandshakeFailure>(64);
    tokio::spawn(async move { while refused.recv().await.is_some() {} });
    router
        .serve_with_incoming(serve_incoming(listener, tls, failures))
        .await?;
    Ok(())
}
