//! Passive authentication (ICAO 9303-11, 5.1): the data groups read are the ones the issuer
//! signed.
//!
//! Each link is checked separately and reported: every data group's hash against EF.SOD, the
//! SOD's signature (signed attributes as received, content type, message digest) with the
//! Document Signer certificate inside it, that certificate's signature by a trusted CSCA, both
//! certificates' validity at the given time, and the Document Signer's revocation. The report
//! never reads as genuine unless every link holds; it names the Document Signer's issuer either
//! way, since which CSCA signs CCCDs is still to be learnt from real cards.

use std::collections::BTreeMap;
use std::time::SystemTime;

use der::Decode;
use emrtd::lds::sod::{self, SodError};
use x509_cert::Certificate;

use crate::chain::{self, ChainError};
use crate::crl::Revocation;
use crate::signed::{self, HashAlgorithm, SignedDataError};
use crate::trust::TrustStore;
use crate::verify::Verified;

/// What passive authentication accepts beyond the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Accept SHA-1 in the SOD and in certificate signatures (old documents); reported.
    pub allow_sha1: bool,
    /// Require a current CRL of the Document Signer's CSCA; without one the result is not
    /// genuine.
    pub require_crl: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_sha1: false,
            require_crl: true,
        }
    }
}

/// One data group read, compared with the hash EF.SOD holds for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataGroupCheck {
    Matched,
    Mismatched,
    /// EF.SOD has no hash for it: nothing about it is proven.
    NotInSod,
    /// The SOD's hash algorithm is not supported, or is SHA-1 and the policy refuses it:
    /// nothing is proven.
    UnsupportedHash,
}

/// The Document Signer certificate found in EF.SOD (names of authorities: public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSigner {
    pub subject: String,
    /// Its issuer's name as the certificate states it, whether or not a trusted CSCA matches.
    pub issuer: String,
    pub country: Option<String>,
}

/// Validity of the chain's certificates at the time checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub document_signer: bool,
    /// `None` when no trusted CSCA was found.
    pub csca: Option<bool>,
}

/// The link from the Document Signer to a trusted CSCA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The CSCA's subject.
    pub csca: String,
    pub scheme: Verified,
}

/// Exactly what passive authentication proved, link by link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveAuthentication {
    /// The SOD's hash algorithm for data groups.
    pub hash_algorithm: Option<HashAlgorithm>,
    /// Each data group read.
    pub data_groups: BTreeMap<u8, DataGroupCheck>,
    /// The SOD's signature with the Document Signer's key.
    pub signature: Result<Verified, SignedDataError>,
    /// The Document Signer certificate found in the SOD (`None`: absent or undecodable).
    pub document_signer: Option<DocumentSigner>,
    /// The Document Signer's signature by a trusted CSCA.
    pub chain: Result<TrustedIssuer, ChainError>,
    /// `None` when there is no Document Signer certificate to check.
    pub validity: Option<Validity>,
    pub revocation: Revocation,
    /// Whether SHA-1 was met and accepted by policy somewhere.
    pub sha1_accepted: bool,
    policy: Policy,
}

impl PassiveAuthentication {
    /// True only when every data group read matched, the SOD's signature verified, the
    /// Document Signer chains to a trusted CSCA, both are valid, and the Document Signer is
    /// not revoked (by a current CRL, unless the policy waives CRLs).
    pub fn is_genuine(&self) -> bool {
        !self.data_groups.is_empty()
            && self
                .data_groups
                .values()
                .all(|c| *c == DataGroupCheck::Matched)
            && self.signature.is_ok()
            && self.chain.is_ok()
            && self
                .validity
                .is_some_and(|v| v.document_signer && v.csca == Some(true))
            && match self.revocation {
                Revocation::NotRevoked { .. } => true,
                Revocation::NoCrl | Revocation::StaleCrl { .. } => !self.policy.require_crl,
                Revocation::Revoked { .. } => false,
            }
    }

    /// Every link that does not hold, in words (no personal data: authority names only).
    pub fn unproven(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.data_groups.is_empty() {
            out.push("no data group was checked".to_string());
        }
        for (n, check) in &self.data_groups {
            match check {
                DataGroupCheck::Matched => {}
                DataGroupCheck::Mismatched => {
                    out.push(format!("DG{n}: hash does not match EF.SOD"))
                }
                DataGroupCheck::NotInSod => out.push(format!("DG{n}: not in EF.SOD")),
                DataGroupCheck::UnsupportedHash => {
                    out.push(format!(
                        "DG{n}: EF.SOD's hash algorithm is unsupported or refused (SHA-1)"
                    ));
                }
            }
        }
        if let Err(e) = &self.signature {
            out.push(format!("EF.SOD signature: {e}"));
        }
        if let Err(e) = &self.chain {
            out.push(format!("Document Signer chain: {e}"));
        }
        match self.validity {
            None => out.push("validity: no Document Signer certificate".to_string()),
            Some(v) => {
                if !v.document_signer {
                    out.push("Document Signer certificate not valid at the time checked".into());
                }
                if v.csca == Some(false) {
                    out.push("CSCA certificate not valid at the time checked".into());
                }
            }
        }
        match &self.revocation {
            Revocation::NotRevoked { .. } => {}
            Revocation::Revoked { crl, .. } => {
                out.push(format!("Document Signer is revoked (CRL {crl})"));
            }
            Revocation::StaleCrl { crl } => {
                out.push(format!("revocation unknown: CRL {crl} is not current"));
            }
            Revocation::NoCrl => out.push("revocation unknown: no CRL of the CSCA".into()),
        }
        out
    }
}

/// One data group (file bytes as read) against the hash EF.SOD holds for it, under `policy`:
/// the check passive authentication makes of each data group it is given, also for a data
/// group read after it (the face, DG2, read only when the desk displays it). Says nothing about
/// the SOD's own signature: pair it with a report whose other links held.
pub fn check_data_group(
    sod: &sod::Sod<'_>,
    number: u8,
    bytes: &[u8],
    policy: Policy,
) -> DataGroupCheck {
    let lso = &sod.security_object;
    let hash_algorithm = HashAlgorithm::from_oid(lso.hash_algorithm.oid);
    let sha1_refused = hash_algorithm == Some(HashAlgorithm::Sha1) && !policy.allow_sha1;
    match (hash_algorithm, lso.hash_of(number)) {
        (_, None) => DataGroupCheck::NotInSod,
        (None, Some(_)) => DataGroupCheck::UnsupportedHash,
        (Some(_), Some(_)) if sha1_refused => DataGroupCheck::UnsupportedHash,
        (Some(h), Some(signed)) if h.digest(bytes) == signed => DataGroupCheck::Matched,
        (Some(_), Some(_)) => DataGroupCheck::Mismatched,
    }
}

/// Runs passive authentication of `data_groups` (number -> file bytes as read) against `sod`
/// (EF.SOD as read), with the CSCAs and CRLs of `store`, at time `at`.
///
/// An error means EF.SOD itself could not be parsed; everything else is in the report.
pub fn passive_authentication(
    store: &TrustStore,
    sod_bytes: &[u8],
    data_groups: &BTreeMap<u8, Vec<u8>>,
    at: SystemTime,
    policy: Policy,
) -> Result<PassiveAuthentication, SodError> {
    let sod = sod::parse(sod_bytes)?;
    let lso = &sod.security_object;
    let hash_algorithm = HashAlgorithm::from_oid(lso.hash_algorithm.oid);
    let mut sha1_accepted = hash_algorithm == Some(HashAlgorithm::Sha1) && policy.allow_sha1;
    let checks = data_groups
        .iter()
        .map(|(&n, bytes)| (n, check_data_group(&sod, n, bytes, policy)))
        .collect();

    let signer = sod.signer().ok_or(SodError::NoSigner)?;
    let ds_raw = signed::find_signer_certificate(&signer.sid, &sod.certificates);
    let signature = match ds_raw {
        None => Err(SignedDataError::SignerCertificateNotFound),
        Some(raw) => signed::verify_signer_info(
            signer,
            sod::ID_LDS_SECURITY_OBJECT,
            sod.encapsulated_content,
            raw,
            policy.allow_sha1,
        ),
    };
    if policy.allow_sha1
        && HashAlgorithm::from_oid(signer.digest_algorithm.oid) == Some(HashAlgorithm::Sha1)
    {
        sha1_accepted = true;
    }
    let ds_cert = ds_raw.and_then(|raw| Certificate::from_der(raw).ok());
    let document_signer = ds_cert.as_ref().map(|c| DocumentSigner {
        subject: c.tbs_certificate().subject().to_string(),
        issuer: c.tbs_certificate().issuer().to_string(),
        country: chain::country(c.tbs_certificate().subject()),
    });

    let issuer = match ds_raw {
        None => Err(ChainError::NoIssuer),
        Some(raw) => chain::find_issuer(raw, store.raw_certificates(), policy.allow_sha1),
    };
    if policy.allow_sha1
        && ds_cert
            .as_ref()
            .is_some_and(|c| signed::uses_sha1(c.signature_algorithm().oid))
    {
        sha1_accepted = true;
    }
    let csca_cert = issuer
        .as_ref()
        .ok()
        .and_then(|i| Certificate::from_der(i.certificate).ok());
    let validity = ds_cert.as_ref().map(|ds| Validity {
        document_signer: chain::valid_at(ds, at),
        csca: csca_cert.as_ref().map(|c| chain::valid_at(c, at)),
    });
    let revocation = match (&ds_cert, &issuer) {
        (Some(ds), Ok(i)) => store.revocation(ds, i.certificate, at),
        _ => Revocation::NoCrl,
    };
    let chain = issuer.and_then(|i| {
        let csca = csca_cert.as_ref().ok_or(ChainError::NoIssuer)?;
        Ok(TrustedIssuer {
            csca: csca.tbs_certificate().subject().to_string(),
            scheme: i.scheme,
        })
    });
    Ok(PassiveAuthentication {
        hash_algorithm,
        data_groups: checks,
        signature,
        document_signer,
        chain,
        validity,
        revocation,
        sha1_accepted,
        policy,
    })
}
