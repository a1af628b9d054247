//! DG14 (tag 6E): SecurityInfos (ICAO 9303-11, 9.2) for the protocols that prove the chip is
//! genuine: Chip Authentication (its static key and parameters) and the signature algorithm
//! of ECDSA Active Authentication.
//!
//! The SET OF is walked element by element without insisting on DER order, and SecurityInfos of
//! other protocols (PACE, Terminal Authentication, ...) are kept as received: DG14 is signed,
//! and refusing an unknown protocol would refuse a genuine card.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, Tagged};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::tlv::{self, TlvError};

/// Tag of DG14.
pub const DG14_TAG: tlv::Tag = tlv::Tag::new(0x6E);
/// id-PK-DH: a Chip Authentication public key for DH.
pub const ID_PK_DH: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.1.1");
/// id-PK-ECDH: a Chip Authentication public key for ECDH.
pub const ID_PK_ECDH: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.1.2");
/// id-CA: arc of the Chip Authentication protocols (id-CA-ECDH-AES-CBC-CMAC-128 is `.2.2`).
pub const ID_CA: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3");
/// id-CA-DH: names a ChipAuthenticationDomainParameterInfo; its sub-arcs name protocols.
pub const ID_CA_DH: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.1");
/// id-CA-ECDH: as [`ID_CA_DH`] for elliptic curves.
pub const ID_CA_ECDH: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2");
/// id-AA: ActiveAuthenticationInfo.
pub const ID_AA: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.5");

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dg14Error {
    #[error("DG14 wrapper: {0}")]
    Tlv(#[from] TlvError),
    #[error("DG14 DER: {0}")]
    Der(#[from] der::Error),
    #[error("DG14 does not hold a SET OF SecurityInfo")]
    NotASet,
}

/// Chip Authentication protocol and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipAuthenticationInfo {
    /// id-CA-DH-* or id-CA-ECDH-* (cipher and MAC of the new secure channel).
    pub protocol: ObjectIdentifier,
    pub version: u8,
    pub key_id: Option<u32>,
}

/// The chip's static Chip Authentication key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipAuthenticationPublicKeyInfo<'a> {
    /// id-PK-DH or id-PK-ECDH.
    pub protocol: ObjectIdentifier,
    /// The SubjectPublicKeyInfo as received (domain parameters are often explicit).
    pub public_key_info: &'a [u8],
    /// Its algorithm (id-ecPublicKey, dhpublicnumber, ...).
    pub algorithm: ObjectIdentifier,
    pub key_id: Option<u32>,
}

/// The domain parameters of Chip Authentication, when the key does not carry them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipAuthenticationDomainParameterInfo<'a> {
    /// id-CA-DH or id-CA-ECDH.
    pub protocol: ObjectIdentifier,
    /// The AlgorithmIdentifier of the domain parameters, as received.
    pub domain_parameter: &'a [u8],
    pub key_id: Option<u32>,
}

/// The signature algorithm an ECDSA Active Authentication uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveAuthenticationInfo {
    pub version: u8,
    /// ecdsa-with-SHA256 and the like.
    pub signature_algorithm: ObjectIdentifier,
}

/// One SecurityInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityInfo<'a> {
    ChipAuthentication(ChipAuthenticationInfo),
    ChipAuthenticationPublicKey(ChipAuthenticationPublicKeyInfo<'a>),
    ChipAuthenticationDomainParameter(ChipAuthenticationDomainParameterInfo<'a>),
    ActiveAuthentication(ActiveAuthenticationInfo),
    /// Another protocol's SecurityInfo, kept as received.
    Other {
        protocol: ObjectIdentifier,
        raw: &'a [u8],
    },
}

/// DG14's SecurityInfos in the order received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dg14<'a> {
    pub infos: Vec<SecurityInfo<'a>>,
}

impl<'a> Dg14<'a> {
    pub fn chip_authentication(&self) -> impl Iterator<Item = &ChipAuthenticationInfo> {
        self.infos.iter().filter_map(|i| match i {
            SecurityInfo::ChipAuthentication(ca) => Some(ca),
            _ => None,
        })
    }

    pub fn chip_authentication_keys(
        &self,
    ) -> impl Iterator<Item = &ChipAuthenticationPublicKeyInfo<'a>> {
        self.infos.iter().filter_map(|i| match i {
            SecurityInfo::ChipAuthenticationPublicKey(pk) => Some(pk),
            _ => None,
        })
    }

    pub fn active_authentication(&self) -> Option<&ActiveAuthenticationInfo> {
        self.infos.iter().find_map(|i| match i {
            SecurityInfo::ActiveAuthentication(aa) => Some(aa),
            _ => None,
        })
    }
}

/// Whether `oid` lies strictly under `arc`. Comparing encodings is exact: every arc's encoding
/// ends with a byte below 80, so a prefix of whole encodings is a prefix of whole arcs.
pub(crate) fn is_under(oid: &ObjectIdentifier, arc: &ObjectIdentifier) -> bool {
    oid.as_bytes().len() > arc.as_bytes().len() && oid.as_bytes().starts_with(arc.as_bytes())
}

/// Parses DG14.
pub fn parse(bytes: &[u8]) -> Result<Dg14<'_>, Dg14Error> {
    let wrapper = tlv::parse_exact(bytes, DG14_TAG)?;
    let mut outer = SliceReader::new(wrapper.value())?;
    let set: AnyRef<'_> = outer.decode()?;
    outer.finish()?;
    if set.tag() != Tag::Set {
        return Err(Dg14Error::NotASet);
    }
    let mut reader = SliceReader::new(set.value())?;
    let mut infos = Vec::new();
    while !reader.is_finished() {
        infos.push(parse_security_info(reader.tlv_bytes()?)?);
    }
    Ok(Dg14 { infos })
}

fn optional_key_id(r: &mut SliceReader<'_>) -> Result<Option<u32>, der::Error> {
    if r.is_finished() {
        Ok(None)
    } else {
        r.decode().map(Some)
    }
}

fn parse_security_info(raw: &[u8]) -> Result<SecurityInfo<'_>, Dg14Error> {
    let mut reader = SliceReader::new(raw)?;
    let info = reader.sequence(|r| -> Result<_, Dg14Error> {
        let protocol: ObjectIdentifier = r.decode()?;
        Ok(if protocol == ID_PK_DH || protocol == ID_PK_ECDH {
            let public_key_info = r.tlv_bytes()?;
            let algorithm = SubjectPublicKeyInfoRef::from_der(public_key_info)?
                .algorithm
                .oid;
            SecurityInfo::ChipAuthenticationPublicKey(ChipAuthenticationPublicKeyInfo {
                protocol,
                public_key_info,
                algorithm,
                key_id: optional_key_id(r)?,
            })
        } else if protocol == ID_CA_DH || protocol == ID_CA_ECDH {
            let domain_parameter = r.tlv_bytes()?;
            AlgorithmIdentifierRef::from_der(domain_parameter)?;
            SecurityInfo::ChipAuthenticationDomainParameter(ChipAuthenticationDomainParameterInfo {
                protocol,
                domain_parameter,
                key_id: optional_key_id(r)?,
            })
        } else if is_under(&protocol, &ID_CA_DH) || is_under(&protocol, &ID_CA_ECDH) {
            SecurityInfo::ChipAuthentication(ChipAuthenticationInfo {
                protocol,
                version: r.decode()?,
                key_id: optional_key_id(r)?,
            })
        } else if protocol == ID_AA {
            SecurityInfo::ActiveAuthentication(ActiveAuthenticationInfo {
                version: r.decode()?,
                signature_algorithm: r.decode()?,
            })
        } else {
            while !r.is_finished() {
                r.tlv_bytes()?;
            }
            SecurityInfo::Other { protocol, raw }
        })
    })?;
    reader.finish()?;
    Ok(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lds::build;
    use der::Encode;

    /// id-CA-ECDH-AES-CBC-CMAC-128, the CCCD's Chip Authentication suite.
    pub(crate) const CA_ECDH_AES128: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2.2");
    pub(crate) const ECDSA_SHA256: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

    #[test]
    fn parses_security_infos() {
        let spki = build::example_ec_public_key_info();
        let bytes = build::dg14(&spki, Some(ECDSA_SHA256));
        let dg14 = parse(&bytes).unwrap();
        let ca: Vec<_> = dg14.chip_authentication().collect();
        assert_eq!(ca.len(), 1);
        assert_eq!(
            (ca[0].protocol, ca[0].version, ca[0].key_id),
            (CA_ECDH_AES128, 1, None)
        );
        let keys: Vec<_> = dg14.chip_authentication_keys().collect();
        assert_eq!(keys[0].protocol, ID_PK_ECDH);
        assert_eq!(keys[0].public_key_info, &spki[..]);
        assert_eq!(
            keys[0].algorithm,
            ObjectIdentifier::new_unwrap("1.2.840.10045.2.1")
        );
        assert_eq!(
            dg14.active_authentication().map(|a| a.signature_algorithm),
            Some(ECDSA_SHA256)
        );
        // A TerminalAuthenticationInfo is kept as an unknown protocol.
        assert!(
            dg14.infos
                .iter()
                .any(|i| matches!(i, SecurityInfo::Other { .. }))
        );
    }

    #[test]
    fn domain_parameter_info_is_not_a_protocol_info() {
        // {id-CA-ECDH, AlgorithmIdentifier {id-ecPublicKey, brainpoolP256r1}, keyId 1}: the
        // structure real DG14s carry next to ChipAuthenticationInfo.
        let mut info = ID_CA_ECDH.to_der().unwrap();
        let mut alg = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1")
            .to_der()
            .unwrap();
        alg.extend(
            ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7")
                .to_der()
                .unwrap(),
        );
        let alg = tlv::encoded(tlv::Tag::new(0x30), &alg);
        info.extend(&alg);
        info.extend([0x02, 0x01, 0x01]);
        let set = tlv::encoded(
            tlv::Tag::new(0x31),
            &tlv::encoded(tlv::Tag::new(0x30), &info),
        );
        let bytes = tlv::encoded(DG14_TAG, &set);
        let dg14 = parse(&bytes).unwrap();
        assert_eq!(
            dg14.infos,
            [SecurityInfo::ChipAuthenticationDomainParameter(
                ChipAuthenticationDomainParameterInfo {
                    protocol: ID_CA_ECDH,
                    domain_parameter: &alg,
                    key_id: Some(1),
                }
            )]
        );
    }

    #[test]
    fn oid_arcs() {
        assert!(is_under(&CA_ECDH_AES128, &ID_CA));
        assert!(!is_under(&ID_CA, &ID_CA));
        assert!(!is_under(&ID_PK_ECDH, &ID_CA));
        // 0.4.0.127.0.7.2.2.30 is not under ...2.2.3 (its arc differs, though the text shares a prefix).
        let near = ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.30");
        assert!(!is_under(&near, &ID_CA));
    }

    #[test]
    fn refuses_malformed() {
        let bytes = build::dg14(&build::example_ec_public_key_info(), None);
        assert!(parse(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 0x6F;
        assert!(matches!(parse(&wrong), Err(Dg14Error::Tlv(_))));
        // A SEQUENCE where the SET should be.
        let seq = tlv::encoded(DG14_TAG, &[0x30, 0x00]);
        assert_eq!(parse(&seq), Err(Dg14Error::NotASet));
        // A CA info without its version.
        let mut info = Vec::new();
        der::Encode::encode_to_vec(&CA_ECDH_AES128, &mut info).unwrap();
        let info = tlv::encoded(tlv::Tag::new(0x30), &info);
        let set = tlv::encoded(tlv::Tag::new(0x31), &info);
        assert!(matches!(
            parse(&tlv::encoded(DG14_TAG, &set)),
            Err(Dg14Error::Der(_))
        ));
        // A public key info whose key is not a SubjectPublicKeyInfo.
        let mut info = Vec::new();
        der::Encode::encode_to_vec(&ID_PK_ECDH, &mut info).unwrap();
        info.extend([0x02, 0x01, 0x01]);
        let set = tlv::encoded(
            tlv::Tag::new(0x31),
            &tlv::encoded(tlv::Tag::new(0x30), &info),
        );
        assert!(parse(&tlv::encoded(DG14_TAG, &set)).is_err());
        // Trailing bytes after the SET.
        let mut value = tlv::parse_exact(&bytes, DG14_TAG).unwrap().value().to_vec();
        value.extend([0x05, 0x00]);
        assert!(parse(&tlv::encoded(DG14_TAG, &value)).is_err());
    }
}
