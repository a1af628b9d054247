//! The audit log through its real interfaces: the AuditService, and the CLI run as a separate
//! process against the database after tampering.

use std::path::Path;
use std::process::Command;

use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::check_coverage_request::Subject;
use bhyt_proto::v1::{LookupRecord, QueryLookupsRequest, ResultCode, query_lookups_request};
use bhyt_verify::audit::chain;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::registry::generate::Kind;
use sqlx::{AnyPool, Row};
use tonic::transport::Channel;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};

/// Every record there is.
pub fn all_time() -> QueryLookupsRequest {
    QueryLookupsRequest {
        from: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: 4_000_000_000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// Every record matching `query`, following the page tokens.
pub async fn query(backend: &TestBackend, query: QueryLookupsRequest) -> Vec<LookupRecord> {
    query_as(&mut backend.audit().await, query).await
}

/// Every record, through an already connected client (e.g. with an auditor's certificate).
pub async fn query_with(client: &mut AuditServiceClient<Channel>) -> Vec<LookupRecord> {
    query_as(client, all_time()).await
}

async fn query_as(
    client: &mut AuditServiceClient<Channel>,
    query: QueryLookupsRequest,
) -> Vec<LookupRecord> {
    let mut stream = client.query_lookups(query).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        out.extend(page.records);
    }
    out
}

/// The records of checks, answered or refused (each query also leaves an `audit_read` record,
/// left out here).
pub async fn all_records(backend: &TestBackend) -> Vec<LookupRecord> {
    let mut records = query(backend, all_time()).await;
    records.retain(|r| r.kind == "check" || r.kind == "refusal");
    records
}

#[tokio::test]
async fn every_answer_has_exactly_one_record_and_the_filters_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 500).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);
    let expired = first(&cards, Kind::Expired);

    let mut answers = Vec::new();
    for (i, card) in [valid, expired, valid].into_iter().enumerate() {
        let mut req = by_citizen(&format!("r{i}"), card);
        req.station_id = format!("desk-{}", i % 2);
        answers.push(
            client
                .check_coverage(req.clone())
                .await
                .unwrap()
                .into_inner(),
        );
        // A retry writes nothing new.
        client.check_coverage(req).await.unwrap();
    }
    let by_card = fixtures::request(
        "by-card",
        Subject::CardNumber(valid.social_insurance_number.clone()),
        &valid.full_name,
        fixtures::birth_of(valid),
    );
    answers.push(client.check_coverage(by_card).await.unwrap().into_inner());

    let records = all_records(&backend).await;
    assert_eq!(records.len(), answers.len());
    for answer in &answers {
        assert_eq!(
            records
                .iter()
                .filter(|r| r.record_id == answer.audit_record_id)
                .count(),
            1
        );
    }
    // Identifiers are keyed hashes in every field but `subject`, which is unsealed for the
    // auditor: the ID for checks by ID, the card number for checks by card.
    let id = valid.citizen_id.as_deref().unwrap();
    for r in &records {
        let hashed = LookupRecord {
            subject: String::new(),
            ..r.clone()
        };
        assert!(!format!("{hashed:?}").contains(id));
    }
    assert_eq!(records.iter().filter(|r| r.subject == id).count(), 2);

    let count = async |q: QueryLookupsRequest| {
        query(&backend, q)
            .await
            .iter()
            .filter(|r| r.kind == "check")
            .count()
    };
    let citizen = |id: &str| Some(query_lookups_request::Subject::CitizenId(id.into()));
    assert_eq!(
        count(QueryLookupsRequest {
            subject: citizen(id),
            ..all_time()
        })
        .await,
        2
    );
    // By either form of the card number: the same person's records by card.
    let card = |n: &str| Some(query_lookups_request::Subject::CardNumber(n.into()));
    assert_eq!(
        count(QueryLookupsRequest {
            subject: card(&valid.card_number),
            ..all_time()
        })
        .await,
        1
    );
    // desk-1: the second check, and the check by card (the fixtures' default station).
    assert_eq!(
        count(QueryLookupsRequest {
            station_id: "desk-1".into(),
            ..all_time()
        })
        .await,
        2
    );
    assert_eq!(
        count(QueryLookupsRequest {
            facility_code: fixtures::FACILITY.into(),
            ..all_time()
        })
        .await,
        4
    );
    assert_eq!(
        count(QueryLookupsRequest {
            facility_code: "79001".into(),
            ..all_time()
        })
        .await,
        0
    );
    assert_eq!(
        count(QueryLookupsRequest {
            operator_citizen_id: fixtures::OPERATOR_ID.into(),
            ..all_time()
        })
        .await,
        4
    );
    assert_eq!(
        count(QueryLookupsRequest {
            operator_citizen_id: "001099012345".into(),
            ..all_time()
        })
        .await,
        0
    );
    let expired_only = QueryLookupsRequest {
        results: vec![ResultCode::CardExpired as i32],
        ..all_time()
    };
    assert_eq!(count(expired_only).await, 1);
    let first_at = records[0].recorded_at.unwrap();
    let before = QueryLookupsRequest {
        to: Some(first_at),
        ..all_time()
    };
    assert_eq!(count(before).await, 0);

    // Pages of two, resumed with the token: all four, in order, none twice. (Only checks:
    // every query adds an audit_read record of its own.)
    let checks_only = || QueryLookupsRequest {
        results: vec![ResultCode::CardValid as i32, ResultCode::CardExpired as i32],
        ..all_time()
    };
    let mut client = backend.audit().await;
    let mut pages = client
        .query_lookups(QueryLookupsRequest {
            page_size: 2,
            max_records: 2,
            ..checks_only()
        })
        .await
        .unwrap()
        .into_inner();
    let page = pages.message().await.unwrap().unwrap();
    assert_eq!(page.records.len(), 2);
    assert!(
        pages.message().await.unwrap().is_none(),
        "max_records ends the stream"
    );
    let rest = query(
        &backend,
        QueryLookupsRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..checks_only()
        },
    )
    .await;
    let ids: Vec<_> = page
        .records
        .iter()
        .chain(&rest)
        .map(|r| r.record_id.clone())
        .collect();
    assert_eq!(
        ids,
        records
            .iter()
            .map(|r| r.record_id.clone())
            .collect::<Vec<_>>()
    );

    // Every record so far (this query's own read included), and the integrity check's read.
    let total = query(&backend, all_time()).await.len() as u64;
    let integrity = backend.integrity().await;
    assert!(integrity.intact, "{:?}", integrity.problems);
    assert_eq!(integrity.records_checked, total + 1);
    backend.stop().await;
}

/// Runs `bhyt-verify audit verify` as its own process on `data_dir`; (exit ok, output).
fn cli_verify(data_dir: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .args(["audit", "verify"])
        .env("BHYT_DATA_DIR", data_dir)
        .env("BHYT_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")
        .output()
        .expect("the CLI runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

async fn audit_db(data_dir: &Path) -> AnyPool {
    let url = format!("sqlite://{}", data_dir.join("audit.sqlite").display());
    db::connect(&url, 1, Schema::Audit).await.unwrap()
}

/// A data directory holding an audit log of six checks, written by a backend that has stopped
/// (its closing checkpoint covers record 6), and verified intact by the CLI.
async fn stopped_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);
    for i in 0..6 {
        client
            .check_coverage(by_citizen(&format!("t{i}"), valid))
            .await
            .unwrap();
    }
    backend.stop().await;
    let (ok, out) = cli_verify(dir.path());
    assert!(
        ok && out.contains("6 records"),
        "an untouched log verifies: {out}"
    );
    dir
}

/// Tampers with a stopped log's database, then runs the CLI on it.
async fn tamper(statements: &[&str], recompute_hashes: bool) -> (bool, String) {
    tamper_after(std::time::Duration::ZERO, statements, recompute_hashes).await
}

async fn tamper_after(
    wait: std::time::Duration,
    statements: &[&str],
    recompute_hashes: bool,
) -> (bool, String) {
    let dir = stopped_log().await;
    tokio::time::sleep(wait).await;
    let pool = audit_db(dir.path()).await;
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    if recompute_hashes {
        rechain(&pool).await;
    }
    pool.close().await;
    cli_verify(dir.path())
}

#[tokio::test]
async fn a_rewritten_record_is_detected_even_with_hashes_recomputed() {
    let rewrite = format!(
        "UPDATE audit_records SET result = {} WHERE seq = 3",
        ResultCode::CardRevoked as i32
    );
    let (ok, out) = tamper(&[&rewrite], false).await;
    assert!(!ok && out.contains("hash_mismatch"), "{out}");
    let (ok, out) = tamper(&[&rewrite], true).await;
    assert!(!ok && out.contains("checkpoint_mismatch"), "{out}");
}

#[tokio::test]
async fn a_deleted_middle_record_is_detected() {
    let (ok, out) = tamper(&["DELETE FROM audit_records WHERE seq = 3"], false).await;
    assert!(!ok && out.contains("gap"), "{out}");
}

#[tokio::test]
async fn deleted_newest_records_are_detected() {
    let (ok, out) = tamper(&["DELETE FROM audit_records WHERE seq >= 5"], false).await;
    assert!(!ok && out.contains("tail_missing"), "{out}");
    // ... also when the checkpoints naming them are deleted too: then the chain looks like that
    // of a writer still running until no checkpoint has come for three intervals (3 s here),
    // and from then on like an unclosed chain.
    let (ok, out) = tamper_after(
        std::time::Duration::from_millis(3500),
        &[
            "DELETE FROM audit_records WHERE seq >= 5",
            "DELETE FROM audit_checkpoints WHERE seq >= 5",
        ],
        false,
    )
    .await;
    assert!(
        !ok && (out.contains("unclosed") || out.contains("checkpoint_missing")),
        "{out}"
    );
}

/// Recomputes every record's links and hashes from the stored fields, as someone who knows the
/// algorithm but not the checkpoint key would.
async fn rechain(pool: &AnyPool) {
    let writer: String = sqlx::query("SELECT writer_id FROM audit_records LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    let records = bhyt_verify::audit::store::chain_segment(pool, &writer, 1, 1000)
        .await
        .unwrap();
    let mut prev = chain::genesis_hash(&writer);
    for r in records {
        let hash = chain::record_hash(&writer, r.seq, &prev, &r.entry);
        sqlx::query("UPDATE audit_records SET prev_hash = $1, record_hash = $2 WHERE writer_id = $3 AND seq = $4")
            .bind(&prev)
            .bind(&hash)
            .bind(&writer)
            .bind(r.seq)
            .execute(pool)
            .await
            .unwrap();
        prev = hash;
    }
}

#[tokio::test]
async fn replicas_share_one_postgresql_audit_log_each_with_its_chain() {
    let pg = crate::support::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.registry.url = pg.database("replica_registry").await;
    config.audit.url = pg.database("replica_audit").await;
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid);
    // Two processes' worth of backends, sharing the data directory's keys and one database.
    let (a, b) = (
        TestBackend::start(config.clone()).await,
        TestBackend::start(config.clone()).await,
    );
    let (mut ca, mut cb) = (a.verification().await, b.verification().await);
    for i in 0..5 {
        ca.check_coverage(by_citizen(&format!("a{i}"), valid))
            .await
            .unwrap();
        cb.check_coverage(by_citizen(&format!("b{i}"), valid))
            .await
            .unwrap();
    }
    let report = a.integrity().await;
    assert!(report.intact, "{:?}", report.problems);
    // Ten checks, and the integrity check's own audit_read record.
    assert_eq!((report.writers_checked, report.records_checked), (2, 11));
    a.stop().await;
    b.stop().await;
}
