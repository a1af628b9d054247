//! The agent's client of the backend: gRPC over mutual TLS with the station's certificate.
//!
//! A check with a chip read is two calls: IssuePresenceChallenge (the nonce the chip signs) and
//! CheckCoverage with the presence proof, the evidence flags of what the agent proved itself,
//! the operator and a fresh request id. The backend verifies the proof on its own; the agent's
//! flags are recorded as the desk's claims.

use std::path::PathBuf;
use std::time::Duration;

use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{
    CheckCoverageRequest, CheckCoverageResponse, Date, IdentityEvidence, IdentityMethod,
    IssuePresenceChallengeRequest, Operator, PresenceChallenge, PresenceProof,
    check_coverage_request::Subject,
};
use emrtd::aa::CHALLENGE_LEN;
use emrtd::cccd::dg13::CardDate;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::read::ChipRead;

/// Where the backend is and who this station is.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// `https://host:port`.
    pub url: String,
    /// The name the server's certificate must carry (default: the URL's host).
    pub server_name: Option<String>,
    /// The private CA's certificate (PEM) that issued the server's and this station's.
    pub ca_cert: PathBuf,
    /// This station's certificate and key (PEM).
    pub station_cert: PathBuf,
    pub station_key: PathBuf,
    /// The facility's code and this desk's station id, as in the station certificate.
    pub facility_code: String,
    pub station_id: String,
    /// The staff member at the desk.
    pub operator_name: String,
    pub operator_citizen_id: String,
    /// Longest wait for a connection and for each call.
    pub timeout: Duration,
}

/// Why the backend gave no answer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A configured file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// The URL or TLS settings are unusable.
    #[error("backend settings: {0}")]
    Settings(String),
    /// No connection: the backend is down, unreachable, or refused this station's certificate.
    #[error("backend unreachable or certificate refused: {0}")]
    Unreachable(String),
    /// The backend answered with an error.
    #[error("backend refused the check ({code:?}): {message}")]
    Refused { code: Code, message: String },
    /// The operating system's random number generator failed (request id, nonce).
    #[error("random number generator unavailable")]
    Random,
}

impl BackendError {
    /// Maps a call's status. A refused handshake surfaces in tonic as UNKNOWN "transport error"
    /// (the TLS alert inside) or UNAVAILABLE, and under TLS 1.3, where the client finishes its
    /// side before the server judges its certificate, also as CANCELLED "operation was
    /// canceled" (the connection closed under the first call; seen in desk_backend.rs). All mean
    /// no answer came from the service.
    fn from_status(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unavailable => BackendError::Unreachable(message),
            Code::Unknown if message.contains("transport error") => {
                BackendError::Unreachable(message)
            }
            Code::Unauthenticated | Code::Cancelled => BackendError::Unreachable(message),
            code => BackendError::Refused { code, message },
        }
    }

    /// Whether the desk should fall back to the official procedure (BHYT card number plus photo
    /// ID) because the service could not be asked.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BackendError::Unreachable(_))
    }
}

/// A connected (lazily: the first call connects) client.
pub struct Backend {
    client: VerificationServiceClient<Channel>,
    config: BackendConfig,
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, BackendError> {
    std::fs::read(path).map_err(|source| BackendError::File {
        path: path.display().to_string(),
        source,
    })
}

/// A lazily connected mutual-TLS channel to the backend with `config`'s certificate. Must be
/// called inside a Tokio runtime.
pub fn channel(config: &BackendConfig) -> Result<Channel, BackendError> {
    let ca = Certificate::from_pem(read_file(&config.ca_cert)?);
    let identity = Identity::from_pem(
        read_file(&config.station_cert)?,
        read_file(&config.station_key)?,
    );
    let mut tls = ClientTlsConfig::new().ca_certificate(ca).identity(identity);
    if let Some(name) = &config.server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(Endpoint::from_shared(config.url.clone())
        .map_err(|e| BackendError::Settings(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| BackendError::Settings(e.to_string()))?
        .connect_timeout(config.timeout)
        .timeout(config.timeout)
        .connect_lazy())
}

impl Backend {
    /// A client for `config`. Must be called inside a Tokio runtime.
    pub fn new(config: BackendConfig) -> Result<Self, BackendError> {
        Ok(Backend {
            client: VerificationServiceClient::new(channel(&config)?),
            config,
        })
    }

    /// A fresh presence challenge for this station.
    pub async fn challenge(&mut self) -> Result<PresenceChallenge, BackendError> {
        self.client
            .issue_presence_challenge(IssuePresenceChallengeRequest {
                facility_code: self.config.facility_code.clone(),
                station_id: self.config.station_id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(BackendError::from_status)
    }

    /// Asks about the citizen whose chip was read, with the proof over `challenge`.
    pub async fn check(
        &mut self,
        read: &ChipRead,
        challenge: &PresenceChallenge,
    ) -> Result<CheckCoverageResponse, BackendError> {
        let request = self.request(read, Some(challenge), request_id()?);
        self.send(request).await
    }

    /// Sends a prepared request: a fresh one, or a kept one again with its own request id (the
    /// backend answers a repeat of the same payload with its first answer).
    pub async fn send(
        &mut self,
        request: CheckCoverageRequest,
    ) -> Result<CheckCoverageResponse, BackendError> {
        self.client
            .check_coverage(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(BackendError::from_status)
    }

    /// The request for `read`: subject, name and birth date from DG13, evidence CHIP with the
    /// agent's flags, the presence proof when the chip signed this challenge's nonce. Without a
    /// challenge (the backend was unreachable before the read) there is no proof: the flags
    /// stay the desk's claims, and the answer cannot say the backend verified the chip.
    pub fn request(
        &self,
        read: &ChipRead,
        challenge: Option<&PresenceChallenge>,
        request_id: String,
    ) -> CheckCoverageRequest {
        let holder = &read.holder;
        let signed_here = challenge.and_then(|challenge| {
            read.active_authentication
                .as_ref()
                .filter(|(nonce, _)| challenge.nonce.as_slice() == nonce.as_slice())
                .map(|(_, signature)| (challenge, signature))
        });
        let presence_proof = signed_here.map(|(challenge, signature)| PresenceProof {
            challenge: challenge.challenge.clone(),
            sod: read.sod.clone(),
            data_groups: read
                .data_groups
                .iter()
                .map(|(&n, bytes)| (u32::from(n), bytes.clone()))
                .collect(),
            active_authentication_signature: signature.clone(),
        });
        CheckCoverageRequest {
            request_id,
            subject: holder
                .citizen_id()
                .map(|id| Subject::CitizenId(id.as_str().to_owned())),
            full_name: holder.full_name.clone().unwrap_or_default(),
            date_of_birth: holder.date_of_birth.as_ref().map(proto_date),
            operator: Some(Operator {
                full_name: self.config.operator_name.clone(),
                citizen_id: self.config.operator_citizen_id.clone(),
            }),
            facility_code: self.config.facility_code.clone(),
            station_id: self.config.station_id.clone(),
            evidence: Some(IdentityEvidence {
                method: IdentityMethod::Chip as i32,
                passive_authentication: read.passive_genuine(),
                chip_authentication: read.chip_authentication.is_some(),
                active_authentication: read.active.is_some(),
                document_signer_issuer: read
                    .passive
                    .as_ref()
                    .and_then(|p| p.document_signer.as_ref())
                    .map(|s| s.issuer.clone())
                    .unwrap_or_default(),
            }),
            presence_proof,
        }
    }
}

/// The chip's nonce from a challenge, when it has the length the chip takes.
pub fn nonce_of(challenge: &PresenceChallenge) -> Option<[u8; CHALLENGE_LEN]> {
    challenge.nonce.as_slice().try_into().ok()
}

/// DG13's birth date as the API's: a partial date keeps its year only.
fn proto_date(date: &CardDate) -> Date {
    match date {
        CardDate::Date(d) => Date {
            year: d.year().into(),
            month: d.month().into(),
            day: d.day().into(),
        },
        other => Date {
            year: other.year().map(u32::from).unwrap_or_default(),
            month: 0,
            day: 0,
        },
    }
}

/// A request id in the UUID version 4 form, from the operating system's generator.
pub fn request_id() -> Result<String, BackendError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| BackendError::Random)?;
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4_shaped_and_fresh() {
        let (a, b) = (request_id().unwrap(), request_id().unwrap());
        // A constant or counter-based generator fails the second assertion.
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(
            a.bytes()
                .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn a_refused_handshake_and_a_down_backend_read_as_unreachable() {
        let tls_alert = tonic::Status::unknown("transport error: received fatal alert");
        assert!(BackendError::from_status(tls_alert).is_unreachable());
        assert!(BackendError::from_status(tonic::Status::unavailable("down")).is_unreachable());
        let closed = tonic::Status::cancelled("operation was canceled");
        assert!(BackendError::from_status(closed).is_unreachable());
        // A refusal of the check itself is not an outage.
        let invalid = tonic::Status::invalid_argument("full_name is required");
        assert!(!BackendError::from_status(invalid).is_unreachable());
    }
}
