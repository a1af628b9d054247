//! Mutual TLS through the real stack: a private CA made by `bhyt-verify pki`, `ServerTls` and
//! `tls::serve_incoming` serving tonic's health service on 127.0.0.1:0, and real TLS clients
//! (tonic's own rustls connector, and a bare tokio-rustls client for TLS 1.2).
//!
//! An interceptor stands in for the handlers: it reads the `ConnectInfo` every call carries and
//! applies `tls::check_peer`, the per-call revocation and expiry check.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bhyt_verify::pki::{Issued, Pki, Validity};
use bhyt_verify::tls::{
    self, Claims, ConnectInfo, HandshakeFailure, HandshakeRefusal, Role, Serial, ServerTls,
    TlsSettings,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A CA in a temporary directory with the server's certificate and a station's.
struct Fixture {
    dir: tempfile::TempDir,
    pki: Pki,
    desk1: Issued,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(&dir.path().join("pki"), "test CA", Validity::days(30)).unwrap();
        pki.issue_server(
            "server",
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
            Validity::days(30),
        )
        .unwrap();
        let desk1 = pki
            .issue_client("desk-1", &station("desk-1"), Validity::days(30))
            .unwrap();
        Fixture { dir, pki, desk1 }
    }

    fn settings(&self, allow_tls12: bool) -> TlsSettings {
        let layout = self.pki.layout();
        TlsSettings {
            ca_cert: layout.ca_cert(),
            server_cert: layout.issued_cert("server"),
            server_key: layout.issued_key("server"),
            crl_dir: layout.crl_dir(),
            allow_tls12,
            crl_reload: Duration::from_millis(200),
            handshake_timeout: Duration::from_secs(1),
        }
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.pki.layout().ca_cert()).unwrap()
    }
}

fn station(id: &str) -> Claims {
    Claims::new(Role::Station, Some("01821".into()), Some(id.into())).unwrap()
}

struct TlsServer {
    addr: SocketAddr,
    tls: Arc<ServerTls>,
    failures: mpsc::Receiver<HandshakeFailure>,
    /// The ConnectInfo of every call the interceptor let through.
    seen: Arc<Mutex<Vec<ConnectInfo>>>,
    _stop: oneshot::Sender<()>,
}

async fn serve(settings: TlsSettings) -> TlsServer {
    let tls = ServerTls::load(settings).unwrap();
    tls.spawn_crl_watch();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, failures) = mpsc::channel(256);
    let incoming = tls::serve_incoming(listener, tls.clone(), report);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (revocations, log) = (tls.revocations().clone(), seen.clone());
    let per_call = move |request: Request<()>| -> Result<Request<()>, Status> {
        let peer = request
            .extensions()
            .get::<ConnectInfo>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no TLS peer"))?;
        tls::check_peer(&peer, &revocations, OffsetDateTime::now_utc())
            .map_err(|refusal| Status::unauthenticated(refusal.to_string()))?;
        log.lock().unwrap().push(peer);
        Ok(request)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(per_call))
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    TlsServer {
        addr,
        tls,
        failures,
        seen,
        _stop: stop,
    }
}

/// A tonic client over TLS (ring provider); `identity` is the client certificate, if any.
/// Lazy, so a refused handshake shows as the status of the first call.
fn client(
    server: &TlsServer,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> HealthClient<Channel> {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(config)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    HealthClient::new(channel)
}

fn pem_pair(issued: &Issued) -> Option<(&str, &str)> {
    Some((&issued.cert_pem, &issued.key_pem))
}

async fn check(client: &mut HealthClient<Channel>) -> Result<ServingStatus, Status> {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("a refused client gets an answer, not a hang")?;
    Ok(answer.into_inner().status())
}

/// The next reported handshake failure (a client may retry, so every failure seen until then
/// must have the same reason).
async fn next_failure(server: &mut TlsServer) -> HandshakeFailure {
    tokio::time::timeout(Duration::from_secs(5), server.failures.recv())
        .await
        .expect("a failed handshake is reported")
        .unwrap()
}

async fn assert_refused(
    server: &mut TlsServer,
    client: &mut HealthClient<Channel>,
    reason: HandshakeRefusal,
) {
    let status = check(client)
        .await
        .expect_err("the handshake must be refused");
    assert_refused_status(&status);
    let failure = next_failure(server).await;
    assert_eq!(failure.reason, reason, "{failure:?}");
    assert_eq!(failure.peer_addr.ip(), server.addr.ip());
    assert_ne!(
        failure.peer_addr.port(),
        server.addr.port(),
        "the client's address, not ours"
    );
    while let Ok(more) = server.failures.try_recv() {
        assert_eq!(more.reason, reason, "{more:?}");
    }
}

/// How a refused handshake reaches a client. In TLS 1.3 the client's side of the handshake
/// is over before the server has verified its certificate, so the refusal (a TLS alert)
/// arrives with the first call. gRPC's C core (Python grpcio) reports it as UNAVAILABLE;
/// tonic reports UNKNOWN "transport error" with the alert as its source (and UNAVAILABLE when
/// the refusal comes during connection set-up, as in TLS 1.2).
fn assert_refused_status(status: &Status) {
    let alert = format!("{:?}", std::error::Error::source(status)).contains("received fatal alert");
    assert!(
        status.code() == Code::Unavailable || (status.code() == Code::Unknown && alert),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_station_certificate_connects_and_its_identity_reaches_the_handler() {
    let fx = Fixture::new();
    let server = serve(fx.settings(false)).await;
    let mut desk = client(&server, &fx.ca_pem(), pem_pair(&fx.desk1));
    assert_eq!(check(&mut desk).await.unwrap(), ServingStatus::Serving);
    assert_eq!(check(&mut desk).await.unwrap(), ServingStatus::Serving);

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let peer = &seen[0];
    assert_eq!(peer.identity.role(), Role::Station);
    assert_eq!(peer.identity.facility(), Some("01821"));
    assert_eq!(peer.identity.station(), Some("desk-1"));
    assert_eq!(peer.identity.serial, fx.desk1.serial);
    assert_eq!(peer.peer_addr.ip(), server.addr.ip());
    let issued = CertificateDer::from_pem_slice(fx.desk1.cert_pem.as_bytes()).unwrap();
    assert_eq!(
        peer.peer_certificate, issued,
        "the end-entity certificate, as DER"
    );
    assert_eq!(
        seen[1].peer_addr, peer.peer_addr,
        "two calls, one connection"
    );
}

#[tokio::test]
async fn clients_without_a_good_certificate_are_refused_and_reported() {
    let fx = Fixture::new();
    let expired = fx
        .pki
        .issue_client(
            "desk-old",
            &station("desk-old"),
            Validity {
                not_before: OffsetDateTime::now_utc() - time::Duration::days(60),
                not_after: OffsetDateTime::now_utc() - time::Duration::days(1),
            },
        )
        .unwrap();
    let foreign = |name: &str| {
        Pki::init(&fx.dir.path().join(name), name, Validity::days(30))
            .unwrap()
            .issue_client("desk-1", &station("desk-1"), Validity::days(30))
            .unwrap()
    };
    let (foreign, impostor) = (foreign("foreign CA"), foreign("test CA"));
    let server_cert = std::fs::read_to_string(fx.pki.layout().issued_cert("server")).unwrap();
    let server_key = std::fs::read_to_string(fx.pki.layout().issued_key("server")).unwrap();
    let mut server = serve(fx.settings(false)).await;
    let ca = fx.ca_pem();

    let cases: [(Option<(&str, &str)>, HandshakeRefusal); 5] = [
        (None, HandshakeRefusal::NoClientCertificate),
        (pem_pair(&expired), HandshakeRefusal::CertificateExpired),
        (pem_pair(&foreign), HandshakeRefusal::UnknownIssuer),
        // Our CA's name, another key: refused by the signature, not by the name.
        (pem_pair(&impostor), HandshakeRefusal::BadSignature),
        // The server's own certificate lacks the clientAuth usage.
        (
            Some((&server_cert, &server_key)),
            HandshakeRefusal::WrongKeyUsage,
        ),
    ];
    for (identity, reason) in cases {
        let mut refused = client(&server, &ca, identity);
        assert_refused(&mut server, &mut refused, reason).await;
    }
    // None of this stopped the accept loop.
    let mut desk = client(&server, &ca, pem_pair(&fx.desk1));
    assert_eq!(check(&mut desk).await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "no refused client reached the handler"
    );
}

/// A bare TLS 1.2 client with a valid station certificate.
async fn tls12_handshake(
    fx: &Fixture,
    addr: SocketAddr,
) -> Result<rustls::ProtocolVersion, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fx.pki.layout().ca_cert()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(fx.desk1.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(fx.desk1.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    Ok(stream.get_ref().1.protocol_version().unwrap())
}

#[tokio::test]
async fn tls12_is_refused_unless_allowed() {
    let fx = Fixture::new();
    let mut strict = serve(fx.settings(false)).await;
    assert!(tls12_handshake(&fx, strict.addr).await.is_err());
    let failure = next_failure(&mut strict).await;
    assert_eq!(
        failure.reason,
        HandshakeRefusal::ProtocolVersion,
        "{failure:?}"
    );

    // The same client against `allow_tls12`: shows the refusal above comes from the switch.
    let lenient = serve(fx.settings(true)).await;
    assert_eq!(
        tls12_handshake(&fx, lenient.addr).await.unwrap(),
        rustls::ProtocolVersion::TLSv1_2
    );
}

#[tokio::test]
async fn a_silent_client_delays_nobody_and_is_dropped_at_the_timeout() {
    let fx = Fixture::new();
    let mut settings = fx.settings(false);
    settings.handshake_timeout = Duration::from_secs(3);
    let mut server = serve(settings).await;
    // Connects and never sends a ClientHello. Were handshakes run one at a time in the accept
    // loop, the station below would be served only after the silent client's timeout, which
    // would have been reported first.
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let mut desk = client(&server, &fx.ca_pem(), pem_pair(&fx.desk1));
    assert_eq!(check(&mut desk).await.unwrap(), ServingStatus::Serving);
    assert!(
        server.failures.try_recv().is_err(),
        "the station was served while the silent handshake was still pending"
    );
    let failure = next_failure(&mut server).await;
    assert_eq!(failure.reason, HandshakeRefusal::Timeout);
    assert_eq!(failure.peer_addr, silent_addr);
}

/// `bhyt-verify pki --dir DIR ...` as a separate process, as an operator runs it.
fn pki_cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("pki")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pki {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_certificate_revoked_while_connected_is_refused_on_its_next_call() {
    let fx = Fixture::new();
    let dir = fx.pki.layout().dir().to_owned();
    let issued = pki_cli(
        &dir,
        &[
            "issue",
            "--role",
            "station",
            "--facility",
            "01821",
            "--station",
            "desk-2",
        ],
    );
    let serial: Serial = issued
        .split_whitespace()
        .skip_while(|w| *w != "serial")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cert = std::fs::read_to_string(fx.pki.layout().issued_cert("desk-2")).unwrap();
    let key = std::fs::read_to_string(fx.pki.layout().issued_key("desk-2")).unwrap();

    let mut server = serve(fx.settings(false)).await;
    let ca = fx.ca_pem();
    let mut desk2 = client(&server, &ca, Some((&cert, &key)));
    let mut desk1 = client(&server, &ca, pem_pair(&fx.desk1));
    assert_eq!(check(&mut desk2).await.unwrap(), ServingStatus::Serving);
    assert_eq!(check(&mut desk1).await.unwrap(), ServingStatus::Serving);
    let revocations = server.tls.revocations().clone();
    assert!(!revocations.is_revoked(&serial));

    pki_cli(&dir, &["revoke", "--name", "desk-2"]);
    // No explicit reload: the server's CRL watch (every 200 ms here) must notice the new file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !revocations.is_revoked(&serial) {
        assert!(
            std::time::Instant::now() < deadline,
            "CRL not reloaded within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The open connection: its next call is refused by the per-call check.
    let status = check(&mut desk2)
        .await
        .expect_err("revoked while connected");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    // A new connection with it: refused at the handshake, with the reloaded CRL.
    let mut again = client(&server, &ca, Some((&cert, &key)));
    assert_refused(
        &mut server,
        &mut again,
        HandshakeRefusal::CertificateRevoked,
    )
    .await;
    // Other stations carry on, on their open connection and on new ones.
    assert_eq!(check(&mut desk1).await.unwrap(), ServingStatus::Serving);
    let mut desk1_new = client(&server, &ca, pem_pair(&fx.desk1));
    assert_eq!(check(&mut desk1_new).await.unwrap(), ServingStatus::Serving);
}
