//! ICAO CSCA master list (ICAO 9303-12, 9): a CMS SignedData whose encapsulated content is
//! `CscaMasterList ::= SEQUENCE { version INTEGER, certList SET OF Certificate }`.
//!
//! Walked with `der`'s reader, keeping slices of the input: each listed certificate must keep its
//! bytes as published (its signature covers its TBS bytes as received), and one undecodable
//! certificate must not cost the whole list, so the list is split into TLVs before any decoding.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

use crate::chain::{self, ChainError};
use crate::signed::{SignedDataError, find_signer_certificate, verify_signer_info};
use crate::verify::Verified;

/// id-signedData (RFC 5652).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-icao-cscaMasterList (ICAO 9303-12).
pub const ID_CSCA_MASTER_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.136.1.1.2");

/// Why a file is not a CSCA master list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MasterListError {
    #[error("master list DER: {0}")]
    Der(#[from] der::Error),
    #[error("not a CMS SignedData")]
    NotSignedData,
    #[error("content is not a CscaMasterList (type {0})")]
    NotMasterList(ObjectIdentifier),
    #[error("SignedData has no encapsulated content")]
    NoContent,
    #[error("unexpected element where {0} belongs")]
    UnexpectedElement(&'static str),
}

/// A master list split into its parts, all slices of the input.
#[derive(Clone, Debug)]
pub struct MasterList<'a> {
    /// CscaMasterList version (0 in every published list).
    pub version: u8,
    /// Each `certList` element as received (one TLV each), decodable or not.
    pub certificates: Vec<&'a [u8]>,
    /// Certificates of the SignedData itself: the master list signer and its CSCA.
    pub signer_certificates: Vec<&'a [u8]>,
    /// The encapsulated content (the DER CscaMasterList) over which the list signature is made.
    pub content: &'a [u8],
    /// The raw SignerInfos SET, for verifying the list's own signature.
    pub signer_infos: &'a [u8],
}

fn context(number: u32) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(number),
    }
}

fn expect<'a>(
    r: &mut SliceReader<'a>,
    tag: Tag,
    what: &'static str,
) -> Result<&'a [u8], MasterListError> {
    let any: AnyRef<'a> = r.decode()?;
    if any.tag() != tag {
        return Err(MasterListError::UnexpectedElement(what));
    }
    Ok(any.value())
}

fn read_all<'a, T>(
    bytes: &'a [u8],
    f: impl FnOnce(&mut SliceReader<'a>) -> Result<T, MasterListError>,
) -> Result<T, MasterListError> {
    let mut r = SliceReader::new(bytes)?;
    let value = f(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// Splits every TLV of a SET's contents.
fn elements(set: &[u8]) -> Result<Vec<&[u8]>, MasterListError> {
    read_all(set, |r| {
        let mut all = Vec::new();
        while !r.is_finished() {
            all.push(r.tlv_bytes()?);
        }
        Ok(all)
    })
}

/// Parses a master list file (DER).
pub fn parse(bytes: &[u8]) -> Result<MasterList<'_>, MasterListError> {
    let signed_data = read_all(bytes, |r| {
        r.sequence(|r| {
            let content_type: ObjectIdentifier = r.decode()?;
            if content_type != ID_SIGNED_DATA {
                return Err(MasterListError::NotSignedData);
            }
            expect(r, context(0), "ContentInfo content")
        })
    })?;
    let (content, signer_certificates, signer_infos) = read_all(signed_data, |r| {
        r.sequence(|r| {
            let _version: u8 = r.decode()?;
            expect(r, Tag::Set, "digestAlgorithms")?;
            let content = r.sequence(|r| {
                let content_type: ObjectIdentifier = r.decode()?;
                if content_type != ID_CSCA_MASTER_LIST {
                    return Err(MasterListError::NotMasterList(content_type));
                }
                if r.is_finished() {
                    return Err(MasterListError::NoContent);
                }
                let explicit = expect(r, context(0), "eContent")?;
                read_all(explicit, |r| {
                    expect(r, Tag::OctetString, "eContent OCTET STRING")
                })
            })?;
            let mut signer_certificates = Vec::new();
            if Tag::peek(r)? == context(0) {
                signer_certificates = elements(expect(r, context(0), "certificates")?)?;
            }
            if Tag::peek(r)? == context(1) {
                r.tlv_bytes()?;
            }
            let signer_infos = expect(r, Tag::Set, "signerInfos")?;
            Ok((content, signer_certificates, signer_infos))
        })
    })?;
    let (version, certificates) = read_all(content, |r| {
        r.sequence(|r| {
            let version: u8 = r.decode()?;
            let certificates = elements(expect(r, Tag::Set, "certList")?)?;
            Ok((version, certificates))
        })
    })?;
    Ok(MasterList {
        version,
        certificates,
        signer_certificates,
        content,
        signer_infos,
    })
}

/// Where the CSCA that issued a master list's signer was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anchor {
    /// In the trust store the list was checked against: the list is as trusted as that CSCA.
    TrustStore,
    /// Only in the list itself: the signature is intact, but the list vouches for itself.
    ListItself,
}

/// What a master list's own signature proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSignature {
    /// The master list signer's subject (public: an authority's name).
    pub signer: String,
    /// The CSCA that issued the signer.
    pub csca: String,
    /// The signer's country, equal to its CSCA's.
    pub country: Option<String>,
    /// The scheme of the list's signature.
    pub scheme: Verified,
    pub anchor: Anchor,
}

/// Why a master list's own signature is not proven.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListSignatureError {
    #[error("signerInfos: {0}")]
    SignerInfos(#[from] emrtd::lds::sod::SodError),
    #[error("the list has no SignerInfo")]
    NoSigner,
    #[error("the list's signer certificate is not in the list")]
    SignerCertificateNotFound,
    #[error("the list's signature: {0}")]
    Signature(#[from] SignedDataError),
    #[error("the list's signer is not issued by a known CSCA: {0}")]
    Chain(#[from] ChainError),
    #[error("the list signer's country {signer:?} is not its CSCA's ({csca:?})")]
    CountryMismatch {
        signer: Option<String>,
        csca: Option<String>,
    },
}

/// Verifies a master list's own signature (signed attributes, content type, message digest over
/// the content as received) with its signer certificate, and that signer against a CSCA of its
/// own country: first among `trusted`, else among the CSCA certificates the list carries.
pub fn verify_signature(
    list: &MasterList<'_>,
    trusted: &[&[u8]],
) -> Result<ListSignature, ListSignatureError> {
    let signers = emrtd::lds::sod::parse_signer_infos(list.signer_infos)?;
    let signer = signers.first().ok_or(ListSignatureError::NoSigner)?;
    let certificate = find_signer_certificate(&signer.sid, &list.signer_certificates)
        .ok_or(ListSignatureError::SignerCertificateNotFound)?;
    let scheme = verify_signer_info(
        signer,
        ID_CSCA_MASTER_LIST,
        list.content,
        certificate,
        false,
    )?;
    let (issuer, anchor) = match chain::find_issuer(certificate, trusted.iter().copied(), false) {
        Ok(issuer) => (issuer, Anchor::TrustStore),
        Err(_) => {
            let own = list
                .certificates
                .iter()
                .chain(&list.signer_certificates)
                .copied();
            (
                chain::find_issuer(certificate, own, false)?,
                Anchor::ListItself,
            )
        }
    };
    let signer_cert = x509_cert::Certificate::from_der(certificate).map_err(ChainError::Der)?;
    let csca_cert =
        x509_cert::Certificate::from_der(issuer.certificate).map_err(ChainError::Der)?;
    let signer_country = chain::country(signer_cert.tbs_certificate().subject());
    let csca_country = chain::country(csca_cert.tbs_certificate().subject());
    if signer_country.is_none() || signer_country != csca_country {
        return Err(ListSignatureError::CountryMismatch {
            signer: signer_country,
            csca: csca_country,
        });
    }
    Ok(ListSignature {
        signer: signer_cert.tbs_certificate().subject().to_string(),
        csca: csca_cert.tbs_certificate().subject().to_string(),
        country: signer_country,
        scheme,
        anchor,
    })
}
