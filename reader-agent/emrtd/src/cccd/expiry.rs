//! The card's expiry date, which BAC needs and the QR code does not carry, computed from the
//! renewal-age rule.
//!
//! The Law on Citizen Identification (2014, kept by the 2023 Law on Identification): a card is
//! renewed at 25, 40 and 60; a card issued within 2 years before one of those ages stays valid
//! until the next one; a card issued at 58 or older does not expire. The 2023 law adds renewal
//! at 14 for cards issued to children; with 14 in the list nothing changes for a holder aged 14
//! or more on the issue date, which every card issued before 2024 had to be.
//!
//! "Within 2 years before" is read on the holder's age in full years on the issue date, as the
//! law's text is: issued at 23 or 24 -> valid until 40. The card expires on the birthday at the
//! age reached. For a 29 February birthday the anniversary in a common year is taken as
//! 28 February (what date libraries' add-years does); [`leap_day_alternative`] gives 1 March
//! for a caller to retry BAC with when the first guess fails.

use super::date::{Date, DateError};

/// Ages at which a card must be renewed.
pub const RENEWAL_AGES: [u16; 4] = [14, 25, 40, 60];
/// A card issued this many years (or fewer) before a renewal age lasts until the next one.
pub const GRACE_YEARS: u16 = 2;

/// When a card expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardExpiry {
    On(Date),
    /// Issued at 58 or older: the MRZ's expiry field is filler.
    Never,
}

impl CardExpiry {
    /// The MRZ expiry field BAC uses: `YYMMDD`, or `<<<<<<` for a card without expiry.
    pub fn mrz_field(&self) -> String {
        match self {
            CardExpiry::On(date) => date.to_yymmdd(),
            CardExpiry::Never => "<<<<<<".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpiryError {
    #[error("the issue date is before the date of birth")]
    IssuedBeforeBirth,
    #[error("expiry date out of range: {0}")]
    Date(#[from] DateError),
}

/// The expiry of a card issued on `issued` to a holder born on `born`.
pub fn card_expiry(born: Date, issued: Date) -> Result<CardExpiry, ExpiryError> {
    let age = born.age_on(issued).ok_or(ExpiryError::IssuedBeforeBirth)?;
    match RENEWAL_AGES
        .iter()
        .find(|&&renewal| age < renewal - GRACE_YEARS)
    {
        Some(&renewal) => {
            let year = born
                .year()
                .checked_add(renewal)
                .ok_or(DateError::NoSuchDay)?;
            Ok(CardExpiry::On(born.anniversary_in(year)?))
        }
        None => Ok(CardExpiry::Never),
    }
}

/// For a holder born on 29 February whose card expires in a common year: the 1 March reading.
pub fn leap_day_alternative(born: Date, expiry: CardExpiry) -> Option<Date> {
    match expiry {
        CardExpiry::On(date) => date.leap_day_alternative(born),
        CardExpiry::Never => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: u16, m: u8, day: u8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    fn on(y: u16, m: u8, day: u8) -> Result<CardExpiry, ExpiryError> {
        Ok(CardExpiry::On(d(y, m, day)))
    }

    const BORN: (u16, u8, u8) = (1990, 6, 15);

    fn expiry_issued(y: u16, m: u8, day: u8) -> Result<CardExpiry, ExpiryError> {
        card_expiry(d(BORN.0, BORN.1, BORN.2), d(y, m, day))
    }

    #[test]
    fn normal_cases() {
        // Issued at 20: renew at 25.
        assert_eq!(expiry_issued(2010, 7, 1), on(2015, 6, 15));
        // Issued at 30: renew at 40.
        assert_eq!(expiry_issued(2020, 7, 1), on(2030, 6, 15));
        // Issued at 45: renew at 60.
        assert_eq!(expiry_issued(2035, 7, 1), on(2050, 6, 15));
        // Issued at 16: renew at 25.
        assert_eq!(expiry_issued(2006, 7, 1), on(2015, 6, 15));
    }

    #[test]
    fn two_year_grace_at_each_boundary() {
        // Before 25: the day before the 23rd birthday -> 25; on it -> 40.
        assert_eq!(expiry_issued(2013, 6, 14), on(2015, 6, 15));
        assert_eq!(expiry_issued(2013, 6, 15), on(2030, 6, 15));
        assert_eq!(expiry_issued(2015, 6, 14), on(2030, 6, 15));
        // Before 40: 37 -> 40; 38 -> 60.
        assert_eq!(expiry_issued(2028, 6, 14), on(2030, 6, 15));
        assert_eq!(expiry_issued(2028, 6, 15), on(2050, 6, 15));
        // Issued on the 40th birthday (renewal itself): 60.
        assert_eq!(expiry_issued(2030, 6, 15), on(2050, 6, 15));
        // Before 60: 57 -> 60; 58 -> never.
        assert_eq!(expiry_issued(2048, 6, 14), on(2050, 6, 15));
        assert_eq!(expiry_issued(2048, 6, 15), Ok(CardExpiry::Never));
        // The 2023 law's 14: issued at 11 -> 14; at 12 -> 25.
        assert_eq!(expiry_issued(2002, 1, 1), on(2004, 6, 15));
        assert_eq!(expiry_issued(2002, 6, 15), on(2015, 6, 15));
    }

    #[test]
    fn no_expiry() {
        assert_eq!(expiry_issued(2050, 6, 15), Ok(CardExpiry::Never));
        assert_eq!(expiry_issued(2070, 1, 1), Ok(CardExpiry::Never));
        assert_eq!(CardExpiry::Never.mrz_field(), "<<<<<<");
        assert_eq!(CardExpiry::On(d(2030, 6, 15)).mrz_field(), "300615");
    }

    #[test]
    fn leap_day_birth() {
        let born = d(2000, 2, 29);
        // Issued at 21 -> 25th birthday in 2025, a common year: 28 February, or 1 March.
        let expiry = card_expiry(born, d(2021, 3, 1)).unwrap();
        assert_eq!(expiry, CardExpiry::On(d(2025, 2, 28)));
        assert_eq!(leap_day_alternative(born, expiry), Some(d(2025, 3, 1)));
        // 40th birthday in 2040, a leap year: 29 February itself.
        let expiry = card_expiry(born, d(2026, 1, 1)).unwrap();
        assert_eq!(expiry, CardExpiry::On(d(2040, 2, 29)));
        assert_eq!(leap_day_alternative(born, expiry), None);
        // Age turns on 28 February in a common year (consistent with the expiry reading).
        assert_eq!(
            card_expiry(born, d(2023, 2, 28)).unwrap(),
            CardExpiry::On(d(2040, 2, 29))
        );
        assert_eq!(
            card_expiry(born, d(2023, 2, 27)).unwrap(),
            CardExpiry::On(d(2025, 2, 28))
        );
    }

    #[test]
    fn refuses_issue_before_birth() {
        assert_eq!(
            card_expiry(d(2000, 1, 2), d(2000, 1, 1)),
            Err(ExpiryError::IssuedBeforeBirth)
        );
        // Year overflow is an error, not a panic.
        assert!(card_expiry(d(9990, 1, 1), d(9995, 1, 1)).is_err());
    }
}
