//! The operators' private certificate authority: creates the CA, issues the certificates of
//! stations, HIS integrations, auditors, administrators and the server, and revokes them by
//! maintaining the CA's revocation list (CRL), which the server reloads without restart.
//!
//! Keys are ECDSA P-256 (rcgen with ring; no second crypto provider). Layout, under
//! `<data_dir>/pki` by default ([`Layout`]):
//!
//! ```text
//! ca.pem                      the CA certificate: the server's only client root; give it to clients
//! ca.key                      the CA private key (mode 0600): keep it offline where possible
//! revoked.txt                 revoked serials, one a line: "<hex serial> <RFC 3339 time> <name>"
//! crl/crl.pem                 the signed CRL made from revoked.txt: the server's `crl_dir`
//! issued/<name>.pem, .key     issued certificates and their keys (0600), to hand to their holder
//! revoked/<name>-<serial>.pem the same, moved aside when revoked (the name can be issued again)
//! ```

pub mod cli;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};

use crate::tls::identity::{Claims, IdentityError, Serial};

/// The organisation name in every subject the CA writes.
const ORGANISATION: &str = "bhyt-verify";
/// How long a CRL says it is current. The server does not refuse an older one (locking every
/// client out because an operator forgot to re-sign would be worse); `pki crl` re-signs it.
const CRL_VALIDITY_DAYS: i64 = 30;

/// Where the files of one CA live.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn revoked_list(&self) -> PathBuf {
        self.dir.join("revoked.txt")
    }

    pub fn crl_dir(&self) -> PathBuf {
        self.dir.join("crl")
    }

    pub fn crl_file(&self) -> PathBuf {
        self.crl_dir().join("crl.pem")
    }

    pub fn issued_cert(&self, name: &str) -> PathBuf {
        self.dir.join("issued").join(format!("{name}.pem"))
    }

    pub fn issued_key(&self, name: &str) -> PathBuf {
        self.dir.join("issued").join(format!("{name}.key"))
    }

    fn revoked_file(&self, name: &str, serial: &Serial, ext: &str) -> PathBuf {
        self.dir
            .join("revoked")
            .join(format!("{name}-{serial}.{ext}"))
    }
}

/// A certificate's validity period.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clocks of clinic PCs drift) to `days` from now.
    pub fn days(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

/// A certificate just issued, and where it was written.
#[derive(Clone, Debug)]
pub struct Issued {
    pub name: String,
    pub serial: Serial,
    pub not_after: OffsetDateTime,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// One line of `revoked.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Serial,
    pub revoked_at: OffsetDateTime,
    pub name: String,
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no CA in {}: run `bhyt-verify pki init` first", .0.display())]
    NotInitialised(PathBuf),
    #[error("a CA already exists in {}", .0.display())]
    AlreadyInitialised(PathBuf),
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("name {0:?}: 1-64 characters from A-Z a-z 0-9 . _ -, not starting with '.'")]
    BadName(String),
    #[error("a certificate named {0:?} is already issued: revoke it first or choose another name")]
    NameTaken(String),
    #[error("no issued certificate named {0:?}")]
    NoSuchCertificate(String),
    #[error("a server certificate needs at least one --dns name or --ip address")]
    NoServerNames,
    #[error("the CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("the CA subject cannot be reproduced exactly: {0}")]
    CaSubject(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// An open CA: its certificate and signing key.
pub struct Pki {
    layout: Layout,
    ca_der: CertificateDer<'static>,
    ca: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Creates a CA (ECDSA P-256) and its first, empty CRL in `dir`.
    pub fn init(dir: &Path, ca_name: &str, validity: Validity) -> Result<Self, PkiError> {
        let layout = Layout::new(dir);
        if layout.ca_cert().exists() || layout.ca_key().exists() {
            return Err(PkiError::AlreadyInitialised(dir.to_owned()));
        }
        for sub in [
            dir.to_owned(),
            dir.join("issued"),
            dir.join("revoked"),
            layout.crl_dir(),
        ] {
            std::fs::create_dir_all(&sub).map_err(|source| PkiError::Io { path: sub, source })?;
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, ca_name);
        name.push(DnType::OrganizationName, ORGANISATION);
        let mut params = ca_params(name);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        write_file(&layout.ca_key(), key.serialize_pem().as_bytes(), true)?;
        write_file(&layout.ca_cert(), cert.pem().as_bytes(), false)?;
        write_file(&layout.revoked_list(), REVOKED_HEADER.as_bytes(), false)?;
        let pki = Pki::from_parts(layout, cert.der().clone(), Issuer::new(params, key))?;
        pki.write_crl()?;
        Ok(pki)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let layout = Layout::new(dir);
        if !layout.ca_cert().exists() {
            return Err(PkiError::NotInitialised(dir.to_owned()));
        }
        let ca_der =
            CertificateDer::from_pem_file(layout.ca_cert()).map_err(|e| PkiError::BadFile {
                path: layout.ca_cert(),
                reason: e.to_string(),
            })?;
        let key_pem = read_string(&layout.ca_key())?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadFile {
            path: layout.ca_key(),
            reason: e.to_string(),
        })?;
        let ca = parse_cert(&layout.ca_cert(), &ca_der)?;
        let params = ca_params(subject_of(&ca)?);
        Pki::from_parts(layout, ca_der, Issuer::new(params, key))
    }

    fn from_parts(
        layout: Layout,
        ca_der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    ) -> Result<Self, PkiError> {
        let ca = parse_cert(&layout.ca_cert(), &ca_der)?;
        let spki_key = ca
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        if spki_key != issuer.key().der_bytes() {
            return Err(PkiError::KeyMismatch);
        }
        Ok(Pki {
            layout,
            ca_der,
            ca,
            issuer,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    pub fn crl_dir(&self) -> PathBuf {
        self.layout.crl_dir()
    }

    /// Issues a client certificate carrying `claims` (see `crate::tls` for the URI scheme).
    pub fn issue_client(
        &self,
        name: &str,
        claims: &Claims,
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        let mut params = self.leaf_params(name, validity)?;
        for uri in claims.uris() {
            params
                .subject_alt_names
                .push(SanType::URI(Ia5String::try_from(uri)?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    /// Issues the server's certificate for the names and addresses clients connect to.
    pub fn issue_server(
        &self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        if dns.is_empty() && ips.is_empty() {
            return Err(PkiError::NoServerNames);
        }
        let mut params = self.leaf_params(name, validity)?;
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(Ia5String::try_from(d.as_str())?));
        }
        params
            .subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    fn leaf_params(&self, name: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
        check_name(name)?;
        if self.layout.issued_cert(name).exists() {
            return Err(PkiError::NameTaken(name.to_owned()));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANISATION);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn issue(&self, name: &str, params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_path = self.layout.issued_cert(name);
        let parsed = parse_cert(&cert_path, cert.der())?;
        // Chain building compares names byte for byte; a CA re-opened from its file must
        // reproduce its subject exactly.
        if parsed.tbs_certificate().issuer() != self.ca.tbs_certificate().subject() {
            return Err(PkiError::CaSubject(
                "issued certificate's issuer differs from the CA subject".into(),
            ));
        }
        let key_path = self.layout.issued_key(name);
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write_file(&key_path, key_pem.as_bytes(), true)?;
        write_file(&cert_path, cert_pem.as_bytes(), false)?;
        Ok(Issued {
            name: name.to_owned(),
            serial: Serial::from_bytes(parsed.tbs_certificate().serial_number().as_bytes()),
            not_after: params.not_after,
            cert_path,
            key_path,
            cert_pem,
            key_pem,
        })
    }

    /// Revokes the certificate issued under `name`: its serial goes on the list, the CRL is
    /// re-signed, and its files move to `revoked/`.
    pub fn revoke(&self, name: &str) -> Result<Serial, PkiError> {
        check_name(name)?;
        let cert_path = self.layout.issued_cert(name);
        if !cert_path.exists() {
            return Err(PkiError::NoSuchCertificate(name.to_owned()));
        }
        let der = CertificateDer::from_pem_file(&cert_path).map_err(|e| PkiError::BadFile {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
        let serial = Serial::from_bytes(
            parse_cert(&cert_path, &der)?
                .tbs_certificate()
                .serial_number()
                .as_bytes(),
        );
        self.revoke_serial(&serial, name)?;
        for ext in ["pem", "key"] {
            let from = self.layout.dir.join("issued").join(format!("{name}.{ext}"));
            if from.exists() {
                let to = self.layout.revoked_file(name, &serial, ext);
                std::fs::rename(&from, &to).map_err(|source| PkiError::Io { path: to, source })?;
            }
        }
        Ok(serial)
    }

    /// Revokes a serial (e.g. of a certificate whose file is gone) and re-signs the CRL.
    /// Revoking a serial twice keeps one entry.
    pub fn revoke_serial(&self, serial: &Serial, name: &str) -> Result<(), PkiError> {
        let path = self.layout.revoked_list();
        if !self.revoked()?.iter().any(|r| &r.serial == serial) {
            let at = OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
            let line = format!(
                "{serial} {} {}\n",
                at.format(&Rfc3339).expect("a UTC time formats as RFC 3339"),
                name.replace(char::is_whitespace, "_")
            );
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(|source| PkiError::Io {
                    path: path.clone(),
                    source,
                })?;
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| PkiError::Io { path, source })?;
        }
        self.write_crl()?;
        Ok(())
    }

    /// The revoked serials, from `revoked.txt`.
    pub fn revoked(&self) -> Result<Vec<RevokedEntry>, PkiError> {
        let path = self.layout.revoked_list();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(PkiError::Io { path, source }),
        };
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| PkiError::BadFile {
                path: path.clone(),
                reason: format!("line {}: {reason}", n + 1),
            };
            let mut fields = line.split_whitespace();
            let serial = fields
                .next()
                .and_then(|s| s.parse::<Serial>().ok())
                .ok_or_else(|| bad("serial: hex digits"))?;
            let revoked_at = fields
                .next()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .ok_or_else(|| bad("revocation time: RFC 3339"))?;
            entries.push(RevokedEntry {
                serial,
                revoked_at,
                name: fields.next().unwrap_or("").to_owned(),
            });
        }
        Ok(entries)
    }

    /// Signs a CRL of every revoked serial, valid for 30 days, and puts it in place atomically
    /// (the server may read the directory at any moment).
    pub fn write_crl(&self) -> Result<PathBuf, PkiError> {
        let now = OffsetDateTime::now_utc();
        let number = (now.unix_timestamp_nanos() / 1000).max(1) as u128;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(CRL_VALIDITY_DAYS),
            // Increases with every CRL the CA signs (microseconds since 1970).
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()[6..]),
            issuing_distribution_point: None,
            revoked_certs: self
                .revoked()?
                .into_iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: r.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        let path = self.layout.crl_file();
        write_file(&path, crl.pem()?.as_bytes(), false)?;
        Ok(path)
    }
}

const REVOKED_HEADER: &str = "# Revoked certificates: <hex serial> <RFC 3339 time> <name>. \
Edit with `bhyt-verify pki revoke`; `bhyt-verify pki crl` re-signs the CRL.\n";

fn ca_params(name: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    // Path length 0: the CA signs end entities only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Rebuilds rcgen's form of the CA's subject from the certificate (rcgen reads certificates
/// only through x509-parser, which would bring a second ASN.1 stack into the build).
fn subject_of(ca: &Certificate) -> Result<DistinguishedName, PkiError> {
    let mut name = DistinguishedName::new();
    for rdn in ca.tbs_certificate().subject().iter_rdn() {
        for attr in rdn.iter() {
            let ty = match attr.oid.to_string().as_str() {
                "2.5.4.3" => DnType::CommonName,
                "2.5.4.10" => DnType::OrganizationName,
                "2.5.4.11" => DnType::OrganizationalUnitName,
                "2.5.4.6" => DnType::CountryName,
                "2.5.4.8" => DnType::StateOrProvinceName,
                "2.5.4.7" => DnType::LocalityName,
                other => return Err(PkiError::CaSubject(format!("attribute {other}"))),
            };
            let value = if let Ok(s) = attr.value.decode_as::<Utf8StringRef<'_>>() {
                DnValue::Utf8String(s.as_str().to_owned())
            } else if let Ok(s) = attr.value.decode_as::<PrintableStringRef<'_>>() {
                DnValue::PrintableString(PrintableString::try_from(s.as_str())?)
            } else {
                return Err(PkiError::CaSubject(format!("string type of {}", attr.oid)));
            };
            name.push(ty, value);
        }
    }
    Ok(name)
}

fn parse_cert(path: &Path, der: &[u8]) -> Result<Certificate, PkiError> {
    Certificate::from_der(der).map_err(|e| PkiError::BadFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// 16 random bytes, positive.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01 << 6;
    SerialNumber::from_slice(&bytes)
}

/// File names under `issued/`: no separators, no hidden files.
fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| PkiError::BadName(name.to_owned()))
}

fn read_string(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes through a hidden temporary file and a rename, so readers see the old or the new file,
/// never half of one; private keys are created readable by the owner only.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = String::from(".");
    let _ = write!(
        tmp_name,
        "{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    );
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::identity::{PeerIdentity, Role};

    #[test]
    fn a_reopened_ca_issues_certificates_that_chain_and_carry_their_claims() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::init(dir.path(), "Bệnh viện test CA", Validity::days(30)).unwrap();
        let pki = Pki::open(dir.path()).unwrap();
        assert_eq!(first.ca_der(), pki.ca_der());
        let claims =
            Claims::new(Role::Station, Some("01821".into()), Some("desk-1".into())).unwrap();
        let issued = pki
            .issue_client("desk-1", &claims, Validity::days(10))
            .unwrap();
        let identity =
            PeerIdentity::from_der(&CertificateDer::from_pem_file(&issued.cert_path).unwrap())
                .unwrap();
        assert_eq!(identity.claims, claims);
        assert_eq!(identity.serial, issued.serial);
        assert_eq!(
            identity.not_after.unix_timestamp(),
            issued.not_after.unix_timestamp()
        );
        assert!(matches!(
            pki.issue_client("desk-1", &claims, Validity::days(10)),
            Err(PkiError::NameTaken(_))
        ));
        assert!(matches!(
            pki.issue_client("../x", &claims, Validity::days(10)),
            Err(PkiError::BadName(_))
        ));
        assert!(matches!(
            Pki::init(dir.path(), "again", Validity::days(1)),
            Err(PkiError::AlreadyInitialised(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&issued.key_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "keys are private");
        }
    }

    #[test]
    fn revoking_lists_the_serial_once_and_frees_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), "test CA", Validity::days(30)).unwrap();
        let claims = Claims::new(Role::Auditor, None, None).unwrap();
        let issued = pki
            .issue_client("audit-1", &claims, Validity::days(10))
            .unwrap();
        assert_eq!(pki.revoke("audit-1").unwrap(), issued.serial);
        pki.revoke_serial(&issued.serial, "audit-1").unwrap();
        let revoked = pki.revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].serial, issued.serial);
        assert!(!issued.cert_path.exists());
        assert!(matches!(
            pki.revoke("audit-1"),
            Err(PkiError::NoSuchCertificate(_))
        ));
        pki.issue_client("audit-1", &claims, Validity::days(10))
            .unwrap();

        std::fs::write(pki.layout().revoked_list(), "zz 2025-01-01T00:00:00Z x\n").unwrap();
        let err = pki.revoked().unwrap_err().to_string();
        assert!(err.contains("line 1: serial"), "{err}");
    }
}
