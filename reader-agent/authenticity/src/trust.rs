//! CSCA trust store: the certificates a Document Signer may chain to.
//!
//! Real trust data holds certificates some decoders reject; a store skips those, counts them and
//! says why, so one odd certificate never costs a whole master list.

use std::fmt;
use std::path::Path;

use der::Decode;
use x509_cert::Certificate;

use crate::masterlist::{self, MasterListError};

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

/// The CSCA certificates trusted for passive authentication.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    certs: Vec<TrustedCert>,
    skipped: Vec<Skipped>,
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
                Ok((label, der)) if label == "CERTIFICATE" => {
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

    /// Adds every certificate of an ICAO CSCA master list. Returns how many were added.
    pub fn add_master_list(
        &mut self,
        bytes: &[u8],
        source: &str,
    ) -> Result<usize, MasterListError> {
        let list = masterlist::parse(bytes)?;
        let mut added = 0;
        for (i, raw) in list.certificates.iter().enumerate() {
            added += usize::from(self.add_der(raw, format!("{source}[{i}]")));
        }
        Ok(added)
    }

    /// Loads a file: a master list (`.ml`) or a DER/PEM certificate.
    pub fn add_file(&mut self, path: &Path) -> Result<usize, TrustError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TrustError::Io {
            path: name.clone(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ml"))
        {
            self.add_master_list(&bytes, &name)
                .map_err(|source| TrustError::MasterList { path: name, source })
        } else {
            Ok(self.add_certificate_bytes(&bytes, &name))
        }
    }
}
