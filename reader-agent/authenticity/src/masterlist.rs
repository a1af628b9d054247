//! ICAO CSCA master list (ICAO 9303-12, 9): a CMS SignedData whose encapsulated content is
//! `CscaMasterList ::= SEQUENCE { version INTEGER, certList SET OF Certificate }`.
//!
//! Walked with `der`'s reader, keeping slices of the input: each listed certificate must keep its
//! bytes as published (its signature covers its TBS bytes as received), and one undecodable
//! certificate must not cost the whole list, so the list is split into TLVs before any decoding.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Reader, SliceReader, Tag, TagNumber, Tagged};

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
