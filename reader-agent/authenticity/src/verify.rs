//! Certificate signatures over the bytes as received: the TBS slice of the certificate as it
//! was published, never a re-encoding (some real certificates do not re-encode identically).
//!
//! Curves may be named by OID or given by explicit parameters (about a quarter of real CSCA keys);
//! explicit parameters are matched field by field against the curves this crate can verify on,
//! and a key matching none is refused.

use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Reader, Sequence, SliceReader, Tagged};
use ecdsa::signature::hazmat::PrehashVerifier;
use elliptic_curve::ff::PrimeField;
use emrtd::pace::DomainCurve;
use primeorder::PrimeCurveParams;
use sha2::Digest;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::curves::bp512::BrainpoolP512r1;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const BP256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
const BP384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.11");
const BP512_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.13");

/// A curve this crate verifies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NamedCurve {
    P256,
    P384,
    P521,
    BrainpoolP256r1,
    BrainpoolP384r1,
    /// Built in [`crate::curves::bp512`]: Vietnam's CSCA key is on it.
    BrainpoolP512r1,
}

/// The scheme a signature verified under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verified {
    Ecdsa(NamedCurve),
    RsaPkcs1v15,
    RsaPss,
}

/// Why a signature was not verified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    #[error("signature does not verify")]
    BadSignature,
    #[error("unsupported signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(ObjectIdentifier),
    #[error("unsupported public key algorithm {0}")]
    UnsupportedKeyAlgorithm(ObjectIdentifier),
    #[error("unsupported named curve {0}")]
    UnsupportedNamedCurve(ObjectIdentifier),
    /// Explicit parameters matching none of the supported curves.
    #[error("explicit EC parameters match no supported curve ({field_bits}-bit prime field)")]
    UnknownExplicitCurve { field_bits: usize },
    #[error("malformed public key or signature")]
    Malformed,
}

const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.14");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// RSASSA-PSS-params (RFC 4055); absent fields take their SHA-1 / 20-byte defaults.
#[derive(Sequence)]
struct PssParams<'a> {
    #[asn1(context_specific = "0", optional = "true")]
    hash: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "1", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "2", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", optional = "true")]
    trailer_field: Option<u8>,
}

/// Verifies an RSA signature with digest `$d` under `$scheme`.
macro_rules! rsa_verify {
    ($key:expr, $d:ty, $scheme:expr, $signed:expr, $signature:expr) => {{
        let hashed = <$d as Digest>::digest($signed);
        $key.verify($scheme, &hashed, $signature)
            .map_err(|_| VerifyError::BadSignature)
    }};
}

fn verify_rsa(
    spki: &[u8],
    algorithm: &AlgorithmIdentifierRef<'_>,
    signed: &[u8],
    signature: &[u8],
) -> Result<Verified, VerifyError> {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::{Pkcs1v15Sign, pss::Pss};
    let key = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|_| VerifyError::Malformed)?;
    let v15 = |r: Result<(), VerifyError>| r.map(|()| Verified::RsaPkcs1v15);
    match algorithm.oid {
        RSA_SHA1 => v15(rsa_verify!(
            key,
            sha1::Sha1,
            Pkcs1v15Sign::new::<sha1::Sha1>(),
            signed,
            signature
        )),
        RSA_SHA224 => v15(rsa_verify!(
            key,
            sha2::Sha224,
            Pkcs1v15Sign::new::<sha2::Sha224>(),
            signed,
            signature
        )),
        RSA_SHA256 => v15(rsa_verify!(
            key,
            sha2::Sha256,
            Pkcs1v15Sign::new::<sha2::Sha256>(),
            signed,
            signature
        )),
        RSA_SHA384 => v15(rsa_verify!(
            key,
            sha2::Sha384,
            Pkcs1v15Sign::new::<sha2::Sha384>(),
            signed,
            signature
        )),
        RSA_SHA512 => v15(rsa_verify!(
            key,
            sha2::Sha512,
            Pkcs1v15Sign::new::<sha2::Sha512>(),
            signed,
            signature
        )),
        RSA_PSS => {
            let params: PssParams<'_> = algorithm
                .parameters
                .ok_or(VerifyError::Malformed)?
                .decode_as()?;
            let hash = params.hash.map_or(SHA1, |h| h.oid);
            // MGF1 over the same hash is the only mask generation RustCrypto's PSS offers.
            let mgf_hash = match params.mask_gen {
                None => SHA1,
                Some(m) if m.oid == ID_MGF1 => {
                    m.parameters
                        .ok_or(VerifyError::Malformed)?
                        .decode_as::<AlgorithmIdentifierRef<'_>>()?
                        .oid
                }
                Some(m) => return Err(VerifyError::UnsupportedSignatureAlgorithm(m.oid)),
            };
            if mgf_hash != hash || params.trailer_field.is_some_and(|t| t != 1) {
                return Err(VerifyError::UnsupportedSignatureAlgorithm(RSA_PSS));
            }
            let salt = params.salt_length.unwrap_or(20) as usize;
            let r = match hash {
                SHA1 => rsa_verify!(
                    key,
                    sha1::Sha1,
                    Pss::<sha1::Sha1>::new_with_salt(salt),
                    signed,
                    signature
                ),
                SHA224 => rsa_verify!(
                    key,
                    sha2::Sha224,
                    Pss::<sha2::Sha224>::new_with_salt(salt),
                    signed,
                    signature
                ),
                SHA256 => rsa_verify!(
                    key,
                    sha2::Sha256,
                    Pss::<sha2::Sha256>::new_with_salt(salt),
                    signed,
                    signature
                ),
                SHA384 => rsa_verify!(
                    key,
                    sha2::Sha384,
                    Pss::<sha2::Sha384>::new_with_salt(salt),
                    signed,
                    signature
                ),
                SHA512 => rsa_verify!(
                    key,
                    sha2::Sha512,
                    Pss::<sha2::Sha512>::new_with_salt(salt),
                    signed,
                    signature
                ),
                other => return Err(VerifyError::UnsupportedSignatureAlgorithm(other)),
            };
            r.map(|()| Verified::RsaPss)
        }
        other => Err(VerifyError::UnsupportedSignatureAlgorithm(other)),
    }
}

/// SpecifiedECDomain (RFC 3279 / SEC 1): the explicit form of a curve.
#[derive(Sequence)]
struct SpecifiedEcDomain<'a> {
    version: u8,
    field_id: FieldId<'a>,
    curve: CurveCoefficients<'a>,
    base: &'a OctetStringRef,
    order: UintRef<'a>,
    #[asn1(optional = "true")]
    cofactor: Option<UintRef<'a>>,
}

#[derive(Sequence)]
struct FieldId<'a> {
    field_type: ObjectIdentifier,
    prime: UintRef<'a>,
}

#[derive(Sequence)]
struct CurveCoefficients<'a> {
    a: &'a OctetStringRef,
    b: &'a OctetStringRef,
    #[asn1(optional = "true")]
    seed: Option<der::asn1::BitStringRef<'a>>,
}

const ID_PRIME_FIELD: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.1.1");

fn strip(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    let hex = hex.trim_start_matches("0x");
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
        .collect()
}

/// Whether explicit parameters are exactly curve `C`: prime, a, b, generator, order, cofactor.
fn is_curve<C>(d: &SpecifiedEcDomain<'_>) -> bool
where
    C: PrimeCurveParams,
    C::FieldElement: PrimeField,
{
    let prime = hex_to_bytes(<C::FieldElement as PrimeField>::MODULUS);
    let order = hex_to_bytes(&format!("{:x}", C::ORDER.as_ref()));
    let a = C::EQUATION_A.to_repr();
    let b = C::EQUATION_B.to_repr();
    let (gx, gy) = (C::GENERATOR.0.to_repr(), C::GENERATOR.1.to_repr());
    let (gx, gy): (&[u8], &[u8]) = (gx.as_ref(), gy.as_ref());
    let base = d.base.as_bytes();
    let base_ok = match base.first() {
        Some(0x04) => base[1..] == [gx, gy].concat(),
        Some(&tag @ (0x02 | 0x03)) => {
            base[1..] == *gx && (tag & 1) == (gy.last().copied().unwrap_or(0) & 1)
        }
        _ => false,
    };
    d.field_id.field_type == ID_PRIME_FIELD
        && strip(d.field_id.prime.as_bytes()) == strip(&prime)
        && strip(d.curve.a.as_bytes()) == strip(a.as_ref())
        && strip(d.curve.b.as_bytes()) == strip(b.as_ref())
        && base_ok
        && strip(d.order.as_bytes()) == strip(&order)
        && d.cofactor.is_none_or(|h| strip(h.as_bytes()) == [1])
        && d.version >= 1
}

/// The curve of a Chip Authentication key (DG14) from its EC parameters as DER, named or
/// explicit, for `emrtd::ca::CaParams::from_dg14_resolving`. `None` for parameters that are
/// malformed or name a curve the chip protocol does not run ECDH on.
pub fn chip_authentication_curve(parameters: &[u8]) -> Option<DomainCurve> {
    match curve_of(Some(AnyRef::from_der(parameters).ok()?)).ok()? {
        NamedCurve::P256 => Some(DomainCurve::NistP256),
        NamedCurve::BrainpoolP256r1 => Some(DomainCurve::BrainpoolP256r1),
        NamedCurve::BrainpoolP384r1 => Some(DomainCurve::BrainpoolP384r1),
        NamedCurve::P384 | NamedCurve::P521 | NamedCurve::BrainpoolP512r1 => None,
    }
}

/// The explicit form (SpecifiedECDomain, DER) of `curve`, as some issuers write their keys'
/// parameters: for test cards.
#[cfg(feature = "test-pki")]
pub fn explicit_parameters(curve: NamedCurve) -> Vec<u8> {
    match curve {
        NamedCurve::P256 => explicit_form::<p256::NistP256>(),
        NamedCurve::P384 => explicit_form::<p384::NistP384>(),
        NamedCurve::P521 => explicit_form::<p521::NistP521>(),
        NamedCurve::BrainpoolP256r1 => explicit_form::<bp256::BrainpoolP256r1>(),
        NamedCurve::BrainpoolP384r1 => explicit_form::<bp384::BrainpoolP384r1>(),
        NamedCurve::BrainpoolP512r1 => explicit_form::<BrainpoolP512r1>(),
    }
}

#[cfg(feature = "test-pki")]
fn explicit_form<C>() -> Vec<u8>
where
    C: PrimeCurveParams,
    C::FieldElement: PrimeField,
{
    use der::Encode;
    let prime = hex_to_bytes(<C::FieldElement as PrimeField>::MODULUS);
    let order = hex_to_bytes(&format!("{:x}", C::ORDER.as_ref()));
    let (a, b) = (C::EQUATION_A.to_repr(), C::EQUATION_B.to_repr());
    let (gx, gy) = (C::GENERATOR.0.to_repr(), C::GENERATOR.1.to_repr());
    let base = [&[0x04][..], gx.as_ref(), gy.as_ref()].concat();
    let encode = || -> der::Result<Vec<u8>> {
        SpecifiedEcDomain {
            version: 1,
            field_id: FieldId {
                field_type: ID_PRIME_FIELD,
                prime: UintRef::new(&prime)?,
            },
            curve: CurveCoefficients {
                a: OctetStringRef::new(a.as_ref())?,
                b: OctetStringRef::new(b.as_ref())?,
                seed: None,
            },
            base: OctetStringRef::new(&base)?,
            order: UintRef::new(&order)?,
            cofactor: Some(UintRef::new(&[1])?),
        }
        .to_der()
    };
    encode().expect("a curve's parameters encode")
}

/// Resolves a key's curve from its EC parameters (a named-curve OID or explicit parameters).
pub fn curve_of(parameters: Option<AnyRef<'_>>) -> Result<NamedCurve, VerifyError> {
    let params = parameters.ok_or(VerifyError::Malformed)?;
    if let Ok(oid) = params.decode_as::<ObjectIdentifier>() {
        return match oid {
            P256_OID => Ok(NamedCurve::P256),
            P384_OID => Ok(NamedCurve::P384),
            P521_OID => Ok(NamedCurve::P521),
            BP256_OID => Ok(NamedCurve::BrainpoolP256r1),
            BP384_OID => Ok(NamedCurve::BrainpoolP384r1),
            BP512_OID => Ok(NamedCurve::BrainpoolP512r1),
            other => Err(VerifyError::UnsupportedNamedCurve(other)),
        };
    }
    let d: SpecifiedEcDomain<'_> = params.decode_as()?;
    if is_curve::<p256::NistP256>(&d) {
        Ok(NamedCurve::P256)
    } else if is_curve::<p384::NistP384>(&d) {
        Ok(NamedCurve::P384)
    } else if is_curve::<p521::NistP521>(&d) {
        Ok(NamedCurve::P521)
    } else if is_curve::<bp256::BrainpoolP256r1>(&d) {
        Ok(NamedCurve::BrainpoolP256r1)
    } else if is_curve::<bp384::BrainpoolP384r1>(&d) {
        Ok(NamedCurve::BrainpoolP384r1)
    } else if is_curve::<BrainpoolP512r1>(&d) {
        Ok(NamedCurve::BrainpoolP512r1)
    } else {
        Err(VerifyError::UnknownExplicitCurve {
            field_bits: strip(d.field_id.prime.as_bytes()).len() * 8,
        })
    }
}

fn ecdsa_prehash(algorithm: ObjectIdentifier, tbs: &[u8]) -> Result<Vec<u8>, VerifyError> {
    Ok(match algorithm {
        ECDSA_SHA1 => sha1::Sha1::digest(tbs).to_vec(),
        ECDSA_SHA224 => sha2::Sha224::digest(tbs).to_vec(),
        ECDSA_SHA256 => sha2::Sha256::digest(tbs).to_vec(),
        ECDSA_SHA384 => sha2::Sha384::digest(tbs).to_vec(),
        ECDSA_SHA512 => sha2::Sha512::digest(tbs).to_vec(),
        other => return Err(VerifyError::UnsupportedSignatureAlgorithm(other)),
    })
}

/// ECDSA verification of a DER signature over a prehash, on one concrete curve.
macro_rules! ecdsa_verify {
    ($curve:ty, $point:expr, $prehash:expr, $signature:expr) => {{
        let key = ecdsa::VerifyingKey::<$curve>::from_sec1_bytes($point)
            .map_err(|_| VerifyError::Malformed)?;
        let sig = ecdsa::der::Signature::<$curve>::from_bytes($signature)
            .map_err(|_| VerifyError::Malformed)?;
        key.verify_prehash($prehash, &sig)
            .map_err(|_| VerifyError::BadSignature)?
    }};
}

/// Verifies `signature` (algorithm `algorithm`) over `signed` with the key `spki` (DER).
/// Returns the scheme it verified under.
pub fn verify_signature(
    spki: &[u8],
    algorithm: &AlgorithmIdentifierRef<'_>,
    signed: &[u8],
    signature: &[u8],
) -> Result<Verified, VerifyError> {
    let raw_spki = spki;
    let spki = SubjectPublicKeyInfoRef::from_der(spki)?;
    let key_alg = spki.algorithm.oid;
    if key_alg == ID_RSA {
        return verify_rsa(raw_spki, algorithm, signed, signature);
    }
    if key_alg != ID_EC_PUBLIC_KEY {
        return Err(VerifyError::UnsupportedKeyAlgorithm(key_alg));
    }
    let curve = curve_of(spki.algorithm.parameters)?;
    let prehash = ecdsa_prehash(algorithm.oid, signed)?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(VerifyError::Malformed)?;
    match curve {
        NamedCurve::P256 => ecdsa_verify!(p256::NistP256, point, &prehash, signature),
        NamedCurve::P384 => ecdsa_verify!(p384::NistP384, point, &prehash, signature),
        NamedCurve::P521 => ecdsa_verify!(p521::NistP521, point, &prehash, signature),
        NamedCurve::BrainpoolP256r1 => {
            ecdsa_verify!(bp256::BrainpoolP256r1, point, &prehash, signature)
        }
        NamedCurve::BrainpoolP384r1 => {
            ecdsa_verify!(bp384::BrainpoolP384r1, point, &prehash, signature)
        }
        NamedCurve::BrainpoolP512r1 => {
            ecdsa_verify!(BrainpoolP512r1, point, &prehash, signature)
        }
    }
    Ok(Verified::Ecdsa(curve))
}

/// The parts of a certificate a signature check needs, all slices of the bytes as received.
pub struct CertificateParts<'a> {
    pub tbs: &'a [u8],
    pub spki: &'a [u8],
    pub signature_algorithm: AlgorithmIdentifierRef<'a>,
    pub signature: &'a [u8],
}

/// Splits a DER certificate into its TBS bytes, subject key, algorithm and signature.
pub fn certificate_parts(cert: &[u8]) -> Result<CertificateParts<'_>, VerifyError> {
    let mut r = SliceReader::new(cert)?;
    let parts = r.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        let alg: spki::AlgorithmIdentifierRef<'_> = r.decode()?;
        let sig: der::asn1::BitStringRef<'_> = r.decode()?;
        Ok::<_, der::Error>((tbs, alg, sig))
    })?;
    r.finish()?;
    let (tbs, signature_algorithm, sig) = parts;
    let spki = SliceReader::new(tbs)?.sequence(|r| {
        if r.peek_byte() == Some(0xA0) {
            r.tlv_bytes()?;
        }
        for _ in 0..5 {
            r.tlv_bytes()?; // serial, signature, issuer, validity, subject
        }
        let spki = r.tlv_bytes()?;
        while !r.is_finished() {
            r.tlv_bytes()?;
        }
        Ok::<_, der::Error>(spki)
    })?;
    Ok(CertificateParts {
        tbs,
        spki,
        signature_algorithm,
        signature: sig.as_bytes().ok_or(VerifyError::Malformed)?,
    })
}

/// Splits any X.509 SIGNED structure (a certificate, a CRL) into its to-be-signed bytes as
/// received, its signature algorithm and its signature.
pub fn signed_parts(
    signed: &[u8],
) -> Result<(&[u8], AlgorithmIdentifierRef<'_>, &[u8]), VerifyError> {
    let mut r = SliceReader::new(signed)?;
    let (tbs, alg, sig) = r.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        let alg: AlgorithmIdentifierRef<'_> = r.decode()?;
        let sig: der::asn1::BitStringRef<'_> = r.decode()?;
        Ok::<_, der::Error>((tbs, alg, sig))
    })?;
    r.finish()?;
    Ok((tbs, alg, sig.as_bytes().ok_or(VerifyError::Malformed)?))
}

/// Verifies that `signed` (a certificate or CRL) is signed by the key of the certificate
/// `issuer` (both DER as received).
pub fn verify_signed(signed: &[u8], issuer: &[u8]) -> Result<Verified, VerifyError> {
    let (tbs, algorithm, signature) = signed_parts(signed)?;
    let i = certificate_parts(issuer)?;
    verify_signature(i.spki, &algorithm, tbs, signature)
}

/// Verifies that `cert` is signed by the key of `issuer` (both DER as received).
pub fn verify_certificate(cert: &[u8], issuer: &[u8]) -> Result<Verified, VerifyError> {
    let c = certificate_parts(cert)?;
    let i = certificate_parts(issuer)?;
    verify_signature(i.spki, &c.signature_algorithm, c.tbs, c.signature)
}

/// A short description of a public key for reports: "RSA 2048", "ECDSA brainpoolP512r1
/// (explicit parameters)", or why it is unusable.
pub fn describe_key(spki: &[u8]) -> String {
    let Ok(info) = SubjectPublicKeyInfoRef::from_der(spki) else {
        return "undecodable key".to_string();
    };
    match info.algorithm.oid {
        ID_RSA => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            match rsa::RsaPublicKey::from_public_key_der(spki) {
                Ok(key) => format!("RSA {}", key.size() * 8),
                Err(_) => "RSA (malformed)".to_string(),
            }
        }
        ID_EC_PUBLIC_KEY => {
            let explicit = info
                .algorithm
                .parameters
                .is_some_and(|p| p.tag() == der::Tag::Sequence);
            let form = if explicit {
                " (explicit parameters)"
            } else {
                ""
            };
            match curve_of(info.algorithm.parameters) {
                Ok(curve) => format!("ECDSA {}{form}", curve.name()),
                Err(e) => format!("ECDSA: {e}"),
            }
        }
        other => format!("unsupported key algorithm {other}"),
    }
}

impl NamedCurve {
    /// The curve's standard name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
            Self::BrainpoolP256r1 => "brainpoolP256r1",
            Self::BrainpoolP384r1 => "brainpoolP384r1",
            Self::BrainpoolP512r1 => "brainpoolP512r1",
        }
    }
}
