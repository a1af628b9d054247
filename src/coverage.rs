//! The coverage check itself: who is asked about ([`Subject`]), what the source knows about a
//! card ([`CardRecord`]), and the verdict for this visit ([`judge`]).
//!
//! Facts and verdicts are kept apart on purpose: the cache holds facts about a card, and the
//! verdict is judged for each request, because it depends on what the desk typed (name, date of
//! birth), on the facility and on today's date in Vietnam.

use bhyt_proto::v1::ResultCode;
use emrtd::cccd::id_number::CitizenId;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::card_number::CardNumber;
use crate::names::{self, NameMatch};

/// Vietnam's time zone. "Valid today" means today in Vietnam, not in UTC: between 00:00 and
/// 07:00 local time the two disagree.
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+7 is a valid offset"),
};

/// Today's date in Vietnam at `now`.
pub fn vietnam_date(now: OffsetDateTime) -> Date {
    now.to_offset(VIETNAM).date()
}

/// Whom a check is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Citizen(CitizenId),
    Card(CardNumber),
}

impl Subject {
    /// "citizen_id" or "card_number": the name of the request field it came from.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Citizen(_) => "citizen_id",
            Subject::Card(_) => "card_number",
        }
    }

    /// The identifier itself. Personal data: hash it before it goes anywhere but the source.
    pub fn value(&self) -> &str {
        match self {
            Subject::Citizen(id) => id.as_str(),
            Subject::Card(card) => card.as_str(),
        }
    }
}

/// A date of birth as the desk or registry has it: the gateway accepts a year alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BirthDate {
    pub year: u16,
    /// 1-12, or `None` when only the year is known.
    pub month: Option<u8>,
    /// 1-31, or `None`; never set without `month`.
    pub day: Option<u8>,
}

impl BirthDate {
    /// A date of birth; `Err` names what is wrong.
    pub fn new(year: u16, month: Option<u8>, day: Option<u8>) -> Result<Self, &'static str> {
        if !(1900..=2200).contains(&year) {
            return Err("year must be between 1900 and 2200");
        }
        match (month, day) {
            (None, Some(_)) => return Err("a day needs a month"),
            (Some(m), None) if !(1..=12).contains(&m) => return Err("month must be 1-12"),
            (Some(m), Some(d)) => {
                let month = time::Month::try_from(m).map_err(|_| "month must be 1-12")?;
                Date::from_calendar_date(year.into(), month, d)
                    .map_err(|_| "no such day in that month")?;
            }
            _ => {}
        }
        Ok(Self { year, month, day })
    }

    /// Whether two dates of birth agree on every part both of them know.
    pub fn agrees_with(&self, other: &BirthDate) -> bool {
        let agree = |a: Option<u8>, b: Option<u8>| a.zip(b).is_none_or(|(a, b)| a == b);
        self.year == other.year && agree(self.month, other.month) && agree(self.day, other.day)
    }
}

/// Why a card no longer counts, as the social-security office reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    /// The source says the card has expired (the gateway's code 010), whatever its dates say.
    Expired,
    Revoked,
    /// Reported reduced ("báo giảm"), reason unspecified.
    Reduced,
    ReducedMovedOutOfProvince,
    ReducedMovedWithinProvince,
    ReducedReaddedSameEmployer,
    ReducedStoppedParticipating,
}

/// Which insurer manages the card: defence and public-security cards need ID papers checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Insurer {
    SocialSecurity,
    Defence,
    PublicSecurity,
}

/// The card that replaced a re-issued one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacementCard {
    pub card_number: String,
    pub valid_from: Date,
    pub valid_to: Date,
}

/// What the source knows about one card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    /// The 15-character form.
    pub card_number: String,
    pub social_insurance_number: String,
    pub citizen_id: Option<String>,
    pub full_name: String,
    pub birth: BirthDate,
    pub category: String,
    pub benefit_level: u8,
    pub valid_from: Date,
    pub valid_to: Date,
    pub primary_care_facility: String,
    /// K1, K2 or K3 for remote areas.
    pub area_code: Option<String>,
    pub five_year_date: Option<Date>,
    pub issuing_office: String,
    pub status: CardStatus,
    pub insurer: Insurer,
    pub replaced_by: Option<ReplacementCard>,
}

/// What the desk claims about the patient, and where the check happens.
#[derive(Clone, Debug)]
pub struct Claim {
    pub full_name: String,
    pub birth: BirthDate,
    pub facility_code: String,
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub result: ResultCode,
    /// The gateway's code for it, e.g. "000".
    pub source_code: &'static str,
    pub usable: bool,
}

/// Judges a card for this visit, in the order the national gateway reports problems: identity
/// first (no card, name, date of birth), then the card's state, then its dates.
pub fn judge(card: Option<&CardRecord>, claim: &Claim, today: Date) -> Verdict {
    use ResultCode as R;
    let result = match card {
        None => R::NoCardInformation,
        Some(card) => match names::compare(&claim.full_name, &card.full_name) {
            NameMatch::Different => R::NameMismatch,
            NameMatch::FirstCharacterRight => R::NameMismatchFirstCharacterRight,
            NameMatch::Same if !claim.birth.agrees_with(&card.birth) => R::BirthDateMismatch,
            NameMatch::Same => judge_card(card, today),
        },
    };
    verdict(result)
}

fn judge_card(card: &CardRecord, today: Date) -> ResultCode {
    use ResultCode as R;
    match card.status {
        CardStatus::Expired => return R::CardExpired,
        CardStatus::Revoked => return R::CardRevoked,
        CardStatus::Reduced => return R::CardReduced,
        CardStatus::ReducedMovedOutOfProvince => return R::CardReducedMovedOutOfProvince,
        CardStatus::ReducedMovedWithinProvince => return R::CardReducedMovedWithinProvince,
        CardStatus::ReducedReaddedSameEmployer => return R::CardReducedReaddedSameEmployer,
        CardStatus::ReducedStoppedParticipating => return R::CardReducedStoppedParticipating,
        CardStatus::Active => {}
    }
    if card.replaced_by.is_some() {
        return if today > card.valid_to {
            R::ReissuedOldCardExpired
        } else {
            R::ReissuedOldCardValid
        };
    }
    if today > card.valid_to {
        return R::CardExpired;
    }
    if today < card.valid_from {
        return R::CardNotYetValid;
    }
    match card.insurer {
        Insurer::SocialSecurity => R::CardValid,
        Insurer::Defence => R::CardValidDefenceInsurer,
        Insurer::PublicSecurity => R::CardValidPublicSecurityInsurer,
    }
}

/// The verdict for a result code, with the gateway's code and whether the card can be used.
pub fn verdict(result: ResultCode) -> Verdict {
    Verdict {
        result,
        source_code: gateway_code(result),
        usable: is_usable(result),
    }
}

/// Codes 000-004: the card can be used (for 003/004, under the new card's number).
pub fn is_usable(result: ResultCode) -> bool {
    use ResultCode as R;
    matches!(
        result,
        R::CardValid
            | R::CardValidDefenceInsurer
            | R::CardValidPublicSecurityInsurer
            | R::ReissuedOldCardExpired
            | R::ReissuedOldCardValid
    )
}

/// The national gateway's result code (maKetQua) for each outcome; "" for this service's own.
pub fn gateway_code(result: ResultCode) -> &'static str {
    use ResultCode as R;
    match result {
        R::CardValid => "000",
        R::CardValidDefenceInsurer => "001",
        R::CardValidPublicSecurityInsurer => "002",
        R::ReissuedOldCardExpired => "003",
        R::ReissuedOldCardValid => "004",
        R::CardExpired => "010",
        R::NoCardInformation => "050",
        R::WrongCardNumber => "051",
        R::WrongProvinceCode => "052",
        R::WrongBenefitCode => "053",
        R::OperatorNotRegistered => "054",
        R::OperatorNameMismatch => "055",
        R::NameMismatch => "060",
        R::NameMismatchFirstCharacterRight => "061",
        R::BirthDateMismatch => "070",
        R::CardDataError => "100",
        R::SourceServerError => "101",
        R::CardRevoked => "110",
        R::CardReduced => "120",
        R::CardReducedMovedOutOfProvince => "121",
        R::CardReducedMovedWithinProvince => "122",
        R::CardReducedReaddedSameEmployer => "123",
        R::CardReducedStoppedParticipating => "124",
        R::ChildWithoutCard => "130",
        R::SourceParameterError => "205",
        R::SourceAuthenticationError => "401",
        R::Unspecified | R::CardNotYetValid | R::UnknownSourceCode | R::CannotVerifyNow => "",
    }
}

/// The outcome a gateway code stands for; unknown codes map to `UnknownSourceCode` and the
/// caller keeps the raw code.
pub fn from_gateway_code(code: &str) -> ResultCode {
    use ResultCode as R;
    const OUTCOMES: [ResultCode; 26] = [
        R::CardValid,
        R::CardValidDefenceInsurer,
        R::CardValidPublicSecurityInsurer,
        R::ReissuedOldCardExpired,
        R::ReissuedOldCardValid,
        R::CardExpired,
        R::NoCardInformation,
        R::WrongCardNumber,
        R::WrongProvinceCode,
        R::WrongBenefitCode,
        R::OperatorNotRegistered,
        R::OperatorNameMismatch,
        R::NameMismatch,
        R::NameMismatchFirstCharacterRight,
        R::BirthDateMismatch,
        R::CardDataError,
        R::SourceServerError,
        R::CardRevoked,
        R::CardReduced,
        R::CardReducedMovedOutOfProvince,
        R::CardReducedMovedWithinProvince,
        R::CardReducedReaddedSameEmployer,
        R::CardReducedStoppedParticipating,
        R::ChildWithoutCard,
        R::SourceParameterError,
        R::SourceAuthenticationError,
    ];
    match code {
        // The gateway has two codes for a server error; the raw code is kept by the caller.
        "500" => R::SourceServerError,
        _ => OUTCOMES
            .into_iter()
            .find(|r| gateway_code(*r) == code)
            .unwrap_or(R::UnknownSourceCode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn card() -> CardRecord {
        CardRecord {
            card_number: "DN4010123456789".into(),
            social_insurance_number: "0123456789".into(),
            citizen_id: Some("001099012345".into()),
            full_name: "Nguyễn Thị Hòa".into(),
            birth: BirthDate::new(1999, Some(3), Some(14)).unwrap(),
            category: "DN".into(),
            benefit_level: 4,
            valid_from: date!(2026 - 01 - 01),
            valid_to: date!(2026 - 12 - 31),
            primary_care_facility: "01821".into(),
            area_code: None,
            five_year_date: None,
            issuing_office: "BHXH Hà Nội".into(),
            status: CardStatus::Active,
            insurer: Insurer::SocialSecurity,
            replaced_by: None,
        }
    }

    fn claim(name: &str, birth: BirthDate) -> Claim {
        Claim {
            full_name: name.into(),
            birth,
            facility_code: "01821".into(),
        }
    }

    #[test]
    fn judges_in_gateway_order() {
        let today = date!(2026 - 06 - 01);
        let born = BirthDate::new(1999, Some(3), Some(14)).unwrap();
        let c = card();
        let r = |card: Option<&CardRecord>, claim: &Claim| judge(card, claim, today).result;
        assert_eq!(
            r(Some(&c), &claim("NGUYỄN THỊ HOÀ", born)),
            ResultCode::CardValid
        );
        let year_only = BirthDate::new(1999, None, None).unwrap();
        assert_eq!(
            r(Some(&c), &claim("Nguyễn Thị Hòa", year_only)),
            ResultCode::CardValid
        );
        let wrong_day = BirthDate::new(1999, Some(3), Some(15)).unwrap();
        assert_eq!(
            r(Some(&c), &claim("Nguyễn Thị Hòa", wrong_day)),
            ResultCode::BirthDateMismatch
        );
        assert_eq!(
            r(Some(&c), &claim("Trần Hòa", born)),
            ResultCode::NameMismatch
        );
        assert_eq!(
            r(None, &claim("Trần Hòa", born)),
            ResultCode::NoCardInformation
        );
        let revoked = CardRecord {
            status: CardStatus::Revoked,
            ..card()
        };
        assert_eq!(
            r(Some(&revoked), &claim("Nguyễn Thị Hòa", born)),
            ResultCode::CardRevoked
        );
    }

    #[test]
    fn dates_are_judged_in_vietnam() {
        // 2026-12-31 17:30 UTC is already 2027-01-01 in Vietnam: the card has expired there.
        let now = time::macros::datetime!(2026-12-31 17:30 UTC);
        assert_eq!(vietnam_date(now), date!(2027 - 01 - 01));
        let born = BirthDate::new(1999, Some(3), Some(14)).unwrap();
        let v = judge(
            Some(&card()),
            &claim("Nguyễn Thị Hòa", born),
            vietnam_date(now),
        );
        assert_eq!(
            (v.result, v.source_code, v.usable),
            (ResultCode::CardExpired, "010", false)
        );
    }

    #[test]
    fn reissued_cards_say_which_card_counts() {
        let born = BirthDate::new(1999, Some(3), Some(14)).unwrap();
        let replacement = ReplacementCard {
            card_number: "DN4010123456790".into(),
            valid_from: date!(2026 - 05 - 01),
            valid_to: date!(2027 - 04 - 30),
        };
        let old = CardRecord {
            replaced_by: Some(replacement),
            ..card()
        };
        let v = judge(
            Some(&old),
            &claim("Nguyễn Thị Hòa", born),
            date!(2026 - 06 - 01),
        );
        assert_eq!(
            (v.result, v.usable),
            (ResultCode::ReissuedOldCardValid, true)
        );
        let v = judge(
            Some(&old),
            &claim("Nguyễn Thị Hòa", born),
            date!(2027 - 01 - 02),
        );
        assert_eq!(v.result, ResultCode::ReissuedOldCardExpired);
    }

    #[test]
    fn gateway_codes_round_trip() {
        for code in [
            "000", "004", "010", "050", "061", "110", "124", "130", "401",
        ] {
            assert_eq!(gateway_code(from_gateway_code(code)), code);
        }
        assert_eq!(from_gateway_code("500"), ResultCode::SourceServerError);
        assert_eq!(from_gateway_code("999"), ResultCode::UnknownSourceCode);
        assert_eq!(from_gateway_code(""), ResultCode::UnknownSourceCode);
    }

    #[test]
    fn birth_dates_are_validated() {
        assert!(BirthDate::new(2001, Some(2), Some(29)).is_err());
        assert!(BirthDate::new(2000, Some(2), Some(29)).is_ok());
        assert!(BirthDate::new(1899, None, None).is_err());
        assert!(BirthDate::new(1990, None, Some(3)).is_err());
        assert!(BirthDate::new(1990, Some(13), None).is_err());
    }
}
