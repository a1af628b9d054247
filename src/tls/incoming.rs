//! The accept loop: TCP connections in, verified TLS connections out, for tonic's
//! `serve_with_incoming_shutdown`.
//!
//! Handshakes run in their own tasks, each bounded by a timeout, so a slow, silent or hostile
//! client delays nobody else; the loop itself only accepts. A failed handshake is reported (peer
//! address and reason) and never ends the loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, PeerIncompatible};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use super::ServerTls;
use super::identity::PeerIdentity;

/// Handshakes in progress at once; beyond it the loop waits before accepting more, so a flood
/// of connections that never finish their handshake cannot exhaust memory.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// What a handler finds in `request.extensions()` for every call on a TLS connection.
#[derive(Clone, Debug)]
pub struct ConnectInfo {
    pub peer_addr: SocketAddr,
    /// The client's end-entity certificate (DER), as verified during the handshake.
    pub peer_certificate: CertificateDer<'static>,
    /// Parsed once per connection.
    pub identity: Arc<PeerIdentity>,
}

/// A failed handshake, for the audit log's connection events.
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    pub peer_addr: SocketAddr,
    pub reason: HandshakeRefusal,
    pub at: SystemTime,
}

/// Why a handshake failed, in the terms an operator acts on.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The client sent no certificate.
    NoClientCertificate,
    CertificateExpired,
    CertificateNotYetValid,
    /// On the CA's revocation list.
    CertificateRevoked,
    /// Not issued by the private CA (or the chain is incomplete).
    UnknownIssuer,
    /// Names the private CA as issuer but was not signed with its key (a foreign CA with the
    /// same name, or an altered certificate).
    BadSignature,
    /// Not a client certificate (e.g. the server's, which has only serverAuth usage).
    WrongKeyUsage,
    /// Signed by the CA, but its identity claims are unusable (see `tls::identity`).
    BadIdentity(String),
    /// Any other certificate problem.
    BadCertificate(String),
    /// An older TLS version than the server accepts (TLS 1.2 unless `allow_tls12`).
    ProtocolVersion,
    /// No cipher suite, group, signature scheme or application protocol in common.
    Incompatible(String),
    /// Not TLS, or a TLS protocol violation.
    Protocol(String),
    /// The handshake did not finish within `handshake_timeout_ms`.
    Timeout,
    /// The client closed or reset the connection during the handshake.
    Closed,
}

impl HandshakeRefusal {
    /// A stable short label for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoClientCertificate => "no_client_certificate",
            Self::CertificateExpired => "certificate_expired",
            Self::CertificateNotYetValid => "certificate_not_yet_valid",
            Self::CertificateRevoked => "certificate_revoked",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BadSignature => "bad_signature",
            Self::WrongKeyUsage => "wrong_key_usage",
            Self::BadIdentity(_) => "bad_identity",
            Self::BadCertificate(_) => "bad_certificate",
            Self::ProtocolVersion => "protocol_version",
            Self::Incompatible(_) => "incompatible",
            Self::Protocol(_) => "protocol",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
        }
    }

    fn from_io(error: &io::Error) -> Self {
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Self::from_rustls(tls),
            None => match error.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => Self::Closed,
                _ => Self::Protocol(error.to_string()),
            },
        }
    }

    fn from_rustls(error: &rustls::Error) -> Self {
        use rustls::Error as E;
        match error {
            E::NoCertificatesPresented => Self::NoClientCertificate,
            E::InvalidCertificate(cert) => match cert {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Self::CertificateExpired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::CertificateNotYetValid
                }
                CertificateError::Revoked => Self::CertificateRevoked,
                CertificateError::UnknownIssuer => Self::UnknownIssuer,
                CertificateError::BadSignature
                | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    Self::BadSignature
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => Self::WrongKeyUsage,
                CertificateError::Other(other) => Self::BadIdentity(other.to_string()),
                other => Self::BadCertificate(format!("{other:?}")),
            },
            E::PeerIncompatible(
                PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled,
            ) => Self::ProtocolVersion,
            E::PeerIncompatible(other) => Self::Incompatible(format!("{other:?}")),
            E::NoApplicationProtocol => Self::Incompatible("no ALPN protocol in common".into()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl std::fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadIdentity(detail)
            | Self::BadCertificate(detail)
            | Self::Incompatible(detail)
            | Self::Protocol(detail) => write!(f, "{}: {detail}", self.code()),
            _ => f.write_str(self.code()),
        }
    }
}

/// A client connection whose handshake succeeded.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    info: ConnectInfo,
}

impl TlsConnection {
    pub fn info(&self) -> &ConnectInfo {
        &self.info
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = ConnectInfo;

    fn connect_info(&self) -> ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The stream of verified connections. Dropping it (tonic does at shutdown) stops the accept
/// loop and closes the listening socket.
pub struct TlsIncoming {
    connections: mpsc::Receiver<TlsConnection>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Stream for TlsIncoming {
    type Item = Result<TlsConnection, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Accepts on `listener` with the configuration `tls` has in force at each handshake. Failed
/// handshakes go to `failures` without waiting: if its receiver lags, events beyond its
/// capacity are dropped with a warning rather than slowing the handshakes of other clients.
pub fn serve_incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    failures: mpsc::Sender<HandshakeFailure>,
) -> TlsIncoming {
    let (ready, connections) = mpsc::channel(64);
    let accept_loop = tokio::spawn(accept_loop(listener, tls, ready, failures));
    TlsIncoming {
        connections,
        accept_loop,
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    ready: mpsc::Sender<TlsConnection>,
    failures: mpsc::Sender<HandshakeFailure>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: transient; back off a little.
                tracing::warn!(%error, "accepting a gRPC connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.server_config());
        let timeout = tls.settings().handshake_timeout;
        let (ready, failures) = (ready.clone(), failures.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => connection(stream, peer_addr),
                Ok(Err(error)) => Err(HandshakeRefusal::from_io(&error)),
                Err(_) => Err(HandshakeRefusal::Timeout),
            };
            match outcome {
                Ok(connection) => {
                    // Fails only when the server has stopped: the connection is dropped.
                    let _ = ready.send(connection).await;
                }
                Err(reason) => report(&failures, peer_addr, reason),
            }
        });
    }
}

fn connection(
    stream: TlsStream<TcpStream>,
    peer_addr: SocketAddr,
) -> Result<TlsConnection, HandshakeRefusal> {
    let (_, session) = stream.get_ref();
    let certificate = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(HandshakeRefusal::NoClientCertificate)?
        .clone()
        .into_owned();
    // The verifier has parsed it already; a failure here would be a bug, still refused.
    let identity = PeerIdentity::from_der(&certificate)
        .map_err(|e| HandshakeRefusal::BadIdentity(e.to_string()))?;
    Ok(TlsConnection {
        stream,
        info: ConnectInfo {
            peer_addr,
            peer_certificate: certificate,
            identity: Arc::new(identity),
        },
    })
}

fn report(
    failures: &mpsc::Sender<HandshakeFailure>,
    peer_addr: SocketAddr,
    reason: HandshakeRefusal,
) {
    tracing::debug!(peer = %peer_addr, reason = %reason, "TLS handshake refused");
    let failure = HandshakeFailure {
        peer_addr,
        reason,
        at: SystemTime::now(),
    };
    if let Err(mpsc::error::TrySendError::Full(lost)) = failures.try_send(failure) {
        tracing::warn!(
            peer = %lost.peer_addr,
            reason = lost.reason.code(),
            "handshake failure not recorded: the event queue is full"
        );
    }
}
