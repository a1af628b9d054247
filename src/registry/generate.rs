//! A synthetic registry: a deterministic stream of realistic cards from a seed, of any length,
//! for the demo and for tests, with no personal data of real people.
//!
//! Each person gets a Vietnamese name, a birth date and sex consistent with a 12-digit citizen ID
//! from a real province, a category whose benefit digit agrees with it, and a card in one of the
//! states a desk meets: valid, expired, revoked, reduced, re-issued (the new card, then the old
//! card naming it), or managed by the defence or public-security insurer. Dates are laid out
//! around `today`, so the proportions of valid and expired cards hold whenever the data is made.
//!
//! Uniqueness without memory of past items: the last six digits of a citizen ID are a bijection
//! of a counter per (province, century/sex digit, year) bucket, the social-insurance number a
//! bijection of the person's index, so no two people share either (up to 10^8 people, and
//! 500,000 per bucket).

use std::collections::HashMap;
use std::io;

use emrtd::cccd::id_number::{CitizenId, Sex};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::AnyPool;
use time::{Date, Duration};

use super::population::{
    FAMILY_NAMES, GIVEN_NAMES_FEMALE, GIVEN_NAMES_MALE, MIDDLE_NAMES_FEMALE, MIDDLE_NAMES_MALE,
    PROVINCES, TRADITIONAL_MIDDLE_FEMALE, TRADITIONAL_MIDDLE_MALE, province_name,
};
use super::{StoredCard, category, csv_row, upsert};
use crate::coverage::{BirthDate, CardRecord, CardStatus, Insurer, ReplacementCard};

/// What state a synthetic card is in on `today`, so tests can pick one of each.
///
/// Orthogonal traits show on the record itself: a year-only birth date (`birth.month` is
/// `None`), a child without a citizen ID (`citizen_id` is `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Active, in date, managed by Vietnam Social Security.
    Valid,
    /// Active, in date, managed by the defence insurer (soldiers, cipher staff).
    DefenceInsurer,
    /// Active, in date, managed by the public-security insurer (police).
    PublicSecurityInsurer,
    /// Active but past its end date.
    Expired,
    Revoked,
    /// Reported reduced; `record.status` says for what reason.
    Reduced,
    /// The card that replaced a re-issued one; comes just before the old card.
    ReissuedNew,
    /// A re-issued card, still in date or not (compare `valid_to` with today); its
    /// `replaced_by` is the card just before it.
    ReissuedOld,
}

/// One generated card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticCard {
    pub record: CardRecord,
    pub sex: Sex,
    pub kind: Kind,
}

/// The generator; iterate it for cards.
pub struct Generator {
    rng: ChaCha8Rng,
    today: Date,
    permutation_offset: u64,
    people: u64,
    id_counters: HashMap<(u16, u8, u8), u64>,
    /// The old card of a re-issue, due right after its successor.
    queued: Option<SyntheticCard>,
    years: Vec<i32>,
    year_weights: WeightedIndex<u32>,
    provinces: WeightedIndex<u32>,
    family_names: WeightedIndex<u32>,
}

impl Generator {
    /// The stream for `seed`, with cards dated around `today` (in Vietnam).
    pub fn new(seed: u64, today: Date) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let last_year = today.year().clamp(1931, 2025);
        let years: Vec<i32> = (1930..=last_year).collect();
        let year_weights = WeightedIndex::new(years.iter().map(|&y| birth_year_weight(y)))
            .expect("positive weights");
        Self {
            permutation_offset: rng.random_range(0..1_000_000),
            rng,
            today,
            people: 0,
            id_counters: HashMap::new(),
            queued: None,
            years,
            year_weights,
            provinces: WeightedIndex::new(PROVINCES.iter().map(|p| p.2)).expect("positive weights"),
            family_names: WeightedIndex::new(FAMILY_NAMES.iter().map(|f| f.1))
                .expect("positive weights"),
        }
    }

    fn province(&mut self) -> u16 {
        PROVINCES[self.provinces.sample(&mut self.rng)].0
    }

    fn days(&mut self, range: std::ops::RangeInclusive<i64>) -> Duration {
        Duration::days(self.rng.random_range(range))
    }

    fn person(&mut self) -> SyntheticCard {
        let index = self.people;
        self.people += 1;
        let rng = &mut self.rng;
        let sex = if rng.random_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        };
        let year = self.years[self.year_weights.sample(rng)];
        let days_in_year = if time::util::is_leap_year(year) {
            366
        } else {
            365
        };
        let born = Date::from_ordinal_date(year, rng.random_range(1..=days_in_year))
            .unwrap_or(self.today)
            .min(self.today - Duration::days(1));
        let age = age_on(born, self.today);
        let birth_province = self.province();
        let home = if self.rng.random_bool(0.8) {
            birth_province
        } else {
            self.province()
        };

        let citizen_id = if age < 6 && self.rng.random_bool(0.35) {
            None
        } else {
            Some(self.citizen_id(birth_province, born.year(), sex))
        };
        let birth = if self.rng.random_bool(if year < 1950 { 0.15 } else { 0.01 }) {
            BirthDate {
                year: born.year() as u16,
                month: None,
                day: None,
            }
        } else {
            BirthDate {
                year: born.year() as u16,
                month: Some(born.month().into()),
                day: Some(born.day()),
            }
        };
        let full_name = self.name(sex, year);
        let category = self.category(age);
        let social_insurance_number = format!(
            "{home:02}{:08}",
            permute(index, 100_000_000, self.permutation_offset)
        );

        let mut record = CardRecord {
            card_number: card_number(category, home, &social_insurance_number),
            social_insurance_number,
            citizen_id,
            full_name,
            birth,
            category: category.to_owned(),
            benefit_level: category::benefit_level(category).unwrap_or(4),
            valid_from: self.today,
            valid_to: self.today,
            primary_care_facility: String::new(),
            area_code: None,
            five_year_date: None,
            issuing_office: String::new(),
            status: CardStatus::Active,
            insurer: category::insurer(category),
            replaced_by: None,
        };
        self.place(&mut record, home, age);
        self.card_state(record, sex, born, age)
    }

    /// Facility, area code, five-year date and office, all tied to the province of issue.
    fn place(&mut self, record: &mut CardRecord, home: u16, age: i32) {
        let rng = &mut self.rng;
        record.primary_care_facility = format!("{home:02}{:03}", rng.random_range(1..=250));
        let remote = matches!(record.category.as_str(), "DT" | "XD");
        record.area_code = rng.random_bool(if remote { 0.5 } else { 0.03 }).then(|| {
            ["K1", "K2", "K3"]
                .choose(rng)
                .copied()
                .unwrap_or("K1")
                .to_owned()
        });
        record.five_year_date = (age >= 18 && rng.random_bool(0.35))
            .then(|| self.today + Duration::days(rng.random_range(-1000..=1500)));
        record.issuing_office = match record.insurer {
            Insurer::Defence => "BHXH Bộ Quốc phòng".to_owned(),
            Insurer::PublicSecurity => "BHXH Bộ Công an".to_owned(),
            Insurer::SocialSecurity => format!("BHXH {}", province_name(home)),
        };
    }

    /// Dates and status: mostly valid, some expired, revoked, reduced or re-issued.
    fn card_state(
        &mut self,
        mut record: CardRecord,
        sex: Sex,
        born: Date,
        age: i32,
    ) -> SyntheticCard {
        let today = self.today;
        // Per thousand: 70 expired, 10 revoked, 40 reduced, 60 re-issued, the rest valid.
        let roll = self.rng.random_range(0..1000);
        let a_year = |from: Date| from + Duration::days(364);
        let kind = match roll {
            0..70 => {
                record.valid_to = today - self.days(1..=720);
                record.valid_from = record.valid_to - Duration::days(364);
                Kind::Expired
            }
            70..120 => {
                record.valid_from = today - self.days(0..=330);
                record.valid_to = a_year(record.valid_from);
                if roll < 80 {
                    record.status = CardStatus::Revoked;
                    Kind::Revoked
                } else {
                    record.status = *[
                        CardStatus::Reduced,
                        CardStatus::ReducedMovedOutOfProvince,
                        CardStatus::ReducedMovedWithinProvince,
                        CardStatus::ReducedReaddedSameEmployer,
                        CardStatus::ReducedStoppedParticipating,
                    ]
                    .choose(&mut self.rng)
                    .unwrap_or(&CardStatus::Reduced);
                    Kind::Reduced
                }
            }
            120..180 => return self.reissue(record, sex, age),
            _ => {
                if record.category == "TE" {
                    // Children's cards run from birth to the day before their sixth birthday.
                    record.valid_from = born;
                    record.valid_to = sixth_birthday(born) - Duration::days(1);
                } else {
                    record.valid_from = today - self.days(0..=330);
                    record.valid_to = a_year(record.valid_from);
                }
                match record.insurer {
                    Insurer::SocialSecurity => Kind::Valid,
                    Insurer::Defence => Kind::DefenceInsurer,
                    Insurer::PublicSecurity => Kind::PublicSecurityInsurer,
                }
            }
        };
        SyntheticCard { record, sex, kind }
    }

    /// A re-issue: the new card is returned, the old one queued. Retirement, leaving school and
    /// moving house are what changes a card number.
    fn reissue(&mut self, old: CardRecord, sex: Sex, age: i32) -> SyntheticCard {
        let today = self.today;
        let mut new = old.clone();
        let new_category = match old.category.as_str() {
            "DN" | "HC" | "GD" if age >= 60 => Some("HT"),
            "HS" if age >= 18 => Some("SV"),
            "SV" if age >= 23 => Some("DN"),
            _ => None,
        };
        let home: u16 = old.card_number[3..5].parse().unwrap_or(1);
        let new_home = match new_category {
            Some(_) => home,
            None => loop {
                let province = self.province();
                if province != home {
                    break province;
                }
            },
        };
        if let Some(category) = new_category {
            new.category = category.to_owned();
            new.benefit_level = category::benefit_level(category).unwrap_or(4);
            new.insurer = category::insurer(category);
        }
        new.card_number = card_number(&new.category, new_home, &old.social_insurance_number);
        self.place(&mut new, new_home, age);
        new.valid_from = today - self.days(0..=200);
        new.valid_to = new.valid_from + Duration::days(364);

        let mut old = old;
        old.valid_from = new.valid_from - Duration::days(365);
        old.valid_to = if self.rng.random_bool(0.5) {
            today + self.days(1..=120)
        } else {
            let earliest = old.valid_from + Duration::days(30);
            earliest + self.days(0..=(today - Duration::days(1) - earliest).whole_days())
        };
        old.replaced_by = Some(ReplacementCard {
            card_number: new.card_number.clone(),
            valid_from: new.valid_from,
            valid_to: new.valid_to,
        });
        self.queued = Some(SyntheticCard {
            record: old,
            sex,
            kind: Kind::ReissuedOld,
        });
        SyntheticCard {
            record: new,
            sex,
            kind: Kind::ReissuedNew,
        }
    }

    /// A unique ID for the bucket of (province, century/sex digit, two-digit year).
    fn citizen_id(&mut self, province: u16, year: i32, sex: Sex) -> String {
        let century_sex = century_sex_digit(year, sex);
        let yy = (year % 100) as u8;
        let counter = self
            .id_counters
            .entry((province, century_sex, yy))
            .or_insert(0);
        let serial = permute(*counter, 1_000_000, self.permutation_offset);
        *counter += 1;
        format!("{province:03}{century_sex}{yy:02}{serial:06}")
    }

    /// Family name, middle name(s), given name: older people mostly carry Văn or Thị.
    fn name(&mut self, sex: Sex, year: i32) -> String {
        let rng = &mut self.rng;
        let family = FAMILY_NAMES[self.family_names.sample(rng)].0;
        let traditional = match year {
            ..1960 => 0.85,
            1960..1980 => 0.65,
            1980..2000 => 0.40,
            _ => 0.15,
        };
        let (usual, middles, givens) = match sex {
            Sex::Male => (
                TRADITIONAL_MIDDLE_MALE,
                &MIDDLE_NAMES_MALE,
                &GIVEN_NAMES_MALE,
            ),
            Sex::Female => (
                TRADITIONAL_MIDDLE_FEMALE,
                &MIDDLE_NAMES_FEMALE,
                &GIVEN_NAMES_FEMALE,
            ),
        };
        let mut parts = vec![family];
        let second_middle = if rng.random_bool(traditional) {
            parts.push(usual);
            0.15
        } else {
            parts.push(middles.choose(rng).copied().unwrap_or("Minh"));
            0.2
        };
        if rng.random_bool(second_middle) {
            parts.push(middles.choose(rng).copied().unwrap_or("Minh"));
        }
        parts.push(givens.choose(rng).copied().unwrap_or("Anh"));
        // "Thị Thị" or "Ngọc Ngọc" would not be a name anyone was given.
        parts.dedup();
        parts.join(" ")
    }

    /// A category plausible for the age, from the table in [`category`].
    fn category(&mut self, age: i32) -> &'static str {
        let choices: &[(&'static str, u32)] = match age {
            ..6 => &[("TE", 1)],
            6..18 => &[("HS", 80), ("HN", 8), ("DT", 6), ("CN", 4), ("BT", 2)],
            18..23 => &[
                ("SV", 45),
                ("DN", 25),
                ("GD", 15),
                ("HN", 5),
                ("DT", 4),
                ("QN", 3),
                ("CA", 2),
                ("CN", 1),
            ],
            23..60 => &[
                ("DN", 400),
                ("GD", 220),
                ("HC", 80),
                ("HN", 50),
                ("DT", 50),
                ("CN", 30),
                ("NN", 20),
                ("QN", 30),
                ("CA", 20),
                ("CY", 3),
                ("TN", 10),
                ("HX", 10),
                ("CK", 10),
                ("CB", 10),
                ("XK", 10),
                ("TK", 10),
            ],
            60..80 => &[
                ("HT", 45),
                ("GD", 18),
                ("CB", 8),
                ("BT", 6),
                ("HN", 5),
                ("CK", 4),
                ("DT", 4),
                ("CN", 3),
                ("CC", 2),
                ("TC", 2),
                ("NO", 1),
            ],
            _ => &[
                ("BT", 50),
                ("HT", 25),
                ("CC", 5),
                ("CK", 5),
                ("CB", 5),
                ("GD", 5),
                ("HN", 5),
            ],
        };
        choices
            .choose_weighted(&mut self.rng, |c| c.1)
            .map_or("GD", |c| c.0)
    }
}

impl Iterator for Generator {
    type Item = SyntheticCard;

    fn next(&mut self) -> Option<SyntheticCard> {
        Some(match self.queued.take() {
            Some(old) => old,
            None => self.person(),
        })
    }
}

/// Citizen IDs valid in shape (real province, consistent century digit) that the generator for
/// `seed` never registers: for "not found" answers. They take the bucket serials from the top
/// down while registered people take them from the bottom up.
pub fn unregistered_citizen_ids(seed: u64) -> impl Iterator<Item = CitizenId> {
    let offset = ChaCha8Rng::seed_from_u64(seed).random_range(0..1_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e6f_745f_666f_756e);
    (0u64..).filter_map(move |k| {
        let province = PROVINCES.choose(&mut rng).map_or(1, |p| p.0);
        let year = rng.random_range(1930..=2025);
        let sex = if rng.random_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        };
        let serial = permute(999_999 - k % 500_000, 1_000_000, offset);
        let id = format!(
            "{province:03}{}{:02}{serial:06}",
            century_sex_digit(year, sex),
            year % 100
        );
        CitizenId::parse(&id).ok()
    })
}

/// Writes cards as CSV in the import format; returns the number of rows written.
pub fn write_csv<W: io::Write>(
    out: W,
    cards: impl IntoIterator<Item = SyntheticCard>,
) -> csv::Result<u64> {
    let mut writer = csv::Writer::from_writer(out);
    csv_row::write_header(&mut writer)?;
    let mut rows = 0;
    for card in cards {
        csv_row::write_row(&mut writer, &card.record, card.sex)?;
        rows += 1;
    }
    writer.flush()?;
    Ok(rows)
}

/// Inserts cards straight into the registry, in one transaction, without the checks of an
/// import (the generator's cards are valid by construction). Returns the number inserted.
pub async fn insert(
    pool: &AnyPool,
    cards: impl IntoIterator<Item = SyntheticCard>,
) -> Result<u64, sqlx::Error> {
    const BATCH: usize = 5_000;
    let mut tx = pool.begin().await?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut inserted = 0;
    let mut cards = cards.into_iter().peekable();
    while cards.peek().is_some() {
        batch.clear();
        batch.extend(cards.by_ref().take(BATCH));
        let stored: Vec<StoredCard<'_>> = batch
            .iter()
            .map(|card| StoredCard {
                record: &card.record,
                sex: card.sex,
                replaced_by: card
                    .record
                    .replaced_by
                    .as_ref()
                    .map(|r| r.card_number.as_str()),
            })
            .collect();
        upsert(&mut tx, &stored).await?;
        inserted += stored.len() as u64;
    }
    tx.commit().await?;
    Ok(inserted)
}

fn card_number(category: &str, province: u16, social_insurance_number: &str) -> String {
    let level = category::benefit_level(category).unwrap_or(4);
    format!("{category}{level}{province:02}{social_insurance_number}")
}

/// 0/1 for men/women born in the 1900s, 2/3 in the 2000s.
fn century_sex_digit(year: i32, sex: Sex) -> u8 {
    let century = if year >= 2000 { 2 } else { 0 };
    century + u8::from(sex == Sex::Female)
}

/// A bijection of `0..modulus` that scatters consecutive counters (the multiplier is prime and
/// shares no factor with a power of ten).
fn permute(n: u64, modulus: u64, offset: u64) -> u64 {
    (n % modulus * 7_919 + offset) % modulus
}

fn age_on(born: Date, today: Date) -> i32 {
    let had_birthday = (today.month(), today.day()) >= (born.month(), born.day());
    today.year() - born.year() - i32::from(!had_birthday)
}

fn sixth_birthday(born: Date) -> Date {
    born.replace_year(born.year() + 6).unwrap_or_else(|_| {
        Date::from_calendar_date(born.year() + 6, time::Month::March, 1).unwrap_or(born)
    })
}

/// Fewer people were born in the 1930s and 40s who are still alive; the 1975-2005 cohorts are
/// the largest.
fn birth_year_weight(year: i32) -> u32 {
    match year {
        ..1945 => 1,
        1945..1960 => 4,
        1960..1975 => 8,
        1975..2005 => 10,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::card_number::CardNumber;
    use crate::coverage::Subject;
    use crate::registry::import::{ImportOptions, import};
    use crate::registry::tests::sqlite_registry;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 03 - 15);

    #[test]
    fn the_same_seed_gives_the_same_registry() {
        let a: Vec<_> = Generator::new(7, TODAY).take(2_000).collect();
        let b: Vec<_> = Generator::new(7, TODAY).take(2_000).collect();
        assert_eq!(a, b);
        let c: Vec<_> = Generator::new(8, TODAY).take(2_000).collect();
        assert_ne!(a, c);
        let ids = |seed| unregistered_citizen_ids(seed).take(100).collect::<Vec<_>>();
        assert_eq!(ids(7), ids(7));
    }

    #[test]
    fn the_registry_looks_like_a_real_one() {
        let cards: Vec<SyntheticCard> = Generator::new(1, TODAY).take(30_000).collect();
        let share = |pred: &dyn Fn(&SyntheticCard) -> bool| {
            cards.iter().filter(|c| pred(c)).count() as f64 / cards.len() as f64
        };
        let nguyen = share(&|c| c.record.full_name.starts_with("Nguyễn "));
        assert!((0.34..0.43).contains(&nguyen), "Nguyễn {nguyen}");
        assert!((0.05..0.09).contains(&share(&|c| c.kind == Kind::Expired)));
        assert!((0.005..0.02).contains(&share(&|c| c.kind == Kind::Revoked)));
        assert!((0.025..0.055).contains(&share(&|c| c.kind == Kind::Reduced)));
        assert!((0.04..0.08).contains(&share(&|c| c.kind == Kind::ReissuedOld)));
        for kind in [
            Kind::Valid,
            Kind::DefenceInsurer,
            Kind::PublicSecurityInsurer,
            Kind::ReissuedNew,
        ] {
            assert!(cards.iter().any(|c| c.kind == kind), "{kind:?}");
        }
        for status in [
            CardStatus::ReducedMovedOutOfProvince,
            CardStatus::ReducedStoppedParticipating,
        ] {
            assert!(cards.iter().any(|c| c.record.status == status));
        }
        assert!(share(&|c| c.record.birth.month.is_none()) > 0.005);
        assert!(cards.iter().any(|c| c.record.citizen_id.is_none()));
        assert!(share(&|c| c.sex == Sex::Female) > 0.45 && share(&|c| c.sex == Sex::Male) > 0.45);
        assert!(cards.iter().any(|c| c.record.full_name.contains("Hoà")));
        assert!(cards.iter().any(|c| c.record.full_name.contains("Hòa")));

        let mut numbers = HashSet::new();
        let mut people = HashSet::new();
        for card in &cards {
            let r = &card.record;
            assert!(
                numbers.insert(r.card_number.clone()),
                "card number repeated"
            );
            // Old and new card of a re-issue belong to one person; everyone else is new.
            if let (Some(id), false) = (&r.citizen_id, card.kind == Kind::ReissuedOld) {
                assert!(people.insert(id.clone()), "citizen ID repeated");
            }
            assert_eq!(category::benefit_level(&r.category), Some(r.benefit_level));
            if let Some(id) = &r.citizen_id {
                CitizenId::parse(id)
                    .unwrap()
                    .check_holder(r.birth.year, Some(card.sex))
                    .unwrap();
            }
            let usable = r.valid_from <= TODAY && TODAY <= r.valid_to;
            match card.kind {
                Kind::Valid
                | Kind::DefenceInsurer
                | Kind::PublicSecurityInsurer
                | Kind::ReissuedNew => {
                    assert!(usable && r.status == CardStatus::Active)
                }
                Kind::Expired => assert!(r.valid_to < TODAY),
                Kind::ReissuedOld => assert!(r.replaced_by.is_some()),
                _ => assert_ne!(r.status, CardStatus::Active),
            }
        }
        for id in unregistered_citizen_ids(1).take(10_000) {
            assert!(
                !people.contains(id.as_str()),
                "an unregistered ID is registered"
            );
        }
    }

    #[tokio::test]
    async fn generated_csv_imports_to_the_same_records() {
        let (_dir, registry) = sqlite_registry().await;
        let cards: Vec<SyntheticCard> = Generator::new(3, TODAY).take(3_000).collect();
        let mut csv = Vec::new();
        assert_eq!(write_csv(&mut csv, cards.clone()).unwrap(), 3_000);
        let report = import(registry.pool(), csv.as_slice(), ImportOptions::default())
            .await
            .unwrap();
        assert_eq!((report.rows_loaded, report.bad_row_count), (3_000, 0));
        for card in &cards {
            let subject = Subject::Card(CardNumber::parse(&card.record.card_number).unwrap());
            assert_eq!(
                registry.lookup(&subject).await.unwrap().as_ref(),
                Some(&card.record)
            );
        }
    }

    #[tokio::test]
    async fn inserts_the_same_as_an_import() {
        let (_dir, registry) = sqlite_registry().await;
        let cards: Vec<SyntheticCard> = Generator::new(4, TODAY).take(1_200).collect();
        assert_eq!(insert(registry.pool(), cards.clone()).await.unwrap(), 1_200);
        for card in cards.iter().step_by(7) {
            let subject = Subject::Card(CardNumber::parse(&card.record.card_number).unwrap());
            assert_eq!(
                registry.lookup(&subject).await.unwrap().as_ref(),
                Some(&card.record)
            );
        }
    }

    /// Throughput of [`insert`] into SQLite: `cargo test --release --lib insert_rate -- --ignored
    /// --nocapture`. A measurement, not a test: it asserts nothing about speed.
    #[tokio::test]
    #[ignore]
    async fn insert_rate() {
        let (_dir, registry) = sqlite_registry().await;
        let started = std::time::Instant::now();
        let n = insert(registry.pool(), Generator::new(5, TODAY).take(100_000))
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "inserted {n} rows in {seconds:.2} s: {:.0} rows/s",
            n as f64 / seconds
        );
        let generated = std::time::Instant::now();
        let count = Generator::new(5, TODAY).take(100_000).count();
        let seconds = generated.elapsed().as_secs_f64();
        println!("generating alone: {:.0} rows/s", count as f64 / seconds);

        let (_dir, registry) = sqlite_registry().await;
        let mut csv = Vec::new();
        write_csv(&mut csv, Generator::new(5, TODAY).take(100_000)).unwrap();
        let started = std::time::Instant::now();
        let report = import(registry.pool(), csv.as_slice(), ImportOptions::default())
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let touched = report.touched.count();
        println!(
            "imported {} CSV rows ({} MB) in {seconds:.2} s: {:.0} rows/s, {touched} subjects touched",
            report.rows_loaded,
            csv.len() / 1_000_000,
            report.rows_loaded as f64 / seconds
        );
    }
}
