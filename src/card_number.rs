//! The BHYT card number, in its two printed forms.
//!
//! Legacy cards print 15 characters: a 2-letter category, a benefit digit (1-5), the 2-digit
//! province of issue and the 10-digit social-insurance number (mã số BHXH). Newer cards print only
//! the 10-digit number; systems still exchange the 15-character form.
//!
//! Card numbers identify a person: `Debug` never prints them.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardNumberError {
    #[error("a BHYT card number has 15 characters or 10 digits, this one has {0}")]
    Length(usize),
    #[error("the first two characters must be the category letters (e.g. DN, HT, TE)")]
    Category,
    #[error("the third character must be the benefit digit 1-5")]
    BenefitDigit,
    #[error("characters 4-5 must be the 2-digit province of issue")]
    Province,
    #[error("the social-insurance number must be 10 digits")]
    SocialInsuranceNumber,
}

/// A card number as the desk or HIS gave it: either form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum CardNumber {
    /// `DN4010123456789`: category, benefit digit, province, social-insurance number.
    Full(String),
    /// `0123456789`: the social-insurance number alone.
    SocialInsurance(String),
}

impl CardNumber {
    /// Parses either form; letters are accepted in any case and stored upper-case.
    pub fn parse(text: &str) -> Result<Self, CardNumberError> {
        let text = text.trim().to_ascii_uppercase();
        let b = text.as_bytes();
        match b.len() {
            10 if b.iter().all(u8::is_ascii_digit) => Ok(Self::SocialInsurance(text)),
            10 => Err(CardNumberError::SocialInsuranceNumber),
            15 => {
                if !b[..2].iter().all(u8::is_ascii_uppercase) {
                    return Err(CardNumberError::Category);
                }
                if !(b'1'..=b'5').contains(&b[2]) {
                    return Err(CardNumberError::BenefitDigit);
                }
                if !b[3..5].iter().all(u8::is_ascii_digit) {
                    return Err(CardNumberError::Province);
                }
                if !b[5..].iter().all(u8::is_ascii_digit) {
                    return Err(CardNumberError::SocialInsuranceNumber);
                }
                Ok(Self::Full(text))
            }
            _ => Err(CardNumberError::Length(text.chars().count())),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Full(s) | Self::SocialInsurance(s) => s,
        }
    }

    /// The 10-digit social-insurance number, present in both forms.
    pub fn social_insurance_number(&self) -> &str {
        match self {
            Self::Full(s) => &s[5..],
            Self::SocialInsurance(s) => s,
        }
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardNumber(<redacted>)")
    }
}

/// The share of costs paid by insurance for a benefit digit, as hospital software in use maps
/// it (some public code maps these wrongly).
pub fn benefit_percent(level: u8) -> Option<(u32, &'static str)> {
    Some(match level {
        1 => (100, "100%, no caps"),
        2 => (100, "100%, with caps for some services"),
        3 => (95, "95%"),
        4 => (80, "80%"),
        5 => (100, "100%, including some costs outside the normal scope"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let full = CardNumber::parse("dn4010123456789").unwrap();
        assert_eq!(full.as_str(), "DN4010123456789");
        assert_eq!(full.social_insurance_number(), "0123456789");
        let short = CardNumber::parse(" 0123456789 ").unwrap();
        assert_eq!(short, CardNumber::SocialInsurance("0123456789".into()));
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(
            CardNumber::parse("DN401012345678"),
            Err(CardNumberError::Length(14))
        );
        assert_eq!(
            CardNumber::parse("D14010123456789"),
            Err(CardNumberError::Category)
        );
        assert_eq!(
            CardNumber::parse("DN6010123456789"),
            Err(CardNumberError::BenefitDigit)
        );
        assert_eq!(
            CardNumber::parse("DN4A10123456789"),
            Err(CardNumberError::Province)
        );
        assert_eq!(
            CardNumber::parse("DN40101234567X9"),
            Err(CardNumberError::SocialInsuranceNumber)
        );
        assert_eq!(
            CardNumber::parse("01234567X9"),
            Err(CardNumberError::SocialInsuranceNumber)
        );
        assert_eq!(CardNumber::parse(""), Err(CardNumberError::Length(0)));
    }

    #[test]
    fn benefit_table_matches_the_domain_notes() {
        assert_eq!(benefit_percent(3).unwrap().0, 95);
        assert_eq!(benefit_percent(4).unwrap().0, 80);
        assert!(benefit_percent(6).is_none());
    }
}
