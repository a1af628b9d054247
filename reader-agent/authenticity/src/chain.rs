//! One link of a chain: which certificate of a pool issued a given certificate.
//!
//! A candidate issuer must carry the certificate's issuer name as its subject and, when both
//! identifiers are present, the subject key identifier the certificate's authority key
//! identifier names; then the certificate's signature must verify with its key, over the TBS
//! bytes as received. CSCAs renew keys under the same name, so several candidates may match by
//! name; the key identifier and the signature decide.

use std::time::SystemTime;

use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::name::Name;

use crate::verify::{self, Verified, VerifyError};

/// Why no certificate of the pool issued the certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("certificate is not DER: {0}")]
    Der(#[from] der::Error),
    #[error("no trusted certificate has the issuer's name and key identifier")]
    NoIssuer,
    #[error("the issuer's signature does not verify: {0}")]
    Signature(VerifyError),
    #[error("the signature uses SHA-1, not accepted by the configured policy")]
    Sha1Refused,
}

/// The issuer found for a certificate.
#[derive(Clone, Copy, Debug)]
pub struct Issuer<'p> {
    /// The issuer's certificate, DER as received.
    pub certificate: &'p [u8],
    pub scheme: Verified,
}

/// The certificate's subject key identifier.
pub fn subject_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, k)| k.0.as_bytes().to_vec())
}

/// The key identifier in a certificate's authority key identifier extension.
pub fn authority_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, k)| k.key_identifier.map(|k| k.as_bytes().to_vec()))
}

/// Finds in `pool` (DER certificates as received) the issuer of `cert` and verifies the
/// certificate's signature with it.
pub fn find_issuer<'p>(
    cert: &[u8],
    pool: impl IntoIterator<Item = &'p [u8]>,
    allow_sha1: bool,
) -> Result<Issuer<'p>, ChainError> {
    let decoded = Certificate::from_der(cert)?;
    find_signer(
        cert,
        decoded.tbs_certificate().issuer(),
        authority_key_id(&decoded).as_deref(),
        pool,
        allow_sha1,
    )
}

/// Finds in `pool` the certificate whose key signed `signed` (a certificate or a CRL, DER as
/// received), named by `issuer_name` and optionally by authority key identifier `aki`.
pub fn find_signer<'p>(
    signed: &[u8],
    issuer_name: &Name,
    aki: Option<&[u8]>,
    pool: impl IntoIterator<Item = &'p [u8]>,
    allow_sha1: bool,
) -> Result<Issuer<'p>, ChainError> {
    let (_, algorithm, _) = verify::signed_parts(signed).map_err(ChainError::Signature)?;
    if !allow_sha1 && crate::signed::uses_sha1(algorithm.oid) {
        return Err(ChainError::Sha1Refused);
    }
    let mut last_error = None;
    for candidate in pool {
        let Ok(c) = Certificate::from_der(candidate) else {
            continue;
        };
        if c.tbs_certificate().subject() != issuer_name {
            continue;
        }
        if let (Some(aki), Some(ski)) = (aki, subject_key_id(&c))
            && *aki != ski
        {
            continue;
        }
        match verify::verify_signed(signed, candidate) {
            Ok(scheme) => {
                return Ok(Issuer {
                    certificate: candidate,
                    scheme,
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or(ChainError::NoIssuer, ChainError::Signature))
}

/// Whether `at` lies within the certificate's validity period.
pub fn valid_at(cert: &Certificate, at: SystemTime) -> bool {
    let validity = cert.tbs_certificate().validity();
    SystemTime::from(validity.not_before) <= at && at <= SystemTime::from(validity.not_after)
}

/// The country (C=) of a name, e.g. a CSCA's or a Document Signer's.
pub fn country(name: &Name) -> Option<String> {
    name.country()
        .ok()
        .flatten()
        .map(|c| c.as_str().to_string())
}
