//! The national gateway's card-check protocol on the wire, shared by the client
//! ([`super::GatewaySource`]) and the simulator (`src/bin/gateway-sim.rs`).
//!
//! What the protocol is, from the domain notes: a token log-in per facility account, then a
//! card check whose body is form-encoded (the gateway's documents say JSON, the gateway wants
//! forms) while the token travels in the query string. Answers are JSON with the result code
//! in `maKetQua`. Dates are `dd/MM/yyyy`; a date of birth may be a year alone.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::coverage::BirthDate;

/// Log-in: form `username`, `password`; answer [`LoginAnswer`].
pub const LOGIN_PATH: &str = "/api/token/take";
/// Card check: query [`TokenParams`], form [`CheckForm`]; answer [`CheckAnswer`].
pub const CHECK_PATH: &str = "/api/egw/nhanThongTinThe";

/// The result code of a successful log-in.
pub const LOGIN_OK: &str = "200";

#[derive(Clone, Serialize, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginAnswer {
    #[serde(rename = "maKetQua")]
    pub code: String,
    #[serde(rename = "APIKey", skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKey {
    pub access_token: String,
    pub id_token: String,
    /// Seconds the token stays valid.
    pub expires_in: u64,
}

/// The card check's query string: the token and the account's name, as the real gateway
/// takes them. This is why a card check's URL is never logged.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    pub token: String,
    pub id_token: String,
    pub username: String,
}

/// The card check's form: the card (or CCCD) number, what the desk has of the patient, and
/// the staff member doing the check.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckForm {
    /// A 15-character card number, a 10-digit social-insurance number or a 12-digit CCCD.
    pub ma_the: String,
    pub ho_ten: String,
    /// `dd/MM/yyyy` or `yyyy`.
    pub ngay_sinh: String,
    /// The staff member's full name.
    pub ho_ten_cb: String,
    /// The staff member's CCCD number.
    pub cccd_cb: String,
}

/// The card check's answer. Card fields come with the codes that describe a card (000-004,
/// 010, 110, 120-124); the re-issued card's fields (`*Moi`) with 003 and 004.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckAnswer {
    pub ma_ket_qua: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ghi_chu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ma_the: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ho_ten: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngay_sinh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gioi_tinh: Option<String>,
    /// Registered primary-care facility.
    #[serde(rename = "maDKBD", skip_serializing_if = "Option::is_none")]
    pub ma_dkbd: Option<String>,
    /// Issuing social-security office.
    #[serde(rename = "cqBHXH", skip_serializing_if = "Option::is_none")]
    pub cq_bhxh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt_the_tu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt_the_den: Option<String>,
    /// Living-area code: K1, K2, K3 or empty.
    #[serde(rename = "maKV", skip_serializing_if = "Option::is_none")]
    pub ma_kv: Option<String>,
    /// The day the holder completes five consecutive years of participation.
    #[serde(rename = "ngayDu5Nam", skip_serializing_if = "Option::is_none")]
    pub ngay_du_5_nam: Option<String>,
    #[serde(rename = "maSoBHXH", skip_serializing_if = "Option::is_none")]
    pub ma_so_bhxh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ma_the_moi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt_the_tu_moi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt_the_den_moi: Option<String>,
}

/// `dd/MM/yyyy`.
pub fn format_date(date: Date) -> String {
    format!(
        "{:02}/{:02}/{:04}",
        date.day(),
        u8::from(date.month()),
        date.year()
    )
}

/// `dd/MM/yyyy`, strictly (two-digit day and month, four-digit year).
pub fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('/');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || day.len() != 2 || month.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = Month::try_from(u8::try_from(digits(month)?).ok()?).ok()?;
    Date::from_calendar_date(
        i32::from(digits(year)?),
        month,
        u8::try_from(digits(day)?).ok()?,
    )
    .ok()
}

/// A date of birth as the gateway takes it: `dd/MM/yyyy` when the day is known, else `yyyy`
/// (the gateway has no month-and-year form: a known month without its day is not sent).
pub fn format_birth(birth: BirthDate) -> String {
    match (birth.month, birth.day) {
        (Some(month), Some(day)) => format!("{day:02}/{month:02}/{:04}", birth.year),
        _ => format!("{:04}", birth.year),
    }
}

/// `dd/MM/yyyy` or `yyyy`.
pub fn parse_birth(text: &str) -> Option<BirthDate> {
    if text.len() == 4 {
        return BirthDate::new(digits(text)?, None, None).ok();
    }
    let date = parse_date(text)?;
    BirthDate::new(
        u16::try_from(date.year()).ok()?,
        Some(u8::from(date.month())),
        Some(date.day()),
    )
    .ok()
}

fn digits(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(format_date(date!(2026 - 03 - 09)), "09/03/2026");
        assert_eq!(parse_date("09/03/2026"), Some(date!(2026 - 03 - 09)));
        for bad in [
            "9/3/2026",
            "2026-03-09",
            "29/02/2025",
            "09/13/2026",
            "09/03/26",
            "09/03/2026/1",
            "",
            "+9/03/2026",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        let full = BirthDate::new(1999, Some(3), Some(14)).unwrap();
        assert_eq!(format_birth(full), "14/03/1999");
        assert_eq!(parse_birth("14/03/1999"), Some(full));
        let year = BirthDate::new(1960, None, None).unwrap();
        assert_eq!(format_birth(year), "1960");
        assert_eq!(parse_birth("1960"), Some(year));
        // A month without its day goes as the year alone.
        assert_eq!(
            format_birth(BirthDate::new(1960, Some(5), None).unwrap()),
            "1960"
        );
        for bad in ["196", "19600", "1860", "abcd", "31/04/1999", ""] {
            assert_eq!(parse_birth(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers_use_the_gateways_field_names() {
        let answer = CheckAnswer {
            ma_ket_qua: "004".into(),
            ma_dkbd: Some("01821".into()),
            ngay_du_5_nam: Some("01/01/2027".into()),
            ma_the_moi: Some("DN4010123456790".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&answer).unwrap();
        for field in [
            "\"maKetQua\"",
            "\"maDKBD\"",
            "\"ngayDu5Nam\"",
            "\"maTheMoi\"",
        ] {
            assert!(json.contains(field), "{json}");
        }
        assert!(
            !json.contains("hoTen"),
            "absent fields are left out: {json}"
        );
        let back: CheckAnswer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, answer);
        // Fields this client does not know are ignored, and a bare code is an answer.
        let bare: CheckAnswer =
            serde_json::from_str(r#"{"maKetQua":"050","dsLichSuKCB":[]}"#).unwrap();
        assert_eq!(bare.ma_ket_qua, "050");
    }
}
