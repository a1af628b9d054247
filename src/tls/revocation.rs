//! Revocation that bites: the CA's certificate revocation lists, read from a directory, checked
//! at every handshake (through rustls's verifier) and, by serial, on every call, since an HTTP/2
//! connection outlives the moment its certificate is revoked by hours.
//!
//! A new set of lists replaces the old one only whole and only when every file in the directory
//! parses and is signed by the CA: a half-written or forged file keeps the previous set in force
//! (revocations are never lost by a bad reload), and the verifier never meets a list it would
//! reject mid-handshake.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};

use super::identity::Serial;

/// The CA's lists in force; a cheap clone shared by the verifier's builder and every handler.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    ca: Certificate,
    current: ArcSwap<CrlSet>,
}

/// One complete reading of the CRL directory.
pub(crate) struct CrlSet {
    serials: HashSet<Serial>,
    pub(crate) crls: Vec<CertificateRevocationListDer<'static>>,
    stamps: Vec<FileStamp>,
}

/// What the poller compares to notice a changed directory without reading the files.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    name: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("CRL directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a CRL: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}: CRL issued by another CA", path.display())]
    ForeignIssuer { path: PathBuf },
    #[error("{}: CRL signature does not verify with the CA's key", path.display())]
    BadSignature { path: PathBuf },
    #[error("{}: CRL signature algorithm {oid} is not supported", path.display())]
    UnsupportedAlgorithm { path: PathBuf, oid: String },
    #[error(
        "no CRL from the CA in {}: every handshake would be refused; create one with `bhyt-verify pki crl`",
        dir.display()
    )]
    NoCrl { dir: PathBuf },
    #[error("CA certificate: {0}")]
    Ca(String),
}

impl Revocations {
    /// Reads every CRL in `dir` (`*.pem`, `*.crl`, `*.der`; PEM may hold several lists). Each
    /// must be signed by `ca`, and at least one must exist.
    pub fn load(dir: &Path, ca_der: &[u8]) -> Result<Self, RevocationError> {
        let ca = Certificate::from_der(ca_der).map_err(|e| RevocationError::Ca(e.to_string()))?;
        let set = read_dir(dir, &ca)?;
        Ok(Revocations {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                ca,
                current: ArcSwap::from_pointee(set),
            }),
        })
    }

    /// Whether the certificate with this serial is on the CA's lists in force. One atomic load
    /// and one hash look-up: cheap enough for every call.
    pub fn is_revoked(&self, serial: &Serial) -> bool {
        self.inner.current.load().serials.contains(serial)
    }

    /// How many serials the lists in force revoke.
    pub fn revoked_count(&self) -> usize {
        self.inner.current.load().serials.len()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether the directory's files differ (names, sizes, modification times) from the set in
    /// force. Reads metadata only.
    pub(crate) fn changed_on_disk(&self) -> Result<bool, RevocationError> {
        Ok(stamps(&self.inner.dir)? != self.inner.current.load().stamps)
    }

    /// Reads the directory again without putting the result in force.
    pub(crate) fn read(&self) -> Result<CrlSet, RevocationError> {
        read_dir(&self.inner.dir, &self.inner.ca)
    }

    /// Puts a set in force (after the caller built a verifier from it).
    pub(crate) fn install(&self, set: CrlSet) {
        self.inner.current.store(Arc::new(set));
    }

    pub(crate) fn crls(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.inner.current.load().crls.clone()
    }
}

fn is_crl_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !hidden && matches!(ext.as_deref(), Some("pem" | "crl" | "der"))
}

fn stamps(dir: &Path) -> Result<Vec<FileStamp>, RevocationError> {
    let dir_error = |source| RevocationError::Dir {
        dir: dir.to_owned(),
        source,
    };
    let mut stamps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let path = entry.path();
        if !is_crl_file(&path) {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| RevocationError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_file() {
            stamps.push(FileStamp {
                name: path,
                len: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    stamps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stamps)
}

fn read_dir(dir: &Path, ca: &Certificate) -> Result<CrlSet, RevocationError> {
    let stamps = stamps(dir)?;
    let mut set = CrlSet {
        serials: HashSet::new(),
        crls: Vec::new(),
        stamps,
    };
    for stamp in &set.stamps {
        let path = &stamp.name;
        let bytes = std::fs::read(path).map_err(|source| RevocationError::Read {
            path: path.clone(),
            source,
        })?;
        for der in split_file(path, &bytes)? {
            let list = verified_list(path, &der, ca)?;
            let revoked = list.tbs_cert_list.revoked_certificates.iter().flatten();
            set.serials
                .extend(revoked.map(|r| Serial::from_bytes(r.serial_number.as_bytes())));
            set.crls.push(der);
        }
    }
    if set.crls.is_empty() {
        return Err(RevocationError::NoCrl {
            dir: dir.to_owned(),
        });
    }
    Ok(set)
}

/// A file holds one DER list, or PEM with one or more `X509 CRL` blocks.
fn split_file(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, RevocationError> {
    let malformed = |reason: String| RevocationError::Malformed {
        path: path.to_owned(),
        reason,
    };
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())]);
    }
    let lists = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    if lists.is_empty() {
        return Err(malformed("no X509 CRL block".into()));
    }
    Ok(lists)
}

/// Parses a list and checks that the CA issued and signed it.
fn verified_list(
    path: &Path,
    der: &[u8],
    ca: &Certificate,
) -> Result<CertificateList, RevocationError> {
    let list = CertificateList::from_der(der).map_err(|e| RevocationError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let ca_tbs = ca.tbs_certificate();
    if &list.tbs_cert_list.issuer != ca_tbs.subject() {
        return Err(RevocationError::ForeignIssuer {
            path: path.to_owned(),
        });
    }
    let signed = list
        .tbs_cert_list
        .to_der()
        .map_err(|e| RevocationError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let spki = ca_tbs.subject_public_key_info();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let algorithm =
        verification_algorithm(list.signature_algorithm.oid, curve).ok_or_else(|| {
            RevocationError::UnsupportedAlgorithm {
                path: path.to_owned(),
                oid: list.signature_algorithm.oid.to_string(),
            }
        })?;
    ring::signature::UnparsedPublicKey::new(algorithm, spki.subject_public_key.raw_bytes())
        .verify(&signed, list.signature.raw_bytes())
        .map_err(|_| RevocationError::BadSignature {
            path: path.to_owned(),
        })?;
    Ok(list)
}

/// The CA algorithms ring can verify: the CA `pki init` makes is ECDSA P-256; the others let
/// an operator bring an existing private CA.
fn verification_algorithm(
    signature: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
) -> Option<&'static dyn ring::signature::VerificationAlgorithm> {
    use ring::signature as sig;
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    Some(match (signature, curve) {
        (ECDSA_SHA256, Some(P256)) => &sig::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA256, Some(P384)) => &sig::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, Some(P256)) => &sig::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA384, Some(P384)) => &sig::ECDSA_P384_SHA384_ASN1,
        (ED25519, _) => &sig::ED25519,
        (RSA_SHA256, _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Pki, Validity};
    use crate::tls::identity::{Claims, Role};

    fn station(name: &str) -> Claims {
        Claims::new(Role::Station, Some("01821".into()), Some(name.into())).unwrap()
    }

    #[test]
    fn revocation_shows_after_reading_again_and_bad_files_keep_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), "test CA", Validity::days(30)).unwrap();
        let desk = pki
            .issue_client("desk-1", &station("desk-1"), Validity::days(1))
            .unwrap();
        let revocations = Revocations::load(&pki.crl_dir(), pki.ca_der()).unwrap();
        assert!(!revocations.is_revoked(&desk.serial));
        assert!(!revocations.changed_on_disk().unwrap());

        pki.revoke("desk-1").unwrap();
        assert!(revocations.changed_on_disk().unwrap());
        // Still the old set until the new one is put in force: the poller's job.
        assert!(!revocations.is_revoked(&desk.serial));
        revocations.install(revocations.read().unwrap());
        assert!(revocations.is_revoked(&desk.serial));
        assert_eq!(revocations.revoked_count(), 1);

        // A truncated file: reading fails, naming the file; the set in force stays.
        let truncated = pki.crl_dir().join("partial.der");
        let crl = std::fs::read(pki.crl_dir().join("crl.pem")).unwrap();
        std::fs::write(&truncated, &crl[..crl.len() / 2]).unwrap();
        let err = revocations
            .read()
            .err()
            .expect("a truncated CRL must not load");
        assert!(err.to_string().contains("partial.der"), "{err}");
        assert!(revocations.is_revoked(&desk.serial));
    }

    #[test]
    fn lists_from_another_ca_or_altered_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Pki::init(&dir.path().join("ours"), "test CA", Validity::days(30)).unwrap();
        // Same name, other key: only the signature tells them apart.
        let theirs = Pki::init(&dir.path().join("theirs"), "test CA", Validity::days(30)).unwrap();
        let other_name =
            Pki::init(&dir.path().join("other"), "other CA", Validity::days(30)).unwrap();
        let load = |pki: &Pki| Revocations::load(&pki.crl_dir(), ours.ca_der());
        assert!(load(&ours).is_ok());
        assert!(matches!(
            load(&theirs),
            Err(RevocationError::BadSignature { .. })
        ));
        assert!(matches!(
            load(&other_name),
            Err(RevocationError::ForeignIssuer { .. })
        ));

        // One flipped bit in the signed part (the thisUpdate time): the signature fails.
        let pem = std::fs::read(ours.crl_dir().join("crl.pem")).unwrap();
        let mut der = CertificateRevocationListDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec();
        // thisUpdate is a UTCTime (tag 0x17, 13 bytes "YYMMDDHHMMSSZ"); xor 1 keeps a digit a digit.
        let time = der.windows(2).position(|w| w == [0x17, 0x0d]).unwrap();
        der[time + 2 + 11] ^= 1;
        let altered = dir.path().join("altered");
        std::fs::create_dir(&altered).unwrap();
        std::fs::write(altered.join("crl.der"), der).unwrap();
        assert!(matches!(
            Revocations::load(&altered, ours.ca_der()),
            Err(RevocationError::BadSignature { .. })
        ));

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(matches!(
            Revocations::load(&empty, ours.ca_der()),
            Err(RevocationError::NoCrl { .. })
        ));
    }
}
