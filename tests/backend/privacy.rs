//! The personal-data scan: the real binary, at its most verbose log level, with Redis as its cache
//! and its audit log in PostgreSQL (one run) and in SQLite (another), serves a desk's day of
//! checks and audit reads about planted people. Then everything it left behind is searched for
//! their identifiers and names in every form a leak could take: its logs, its `/metrics`, the
//! error messages clients saw, a Redis dump, and the PostgreSQL and SQLite files (WAL included).
//! Finally leaks are planted in each of those places and the same scan must find every one.
//!
//! Left out, because holding identities is their job: the registry database (the source of
//! truth) and the answers' bodies (the desk asked about that person).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::check_coverage_request::Subject;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{VerifyIntegrityRequest, query_lookups_request};
use bhyt_verify::coverage::CardRecord;
use bhyt_verify::registry::generate::Kind;
use sqlx::Connection;
use tonic::transport::Channel;
use unicode_normalization::UnicodeNormalization;

use crate::app;
use crate::audit_log::all_time;
use crate::fixtures::{self, OPERATOR_ID, by_citizen, first};
use crate::support::personal_data::{Finding, Scanner, without_diacritics};
use crate::support::{Postgres, RedisServer, free_port, temp_dir, wait_for};

const OPERATOR_NAME: &str = "Lê Thị Thu";
/// A name the registry does not hold, typed at the desk: it must not surface either.
const TYPED_NAME: &str = "Thân Thị Riêngtư";

#[tokio::test]
async fn personal_data_scan_finds_nothing_and_finds_planted_leaks() {
    let dir = temp_dir();
    let mut config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let people: Vec<&CardRecord> = [Kind::Valid, Kind::Expired, Kind::ReissuedNew]
        .into_iter()
        .map(|kind| first(&cards, kind))
        .collect();
    let redis = RedisServer::start();
    let postgres = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    config.cache.redis_url = redis.url();

    let mut scanner = Scanner::new();
    for (n, card) in people.iter().enumerate() {
        let id = card.citizen_id.as_deref().unwrap();
        scanner.identifier(&format!("person {n} citizen ID"), id);
        // The CCCD's document number (DG1) is the ID's last nine digits.
        scanner.identifier(&format!("person {n} document number"), &id[3..]);
        scanner.identifier(&format!("person {n} card number"), &card.card_number);
        scanner.identifier(
            &format!("person {n} social-insurance number"),
            &card.social_insurance_number,
        );
        scanner.name(&format!("person {n} name"), &card.full_name);
    }
    scanner.identifier("unregistered citizen ID", &fixtures::unregistered_id());
    scanner.identifier("operator's citizen ID", OPERATOR_ID);
    scanner.name("operator's name", OPERATOR_NAME);
    scanner.name("typed name", TYPED_NAME);

    // Two runs of the real binary: the audit log in PostgreSQL, then in SQLite.
    let audit_pg = postgres.database("audit").await;
    let mut errors = Vec::new();
    for (run, audit_url) in [("pg", audit_pg.as_str()), ("sqlite", "")] {
        let server = Server::start(dir.path(), run, &config.cache.redis_url, audit_url);
        let metrics = desk_day(&server, &people, &mut errors).await;
        std::fs::write(dir.path().join(format!("metrics-{run}.txt")), metrics).unwrap();
        server.stop().await;
    }
    assert!(errors.len() >= 3, "the day had refusals: {errors:?}");
    std::fs::write(dir.path().join("errors.txt"), errors.join("\n")).unwrap();

    let places = Places {
        test_dir: dir.path().to_path_buf(),
        redis: redis.save_uncompressed(),
        postgres: postgres.dir().to_path_buf(),
    };
    postgres_checkpoint(&audit_pg).await;
    let log = std::fs::read_to_string(dir.path().join("server-pg.log")).unwrap();
    assert!(
        log.len() > 10_000,
        "trace logging was on: {} bytes",
        log.len()
    );

    let (files, findings) = places.scan(&scanner);
    assert!(files >= 20, "the scan read the artefacts: {files} files");
    assert_eq!(findings, [], "personal data left behind");

    // The scan can fail: plant one leak in each place, each in another form, and find them all.
    let person = people[0];
    let id = person.citizen_id.as_deref().unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("server-sqlite.log"))
        .unwrap();
    writeln!(
        log,
        "DEBUG check name={}",
        person.full_name.nfd().collect::<String>()
    )
    .unwrap();
    let mut redis_conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg("planted")
        .arg(format!("x{}", base64_url(format!("ab{id}").as_bytes())))
        .query::<()>(&mut redis_conn)
        .unwrap();
    let redis_dump = redis.save_uncompressed();
    let mut pg = sqlx::PgConnection::connect(&audit_pg).await.unwrap();
    sqlx::query("CREATE TABLE planted (note text)")
        .execute(&mut pg)
        .await
        .unwrap();
    sqlx::query("INSERT INTO planted VALUES ($1)")
        .bind(hex::encode_upper(&id.as_bytes()[3..]))
        .execute(&mut pg)
        .await
        .unwrap();
    drop(pg);
    postgres_checkpoint(&audit_pg).await;
    let mut sqlite = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("audit.sqlite").display()
    ))
    .await
    .unwrap();
    sqlx::query("CREATE TABLE planted (note text)")
        .execute(&mut sqlite)
        .await
        .unwrap();
    sqlx::query("INSERT INTO planted VALUES (?)")
        .bind(format!("card {}", person.card_number))
        .execute(&mut sqlite)
        .await
        .unwrap();
    sqlite.close().await.unwrap();
    std::fs::write(
        dir.path().join("errors.txt"),
        format!(
            "{}\nname Nguyen: {}",
            errors.join("\n"),
            without_diacritics(OPERATOR_NAME)
        ),
    )
    .unwrap();

    let postgres_dir = places.postgres.display().to_string();
    let (_, findings) = Places {
        redis: redis_dump,
        ..places
    }
    .scan(&scanner);
    for (place, form) in [
        ("server-sqlite.log", "person 0 name (NFD), as is"),
        ("dump.rdb", "person 0 citizen ID, base64url at offset 2"),
        (postgres_dir.as_str(), "person 0 document number, HEX"),
        ("audit.sqlite", "person 0 card number, as is"),
        ("errors.txt", "operator's name (no diacritics), as is"),
    ] {
        assert!(
            findings
                .iter()
                .any(|f| f.place.contains(place) && f.needle == form),
            "the planted leak ({form}) in {place} was found: {findings:#?}"
        );
    }
}

/// Where a run leaves its traces.
struct Places {
    /// Logs, captured metrics and error messages, and the backend's data directory.
    test_dir: PathBuf,
    /// Redis's RDB dump.
    redis: PathBuf,
    /// The PostgreSQL cluster's directory: data files, WAL, server log.
    postgres: PathBuf,
}

impl Places {
    fn scan(&self, scanner: &Scanner) -> (usize, Vec<Finding>) {
        let registry = |p: &Path| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("registry.sqlite"))
        };
        let (mut files, mut findings) = scanner.scan_tree(&self.test_dir, registry);
        let (pg_files, pg_findings) = scanner.scan_tree(&self.postgres, |_| false);
        files += pg_files + 1;
        findings.extend(pg_findings);
        let dump = std::fs::read(&self.redis).expect("Redis wrote its dump");
        findings.extend(scanner.scan_bytes(&self.redis.display().to_string(), &dump));
        (files, findings)
    }
}

/// The real binary, serving plain-text gRPC with trace logging into a file of the test's.
struct Server {
    child: std::process::Child,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Server {
    fn start(data_dir: &Path, run: &str, redis_url: &str, audit_url: &str) -> Self {
        let (grpc, http) = (free_port(), free_port());
        let log = std::fs::File::create(data_dir.join(format!("server-{run}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
            .arg("serve")
            .env("BHYT_DATA_DIR", data_dir)
            .env("BHYT_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("BHYT_HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("BHYT_CACHE__REDIS_URL", redis_url)
            .env("BHYT_AUDIT__URL", audit_url)
            .env("RUST_LOG", "trace")
            .env("BHYT_TLS__ENABLED", "false")
            .env("BHYT_TLS__DEV_PLAINTEXT", "true")
            // A file, not a pipe: trace output would fill a pipe nobody reads.
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the server", || {
            TcpStream::connect(("127.0.0.1", grpc)).is_ok()
        });
        Self {
            child,
            grpc: ([127, 0, 0, 1], grpc).into(),
            http: ([127, 0, 0, 1], http).into(),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// SIGTERM: a clean shutdown, so every log line and audit record is written.
    async fn stop(self) {
        let mut child = self.child;
        Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
    }
}

/// A desk's day: checks of every kind (by ID, card number and social-insurance number; valid,
/// expired, re-issued, unknown, malformed, wrong name; single and batched; a retry and a reused
/// request id), audit reads by citizen and operator, an integrity check. Returns `/metrics`;
/// collects every error message a client saw.
async fn desk_day(server: &Server, people: &[&CardRecord], errors: &mut Vec<String>) -> String {
    let mut desk = VerificationServiceClient::new(server.channel().await);
    let mut refused = |status: tonic::Status| errors.push(status.message().to_owned());
    for (n, person) in people.iter().enumerate() {
        let id = person.citizen_id.clone().unwrap();
        let mut requests = vec![by_citizen(&format!("{n}-id"), person)];
        for (tag, subject) in [
            ("card", Subject::CardNumber(person.card_number.clone())),
            (
                "si",
                Subject::CardNumber(person.social_insurance_number.clone()),
            ),
            ("bad-id", Subject::CitizenId(format!("{}9", &id[..11]))),
        ] {
            let mut request = by_citizen(&format!("{n}-{tag}"), person);
            request.subject = Some(subject);
            requests.push(request);
        }
        let mut wrong_name = by_citizen(&format!("{n}-name"), person);
        wrong_name.full_name = TYPED_NAME.into();
        requests.push(wrong_name);
        let mut bad_birth = by_citizen(&format!("{n}-birth"), person);
        bad_birth.date_of_birth.as_mut().unwrap().month = 13;
        requests.push(bad_birth);
        for request in requests {
            if let Err(status) = desk.check_coverage(request).await {
                refused(status);
            }
        }
        // A retry answers from the idempotency record; a reused id with another payload fails.
        desk.check_coverage(by_citizen(&format!("{n}-id"), person))
            .await
            .unwrap();
        let mut reused = by_citizen(&format!("{n}-id"), person);
        reused.subject = Some(Subject::CardNumber(person.card_number.clone()));
        if let Err(status) = desk.check_coverage(reused).await {
            refused(status);
        }
    }
    let unknown = fixtures::unregistered("unknown", TYPED_NAME);
    desk.check_coverage(unknown).await.unwrap();
    let batch: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(n, p)| by_citizen(&format!("batch-{n}"), p))
        .collect();
    let mut results = desk
        .check_coverage_batch(futures::stream::iter(batch))
        .await
        .unwrap()
        .into_inner();
    while let Some(item) = results.message().await.unwrap() {
        assert!(item.outcome.is_some());
    }

    let mut auditor = AuditServiceClient::new(server.channel().await);
    for person in people {
        let mut query = all_time();
        query.subject = Some(query_lookups_request::Subject::CitizenId(
            person.citizen_id.clone().unwrap(),
        ));
        let mut pages = auditor.query_lookups(query).await.unwrap().into_inner();
        let mut records = 0;
        while let Some(page) = pages.message().await.unwrap() {
            records += page.records.len();
        }
        assert!(records > 0, "the audit trail names the person's checks");
    }
    let mut by_operator = all_time();
    by_operator.operator_citizen_id = OPERATOR_ID.into();
    let _ = auditor.query_lookups(by_operator).await.unwrap();
    let mut malformed = all_time();
    malformed.operator_citizen_id = format!("{}x", &OPERATOR_ID[..11]);
    if let Err(status) = auditor.query_lookups(malformed).await {
        refused(status);
    }
    auditor
        .verify_integrity(VerifyIntegrityRequest::default())
        .await
        .unwrap();
    http_get(server.http, "/metrics")
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    response
}

/// Makes PostgreSQL write its dirty pages, so the data files hold what the WAL holds.
async fn postgres_checkpoint(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
