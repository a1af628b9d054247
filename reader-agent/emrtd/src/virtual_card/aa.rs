//! The chip's side of Active Authentication (ICAO 9303-11, 6.1), written apart from the verifier
//! in `cccd-authenticity`: it builds the signature the way a chip does, from the standard's
//! layout, with RustCrypto's ECDSA and RSA's raw private operation.
//!
//! - ECDSA on P-256: the chip signs the hash (named by DG14's ActiveAuthenticationInfo) of the
//!   challenge and answers r || s (BSI TR-03111 plain format).
//! - RSA: ISO/IEC 9796-2 digital signature scheme 1 with SHA-1 and partial message recovery. The
//!   message is M = M1 || M2, M1 a nonce filling the recoverable room, M2 the challenge; the
//!   representative F = 6A || M1 || SHA-1(M) || BC is raised to the private exponent.
//!
//! [`VirtualAa::clone_of`] makes a clone: it serves the genuine card's DG15 (and DG14) but holds
//! a key of its own, since a chip's private key cannot be read out. It answers 90 00 like the
//! original; only the verifier can tell them apart.

use der::Encode;
use der::asn1::{ObjectIdentifier, UintRef};
use elliptic_curve::{Generate, NonZeroScalar};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, RsaPrivateKey};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::lds::build;
use crate::lds::dg14::{DG14_TAG, ID_AA};
use crate::lds::dg15::{EC_PUBLIC_KEY, RSA_ENCRYPTION};
use crate::tlv::{self, Tag};

/// prime256v1 (NIST P-256).
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// Length of SHA-1, the hash of the RSA scheme this card runs.
const SHA1_LEN: usize = 20;

/// The hash of an ECDSA Active Authentication.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AaHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AaHash {
    /// ecdsa-plain-SHA* (BSI TR-03111: 0.4.0.127.0.7.1.1.4.1.x), as DG14 names it.
    pub fn ecdsa_plain_oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            AaHash::Sha1 => "0.4.0.127.0.7.1.1.4.1.1",
            AaHash::Sha224 => "0.4.0.127.0.7.1.1.4.1.2",
            AaHash::Sha256 => "0.4.0.127.0.7.1.1.4.1.3",
            AaHash::Sha384 => "0.4.0.127.0.7.1.1.4.1.4",
            AaHash::Sha512 => "0.4.0.127.0.7.1.1.4.1.5",
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            AaHash::Sha1 => Sha1::digest(data).to_vec(),
            AaHash::Sha224 => Sha224::digest(data).to_vec(),
            AaHash::Sha256 => Sha256::digest(data).to_vec(),
            AaHash::Sha384 => Sha384::digest(data).to_vec(),
            AaHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

enum Key {
    Ecdsa { key: SigningKey, hash: AaHash },
    Rsa(Box<RsaPrivateKey>),
}

/// The card's Active Authentication: its private key and the DG15 (and, for ECDSA, DG14) it
/// serves. Plug it in with [`VirtualCard::with_active_authentication`](super::VirtualCard::with_active_authentication)
/// and put [`VirtualAa::dg15`] and [`VirtualAa::dg14`] in the card's files.
pub struct VirtualAa {
    key: Key,
    dg15: Vec<u8>,
    dg14: Option<Vec<u8>>,
}

impl std::fmt::Debug for VirtualAa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.key {
            Key::Ecdsa { hash, .. } => format!("ECDSA P-256 {hash:?}"),
            Key::Rsa(key) => format!("RSA-{}", key.n().bits()),
        };
        write!(f, "VirtualAa({kind}, <private key>)")
    }
}

fn system_rng() -> rand_core::UnwrapErr<getrandom_sys::SysRng> {
    rand_core::UnwrapErr(getrandom_sys::SysRng)
}

impl VirtualAa {
    /// A fresh ECDSA key on P-256; DG14 names `hash` by its ecdsa-plain OID.
    ///
    /// # Panics
    /// When the operating system's generator fails (test fixture).
    pub fn ecdsa_p256(hash: AaHash) -> Self {
        Self::ecdsa_p256_with_algorithm(hash, hash.ecdsa_plain_oid())
    }

    /// As [`VirtualAa::ecdsa_p256`], with DG14 naming `algorithm` (e.g. an X9.62
    /// ecdsa-with-SHA256 OID, which some cards write; the answer stays plain r || s).
    ///
    /// # Panics
    /// When the operating system's generator fails (test fixture).
    pub fn ecdsa_p256_with_algorithm(hash: AaHash, algorithm: ObjectIdentifier) -> Self {
        let key = ecdsa_key();
        let point = key.verifying_key().to_sec1_point(false);
        let curve = P256_OID.to_der().unwrap_or_default();
        let spki = build::public_key_info(EC_PUBLIC_KEY, Some(&curve), point.as_bytes())
            .expect("EC key info encodes");
        VirtualAa {
            key: Key::Ecdsa { key, hash },
            dg15: build::dg15(&spki),
            dg14: Some(dg14_aa_only(algorithm)),
        }
    }

    /// A fresh RSA key of `bits` bits (a multiple of 8, at least 1024); no DG14 is needed.
    ///
    /// # Panics
    /// When `bits` is not a multiple of 8 or key generation fails (test fixture).
    pub fn rsa(bits: usize) -> Self {
        assert!(bits.is_multiple_of(8), "modulus length in whole bytes");
        let key = RsaPrivateKey::new(&mut system_rng(), bits).expect("RSA key generation");
        let spki = rsa_public_key_info(&key);
        VirtualAa {
            key: Key::Rsa(Box::new(key)),
            dg15: build::dg15(&spki),
            dg14: None,
        }
    }

    /// A clone of `genuine`: the same files, a fresh key of the same kind.
    pub fn clone_of(genuine: &VirtualAa) -> Self {
        let key = match &genuine.key {
            Key::Ecdsa { hash, .. } => Key::Ecdsa {
                key: ecdsa_key(),
                hash: *hash,
            },
            Key::Rsa(key) => Key::Rsa(Box::new(
                RsaPrivateKey::new(&mut system_rng(), key.n().bits() as usize)
                    .expect("RSA key generation"),
            )),
        };
        VirtualAa {
            key,
            dg15: genuine.dg15.clone(),
            dg14: genuine.dg14.clone(),
        }
    }

    /// DG15 with this card's public key (for a clone: the genuine card's).
    pub fn dg15(&self) -> &[u8] {
        &self.dg15
    }

    /// DG14 with the ActiveAuthenticationInfo (ECDSA only).
    pub fn dg14(&self) -> Option<&[u8]> {
        self.dg14.as_deref()
    }

    /// INTERNAL AUTHENTICATE's answer to `challenge`, or the status word of a refusal.
    pub(crate) fn sign(&self, challenge: &[u8]) -> Result<Vec<u8>, u16> {
        match &self.key {
            Key::Ecdsa { key, hash } => {
                let signature: p256::ecdsa::Signature = key
                    .sign_prehash(&hash.digest(challenge))
                    .map_err(|_| 0x6F00u16)?;
                Ok(signature.to_bytes().to_vec())
            }
            Key::Rsa(key) => sign_9796_2(key, challenge),
        }
    }
}

fn ecdsa_key() -> SigningKey {
    SigningKey::from(NonZeroScalar::<p256::NistP256>::try_generate().expect("system RNG"))
}

/// ISO/IEC 9796-2 scheme 1, SHA-1, trailer BC, partial recovery, as a chip signs.
fn sign_9796_2(key: &RsaPrivateKey, challenge: &[u8]) -> Result<Vec<u8>, u16> {
    let len = key.size();
    // Header byte, hash, trailer byte; the rest is M1.
    let m1_len = len.checked_sub(2 + SHA1_LEN).ok_or(0x6F00u16)?;
    let mut m1 = vec![0u8; m1_len];
    getrandom::fill(&mut m1).map_err(|_| 0x6F00u16)?;
    let mut representative = Vec::with_capacity(len);
    representative.push(0x6A);
    representative.extend_from_slice(&m1);
    representative.extend_from_slice(
        &Sha1::new()
            .chain_update(&m1)
            .chain_update(challenge)
            .finalize(),
    );
    representative.push(0xBC);
    let f =
        BoxedUint::from_be_slice(&representative, key.n_bits_precision()).map_err(|_| 0x6F00u16)?;
    let s = rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut system_rng()), &f)
        .map_err(|_| 0x6F00u16)?;
    let bytes = s.to_be_bytes();
    Ok(bytes[bytes.len() - len..].to_vec())
}

/// SubjectPublicKeyInfo { rsaEncryption NULL, RSAPublicKey { n, e } }.
fn rsa_public_key_info(key: &RsaPrivateKey) -> Vec<u8> {
    let n = key.n_bytes();
    let e = key.e_bytes();
    let mut body = UintRef::new(&n)
        .and_then(|n| n.to_der())
        .unwrap_or_default();
    body.extend(
        UintRef::new(&e)
            .and_then(|e| e.to_der())
            .unwrap_or_default(),
    );
    let rsa_key = tlv::encoded(Tag::new(0x30), &body);
    build::public_key_info(RSA_ENCRYPTION, Some(&[0x05, 0x00]), &rsa_key)
        .expect("RSA key info encodes")
}

/// DG14 holding only an ActiveAuthenticationInfo { id-AA, version 1, algorithm }.
pub fn dg14_aa_only(algorithm: ObjectIdentifier) -> Vec<u8> {
    let mut info = ID_AA.to_der().unwrap_or_default();
    info.extend(1u8.to_der().unwrap_or_default());
    info.extend(algorithm.to_der().unwrap_or_default());
    let set = tlv::encoded(Tag::new(0x31), &tlv::encoded(Tag::new(0x30), &info));
    tlv::encoded(DG14_TAG, &set)
}
