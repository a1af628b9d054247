//! DG13 (tag 6D): the CCCD's personal data in Vietnam's own layout.
//!
//! `SEQUENCE { INTEGER version, OBJECT IDENTIFIER, SET OF SEQUENCE { INTEGER field, value } }`.
//! Public readers disagree on details, so the parser assumes as little as it can:
//! - every field's strings are collected recursively, whatever the nesting, and nothing depends
//!   on a fixed length or position in bytes;
//! - field 13 (parents) may be one SEQUENCE holding both names, one SEQUENCE each, or two
//!   entries numbered 13: all give the strings in order, father first, then mother;
//! - the old 9-digit ID is field 15 or 16 or absent. A field 15 or 16 counts as the old ID only
//!   when its value has an old ID's shape, exactly 9 digits: some cards carry a 16-character
//!   value in field 16 that other readers call a serial, and guessing by position alone would
//!   present a serial as an ID number. A field that is not an old ID is kept in
//!   [`Dg13::other`], as every unknown field is;
//! - dates that do not parse (`00/00/1950` for a holder with an unknown birthday) are kept raw.
//!
//! All of this is personal data: `Debug` shows which fields are present, never their values.

use std::collections::BTreeMap;
use std::fmt;

use der::Decode;
use der::asn1::ObjectIdentifier;

use super::date::Date;
use super::id_number::{CitizenId, Sex};
use crate::tlv::{self, MAX_DEPTH, Tag, Tlv, TlvError};

/// Tag of DG13.
pub const DG13_TAG: Tag = Tag::new(0x6D);

/// Why DG13 cannot be read. Names field numbers, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dg13Error {
    #[error("DG13 structure: {0}")]
    Tlv(#[from] TlvError),
    #[error("DG13 DER: {0}")]
    Der(#[from] der::Error),
    #[error("DG13 holds no SEQUENCE")]
    NotASequence,
    #[error("DG13 has no SET of fields")]
    MissingFields,
    #[error("entry {0} of the field set is not SEQUENCE {{ INTEGER, ... }}")]
    MalformedEntry(usize),
    #[error("field {0} holds text that is not valid in its string type")]
    InvalidText(u32),
    #[error("field {0} is nested too deeply")]
    TooDeep(u32),
}

/// The ID number as DG13 states it.
#[derive(Clone, PartialEq, Eq)]
pub enum IdNumber {
    Valid(CitizenId),
    /// Not a valid 12-digit citizen ID (kept so the mismatch can be reported).
    Unchecked(String),
}

/// A date as DG13 states it.
#[derive(Clone, PartialEq, Eq)]
pub enum CardDate {
    Date(Date),
    /// Not `dd/mm/yyyy` with a real day (e.g. `00/00/1950`), kept as written.
    Raw(String),
}

impl CardDate {
    fn parse(text: String) -> Self {
        Date::parse_dmy_slashed(&text)
            .map(CardDate::Date)
            .unwrap_or(CardDate::Raw(text))
    }

    /// The year, also from a partial date whose last four characters are digits.
    pub fn year(&self) -> Option<u16> {
        match self {
            CardDate::Date(d) => Some(d.year()),
            CardDate::Raw(text) => {
                let tail = text.get(text.len().checked_sub(4)?..)?;
                tail.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| tail.parse().ok())
                    .flatten()
            }
        }
    }
}

/// The expiry as DG13 states it.
#[derive(Clone, PartialEq, Eq)]
pub enum CardExpiry {
    Date(Date),
    /// A word and no digits ("Không thời hạn"): the card does not expire.
    NoExpiry(String),
    Raw(String),
}

/// A field this parser does not type, with the strings found in it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtherField {
    pub number: u32,
    pub strings: Vec<String>,
}

impl fmt::Debug for OtherField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OtherField({}, {} strings)",
            self.number,
            self.strings.len()
        )
    }
}

/// DG13's content, typed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dg13 {
    pub version: Option<u32>,
    pub oid: Option<ObjectIdentifier>,
    pub id_number: Option<IdNumber>,
    pub full_name: Option<String>,
    pub date_of_birth: Option<CardDate>,
    /// As written (Nam / Nữ); see [`Dg13::sex`].
    pub sex_text: Option<String>,
    pub nationality: Option<String>,
    pub ethnicity: Option<String>,
    pub religion: Option<String>,
    pub hometown: Option<String>,
    pub residence: Option<String>,
    pub marks: Option<String>,
    pub issue_date: Option<CardDate>,
    pub expiry: Option<CardExpiry>,
    pub father: Option<String>,
    pub mother: Option<String>,
    pub spouse: Option<String>,
    /// The old 9-digit ID, from field 15 or 16.
    pub old_id: Option<String>,
    /// Fields not typed above, in field-number order.
    pub other: Vec<OtherField>,
    present: Vec<u32>,
}

impl fmt::Debug for Dg13 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dg13")
            .field("version", &self.version)
            .field("oid", &self.oid)
            .field("fields_present", &self.present)
            .field("other", &self.other)
            .finish_non_exhaustive()
    }
}

impl Dg13 {
    /// Male for "Nam", female for "Nữ" (precomposed or decomposed).
    pub fn sex(&self) -> Option<Sex> {
        parse_sex(self.sex_text.as_deref()?)
    }

    /// The valid citizen ID, if field 1 holds one.
    pub fn citizen_id(&self) -> Option<CitizenId> {
        match self.id_number {
            Some(IdNumber::Valid(id)) => Some(id),
            _ => None,
        }
    }

    /// Field numbers present, in order.
    pub fn fields_present(&self) -> &[u32] {
        &self.present
    }
}

/// "Nam" or "Nữ", the latter in NFC (U+1EEF) or NFD (u, U+031B, U+0303).
pub(crate) fn parse_sex(text: &str) -> Option<Sex> {
    match text.trim() {
        "Nam" | "NAM" | "nam" => Some(Sex::Male),
        "Nữ" | "Nu\u{31B}\u{303}" | "NỮ" | "NU\u{31B}\u{303}" | "nữ" => Some(Sex::Female),
        _ => None,
    }
}

/// Parses DG13.
pub fn parse(bytes: &[u8]) -> Result<Dg13, Dg13Error> {
    let dg13 = tlv::parse_exact(bytes, DG13_TAG)?;
    let body = tlv::parse_exact(dg13.value(), Tag::new(0x30)).map_err(|e| match e {
        TlvError::UnexpectedTag { .. } => Dg13Error::NotASequence,
        e => Dg13Error::Tlv(e),
    })?;
    let mut out = Dg13::default();
    let mut fields: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut found_set = false;
    for element in body.children()? {
        let element = element?;
        match element.tag().value() {
            0x02 if out.version.is_none() => out.version = Some(u32::from_der(element.raw())?),
            0x06 if out.oid.is_none() => out.oid = Some(ObjectIdentifier::from_der(element.raw())?),
            0x31 => {
                found_set = true;
                for (index, entry) in element.children()?.enumerate() {
                    let entry = entry?;
                    let (number, strings) = parse_entry(index, entry)?;
                    fields.entry(number).or_default().extend(strings);
                }
            }
            // Anything else at the top level is not part of the known layout; skipped.
            _ => {}
        }
    }
    if !found_set {
        return Err(Dg13Error::MissingFields);
    }
    out.present = fields.keys().copied().collect();

    for (number, strings) in fields {
        let text = || joined(&strings);
        match number {
            1 => {
                out.id_number = text().map(|t| match CitizenId::parse(&t) {
                    Ok(id) => IdNumber::Valid(id),
                    Err(_) => IdNumber::Unchecked(t),
                })
            }
            2 => out.full_name = text(),
            3 => out.date_of_birth = text().map(CardDate::parse),
            4 => out.sex_text = text(),
            5 => out.nationality = text(),
            6 => out.ethnicity = text(),
            7 => out.religion = text(),
            8 => out.hometown = text(),
            9 => out.residence = text(),
            10 => out.marks = text(),
            11 => out.issue_date = text().map(CardDate::parse),
            12 => out.expiry = text().map(parse_expiry),
            13 => {
                let mut names = strings.iter().map(|s| non_empty(s));
                out.father = names.next().flatten();
                out.mother = names.next().flatten();
            }
            14 => out.spouse = text(),
            15 | 16 if out.old_id.is_none() && text().as_deref().is_some_and(is_old_id) => {
                out.old_id = text();
            }
            _ => out.other.push(OtherField { number, strings }),
        }
    }
    Ok(out)
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The field's non-empty strings; several (an address in parts) joined with ", ".
fn joined(strings: &[String]) -> Option<String> {
    let parts: Vec<&str> = strings
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// An old (CMND) ID number: exactly 9 digits.
fn is_old_id(text: &str) -> bool {
    text.len() == 9 && text.bytes().all(|b| b.is_ascii_digit())
}

fn parse_expiry(text: String) -> CardExpiry {
    match Date::parse_dmy_slashed(&text) {
        Ok(date) => CardExpiry::Date(date),
        Err(_) if !text.bytes().any(|b| b.is_ascii_digit()) => CardExpiry::NoExpiry(text),
        Err(_) => CardExpiry::Raw(text),
    }
}

/// One `SEQUENCE { INTEGER number, value... }`: the number and the strings in the values.
fn parse_entry(index: usize, entry: Tlv<'_>) -> Result<(u32, Vec<String>), Dg13Error> {
    if entry.tag() != Tag::new(0x30) {
        return Err(Dg13Error::MalformedEntry(index));
    }
    let mut children = entry.children()?;
    let number = match children.next() {
        Some(Ok(first)) if first.tag() == Tag::new(0x02) => {
            u32::from_der(first.raw()).map_err(|_| Dg13Error::MalformedEntry(index))?
        }
        Some(Err(e)) => return Err(e.into()),
        _ => return Err(Dg13Error::MalformedEntry(index)),
    };
    let mut strings = Vec::new();
    for value in children {
        // The entry sits at depth 4 (6D, SEQUENCE, SET, entry); its values below.
        collect_strings(number, value?, MAX_DEPTH - 4, &mut strings)?;
    }
    Ok((number, strings))
}

/// Appends the strings in `tlv` and below, depth first, in order.
fn collect_strings(
    field: u32,
    tlv: Tlv<'_>,
    depth_left: usize,
    out: &mut Vec<String>,
) -> Result<(), Dg13Error> {
    if depth_left == 0 {
        return Err(Dg13Error::TooDeep(field));
    }
    if tlv.tag().is_constructed() {
        for child in tlv.children()? {
            collect_strings(field, child?, depth_left - 1, out)?;
        }
        return Ok(());
    }
    let value = tlv.value();
    let invalid = || Dg13Error::InvalidText(field);
    let text = match tlv.tag().value() {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString.
        0x0C | 0x12 | 0x13 | 0x16 | 0x1A => std::str::from_utf8(value)
            .map_err(|_| invalid())?
            .to_owned(),
        // TeletexString, read as Latin-1 (its common use).
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE.
        0x1E => {
            if !value.len().is_multiple_of(2) {
                return Err(invalid());
            }
            let units = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| invalid())?
        }
        // Integers, OIDs, NULL and the like carry no text.
        _ => return Ok(()),
    };
    out.push(text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::build::{self, Dg13Person, OldIdField, ParentsLayout};

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn parses_every_field() {
        let p = Dg13Person::example();
        let dg13 = parse(&build::dg13(&p)).unwrap();
        assert_eq!(dg13.version, Some(1));
        assert_eq!(
            dg13.oid,
            Some(ObjectIdentifier::new_unwrap("1.0.10646.1.0.8"))
        );
        assert_eq!(dg13.citizen_id().unwrap().as_str(), "001099012345");
        assert_eq!(dg13.full_name, s("Nguyễn Văn An"));
        assert!(dg13.date_of_birth == Some(CardDate::Date(Date::new(1999, 1, 15).unwrap())));
        assert_eq!(dg13.sex(), Some(Sex::Male));
        assert_eq!(dg13.nationality, s("Việt Nam"));
        assert_eq!(dg13.ethnicity, s("Kinh"));
        assert_eq!(dg13.religion, s("Không"));
        assert_eq!(dg13.hometown, s(p.hometown));
        assert_eq!(dg13.residence, s(p.residence));
        assert_eq!(dg13.marks, s(p.marks));
        assert!(dg13.issue_date == Some(CardDate::Date(Date::new(2021, 7, 10).unwrap())));
        assert!(dg13.expiry == Some(CardExpiry::Date(Date::new(2024, 1, 15).unwrap())));
        assert_eq!(dg13.father, s("Nguyễn Văn Bình"));
        assert_eq!(dg13.mother, s("Trần Thị Cúc"));
        assert_eq!(dg13.spouse, None);
        assert_eq!(dg13.old_id, s("123456789"));
        assert!(dg13.other.is_empty());
        assert_eq!(dg13.fields_present(), (1..=15).collect::<Vec<_>>());
    }

    #[test]
    fn both_parent_layouts_give_the_same_names() {
        for parents in [ParentsLayout::OneSequence, ParentsLayout::SequenceEach] {
            let p = Dg13Person {
                parents,
                ..Dg13Person::example()
            };
            let dg13 = parse(&build::dg13(&p)).unwrap();
            assert_eq!(
                (dg13.father, dg13.mother),
                (s("Nguyễn Văn Bình"), s("Trần Thị Cúc")),
                "{parents:?}"
            );
        }
        // Two entries numbered 13, one name each.
        let mut set = Vec::new();
        for name in ["Cha", "Mẹ"] {
            let mut entry = vec![0x02, 0x01, 0x0D];
            entry.extend(tlv::encoded(Tag::new(0x0C), name.as_bytes()));
            set.extend(tlv::encoded(Tag::new(0x30), &entry));
        }
        let dg13 = parse(&wrap_fields(&set)).unwrap();
        assert_eq!((dg13.father, dg13.mother), (s("Cha"), s("Mẹ")));
    }

    /// DG13 with version, OID and the given SET content.
    fn wrap_fields(set: &[u8]) -> Vec<u8> {
        let mut body = vec![0x02, 0x01, 0x01, 0x06, 0x03, 0x28, 0xCF, 0x06];
        body.extend(tlv::encoded(Tag::new(0x31), set));
        tlv::encoded(DG13_TAG, &tlv::encoded(Tag::new(0x30), &body))
    }

    #[test]
    fn old_id_at_15_at_16_or_absent() {
        let at = |old_id, field_16| {
            parse(&build::dg13(&Dg13Person {
                old_id,
                field_16,
                ..Dg13Person::example()
            }))
            .unwrap()
        };
        let dg13 = at(Some(("123456789", OldIdField::Field15)), None);
        assert_eq!((dg13.old_id, dg13.other.len()), (s("123456789"), 0));
        let dg13 = at(Some(("123456789", OldIdField::Field16)), None);
        assert_eq!((dg13.old_id, dg13.other.len()), (s("123456789"), 0));
        let dg13 = at(None, None);
        assert_eq!((dg13.old_id, dg13.other.len()), (None, 0));
        // A 16-character serial in field 16 is not an old ID: kept as an unknown field.
        let dg13 = at(None, Some("A1B2C3D4E5F6G7H8"));
        assert_eq!(dg13.old_id, None);
        assert_eq!(dg13.other[0].number, 16);
        assert_eq!(dg13.other[0].strings, ["A1B2C3D4E5F6G7H8"]);
        // Old ID in 15 and a serial in 16.
        let dg13 = at(
            Some(("123456789", OldIdField::Field15)),
            Some("0123456789ABCDEF"),
        );
        assert_eq!(dg13.old_id, s("123456789"));
        assert_eq!(dg13.other.len(), 1);
    }

    #[test]
    fn empty_spouse_and_present_spouse() {
        let dg13 = parse(&build::dg13(&Dg13Person::example())).unwrap();
        assert_eq!(dg13.spouse, None);
        let dg13 = parse(&build::dg13(&Dg13Person {
            spouse: Some("Lê Thị Dung"),
            ..Dg13Person::example()
        }))
        .unwrap();
        assert_eq!(dg13.spouse, s("Lê Thị Dung"));
    }

    #[test]
    fn no_expiry_word_and_partial_dates() {
        let dg13 = parse(&build::dg13(&Dg13Person {
            expiry: "Không thời hạn",
            date_of_birth: "00/00/1950",
            id: "001050012345",
            ..Dg13Person::example()
        }))
        .unwrap();
        assert!(dg13.expiry == Some(CardExpiry::NoExpiry("Không thời hạn".to_owned())));
        assert!(dg13.date_of_birth == Some(CardDate::Raw("00/00/1950".to_owned())));
        assert_eq!(dg13.date_of_birth.unwrap().year(), Some(1950));
        let dg13 = parse(&build::dg13(&Dg13Person {
            expiry: "31/02/2040",
            ..Dg13Person::example()
        }))
        .unwrap();
        assert!(dg13.expiry == Some(CardExpiry::Raw("31/02/2040".to_owned())));
    }

    #[test]
    fn keeps_unknown_fields_and_invalid_ids() {
        let mut set = Vec::new();
        set.extend(tlv::encoded(
            Tag::new(0x30),
            &[0x02, 0x01, 0x01, 0x13, 0x03, b'9', b'9', b'9'],
        ));
        let mut deep = vec![0x02, 0x01, 0x63];
        deep.extend(tlv::encoded(
            Tag::new(0xA0),
            &tlv::encoded(
                Tag::new(0x30),
                &[0x1E, 0x04, 0x00, b'H', 0x00, b'i', 0x02, 0x01, 0x05],
            ),
        ));
        deep.extend([0x16, 0x02, b'o', b'k', 0x14, 0x01, 0xE9]);
        set.extend(tlv::encoded(Tag::new(0x30), &deep));
        let dg13 = parse(&wrap_fields(&set)).unwrap();
        assert!(dg13.id_number == Some(IdNumber::Unchecked("999".to_owned())));
        assert_eq!(dg13.other[0].number, 99);
        assert_eq!(dg13.other[0].strings, ["Hi", "ok", "é"]);
    }

    #[test]
    fn refuses_hostile_input() {
        let good = build::dg13(&Dg13Person::example());
        // Truncated at every length: an error each time, never a panic.
        for len in 0..good.len() {
            assert!(parse(&good[..len]).is_err(), "{len}");
        }
        let mut wrong = good.clone();
        wrong[0] = 0x6E;
        assert!(matches!(
            parse(&wrong),
            Err(Dg13Error::Tlv(TlvError::UnexpectedTag { .. }))
        ));
        // Not a SEQUENCE inside.
        assert_eq!(
            parse(&tlv::encoded(DG13_TAG, &[0x31, 0x00])),
            Err(Dg13Error::NotASequence)
        );
        // No SET of fields.
        assert_eq!(
            parse(&tlv::encoded(DG13_TAG, &[0x30, 0x03, 0x02, 0x01, 0x01])),
            Err(Dg13Error::MissingFields)
        );
        // An entry that is not a SEQUENCE, and one without its number.
        assert_eq!(
            parse(&wrap_fields(&[0x04, 0x00])),
            Err(Dg13Error::MalformedEntry(0))
        );
        assert_eq!(
            parse(&wrap_fields(&[0x30, 0x02, 0x0C, 0x00])),
            Err(Dg13Error::MalformedEntry(0))
        );
        // A negative or oversized field number.
        assert_eq!(
            parse(&wrap_fields(&[0x30, 0x03, 0x02, 0x01, 0xFF])),
            Err(Dg13Error::MalformedEntry(0))
        );
        assert_eq!(
            parse(&wrap_fields(&[0x30, 0x07, 0x02, 0x05, 0x01, 0, 0, 0, 0])),
            Err(Dg13Error::MalformedEntry(0))
        );
        // Invalid UTF-8 in a UTF8String, odd-length BMPString, lone surrogate.
        for bad in [
            &[0x0C, 0x02, 0xC3, 0x28][..],
            &[0x1E, 0x03, 0x00, 0x41, 0x00],
            &[0x1E, 0x02, 0xD8, 0x00],
        ] {
            let mut entry = vec![0x02, 0x01, 0x02];
            entry.extend_from_slice(bad);
            assert_eq!(
                parse(&wrap_fields(&tlv::encoded(Tag::new(0x30), &entry))),
                Err(Dg13Error::InvalidText(2))
            );
        }
        // A length past its parent's end inside a field.
        assert!(matches!(
            parse(&wrap_fields(&[0x30, 0x05, 0x02, 0x01, 0x02, 0x0C, 0x09])),
            Err(Dg13Error::Tlv(TlvError::LengthBeyondInput { .. }))
        ));
        // Deep nesting: refused with a typed error, without deep recursion.
        let mut nested = tlv::encoded(Tag::new(0x0C), b"x");
        for _ in 0..1000 {
            nested = tlv::encoded(Tag::new(0x30), &nested);
        }
        let mut entry = vec![0x02, 0x01, 0x02];
        entry.extend(nested);
        assert_eq!(
            parse(&wrap_fields(&tlv::encoded(Tag::new(0x30), &entry))),
            Err(Dg13Error::TooDeep(2))
        );
    }

    #[test]
    fn debug_hides_personal_data() {
        let dg13 = parse(&build::dg13(&Dg13Person {
            field_16: Some("A1B2C3D4E5F6G7H8"),
            old_id: None,
            ..Dg13Person::example()
        }))
        .unwrap();
        let debug = format!("{dg13:?}");
        for secret in ["001099012345", "Nguyễn", "1999", "Huế", "A1B2"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("fields_present"));
    }

    #[test]
    fn sex_words() {
        assert_eq!(parse_sex("Nam"), Some(Sex::Male));
        assert_eq!(parse_sex("Nữ"), Some(Sex::Female));
        assert_eq!(parse_sex("Nu\u{31B}\u{303}"), Some(Sex::Female));
        assert_eq!(parse_sex("X"), None);
    }
}
