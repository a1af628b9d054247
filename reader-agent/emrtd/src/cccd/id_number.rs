//! The 12-digit citizen ID number (số định danh cá nhân).
//!
//! Layout (Decree 137/2015, Circular 07/2016/TT-BCA): digits 1-3 the province of birth
//! registration, digit 4 century and sex, digits 5-6 the last two digits of the birth year,
//! digits 7-12 random. The structure allows cheap consistency checks before anything is asked
//! of the card or of the registry.
//!
//! The number is personal data: `Debug` never prints it; ask for it explicitly with
//! [`CitizenId::as_str`].

use std::fmt;

/// Province codes of birth registration (Circular 07/2016/TT-BCA). Provinces merged in 2025, but
/// existing numbers keep their codes, so the list does not shrink.
pub const PROVINCE_CODES: [u16; 63] = [
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37,
    38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77,
    79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96,
];

/// Whether `code` is a province code of birth registration.
pub fn is_province_code(code: u16) -> bool {
    PROVINCE_CODES.binary_search(&code).is_ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    Male,
    Female,
}

/// Why a string is not a citizen ID number. Messages never repeat the number itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdNumberError {
    #[error("a citizen ID has 12 digits, this one has {0} characters")]
    Length(usize),
    #[error("a citizen ID has only digits")]
    NotDigits,
    #[error("{0:03} is not a province code of birth registration")]
    UnknownProvince(u16),
    #[error("the century/sex digit says born {id_year}, the date of birth says {claimed_year}")]
    BirthYearMismatch { id_year: u16, claimed_year: u16 },
    #[error("the century/sex digit says {id_sex:?}, the declared sex is {claimed_sex:?}")]
    SexMismatch { id_sex: Sex, claimed_sex: Sex },
}

/// A structurally valid 12-digit citizen ID number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CitizenId([u8; 12]);

impl CitizenId {
    /// Parses and checks length, digits and the province code. Surrounding whitespace, which
    /// scanners and typists add, is ignored.
    pub fn parse(text: &str) -> Result<Self, IdNumberError> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(IdNumberError::NotDigits);
        }
        let digits: [u8; 12] = bytes
            .try_into()
            .map_err(|_| IdNumberError::Length(text.chars().count()))?;
        let id = CitizenId(digits);
        let province = id.province_code();
        if !is_province_code(province) {
            return Err(IdNumberError::UnknownProvince(province));
        }
        Ok(id)
    }

    /// The number as its 12 ASCII digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn number(&self, range: std::ops::Range<usize>) -> u16 {
        self.0[range]
            .iter()
            .fold(0, |n, d| n * 10 + u16::from(d - b'0'))
    }

    /// Province of birth registration (digits 1-3).
    pub fn province_code(&self) -> u16 {
        self.number(0..3)
    }

    /// Sex from the century/sex digit: even is male, odd is female.
    pub fn sex(&self) -> Sex {
        if self.number(3..4).is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// Birth year: century from digit 4 (0/1 the 1900s, 2/3 the 2000s, ...), then digits 5-6.
    pub fn birth_year(&self) -> u16 {
        1900 + (self.number(3..4) / 2) * 100 + self.number(4..6)
    }

    /// Checks the ID against a birth year and, when known, the sex the desk or the card states.
    pub fn check_holder(&self, birth_year: u16, sex: Option<Sex>) -> Result<(), IdNumberError> {
        if self.birth_year() != birth_year {
            return Err(IdNumberError::BirthYearMismatch {
                id_year: self.birth_year(),
                claimed_year: birth_year,
            });
        }
        match sex {
            Some(claimed_sex) if claimed_sex != self.sex() => Err(IdNumberError::SexMismatch {
                id_sex: self.sex(),
                claimed_sex,
            }),
            _ => Ok(()),
        }
    }

    /// The card access number for PACE: the last 6 digits (the card prints no separate CAN).
    pub fn can(&self) -> &str {
        &self.as_str()[6..]
    }

    /// The document number in the MRZ: the last 9 digits.
    pub fn document_number(&self) -> &str {
        &self.as_str()[3..]
    }
}

impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CitizenId(<redacted>)")
    }
}

impl std::str::FromStr for CitizenId {
    type Err = IdNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let id = CitizenId::parse(" 001099012345\n").unwrap();
        assert_eq!(id.province_code(), 1);
        assert_eq!(id.sex(), Sex::Male);
        assert_eq!(id.birth_year(), 1999);
        assert_eq!(id.can(), "012345");
        assert_eq!(id.document_number(), "099012345");
        let id = CitizenId::parse("079305000001").unwrap();
        assert_eq!((id.sex(), id.birth_year()), (Sex::Female, 2005));
        assert!(id.check_holder(2005, Some(Sex::Female)).is_ok());
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(
            CitizenId::parse("00109901234"),
            Err(IdNumberError::Length(11))
        );
        assert_eq!(
            CitizenId::parse("0010990123456"),
            Err(IdNumberError::Length(13))
        );
        assert_eq!(CitizenId::parse(""), Err(IdNumberError::Length(0)));
        assert_eq!(
            CitizenId::parse("00109901234x"),
            Err(IdNumberError::NotDigits)
        );
        assert_eq!(
            CitizenId::parse("００１０９９０１２３４５"),
            Err(IdNumberError::NotDigits)
        );
        assert_eq!(
            CitizenId::parse("003099012345"),
            Err(IdNumberError::UnknownProvince(3))
        );
        assert_eq!(
            CitizenId::parse("097099012345"),
            Err(IdNumberError::UnknownProvince(97))
        );
        assert_eq!(
            CitizenId::parse("000099012345"),
            Err(IdNumberError::UnknownProvince(0))
        );
    }

    #[test]
    fn checks_holder() {
        let id = CitizenId::parse("001199012345").unwrap();
        assert_eq!(
            id.check_holder(2099, None),
            Err(IdNumberError::BirthYearMismatch {
                id_year: 1999,
                claimed_year: 2099
            })
        );
        assert!(matches!(
            id.check_holder(1999, Some(Sex::Male)),
            Err(IdNumberError::SexMismatch { .. })
        ));
    }

    #[test]
    fn debug_hides_the_number() {
        let id = CitizenId::parse("001099012345").unwrap();
        assert!(!format!("{id:?}").contains("012345"));
    }

    #[test]
    fn province_table_is_sorted() {
        assert!(PROVINCE_CODES.windows(2).all(|w| w[0] < w[1]));
    }
}
