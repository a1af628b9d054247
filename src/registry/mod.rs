//! The coverage registry: BHYT cards in SQL (SQLite embedded, PostgreSQL for scale), loaded from
//! a social-security export ([`import`]) or a synthetic population ([`generate`]), and answering
//! coverage look-ups as a [`CoverageSource`].
//!
//! One table, `cards`, one row per card. A re-issued card keeps its row and names its successor
//! in `replaced_by`; look-ups resolve that reference, so the desk learns which card counts now.
//! Queries go through sqlx's `Any` driver: `$n` placeholders, dates as 'YYYY-MM-DD' text, numbers
//! as BIGINT.

pub mod category;
pub mod csv_row;
pub mod generate;
pub mod import;
pub mod population;

use async_trait::async_trait;
use emrtd::cccd::id_number::Sex;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};
use time::{Date, Month};

use crate::card_number::CardNumber;
use crate::coverage::{BirthDate, CardRecord, CardStatus, Insurer, ReplacementCard, Subject};
use crate::source::{CoverageSource, SourceAnswer, SourceError, SourceQuery};

/// Coverage facts from the registry database.
#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
}

impl Registry {
    /// A registry on a pool opened with [`crate::db::connect`] for [`crate::db::Schema::Registry`].
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The card that answers for `subject`: by citizen ID, the person's current card; by card
    /// number (either form), that card, with its replacement if it was re-issued.
    pub async fn lookup(&self, subject: &Subject) -> Result<Option<CardRecord>, SourceError> {
        let (sql, key) = match subject {
            Subject::Citizen(id) => (BY_CITIZEN, id.as_str()),
            Subject::Card(CardNumber::Full(number)) => (BY_CARD_NUMBER, number.as_str()),
            Subject::Card(CardNumber::SocialInsurance(number)) => {
                (BY_SOCIAL_INSURANCE_NUMBER, number.as_str())
            }
        };
        let mut conn = self.pool.acquire().await.map_err(source_error)?;
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(source_error)?;
        let Some(row) = row else { return Ok(None) };
        let (mut card, replaced_by) = card_from_row(&row)?;
        if let Some(next) = replaced_by {
            card.replaced_by = Some(resolve_replacement(&mut conn, next).await?);
        }
        Ok(Some(card))
    }
}

/// Columns of a card as [`card_from_row`] reads them.
macro_rules! select_cards {
    ($($tail:expr),*) => {
        concat!(
            "SELECT card_number, social_insurance_number, citizen_id, full_name, birth_year, ",
            "birth_month, birth_day, category, benefit_level, valid_from, valid_to, ",
            "primary_care_facility, area_code, five_year_date, issuing_office, status, insurer, ",
            "replaced_by FROM cards ",
            $($tail),*
        )
    };
}

/// A person's or a social-insurance number's current card: one not replaced by another if there
/// is one, then the one valid latest. Ties are broken by card number so the answer is stable.
macro_rules! current_card_by {
    ($column:literal) => {
        select_cards!(
            "WHERE ",
            $column,
            " = $1 ORDER BY CASE WHEN replaced_by IS NULL THEN 0 ELSE 1 END, ",
            "valid_to DESC, valid_from DESC, card_number DESC LIMIT 1"
        )
    };
}

const BY_CITIZEN: &str = current_card_by!("citizen_id");
const BY_SOCIAL_INSURANCE_NUMBER: &str = current_card_by!("social_insurance_number");
const BY_CARD_NUMBER: &str = select_cards!("WHERE card_number = $1");
const REPLACEMENT: &str =
    "SELECT valid_from, valid_to, replaced_by FROM cards WHERE card_number = $1";

/// How many re-issues a look-up follows to the card that counts now. Real chains are one or two
/// long; the limit turns a circular chain into an error instead of a hang.
const MAX_REISSUES: usize = 8;

#[async_trait]
impl CoverageSource for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }

    /// Facts only: the registry leaves the verdict to the backend, which judges the name and
    /// date of birth itself.
    async fn check(&self, query: &SourceQuery<'_>) -> Result<SourceAnswer, SourceError> {
        self.lookup(query.subject).await.map(SourceAnswer::Facts)
    }
}

/// Follows a chain of re-issues to the last card.
async fn resolve_replacement(
    conn: &mut AnyConnection,
    mut number: String,
) -> Result<ReplacementCard, SourceError> {
    for _ in 0..MAX_REISSUES {
        let row = sqlx::query(REPLACEMENT)
            .bind(number.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(source_error)?
            .ok_or_else(|| {
                SourceError::Malformed("a card names a replacement the registry lacks".into())
            })?;
        let valid_from = date_column(&row, "valid_from")?;
        let valid_to = date_column(&row, "valid_to")?;
        match row.try_get::<Option<String>, _>("replaced_by") {
            Ok(Some(next)) => number = next,
            Ok(None) => {
                return Ok(ReplacementCard {
                    card_number: number,
                    valid_from,
                    valid_to,
                });
            }
            Err(_) => return Err(bad_column("replaced_by")),
        }
    }
    Err(SourceError::Malformed(format!(
        "a card's chain of re-issues is longer than {MAX_REISSUES} or circular"
    )))
}

/// A card read from a `cards` row, with its successor's number when it was re-issued (the
/// successor's dates are looked up separately).
///
/// A row the database holds but this code cannot read is reported as `Malformed` naming the
/// column, never its value.
pub fn card_from_row(row: &AnyRow) -> Result<(CardRecord, Option<String>), SourceError> {
    let text = |column: &'static str| {
        row.try_get::<String, _>(column)
            .map_err(|_| bad_column(column))
    };
    let optional_text = |column: &'static str| {
        row.try_get::<Option<String>, _>(column)
            .map_err(|_| bad_column(column))
    };
    let number = |column: &'static str| {
        row.try_get::<i64, _>(column)
            .map_err(|_| bad_column(column))
    };
    let optional_small = |column: &'static str| -> Result<Option<u8>, SourceError> {
        match row.try_get::<Option<i64>, _>(column) {
            Ok(None) => Ok(None),
            Ok(Some(n)) => u8::try_from(n).map(Some).map_err(|_| bad_column(column)),
            Err(_) => Err(bad_column(column)),
        }
    };

    let birth_year = u16::try_from(number("birth_year")?).map_err(|_| bad_column("birth_year"))?;
    let birth = BirthDate::new(
        birth_year,
        optional_small("birth_month")?,
        optional_small("birth_day")?,
    )
    .map_err(|_| bad_column("birth_year/birth_month/birth_day"))?;
    let benefit_level =
        u8::try_from(number("benefit_level")?).map_err(|_| bad_column("benefit_level"))?;
    let five_year_date = match optional_text("five_year_date")? {
        None => None,
        Some(text) => Some(parse_iso_date(&text).ok_or_else(|| bad_column("five_year_date"))?),
    };
    let status = parse_status(&text("status")?).ok_or_else(|| bad_column("status"))?;
    let insurer = parse_insurer(&text("insurer")?).ok_or_else(|| bad_column("insurer"))?;
    let card = CardRecord {
        card_number: text("card_number")?,
        social_insurance_number: text("social_insurance_number")?,
        citizen_id: optional_text("citizen_id")?,
        full_name: text("full_name")?,
        birth,
        category: text("category")?,
        benefit_level,
        valid_from: date_column(row, "valid_from")?,
        valid_to: date_column(row, "valid_to")?,
        primary_care_facility: text("primary_care_facility")?,
        area_code: optional_text("area_code")?,
        five_year_date,
        issuing_office: text("issuing_office")?,
        status,
        insurer,
        replaced_by: None,
    };
    Ok((card, optional_text("replaced_by")?))
}

fn date_column(row: &AnyRow, column: &'static str) -> Result<Date, SourceError> {
    row.try_get::<String, _>(column)
        .ok()
        .and_then(|text| parse_iso_date(&text))
        .ok_or_else(|| bad_column(column))
}

fn bad_column(column: &str) -> SourceError {
    SourceError::Malformed(format!(
        "registry column {column} holds an unreadable value"
    ))
}

/// Sorts database failures into "cannot answer now" and "answered something unreadable".
fn source_error(error: sqlx::Error) -> SourceError {
    use sqlx::Error as E;
    match error {
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. } => SourceError::Malformed(describe_db_error(&error)),
        _ => SourceError::Unavailable(describe_db_error(&error)),
    }
}

/// A description of a database failure that is safe to log: the kind of failure and the
/// database's error code, never its message, which can quote the values of a row.
pub fn describe_db_error(error: &sqlx::Error) -> String {
    use sqlx::Error as E;
    match error {
        E::Database(db) => match db.code() {
            Some(code) => format!("database error (code {code})"),
            None => "database error".into(),
        },
        E::Io(io) => format!("database I/O error: {}", io.kind()),
        E::Tls(_) => "database TLS error".into(),
        E::Protocol(_) => "database protocol error".into(),
        E::PoolTimedOut => "timed out waiting for a database connection".into(),
        E::PoolClosed => "the database pool is closed".into(),
        E::WorkerCrashed => "the database worker crashed".into(),
        E::Configuration(_) => "database configuration error".into(),
        E::ColumnNotFound(column) => format!("database column {column} is missing"),
        E::ColumnDecode { index, .. } => format!("database column {index} is unreadable"),
        E::Migrate(_) => "database migration error".into(),
        _ => "database error".into(),
    }
}

/// The text forms of [`CardStatus`] in the database and the CSV format.
const STATUSES: [(CardStatus, &str); 8] = [
    (CardStatus::Active, "active"),
    (CardStatus::Expired, "expired"),
    (CardStatus::Revoked, "revoked"),
    (CardStatus::Reduced, "reduced"),
    (
        CardStatus::ReducedMovedOutOfProvince,
        "reduced_moved_out_of_province",
    ),
    (
        CardStatus::ReducedMovedWithinProvince,
        "reduced_moved_within_province",
    ),
    (
        CardStatus::ReducedReaddedSameEmployer,
        "reduced_readded_same_employer",
    ),
    (
        CardStatus::ReducedStoppedParticipating,
        "reduced_stopped_participating",
    ),
];

/// The text forms of [`Insurer`] in the database and the CSV format.
const INSURERS: [(Insurer, &str); 3] = [
    (Insurer::SocialSecurity, "social_security"),
    (Insurer::Defence, "defence"),
    (Insurer::PublicSecurity, "public_security"),
];

pub fn status_text(status: CardStatus) -> &'static str {
    STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("active", |(_, t)| t)
}

pub fn parse_status(text: &str) -> Option<CardStatus> {
    STATUSES.iter().find(|(_, t)| *t == text).map(|(s, _)| *s)
}

pub fn insurer_text(insurer: Insurer) -> &'static str {
    INSURERS
        .iter()
        .find(|(i, _)| *i == insurer)
        .map_or("social_security", |(_, t)| t)
}

pub fn parse_insurer(text: &str) -> Option<Insurer> {
    INSURERS.iter().find(|(_, t)| *t == text).map(|(i, _)| *i)
}

pub fn sex_text(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "M",
        Sex::Female => "F",
    }
}

pub fn parse_sex(text: &str) -> Option<Sex> {
    match text {
        "M" | "m" => Some(Sex::Male),
        "F" | "f" => Some(Sex::Female),
        _ => None,
    }
}

/// 'YYYY-MM-DD', the date form both SQLite and PostgreSQL sort correctly as text.
pub fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

pub fn parse_iso_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let digits = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u16>().ok())?
    };
    let month = Month::try_from(u8::try_from(digits(month)?).ok()?).ok()?;
    let day = u8::try_from(digits(day)?).ok()?;
    Date::from_calendar_date(i32::from(digits(year)?), month, day).ok()
}

/// A card as the registry stores it: the record's facts, the holder's sex (which the record
/// does not carry but the citizen-ID check needs) and the successor by number only (its dates
/// live in its own row). `record.replaced_by` is not read.
pub(crate) struct StoredCard<'a> {
    pub record: &'a CardRecord,
    pub sex: Sex,
    pub replaced_by: Option<&'a str>,
}

const INSERT_COLUMNS: [&str; 20] = [
    "card_number",
    "social_insurance_number",
    "citizen_id",
    "full_name",
    "birth_year",
    "birth_month",
    "birth_day",
    "sex",
    "category",
    "benefit_level",
    "province_code",
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

/// Rows per INSERT statement: 500 x 20 parameters stays far below both SQLite's (32766) and
/// PostgreSQL's (65535) limits while amortising the round trip.
pub(crate) const ROWS_PER_INSERT: usize = 500;

pub(crate) use crate::db::parameters;

/// `INSERT ... VALUES (...), (...) ON CONFLICT (card_number) DO UPDATE`, which SQLite (3.24+)
/// and PostgreSQL both understand: a later export of a card replaces what the registry had.
fn upsert_sql(conn: &AnyConnection, rows: usize) -> String {
    let columns = INSERT_COLUMNS.len();
    let mut sql = format!("INSERT INTO cards ({}) VALUES ", INSERT_COLUMNS.join(", "));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        sql.push_str(&parameters(conn, row * columns + 1, columns));
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (card_number) DO UPDATE SET ");
    let updates: Vec<String> = INSERT_COLUMNS[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    sql.push_str(&updates.join(", "));
    sql
}

/// Inserts or replaces cards, [`ROWS_PER_INSERT`] per statement. Run it inside a transaction:
/// a failure midway leaves earlier statements applied.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    cards: &[StoredCard<'_>],
) -> Result<(), sqlx::Error> {
    let full_batch = upsert_sql(conn, ROWS_PER_INSERT);
    for chunk in cards.chunks(ROWS_PER_INSERT) {
        let sql = if chunk.len() == ROWS_PER_INSERT {
            full_batch.clone()
        } else {
            upsert_sql(conn, chunk.len())
        };
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for card in chunk {
            let r = card.record;
            query = query
                .bind(r.card_number.as_str())
                .bind(r.social_insurance_number.as_str())
                .bind(r.citizen_id.as_deref())
                .bind(r.full_name.as_str())
                .bind(i64::from(r.birth.year))
                .bind(r.birth.month.map(i64::from))
                .bind(r.birth.day.map(i64::from))
                .bind(sex_text(card.sex))
                .bind(r.category.as_str())
                .bind(i64::from(r.benefit_level))
                .bind(r.card_number.get(3..5).unwrap_or_default())
                .bind(iso_date(r.valid_from))
                .bind(iso_date(r.valid_to))
                .bind(r.primary_care_facility.as_str())
                .bind(r.area_code.as_deref())
                .bind(r.five_year_date.map(iso_date))
                .bind(r.issuing_office.as_str())
                .bind(status_text(r.status))
                .bind(insurer_text(r.insurer))
                .bind(card.replaced_by);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::{self, Schema};
    use emrtd::cccd::id_number::CitizenId;
    use time::macros::date;

    /// A registry in a fresh SQLite file; keep the directory alive as long as the pool.
    pub(crate) async fn sqlite_registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/registry.sqlite", dir.path().display());
        let pool = db::connect(&url, 4, Schema::Registry).await.unwrap();
        (dir, Registry::new(pool))
    }

    pub(crate) fn card(number: &str, citizen: Option<&str>) -> CardRecord {
        CardRecord {
            card_number: number.into(),
            social_insurance_number: number[5..].into(),
            citizen_id: citizen.map(Into::into),
            full_name: "Nguyễn Thị Hòa".into(),
            birth: BirthDate::new(1999, Some(3), Some(14)).unwrap(),
            category: number[..2].into(),
            benefit_level: number.as_bytes()[2] - b'0',
            valid_from: date!(2025 - 01 - 01),
            valid_to: date!(2025 - 12 - 31),
            primary_care_facility: "01821".into(),
            area_code: Some("K2".into()),
            five_year_date: Some(date!(2027 - 06 - 30)),
            issuing_office: "BHXH Hà Nội".into(),
            status: CardStatus::Active,
            insurer: Insurer::SocialSecurity,
            replaced_by: None,
        }
    }

    async fn store(registry: &Registry, cards: &[(&CardRecord, Option<&str>)]) {
        let stored: Vec<_> = cards
            .iter()
            .map(|(record, replaced_by)| StoredCard {
                record,
                sex: Sex::Female,
                replaced_by: *replaced_by,
            })
            .collect();
        let mut conn = registry.pool().acquire().await.unwrap();
        upsert(&mut conn, &stored).await.unwrap();
    }

    fn citizen(id: &str) -> Subject {
        Subject::Citizen(CitizenId::parse(id).unwrap())
    }

    fn card_subject(number: &str) -> Subject {
        Subject::Card(CardNumber::parse(number).unwrap())
    }

    #[tokio::test]
    async fn looks_up_by_each_kind_of_subject() {
        let (_dir, registry) = sqlite_registry().await;
        let mine = card("DN4010123456789", Some("001199012345"));
        let other = CardRecord {
            full_name: "Trần Văn An".into(),
            birth: BirthDate::new(1960, None, None).unwrap(),
            area_code: None,
            five_year_date: None,
            ..card("HT3790987654321", Some("079060000001"))
        };
        store(&registry, &[(&mine, None), (&other, None)]).await;

        // Each of the three keys finds the right card, and the whole record survives the trip.
        for subject in [
            citizen("001199012345"),
            card_subject("DN4010123456789"),
            card_subject("0123456789"),
        ] {
            assert_eq!(
                registry.lookup(&subject).await.unwrap().as_ref(),
                Some(&mine)
            );
        }
        // A year-only birth date and absent optional fields come back as they went in.
        assert_eq!(
            registry
                .lookup(&citizen("079060000001"))
                .await
                .unwrap()
                .as_ref(),
            Some(&other)
        );
        // Unknown subjects are "no card", not errors.
        for subject in [
            citizen("001199012346"),
            card_subject("DN4010123456780"),
            card_subject("0123456780"),
        ] {
            assert_eq!(registry.lookup(&subject).await.unwrap(), None);
        }
        assert_eq!(registry.name(), "registry");
    }

    #[tokio::test]
    async fn resolves_reissued_cards() {
        let (_dir, registry) = sqlite_registry().await;
        let id = "001199012345";
        // Still valid after its successor's end (the gateway's 004): only `replaced_by`, not the
        // dates, says it is not the current card.
        let old = CardRecord {
            valid_to: date!(2026 - 12 - 31),
            ..card("DN4010123456789", Some(id))
        };
        let middle = CardRecord {
            valid_from: date!(2025 - 06 - 01),
            valid_to: date!(2026 - 05 - 31),
            ..card("HT3010123456789", Some(id))
        };
        let newest = CardRecord {
            valid_from: date!(2025 - 09 - 01),
            valid_to: date!(2026 - 08 - 31),
            ..card("HT3790123456789", Some(id))
        };
        // The newest card first would hide a query that just took the latest row.
        store(
            &registry,
            &[
                (&newest, None),
                (&old, Some("HT3010123456789")),
                (&middle, Some("HT3790123456789")),
            ],
        )
        .await;

        // By the old card's number: that card, with the card that counts now as its replacement.
        let found = registry
            .lookup(&card_subject("DN4010123456789"))
            .await
            .unwrap()
            .unwrap();
        let expected = ReplacementCard {
            card_number: "HT3790123456789".into(),
            valid_from: newest.valid_from,
            valid_to: newest.valid_to,
        };
        assert_eq!(found.card_number, "DN4010123456789");
        assert_eq!(found.replaced_by, Some(expected));
        // By citizen ID and by social-insurance number: the current card, not a replaced one,
        // although the replaced ones share both numbers.
        for subject in [citizen(id), card_subject("0123456789")] {
            assert_eq!(
                registry.lookup(&subject).await.unwrap().as_ref(),
                Some(&newest)
            );
        }
    }

    #[tokio::test]
    async fn picks_the_card_valid_latest_and_survives_bad_rows() {
        let (_dir, registry) = sqlite_registry().await;
        let id = "001199012345";
        let earlier = card("DN4010123456789", Some(id));
        let later = CardRecord {
            valid_to: date!(2026 - 12 - 31),
            ..card("GD4010123456788", Some(id))
        };
        store(&registry, &[(&later, None), (&earlier, None)]).await;
        assert_eq!(
            registry.lookup(&citizen(id)).await.unwrap().as_ref(),
            Some(&later)
        );

        // A row this code cannot read is an error naming the column, not a panic or a value.
        sqlx::query("UPDATE cards SET valid_to = 'soon', status = 'lost' WHERE card_number = $1")
            .bind("GD4010123456788")
            .execute(registry.pool())
            .await
            .unwrap();
        match registry.lookup(&card_subject("GD4010123456788")).await {
            Err(SourceError::Malformed(message)) => {
                assert!(message.contains("column"), "{message}");
                assert!(
                    !message.contains("GD401") && !message.contains("soon"),
                    "{message}"
                );
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        // A replacement the registry does not hold, and a circular chain, are errors too.
        sqlx::query("UPDATE cards SET replaced_by = $1 WHERE card_number = $2")
            .bind("DN4010000000000")
            .bind("DN4010123456789")
            .execute(registry.pool())
            .await
            .unwrap();
        assert!(matches!(
            registry.lookup(&card_subject("DN4010123456789")).await,
            Err(SourceError::Malformed(_))
        ));
        sqlx::query("UPDATE cards SET replaced_by = card_number WHERE card_number = $1")
            .bind("DN4010123456789")
            .execute(registry.pool())
            .await
            .unwrap();
        assert!(matches!(
            registry.lookup(&card_subject("DN4010123456789")).await,
            Err(SourceError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_closed_pool_is_unavailable() {
        let (_dir, registry) = sqlite_registry().await;
        registry.pool().close().await;
        assert!(matches!(
            registry.lookup(&citizen("001199012345")).await,
            Err(SourceError::Unavailable(_))
        ));
    }

    #[test]
    fn text_forms_round_trip() {
        for (status, _) in STATUSES {
            assert_eq!(parse_status(status_text(status)), Some(status));
        }
        for (insurer, _) in INSURERS {
            assert_eq!(parse_insurer(insurer_text(insurer)), Some(insurer));
        }
        assert_eq!(
            parse_iso_date(&iso_date(date!(2024 - 02 - 29))),
            Some(date!(2024 - 02 - 29))
        );
        for bad in [
            "2023-02-29",
            "2024-2-29",
            "24-02-29",
            "2024-02-29-1",
            "",
            "2024-+2-01",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }
}
