//! The registry's CSV format (docs/registry-csv.md), one card per row, both ways: reading a row
//! with every field checked, and writing one.
//!
//! Dates are dd/MM/yyyy as Vietnamese exports and the national gateway write them; a date of
//! birth may be a year alone. Reasons for a rejected field never quote the field's value: the
//! values are personal data and the reports end up in logs.

use csv::ByteRecord;
use emrtd::cccd::id_number::{CitizenId, IdNumberError, Sex, is_province_code};
use time::{Date, Month};

use super::{
    category, insurer_text, parse_insurer, parse_sex, parse_status, sex_text, status_text,
};
use crate::card_number::{CardNumber, CardNumberError};
use crate::coverage::{BirthDate, CardRecord};

/// The columns, in the order [`write_row`] writes them. A file may order them freely.
pub const COLUMNS: [&str; 15] = [
    "card_number",
    "social_insurance_number",
    "citizen_id",
    "full_name",
    "date_of_birth",
    "sex",
    "valid_from",
    "valid_to",
    "primary_care_facility",
    "area_code",
    "five_year_date",
    "issuing_office",
    "status",
    "insurer",
    "replaced_by",
];

const MAX_NAME_CHARS: usize = 100;
const MAX_OFFICE_CHARS: usize = 200;

/// A header that is not the documented one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("the header lacks the column {0}")]
    Missing(&'static str),
    #[error("the header names the column {0} twice")]
    Duplicate(String),
    /// The field's position, not its text: a file without a header row would otherwise put its
    /// first card's data in the message.
    #[error(
        "field {0} of the header is not a column of the format (is the header row missing? \
         see docs/registry-csv.md)"
    )]
    Unknown(usize),
    #[error("the header is not UTF-8")]
    NotUtf8,
}

/// Where each column sits in a file's rows.
#[derive(Clone, Debug)]
pub struct Header {
    positions: [usize; COLUMNS.len()],
    width: usize,
}

impl Header {
    /// Reads a header row: every documented column exactly once, nothing else. Unknown columns
    /// are refused rather than ignored, so a misspelt optional column cannot drop its data.
    pub fn parse(record: &ByteRecord) -> Result<Self, HeaderError> {
        let mut positions = [usize::MAX; COLUMNS.len()];
        for (position, raw) in record.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8)?;
            let name = name.trim_start_matches('\u{feff}').trim();
            let column = COLUMNS
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .ok_or(HeaderError::Unknown(position + 1))?;
            if positions[column] != usize::MAX {
                return Err(HeaderError::Duplicate(COLUMNS[column].into()));
            }
            positions[column] = position;
        }
        if let Some(missing) = positions.iter().position(|&p| p == usize::MAX) {
            return Err(HeaderError::Missing(COLUMNS[missing]));
        }
        Ok(Self {
            positions,
            width: record.len(),
        })
    }
}

/// One row, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    /// The card; `replaced_by` is `None` here, its successor's dates live in another row.
    pub record: CardRecord,
    pub sex: Sex,
    /// The successor's 15-character card number when the card was re-issued.
    pub replaced_by: Option<String>,
}

/// Why a row was refused: the column and what is wrong with it, without its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

/// Reads one data row, checking every field and the agreements between fields.
pub fn parse_row(header: &Header, record: &ByteRecord) -> Result<CsvRow, FieldError> {
    if record.len() != header.width {
        return Err(refuse(
            "row",
            format!(
                "has {} fields, the header has {}",
                record.len(),
                header.width
            ),
        ));
    }
    let field = |column: usize| -> Result<&str, FieldError> {
        let raw = record.get(header.positions[column]).unwrap_or_default();
        std::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| refuse(COLUMNS[column], "is not UTF-8"))
    };
    let optional = |column: usize| field(column).map(|text| (!text.is_empty()).then_some(text));

    let card_number = parse_card_number("card_number", field(0)?)?;
    let (category, benefit_level) = check_category(&card_number)?;
    let social_insurance_number = field(1)?;
    if social_insurance_number != &card_number[5..] {
        return Err(refuse(
            "social_insurance_number",
            "differs from the last 10 characters of card_number",
        ));
    }
    let citizen_id = optional(2)?
        .map(|text| CitizenId::parse(text).map_err(|e| refuse("citizen_id", citizen_id_reason(&e))))
        .transpose()?;
    let full_name = field(3)?;
    if full_name.is_empty() {
        return Err(refuse("full_name", "is empty"));
    }
    if full_name.chars().count() > MAX_NAME_CHARS {
        return Err(refuse(
            "full_name",
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if full_name.chars().any(char::is_control) {
        return Err(refuse("full_name", "contains control characters"));
    }
    let birth = parse_birth_date(field(4)?)?;
    let sex = parse_sex(field(5)?).ok_or_else(|| refuse("sex", "must be M or F"))?;
    let valid_from = parse_date("valid_from", field(6)?)?;
    let valid_to = parse_date("valid_to", field(7)?)?;
    if valid_to < valid_from {
        return Err(refuse("valid_to", "is before valid_from"));
    }
    let primary_care_facility = check_facility(field(8)?)?;
    let area_code = optional(9)?
        .map(|text| match text {
            "K1" | "K2" | "K3" => Ok(text.to_owned()),
            _ => Err(refuse("area_code", "must be K1, K2, K3 or empty")),
        })
        .transpose()?;
    let five_year_date = optional(10)?
        .map(|text| parse_date("five_year_date", text))
        .transpose()?;
    let issuing_office = field(11)?;
    if issuing_office.is_empty() {
        return Err(refuse("issuing_office", "is empty"));
    }
    if issuing_office.chars().count() > MAX_OFFICE_CHARS
        || issuing_office.chars().any(char::is_control)
    {
        return Err(refuse(
            "issuing_office",
            "is too long or contains control characters",
        ));
    }
    let status = parse_status(field(12)?).ok_or_else(|| {
        refuse(
            "status",
            "is not one of the statuses in docs/registry-csv.md",
        )
    })?;
    let insurer = parse_insurer(field(13)?).ok_or_else(|| {
        refuse(
            "insurer",
            "must be social_security, defence or public_security",
        )
    })?;
    let replaced_by = optional(14)?
        .map(|text| parse_card_number("replaced_by", text))
        .transpose()?;
    if replaced_by.as_deref() == Some(card_number.as_str()) {
        return Err(refuse("replaced_by", "names the card itself"));
    }
    if let Some(id) = &citizen_id {
        id.check_holder(birth.year, Some(sex))
            .map_err(|e| match e {
                IdNumberError::SexMismatch { .. } => {
                    refuse("citizen_id", "its century/sex digit contradicts the sex")
                }
                _ => refuse(
                    "citizen_id",
                    "its century/sex digit and year contradict the date of birth",
                ),
            })?;
    }

    Ok(CsvRow {
        record: CardRecord {
            social_insurance_number: social_insurance_number.to_owned(),
            card_number,
            citizen_id: citizen_id.map(|id| id.as_str().to_owned()),
            full_name: full_name.to_owned(),
            birth,
            category,
            benefit_level,
            valid_from,
            valid_to,
            primary_care_facility,
            area_code,
            five_year_date,
            issuing_office: issuing_office.to_owned(),
            status,
            insurer,
            replaced_by: None,
        },
        sex,
        replaced_by,
    })
}

/// A 15-character card number, upper-cased, whose province of issue exists.
fn parse_card_number(field: &'static str, text: &str) -> Result<String, FieldError> {
    match CardNumber::parse(text) {
        Ok(CardNumber::Full(number)) => {
            let province: u16 = number[3..5].parse().unwrap_or(0);
            if !is_province_code(province) {
                return Err(refuse(field, "characters 4-5 are not a province code"));
            }
            Ok(number)
        }
        Ok(CardNumber::SocialInsurance(_)) | Err(CardNumberError::Length(_)) => {
            Err(refuse(field, "must be the 15-character card number"))
        }
        Err(e) => Err(refuse(field, e.to_string())),
    }
}

/// The category must be known and the benefit digit must be the category's.
fn check_category(card_number: &str) -> Result<(String, u8), FieldError> {
    let category = &card_number[..2];
    let digit = card_number.as_bytes()[2] - b'0';
    match category::benefit_level(category) {
        None => Err(refuse(
            "card_number",
            format!("{category} is not a known category"),
        )),
        Some(level) if level != digit => Err(refuse(
            "card_number",
            format!(
                "benefit digit {digit} does not belong to category {category} (which has {level})"
            ),
        )),
        Some(level) => Ok((category.to_owned(), level)),
    }
}

/// Our own words for an ID's defect: the library's messages may quote digits of the number.
fn citizen_id_reason(error: &IdNumberError) -> &'static str {
    match error {
        IdNumberError::Length(_) => "must have 12 digits",
        IdNumberError::NotDigits => "must be digits only",
        IdNumberError::UnknownProvince(_) => "its first three digits are not a province code",
        _ => "is not a valid citizen ID",
    }
}

/// Two digits of a province, then three letters or digits.
fn check_facility(text: &str) -> Result<String, FieldError> {
    let b = text.as_bytes();
    let shape = b.len() == 5
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shape {
        return Err(refuse(
            "primary_care_facility",
            "must be 5 characters: 2 province digits and 3 letters or digits",
        ));
    }
    if !is_province_code(text[..2].parse().unwrap_or(0)) {
        return Err(refuse(
            "primary_care_facility",
            "its first two digits are not a province code",
        ));
    }
    Ok(text.to_owned())
}

/// dd/MM/yyyy.
fn parse_date(field: &'static str, text: &str) -> Result<Date, FieldError> {
    let (day, month, year) = split_date(text).ok_or_else(|| refuse(field, "must be dd/MM/yyyy"))?;
    Month::try_from(month)
        .ok()
        .and_then(|month| Date::from_calendar_date(i32::from(year), month, day).ok())
        .ok_or_else(|| refuse(field, "is not a real date"))
}

/// dd/MM/yyyy or yyyy.
fn parse_birth_date(text: &str) -> Result<BirthDate, FieldError> {
    const FIELD: &str = "date_of_birth";
    let parsed = if text.len() == 4 {
        number(text).map(|year| BirthDate::new(year, None, None))
    } else {
        split_date(text).map(|(day, month, year)| BirthDate::new(year, Some(month), Some(day)))
    };
    match parsed {
        None => Err(refuse(FIELD, "must be dd/MM/yyyy or yyyy")),
        Some(Err(reason)) => Err(refuse(FIELD, reason)),
        Some(Ok(birth)) => Ok(birth),
    }
}

/// (day, month, year) of exactly dd/MM/yyyy.
fn split_date(text: &str) -> Option<(u8, u8, u16)> {
    let mut parts = text.split('/');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || day.len() != 2 || month.len() != 2 || year.len() != 4 {
        return None;
    }
    Some((number(day)? as u8, number(month)? as u8, number(year)?))
}

fn number(text: &str) -> Option<u16> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())?
}

pub fn format_date(date: Date) -> String {
    format!(
        "{:02}/{:02}/{:04}",
        date.day(),
        u8::from(date.month()),
        date.year()
    )
}

pub fn format_birth_date(birth: &BirthDate) -> String {
    match (birth.month, birth.day) {
        (Some(month), Some(day)) => format!("{day:02}/{month:02}/{:04}", birth.year),
        // The format has no month-only form; the year is what the gateway accepts then.
        _ => format!("{:04}", birth.year),
    }
}

/// Writes the header row.
pub fn write_header<W: std::io::Write>(out: &mut csv::Writer<W>) -> csv::Result<()> {
    out.write_record(COLUMNS)
}

/// Writes one card as a row; its successor, if any, by number.
pub fn write_row<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    record: &CardRecord,
    sex: Sex,
) -> csv::Result<()> {
    let optional_date = |date: Option<Date>| date.map(format_date).unwrap_or_default();
    out.write_record([
        record.card_number.as_str(),
        record.social_insurance_number.as_str(),
        record.citizen_id.as_deref().unwrap_or_default(),
        record.full_name.as_str(),
        &format_birth_date(&record.birth),
        sex_text(sex),
        &format_date(record.valid_from),
        &format_date(record.valid_to),
        record.primary_care_facility.as_str(),
        record.area_code.as_deref().unwrap_or_default(),
        &optional_date(record.five_year_date),
        record.issuing_office.as_str(),
        status_text(record.status),
        insurer_text(record.insurer),
        record
            .replaced_by
            .as_ref()
            .map_or("", |r| r.card_number.as_str()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "card_number,social_insurance_number,citizen_id,full_name,date_of_birth,sex,valid_from,valid_to,primary_care_facility,area_code,five_year_date,issuing_office,status,insurer,replaced_by";
    const GOOD: [&str; 15] = [
        "DN4010123456789",
        "0123456789",
        "001199012345",
        "Nguyễn Thị Hòa",
        "14/03/1999",
        "F",
        "01/01/2025",
        "31/12/2025",
        "01821",
        "K2",
        "30/06/2027",
        "BHXH Hà Nội",
        "active",
        "social_security",
        "",
    ];

    fn header() -> Header {
        Header::parse(&ByteRecord::from(HEADER.split(',').collect::<Vec<_>>())).unwrap()
    }

    fn parse_with(column: &str, value: &str) -> Result<CsvRow, FieldError> {
        let mut fields = GOOD;
        fields[COLUMNS.iter().position(|c| *c == column).unwrap()] = value;
        parse_row(&header(), &ByteRecord::from(fields.to_vec()))
    }

    #[test]
    fn reads_a_good_row() {
        let row = parse_with("card_number", "dn4010123456789").unwrap();
        assert_eq!(row.record.card_number, "DN4010123456789");
        assert_eq!(
            (row.record.category.as_str(), row.record.benefit_level),
            ("DN", 4)
        );
        assert_eq!(row.sex, Sex::Female);
        assert_eq!(row.replaced_by, None);
        let year_only = parse_with("date_of_birth", "1999").unwrap();
        assert_eq!(
            year_only.record.birth,
            BirthDate::new(1999, None, None).unwrap()
        );
        let child = parse_with("citizen_id", "").unwrap();
        assert_eq!(child.record.citizen_id, None);
    }

    #[test]
    fn names_the_field_of_every_kind_of_defect() {
        let cases = [
            ("card_number", "DN401012345678"),  // 14 characters
            ("card_number", "0123456789"),      // the short form
            ("card_number", "DN6010123456789"), // no benefit digit 6
            ("card_number", "DN3010123456789"), // DN is 4, not 3
            ("card_number", "ZZ4010123456789"), // no such category
            ("card_number", "DN4030123456789"), // province 03 does not exist
            ("social_insurance_number", "0123456780"),
            ("citizen_id", "00119901234"), // 11 digits
            ("citizen_id", "00119901234x"),
            ("citizen_id", "003199012345"), // province 003 does not exist
            ("citizen_id", "001099012345"), // says male, the row says F
            ("citizen_id", "001198012345"), // says 1998, born 1999
            ("full_name", ""),
            ("full_name", "Nguyễn\u{7}Hòa"),
            ("date_of_birth", "29/02/1999"),
            ("date_of_birth", "1999-03-14"),
            ("date_of_birth", "3/14/1999"),
            ("sex", "X"),
            ("valid_from", "32/01/2025"),
            ("valid_to", "31/12/2024"), // before valid_from
            ("primary_care_facility", "1821"),
            ("primary_care_facility", "03821"), // province 03
            ("primary_care_facility", "01a21"),
            ("area_code", "K4"),
            ("five_year_date", "30/02/2027"),
            ("issuing_office", " "),
            ("status", "lost"),
            ("insurer", "private"),
            ("replaced_by", "DN401012345678"),
            ("replaced_by", "DN4010123456789"), // itself
        ];
        for (column, value) in cases {
            let error = parse_with(column, value).expect_err(value);
            assert_eq!(error.field, column, "{value}: {error}");
            // The reason never quotes the value (short values such as "X" could occur by chance).
            assert!(value.len() < 4 || !error.reason.contains(value), "{error}");
        }
        let mut short = GOOD.to_vec();
        short.pop();
        assert_eq!(
            parse_row(&header(), &ByteRecord::from(short))
                .unwrap_err()
                .field,
            "row"
        );
        let mut bad_utf8 = ByteRecord::from(GOOD.to_vec());
        bad_utf8.clear();
        for (i, f) in GOOD.iter().enumerate() {
            bad_utf8.push_field(if i == 3 { b"Nguy\xff" } else { f.as_bytes() });
        }
        assert_eq!(
            parse_row(&header(), &bad_utf8).unwrap_err().field,
            "full_name"
        );
    }

    #[test]
    fn refuses_headers_that_are_not_the_format() {
        let parse =
            |text: &str| Header::parse(&ByteRecord::from(text.split(',').collect::<Vec<_>>()));
        assert_eq!(
            parse(&HEADER.replace(",area_code", "")).unwrap_err(),
            HeaderError::Missing("area_code")
        );
        assert!(matches!(
            parse(&HEADER.replace("area_code", "area_cod")),
            Err(HeaderError::Unknown(_))
        ));
        assert!(matches!(
            parse(&format!("{HEADER},sex")),
            Err(HeaderError::Duplicate(_))
        ));
        // Order is free, and a byte-order mark from a spreadsheet is tolerated.
        let reversed: Vec<&str> = HEADER.split(',').rev().collect();
        assert!(parse(&format!("\u{feff}{}", reversed.join(","))).is_ok());
    }

    #[test]
    fn writes_what_it_reads() {
        let row = parse_with("replaced_by", "HT3010123456789").unwrap();
        let mut record = row.record.clone();
        record.replaced_by = Some(crate::coverage::ReplacementCard {
            card_number: "HT3010123456789".into(),
            valid_from: row.record.valid_from,
            valid_to: row.record.valid_to,
        });
        let mut out = csv::Writer::from_writer(Vec::new());
        write_row(&mut out, &record, row.sex).unwrap();
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        let mut expected = GOOD;
        expected[14] = "HT3010123456789";
        assert_eq!(text.trim_end(), expected.join(","));
    }
}
