//! Mutual TLS for the gRPC listener, built on rustls by hand because tonic's own TLS settings take
//! one client CA but no revocation lists, and allow TLS 1.2.
//!
//! - [`ServerTls`]: the rustls server configuration (ring provider only; TLS 1.3 unless
//!   `allow_tls12`; client certificates required, chaining to the private CA alone and checked
//!   against its CRLs; ALPN `h2`; no session resumption, so every connection is verified against
//!   the lists in force), rebuilt whenever the CRLs change.
//! - [`serve_incoming`]: accepts TCP connections and runs their handshakes concurrently, each
//!   with a timeout, yielding [`TlsConnection`]s for tonic's `serve_with_incoming_shutdown`;
//!   every failed handshake is reported as a [`HandshakeFailure`] (peer address and reason).
//! - [`ConnectInfo`], in every request's extensions: the peer address, its certificate and its
//!   [`PeerIdentity`].
//! - [`Revocations`]: the CA's CRLs in force; [`check_peer`] refuses a revoked or expired
//!   certificate on a connection opened before it was revoked or expired.
//!
//! # Identity in the certificate
//!
//! A client certificate states its holder in subject alternative names of type URI:
//!
//! | URI                          | meaning                                                  |
//! |------------------------------|----------------------------------------------------------|
//! | `urn:bhyt:role:<role>`       | exactly one: `station`, `his`, `auditor` or `admin`      |
//! | `urn:bhyt:facility:<code>`   | the facility (e.g. `01821`): required for `station` and `his`, absent otherwise |
//! | `urn:bhyt:station:<id>`      | the desk (e.g. `desk-1`): required for `station`, optional for `his`, absent otherwise |
//!
//! Other URIs are ignored; an unknown or repeated `urn:bhyt:` key makes the certificate unusable
//! (refused at the handshake). The certificate must also carry the clientAuth extended key usage
//! (a server certificate cannot be used as a client's).

mod acceptor;
pub mod identity;
mod incoming;
mod revocation;
mod settings;

pub use acceptor::ServerTls;
pub use identity::{Claims, IdentityError, PeerIdentity, Role, Serial};
pub use incoming::{
    ConnectInfo, HandshakeFailure, HandshakeRefusal, TlsConnection, TlsIncoming, serve_incoming,
};
pub use revocation::{RevocationError, Revocations};
pub use settings::{TlsConfig, TlsSettings};

use time::OffsetDateTime;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Pem {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("server TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("[tls] {0}")]
    Config(String),
}

/// Why a call on an established connection is refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    #[error("the client certificate has been revoked")]
    Revoked,
    #[error("the client certificate has expired")]
    Expired,
}

/// The per-call check for connections that outlive their certificate's good standing: revoked
/// after the handshake (by CRL reload) or expired since. Handlers call it on every request.
pub fn check_peer<'a>(
    peer: &'a ConnectInfo,
    revocations: &Revocations,
    now: OffsetDateTime,
) -> Result<&'a PeerIdentity, PeerRefusal> {
    let identity = &*peer.identity;
    if revocations.is_revoked(&identity.serial) {
        Err(PeerRefusal::Revoked)
    } else if identity.is_expired(now) {
        Err(PeerRefusal::Expired)
    } else {
        Ok(identity)
    }
}
