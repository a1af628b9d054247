//! Certificate revocation lists of CSCAs (ICAO 9303-12, 7.1.4): which Document Signers an
//! issuer withdrew. A CRL is honoured only once its signature verifies with the key of a CSCA in
//! the trust store, over its to-be-signed bytes as received.

use std::time::SystemTime;

use der::Decode;
use der::oid::AssociatedOid as _;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;

use crate::chain::{self, ChainError};

/// A CRL whose signature verified with a trusted CSCA.
#[derive(Clone)]
pub struct TrustedCrl {
    /// DER as received.
    pub raw: Vec<u8>,
    pub crl: CertificateList,
    pub source: String,
    /// The CSCA certificate (DER) whose key signed it.
    pub issuer_certificate: Vec<u8>,
}

impl std::fmt::Debug for TrustedCrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedCrl")
            .field("issuer", &self.issuer())
            .field("source", &self.source)
            .field("revoked", &self.revoked_count())
            .finish()
    }
}

/// Why a CRL was not taken into the trust store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    #[error("undecodable CRL: {0}")]
    Der(#[from] der::Error),
    #[error("CRL signature not verified: {0}")]
    Chain(#[from] ChainError),
}

impl TrustedCrl {
    /// Decodes a DER CRL and verifies its signature against `pool` (trusted CSCAs, DER).
    pub fn verify<'p>(
        raw: &[u8],
        source: impl Into<String>,
        pool: impl IntoIterator<Item = &'p [u8]>,
        allow_sha1: bool,
    ) -> Result<Self, CrlError> {
        let crl = CertificateList::from_der(raw)?;
        let aki = crl
            .tbs_cert_list
            .crl_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
            .and_then(|e| AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
            .and_then(|a| a.key_identifier.map(|k| k.as_bytes().to_vec()));
        let issuer = chain::find_signer(
            raw,
            &crl.tbs_cert_list.issuer,
            aki.as_deref(),
            pool,
            allow_sha1,
        )?;
        Ok(Self {
            raw: raw.to_vec(),
            issuer_certificate: issuer.certificate.to_vec(),
            crl,
            source: source.into(),
        })
    }

    /// The issuer's name (RFC 4514; a CSCA's name is public).
    pub fn issuer(&self) -> String {
        self.crl.tbs_cert_list.issuer.to_string()
    }

    pub fn revoked_count(&self) -> usize {
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .map_or(0, Vec::len)
    }

    /// Whether this CRL speaks for the issuer of `cert`, whose issuer certificate is `issuer`.
    pub fn covers(&self, cert: &Certificate, issuer: &[u8]) -> bool {
        self.crl.tbs_cert_list.issuer == *cert.tbs_certificate().issuer()
            && self.issuer_certificate == issuer
    }

    /// When `cert` was revoked, if this CRL lists it.
    pub fn revocation_of(&self, cert: &Certificate) -> Option<SystemTime> {
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .find(|r| r.serial_number == *cert.tbs_certificate().serial_number())
            .map(|r| r.revocation_date.to_system_time())
    }

    /// Whether the CRL is current at `at` (past its thisUpdate and before its nextUpdate).
    pub fn current_at(&self, at: SystemTime) -> bool {
        let tbs = &self.crl.tbs_cert_list;
        tbs.this_update.to_system_time() <= at
            && tbs.next_update.is_none_or(|n| at <= n.to_system_time())
    }
}

/// The revocation status of a certificate, as far as the trust store's CRLs say.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// A current CRL of the issuer does not list it.
    NotRevoked { crl: String },
    /// A CRL of the issuer lists it.
    Revoked { since: SystemTime, crl: String },
    /// The issuer's CRLs are all outside their validity period at the time checked.
    StaleCrl { crl: String },
    /// No CRL of the issuer is loaded: revocation is not checked.
    NoCrl,
}
