//! CMS SignedData signatures as ICAO uses them (RFC 5652, 5.4 and 11): EF.SOD and CSCA master
//! lists are both signed this way.
//!
//! The signature covers the signed attributes as received (their `[0]` tag read as SET OF); the
//! content-type attribute must name the encapsulated content's type and the message-digest
//! attribute must be the hash of the encapsulated content as received. A SignerInfo without
//! signed attributes is refused: ICAO requires them, and without them the content-type binding
//! would be lost.

use cms::signed_data::SignerIdentifier;
use der::Decode;
use der::asn1::ObjectIdentifier;
use emrtd::lds::sod::SignerInfo;
use sha2::Digest;
use spki::AlgorithmIdentifierRef;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::verify::{self, Verified, VerifyError};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A hash algorithm of CMS and the LDS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        Some(match oid {
            SHA1 => Self::Sha1,
            SHA224 => Self::Sha224,
            SHA256 => Self::Sha256,
            SHA384 => Self::Sha384,
            SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The signature algorithm combining this hash with a bare key algorithm, as a SignerInfo
    /// may name only `id-ecPublicKey` or `rsaEncryption` (RFC 5754 permits the latter).
    fn with_key(self, key: ObjectIdentifier) -> Option<ObjectIdentifier> {
        let suffix = match (key, self) {
            (ID_EC_PUBLIC_KEY, Self::Sha1) => "1.2.840.10045.4.1",
            (ID_EC_PUBLIC_KEY, Self::Sha224) => "1.2.840.10045.4.3.1",
            (ID_EC_PUBLIC_KEY, Self::Sha256) => "1.2.840.10045.4.3.2",
            (ID_EC_PUBLIC_KEY, Self::Sha384) => "1.2.840.10045.4.3.3",
            (ID_EC_PUBLIC_KEY, Self::Sha512) => "1.2.840.10045.4.3.4",
            (ID_RSA, Self::Sha1) => "1.2.840.113549.1.1.5",
            (ID_RSA, Self::Sha224) => "1.2.840.113549.1.1.14",
            (ID_RSA, Self::Sha256) => "1.2.840.113549.1.1.11",
            (ID_RSA, Self::Sha384) => "1.2.840.113549.1.1.12",
            (ID_RSA, Self::Sha512) => "1.2.840.113549.1.1.13",
            _ => return None,
        };
        ObjectIdentifier::new(suffix).ok()
    }
}

/// Signature algorithms whose hash is SHA-1 (refused unless configured).
pub(crate) fn uses_sha1(algorithm: ObjectIdentifier) -> bool {
    [
        "1.2.840.10045.4.1",
        "1.2.840.113549.1.1.5",
        "1.3.14.3.2.29",
        "1.2.840.10040.4.3",
    ]
    .iter()
    .any(|o| ObjectIdentifier::new(o).ok() == Some(algorithm))
}

/// Why a SignerInfo does not prove its content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedDataError {
    #[error("SignerInfo has no signed attributes")]
    NoSignedAttributes,
    #[error("content-type attribute is missing")]
    NoContentType,
    #[error("content-type attribute {found} does not name the content ({expected})")]
    ContentTypeMismatch {
        expected: ObjectIdentifier,
        found: ObjectIdentifier,
    },
    #[error("message-digest attribute is missing")]
    NoMessageDigest,
    #[error("message-digest attribute is not the hash of the content")]
    MessageDigestMismatch,
    #[error("unsupported digest algorithm {0}")]
    UnsupportedDigest(ObjectIdentifier),
    #[error("SHA-1 is not accepted by the configured policy")]
    Sha1Refused,
    #[error("signer certificate not found among the certificates given")]
    SignerCertificateNotFound,
    #[error("signature over the signed attributes: {0}")]
    Signature(#[from] VerifyError),
}

/// The certificate (DER as received) a SignerInfo's identifier names, if among `certificates`.
pub fn find_signer_certificate<'c>(
    sid: &SignerIdentifier,
    certificates: &[&'c [u8]],
) -> Option<&'c [u8]> {
    certificates.iter().copied().find(|raw| {
        let Ok(cert) = Certificate::from_der(raw) else {
            return false;
        };
        let tbs = cert.tbs_certificate();
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                tbs.issuer() == &id.issuer && tbs.serial_number() == &id.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
                .get_extension::<SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, own)| own == *ski),
        }
    })
}

/// Verifies one SignerInfo over `content` (the encapsulated content as received, of type
/// `content_type`) with the key of `signer_certificate` (DER as received).
pub fn verify_signer_info(
    signer: &SignerInfo<'_>,
    content_type: ObjectIdentifier,
    content: &[u8],
    signer_certificate: &[u8],
    allow_sha1: bool,
) -> Result<Verified, SignedDataError> {
    let attributes = signer
        .signed_attributes
        .ok_or(SignedDataError::NoSignedAttributes)?;
    let found = attributes
        .content_type
        .ok_or(SignedDataError::NoContentType)?;
    if found != content_type {
        return Err(SignedDataError::ContentTypeMismatch {
            expected: content_type,
            found,
        });
    }
    let hash = HashAlgorithm::from_oid(signer.digest_algorithm.oid).ok_or(
        SignedDataError::UnsupportedDigest(signer.digest_algorithm.oid),
    )?;
    let digest = attributes
        .message_digest
        .ok_or(SignedDataError::NoMessageDigest)?;
    if hash.digest(content) != digest {
        return Err(SignedDataError::MessageDigestMismatch);
    }
    let algorithm = match hash.with_key(signer.signature_algorithm.oid) {
        Some(oid) => AlgorithmIdentifierRef {
            oid,
            parameters: None,
        },
        None => signer.signature_algorithm,
    };
    if !allow_sha1 && (hash == HashAlgorithm::Sha1 || uses_sha1(algorithm.oid)) {
        return Err(SignedDataError::Sha1Refused);
    }
    let key = verify::certificate_parts(signer_certificate)?.spki;
    Ok(verify::verify_signature(
        key,
        &algorithm,
        &attributes.signed_bytes(),
        signer.signature,
    )?)
}
