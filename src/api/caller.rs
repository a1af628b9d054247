//! Who is calling, from the client certificate verified at the TLS handshake, and what they may
//! do. The certificate is checked again on every call (revocation, expiry): HTTP/2 connections
//! stay open for hours, longer than a revocation may take to matter.

use std::sync::Arc;

use time::OffsetDateTime;
use tonic::{Request, Status};

use crate::tls::{ConnectInfo, PeerRefusal, Role, ServerTls, check_peer};

/// The authenticated caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `None` only when serving plain text for development.
    pub role: Option<Role>,
    pub facility: Option<String>,
    pub station: Option<String>,
    /// For audit records: role and certificate serial, or "dev-plaintext".
    pub label: String,
}

impl Caller {
    /// Whether this caller may act as `station` of `facility` in a coverage check.
    pub fn may_check_for(&self, facility: &str, station: &str) -> Result<(), String> {
        match self.role {
            None => Ok(()),
            Some(Role::Station) if self.facility.as_deref() != Some(facility) => Err(format!(
                "facility_code: this certificate is for facility {}",
                self.facility.as_deref().unwrap_or("?")
            )),
            Some(Role::Station) if self.station.as_deref() != Some(station) => Err(format!(
                "station_id: this certificate is for station {}",
                self.station.as_deref().unwrap_or("?")
            )),
            Some(Role::Station) => Ok(()),
            Some(Role::HisIntegration) if self.facility.as_deref() != Some(facility) => {
                Err(format!(
                    "facility_code: this certificate is for facility {}",
                    self.facility.as_deref().unwrap_or("?")
                ))
            }
            Some(Role::HisIntegration) => Ok(()),
            Some(role) => Err(format!("the {role} role cannot check coverage")),
        }
    }
}

/// Why a call was refused before it started: unauthenticated, or not allowed.
pub enum Refusal {
    Unauthenticated(Status),
    Denied { caller: Caller, status: Status },
}

/// Identifies callers; holds the CRLs in force.
#[derive(Clone)]
pub struct Gate {
    /// `None` when serving plain text for development: every caller may do everything.
    tls: Option<Arc<ServerTls>>,
}

impl Gate {
    pub fn new(tls: Option<Arc<ServerTls>>) -> Self {
        Self { tls }
    }

    /// The caller of `request` if its certificate is still good and its role is one of
    /// `allowed`.
    pub fn admit<T>(&self, request: &Request<T>, allowed: &[Role]) -> Result<Caller, Refusal> {
        let Some(tls) = &self.tls else {
            return Ok(Caller {
                role: None,
                facility: None,
                station: None,
                label: "dev-plaintext".into(),
            });
        };
        let info = request.extensions().get::<ConnectInfo>().ok_or_else(|| {
            Refusal::Unauthenticated(Status::unauthenticated("a client certificate is required"))
        })?;
        let identity =
            check_peer(info, tls.revocations(), OffsetDateTime::now_utc()).map_err(|refusal| {
                Refusal::Unauthenticated(Status::unauthenticated(match refusal {
                    PeerRefusal::Revoked => "the client certificate has been revoked",
                    PeerRefusal::Expired => "the client certificate has expired",
                }))
            })?;
        let caller = Caller {
            role: Some(identity.role()),
            facility: identity.facility().map(str::to_owned),
            station: identity.station().map(str::to_owned),
            label: format!(
                "{}:{}",
                identity.role(),
                hex::encode(identity.serial.as_bytes())
            ),
        };
        if allowed.contains(&identity.role()) {
            Ok(caller)
        } else {
            let status = Status::permission_denied(format!(
                "the {} role may not call this service",
                identity.role()
            ));
            Err(Refusal::Denied { caller, status })
        }
    }
}
