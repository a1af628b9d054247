//! Participant categories (mã đối tượng) and the benefit digit (mã quyền lợi) each one carries.
//!
//! The first two letters of a card number name the category, the third character is its benefit
//! digit; a card whose digit disagrees with its category is a data error (the gateway's 053).
//! The table follows the social-security coding of cards (Decision 1351/QĐ-BHXH) as hospital
//! software uses it; it is data, so a category added by a later decision is one line here.

use crate::coverage::Insurer;

/// Every category the registry accepts, with its benefit digit.
pub const CATEGORIES: [(&str, u8); 43] = [
    // 1: 100%, no caps.
    ("CC", 1),
    ("TE", 1),
    // 2: 100%, with caps for some services.
    ("CK", 2),
    ("CB", 2),
    ("KC", 2),
    ("HN", 2),
    ("DT", 2),
    ("DK", 2),
    ("XD", 2),
    ("BT", 2),
    ("TS", 2),
    // 3: 95%.
    ("HT", 3),
    ("TC", 3),
    ("CN", 3),
    // 4: 80%.
    ("DN", 4),
    ("HX", 4),
    ("CH", 4),
    ("NN", 4),
    ("TK", 4),
    ("HC", 4),
    ("XK", 4),
    ("TB", 4),
    ("NO", 4),
    ("CT", 4),
    ("XB", 4),
    ("TN", 4),
    ("CS", 4),
    ("XN", 4),
    ("MS", 4),
    ("HD", 4),
    ("TQ", 4),
    ("TA", 4),
    ("TY", 4),
    ("HG", 4),
    ("LS", 4),
    ("PV", 4),
    ("HS", 4),
    ("SV", 4),
    ("GB", 4),
    ("GD", 4),
    // 5: 100%, including some costs outside the normal scope.
    ("QN", 5),
    ("CA", 5),
    ("CY", 5),
];

/// The benefit digit of a category, or `None` for a category the registry does not know.
pub fn benefit_level(category: &str) -> Option<u8> {
    CATEGORIES
        .iter()
        .find(|(code, _)| *code == category)
        .map(|&(_, level)| level)
}

/// The insurer that manages cards of a category: soldiers and cipher staff are insured through
/// the Ministry of Defence, police through the Ministry of Public Security, everyone else through
/// Vietnam Social Security.
pub fn insurer(category: &str) -> Insurer {
    match category {
        "QN" | "CY" => Insurer::Defence,
        "CA" => Insurer::PublicSecurity,
        _ => Insurer::SocialSecurity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_domain_notes() {
        // The examples of shared/domain/bhyt-coverage.md, digit by digit.
        for (category, level) in [
            ("CC", 1),
            ("TE", 1),
            ("CK", 2),
            ("CB", 2),
            ("HN", 2),
            ("DT", 2),
            ("BT", 2),
            ("HT", 3),
            ("TC", 3),
            ("CN", 3),
            ("DN", 4),
            ("HC", 4),
            ("HS", 4),
            ("SV", 4),
            ("GD", 4),
            ("QN", 5),
            ("CA", 5),
            ("CY", 5),
        ] {
            assert_eq!(benefit_level(category), Some(level), "{category}");
        }
        assert_eq!(benefit_level("ZZ"), None);
        let mut codes: Vec<_> = CATEGORIES.iter().map(|(c, _)| c).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), CATEGORIES.len(), "a category is listed twice");
    }
}
