//! A synthetic registry for tests, and requests about its people.

use bhyt_proto::v1::{
    CheckCoverageRequest, Date, IdentityEvidence, IdentityMethod, Operator,
    check_coverage_request::Subject,
};
use bhyt_verify::config::Config;
use bhyt_verify::coverage::{CardRecord, vietnam_date};
use bhyt_verify::db::{self, Schema};
use bhyt_verify::registry::generate::{self, Generator, Kind, SyntheticCard};
use time::OffsetDateTime;

pub const SEED: u64 = 7;
pub const FACILITY: &str = "01821";
pub const OPERATOR_ID: &str = "079185000123";

/// Seeds the configured registry with `count` generated cards and returns them.
pub async fn seed(config: &Config, count: usize) -> Vec<SyntheticCard> {
    let pool = db::connect(&config.registry_url(), 2, Schema::Registry)
        .await
        .expect("registry opens");
    let today = vietnam_date(OffsetDateTime::now_utc());
    let cards: Vec<SyntheticCard> = Generator::new(SEED, today).take(count).collect();
    generate::insert(&pool, cards.clone())
        .await
        .expect("registry seeds");
    pool.close().await;
    cards
}

/// The first card of `kind` that has a citizen ID and a full date of birth.
pub fn first(cards: &[SyntheticCard], kind: Kind) -> &CardRecord {
    cards
        .iter()
        .find(|c| c.kind == kind && c.record.citizen_id.is_some() && c.record.birth.day.is_some())
        .map(|c| &c.record)
        .unwrap_or_else(|| panic!("the synthetic registry has a {kind:?} card"))
}

pub fn unregistered_id() -> String {
    generate::unregistered_citizen_ids(SEED)
        .next()
        .unwrap()
        .as_str()
        .to_owned()
}

/// A well-formed request about a citizen no registry holds (born the year the ID says).
pub fn unregistered(request_id: &str, name: &str) -> CheckCoverageRequest {
    let id = unregistered_id();
    let born = Date {
        year: emrtd::cccd::id_number::CitizenId::parse(&id)
            .expect("a well-formed ID")
            .birth_year()
            .into(),
        month: 0,
        day: 0,
    };
    request(request_id, Subject::CitizenId(id), name, born)
}

pub fn birth_of(card: &CardRecord) -> Date {
    Date {
        year: card.birth.year.into(),
        month: card.birth.month.unwrap_or(0).into(),
        day: card.birth.day.unwrap_or(0).into(),
    }
}

/// A well-formed request about `card` by citizen ID.
pub fn by_citizen(request_id: &str, card: &CardRecord) -> CheckCoverageRequest {
    let id = card.citizen_id.clone().expect("card with a citizen ID");
    request(
        request_id,
        Subject::CitizenId(id),
        &card.full_name,
        birth_of(card),
    )
}

pub fn request(
    request_id: &str,
    subject: Subject,
    name: &str,
    birth: Date,
) -> CheckCoverageRequest {
    CheckCoverageRequest {
        request_id: request_id.into(),
        subject: Some(subject),
        full_name: name.into(),
        date_of_birth: Some(birth),
        operator: Some(Operator {
            full_name: "Lê Thị Thu".into(),
            citizen_id: OPERATOR_ID.into(),
        }),
        facility_code: FACILITY.into(),
        station_id: "desk-1".into(),
        evidence: Some(IdentityEvidence {
            method: IdentityMethod::Typed as i32,
            ..Default::default()
        }),
        presence_proof: None,
    }
}

/// A well-formed card that no registry holds, for calls refused before any look-up.
pub fn seed_free_card() -> CardRecord {
    let today = vietnam_date(OffsetDateTime::now_utc());
    let mut card = Generator::new(SEED + 1, today)
        .find(|c| c.kind == Kind::Valid && c.record.citizen_id.is_some())
        .unwrap()
        .record;
    card.birth.day.get_or_insert(1);
    card.birth.month.get_or_insert(1);
    card
}
