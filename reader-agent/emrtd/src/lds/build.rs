//! Encoders of LDS files for tests and the virtual card: EF.COM, DG1 (check digits computed),
//! DG2 around given image bytes, DG13 in the layouts seen on real cards, DG14, and an EF.SOD
//! with the real hashes of given data groups.
//!
//! They write what a card holds; the parsers in this crate are tested against them and, where
//! an independent reference exists (ICAO's MRZ example, an OpenSSL-made SignedData), against
//! that too.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, OctetStringRef, SetOfVec};
use der::{Decode, Encode, Tag as DerTag};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::bac::check_digit;
use crate::lds::com::{COM_TAG, LDS_VERSION_TAG, TAG_LIST_TAG, UNICODE_VERSION_TAG};
use crate::lds::data_group_tag;
use crate::lds::dg1::{DG1_TAG, MRZ_TAG};
use crate::lds::dg2::{
    COUNT_TAG, DATA_BLOCK_TAG, DG2_TAG, FORMAT_ID, FaceRecordVersion, GROUP_TAG, HEADER_TAG,
    TEMPLATE_TAG,
};
use crate::lds::dg14::{DG14_TAG, ID_AA, ID_PK_ECDH};
use crate::lds::sod::{
    DataGroupHashDer, ID_CONTENT_TYPE, ID_LDS_SECURITY_OBJECT, ID_MESSAGE_DIGEST, ID_SIGNED_DATA,
    LdsSecurityObjectDer, SOD_TAG,
};
use crate::tlv::{self, Tag};

/// id-sha256.
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// EF.COM for LDS 1.7, Unicode 4.0.0, listing the given data groups.
pub fn com(data_groups: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    tlv::encode(LDS_VERSION_TAG, b"0107", &mut value);
    tlv::encode(UNICODE_VERSION_TAG, b"040000", &mut value);
    let tags: Vec<u8> = data_groups
        .iter()
        .filter_map(|&n| data_group_tag(n))
        .collect();
    tlv::encode(TAG_LIST_TAG, &tags, &mut value);
    tlv::encoded(COM_TAG, &value)
}

/// The fields of a TD1 MRZ, without check digits.
#[derive(Clone, Copy, Debug)]
pub struct Td1Fields<'a> {
    pub document_code: &'a str,
    pub issuing_state: &'a str,
    /// Up to 9 characters.
    pub document_number: &'a str,
    pub optional_data_1: &'a str,
    /// `YYMMDD`.
    pub date_of_birth: &'a str,
    pub sex: char,
    /// `YYMMDD`, or `None` for a card without expiry (filler, check digit 0).
    pub date_of_expiry: Option<&'a str>,
    pub nationality: &'a str,
    pub optional_data_2: &'a str,
    pub primary: &'a str,
    pub secondary: &'a str,
}

impl Td1Fields<'static> {
    /// A CCCD-shaped MRZ for ID 001099012345 (a made-up holder).
    pub fn cccd_example() -> Self {
        Td1Fields {
            document_code: "ID",
            issuing_state: "VNM",
            document_number: "099012345",
            optional_data_1: "001099012345",
            date_of_birth: "990115",
            sex: 'M',
            date_of_expiry: Some("240115"),
            nationality: "VNM",
            optional_data_2: "",
            primary: "NGUYEN",
            secondary: "VAN AN",
        }
    }
}

fn padded(text: &str, len: usize) -> String {
    let mut s: String = text.replace(' ', "<").chars().take(len).collect();
    while s.len() < len {
        s.push('<');
    }
    s
}

fn digit(field: &str) -> char {
    char::from(b'0' + check_digit(field).unwrap_or(0))
}

/// The 90 characters of a TD1 MRZ with every check digit computed.
pub fn td1_mrz(f: &Td1Fields<'_>) -> String {
    let number = padded(f.document_number, 9);
    let dob = padded(f.date_of_birth, 6);
    let expiry = padded(f.date_of_expiry.unwrap_or(""), 6);
    let mut line1 = format!(
        "{}{}{}",
        padded(f.document_code, 2),
        padded(f.issuing_state, 3),
        number
    );
    line1.push(digit(&number));
    line1.push_str(&padded(f.optional_data_1, 15));
    let opt2 = padded(f.optional_data_2, 11);
    let mut line2 = format!("{dob}{}{}{expiry}{}", digit(&dob), f.sex, digit(&expiry));
    line2.push_str(&padded(f.nationality, 3));
    line2.push_str(&opt2);
    let composite = format!("{}{}{}{}", &line1[5..30], &line2[0..7], &line2[8..15], opt2);
    line2.push(digit(&composite));
    let name = format!("{}<<{}", f.primary, f.secondary);
    format!("{line1}{line2}{}", padded(&name, 30))
}

/// DG1 around a 90-character MRZ.
pub fn dg1(mrz: &str) -> Vec<u8> {
    tlv::encoded(DG1_TAG, &tlv::encoded(MRZ_TAG, mrz.as_bytes()))
}

/// A facial record to wrap in DG2: the edition, the image, and how many optional entries its
/// headers carry (each written with placeholder values), so parsers are tested skipping them.
#[derive(Clone, Copy, Debug)]
pub struct FaceRecord<'a> {
    pub version: FaceRecordVersion,
    pub image: &'a [u8],
    pub width: u16,
    pub height: u16,
    /// Feature points (2005) or landmark points (2011).
    pub points: u16,
    /// Quality blocks (2011 only).
    pub quality_blocks: u8,
}

impl<'a> FaceRecord<'a> {
    /// A 480x640 portrait with no optional entries.
    pub fn new(version: FaceRecordVersion, image: &'a [u8]) -> Self {
        FaceRecord {
            version,
            image,
            width: 480,
            height: 640,
            points: 0,
            quality_blocks: 0,
        }
    }
}

fn u32_len(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// The ISO/IEC 19794-5 facial record (one image) of the given edition.
pub fn facial_record(r: &FaceRecord<'_>) -> Vec<u8> {
    let points = usize::from(r.points);
    let mut image_information = vec![0x01, 0x00];
    image_information.extend(r.width.to_be_bytes());
    image_information.extend(r.height.to_be_bytes());
    let mut body = Vec::new();
    let header_len = match r.version {
        FaceRecordVersion::V2005 => {
            // Facial information: gender, eye and hair colour, feature mask, expression, pose
            // angles and their uncertainty, all "unspecified".
            let block_len = 20 + 8 * points + 12 + r.image.len();
            body.extend(u32_len(block_len));
            body.extend(r.points.to_be_bytes());
            body.extend([0u8; 14]);
            for i in 0..points {
                body.extend([0x01, 0x11, 0, i as u8, 0, i as u8, 0, 0]);
            }
            // Colour space, source type, device type, quality.
            image_information.extend([0x01, 0x02, 0, 0, 0, 0]);
            body.extend(&image_information);
            body.extend(r.image);
            14
        }
        FaceRecordVersion::V2011 => {
            let quality = usize::from(r.quality_blocks);
            let rep_len = 18 + 1 + 5 * quality + 17 + 8 * points + 11 + r.image.len();
            body.extend(u32_len(rep_len));
            // Capture date and time (2026-01-02 03:04:05.006), device technology, vendor, type.
            body.extend([0x07, 0xEA, 1, 2, 3, 4, 5, 0, 6, 0, 0, 0, 0, 0]);
            body.push(r.quality_blocks);
            for _ in 0..quality {
                body.extend([90, 0x01, 0x01, 0x00, 0x01]);
            }
            body.extend(r.points.to_be_bytes());
            body.extend([0u8; 15]);
            for i in 0..points {
                body.extend([0x01, 0x11, 0, i as u8, 0, i as u8, 0, 0]);
            }
            // Spatial sampling rate, post-acquisition processing, cross reference, colour space.
            image_information.extend([0, 0, 0, 0, 0x01]);
            body.extend(&image_information);
            body.extend(r.image);
            17
        }
    };
    let mut record = Vec::with_capacity(header_len + body.len());
    record.extend(FORMAT_ID);
    record.extend(r.version.bytes());
    record.extend(u32_len(header_len + body.len()));
    record.extend(1u16.to_be_bytes());
    if r.version == FaceRecordVersion::V2011 {
        // Certification flag, temporal semantics.
        record.extend([0, 0, 0]);
    }
    record.extend(body);
    record
}

/// DG2 with one instance whose biometric data block (tag `block_tag`) holds `record`, after a
/// biometric header template naming the face and the ISO/IEC 19794-5 format.
pub fn dg2_around(block_tag: Tag, record: &[u8]) -> Vec<u8> {
    let mut header = Vec::new();
    tlv::encode(Tag::new(0x80), &[0x01, 0x01], &mut header);
    tlv::encode(Tag::new(0x81), &[0x02], &mut header);
    tlv::encode(Tag::new(0x87), &[0x01, 0x01], &mut header);
    tlv::encode(Tag::new(0x88), &[0x00, 0x08], &mut header);
    let mut template = tlv::encoded(HEADER_TAG, &header);
    tlv::encode(block_tag, record, &mut template);
    let mut group = tlv::encoded(COUNT_TAG, &[1]);
    tlv::encode(TEMPLATE_TAG, &template, &mut group);
    tlv::encoded(DG2_TAG, &tlv::encoded(GROUP_TAG, &group))
}

/// DG2 around one facial record.
pub fn dg2(record: &FaceRecord<'_>) -> Vec<u8> {
    dg2_around(DATA_BLOCK_TAG, &facial_record(record))
}

/// `len` bytes shaped like a baseline JPEG (SOI, an APP0 "JFIF" segment, filler from `seed`,
/// EOI), for faces in tests and the demo: a parser or a hash sees a JPEG's size and first
/// bytes; no viewer is promised a picture.
pub fn synthetic_jpeg(len: usize, seed: u8) -> Vec<u8> {
    let head = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00,
    ];
    let mut out: Vec<u8> = head.iter().copied().take(len).collect();
    let mut state = u32::from(seed) | 0x100;
    while out.len() + 2 < len {
        // A small linear congruential filler; 0xFF avoided so no marker appears by chance.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.push(((state >> 16) as u8).min(0xFE));
    }
    if len >= head.len() + 2 {
        out.extend([0xFF, 0xD9]);
    }
    out.truncate(len);
    out
}

/// How DG13 nests the parents' names (field 13): real cards differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentsLayout {
    /// `{13, SEQUENCE {father, mother}}`.
    OneSequence,
    /// `{13, SEQUENCE {father}, SEQUENCE {mother}}`.
    SequenceEach,
}

/// Where DG13 puts the old 9-digit ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldIdField {
    Field15,
    Field16,
}

/// DG13's content, in the card's own words (dates `dd/mm/yyyy`).
#[derive(Clone, Debug)]
pub struct Dg13Person<'a> {
    pub id: &'a str,
    pub full_name: &'a str,
    pub date_of_birth: &'a str,
    pub sex: &'a str,
    pub nationality: &'a str,
    pub ethnicity: &'a str,
    pub religion: &'a str,
    pub hometown: &'a str,
    pub residence: &'a str,
    pub marks: &'a str,
    pub issue_date: &'a str,
    pub expiry: &'a str,
    pub father: &'a str,
    pub mother: &'a str,
    /// `None`: an empty SEQUENCE, as cards write an unmarried holder.
    pub spouse: Option<&'a str>,
    pub parents: ParentsLayout,
    /// The old ID and where it goes; `None`: the field is absent.
    pub old_id: Option<(&'a str, OldIdField)>,
    /// A field 16 that is not an old ID (a 16-character serial), when the old ID is not there.
    pub field_16: Option<&'a str>,
}

impl Dg13Person<'static> {
    /// A made-up holder matching [`Td1Fields::cccd_example`].
    pub fn example() -> Self {
        Dg13Person {
            id: "001099012345",
            full_name: "Nguyễn Văn An",
            date_of_birth: "15/01/1999",
            sex: "Nam",
            nationality: "Việt Nam",
            ethnicity: "Kinh",
            religion: "Không",
            hometown: "Xã Phú Mỹ, Huyện Phú Vang, Thừa Thiên Huế",
            residence: "Số 1 Phố Huế, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội",
            marks: "Nốt ruồi C:2cm trên trước mép trái",
            issue_date: "10/07/2021",
            expiry: "15/01/2024",
            father: "Nguyễn Văn Bình",
            mother: "Trần Thị Cúc",
            spouse: None,
            parents: ParentsLayout::OneSequence,
            old_id: Some(("123456789", OldIdField::Field15)),
            field_16: None,
        }
    }
}

fn utf8(text: &str) -> Vec<u8> {
    tlv::encoded(Tag::new(0x0C), text.as_bytes())
}

fn printable(text: &str) -> Vec<u8> {
    tlv::encoded(Tag::new(0x13), text.as_bytes())
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv::encoded(Tag::new(0x30), &parts.concat())
}

fn integer(n: u32) -> Vec<u8> {
    n.to_der().unwrap_or_default()
}

/// DG13 (tag 6D) in the Vietnamese layout: version 1, OID 1.0.10646.1.0.8, then a SET of
/// `{field number, value}` in field order.
pub fn dg13(p: &Dg13Person<'_>) -> Vec<u8> {
    let field = |n: u32, values: Vec<Vec<u8>>| {
        let mut parts = vec![integer(n)];
        parts.extend(values);
        sequence(&parts)
    };
    let mut fields = vec![
        field(1, vec![printable(p.id)]),
        field(2, vec![utf8(p.full_name)]),
        field(3, vec![printable(p.date_of_birth)]),
        field(4, vec![utf8(p.sex)]),
        field(5, vec![utf8(p.nationality)]),
        field(6, vec![utf8(p.ethnicity)]),
        field(7, vec![utf8(p.religion)]),
        field(8, vec![utf8(p.hometown)]),
        field(9, vec![utf8(p.residence)]),
        field(10, vec![utf8(p.marks)]),
        field(11, vec![printable(p.issue_date)]),
        field(12, vec![utf8(p.expiry)]),
        match p.parents {
            ParentsLayout::OneSequence => {
                field(13, vec![sequence(&[utf8(p.father), utf8(p.mother)])])
            }
            ParentsLayout::SequenceEach => field(
                13,
                vec![sequence(&[utf8(p.father)]), sequence(&[utf8(p.mother)])],
            ),
        },
        field(
            14,
            vec![sequence(
                &p.spouse.map(utf8).into_iter().collect::<Vec<_>>(),
            )],
        ),
    ];
    match p.old_id {
        Some((old, OldIdField::Field15)) => fields.push(field(15, vec![printable(old)])),
        Some((old, OldIdField::Field16)) => fields.push(field(16, vec![printable(old)])),
        None => {}
    }
    if let Some(value) = p.field_16 {
        fields.push(field(16, vec![printable(value)]));
    }
    let oid = ObjectIdentifier::new_unwrap("1.0.10646.1.0.8")
        .to_der()
        .unwrap_or_default();
    let body = sequence(&[
        integer(1),
        oid,
        tlv::encoded(Tag::new(0x31), &fields.concat()),
    ]);
    tlv::encoded(Tag::new(0x6D), &body)
}

/// DG14 with ChipAuthenticationInfo (id-CA-ECDH-AES-CBC-CMAC-128, v1), the chip's key
/// (id-PK-ECDH), a TerminalAuthenticationInfo, and an ActiveAuthenticationInfo when given.
pub fn dg14(ca_public_key_info: &[u8], aa_algorithm: Option<ObjectIdentifier>) -> Vec<u8> {
    let oid = |s: &str| ObjectIdentifier::new_unwrap(s).to_der().unwrap_or_default();
    let mut infos = vec![
        sequence(&[oid("0.4.0.127.0.7.2.2.3.2.2"), integer(1)]),
        sequence(&[
            ID_PK_ECDH.to_der().unwrap_or_default(),
            ca_public_key_info.to_vec(),
        ]),
        sequence(&[oid("0.4.0.127.0.7.2.2.2"), integer(1)]),
    ];
    if let Some(alg) = aa_algorithm {
        infos.push(sequence(&[
            ID_AA.to_der().unwrap_or_default(),
            integer(1),
            alg.to_der().unwrap_or_default(),
        ]));
    }
    tlv::encoded(DG14_TAG, &tlv::encoded(Tag::new(0x31), &infos.concat()))
}

/// How a built EF.SOD is signed: the signer's identifier and signature algorithm, and a
/// callback that signs the DER of the signed attributes (the SET OF, RFC 5652 5.4) and returns
/// the signature as the SignerInfo carries it. Keeps this crate free of signature crates: the
/// caller brings the Document Signer's key.
pub struct SodSigner<'a> {
    pub sid: SignerIdentifier,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub sign: &'a dyn Fn(&[u8]) -> Vec<u8>,
}

/// EF.SOD over the given data groups (number, file bytes as read), hashed with SHA-256, with
/// the given certificates (DER).
///
/// The SignedData is structurally complete (content-type and message-digest signed attributes
/// with the real digest of the LDSSecurityObject, a SignerInfo naming the signer by subject key
/// identifier) but its **signature is a dummy** (64 zero bytes); [`signed_sod`] signs for real.
pub fn sod(data_groups: &[(u8, &[u8])], certificates: &[&[u8]]) -> Result<Vec<u8>, der::Error> {
    let dummy = |_: &[u8]| vec![0u8; 64];
    signed_sod(
        data_groups,
        certificates,
        &SodSigner {
            sid: SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(OctetString::new(
                [0x5Au8; 20],
            )?)),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            sign: &dummy,
        },
    )
}

/// EF.SOD over the given data groups (SHA-256), with the given certificates, signed by `signer`
/// over the signed attributes' DER.
pub fn signed_sod(
    data_groups: &[(u8, &[u8])],
    certificates: &[&[u8]],
    signer: &SodSigner<'_>,
) -> Result<Vec<u8>, der::Error> {
    let hashes: Vec<[u8; 32]> = data_groups
        .iter()
        .map(|(_, bytes)| Sha256::digest(bytes).into())
        .collect();
    let mut entries = Vec::new();
    for ((number, _), hash) in data_groups.iter().zip(&hashes) {
        entries.push(DataGroupHashDer {
            number: *number,
            hash: OctetStringRef::new(hash)?,
        });
    }
    let security_object = LdsSecurityObjectDer {
        version: 0,
        hash_algorithm: AlgorithmIdentifierRef {
            oid: ID_SHA256,
            parameters: None,
        },
        hashes: entries,
        lds_version: None,
    }
    .to_der()?;

    let sha256 = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let attribute = |oid, value: Any| -> Result<Attribute, der::Error> {
        let mut values = SetOfVec::new();
        values.insert(value)?;
        Ok(Attribute { oid, values })
    };
    let mut signed_attrs = SetOfVec::new();
    signed_attrs.insert(attribute(
        ID_CONTENT_TYPE,
        Any::encode_from(&ID_LDS_SECURITY_OBJECT)?,
    )?)?;
    signed_attrs.insert(attribute(
        ID_MESSAGE_DIGEST,
        Any::new(
            DerTag::OctetString,
            Sha256::digest(&security_object).to_vec(),
        )?,
    )?)?;
    let signature = (signer.sign)(&signed_attrs.to_der()?);
    let signer = SignerInfo {
        version: match signer.sid {
            SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
            SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
        },
        sid: signer.sid.clone(),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signer.signature_algorithm.clone(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let certificates = if certificates.is_empty() {
        None
    } else {
        let mut set = SetOfVec::new();
        for der in certificates {
            set.insert(CertificateChoices::Certificate(
                x509_cert::Certificate::from_der(der)?,
            ))?;
        }
        Some(CertificateSet(set))
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(sha256)?;
    let mut signer_infos = SetOfVec::new();
    signer_infos.insert(signer)?;
    let signed_data = SignedData {
        version: CmsVersion::V3,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_LDS_SECURITY_OBJECT,
            econtent: Some(Any::new(DerTag::OctetString, security_object)?),
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    };
    let content_info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    };
    Ok(tlv::encoded(SOD_TAG, &content_info.to_der()?))
}

/// DG15 around a SubjectPublicKeyInfo.
pub fn dg15(public_key_info: &[u8]) -> Vec<u8> {
    tlv::encoded(crate::lds::dg15::DG15_TAG, public_key_info)
}

/// A SubjectPublicKeyInfo from its parts, encoded with `spki`'s own types.
pub fn public_key_info(
    oid: ObjectIdentifier,
    parameters: Option<&[u8]>,
    key: &[u8],
) -> Result<Vec<u8>, der::Error> {
    let info = spki::SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: parameters.map(Any::from_der).transpose()?,
        },
        subject_public_key: der::asn1::BitString::from_bytes(key)?,
    };
    info.to_der()
}

/// An EC key on brainpoolP256r1 (named curve); the point's coordinates are arbitrary.
pub fn example_ec_public_key_info() -> Vec<u8> {
    let curve = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7")
        .to_der()
        .unwrap_or_default();
    let mut point = vec![0x04];
    point.extend((0u8..64).map(|i| i.wrapping_mul(37)));
    public_key_info(
        ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
        Some(&curve),
        &point,
    )
    .expect("fixed parameters encode")
}

/// A 1024-bit RSA key shape (modulus top byte C5, exponent 65537).
pub fn example_rsa_public_key_info() -> Vec<u8> {
    let mut modulus = vec![0x00, 0xC5];
    modulus.extend([0x33; 127]);
    let n = tlv::encoded(Tag::new(0x02), &modulus);
    let e = tlv::encoded(Tag::new(0x02), &[0x01, 0x00, 0x01]);
    let key = sequence(&[n, e]);
    public_key_info(
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
        Some(&[0x05, 0x00]),
        &key,
    )
    .expect("fixed parameters encode")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn td1_builder_matches_icao_example() {
        // ICAO 9303-5's TD1 example rebuilt from its fields: the check digits agree.
        let mrz = td1_mrz(&Td1Fields {
            document_code: "I",
            issuing_state: "UTO",
            document_number: "D23145890",
            optional_data_1: "",
            date_of_birth: "740812",
            sex: 'F',
            date_of_expiry: Some("120415"),
            nationality: "UTO",
            optional_data_2: "",
            primary: "ERIKSSON",
            secondary: "ANNA MARIA",
        });
        assert_eq!(
            mrz,
            "I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6ERIKSSON<<ANNA<MARIA<<<<<<<<<<"
        );
    }
}
