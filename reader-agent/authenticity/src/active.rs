//! Active Authentication, the verifier's side (ICAO 9303-11, 6.1): does the signature the chip
//! returned to INTERNAL AUTHENTICATE verify under the key in DG15, over this very challenge?
//!
//! A clone can copy every data group, DG15 included, but not the chip's private key: its answer
//! fails here, by the signature check itself. A signature over another challenge (a replayed
//! answer) fails the same way. Pure: the agent checks its own challenges and the backend its
//! presence-proof challenges with the same function, from bytes alone.
//!
//! - ECDSA: DG14's ActiveAuthenticationInfo names the hash (9303 requires that info for ECDSA;
//!   without it nothing is assumed). The signature is plain r || s (BSI TR-03111), whether DG14
//!   uses the ecdsa-plain OIDs or the X9.62 ecdsa-with-SHA* ones.
//! - RSA: ISO/IEC 9796-2 digital signature scheme 1 with partial message recovery, which no
//!   RustCrypto crate offers. It is built here on the rsa crate's raw public operation:
//!   J = s^e mod n (or n - J, the standard's alternative, when J does not end in nibble C);
//!   the representative must be `6A || M1 || H(M1 || challenge) || trailer`, the trailer BC
//!   (SHA-1) or `hash-id CC` (ISO/IEC 10118-3 identifiers). Every other layout is refused with
//!   its own error, before any hash is compared.

use der::asn1::ObjectIdentifier;
use ecdsa::signature::hazmat::PrehashVerifier;
use emrtd::lds::dg14::{self, Dg14Error};
use emrtd::lds::dg15::{self, AaPublicKey, Dg15Error};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, RsaPublicKey};
use sha2::Digest;

use crate::verify::{self, NamedCurve, VerifyError};

/// Length of the challenge (RND.IFD) ICAO 9303 prescribes.
pub const CHALLENGE_LEN: usize = 8;

/// The hash an Active Authentication signature was made with.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AaHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AaHash {
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            AaHash::Sha1 => run::<sha1::Sha1>(parts),
            AaHash::Sha224 => run::<sha2::Sha224>(parts),
            AaHash::Sha256 => run::<sha2::Sha256>(parts),
            AaHash::Sha384 => run::<sha2::Sha384>(parts),
            AaHash::Sha512 => run::<sha2::Sha512>(parts),
        }
    }

    fn len(self) -> usize {
        match self {
            AaHash::Sha1 => 20,
            AaHash::Sha224 => 28,
            AaHash::Sha256 => 32,
            AaHash::Sha384 => 48,
            AaHash::Sha512 => 64,
        }
    }

    /// The hash an ECDSA Active Authentication algorithm OID names (BSI ecdsa-plain-SHA* or
    /// X9.62 ecdsa-with-SHA*).
    pub fn of_ecdsa_algorithm(oid: &ObjectIdentifier) -> Option<AaHash> {
        const PLAIN: [(&str, AaHash); 5] = [
            ("0.4.0.127.0.7.1.1.4.1.1", AaHash::Sha1),
            ("0.4.0.127.0.7.1.1.4.1.2", AaHash::Sha224),
            ("0.4.0.127.0.7.1.1.4.1.3", AaHash::Sha256),
            ("0.4.0.127.0.7.1.1.4.1.4", AaHash::Sha384),
            ("0.4.0.127.0.7.1.1.4.1.5", AaHash::Sha512),
        ];
        const X962: [(&str, AaHash); 5] = [
            ("1.2.840.10045.4.1", AaHash::Sha1),
            ("1.2.840.10045.4.3.1", AaHash::Sha224),
            ("1.2.840.10045.4.3.2", AaHash::Sha256),
            ("1.2.840.10045.4.3.3", AaHash::Sha384),
            ("1.2.840.10045.4.3.4", AaHash::Sha512),
        ];
        PLAIN
            .iter()
            .chain(&X962)
            .find(|(s, _)| ObjectIdentifier::new(s).is_ok_and(|o| o == *oid))
            .map(|(_, h)| *h)
    }

    /// The hash an ISO/IEC 10118-3 hash-function identifier names (the byte before CC).
    fn of_9796_id(id: u8) -> Option<AaHash> {
        Some(match id {
            0x33 => AaHash::Sha1,
            0x34 => AaHash::Sha256,
            0x35 => AaHash::Sha512,
            0x36 => AaHash::Sha384,
            0x38 => AaHash::Sha224,
            _ => return None,
        })
    }
}

/// What a verified Active Authentication proved: the chip holds the private key of DG15, by this
/// scheme.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveAuthentication {
    /// RSA with ISO/IEC 9796-2 scheme 1.
    Rsa { modulus_bits: usize, hash: AaHash },
    /// ECDSA, plain r || s.
    Ecdsa { curve: NamedCurve, hash: AaHash },
}

/// Why an Active Authentication signature was not accepted. Every variant but the first four
/// means the chip did not prove it holds DG15's key for this challenge: a clone, a replayed
/// answer, or a broken card.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActiveAuthError {
    #[error("DG15: {0}")]
    Dg15(#[from] Dg15Error),
    #[error("DG14: {0}")]
    Dg14(#[from] Dg14Error),
    #[error("challenge must be {CHALLENGE_LEN} bytes, got {0}")]
    ChallengeLength(usize),
    /// A DG15 key type this verifier does not know.
    #[error("unsupported Active Authentication key type")]
    UnsupportedKey,
    /// An EC key without an ActiveAuthenticationInfo in DG14 naming the algorithm.
    #[error("DG14 names no Active Authentication algorithm for the EC key")]
    MissingAlgorithm,
    #[error("unsupported Active Authentication algorithm {0}")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// The EC key's curve or point is unusable.
    #[error("EC key: {0}")]
    EcKey(VerifyError),
    /// The RSA key is unusable (modulus below 1024 or above 4096 bits, even, bad exponent).
    #[error("RSA key unusable")]
    RsaKey,
    /// A modulus not a whole number of bytes: the representative's layout is not byte-aligned.
    #[error("RSA modulus of {0} bits is not a whole number of bytes")]
    UnsupportedModulusLength(usize),
    #[error("signature is {actual} bytes, {expected} expected")]
    SignatureLength { expected: usize, actual: usize },
    /// The signature as an integer is zero or not below the modulus.
    #[error("signature out of the modulus' range")]
    SignatureOutOfRange,
    /// The recovered representative does not start with the bits 01: wrong key or garbage.
    #[error("recovered representative has no 9796-2 header")]
    BadHeader,
    /// The header is not 6A (partial recovery, no padding), e.g. 4B..BA (total recovery).
    #[error("representative is not a partial-recovery one (header {0:02X})")]
    NotPartialRecovery(u8),
    /// The trailer is neither BC nor `xx CC`.
    #[error("recovered representative has no 9796-2 trailer")]
    BadTrailer,
    #[error("unknown hash identifier {0:02X} in the trailer")]
    UnknownHashId(u8),
    /// The representative is too short for header, hash and trailer.
    #[error("representative too short for its hash")]
    TooShort,
    /// The hash over the recovered M1 and the challenge differs: another challenge (a replayed
    /// answer) or altered bytes.
    #[error("recovered hash does not match the challenge")]
    DigestMismatch,
    /// The ECDSA signature does not verify.
    #[error("ECDSA signature does not verify")]
    BadSignature,
}

/// Verifies the chip's answer `signature` to `challenge` with the key in `dg15` (and, for an EC
/// key, the algorithm in `dg14`), all as read from the chip.
pub fn verify_active_authentication(
    dg15: &[u8],
    dg14: Option<&[u8]>,
    challenge: &[u8],
    signature: &[u8],
) -> Result<ActiveAuthentication, ActiveAuthError> {
    if challenge.len() != CHALLENGE_LEN {
        return Err(ActiveAuthError::ChallengeLength(challenge.len()));
    }
    let dg15 = dg15::parse(dg15)?;
    match dg15.key {
        AaPublicKey::Rsa { modulus, exponent } => {
            let key = rsa_key(modulus, exponent)?;
            let recovered = recover_9796_2(&key, signature)?;
            if recovered.hash.digest(&[&recovered.m1, challenge]) != recovered.digest {
                return Err(ActiveAuthError::DigestMismatch);
            }
            Ok(ActiveAuthentication::Rsa {
                modulus_bits: key.n().bits() as usize,
                hash: recovered.hash,
            })
        }
        AaPublicKey::Ec { parameters, point } => {
            let dg14 = dg14.map(dg14::parse).transpose()?;
            let algorithm = dg14
                .as_ref()
                .and_then(|d| d.active_authentication())
                .map(|aa| aa.signature_algorithm)
                .ok_or(ActiveAuthError::MissingAlgorithm)?;
            let hash = AaHash::of_ecdsa_algorithm(&algorithm)
                .ok_or(ActiveAuthError::UnsupportedAlgorithm(algorithm))?;
            let curve = verify::curve_of(Some(parameters)).map_err(ActiveAuthError::EcKey)?;
            verify_plain_ecdsa(curve, point, &hash.digest(&[challenge]), signature)?;
            Ok(ActiveAuthentication::Ecdsa { curve, hash })
        }
        // Dg15 refuses other key types; a future one is not an Active Authentication key here.
        #[allow(unreachable_patterns)]
        _ => Err(ActiveAuthError::UnsupportedKey),
    }
}

fn rsa_key(modulus: &[u8], exponent: &[u8]) -> Result<RsaPublicKey, ActiveAuthError> {
    let n = BoxedUint::from_be_slice_vartime(modulus);
    let e = BoxedUint::from_be_slice_vartime(exponent);
    RsaPublicKey::new(n, e).map_err(|_| ActiveAuthError::RsaKey)
}

/// What ISO/IEC 9796-2 scheme 1 recovers from a signature: the recoverable part M1, the hash
/// the representative carries, and which hash it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub m1: Vec<u8>,
    pub digest: Vec<u8>,
    pub hash: AaHash,
}

/// Opens a 9796-2 scheme 1 signature with partial recovery and checks its layout. The caller
/// compares the hash with `H(M1 || M2)`.
pub(crate) fn recover_9796_2(
    key: &RsaPublicKey,
    signature: &[u8],
) -> Result<Recovered, ActiveAuthError> {
    let bits = key.n().bits() as usize;
    if !bits.is_multiple_of(8) {
        return Err(ActiveAuthError::UnsupportedModulusLength(bits));
    }
    let len = key.size();
    if signature.len() != len {
        return Err(ActiveAuthError::SignatureLength {
            expected: len,
            actual: signature.len(),
        });
    }
    let s = BoxedUint::from_be_slice(signature, key.n_bits_precision())
        .map_err(|_| ActiveAuthError::SignatureOutOfRange)?;
    if bool::from(s.is_zero()) || s >= *key.n().as_ref() {
        return Err(ActiveAuthError::SignatureOutOfRange);
    }
    let j = rsa::hazmat::rsa_encrypt(key, &s).map_err(|_| ActiveAuthError::SignatureOutOfRange)?;
    let mut f = be_bytes(&j, len);
    // The standard's signature is min(s, n - s); n - J undoes the second choice. Both end in
    // nibble C when genuine (trailers BC and CC), so only one of the two can qualify.
    if f.last().is_some_and(|b| b & 0x0F != 0x0C) {
        f = be_bytes(&key.n().as_ref().wrapping_sub(&j), len);
    }

    let (&header, _) = f.split_first().ok_or(ActiveAuthError::TooShort)?;
    if header >> 6 != 0b01 {
        return Err(ActiveAuthError::BadHeader);
    }
    if header != 0x6A {
        return Err(ActiveAuthError::NotPartialRecovery(header));
    }
    let (hash, trailer_len) = match f[len - 1] {
        0xBC => (AaHash::Sha1, 1),
        0xCC => {
            let id = f[len - 2];
            (
                AaHash::of_9796_id(id).ok_or(ActiveAuthError::UnknownHashId(id))?,
                2,
            )
        }
        _ => return Err(ActiveAuthError::BadTrailer),
    };
    let digest_start = len
        .checked_sub(trailer_len + hash.len())
        .filter(|&start| start > 1)
        .ok_or(ActiveAuthError::TooShort)?;
    Ok(Recovered {
        m1: f[1..digest_start].to_vec(),
        digest: f[digest_start..len - trailer_len].to_vec(),
        hash,
    })
}

/// The last `len` bytes of the big-endian form (the value is below the modulus, so nothing
/// significant is cut).
fn be_bytes(x: &BoxedUint, len: usize) -> Vec<u8> {
    let bytes = x.to_be_bytes();
    let cut = bytes.len().saturating_sub(len);
    let mut out = vec![0u8; len.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes[cut..]);
    out
}

/// Plain r || s ECDSA over a prehash, on one concrete curve.
macro_rules! plain_ecdsa {
    ($curve:ty, $point:expr, $prehash:expr, $signature:expr) => {{
        let key = ecdsa::VerifyingKey::<$curve>::from_sec1_bytes($point)
            .map_err(|_| ActiveAuthError::EcKey(VerifyError::Malformed))?;
        let sig = ecdsa::Signature::<$curve>::from_slice($signature)
            .map_err(|_| ActiveAuthError::BadSignature)?;
        key.verify_prehash($prehash, &sig)
            .map_err(|_| ActiveAuthError::BadSignature)
    }};
}

fn verify_plain_ecdsa(
    curve: NamedCurve,
    point: &[u8],
    prehash: &[u8],
    signature: &[u8],
) -> Result<(), ActiveAuthError> {
    let field = match curve {
        NamedCurve::P256 | NamedCurve::BrainpoolP256r1 => 32,
        NamedCurve::P384 | NamedCurve::BrainpoolP384r1 => 48,
        NamedCurve::P521 => 66,
        #[allow(unreachable_patterns)]
        _ => return Err(ActiveAuthError::EcKey(VerifyError::Malformed)),
    };
    if signature.len() != 2 * field {
        return Err(ActiveAuthError::SignatureLength {
            expected: 2 * field,
            actual: signature.len(),
        });
    }
    match curve {
        NamedCurve::P256 => plain_ecdsa!(p256::NistP256, point, prehash, signature),
        NamedCurve::P384 => plain_ecdsa!(p384::NistP384, point, prehash, signature),
        NamedCurve::P521 => plain_ecdsa!(p521::NistP521, point, prehash, signature),
        NamedCurve::BrainpoolP256r1 => {
            plain_ecdsa!(bp256::BrainpoolP256r1, point, prehash, signature)
        }
        NamedCurve::BrainpoolP384r1 => {
            plain_ecdsa!(bp384::BrainpoolP384r1, point, prehash, signature)
        }
        #[allow(unreachable_patterns)]
        _ => Err(ActiveAuthError::EcKey(VerifyError::Malformed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emrtd::lds::build;
    use rsa::RsaPrivateKey;

    const CHALLENGE: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    fn rng() -> rand_core::UnwrapErr<getrandom_sys::SysRng> {
        rand_core::UnwrapErr(getrandom_sys::SysRng)
    }

    fn key(bits: usize) -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rng(), bits).unwrap()
    }

    /// DG15 around the key's SubjectPublicKeyInfo, built from n and e with DER integers.
    fn dg15_of(key: &RsaPrivateKey) -> Vec<u8> {
        use der::Encode;
        let n = der::asn1::UintRef::new(&key.n_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let e = der::asn1::UintRef::new(&key.e_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let rsa_key = emrtd::tlv::encoded(emrtd::tlv::Tag::new(0x30), &[n, e].concat());
        let spki =
            build::public_key_info(dg15::RSA_ENCRYPTION, Some(&[0x05, 0x00]), &rsa_key).unwrap();
        build::dg15(&spki)
    }

    /// The raw private operation on a representative the test laid out by hand.
    fn sign_raw(key: &RsaPrivateKey, representative: &[u8]) -> Vec<u8> {
        let f = BoxedUint::from_be_slice(representative, key.n_bits_precision()).unwrap();
        let s = rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut rng()), &f).unwrap();
        be_bytes(&s, key.size())
    }

    /// `header || M1 || H(M1 || challenge) || trailer` for a 1024-bit key, step by step.
    fn representative(
        header: u8,
        hash: AaHash,
        trailer: &[u8],
        challenge: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let m1_len = 128 - 1 - hash.len() - trailer.len();
        let m1: Vec<u8> = (0..m1_len).map(|i| (i * 3 + 1) as u8).collect();
        let mut f = vec![header];
        f.extend_from_slice(&m1);
        f.extend_from_slice(&hash.digest(&[&m1, challenge]));
        f.extend_from_slice(trailer);
        assert_eq!(f.len(), 128);
        (f, m1)
    }

    #[test]
    fn hand_built_sha1_representative_is_recovered_and_verifies() {
        let key = key(1024);
        let (f, m1) = representative(0x6A, AaHash::Sha1, &[0xBC], &CHALLENGE);
        // Header 0110 1010: bits 01, more-data bit 1 (partial recovery), padding terminator.
        assert_eq!(f[0], 0b0110_1010);
        assert_eq!(m1.len(), 106);
        let signature = sign_raw(&key, &f);
        let recovered = recover_9796_2(&key.to_public_key(), &signature).unwrap();
        assert_eq!(recovered.m1, m1);
        assert_eq!(recovered.digest, f[107..127]);
        assert_eq!(recovered.hash, AaHash::Sha1);
        assert_eq!(
            verify_active_authentication(&dg15_of(&key), None, &CHALLENGE, &signature),
            Ok(ActiveAuthentication::Rsa {
                modulus_bits: 1024,
                hash: AaHash::Sha1
            })
        );
    }

    #[test]
    fn two_byte_trailers_name_the_hash() {
        let key = key(1024);
        let dg15 = dg15_of(&key);
        for (id, hash) in [
            (0x33, AaHash::Sha1),
            (0x34, AaHash::Sha256),
            (0x35, AaHash::Sha512),
            (0x36, AaHash::Sha384),
            (0x38, AaHash::Sha224),
        ] {
            let (f, _) = representative(0x6A, hash, &[id, 0xCC], &CHALLENGE);
            let signature = sign_raw(&key, &f);
            assert_eq!(
                verify_active_authentication(&dg15, None, &CHALLENGE, &signature),
                Ok(ActiveAuthentication::Rsa {
                    modulus_bits: 1024,
                    hash
                }),
                "{id:02X}"
            );
        }
    }

    #[test]
    fn the_standards_alternative_signature_n_minus_s_verifies() {
        // Without the n - J step this fails with BadHeader or BadTrailer.
        let key = key(1024);
        let (f, _) = representative(0x6A, AaHash::Sha1, &[0xBC], &CHALLENGE);
        let s = BoxedUint::from_be_slice(&sign_raw(&key, &f), key.n_bits_precision()).unwrap();
        let alternative = be_bytes(&key.n().as_ref().wrapping_sub(&s), 128);
        assert!(
            verify_active_authentication(&dg15_of(&key), None, &CHALLENGE, &alternative).is_ok()
        );
    }

    #[test]
    fn each_malformed_layout_has_its_error() {
        let key = key(1024);
        let dg15 = dg15_of(&key);
        let check = |f: &[u8], challenge: &[u8]| {
            verify_active_authentication(&dg15, None, challenge, &sign_raw(&key, f))
        };
        // Total recovery (header 4B, padding nibbles B..BA): the challenge would not be signed
        // as the non-recoverable part.
        let (f, _) = representative(0x4B, AaHash::Sha1, &[0xBC], &CHALLENGE);
        assert_eq!(
            check(&f, &CHALLENGE),
            Err(ActiveAuthError::NotPartialRecovery(0x4B))
        );
        // Partial recovery with padding bits: 6B.
        let (f, _) = representative(0x6B, AaHash::Sha1, &[0xBC], &CHALLENGE);
        assert_eq!(
            check(&f, &CHALLENGE),
            Err(ActiveAuthError::NotPartialRecovery(0x6B))
        );
        // Leading bits 00 and 11.
        for header in [0x2A, 0x3A, 0x0A] {
            let (f, _) = representative(header, AaHash::Sha1, &[0xBC], &CHALLENGE);
            assert_eq!(check(&f, &CHALLENGE), Err(ActiveAuthError::BadHeader));
        }
        // A trailer ending in nibble C that is neither BC nor CC.
        let (f, _) = representative(0x6A, AaHash::Sha1, &[0xAC], &CHALLENGE);
        assert_eq!(check(&f, &CHALLENGE), Err(ActiveAuthError::BadTrailer));
        // CC with a hash id this verifier does not know (37: Whirlpool).
        let (f, _) = representative(0x6A, AaHash::Sha512, &[0x37, 0xCC], &CHALLENGE);
        assert_eq!(
            check(&f, &CHALLENGE),
            Err(ActiveAuthError::UnknownHashId(0x37))
        );
        // The hash over another challenge: a replayed answer.
        let (f, _) = representative(0x6A, AaHash::Sha1, &[0xBC], &[0; 8]);
        assert_eq!(check(&f, &CHALLENGE), Err(ActiveAuthError::DigestMismatch));
        // The trailer says SHA-256 but the hash is SHA-1 over the same bytes: the layout is read
        // by the trailer, so the hash cannot match.
        let (mut f, _) = representative(0x6A, AaHash::Sha1, &[0xBC], &CHALLENGE);
        f[126] = 0x34;
        f[127] = 0xCC;
        assert_eq!(check(&f, &CHALLENGE), Err(ActiveAuthError::DigestMismatch));
    }

    #[test]
    fn a_modulus_not_in_whole_bytes_is_refused() {
        let key = key(1028);
        let signature = vec![1u8; key.size()];
        assert_eq!(
            verify_active_authentication(&dg15_of(&key), None, &CHALLENGE, &signature),
            Err(ActiveAuthError::UnsupportedModulusLength(1028))
        );
    }

    #[test]
    fn an_rsa_key_below_1024_bits_is_refused() {
        // 512-bit modulus shape with exponent 3: refused before any signature is looked at.
        let mut n = vec![0xC3u8; 64];
        n[63] = 0x01;
        let n_der = {
            use der::Encode;
            der::asn1::UintRef::new(&n).unwrap().to_der().unwrap()
        };
        let rsa_key = emrtd::tlv::encoded(
            emrtd::tlv::Tag::new(0x30),
            &[n_der, vec![0x02, 0x01, 0x03]].concat(),
        );
        let spki =
            build::public_key_info(dg15::RSA_ENCRYPTION, Some(&[0x05, 0x00]), &rsa_key).unwrap();
        assert_eq!(
            verify_active_authentication(&build::dg15(&spki), None, &CHALLENGE, &[1; 64]),
            Err(ActiveAuthError::RsaKey)
        );
    }

    #[test]
    fn ecdsa_algorithm_oids() {
        let plain = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.1.1.4.1.3");
        let x962 = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
        assert_eq!(AaHash::of_ecdsa_algorithm(&plain), Some(AaHash::Sha256));
        assert_eq!(AaHash::of_ecdsa_algorithm(&x962), Some(AaHash::Sha512));
        // ecdsa-plain-RIPEMD160 is not offered.
        let ripemd = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.1.1.4.1.6");
        assert_eq!(AaHash::of_ecdsa_algorithm(&ripemd), None);
    }

    #[test]
    fn an_unknown_ecdsa_algorithm_in_dg14_is_named() {
        let spki = build::example_ec_public_key_info();
        let ripemd = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.1.1.4.1.6");
        let dg14 = build::dg14(&spki, Some(ripemd));
        assert_eq!(
            verify_active_authentication(&build::dg15(&spki), Some(&dg14), &CHALLENGE, &[0; 64]),
            Err(ActiveAuthError::UnsupportedAlgorithm(ripemd))
        );
    }

    #[test]
    fn ecdsa_on_p384_with_the_hash_dg14_names() {
        use der::Encode;
        use ecdsa::signature::hazmat::PrehashSigner;
        let sk = p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap();
        let point = sk.verifying_key().to_sec1_point(false);
        let curve = ObjectIdentifier::new_unwrap("1.3.132.0.34")
            .to_der()
            .unwrap();
        let spki =
            build::public_key_info(dg15::EC_PUBLIC_KEY, Some(&curve), point.as_bytes()).unwrap();
        let dg15 = build::dg15(&spki);
        let sign = |hash: AaHash| -> Vec<u8> {
            let signature: p384::ecdsa::Signature =
                sk.sign_prehash(&hash.digest(&[&CHALLENGE])).unwrap();
            signature.to_bytes().to_vec()
        };
        let plain_384 = emrtd::virtual_card::aa::dg14_aa_only(ObjectIdentifier::new_unwrap(
            "0.4.0.127.0.7.1.1.4.1.4",
        ));
        let x962_256 = emrtd::virtual_card::aa::dg14_aa_only(ObjectIdentifier::new_unwrap(
            "1.2.840.10045.4.3.2",
        ));
        assert_eq!(
            verify_active_authentication(
                &dg15,
                Some(&plain_384),
                &CHALLENGE,
                &sign(AaHash::Sha384)
            ),
            Ok(ActiveAuthentication::Ecdsa {
                curve: NamedCurve::P384,
                hash: AaHash::Sha384
            })
        );
        assert_eq!(
            verify_active_authentication(&dg15, Some(&x962_256), &CHALLENGE, &sign(AaHash::Sha256)),
            Ok(ActiveAuthentication::Ecdsa {
                curve: NamedCurve::P384,
                hash: AaHash::Sha256
            })
        );
        // Signed over SHA-256 while DG14 names SHA-384: the hash is DG14's, so it fails.
        assert_eq!(
            verify_active_authentication(
                &dg15,
                Some(&plain_384),
                &CHALLENGE,
                &sign(AaHash::Sha256)
            ),
            Err(ActiveAuthError::BadSignature)
        );
        // A P-256-sized signature for a P-384 key.
        assert_eq!(
            verify_active_authentication(&dg15, Some(&plain_384), &CHALLENGE, &[1; 64]),
            Err(ActiveAuthError::SignatureLength {
                expected: 96,
                actual: 64
            })
        );
    }

    /// brainpoolP256r1, the CCCD's curve: signed with a fixed nonce through ecdsa's hazmat
    /// signer (no RFC 6979 digest is wired for brainpool here).
    #[test]
    fn ecdsa_on_brainpool_p256() {
        use der::Encode;
        type Bp = bp256::BrainpoolP256r1;
        let sk = ecdsa::SigningKey::<Bp>::from_slice(&[9u8; 32]).unwrap();
        let k = ecdsa::SigningKey::<Bp>::from_slice(&[0x33u8; 32]).unwrap();
        let point = sk.verifying_key().to_sec1_point(false);
        let curve = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7")
            .to_der()
            .unwrap();
        let spki =
            build::public_key_info(dg15::EC_PUBLIC_KEY, Some(&curve), point.as_bytes()).unwrap();
        let dg15 = build::dg15(&spki);
        let dg14 = build::dg14(
            &spki,
            Some(ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2")),
        );
        let (signature, _) = ecdsa::hazmat::sign_prehashed::<Bp>(
            sk.as_nonzero_scalar(),
            k.as_nonzero_scalar(),
            &AaHash::Sha256.digest(&[&CHALLENGE]),
        )
        .unwrap();
        let signature = signature.to_bytes();
        assert_eq!(
            verify_active_authentication(&dg15, Some(&dg14), &CHALLENGE, &signature),
            Ok(ActiveAuthentication::Ecdsa {
                curve: NamedCurve::BrainpoolP256r1,
                hash: AaHash::Sha256
            })
        );
        let mut other = CHALLENGE;
        other[0] ^= 1;
        assert_eq!(
            verify_active_authentication(&dg15, Some(&dg14), &other, &signature),
            Err(ActiveAuthError::BadSignature)
        );
    }
}
