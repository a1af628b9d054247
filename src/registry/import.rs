//! Loading a social-security export (the CSV format of docs/registry-csv.md) into the registry.
//!
//! All or nothing: the file is loaded in one transaction, and a file with a bad row loads
//! nothing unless the caller asked to skip bad rows. Every bad row is reported with its line
//! and field, never its values.
//!
//! Memory stays small for any file size: rows stream through in batches. What is kept is one
//! `u64` per card seen (to catch a card listed twice), the rows whose `replaced_by` names a card
//! not yet seen (until that card turns up later in the file or is found in the registry), and
//! the first [`MAX_REPORTED_BAD_ROWS`] bad rows. The subjects whose answers the import changed
//! are spilled to an unnamed temporary file and handed back after the commit, for the cache to
//! forget them: invalidating before the commit would let a look-up re-cache the old answer.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::Path;

use csv::ByteRecord;
use emrtd::cccd::id_number::CitizenId;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use super::csv_row::{CsvRow, FieldError, Header, HeaderError, parse_row};
use super::{StoredCard, describe_db_error, parameters, upsert};
use crate::card_number::CardNumber;
use crate::coverage::Subject;

/// Bad rows beyond this many are counted, not listed.
pub const MAX_REPORTED_BAD_ROWS: usize = 10_000;

/// Rows written per flush; the upsert splits them into statements.
const BATCH_ROWS: usize = 5_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Load the good rows of a file that has bad ones (and report the bad ones).
    pub skip_bad_rows: bool,
}

/// A row that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// The column at fault, or "row" for the row as a whole.
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.reason)
    }
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// Data rows in the file (the header not counted).
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub bad_row_count: u64,
    /// The first [`MAX_REPORTED_BAD_ROWS`] bad rows, by line.
    pub bad_rows: Vec<BadRow>,
    /// Every citizen ID, card number and social-insurance number whose look-up may now answer
    /// differently: the cache must forget them.
    pub touched: TouchedSubjects,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(io::Error),
    #[error("the file is empty: it needs a header row (docs/registry-csv.md)")]
    NoHeader,
    #[error("bad header: {0}")]
    Header(#[from] HeaderError),
    #[error(
        "{bad_row_count} of {rows_read} rows are bad (the first on line {}); nothing was loaded",
        bad_rows.first().map_or(0, |row| row.line)
    )]
    Rejected {
        rows_read: u64,
        bad_row_count: u64,
        bad_rows: Vec<BadRow>,
    },
    #[error("the registry database failed: {0}")]
    Database(String),
    #[error("cannot write the list of changed subjects to a temporary file: {0}")]
    Spill(io::Error),
}

impl From<sqlx::Error> for ImportError {
    fn from(error: sqlx::Error) -> Self {
        ImportError::Database(describe_db_error(&error))
    }
}

impl From<csv::Error> for ImportError {
    fn from(error: csv::Error) -> Self {
        match error.into_kind() {
            csv::ErrorKind::Io(io) => ImportError::Read(io),
            // Byte records of a flexible reader fail only on I/O; anything else is described
            // without the text, which may be personal data.
            _ => ImportError::Read(io::Error::other("the CSV text is malformed")),
        }
    }
}

/// Imports the CSV file at `path`.
pub async fn import_file(
    pool: &AnyPool,
    path: &Path,
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let file = File::open(path).map_err(ImportError::Read)?;
    import(pool, BufReader::with_capacity(1 << 16, file), options).await
}

/// Imports CSV text from `input`. The reading is synchronous, between database writes.
pub async fn import<R: io::Read>(
    pool: &AnyPool,
    input: R,
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Rows of the wrong width are reported as bad rows, not as a failed read.
        .flexible(true)
        .from_reader(input);
    let mut record = ByteRecord::new();
    if !reader.read_byte_record(&mut record)? {
        return Err(ImportError::NoHeader);
    }
    let header = Header::parse(&record)?;
    let mut load = Load::new(pool.begin().await?, options)?;
    while reader.read_byte_record(&mut record)? {
        let line = record.position().map_or(0, |p| p.line());
        load.rows_read += 1;
        match parse_row(&header, &record) {
            Ok(row) => load.offer(line, row).await?,
            Err(error) => load.bad(line, error),
        }
    }
    load.finish().await
}

/// A row whose successor card has not been seen yet.
struct Waiting {
    line: u64,
    row: CsvRow,
}

/// The state of one import.
struct Load {
    tx: Transaction<'static, Any>,
    options: ImportOptions,
    rows_read: u64,
    rows_loaded: u64,
    bad_row_count: u64,
    bad_rows: Vec<BadRow>,
    /// Cards accepted or waiting, packed ([`card_key`]): a second row for one is a duplicate.
    seen: HashSet<u64>,
    /// Rows waiting for the card their `replaced_by` names, by that card.
    waiting: HashMap<u64, Vec<Waiting>>,
    /// The cards of the waiting rows themselves: not yet something to refer to.
    waiting_cards: HashSet<u64>,
    /// Successors not yet looked for in the registry.
    unchecked: Vec<String>,
    batch: Vec<CsvRow>,
    touched: Spill,
}

impl Load {
    fn new(tx: Transaction<'static, Any>, options: ImportOptions) -> Result<Self, ImportError> {
        Ok(Self {
            tx,
            options,
            rows_read: 0,
            rows_loaded: 0,
            bad_row_count: 0,
            bad_rows: Vec::new(),
            seen: HashSet::new(),
            waiting: HashMap::new(),
            waiting_cards: HashSet::new(),
            unchecked: Vec::new(),
            batch: Vec::with_capacity(BATCH_ROWS),
            touched: Spill::new().map_err(ImportError::Spill)?,
        })
    }

    fn bad(&mut self, line: u64, error: FieldError) {
        self.bad_row_count += 1;
        if self.bad_rows.len() < MAX_REPORTED_BAD_ROWS {
            self.bad_rows.push(BadRow {
                line,
                field: error.field,
                reason: error.reason,
            });
        }
    }

    /// Nothing more will be written once a row is bad and bad rows are not skipped.
    fn writing(&self) -> bool {
        self.options.skip_bad_rows || self.bad_row_count == 0
    }

    /// A well-formed row: checked against the rest of the file, then queued or held back.
    async fn offer(&mut self, line: u64, row: CsvRow) -> Result<(), ImportError> {
        let key = card_key(&row.record.card_number);
        if !self.seen.insert(key) {
            self.bad(
                line,
                field_error("card_number", "the same card is on an earlier line"),
            );
            return Ok(());
        }
        match row.replaced_by.as_deref() {
            Some(next) if !self.known(next) => {
                let next_key = card_key(next);
                if !self.waiting.contains_key(&next_key) {
                    self.unchecked.push(next.to_owned());
                }
                self.waiting_cards.insert(key);
                self.waiting
                    .entry(next_key)
                    .or_default()
                    .push(Waiting { line, row });
            }
            _ => self.accept(row),
        }
        if self.batch.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Whether `card` was accepted earlier in this file.
    fn known(&self, card: &str) -> bool {
        let key = card_key(card);
        self.seen.contains(&key) && !self.waiting_cards.contains(&key)
    }

    /// Queues a row, and with it every row that was waiting for its card, transitively.
    fn accept(&mut self, row: CsvRow) {
        let mut cards = vec![card_key(&row.record.card_number)];
        self.batch.push(row);
        while let Some(card) = cards.pop() {
            for waiting in self.waiting.remove(&card).unwrap_or_default() {
                let key = card_key(&waiting.row.record.card_number);
                self.waiting_cards.remove(&key);
                cards.push(key);
                self.batch.push(waiting.row);
            }
        }
    }

    /// Releases the rows waiting for successors the registry already holds.
    async fn check_registry_for_successors(&mut self) -> Result<(), ImportError> {
        let unchecked = std::mem::take(&mut self.unchecked);
        for chunk in unchecked.chunks(super::ROWS_PER_INSERT) {
            let sql = format!(
                "SELECT card_number FROM cards WHERE card_number IN ({})",
                parameters(&self.tx, 1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for card in chunk {
                query = query.bind(card.as_str());
            }
            for found in query.fetch_all(&mut *self.tx).await? {
                let card: String = found.try_get(0)?;
                for waiting in self.waiting.remove(&card_key(&card)).unwrap_or_default() {
                    self.waiting_cards
                        .remove(&card_key(&waiting.row.record.card_number));
                    self.accept(waiting.row);
                }
            }
        }
        Ok(())
    }

    /// Writes the queued rows and notes the subjects they change.
    async fn flush(&mut self) -> Result<(), ImportError> {
        self.check_registry_for_successors().await?;
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() || !self.writing() {
            return Ok(());
        }
        let stored: Vec<StoredCard<'_>> = batch
            .iter()
            .map(|row| StoredCard {
                record: &row.record,
                sex: row.sex,
                replaced_by: row.replaced_by.as_deref(),
            })
            .collect();
        upsert(&mut self.tx, &stored).await?;
        self.rows_loaded += batch.len() as u64;

        let spill = |result: io::Result<()>| result.map_err(ImportError::Spill);
        for row in &batch {
            if let Some(id) = &row.record.citizen_id {
                spill(self.touched.push(Tag::Citizen, id))?;
            }
            spill(self.touched.push(Tag::Card, &row.record.card_number))?;
            spill(
                self.touched
                    .push(Tag::Card, &row.record.social_insurance_number),
            )?;
        }
        // Older cards re-issued as one of these answer with its dates: they change too.
        for chunk in batch.chunks(super::ROWS_PER_INSERT) {
            let sql = format!(
                "SELECT card_number FROM cards WHERE replaced_by IN ({})",
                parameters(&self.tx, 1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for row in chunk {
                query = query.bind(row.record.card_number.as_str());
            }
            for old in query.fetch_all(&mut *self.tx).await? {
                let card: String = old.try_get(0)?;
                spill(self.touched.push(Tag::Card, &card))?;
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<ImportReport, ImportError> {
        self.flush().await?;
        // Whatever still waits names a card neither in the file nor in the registry.
        let orphans: Vec<u64> = self
            .waiting
            .drain()
            .flat_map(|(_, rows)| rows)
            .map(|w| w.line)
            .collect();
        for line in orphans {
            self.bad(
                line,
                field_error(
                    "replaced_by",
                    "names a card neither in the file nor in the registry",
                ),
            );
        }
        self.bad_rows.sort_by_key(|row| row.line);
        if !self.writing() {
            self.tx.rollback().await?;
            return Err(ImportError::Rejected {
                rows_read: self.rows_read,
                bad_row_count: self.bad_row_count,
                bad_rows: self.bad_rows,
            });
        }
        self.tx.commit().await?;
        Ok(ImportReport {
            rows_read: self.rows_read,
            rows_loaded: self.rows_loaded,
            bad_row_count: self.bad_row_count,
            bad_rows: self.bad_rows,
            touched: self.touched.finish().map_err(ImportError::Spill)?,
        })
    }
}

fn field_error(field: &'static str, reason: &str) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

/// A 15-character card number packed into a `u64` (two letters, thirteen digits: below 2^53),
/// so remembering ten million cards costs tens of megabytes rather than hundreds.
fn card_key(card: &str) -> u64 {
    let b = card.as_bytes();
    let letters = u64::from(b[0].wrapping_sub(b'A')) * 26 + u64::from(b[1].wrapping_sub(b'A'));
    b[2..]
        .iter()
        .fold(letters, |n, d| n * 10 + u64::from(d.wrapping_sub(b'0')))
}

#[derive(Clone, Copy)]
enum Tag {
    Citizen,
    Card,
}

/// The changed subjects, one per line in an unnamed temporary file (`c` citizen ID, `n` card
/// number in either form). The file is created with owner-only permissions and vanishes with
/// the handle: it holds personal data, as the import file itself does.
struct Spill {
    out: BufWriter<File>,
    count: u64,
}

impl Spill {
    fn new() -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(tempfile::tempfile()?),
            count: 0,
        })
    }

    fn push(&mut self, tag: Tag, value: &str) -> io::Result<()> {
        let tag = match tag {
            Tag::Citizen => 'c',
            Tag::Card => 'n',
        };
        self.count += 1;
        writeln!(self.out, "{tag} {value}")
    }

    fn finish(self) -> io::Result<TouchedSubjects> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(TouchedSubjects {
            lines: BufReader::new(file).lines(),
            remaining: self.count,
        })
    }
}

/// The subjects an import changed, read back from disk one at a time: take them in chunks and
/// invalidate each chunk's cache entries. The same subject may come more than once.
pub struct TouchedSubjects {
    lines: io::Lines<BufReader<File>>,
    remaining: u64,
}

impl TouchedSubjects {
    /// How many subjects are still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl std::fmt::Debug for TouchedSubjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TouchedSubjects({} remaining)", self.remaining)
    }
}

impl Iterator for TouchedSubjects {
    type Item = io::Result<Subject>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(error) => return Some(Err(error)),
        };
        self.remaining = self.remaining.saturating_sub(1);
        let corrupt = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt list of changed subjects",
            )
        };
        let subject = match line.split_once(' ') {
            Some(("c", id)) => CitizenId::parse(id)
                .map(Subject::Citizen)
                .map_err(|_| corrupt()),
            Some(("n", card)) => CardNumber::parse(card)
                .map(Subject::Card)
                .map_err(|_| corrupt()),
            _ => Err(corrupt()),
        };
        Some(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage::CardStatus;
    use crate::registry::csv_row::COLUMNS;
    use crate::registry::tests::sqlite_registry;

    const HEADER: &str = "card_number,social_insurance_number,citizen_id,full_name,date_of_birth,sex,valid_from,valid_to,primary_care_facility,area_code,five_year_date,issuing_office,status,insurer,replaced_by";

    fn row(card: &str, citizen: &str, replaced_by: &str) -> String {
        format!(
            "{card},{},{citizen},\"Nguyễn Thị Hòa\",14/03/1999,F,01/01/2025,31/12/2025,01821,,,BHXH Hà Nội,active,social_security,{replaced_by}",
            &card[5..]
        )
    }

    fn file(rows: &[String]) -> String {
        format!("{HEADER}\n{}\n", rows.join("\n"))
    }

    async fn count(registry: &crate::registry::Registry) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM cards")
            .fetch_one(registry.pool())
            .await
            .unwrap()
    }

    fn subject(card: &str) -> Subject {
        Subject::Card(CardNumber::parse(card).unwrap())
    }

    #[tokio::test]
    async fn loads_a_good_file_and_lists_what_changed() {
        let (_dir, registry) = sqlite_registry().await;
        let text = file(&[
            // The old card names a successor that comes later: a forward reference.
            row("DN4010123456789", "001199012345", "HT3010123456789"),
            row("HT3010123456789", "001199012345", ""),
            row("TE1790000000001", "", ""),
        ]);
        let report = import(registry.pool(), text.as_bytes(), ImportOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (report.rows_read, report.rows_loaded, report.bad_row_count),
            (3, 3, 0)
        );
        let touched: HashSet<String> = report
            .touched
            .map(|s| s.unwrap().value().to_owned())
            .collect();
        let expected: HashSet<String> = [
            "001199012345",
            "DN4010123456789",
            "0123456789",
            "HT3010123456789",
            "TE1790000000001",
            "0000000001",
        ]
        .map(String::from)
        .into();
        assert_eq!(touched, expected);
        let old = registry
            .lookup(&subject("DN4010123456789"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.replaced_by.unwrap().card_number, "HT3010123456789");

        // A later export of the successor changes the old card's answer too: it is listed.
        let text =
            file(&[row("HT3010123456789", "001199012345", "").replace("31/12/2025", "31/12/2026")]);
        let report = import(registry.pool(), text.as_bytes(), ImportOptions::default())
            .await
            .unwrap();
        let touched: Vec<Subject> = report.touched.map(Result::unwrap).collect();
        assert!(
            touched.contains(&subject("DN4010123456789")),
            "the re-issued card is not listed"
        );
        let old = registry
            .lookup(&subject("DN4010123456789"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            old.replaced_by.unwrap().valid_to,
            time::macros::date!(2026 - 12 - 31)
        );
        assert_eq!(count(&registry).await, 3);
    }

    #[tokio::test]
    async fn a_bad_file_loads_nothing_unless_bad_rows_are_skipped() {
        let (_dir, registry) = sqlite_registry().await;
        let rows = [
            row("DN4010123456789", "001199012345", ""),
            // Line 3: benefit digit 3 does not belong to DN.
            row("DN3010123456788", "001199012346", ""),
            // Line 4 spans two lines (a quoted newline in the name, itself refused), so the
            // next row is on line 6.
            row("GD4010123456787", "001199012347", "").replace("Nguyễn Thị Hòa", "Nguyễn Thị\nHòa"),
            // Line 6: the same card again.
            row("DN4010123456789", "001199012345", ""),
            // Line 7: a successor nobody has.
            row("HS4010123456786", "001199012348", "HS4010999999999"),
            // Line 8: too few fields.
            "HC4010123456785,0123456785".to_owned(),
            // Line 9: refers to the bad row on line 3, so it cannot be loaded either.
            row("CN3010123456784", "001199012349", "DN3010123456788"),
            row("TE1790000000001", "", ""),
        ];
        let text = file(&rows);
        let expected = [
            (3, "card_number"),
            (4, "full_name"),
            (6, "card_number"),
            (7, "replaced_by"),
            (8, "row"),
            (9, "replaced_by"),
        ];
        // Without skipping: an error listing every bad row, and an empty registry.
        // (Were the transaction committed despite the bad rows, the count would be 2.)
        match import(registry.pool(), text.as_bytes(), ImportOptions::default()).await {
            Err(ImportError::Rejected {
                rows_read,
                bad_row_count,
                bad_rows,
            }) => {
                assert_eq!((rows_read, bad_row_count), (8, 6));
                let found: Vec<(u64, &str)> = bad_rows.iter().map(|b| (b.line, b.field)).collect();
                assert_eq!(found, expected);
                for bad in &bad_rows {
                    assert!(!bad.reason.contains("0123456"), "{bad}");
                }
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(count(&registry).await, 0);

        // Skipping: the two good rows load, the same bad rows are reported.
        let options = ImportOptions {
            skip_bad_rows: true,
        };
        let report = import(registry.pool(), text.as_bytes(), options)
            .await
            .unwrap();
        assert_eq!(
            (report.rows_read, report.rows_loaded, report.bad_row_count),
            (8, 2, 6)
        );
        let found: Vec<(u64, &str)> = report.bad_rows.iter().map(|b| (b.line, b.field)).collect();
        assert_eq!(found, expected);
        assert_eq!(count(&registry).await, 2);
        assert!(
            registry
                .lookup(&subject("TE1790000000001"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            registry
                .lookup(&subject("CN3010123456784"))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn successors_may_already_be_in_the_registry() {
        let (_dir, registry) = sqlite_registry().await;
        let first = file(&[row("HT3010123456789", "001199012345", "")]);
        import(registry.pool(), first.as_bytes(), ImportOptions::default())
            .await
            .unwrap();
        let second = file(&[row("DN4010123456789", "001199012345", "HT3010123456789")
            .replace(",active,", ",revoked,")]);
        let report = import(registry.pool(), second.as_bytes(), ImportOptions::default())
            .await
            .unwrap();
        assert_eq!(report.rows_loaded, 1);
        let old = registry
            .lookup(&subject("DN4010123456789"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.status, CardStatus::Revoked);
        assert!(old.replaced_by.is_some());
    }

    #[tokio::test]
    async fn circular_successors_are_refused() {
        let (_dir, registry) = sqlite_registry().await;
        let text = file(&[
            row("DN4010123456789", "001199012345", "HT3010123456789"),
            row("HT3010123456789", "001199012345", "DN4010123456789"),
        ]);
        let result = import(registry.pool(), text.as_bytes(), ImportOptions::default()).await;
        assert!(
            matches!(
                result,
                Err(ImportError::Rejected {
                    bad_row_count: 2,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn refuses_files_without_the_documented_header() {
        let (_dir, registry) = sqlite_registry().await;
        let result = import(registry.pool(), &b""[..], ImportOptions::default()).await;
        assert!(matches!(result, Err(ImportError::NoHeader)));
        let text = format!(
            "{}\n{}\n",
            COLUMNS[..14].join(","),
            row("DN4010123456789", "", "")
        );
        let result = import(registry.pool(), text.as_bytes(), ImportOptions::default()).await;
        assert!(matches!(
            result,
            Err(ImportError::Header(HeaderError::Missing("replaced_by")))
        ));
        // No header at all: the first card is read as one, and the message must not quote it.
        let text = format!("{}\n", row("DN4010123456789", "001199012345", ""));
        let error = import(registry.pool(), text.as_bytes(), ImportOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ImportError::Header(HeaderError::Unknown(1))),
            "{error:?}"
        );
        assert!(!error.to_string().contains("DN401"), "{error}");
    }

    #[tokio::test]
    async fn the_documented_example_imports() {
        let doc = include_str!("../../docs/registry-csv.md");
        let example = doc
            .split("```csv\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let (_dir, registry) = sqlite_registry().await;
        let report = import(
            registry.pool(),
            example.as_bytes(),
            ImportOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!((report.rows_read, report.rows_loaded), (5, 5));
    }

    #[test]
    fn card_keys_are_distinct() {
        let cards = [
            "AA1000000000000",
            "AA1000000000001",
            "AB1000000000000",
            "BA1000000000000",
            "ZZ5999999999999",
        ];
        let keys: HashSet<u64> = cards.iter().map(|c| card_key(c)).collect();
        assert_eq!(keys.len(), cards.len());
        assert!(card_key("ZZ5999999999999") < 1 << 53);
    }
}
