//! Proof of check, sealed personal data, audited audit reads, abuse limits and key rotation,
//! through the real interfaces (gRPC, the CLI, Redis, the database file).

use std::process::Command;

use bhyt_proto::v1::{QueryLookupsRequest, query_lookups_request};
use bhyt_verify::registry::generate::Kind;
use tonic::Code;

use crate::app::{self, TestBackend};
use crate::audit_log::{all_time, query};
use crate::fixtures::{self, by_citizen, first};
use crate::support;

fn cli(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .args(args)
        .env("BHYT_DATA_DIR", data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn answers_carry_a_proof_that_verifies_offline_and_breaks_when_altered() {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let valid = first(&cards, Kind::Valid);
    let answer = backend
        .verification()
        .await
        .check_coverage(by_citizen("proof", valid))
        .await
        .unwrap()
        .into_inner();
    backend.stop().await;

    let (ok, out) = cli(dir.path(), &["proof", "verify", &answer.proof_token]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&answer.audit_record_id)
            && out.contains("CARD_VALID")
            && out.contains("01821"),
        "{out}"
    );
    assert!(
        !out.contains(valid.citizen_id.as_deref().unwrap()),
        "the token names no citizen in clear"
    );

    // One byte changed in the claims: refused.
    let mut altered = answer.proof_token.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'x' { b'y' } else { b'x' };
    let (ok, out) = cli(
        dir.path(),
        &["proof", "verify", std::str::from_utf8(&altered).unwrap()],
    );
    assert!(!ok && out.contains("INVALID"), "{out}");

    // After a key rotation the old token still verifies, and queries by citizen still find
    // the records written before it.
    let (ok, out) = cli(dir.path(), &["keys", "rotate"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(dir.path(), &["proof", "verify", &answer.proof_token]);
    assert!(ok, "{out}");
    let backend = TestBackend::start(app::config(dir.path())).await;
    let again = backend
        .verification()
        .await
        .check_coverage(by_citizen("after-rotation", valid))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        again.proof_token.split('.').next(),
        answer.proof_token.split('.').next(),
        "a new signing key"
    );
    let citizen = Some(query_lookups_request::Subject::CitizenId(
        valid.citizen_id.clone().unwrap(),
    ));
    let found = query(
        &backend,
        QueryLookupsRequest {
            subject: citizen,
            ..all_time()
        },
    )
    .await;
    assert_eq!(
        found.iter().filter(|r| r.kind == "check").count(),
        2,
        "before and after the rotation"
    );
    backend.stop().await;
}

#[tokio::test]
async fn audit_reads_are_audited_and_identities_are_sealed_at_rest() {
    let redis = support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.cache.redis_url = redis.url();
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let valid = first(&cards, Kind::Valid);
    let id = valid.citizen_id.clone().unwrap();
    let mut client = backend.verification().await;
    client
        .check_coverage(by_citizen("sealed-1", valid))
        .await
        .unwrap();
    client
        .check_coverage(by_citizen("sealed-2", valid))
        .await
        .unwrap();

    // The auditor sees the identity; the read itself leaves a record.
    let records = query(&backend, all_time()).await;
    let check = records.iter().find(|r| r.kind == "check").unwrap();
    assert_eq!(check.subject, id);
    let records = query(&backend, all_time()).await;
    let reads: Vec<_> = records.iter().filter(|r| r.kind == "audit_read").collect();
    // The first query's record, and this one's own: recorded before any data left.
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|r| r.detail.starts_with("query_lookups")));

    // Redis holds neither the ID nor the name, in keys or values.
    let mut redis_bytes = Vec::new();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for key in redis.keys() {
        redis_bytes.extend_from_slice(key.as_bytes());
        let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        redis_bytes.extend_from_slice(&value);
    }
    assert!(!redis_bytes.is_empty());
    backend.stop().await;

    // Nor do the audit database's files.
    let mut audit_bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("audit.sqlite")
        {
            audit_bytes.extend(std::fs::read(path).unwrap());
        }
    }
    for (place, bytes) in [("redis", &redis_bytes), ("audit database", &audit_bytes)] {
        for secret in [id.as_str(), &valid.full_name, &valid.card_number] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{place} holds personal data in clear"
            );
        }
    }
}

#[tokio::test]
async fn a_station_enumerating_citizens_is_throttled_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.abuse.distinct_subjects_per_window = 5;
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let people: Vec<_> = cards
        .iter()
        .filter(|c| c.record.citizen_id.is_some() && c.record.birth.day.is_some())
        .take(8)
        .collect();
    let mut refused = 0;
    for (i, person) in people.iter().enumerate() {
        match client
            .check_coverage(by_citizen(&format!("enum-{i}"), &person.record))
            .await
        {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 3, "the sixth distinct person onwards is refused");
    // Someone already checked can still be checked again.
    client
        .check_coverage(by_citizen("enum-again", &people[0].record))
        .await
        .unwrap();
    // Another station of the facility is not affected.
    let mut other = by_citizen("enum-other", &people[7].record);
    other.station_id = "desk-2".into();
    client.check_coverage(other).await.unwrap();

    assert_eq!(
        backend
            .metric("bhyt_enumeration_suspected_total", &[])
            .await,
        3.0
    );
    let records = query(&backend, all_time()).await;
    let throttled: Vec<_> = records.iter().filter(|r| r.kind == "throttled").collect();
    assert_eq!(
        throttled.len(),
        1,
        "one event per window, not one per refusal"
    );
    assert_eq!(throttled[0].station_id, "desk-1");
    backend.stop().await;
}
