//! EF.SOD (tag 77): the Document Security Object, a CMS SignedData (RFC 5652) whose content is
//! the LDSSecurityObject, the hash of each data group (ICAO 9303-10, 4.6.2).
//!
//! Passive authentication later checks a signature over the signed attributes and a hash over
//! the encapsulated content, both over the bytes **as received**: a decode-and-re-encode would
//! reorder a SET OF or normalise an encoding and break the signature of a card that is not
//! perfectly DER. So this parser walks the SignedData with `der`'s reader and keeps slices of
//! the input where later checks need exact bytes (encapsulated content, signed attributes,
//! certificates), and typed values everywhere else. Structures are DER (ICAO requires it); the
//! tag-77 wrapper is BER-TLV.

use std::fmt;

use cms::signed_data::SignerIdentifier;
use der::asn1::{AnyRef, ObjectIdentifier, PrintableStringRef};
use der::{Decode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use spki::AlgorithmIdentifierRef;

use crate::tlv::{self, TlvError};

/// Tag of EF.SOD.
pub const SOD_TAG: tlv::Tag = tlv::Tag::new(0x77);
/// id-signedData (RFC 5652).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-icao-mrtd-security-ldsSecurityObject (ICAO 9303-10).
pub const ID_LDS_SECURITY_OBJECT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.1");
/// id-contentType signed attribute (RFC 5652, 11.1).
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest signed attribute (RFC 5652, 11.2).
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// Why EF.SOD is not an acceptable Document Security Object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SodError {
    #[error("EF.SOD wrapper: {0}")]
    Tlv(#[from] TlvError),
    #[error("EF.SOD DER: {0}")]
    Der(#[from] der::Error),
    #[error("content is not CMS SignedData")]
    NotSignedData,
    #[error("encapsulated content is not an LDSSecurityObject")]
    NotLdsSecurityObject,
    #[error("encapsulated content is absent (detached signature)")]
    NoContent,
    #[error("no SignerInfo")]
    NoSigner,
    #[error("{0} where another element was expected")]
    UnexpectedElement(&'static str),
    #[error("signed attribute {0} is malformed, repeated or has several values")]
    BadAttribute(&'static str),
    #[error("data group number {0} is out of range or listed twice")]
    DataGroupNumber(u8),
}

/// A data group's hash as the issuer signed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataGroupHash<'a> {
    pub number: u8,
    pub hash: &'a [u8],
}

/// The LDSSecurityObject: the hash algorithm and the hash of every data group on the chip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdsSecurityObject<'a> {
    /// 0, or 1 when the LDS version info is present.
    pub version: u8,
    pub hash_algorithm: AlgorithmIdentifierRef<'a>,
    pub data_group_hashes: Vec<DataGroupHash<'a>>,
    /// LDS and Unicode versions (`0108`, `040000`) of an LDSSecurityObject V1.
    pub lds_version: Option<(&'a str, &'a str)>,
}

impl<'a> LdsSecurityObject<'a> {
    /// The signed hash of data group `number`.
    pub fn hash_of(&self, number: u8) -> Option<&'a [u8]> {
        self.data_group_hashes
            .iter()
            .find(|h| h.number == number)
            .map(|h| h.hash)
    }
}

/// The signed attributes of a SignerInfo, kept as received.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignedAttributes<'a> {
    raw: &'a [u8],
    /// The content-type attribute's value.
    pub content_type: Option<ObjectIdentifier>,
    /// The message-digest attribute's value: the hash of the encapsulated content.
    pub message_digest: Option<&'a [u8]>,
}

impl fmt::Debug for SignedAttributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedAttributes")
            .field("len", &self.raw.len())
            .field("content_type", &self.content_type)
            .field("message_digest", &self.message_digest)
            .finish()
    }
}

impl<'a> SignedAttributes<'a> {
    /// The `[0] IMPLICIT` element exactly as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// What the signature covers (RFC 5652, 5.4): the received bytes with the `[0]` tag
    /// replaced by the SET OF tag (31), nothing re-encoded.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = self.raw.to_vec();
        if let Some(first) = bytes.first_mut() {
            *first = 0x31;
        }
        bytes
    }
}

/// One signer of the SignedData (a card has one: the Document Signer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerInfo<'a> {
    pub version: u8,
    /// Issuer and serial number, or subject key identifier, of the Document Signer.
    pub sid: SignerIdentifier,
    pub digest_algorithm: AlgorithmIdentifierRef<'a>,
    pub signed_attributes: Option<SignedAttributes<'a>>,
    pub signature_algorithm: AlgorithmIdentifierRef<'a>,
    pub signature: &'a [u8],
}

/// EF.SOD, borrowing from the bytes read.
#[derive(Clone, PartialEq, Eq)]
pub struct Sod<'a> {
    pub digest_algorithms: Vec<AlgorithmIdentifierRef<'a>>,
    /// The encapsulated content (DER of the LDSSecurityObject) as received: the message-digest
    /// attribute is its hash.
    pub encapsulated_content: &'a [u8],
    pub security_object: LdsSecurityObject<'a>,
    /// Certificates (the Document Signer's) as received, DER.
    pub certificates: Vec<&'a [u8]>,
    pub signer_infos: Vec<SignerInfo<'a>>,
}

impl fmt::Debug for Sod<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sod")
            .field("security_object", &self.security_object)
            .field("certificates", &self.certificates.len())
            .field("signer_infos", &self.signer_infos)
            .finish_non_exhaustive()
    }
}

impl<'a> Sod<'a> {
    /// The (first) signer; parsing guarantees there is one.
    pub fn signer(&self) -> Option<&SignerInfo<'a>> {
        self.signer_infos.first()
    }
}

const fn context(number: u32, constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: TagNumber(number),
    }
}

/// Runs `f` over all of `bytes`; bytes left over are an error.
fn read_all<'a, T>(
    bytes: &'a [u8],
    f: impl FnOnce(&mut SliceReader<'a>) -> Result<T, SodError>,
) -> Result<T, SodError> {
    let mut reader = SliceReader::new(bytes)?;
    let value = f(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// Reads one element and checks its tag.
fn expect<'a>(r: &mut SliceReader<'a>, tag: Tag, what: &'static str) -> Result<&'a [u8], SodError> {
    let any: AnyRef<'a> = r.decode()?;
    if any.tag() != tag {
        return Err(SodError::UnexpectedElement(what));
    }
    Ok(any.value())
}

/// Parses EF.SOD.
pub fn parse(bytes: &[u8]) -> Result<Sod<'_>, SodError> {
    let wrapper = tlv::parse_exact(bytes, SOD_TAG)?;
    let signed_data = read_all(wrapper.value(), |r| {
        r.sequence(|r| {
            let content_type: ObjectIdentifier = r.decode()?;
            if content_type != ID_SIGNED_DATA {
                return Err(SodError::NotSignedData);
            }
            expect(r, context(0, true), "ContentInfo content")
        })
    })?;
    read_all(signed_data, |r| r.sequence(parse_signed_data))
}

fn parse_signed_data<'a>(r: &mut SliceReader<'a>) -> Result<Sod<'a>, SodError> {
    let _version: u8 = r.decode()?;
    let digest_algorithms = read_all(expect(r, Tag::Set, "digestAlgorithms")?, |r| {
        let mut all = Vec::new();
        while !r.is_finished() {
            all.push(r.decode::<AlgorithmIdentifierRef<'a>>()?);
        }
        Ok(all)
    })?;
    let encapsulated_content = r.sequence(|r| {
        let content_type: ObjectIdentifier = r.decode()?;
        if content_type != ID_LDS_SECURITY_OBJECT {
            return Err(SodError::NotLdsSecurityObject);
        }
        if r.is_finished() {
            return Err(SodError::NoContent);
        }
        let explicit = expect(r, context(0, true), "eContent")?;
        read_all(explicit, |r| {
            expect(r, Tag::OctetString, "eContent OCTET STRING")
        })
    })?;
    let security_object = parse_security_object(encapsulated_content)?;

    let mut certificates = Vec::new();
    if Tag::peek(r)? == context(0, true) {
        let set = expect(r, context(0, true), "certificates")?;
        read_all(set, |r| {
            while !r.is_finished() {
                certificates.push(r.tlv_bytes()?);
            }
            Ok(())
        })?;
    }
    if Tag::peek(r)? == context(1, true) {
        // CRLs are not used by passive authentication here; skip them whole.
        r.tlv_bytes()?;
    }
    let signer_infos = parse_signer_infos(expect(r, Tag::Set, "signerInfos")?)?;
    if signer_infos.is_empty() {
        return Err(SodError::NoSigner);
    }
    Ok(Sod {
        digest_algorithms,
        encapsulated_content,
        security_object,
        certificates,
        signer_infos,
    })
}

#[derive(Sequence)]
pub(crate) struct DataGroupHashDer<'a> {
    pub(crate) number: u8,
    pub(crate) hash: &'a der::asn1::OctetStringRef,
}

#[derive(Sequence)]
pub(crate) struct LdsVersionInfoDer<'a> {
    pub(crate) lds_version: PrintableStringRef<'a>,
    pub(crate) unicode_version: PrintableStringRef<'a>,
}

/// LDSSecurityObject (ICAO 9303-10, 4.6.2.2); the builder encodes with it too.
#[derive(Sequence)]
pub(crate) struct LdsSecurityObjectDer<'a> {
    pub(crate) version: u8,
    pub(crate) hash_algorithm: AlgorithmIdentifierRef<'a>,
    pub(crate) hashes: Vec<DataGroupHashDer<'a>>,
    #[asn1(optional = "true")]
    pub(crate) lds_version: Option<LdsVersionInfoDer<'a>>,
}

fn parse_security_object(der: &[u8]) -> Result<LdsSecurityObject<'_>, SodError> {
    let object = LdsSecurityObjectDer::from_der(der)?;
    let mut data_group_hashes: Vec<DataGroupHash<'_>> = Vec::with_capacity(object.hashes.len());
    for h in object.hashes {
        if !(1..=16).contains(&h.number) || data_group_hashes.iter().any(|o| o.number == h.number) {
            return Err(SodError::DataGroupNumber(h.number));
        }
        data_group_hashes.push(DataGroupHash {
            number: h.number,
            hash: h.hash.as_bytes(),
        });
    }
    Ok(LdsSecurityObject {
        version: object.version,
        hash_algorithm: object.hash_algorithm,
        data_group_hashes,
        lds_version: object
            .lds_version
            .map(|v| (v.lds_version.as_str(), v.unicode_version.as_str())),
    })
}

/// Parses the contents of a SignedData's `signerInfos` SET. Shared with other CMS SignedData
/// (ICAO master lists) whose signatures are checked the same way.
pub fn parse_signer_infos(set: &[u8]) -> Result<Vec<SignerInfo<'_>>, SodError> {
    read_all(set, |r| {
        let mut all = Vec::new();
        while !r.is_finished() {
            all.push(r.sequence(parse_signer_info)?);
        }
        Ok(all)
    })
}

fn parse_signer_info<'a>(r: &mut SliceReader<'a>) -> Result<SignerInfo<'a>, SodError> {
    let version: u8 = r.decode()?;
    let sid = SignerIdentifier::from_der(r.tlv_bytes()?)?;
    let digest_algorithm = r.decode()?;
    let signed_attributes = if Tag::peek(r)? == context(0, true) {
        let raw = r.tlv_bytes()?;
        Some(parse_signed_attributes(raw)?)
    } else {
        None
    };
    let signature_algorithm = r.decode()?;
    let signature = expect(r, Tag::OctetString, "signature")?;
    if !r.is_finished() {
        // Unsigned attributes, the only element allowed after the signature.
        expect(r, context(1, true), "unsignedAttrs")?;
    }
    Ok(SignerInfo {
        version,
        sid,
        digest_algorithm,
        signed_attributes,
        signature_algorithm,
        signature,
    })
}

fn parse_signed_attributes(raw: &[u8]) -> Result<SignedAttributes<'_>, SodError> {
    let mut attributes = SignedAttributes {
        raw,
        content_type: None,
        message_digest: None,
    };
    read_all(raw, |r| {
        let set = expect(r, context(0, true), "signedAttrs")?;
        read_all(set, |r| {
            while !r.is_finished() {
                r.sequence(|r| {
                    let kind: ObjectIdentifier = r.decode()?;
                    let values = expect(r, Tag::Set, "attribute values")?;
                    if kind == ID_CONTENT_TYPE {
                        let value = read_all(values, |r| Ok(r.decode::<ObjectIdentifier>()?))
                            .map_err(|_| SodError::BadAttribute("content-type"))?;
                        if attributes.content_type.replace(value).is_some() {
                            return Err(SodError::BadAttribute("content-type"));
                        }
                    } else if kind == ID_MESSAGE_DIGEST {
                        let value = read_all(values, |r| expect(r, Tag::OctetString, "digest"))
                            .map_err(|_| SodError::BadAttribute("message-digest"))?;
                        if attributes.message_digest.replace(value).is_some() {
                            return Err(SodError::BadAttribute("message-digest"));
                        }
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
    })?;
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::build;
    use der::Encode;
    use sha2::{Digest, Sha256};

    const OPENSSL_SOD: &[u8] = include_bytes!("../../testdata/sod/sod.bin");
    const OPENSSL_LSO: &[u8] = include_bytes!("../../testdata/sod/lso.der");
    const OPENSSL_DS: &[u8] = include_bytes!("../../testdata/sod/ds.der");
    const OPENSSL_DG1: &[u8] = include_bytes!("../../testdata/sod/dg1.bin");
    const OPENSSL_DG15: &[u8] = include_bytes!("../../testdata/sod/dg15.bin");
    const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

    #[test]
    fn parses_openssl_signed_data() {
        // testdata/sod/make.sh: OpenSSL's CMS encoder, an LDSSecurityObject from asn1parse.
        let sod = parse(OPENSSL_SOD).unwrap();
        let lso = &sod.security_object;
        assert_eq!(lso.version, 0);
        assert_eq!(lso.hash_algorithm.oid, build::ID_SHA256);
        assert_eq!(lso.hash_of(1), Some(&Sha256::digest(OPENSSL_DG1)[..]));
        assert_eq!(lso.hash_of(15), Some(&Sha256::digest(OPENSSL_DG15)[..]));
        assert_eq!(lso.hash_of(2), None);
        assert_eq!(sod.encapsulated_content, OPENSSL_LSO);
        assert_eq!(sod.certificates, [OPENSSL_DS]);
        assert_eq!(sod.digest_algorithms.len(), 1);
        let signer = sod.signer().unwrap();
        assert_eq!(signer.version, 1);
        assert!(matches!(
            signer.sid,
            SignerIdentifier::IssuerAndSerialNumber(_)
        ));
        assert_eq!(signer.digest_algorithm.oid, build::ID_SHA256);
        assert_eq!(signer.signature_algorithm.oid, ECDSA_WITH_SHA256);
        let attrs = signer.signed_attributes.unwrap();
        assert_eq!(attrs.content_type, Some(ID_LDS_SECURITY_OBJECT));
        // The signed message digest is the hash of the content bytes as received.
        assert_eq!(
            attrs.message_digest,
            Some(&Sha256::digest(sod.encapsulated_content)[..])
        );
        // The raw attributes are a slice of the file, not a re-encoding.
        let start = attrs.raw().as_ptr() as usize - OPENSSL_SOD.as_ptr() as usize;
        assert_eq!(&OPENSSL_SOD[start..start + attrs.raw().len()], attrs.raw());
        assert_eq!(attrs.raw()[0], 0xA0);
        assert_eq!(attrs.signed_bytes()[0], 0x31);
        assert_eq!(attrs.signed_bytes()[1..], attrs.raw()[1..]);
        // The certificate is a real X.509 certificate, byte for byte.
        let cert = x509_cert::Certificate::from_der(sod.certificates[0]).unwrap();
        assert_eq!(cert.to_der().unwrap(), OPENSSL_DS);
        // Debug counts certificates instead of dumping them.
        assert!(format!("{sod:?}").contains("certificates: 1"));
    }

    #[test]
    fn signed_bytes_and_signature_verify_with_openssl() {
        // An independent verifier: OpenSSL checks the ECDSA signature over `signed_bytes()` with
        // the Document Signer's public key. Changing signed_bytes (e.g. keeping the A0 tag, or
        // re-encoding the SET) makes it fail.
        let sod = parse(OPENSSL_SOD).unwrap();
        let signer = sod.signer().unwrap();
        let dir = std::env::temp_dir().join(format!("emrtd-sod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let attrs = signer.signed_attributes.unwrap();
        let verify = |data: &[u8]| {
            std::fs::write(dir.join("data"), data).unwrap();
            std::fs::write(dir.join("sig"), signer.signature).unwrap();
            let pubkey = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sod/ds_pub.pem");
            std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-verify", pubkey, "-signature"])
                .arg(dir.join("sig"))
                .arg(dir.join("data"))
                .output()
                .expect("openssl is installed")
                .status
                .success()
        };
        assert!(verify(&attrs.signed_bytes()));
        assert!(!verify(attrs.raw()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn agrees_with_the_cms_crate() {
        // cms's own decoder reads the same SignedData; our slices match its values.
        let sod = parse(OPENSSL_SOD).unwrap();
        let wrapper = tlv::parse_exact(OPENSSL_SOD, SOD_TAG).unwrap();
        let info = cms::content_info::ContentInfo::from_der(wrapper.value()).unwrap();
        let signed: cms::signed_data::SignedData = info.content.decode_as().unwrap();
        let econtent = signed.encap_content_info.econtent.unwrap();
        assert_eq!(econtent.value(), sod.encapsulated_content);
        let theirs = signed.signer_infos.0.get(0).unwrap();
        assert_eq!(theirs.signature.as_bytes(), sod.signer().unwrap().signature);
        assert_eq!(theirs.sid, sod.signer().unwrap().sid);
    }

    #[test]
    fn parses_built_sod() {
        let dg1 = build::dg1(&build::td1_mrz(&build::Td1Fields::cccd_example()));
        let dg13 = build::dg13(&build::Dg13Person::example());
        let bytes = build::sod(&[(1, &dg1), (13, &dg13)], &[OPENSSL_DS]).unwrap();
        let sod = parse(&bytes).unwrap();
        assert_eq!(
            sod.security_object.hash_of(1),
            Some(&Sha256::digest(&dg1)[..])
        );
        assert_eq!(
            sod.security_object.hash_of(13),
            Some(&Sha256::digest(&dg13)[..])
        );
        let attrs = sod.signer().unwrap().signed_attributes.unwrap();
        assert_eq!(
            attrs.message_digest,
            Some(&Sha256::digest(sod.encapsulated_content)[..])
        );
        assert_eq!(sod.certificates, [OPENSSL_DS]);
        assert!(matches!(
            sod.signer().unwrap().sid,
            SignerIdentifier::SubjectKeyIdentifier(_)
        ));
        // Without certificates.
        let bare = build::sod(&[(1, &dg1)], &[]).unwrap();
        assert!(parse(&bare).unwrap().certificates.is_empty());
    }

    #[test]
    fn signed_sod_signs_exactly_the_signed_attributes_a_verifier_hashes() {
        // The callback receives the DER SET OF the verifier reconstructs from the bytes as
        // received, and its output is the SignerInfo's signature.
        let dg1 = build::dg1(&build::td1_mrz(&build::Td1Fields::cccd_example()));
        let seen = std::cell::RefCell::new(Vec::new());
        let sign = |attrs: &[u8]| {
            *seen.borrow_mut() = attrs.to_vec();
            vec![0xAB; 70]
        };
        let sid =
            SignerIdentifier::SubjectKeyIdentifier(x509_cert::ext::pkix::SubjectKeyIdentifier(
                der::asn1::OctetString::new([7u8; 20]).unwrap(),
            ));
        let bytes = build::signed_sod(
            &[(1, &dg1)],
            &[OPENSSL_DS],
            &build::SodSigner {
                sid: sid.clone(),
                signature_algorithm: spki::AlgorithmIdentifierOwned {
                    oid: ECDSA_WITH_SHA256,
                    parameters: None,
                },
                sign: &sign,
            },
        )
        .unwrap();
        let sod = parse(&bytes).unwrap();
        let signer = sod.signer().unwrap();
        assert_eq!(
            signer.signed_attributes.unwrap().signed_bytes(),
            *seen.borrow()
        );
        assert_eq!(signer.signature, &[0xAB; 70][..]);
        assert_eq!(signer.sid, sid);
        assert_eq!(signer.signature_algorithm.oid, ECDSA_WITH_SHA256);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..OPENSSL_SOD.len() {
            assert!(parse(&OPENSSL_SOD[..len]).is_err(), "{len}");
        }
        // Truncated inside, with the outer length adjusted to fit.
        let inner = tlv::parse_exact(OPENSSL_SOD, SOD_TAG).unwrap().value();
        for len in [0, 1, 10, 100, 500, inner.len() - 1] {
            assert!(
                parse(&tlv::encoded(SOD_TAG, &inner[..len])).is_err(),
                "{len}"
            );
        }
    }

    #[test]
    fn single_byte_mutations_never_panic() {
        // Every byte replaced by a few hostile values: parsing returns, it does not panic. A
        // mutation inside a hash, signature or certificate (kept raw) may still parse.
        let mut errors = 0;
        for i in 0..OPENSSL_SOD.len() {
            for value in [0x00, 0xFF, 0x80, OPENSSL_SOD[i] ^ 0x01] {
                let mut bytes = OPENSSL_SOD.to_vec();
                bytes[i] = value;
                errors += usize::from(parse(&bytes).is_err());
            }
        }
        assert!(errors > 500, "{errors}");
    }

    #[test]
    fn refuses_wrong_content() {
        let mut wrong_tag = OPENSSL_SOD.to_vec();
        wrong_tag[0] = 0x76;
        assert!(matches!(
            parse(&wrong_tag),
            Err(SodError::Tlv(TlvError::UnexpectedTag { .. }))
        ));
        // id-data instead of id-signedData (last OID byte 02 -> 01).
        let mut data = OPENSSL_SOD.to_vec();
        assert_eq!(data[18], 0x02);
        data[18] = 0x01;
        assert_eq!(parse(&data), Err(SodError::NotSignedData));
        // eContentType 2.23.136.1.1.2 instead of ...1.1.1.
        let mut other = OPENSSL_SOD.to_vec();
        assert_eq!(other[54], 0x01);
        other[54] = 0x02;
        assert_eq!(parse(&other), Err(SodError::NotLdsSecurityObject));
        // A declared length of 4 GiB in the wrapper.
        let mut huge = vec![0x77, 0x84, 0xFF, 0xFF, 0xFF, 0xFF];
        huge.extend_from_slice(&OPENSSL_SOD[4..]);
        assert!(matches!(
            parse(&huge),
            Err(SodError::Tlv(TlvError::LengthBeyondInput { .. }))
        ));
        // Indefinite length inside the DER.
        let mut indefinite = OPENSSL_SOD.to_vec();
        indefinite[5..8].copy_from_slice(&[0x80, 0x00, 0x00]);
        assert!(parse(&indefinite).is_err());
    }

    #[test]
    fn refuses_bad_security_objects() {
        let lso = |hashes: &[(u8, &[u8])]| {
            let entries = hashes
                .iter()
                .map(|(n, h)| DataGroupHashDer {
                    number: *n,
                    hash: der::asn1::OctetStringRef::new(h).unwrap(),
                })
                .collect();
            LdsSecurityObjectDer {
                version: 0,
                hash_algorithm: AlgorithmIdentifierRef {
                    oid: build::ID_SHA256,
                    parameters: None,
                },
                hashes: entries,
                lds_version: None,
            }
            .to_der()
            .unwrap()
        };
        assert!(parse_security_object(&lso(&[(1, &[1; 32]), (2, &[2; 32])])).is_ok());
        assert_eq!(
            parse_security_object(&lso(&[(1, &[1; 32]), (1, &[2; 32])])),
            Err(SodError::DataGroupNumber(1))
        );
        assert_eq!(
            parse_security_object(&lso(&[(0, &[1; 32])])),
            Err(SodError::DataGroupNumber(0))
        );
        assert_eq!(
            parse_security_object(&lso(&[(17, &[1; 32])])),
            Err(SodError::DataGroupNumber(17))
        );
        assert!(matches!(
            parse_security_object(&[0x30, 0x00]),
            Err(SodError::Der(_))
        ));
    }

    #[test]
    fn refuses_ambiguous_signed_attributes() {
        let digest_attr = |d: u8| {
            let mut a = ID_MESSAGE_DIGEST.to_der().unwrap();
            a.extend(tlv::encoded(
                tlv::Tag::new(0x31),
                &tlv::encoded(tlv::Tag::new(0x04), &[d; 4]),
            ));
            tlv::encoded(tlv::Tag::new(0x30), &a)
        };
        let one = tlv::encoded(tlv::Tag::new(0xA0), &digest_attr(1));
        assert_eq!(
            parse_signed_attributes(&one).unwrap().message_digest,
            Some(&[1u8; 4][..])
        );
        let two = tlv::encoded(
            tlv::Tag::new(0xA0),
            &[digest_attr(1), digest_attr(2)].concat(),
        );
        assert_eq!(
            parse_signed_attributes(&two),
            Err(SodError::BadAttribute("message-digest"))
        );
        // Two values in one attribute.
        let mut a = ID_MESSAGE_DIGEST.to_der().unwrap();
        a.extend(tlv::encoded(
            tlv::Tag::new(0x31),
            &[[0x04, 0x01, 0x01], [0x04, 0x01, 0x02]].concat(),
        ));
        let multi = tlv::encoded(tlv::Tag::new(0xA0), &tlv::encoded(tlv::Tag::new(0x30), &a));
        assert_eq!(
            parse_signed_attributes(&multi),
            Err(SodError::BadAttribute("message-digest"))
        );
    }
}
