//! A calendar date, as printed on the card and encoded in its QR code, DG13 and MRZ.
//!
//! A plain validated (year, month, day): the card needs no time zones or arithmetic beyond
//! "the birthday in a given year", so no date library is pulled in.

use std::fmt;

/// Why text is not a date. Carries no part of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DateError {
    #[error("date has the wrong shape")]
    Shape,
    #[error("no such day in the calendar")]
    NoSuchDay,
}

/// A Gregorian calendar date, years 1..=9999.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    // Field order makes the derived ordering chronological.
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, DateError> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(DateError::NoSuchDay);
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::NoSuchDay);
        }
        Ok(Date { year, month, day })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// `dd/mm/yyyy`, as in DG13.
    pub fn parse_dmy_slashed(text: &str) -> Result<Self, DateError> {
        let b = text.as_bytes();
        if b.len() != 10 || b[2] != b'/' || b[5] != b'/' {
            return Err(DateError::Shape);
        }
        Self::from_digits(&b[0..2], &b[3..5], &b[6..10])
    }

    /// `ddMMyyyy`, as in the QR code.
    pub fn parse_dmy_compact(text: &str) -> Result<Self, DateError> {
        let b = text.as_bytes();
        if b.len() != 8 {
            return Err(DateError::Shape);
        }
        Self::from_digits(&b[0..2], &b[2..4], &b[4..8])
    }

    fn from_digits(day: &[u8], month: &[u8], year: &[u8]) -> Result<Self, DateError> {
        let number = |digits: &[u8]| -> Result<u16, DateError> {
            digits.iter().try_fold(0u16, |n, &d| {
                if d.is_ascii_digit() {
                    Ok(n * 10 + u16::from(d - b'0'))
                } else {
                    Err(DateError::Shape)
                }
            })
        };
        let (day, month, year) = (number(day)?, number(month)?, number(year)?);
        Self::new(year, month as u8, day as u8)
    }

    /// `YYMMDD`, as in the MRZ and the BAC key.
    pub fn to_yymmdd(self) -> String {
        format!("{:02}{:02}{:02}", self.year % 100, self.month, self.day)
    }

    /// The anniversary of this date in `year`. A 29 February falls on 28 February in common
    /// years: the clamping date libraries do (`plusYears`, `AddYears`), and so presumably the
    /// issuing software; [`Date::leap_day_alternative`] gives the other reading.
    pub fn anniversary_in(self, year: u16) -> Result<Self, DateError> {
        let day = self.day.min(days_in_month(year, self.month));
        Self::new(year, self.month, day)
    }

    /// For an anniversary moved from 29 February to 28 February, the other legal reading
    /// (1 March), so a caller can retry with it; `None` otherwise.
    pub fn leap_day_alternative(self, original: Date) -> Option<Self> {
        (original.month == 2 && original.day == 29 && self.month == 2 && self.day == 28)
            .then(|| Date::new(self.year, 3, 1).ok())
            .flatten()
    }

    /// Full years from `self` (a birth date) to `on`; `None` if `on` is earlier.
    pub fn age_on(self, on: Date) -> Option<u16> {
        if on < self {
            return None;
        }
        let mut age = on.year - self.year;
        if (on.month, on.day) < (self.month, self.day.min(days_in_month(on.year, self.month))) {
            age -= 1;
        }
        Some(age)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

impl fmt::Display for Date {
    /// `dd/mm/yyyy`, the card's own notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}/{:04}", self.day, self.month, self.year)
    }
}

pub fn is_leap_year(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: u16, m: u8, day: u8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    #[test]
    fn validates() {
        assert!(Date::new(2000, 2, 29).is_ok());
        assert_eq!(Date::new(1900, 2, 29), Err(DateError::NoSuchDay));
        assert_eq!(Date::new(2023, 4, 31), Err(DateError::NoSuchDay));
        assert_eq!(Date::new(2023, 13, 1), Err(DateError::NoSuchDay));
        assert_eq!(Date::new(2023, 0, 1), Err(DateError::NoSuchDay));
        assert_eq!(Date::new(0, 1, 1), Err(DateError::NoSuchDay));
    }

    #[test]
    fn parses_card_notations() {
        assert_eq!(Date::parse_dmy_slashed("05/09/1990"), Ok(d(1990, 9, 5)));
        assert_eq!(Date::parse_dmy_compact("05091990"), Ok(d(1990, 9, 5)));
        assert_eq!(Date::parse_dmy_slashed("5/9/1990"), Err(DateError::Shape));
        assert_eq!(Date::parse_dmy_slashed("05-09-1990"), Err(DateError::Shape));
        assert_eq!(
            Date::parse_dmy_slashed("31/02/1990"),
            Err(DateError::NoSuchDay)
        );
        assert_eq!(Date::parse_dmy_compact("0509199"), Err(DateError::Shape));
        assert_eq!(Date::parse_dmy_compact("0509199x"), Err(DateError::Shape));
        // Multi-byte UTF-8 must not split a character or panic.
        assert_eq!(Date::parse_dmy_compact("0509199ữ"), Err(DateError::Shape));
        assert_eq!(Date::parse_dmy_slashed("ữ/09/1990"), Err(DateError::Shape));
        assert_eq!(d(1990, 9, 5).to_yymmdd(), "900905");
        assert_eq!(d(2001, 12, 31).to_string(), "31/12/2001");
    }

    #[test]
    fn ages_and_anniversaries() {
        let born = d(2000, 6, 15);
        assert_eq!(born.age_on(d(2025, 6, 14)), Some(24));
        assert_eq!(born.age_on(d(2025, 6, 15)), Some(25));
        assert_eq!(born.age_on(d(1999, 1, 1)), None);
        let leap = d(2004, 2, 29);
        assert_eq!(leap.anniversary_in(2029), Ok(d(2029, 2, 28)));
        assert_eq!(leap.anniversary_in(2028), Ok(d(2028, 2, 29)));
        assert_eq!(leap.age_on(d(2029, 2, 27)), Some(24));
        assert_eq!(leap.age_on(d(2029, 2, 28)), Some(25));
        assert_eq!(
            d(2029, 2, 28).leap_day_alternative(leap),
            Some(d(2029, 3, 1))
        );
        assert_eq!(d(2028, 2, 29).leap_day_alternative(leap), None);
    }
}
