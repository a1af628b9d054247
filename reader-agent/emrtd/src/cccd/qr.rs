//! The QR code on the card's front, as a 2D scanner types it:
//! `ID | old ID (may be empty) | full name | date of birth ddMMyyyy | sex Nam/Nữ | address |
//! issue date ddMMyyyy`.
//!
//! It gives everything the desk needs for PACE (the ID: the CAN is its last 6 digits) and, with
//! the computed expiry, for BAC. Scanners append CR/LF and typists add spaces, so surrounding
//! whitespace is ignored; anything else wrong is a typed error naming the field, never its text.

use std::fmt;

use super::date::Date;
use super::dg13::parse_sex;
use super::id_number::{CitizenId, IdNumberError, Sex};

/// A field of the QR string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrField {
    Id,
    OldId,
    FullName,
    DateOfBirth,
    Sex,
    Address,
    IssueDate,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    #[error("the QR code has 7 fields separated by '|', this text has {0}")]
    FieldCount(usize),
    #[error("{0:?} is empty")]
    Empty(QrField),
    #[error("{0:?} is malformed")]
    Malformed(QrField),
    #[error("ID number: {0}")]
    Id(IdNumberError),
    #[error("ID number does not match the holder: {0}")]
    IdMismatch(IdNumberError),
}

/// The QR code's content. Debug shows nothing personal.
#[derive(Clone, PartialEq, Eq)]
pub struct QrData {
    pub id: CitizenId,
    /// The old 9-digit ID, when the card states one.
    pub old_id: Option<String>,
    pub full_name: String,
    pub date_of_birth: Date,
    pub sex: Sex,
    pub address: String,
    pub issue_date: Date,
}

impl fmt::Debug for QrData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QrData(<redacted>)")
    }
}

fn required(value: &str, field: QrField) -> Result<&str, QrError> {
    if value.is_empty() {
        Err(QrError::Empty(field))
    } else {
        Ok(value)
    }
}

/// Parses the scanned QR text. The ID is checked against the date of birth and sex.
pub fn parse(text: &str) -> Result<QrData, QrError> {
    let fields: Vec<&str> = text.trim().split('|').map(str::trim).collect();
    let [id, old_id, name, dob, sex, address, issued] = fields[..] else {
        return Err(QrError::FieldCount(fields.len()));
    };
    let id = CitizenId::parse(required(id, QrField::Id)?).map_err(QrError::Id)?;
    let old_id = match old_id {
        "" => None,
        old if old.len() == 9 && old.bytes().all(|b| b.is_ascii_digit()) => Some(old.to_owned()),
        _ => return Err(QrError::Malformed(QrField::OldId)),
    };
    let date = |value: &str, field| {
        Date::parse_dmy_compact(required(value, field)?).map_err(|_| QrError::Malformed(field))
    };
    let date_of_birth = date(dob, QrField::DateOfBirth)?;
    let issue_date = date(issued, QrField::IssueDate)?;
    if issue_date < date_of_birth {
        return Err(QrError::Malformed(QrField::IssueDate));
    }
    let sex = parse_sex(required(sex, QrField::Sex)?).ok_or(QrError::Malformed(QrField::Sex))?;
    id.check_holder(date_of_birth.year(), Some(sex))
        .map_err(QrError::IdMismatch)?;
    Ok(QrData {
        id,
        old_id,
        full_name: required(name, QrField::FullName)?.to_owned(),
        date_of_birth,
        sex,
        address: required(address, QrField::Address)?.to_owned(),
        issue_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "001099012345|123456789|Nguyễn Văn An|15011999|Nam|Số 1 Phố Huế, Hà Nội|10072021";

    #[test]
    fn parses_sample() {
        let qr = parse(SAMPLE).unwrap();
        assert_eq!(qr.id.as_str(), "001099012345");
        assert_eq!(qr.id.can(), "012345");
        assert_eq!(qr.old_id.as_deref(), Some("123456789"));
        assert_eq!(qr.full_name, "Nguyễn Văn An");
        assert_eq!(qr.date_of_birth, Date::new(1999, 1, 15).unwrap());
        assert_eq!(qr.sex, Sex::Male);
        assert_eq!(qr.address, "Số 1 Phố Huế, Hà Nội");
        assert_eq!(qr.issue_date, Date::new(2021, 7, 10).unwrap());
    }

    #[test]
    fn tolerates_scanner_whitespace_and_empty_old_id() {
        let text = format!("  {}\r\n", SAMPLE.replace("|123456789|", "||"));
        let qr = parse(&text).unwrap();
        assert_eq!(qr.old_id, None);
        let female = "079305000001||Trần Thị Bé|01022005|Nữ|Quận 1, TP HCM|01032021\n";
        assert_eq!(parse(female).unwrap().sex, Sex::Female);
        let nfd = female.replace("Nữ", "Nu\u{31B}\u{303}");
        assert_eq!(parse(&nfd).unwrap().sex, Sex::Female);
    }

    #[test]
    fn errors_name_the_field() {
        let with = |i: usize, value: &str| {
            let mut fields: Vec<&str> = SAMPLE.split('|').collect();
            fields[i] = value;
            parse(&fields.join("|"))
        };
        assert_eq!(parse(""), Err(QrError::FieldCount(1)));
        assert_eq!(parse("a|b|c"), Err(QrError::FieldCount(3)));
        assert_eq!(parse(&format!("{SAMPLE}|x")), Err(QrError::FieldCount(8)));
        assert_eq!(with(0, ""), Err(QrError::Empty(QrField::Id)));
        assert!(matches!(with(0, "00109901234"), Err(QrError::Id(_))));
        assert!(matches!(with(0, "003099012345"), Err(QrError::Id(_))));
        assert_eq!(with(1, "12345"), Err(QrError::Malformed(QrField::OldId)));
        assert_eq!(with(2, " "), Err(QrError::Empty(QrField::FullName)));
        assert_eq!(
            with(3, "1501199"),
            Err(QrError::Malformed(QrField::DateOfBirth))
        );
        assert_eq!(
            with(3, "30021999"),
            Err(QrError::Malformed(QrField::DateOfBirth))
        );
        assert_eq!(
            with(3, "15.01.99"),
            Err(QrError::Malformed(QrField::DateOfBirth))
        );
        assert_eq!(with(4, "M"), Err(QrError::Malformed(QrField::Sex)));
        assert_eq!(with(5, ""), Err(QrError::Empty(QrField::Address)));
        assert_eq!(
            with(6, "10072ữ1"),
            Err(QrError::Malformed(QrField::IssueDate))
        );
        assert_eq!(
            with(6, "10071990"),
            Err(QrError::Malformed(QrField::IssueDate))
        );
        // The ID says born 1999, male: a different year or sex is refused.
        assert!(matches!(with(3, "15012000"), Err(QrError::IdMismatch(_))));
        assert!(matches!(with(4, "Nữ"), Err(QrError::IdMismatch(_))));
    }

    #[test]
    fn errors_and_debug_hide_personal_data() {
        let debug = format!("{:?}", parse(SAMPLE).unwrap());
        assert!(!debug.contains("012345") && !debug.contains("Nguyễn"));
        let err = parse(&SAMPLE.replace("15011999", "1501x999")).unwrap_err();
        assert!(!err.to_string().contains("1501"));
    }
}
