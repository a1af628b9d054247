//! The audit tables (migrations/audit) through sqlx's Any driver, for SQLite and PostgreSQL.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, Row};

use super::chain::{AuditEntry, ChainedRecord, EventKind, Evidence};
use crate::db;

const RECORD_COLUMNS: &str = "writer_id, seq, record_id, kind, recorded_at, request_id, \
    facility_code, station_id, operator_hash, subject_kind, subject_hash, subject_sealed, result, \
    source_code, error_code, detail, cache_status, evidence_method, evidence_passive, \
    evidence_chip, evidence_active, evidence_ds_issuer, latency_micros, prev_hash, record_hash, evidence_presence";
const RECORD_COLUMN_COUNT: usize = 26;

/// An idempotency key: (facility_code, station_id, request_id).
pub type AnswerKey = (String, String, String);

/// The answer stored for an idempotency key.
#[derive(Clone, Debug)]
pub struct StoredAnswer {
    pub payload_hash: String,
    pub record_id: String,
    pub response: Vec<u8>,
}

/// A new idempotency key, committed with its audit record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRow {
    pub facility_code: String,
    pub station_id: String,
    pub request_id: String,
    pub payload_hash: String,
    pub record_id: String,
    pub response: Vec<u8>,
    pub created_at: i64,
}

pub struct Checkpoint {
    pub writer_id: String,
    pub number: i64,
    pub seq: i64,
    pub record_hash: String,
    pub signed_at: i64,
    pub closing: bool,
    pub key_id: String,
    pub signature: String,
}

pub async fn register_writer(
    pool: &AnyPool,
    writer_id: &str,
    started_at: i64,
    key_id: &str,
    host: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_writers (writer_id, started_at, key_id, host) VALUES ($1, $2, $3, $4)",
    )
    .bind(writer_id)
    .bind(started_at)
    .bind(key_id)
    .bind(host)
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts a group of chained records and their idempotency keys in one transaction.
pub async fn insert_group(
    conn: &mut AnyConnection,
    records: &[ChainedRecord],
    keys: &[IdempotencyRow],
) -> Result<(), sqlx::Error> {
    insert(conn, records, keys, "").await
}

/// Inserts spooled records and keys in one transaction, skipping those the store already has
/// (by `(writer_id, seq)`, `record_id`, or the idempotency key): a group whose commit failed
/// only in the reply, or a replay cut short by a crash, is not inserted twice.
pub async fn insert_replayed(
    conn: &mut AnyConnection,
    records: &[ChainedRecord],
    keys: &[IdempotencyRow],
) -> Result<(), sqlx::Error> {
    insert(conn, records, keys, " ON CONFLICT DO NOTHING").await
}

/// Rows per INSERT: well below SQLite's and PostgreSQL's bound-parameter limits.
const ROWS_PER_STATEMENT: usize = 256;

/// For SQLite the whole transaction (BEGIN, the INSERTs, COMMIT) is one query, so one hand-off
/// to the connection's worker thread rather than one per statement: sqlx runs a query's
/// statements in turn and binds the anonymous parameters across them in order. A statement
/// that fails ends the run with the transaction open; it is rolled back here, and a caller
/// that gave up waiting must close the connection rather than reuse it. PostgreSQL takes no
/// parameters in a multi-statement query: there, a transaction of its own statements.
async fn insert(
    conn: &mut AnyConnection,
    records: &[ChainedRecord],
    keys: &[IdempotencyRow],
    on_conflict: &'static str,
) -> Result<(), sqlx::Error> {
    if records.is_empty() && keys.is_empty() {
        return Ok(());
    }
    if conn.backend_name() != "SQLite" {
        let mut tx = conn.begin().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = records_sql(&tx, chunk.len(), on_conflict);
            // Built from constants and placeholders only; values are bound.
            let query = bind_records(sqlx::query(AssertSqlSafe(sql)), chunk);
            query.execute(&mut *tx).await?;
        }
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = keys_sql(&tx, chunk.len(), on_conflict);
            // Built from constants and placeholders only; values are bound.
            let query = bind_keys(sqlx::query(AssertSqlSafe(sql)), chunk);
            query.execute(&mut *tx).await?;
        }
        return tx.commit().await;
    }
    let mut sql = String::from("BEGIN; ");
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        sql.push_str(&records_sql(conn, chunk.len(), on_conflict));
        sql.push_str("; ");
    }
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        sql.push_str(&keys_sql(conn, chunk.len(), on_conflict));
        sql.push_str("; ");
    }
    sql.push_str("COMMIT");
    // Built from constants and placeholders only; values are bound, in statement order.
    let query = bind_keys(bind_records(sqlx::query(AssertSqlSafe(sql)), records), keys);
    if let Err(error) = query.execute(&mut *conn).await {
        // Nothing to roll back if BEGIN itself failed; the original error is what matters.
        let _ = conn.execute("ROLLBACK").await;
        return Err(error);
    }
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn records_sql(conn: &AnyConnection, rows: usize, on_conflict: &str) -> String {
    format!(
        "INSERT INTO audit_records ({RECORD_COLUMNS}) VALUES {}{on_conflict}",
        db::value_rows(conn, rows, RECORD_COLUMN_COUNT)
    )
}

fn keys_sql(conn: &AnyConnection, rows: usize, on_conflict: &str) -> String {
    format!(
        "INSERT INTO idempotency_keys (facility_code, station_id, request_id, payload_hash, \
         record_id, response, created_at) VALUES {}{on_conflict}",
        db::value_rows(conn, rows, 7)
    )
}

fn bind_records<'q>(mut query: AnyQuery<'q>, records: &'q [ChainedRecord]) -> AnyQuery<'q> {
    for r in records {
        let e = &r.entry;
        query = query
            .bind(&r.writer_id)
            .bind(r.seq)
            .bind(&e.record_id)
            .bind(e.kind.as_str())
            .bind(e.recorded_at)
            .bind(&e.request_id)
            .bind(&e.facility_code)
            .bind(&e.station_id)
            .bind(&e.operator_hash)
            .bind(&e.subject_kind)
            .bind(&e.subject_hash)
            .bind(&e.subject_sealed)
            .bind(i64::from(e.result))
            .bind(&e.source_code)
            .bind(i64::from(e.error_code))
            .bind(&e.detail)
            .bind(i64::from(e.cache_status))
            .bind(i64::from(e.evidence.method))
            .bind(i64::from(e.evidence.passive_authentication))
            .bind(i64::from(e.evidence.chip_authentication))
            .bind(i64::from(e.evidence.active_authentication))
            .bind(&e.evidence.document_signer_issuer)
            .bind(e.latency_micros)
            .bind(&r.prev_hash)
            .bind(&r.record_hash)
            .bind(i64::from(e.evidence.presence));
    }
    query
}

fn bind_keys<'q>(mut query: AnyQuery<'q>, keys: &'q [IdempotencyRow]) -> AnyQuery<'q> {
    for k in keys {
        query = query
            .bind(&k.facility_code)
            .bind(&k.station_id)
            .bind(&k.request_id)
            .bind(&k.payload_hash)
            .bind(&k.record_id)
            .bind(&k.response)
            .bind(k.created_at);
    }
    query
}

/// The answers stored for any of `keys`, in one query per 256 keys (the look-ups of
/// concurrent checks, see [`super::idempotency`]). Each key is matched on all three columns,
/// the table's primary key, so every term is an index look-up.
pub async fn stored_answers(
    conn: &mut AnyConnection,
    keys: &[&AnswerKey],
) -> Result<HashMap<AnswerKey, StoredAnswer>, sqlx::Error> {
    let mut found = HashMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    for chunk in keys.chunks(256) {
        let terms: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = |n: usize| db::parameters(conn, 3 * i + n, 1);
                format!(
                    "(facility_code = {} AND station_id = {} AND request_id = {})",
                    p(1),
                    p(2),
                    p(3)
                )
            })
            .collect();
        let sql = format!(
            "SELECT facility_code, station_id, request_id, payload_hash, record_id, response \
             FROM idempotency_keys WHERE {}",
            terms.join(" OR ")
        );
        // Built from constants and placeholders only; values are bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (facility, station, request) in chunk.iter().copied() {
            query = query.bind(facility).bind(station).bind(request);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.insert(
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?),
                StoredAnswer {
                    payload_hash: row.try_get(3)?,
                    record_id: row.try_get(4)?,
                    response: row.try_get(5)?,
                },
            );
        }
    }
    Ok(found)
}

/// Inserts a signed checkpoint; false if one of that number is already there. That one is the
/// writer's own earlier attempt, given up on after the store timeout yet committed once the
/// store answered: a true statement about the chain too, kept, and the writer signs the next
/// number instead.
pub async fn insert_checkpoint(
    conn: &mut AnyConnection,
    c: &Checkpoint,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO audit_checkpoints (writer_id, number, seq, record_hash, signed_at, closing, \
         key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&c.writer_id)
    .bind(c.number)
    .bind(c.seq)
    .bind(&c.record_hash)
    .bind(c.signed_at)
    .bind(i64::from(c.closing))
    .bind(&c.key_id)
    .bind(&c.signature)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn checkpoints(pool: &AnyPool, writer_id: &str) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT writer_id, number, seq, record_hash, signed_at, closing, key_id, signature \
         FROM audit_checkpoints WHERE writer_id = $1 ORDER BY number",
    )
    .bind(writer_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                writer_id: r.try_get(0)?,
                number: r.try_get(1)?,
                seq: r.try_get(2)?,
                record_hash: r.try_get(3)?,
                signed_at: r.try_get(4)?,
                closing: r.try_get::<i64, _>(5)? != 0,
                key_id: r.try_get(6)?,
                signature: r.try_get(7)?,
            })
        })
        .collect()
}

/// Every writer that ever registered, and every writer that has records or checkpoints (an
/// attacker deleting a writer's registration must not hide its chain).
pub async fn writers(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT writer_id FROM audit_writers UNION SELECT DISTINCT writer_id FROM audit_records \
         UNION SELECT DISTINCT writer_id FROM audit_checkpoints ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// A writer's records from `from_seq` on, in chain order, at most `limit`.
pub async fn chain_segment(
    pool: &AnyPool,
    writer_id: &str,
    from_seq: i64,
    limit: i64,
) -> Result<Vec<ChainedRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM audit_records WHERE writer_id = $1 AND seq >= $2 \
         ORDER BY seq LIMIT $3"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(writer_id)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// The first and last sequence numbers of a writer's records inside a time range.
pub async fn seq_range(
    pool: &AnyPool,
    writer_id: &str,
    from: i64,
    to: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MIN(seq), MAX(seq) FROM audit_records \
         WHERE writer_id = $1 AND recorded_at >= $2 AND recorded_at < $3",
    )
    .bind(writer_id)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    Ok(row
        .try_get::<Option<i64>, _>(0)?
        .zip(row.try_get::<Option<i64>, _>(1)?))
}

/// Filters of an auditor's query. Identifiers come keyed-hashed, once per pseudonym key (a
/// record matches any of them), so records written before a key rotation are found.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub from: i64,
    pub to: i64,
    pub facility_code: Option<String>,
    pub station_id: Option<String>,
    pub operator_hashes: Vec<String>,
    pub subject_hashes: Vec<String>,
    pub results: Vec<i32>,
}

/// Where a page ended: records are ordered by (recorded_at, writer_id, seq).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub recorded_at: i64,
    pub writer_id: String,
    pub seq: i64,
}

pub async fn query(
    pool: &AnyPool,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ChainedRecord>, sqlx::Error> {
    let mut conditions = vec![
        "recorded_at >= $1".to_owned(),
        "recorded_at < $2".to_owned(),
    ];
    let mut texts: Vec<&str> = Vec::new();
    for (column, values) in [
        ("facility_code", filter.facility_code.as_slice()),
        ("station_id", filter.station_id.as_slice()),
        ("operator_hash", filter.operator_hashes.as_slice()),
        ("subject_hash", filter.subject_hashes.as_slice()),
    ] {
        if values.is_empty() {
            continue;
        }
        let first = texts.len() + 3;
        texts.extend(values.iter().map(String::as_str));
        let list: Vec<String> = (first..first + values.len())
            .map(|n| format!("${n}"))
            .collect();
        conditions.push(format!("{column} IN ({})", list.join(", ")));
    }
    let mut next = texts.len() + 3;
    if !filter.results.is_empty() {
        let list: Vec<String> = filter.results.iter().map(|r| r.to_string()).collect();
        // Result codes are integers from a closed enum, safe to inline.
        conditions.push(format!("result IN ({})", list.join(", ")));
    }
    if after.is_some() {
        conditions.push(format!(
            "(recorded_at > ${a} OR (recorded_at = ${a} AND (writer_id > ${b} OR (writer_id = ${b} AND seq > ${c}))))",
            a = next,
            b = next + 1,
            c = next + 2
        ));
        next += 3;
    }
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM audit_records WHERE {} \
         ORDER BY recorded_at, writer_id, seq LIMIT ${next}",
        conditions.join(" AND ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.from)
        .bind(filter.to);
    for text in texts {
        q = q.bind(text);
    }
    if let Some(c) = after {
        q = q.bind(c.recorded_at).bind(c.writer_id.clone()).bind(c.seq);
    }
    let rows = q.bind(limit).fetch_all(pool).await?;
    rows.iter().map(record_from_row).collect()
}

fn record_from_row(r: &AnyRow) -> Result<ChainedRecord, sqlx::Error> {
    let int = |i: usize| -> Result<i32, sqlx::Error> {
        let v: i64 = r.try_get(i)?;
        i32::try_from(v).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let flag = |i: usize| -> Result<bool, sqlx::Error> { Ok(r.try_get::<i64, _>(i)? != 0) };
    let kind: String = r.try_get(3)?;
    let kind = EventKind::parse(&kind)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown audit event kind {kind:?}").into()))?;
    Ok(ChainedRecord {
        writer_id: r.try_get(0)?,
        seq: r.try_get(1)?,
        entry: AuditEntry {
            record_id: r.try_get(2)?,
            kind,
            recorded_at: r.try_get(4)?,
            request_id: r.try_get(5)?,
            facility_code: r.try_get(6)?,
            station_id: r.try_get(7)?,
            operator_hash: r.try_get(8)?,
            subject_kind: r.try_get(9)?,
            subject_hash: r.try_get(10)?,
            subject_sealed: r.try_get(11)?,
            result: int(12)?,
            source_code: r.try_get(13)?,
            error_code: int(14)?,
            detail: r.try_get(15)?,
            cache_status: int(16)?,
            evidence: Evidence {
                method: int(17)?,
                passive_authentication: flag(18)?,
                chip_authentication: flag(19)?,
                active_authentication: flag(20)?,
                document_signer_issuer: r.try_get(21)?,
                presence: int(25)?,
            },
            latency_micros: r.try_get(22)?,
        },
        prev_hash: r.try_get(23)?,
        record_hash: r.try_get(24)?,
    })
}

/// The last record of a writer's chain: (seq, record_hash).
pub async fn chain_head(
    pool: &AnyPool,
    writer_id: &str,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT seq, record_hash FROM audit_records WHERE writer_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(writer_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stored_answers_round_trip_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.sqlite").display());
        let pool = db::connect(&url, 1, db::Schema::Audit).await.unwrap();
        let response: Vec<u8> = (0..=255u8).chain([0, 0, 1]).collect();
        let key = IdempotencyRow {
            facility_code: "01821".into(),
            station_id: "s".into(),
            request_id: "r".into(),
            payload_hash: "h".into(),
            record_id: "r-1".into(),
            response: response.clone(),
            created_at: 1,
        };
        let mut conn = pool.acquire().await.unwrap();
        insert_group(&mut conn, &[], &[key]).await.unwrap();
        let key = ("01821".to_owned(), "s".to_owned(), "r".to_owned());
        let stored = stored_answers(&mut conn, &[&key]).await.unwrap();
        assert_eq!(stored[&key].response, response);
    }

    /// A group that fails part-way leaves none of its rows, and the connection can commit the
    /// next group: a transaction left open would refuse its BEGIN.
    #[tokio::test]
    async fn a_failed_group_leaves_nothing_and_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.sqlite").display());
        let pool = db::connect(&url, 1, db::Schema::Audit).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let record = |seq: i64| ChainedRecord {
            writer_id: "w".into(),
            seq,
            entry: AuditEntry {
                record_id: format!("r-{seq}"),
                ..Default::default()
            },
            prev_hash: String::new(),
            record_hash: String::new(),
        };
        let key = |request: &str| IdempotencyRow {
            facility_code: "01821".into(),
            station_id: "s".into(),
            request_id: request.into(),
            payload_hash: "h".into(),
            record_id: format!("r-{request}"),
            response: vec![1],
            created_at: 1,
        };
        async fn count(conn: &mut AnyConnection) -> i64 {
            let row = sqlx::query("SELECT COUNT(*) FROM audit_records")
                .fetch_one(conn)
                .await
                .unwrap();
            row.get::<i64, _>(0)
        }
        insert_group(&mut conn, &[record(1)], &[key("a")])
            .await
            .unwrap();
        // The record is new; the key "a" breaks the primary key, after the record went in.
        insert_group(&mut conn, &[record(2)], &[key("a")])
            .await
            .unwrap_err();
        assert_eq!(
            count(&mut conn).await,
            1,
            "the failed group's record stayed"
        );
        insert_group(&mut conn, &[record(2)], &[key("b")])
            .await
            .unwrap();
        assert_eq!(count(&mut conn).await, 2);
    }
}
