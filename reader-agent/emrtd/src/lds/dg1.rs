//! DG1: the machine readable zone (tag 61, MRZ in 5F1F). The CCCD carries an ID-card MRZ (TD1:
//! three lines of 30 characters, ICAO 9303-5).
//!
//! Every check digit is verified, the composite one too: DG1 feeds the BAC key a later session
//! uses and the name a receptionist sees, and a check digit is the cheapest proof the bytes are
//! what was printed. On a CCCD the document number is the last 9 digits of the 12-digit ID and
//! the whole ID opens the optional data ([`Td1::citizen_id`]). A card without expiry has a filler
//! expiry field (`<<<<<<`), with check digit `0` or `<`: both are accepted.

use std::fmt;

use zeroize::Zeroize;

use crate::bac::check_digit;
use crate::cccd::id_number::CitizenId;
use crate::tlv::{self, Tag, TlvError};

/// Tag of DG1.
pub const DG1_TAG: Tag = Tag::new(0x61);
/// Tag of the MRZ inside DG1.
pub const MRZ_TAG: Tag = Tag::new(0x5F1F);
/// Characters in a TD1 MRZ.
pub const TD1_LEN: usize = 90;

/// A field of the MRZ, for error messages that must not quote the MRZ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MrzField {
    DocumentNumber,
    DateOfBirth,
    Sex,
    DateOfExpiry,
    Nationality,
    Composite,
}

/// Why DG1 or an MRZ is not acceptable. Never quotes the MRZ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dg1Error {
    #[error("DG1 structure: {0}")]
    Tlv(#[from] TlvError),
    #[error("a TD1 MRZ has 90 characters, this one has {0}")]
    Length(usize),
    #[error("character at position {0} is not one of A-Z, 0-9, <")]
    Character(usize),
    #[error("check digit of {0:?} does not match")]
    CheckDigit(MrzField),
    #[error("{0:?} is malformed")]
    Malformed(MrzField),
}

/// Date of expiry as the MRZ states it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MrzExpiry<'a> {
    /// `YYMMDD`.
    Date(&'a str),
    /// Filler: the card does not expire.
    Never,
}

impl fmt::Debug for MrzExpiry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MrzExpiry::Date(_) => f.write_str("Date(<redacted>)"),
            MrzExpiry::Never => f.write_str("Never"),
        }
    }
}

/// A TD1 MRZ whose characters and check digits have been verified. Debug shows the document
/// code and issuing state only; the text is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Td1 {
    text: [u8; TD1_LEN],
    /// End of the document number (exclusive) in `text`: 14, or further for a long number that
    /// continues into the optional data.
    number_end: usize,
}

impl Drop for Td1 {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl fmt::Debug for Td1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Td1")
            .field("document_code", &self.document_code())
            .field("issuing_state", &self.issuing_state())
            .finish_non_exhaustive()
    }
}

/// Parses DG1 (tag 61) and the TD1 MRZ in it.
pub fn parse(bytes: &[u8]) -> Result<Td1, Dg1Error> {
    let dg1 = tlv::parse_exact(bytes, DG1_TAG)?;
    Td1::parse(dg1.require(MRZ_TAG)?.value())
}

fn is_mrz_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'<'
}

fn check(field: &[u8], digit: u8, which: MrzField) -> Result<(), Dg1Error> {
    // Only MRZ characters reach here, so the field is ASCII and has a check digit.
    let text = std::str::from_utf8(field).map_err(|_| Dg1Error::Malformed(which))?;
    match check_digit(text) {
        Some(d) if b'0' + d == digit => Ok(()),
        _ => Err(Dg1Error::CheckDigit(which)),
    }
}

/// `YYMMDD` with a real month and day (day 31 for every month: the century is unknown here).
fn check_date(field: &[u8], which: MrzField) -> Result<(), Dg1Error> {
    if !field.iter().all(u8::is_ascii_digit) {
        return Err(Dg1Error::Malformed(which));
    }
    let two = |i: usize| (field[i] - b'0') * 10 + (field[i + 1] - b'0');
    if !(1..=12).contains(&two(2)) || !(1..=31).contains(&two(4)) {
        return Err(Dg1Error::Malformed(which));
    }
    Ok(())
}

impl Td1 {
    /// Checks the 90 characters of a TD1 MRZ (no line breaks).
    pub fn parse(text: &[u8]) -> Result<Self, Dg1Error> {
        let text: [u8; TD1_LEN] = text.try_into().map_err(|_| Dg1Error::Length(text.len()))?;
        if let Some(position) = text.iter().position(|&b| !is_mrz_char(b)) {
            return Err(Dg1Error::Character(position));
        }
        // Document number: 9 characters and a check digit; a longer number puts `<` in the
        // check digit's place and continues in the optional data, ending with its check digit.
        let number_end = if text[14] == b'<' && text[15] != b'<' {
            let tail = text[15..30].iter().position(|&b| b == b'<').unwrap_or(15);
            if tail < 2 {
                return Err(Dg1Error::Malformed(MrzField::DocumentNumber));
            }
            let end = 15 + tail - 1;
            let mut number = text[5..14].to_vec();
            number.extend_from_slice(&text[15..end]);
            check(&number, text[end], MrzField::DocumentNumber)?;
            end
        } else {
            check(&text[5..14], text[14], MrzField::DocumentNumber)?;
            14
        };
        check_date(&text[30..36], MrzField::DateOfBirth)?;
        check(&text[30..36], text[36], MrzField::DateOfBirth)?;
        if !matches!(text[37], b'M' | b'F' | b'<') {
            return Err(Dg1Error::Malformed(MrzField::Sex));
        }
        if text[38..44].iter().all(|&b| b == b'<') {
            if !matches!(text[44], b'0' | b'<') {
                return Err(Dg1Error::CheckDigit(MrzField::DateOfExpiry));
            }
        } else {
            check_date(&text[38..44], MrzField::DateOfExpiry)?;
            check(&text[38..44], text[44], MrzField::DateOfExpiry)?;
        }
        if !text[45..48]
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'<')
        {
            return Err(Dg1Error::Malformed(MrzField::Nationality));
        }
        let mut composite = text[5..30].to_vec();
        composite.extend_from_slice(&text[30..37]);
        composite.extend_from_slice(&text[38..45]);
        composite.extend_from_slice(&text[48..59]);
        check(&composite, text[59], MrzField::Composite)?;
        Ok(Td1 { text, number_end })
    }

    fn field(&self, range: std::ops::Range<usize>) -> &str {
        // Only MRZ characters (ASCII) are stored.
        std::str::from_utf8(&self.text[range]).unwrap_or_default()
    }

    /// The 90 characters.
    pub fn as_str(&self) -> &str {
        self.field(0..TD1_LEN)
    }

    /// `I`, `IC`, `ID`, `AC`, `C<`...
    pub fn document_code(&self) -> &str {
        self.field(0..2)
    }

    pub fn issuing_state(&self) -> &str {
        self.field(2..5)
    }

    /// The document number without fillers (a long number joined from its two parts).
    pub fn document_number(&self) -> String {
        if self.number_end == 14 {
            self.field(5..14).trim_end_matches('<').to_owned()
        } else {
            let mut number = self.field(5..14).to_owned();
            number.push_str(self.field(15..self.number_end));
            number
        }
    }

    /// Optional data of line 1 (after the document number's check digit), fillers kept.
    pub fn optional_data_1(&self) -> &str {
        self.field((self.number_end + 1).min(30)..30)
    }

    /// `YYMMDD`.
    pub fn date_of_birth(&self) -> &str {
        self.field(30..36)
    }

    /// `M`, `F` or `<`.
    pub fn sex(&self) -> char {
        char::from(self.text[37])
    }

    pub fn date_of_expiry(&self) -> MrzExpiry<'_> {
        if self.text[38..44].iter().all(|&b| b == b'<') {
            MrzExpiry::Never
        } else {
            MrzExpiry::Date(self.field(38..44))
        }
    }

    /// The expiry field as written (`YYMMDD` or `<<<<<<`), as BAC uses it.
    pub fn date_of_expiry_field(&self) -> &str {
        self.field(38..44)
    }

    pub fn nationality(&self) -> &str {
        self.field(45..48)
    }

    pub fn optional_data_2(&self) -> &str {
        self.field(48..59)
    }

    /// Primary and secondary identifiers (surname, given names) with fillers as spaces.
    pub fn name(&self) -> (String, String) {
        let line = self.field(60..90).trim_end_matches('<');
        let (primary, secondary) = line.split_once("<<").unwrap_or((line, ""));
        let spaced = |s: &str| s.replace('<', " ").trim().to_owned();
        (spaced(primary), spaced(secondary))
    }

    /// The 12-digit citizen ID when the MRZ has the CCCD's layout: the ID opens the optional
    /// data and its last 9 digits are the document number. `None` for any other layout.
    pub fn citizen_id(&self) -> Option<CitizenId> {
        if self.number_end != 14 {
            return None;
        }
        let id = CitizenId::parse(
            self.text
                .get(15..27)
                .and_then(|b| std::str::from_utf8(b).ok())?,
        )
        .ok()?;
        (id.document_number() == self.field(5..14)).then_some(id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lds::build;

    /// A CCCD-shaped TD1 built by the test builder (which computes check digits itself).
    pub(crate) fn sample() -> String {
        build::td1_mrz(&build::Td1Fields {
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
        })
    }

    /// ICAO 9303-5 Appendix A TD1 example (an independent reference for the check digits).
    const ICAO_TD1: &str = "I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6ERIKSSON<<ANNA<MARIA<<<<<<<<<<";

    #[test]
    fn parses_icao_example() {
        let mrz = Td1::parse(ICAO_TD1.as_bytes()).unwrap();
        assert_eq!(mrz.document_code(), "I<");
        assert_eq!(mrz.issuing_state(), "UTO");
        assert_eq!(mrz.document_number(), "D23145890");
        assert_eq!(mrz.date_of_birth(), "740812");
        assert_eq!(mrz.sex(), 'F');
        assert_eq!(mrz.date_of_expiry(), MrzExpiry::Date("120415"));
        assert_eq!(mrz.nationality(), "UTO");
        assert_eq!(mrz.name(), ("ERIKSSON".to_owned(), "ANNA MARIA".to_owned()));
        assert_eq!(mrz.citizen_id(), None);
    }

    #[test]
    fn every_check_digit_is_verified() {
        // Changing any check digit, or any character a check digit covers, is caught.
        let good = ICAO_TD1.as_bytes();
        for (pos, field) in [
            (14, MrzField::DocumentNumber),
            (36, MrzField::DateOfBirth),
            (44, MrzField::DateOfExpiry),
            (59, MrzField::Composite),
        ] {
            let mut bad = good.to_vec();
            bad[pos] = if bad[pos] == b'1' { b'2' } else { b'1' };
            assert_eq!(Td1::parse(&bad), Err(Dg1Error::CheckDigit(field)), "{pos}");
        }
        // Optional data is covered by the composite digit only.
        let mut bad = good.to_vec();
        bad[20] = b'X';
        assert_eq!(
            Td1::parse(&bad),
            Err(Dg1Error::CheckDigit(MrzField::Composite))
        );
        let mut bad = good.to_vec();
        bad[5] = b'E';
        assert_eq!(
            Td1::parse(&bad),
            Err(Dg1Error::CheckDigit(MrzField::DocumentNumber))
        );
    }

    #[test]
    fn parses_cccd_layout() {
        let text = sample();
        let mrz = Td1::parse(text.as_bytes()).unwrap();
        assert_eq!(mrz.document_number(), "099012345");
        assert_eq!(
            mrz.citizen_id().map(|id| id.as_str().to_owned()),
            Some("001099012345".to_owned())
        );
        assert_eq!(mrz.name(), ("NGUYEN".to_owned(), "VAN AN".to_owned()));
        let dg1 = build::dg1(&text);
        assert_eq!(parse(&dg1).unwrap(), mrz);
    }

    #[test]
    fn citizen_id_must_match_document_number() {
        let text = build::td1_mrz(&build::Td1Fields {
            document_number: "099012346",
            ..build::Td1Fields::cccd_example()
        });
        assert_eq!(Td1::parse(text.as_bytes()).unwrap().citizen_id(), None);
    }

    #[test]
    fn no_expiry_filler_in_both_forms() {
        let text = build::td1_mrz(&build::Td1Fields {
            date_of_expiry: None,
            ..build::Td1Fields::cccd_example()
        });
        assert_eq!(&text[38..45], "<<<<<<0");
        let mrz = Td1::parse(text.as_bytes()).unwrap();
        assert_eq!(mrz.date_of_expiry(), MrzExpiry::Never);
        assert_eq!(mrz.date_of_expiry_field(), "<<<<<<");
        // The other form: check digit as filler too. The composite is unchanged ('<' = 0).
        let mut other = text.into_bytes();
        other[44] = b'<';
        assert_eq!(
            Td1::parse(&other).unwrap().date_of_expiry(),
            MrzExpiry::Never
        );
        other[44] = b'3';
        assert_eq!(
            Td1::parse(&other),
            Err(Dg1Error::CheckDigit(MrzField::DateOfExpiry))
        );
    }

    #[test]
    fn long_document_number() {
        // A 12-character number: 9 in place, 3 more and the check digit in the optional data.
        let mut text = ICAO_TD1.as_bytes().to_vec();
        text[5..14].copy_from_slice(b"D23145890");
        text[14] = b'<';
        let digit = check_digit("D23145890734").unwrap();
        text[15..19].copy_from_slice(b"7340");
        text[18] = b'0' + digit;
        let composite: Vec<u8> =
            [&text[5..30], &text[30..37], &text[38..45], &text[48..59]].concat();
        text[59] = b'0' + check_digit(std::str::from_utf8(&composite).unwrap()).unwrap();
        let mrz = Td1::parse(&text).unwrap();
        assert_eq!(mrz.document_number(), "D23145890734");
        assert_eq!(mrz.optional_data_1(), "<<<<<<<<<<<");
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(Td1::parse(b""), Err(Dg1Error::Length(0)));
        assert_eq!(
            Td1::parse(&ICAO_TD1.as_bytes()[..88]),
            Err(Dg1Error::Length(88))
        );
        let mut lower = ICAO_TD1.as_bytes().to_vec();
        lower[61] = b'r';
        assert_eq!(Td1::parse(&lower), Err(Dg1Error::Character(61)));
        let mut utf8 = ICAO_TD1.as_bytes().to_vec();
        utf8[70] = 0xC3;
        assert_eq!(Td1::parse(&utf8), Err(Dg1Error::Character(70)));
        let mut sex = ICAO_TD1.as_bytes().to_vec();
        sex[37] = b'Q';
        assert_eq!(Td1::parse(&sex), Err(Dg1Error::Malformed(MrzField::Sex)));
        // Month 13 with a matching check digit is still refused.
        let text = build::td1_mrz(&build::Td1Fields {
            date_of_birth: "991315",
            ..build::Td1Fields::cccd_example()
        });
        assert_eq!(
            Td1::parse(text.as_bytes()),
            Err(Dg1Error::Malformed(MrzField::DateOfBirth))
        );
    }

    #[test]
    fn refuses_broken_dg1_structure() {
        let dg1 = build::dg1(&sample());
        assert!(matches!(
            parse(&dg1[..dg1.len() - 1]),
            Err(Dg1Error::Tlv(_))
        ));
        let mut wrong_tag = dg1.clone();
        wrong_tag[0] = 0x75;
        assert!(matches!(
            parse(&wrong_tag),
            Err(Dg1Error::Tlv(TlvError::UnexpectedTag { .. }))
        ));
        let no_mrz = tlv::encoded(DG1_TAG, &tlv::encoded(Tag::new(0x5F20), b"x"));
        assert_eq!(
            parse(&no_mrz),
            Err(Dg1Error::Tlv(TlvError::Missing(MRZ_TAG)))
        );
        let short = tlv::encoded(DG1_TAG, &tlv::encoded(MRZ_TAG, &sample().as_bytes()[..60]));
        assert_eq!(parse(&short), Err(Dg1Error::Length(60)));
    }

    #[test]
    fn debug_hides_personal_data() {
        let mrz = Td1::parse(sample().as_bytes()).unwrap();
        let debug = format!("{mrz:?} {:?}", mrz.date_of_expiry());
        for secret in ["099012345", "NGUYEN", "990115", "240115"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
