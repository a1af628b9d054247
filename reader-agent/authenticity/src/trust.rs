//! CSCA trust store: the certificates a Document Signer may chain to.
//!
//! Real trust data holds certificates some decoders reject; a store skips those, counts them and
//! says why, so one odd certificate never costs a whole master list.

use std::fmt;
use std::path::Path;

use der::Decode;
use x509_cert::Certificate;

use crate::crl::{CrlError, Revocation, TrustedCrl};
use crate::masterlist::{self, ListSignature, ListSignatureError, MasterListError};

/// A trusted CSCA certificate: decoded, with its bytes as received.
#[derive(Clone)]
pub struct TrustedCert {
    /// The DER bytes as received; signatures are checked over slices of these.
    pub raw: Vec<u8>,
    pub cert: Certificate,
    /// Where it came from (file name, with its index inside a master list).
    pub source: String,
}

impl TrustedCert {
    /// The subject as an RFC 4514 string (CSCA subjects are public, not personal data).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }
}

impl fmt::Debug for TrustedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCert")
            .field("subject", &self.subject())
            .field("source", &self.source)
            .finish()
    }
}

/// A certificate left out of the store, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// Why a trust source could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    MasterList {
        path: String,
        source: MasterListError,
    },
}

/// A master list loaded into a store, with what its own signature proved.
#[derive(Clone, Debug)]
pub struct ListReport {
    pub source: String,
    /// Certificates the list holds, decodable or not.
    pub certificates: usize,
    /// Of those, how many were added.
    pub added: usize,
    /// The list's own signature, checked against the CSCAs the store held before the list.
    pub signature: Result<ListSignature, ListSignatureError>,
}

/// The CSCA certificates trusted for passive authentication, and the CRLs of their issuers.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    certs: Vec<TrustedCert>,
    skipped: Vec<Skipped>,
    lists: Vec<ListReport>,
    crls: Vec<TrustedCrl>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn certificates(&self) -> &[TrustedCert] {
        &self.certs
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The master lists loaded, with their signature checks.
    pub fn lists(&self) -> &[ListReport] {
        &self.lists
    }

    /// The CRLs honoured (their signatures verified with a CSCA of this store).
    pub fn crls(&self) -> &[TrustedCrl] {
        &self.crls
    }

    /// The DER of every trusted certificate, as received.
    pub fn raw_certificates(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.certs.iter().map(|c| c.raw.as_slice())
    }

    /// Adds a CRL (DER) after verifying its signature with a CSCA of this store; a CRL that
    /// does not verify is recorded as skipped, never honoured. Load CSCAs first.
    pub fn add_crl_der(&mut self, raw: &[u8], source: impl Into<String>) -> Result<(), CrlError> {
        let source = source.into();
        match TrustedCrl::verify(raw, source.clone(), self.raw_certificates(), false) {
            Ok(crl) => {
                self.crls.push(crl);
                Ok(())
            }
            Err(e) => {
                self.skipped.push(Skipped {
                    source,
                    reason: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// Adds the CRLs of a DER or PEM (`X509 CRL`) file. Returns how many were honoured.
    pub fn add_crl_bytes(&mut self, bytes: &[u8], source: &str) -> usize {
        if !bytes.starts_with(b"-----BEGIN") {
            return usize::from(self.add_crl_der(bytes, source).is_ok());
        }
        let text = String::from_utf8_lossy(bytes);
        let mut added = 0;
        for (i, block) in text.split("-----BEGIN").skip(1).enumerate() {
            let pem = format!("-----BEGIN{block}");
            let name = format!("{source}#{i}");
            match der::pem::decode_vec(pem.as_bytes()) {
                Ok(("X509 CRL", der)) => {
                    added += usize::from(self.add_crl_der(&der, name).is_ok());
                }
                Ok((label, _)) => self.skipped.push(Skipped {
                    source: name,
                    reason: format!("PEM block is {label}, not X509 CRL"),
                }),
                Err(e) => self.skipped.push(Skipped {
                    source: name,
                    reason: format!("bad PEM: {e}"),
                }),
            }
        }
        added
    }

    /// The revocation status of `cert` (issued by the CSCA certificate `issuer`, DER) at `at`.
    pub fn revocation(
        &self,
        cert: &Certificate,
        issuer: &[u8],
        at: std::time::SystemTime,
    ) -> Revocation {
        let covering: Vec<_> = self
            .crls
            .iter()
            .filter(|c| c.covers(cert, issuer))
            .collect();
        // Any CRL listing it wins, whatever the order the CRLs were loaded in: an older CRL
        // still within its next update must not hide a newer one that revokes.
        if let Some((crl, since)) = covering
            .iter()
            .find_map(|crl| crl.revocation_of(cert).map(|since| (crl, since)))
        {
            return Revocation::Revoked {
                since,
                crl: crl.source.clone(),
            };
        }
        if let Some(crl) = covering.iter().find(|crl| crl.current_at(at)) {
            return Revocation::NotRevoked {
                crl: crl.source.clone(),
            };
        }
        covering
            .last()
            .map_or(Revocation::NoCrl, |crl| Revocation::StaleCrl {
                crl: crl.source.clone(),
            })
    }

    /// Adds one DER certificate; an undecodable one is recorded as skipped.
    /// Returns whether it was added.
    pub fn add_der(&mut self, raw: &[u8], source: impl Into<String>) -> bool {
        let source = source.into();
        match Certificate::from_der(raw) {
            Ok(cert) => {
                self.certs.push(TrustedCert {
                    raw: raw.to_vec(),
                    cert,
                    source,
                });
                true
            }
            Err(e) => {
                self.skipped.push(Skipped {
                    source,
                    reason: format!("undecodable certificate: {e}"),
                });
                false
            }
        }
    }

    /// Adds the certificates of a DER or PEM certificate file (PEM may hold several).
    /// Returns how many were added.
    pub fn add_certificate_bytes(&mut self, bytes: &[u8], source: &str) -> usize {
        if !bytes.starts_with(b"-----BEGIN") {
            return usize::from(self.add_der(bytes, source));
        }
        let text = String::from_utf8_lossy(bytes);
        let mut added = 0;
        for (i, block) in text.split("-----BEGIN").skip(1).enumerate() {
            let pem = format!("-----BEGIN{block}");
            let name = format!("{source}#{i}");
            match der::pem::decode_vec(pem.as_bytes()) {
                Ok(("CERTIFICATE", der)) => {
                    added += usize::from(self.add_der(&der, name));
                }
                Ok((label, _)) => self.skipped.push(Skipped {
                    source: name,
                    reason: format!("PEM block is {label}, not CERTIFICATE"),
                }),
                Err(e) => self.skipped.push(Skipped {
                    source: name,
                    reason: format!("bad PEM: {e}"),
                }),
            }
        }
        added
    }

    /// Adds every certificate of an ICAO CSCA master list whose own signature verifies (see
    /// [`masterlist::verify_signature`]; a list anchored only in itself is added and reported as
    /// such). A list whose signature does not verify was altered or is not what it claims: none
    /// of its certificates is added, each is recorded as skipped. Returns how many were added.
    pub fn add_master_list(
        &mut self,
        bytes: &[u8],
        source: &str,
    ) -> Result<usize, MasterListError> {
        let list = masterlist::parse(bytes)?;
        let trusted: Vec<&[u8]> = self.raw_certificates().collect();
        let signature = masterlist::verify_signature(&list, &trusted);
        let mut added = 0;
        for (i, raw) in list.certificates.iter().enumerate() {
            let name = format!("{source}[{i}]");
            match &signature {
                Ok(_) => added += usize::from(self.add_der(raw, name)),
                Err(e) => self.skipped.push(Skipped {
                    source: name,
                    reason: format!("master list signature not verified: {e}"),
                }),
            }
        }
        self.lists.push(ListReport {
            source: source.to_string(),
            certificates: list.certificates.len(),
            added,
            signature,
        });
        Ok(added)
    }

    /// Loads a file: a master list (`.ml`), a CRL (`.crl`, DER or PEM; load CSCAs first) or a
    /// DER/PEM certificate.
    pub fn add_file(&mut self, path: &Path) -> Result<usize, TrustError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TrustError::Io {
            path: name.clone(),
            source,
        })?;
        let extension = path.extension().map(|e| e.to_ascii_lowercase());
        if extension.as_ref().is_some_and(|e| e == "ml") {
            self.add_master_list(&bytes, &name)
                .map_err(|source| TrustError::MasterList { path: name, source })
        } else if extension.as_ref().is_some_and(|e| e == "crl") {
            Ok(self.add_crl_bytes(&bytes, &name))
        } else {
            Ok(self.add_certificate_bytes(&bytes, &name))
        }
    }
}
