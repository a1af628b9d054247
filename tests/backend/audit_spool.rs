//! The audit store down mid-load: checks keep being answered, their records wait in the local
//! spool (shown by the metric), and once PostgreSQL is back every answered check has exactly one
//! record and every chain verifies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bhyt_proto::v1::VerifyIntegrityRequest;
use bhyt_verify::registry::generate::Kind;
use sqlx::Row;
use tokio::sync::Mutex;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};
use crate::support::Postgres;

/// Fails when the spool is off (the outage's checks are refused: `answered_during == 0` and the
/// spool metric stays 0), when replay loses records (`lost > 0`) or doubles them (a record id
/// counted twice), or when it breaks a chain (integrity problems).
#[tokio::test]
async fn a_stopped_audit_store_is_spooled_and_replayed_with_nothing_lost_or_doubled() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let url = pg.database("audit_spool").await;
    config.audit.url = url.clone();
    config.audit.commit_timeout_ms = 3000;
    // One station sends the whole load here: its rate limit is not under test.
    config.abuse.station_rate_per_sec = 1e6;
    config.abuse.station_burst = 1e6;
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid).clone();
    let backend = TestBackend::start(config).await;

    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    // record id -> answered during the outage; and counts by gRPC code.
    let answered = Arc::new(Mutex::new(HashMap::<String, bool>::new()));
    let codes = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let mut client = backend.verification().await;
        let (stop, outage, answered, codes, valid) = (
            stop.clone(),
            outage.clone(),
            answered.clone(),
            codes.clone(),
            valid.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let during = outage.load(Ordering::Relaxed);
                let mut request =
                    tonic::Request::new(by_citizen(&format!("w{worker}-{n}"), &valid));
                request.set_timeout(Duration::from_secs(20));
                // Paced, so the outage's records fill the spool slowly enough to watch.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let code = match client.check_coverage(request).await {
                    Ok(answer) => {
                        let id = answer.into_inner().audit_record_id;
                        assert!(answered.lock().await.insert(id, during).is_none());
                        "Ok".to_owned()
                    }
                    Err(status) => format!("{:?}", status.code()),
                };
                *codes.lock().await.entry(code).or_default() += 1;
            }
            n
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop();
    outage.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut spooled = 0.0;
    while spooled < 20.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        spooled = backend.metric("bhyt_audit_spool_records", &[]).await;
    }
    let spool_bytes = backend.metric("bhyt_audit_spool_bytes", &[]).await;
    assert!(
        spooled > 0.0,
        "the spool is shown non-empty during the outage; codes so far {:?}; {:?}",
        codes.lock().await,
        backend
            .http_get("/metrics")
            .await
            .1
            .lines()
            .filter(|l| l.contains("spool") || l.contains("in_flight"))
            .collect::<Vec<_>>()
    );
    assert!(spool_bytes > 0.0);
    pg.restart();
    outage.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while backend.metric("bhyt_audit_spool_records", &[]).await > 0.0 {
        assert!(Instant::now() < deadline, "the spool is replayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for task in load {
        sent += task.await.unwrap();
    }
    let report = backend
        .audit()
        .await
        .verify_integrity(VerifyIntegrityRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(report.intact, "{:?}", report.problems);
    backend.stop().await;

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT record_id, COUNT(*) FROM audit_records GROUP BY record_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let found: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let answered = answered.lock().await;
    let lost = answered
        .keys()
        .filter(|id| !found.contains_key(*id))
        .count();
    let doubled = found.values().filter(|n| **n > 1).count();
    let during = answered.values().filter(|d| **d).count();
    eprintln!(
        "audit spool outage: sent {sent}, answered {} ({during} during the outage), by code {:?}, \
         spool peak seen {spooled} records / {spool_bytes} bytes, records found {}, lost {lost}, doubled {doubled}",
        answered.len(),
        codes.lock().await,
        found.len()
    );
    assert_eq!(lost, 0, "every answered check has its record");
    assert_eq!(doubled, 0, "no record twice");
    assert!(during > 0, "checks were answered while the store was down");
}
