//! DG15 (tag 6F): the Active Authentication public key (ICAO 9303-11, 6.1), a
//! SubjectPublicKeyInfo holding an RSA or an EC key.
//!
//! With it the backend can check, later and on its own, the chip's signature over a challenge.
//! RSA keys sign with ISO/IEC 9796-2 scheme 1 (the hash is named in the signature's trailer);
//! ECDSA keys need the algorithm from DG14's ActiveAuthenticationInfo.

use der::asn1::{AnyRef, ObjectIdentifier, UintRef};
use der::{Decode, Reader, SliceReader};
use spki::SubjectPublicKeyInfoRef;

use crate::lds::dg14::Dg14;
use crate::tlv::{self, TlvError};

/// Tag of DG15.
pub const DG15_TAG: tlv::Tag = tlv::Tag::new(0x6F);
/// rsaEncryption.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey.
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dg15Error {
    #[error("DG15 wrapper: {0}")]
    Tlv(#[from] TlvError),
    #[error("DG15 DER: {0}")]
    Der(#[from] der::Error),
    #[error("public key algorithm is neither RSA nor EC")]
    UnsupportedAlgorithm(ObjectIdentifier),
    #[error("EC key without domain parameters")]
    MissingParameters,
    #[error("public key bit string has unused bits")]
    UnusedBits,
}

/// The Active Authentication key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AaPublicKey<'a> {
    /// Big-endian magnitudes without leading zeros.
    Rsa {
        modulus: &'a [u8],
        exponent: &'a [u8],
    },
    Ec {
        /// ECParameters: a named curve OID or explicit parameters (brainpool cards often use them).
        parameters: AnyRef<'a>,
        /// The encoded point (04 || X || Y).
        point: &'a [u8],
    },
}

impl AaPublicKey<'_> {
    /// The named curve, when the parameters name one.
    pub fn named_curve(&self) -> Option<ObjectIdentifier> {
        match self {
            AaPublicKey::Ec { parameters, .. } => parameters.decode_as().ok(),
            AaPublicKey::Rsa { .. } => None,
        }
    }
}

/// How the chip's Active Authentication signature is to be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AaSignatureScheme {
    /// RSA with ISO/IEC 9796-2 scheme 1 (message recovery).
    Iso9796_2,
    /// ECDSA with the algorithm DG14 names (ecdsa-with-SHA256, ...).
    Ecdsa(ObjectIdentifier),
}

/// DG15's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dg15<'a> {
    /// The SubjectPublicKeyInfo as received.
    pub public_key_info: &'a [u8],
    pub key: AaPublicKey<'a>,
}

impl Dg15<'_> {
    /// The signature scheme: fixed for RSA; for EC, DG14's ActiveAuthenticationInfo must name
    /// it (`None` without one: the signature cannot be checked).
    pub fn signature_scheme(&self, dg14: Option<&Dg14<'_>>) -> Option<AaSignatureScheme> {
        match self.key {
            AaPublicKey::Rsa { .. } => Some(AaSignatureScheme::Iso9796_2),
            AaPublicKey::Ec { .. } => dg14?
                .active_authentication()
                .map(|aa| AaSignatureScheme::Ecdsa(aa.signature_algorithm)),
        }
    }
}

/// Parses DG15.
pub fn parse(bytes: &[u8]) -> Result<Dg15<'_>, Dg15Error> {
    let wrapper = tlv::parse_exact(bytes, DG15_TAG)?;
    let public_key_info = wrapper.value();
    let spki = SubjectPublicKeyInfoRef::from_der(public_key_info)?;
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or(Dg15Error::UnusedBits)?;
    let key = match spki.algorithm.oid {
        RSA_ENCRYPTION => {
            let mut reader = SliceReader::new(key_bits)?;
            let (modulus, exponent) = reader.sequence(|r| {
                let n: UintRef<'_> = r.decode()?;
                let e: UintRef<'_> = r.decode()?;
                Ok::<_, der::Error>((n.as_bytes(), e.as_bytes()))
            })?;
            reader.finish()?;
            AaPublicKey::Rsa { modulus, exponent }
        }
        EC_PUBLIC_KEY => AaPublicKey::Ec {
            parameters: spki
                .algorithm
                .parameters
                .ok_or(Dg15Error::MissingParameters)?,
            point: key_bits,
        },
        other => return Err(Dg15Error::UnsupportedAlgorithm(other)),
    };
    Ok(Dg15 {
        public_key_info,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::{build, dg14};

    #[test]
    fn parses_ec_key_and_finds_its_algorithm_in_dg14() {
        let spki = build::example_ec_public_key_info();
        let bytes = tlv::encoded(DG15_TAG, &spki);
        let dg15 = parse(&bytes).unwrap();
        assert_eq!(dg15.public_key_info, &spki[..]);
        let AaPublicKey::Ec { point, .. } = dg15.key else {
            panic!("not EC")
        };
        assert_eq!((point.len(), point[0]), (65, 0x04));
        assert_eq!(
            dg15.key.named_curve(),
            Some(ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7"))
        );
        assert_eq!(dg15.signature_scheme(None), None);
        let dg14_bytes = build::dg14(&spki, Some(dg14::tests::ECDSA_SHA256));
        let dg14 = dg14::parse(&dg14_bytes).unwrap();
        assert_eq!(
            dg15.signature_scheme(Some(&dg14)),
            Some(AaSignatureScheme::Ecdsa(dg14::tests::ECDSA_SHA256))
        );
    }

    #[test]
    fn parses_rsa_key() {
        let spki = build::example_rsa_public_key_info();
        let bytes = tlv::encoded(DG15_TAG, &spki);
        let dg15 = parse(&bytes).unwrap();
        let AaPublicKey::Rsa { modulus, exponent } = dg15.key else {
            panic!("not RSA")
        };
        // The builder's modulus has its top bit set: the DER leading zero is stripped.
        assert_eq!(modulus.len(), 128);
        assert_eq!(modulus[0], 0xC5);
        assert_eq!(exponent, &[0x01, 0x00, 0x01]);
        assert_eq!(
            dg15.signature_scheme(None),
            Some(AaSignatureScheme::Iso9796_2)
        );
        assert_eq!(dg15.key.named_curve(), None);
    }

    #[test]
    fn refuses_malformed() {
        let spki = build::example_ec_public_key_info();
        let bytes = tlv::encoded(DG15_TAG, &spki);
        assert!(matches!(
            parse(&bytes[..bytes.len() - 1]),
            Err(Dg15Error::Tlv(_))
        ));
        // A truncated SubjectPublicKeyInfo inside a consistent wrapper.
        assert!(matches!(
            parse(&tlv::encoded(DG15_TAG, &spki[..spki.len() - 1])),
            Err(Dg15Error::Der(_))
        ));
        // Trailing garbage after the SubjectPublicKeyInfo.
        let mut long = spki.clone();
        long.extend([0, 0]);
        assert!(matches!(
            parse(&tlv::encoded(DG15_TAG, &long)),
            Err(Dg15Error::Der(_))
        ));
        // An Ed25519 key is not an AA key type.
        let ed =
            build::public_key_info(ObjectIdentifier::new_unwrap("1.3.101.112"), None, &[7; 32])
                .unwrap();
        assert_eq!(
            parse(&tlv::encoded(DG15_TAG, &ed)),
            Err(Dg15Error::UnsupportedAlgorithm(
                ObjectIdentifier::new_unwrap("1.3.101.112")
            ))
        );
        // EC without parameters.
        let bare = build::public_key_info(EC_PUBLIC_KEY, None, &[4; 65]).unwrap();
        assert_eq!(
            parse(&tlv::encoded(DG15_TAG, &bare)),
            Err(Dg15Error::MissingParameters)
        );
        // RSA whose key is not an RSAPublicKey.
        let bad_rsa =
            build::public_key_info(RSA_ENCRYPTION, Some(&[0x05, 0x00]), &[0x02, 0x01, 0x03])
                .unwrap();
        assert!(matches!(
            parse(&tlv::encoded(DG15_TAG, &bad_rsa)),
            Err(Dg15Error::Der(_))
        ));
    }
}
