//! The audit store down mid-load: checks keep being answered, their records wait in the local
//! spool (shown by the metric), and once PostgreSQL is back every answered check has exactly one
//! record and every chain verifies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    let (status, health) = backend.http_get("/health").await;
    assert_eq!(
        status, 200,
        "still answering: a load balancer must keep it: {health}"
    );
    assert!(health.contains("local spool"), "{health}");
    pg.restart();
    outage.store(false, Ordering::Relaxed);
    wait_until_replayed(&backend, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for task in load {
        sent += task.await.unwrap();
    }
    let report = backend.integrity().await;
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

/// A store that hangs (PostgreSQL frozen: connections open, nothing answered) while the writer
/// is idle, so its next signed checkpoint meets the hang first. Fails if the checkpoint waits
/// for the store: it then holds the writer, and every later check is refused UNAVAILABLE
/// ("commit timed out") instead of being answered from the spool; or if the spooled records
/// are not all in the store, with the chain intact, once it answers again.
#[tokio::test]
async fn a_hung_audit_store_does_not_hold_the_writer_at_a_checkpoint() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.audit.url = pg.database("audit_hung").await;
    // Store timeout 1 s; a checkpoint every second.
    config.audit.commit_timeout_ms = 2000;
    config.audit.checkpoint_interval_secs = 1;
    let cards = fixtures::seed(&config, 20).await;
    let valid = first(&cards, Kind::Valid).clone();
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    client
        .check_coverage(by_citizen("before-the-hang", &valid))
        .await
        .unwrap();

    pg.freeze();
    // Idle past a checkpoint tick and past that checkpoint's store timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut answered = Vec::new();
    for n in 0..3 {
        let mut request = tonic::Request::new(by_citizen(&format!("during-{n}"), &valid));
        request.set_timeout(Duration::from_secs(15));
        let outcome = client.check_coverage(request).await;
        answered.push(outcome.map(|a| a.into_inner().audit_record_id));
    }
    let spooled = backend.metric("bhyt_audit_spool_records", &[]).await;
    pg.thaw();
    let answered: Vec<String> = answered
        .into_iter()
        .map(|a| a.expect("answered from the spool while the store hangs"))
        .collect();
    assert_eq!(spooled, 3.0, "the hang's records waited in the spool");

    wait_until_replayed(&backend, Duration::from_secs(30)).await;
    // The writer signs its head once the spool is replayed; until then its last checkpoint is
    // from before the hang, older than the integrity check's quiet allowance.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = backend.integrity().await;
        if report.intact {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", report.problems);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = sqlx::PgPool::connect(&pg.url("audit_hung")).await.unwrap();
    for id in &answered {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_records WHERE record_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "record {id} is in the store once");
    }
    pool.close().await;
    backend.stop().await;
}

/// Waits until the backend's spool is empty, failing after `within`.
async fn wait_until_replayed(backend: &TestBackend, within: Duration) {
    let deadline = Instant::now() + within;
    while backend.metric("bhyt_audit_spool_records", &[]).await > 0.0 {
        assert!(Instant::now() < deadline, "the spool is replayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A backend process serving from `dir` (gRPC, operator port).
fn spawn_backend(dir: &std::path::Path, audit_url: &str) -> (std::process::Child, u16, u16) {
    let (port, http) = (crate::support::free_port(), crate::support::free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("serve")
        .env("BHYT_DATA_DIR", dir)
        .env("BHYT_LISTEN", format!("127.0.0.1:{port}"))
        .env("BHYT_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("BHYT_TLS__ENABLED", "false")
        .env("BHYT_TLS__DEV_PLAINTEXT", "true")
        .env("BHYT_AUDIT__URL", audit_url)
        .env("BHYT_AUDIT__COMMIT_TIMEOUT_MS", "3000")
        .env("BHYT_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")
        .env("BHYT_ABUSE__STATION_RATE_PER_SEC", "1000000")
        .env("BHYT_ABUSE__STATION_BURST", "1000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_for("the backend", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port, http)
}

async fn spool_records(http: u16) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("bhyt_audit_spool_records "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// SIGKILL with records only in the spool: fails if the restarted backend does not replay the
/// dead process's spool (`lost > 0`) or replays it twice (`doubled > 0`).
#[tokio::test]
async fn a_backend_killed_with_a_full_spool_loses_and_doubles_nothing() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let url = pg.database("audit_spool_kill").await;
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid).clone();
    let (mut child, port, http) = spawn_backend(dir.path(), &url);
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        bhyt_proto::v1::verification_service_client::VerificationServiceClient::new(channel);
    let mut answered = Vec::new();
    let mut codes = HashMap::<String, u64>::new();
    let mut sent = 0;
    let mut check = async |n: u32, answered: &mut Vec<String>, codes: &mut HashMap<String, u64>| {
        let mut request = tonic::Request::new(by_citizen(&format!("k{n}"), &valid));
        request.set_timeout(Duration::from_secs(20));
        match client.check_coverage(request).await {
            Ok(a) => {
                answered.push(a.into_inner().audit_record_id);
                *codes.entry("Ok".into()).or_default() += 1;
            }
            Err(s) => *codes.entry(format!("{:?}", s.code())).or_default() += 1,
        }
    };
    for n in 0..20 {
        sent += 1;
        check(n, &mut answered, &mut codes).await;
    }
    pg.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 100;
    while spool_records(http).await < 5.0 {
        assert!(Instant::now() < deadline, "the spool fills");
        sent += 1;
        n += 1;
        check(n, &mut answered, &mut codes).await;
    }
    let in_spool = spool_records(http).await;
    child.kill().unwrap();
    child.wait().unwrap();
    pg.restart();
    let (mut second, _, second_http) = spawn_backend(dir.path(), &url);
    // The start-up replay happens before serving. The ports are bound earlier (a connection is
    // accepted by the kernel at once), so wait for an answer from the operator endpoint.
    spool_records(second_http).await;
    second.kill().unwrap();
    second.wait().unwrap();

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT record_id, COUNT(*) FROM audit_records GROUP BY record_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let found: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let lost = answered
        .iter()
        .filter(|id| !found.contains_key(*id))
        .count();
    let doubled = found.values().filter(|n| **n > 1).count();
    eprintln!(
        "audit spool SIGKILL: sent {sent}, answered {}, by code {codes:?}, in the spool at the kill \
         {in_spool}, records found {}, lost {lost}, doubled {doubled}",
        answered.len(),
        found.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(doubled, 0);
    assert!(in_spool >= 5.0);
}
