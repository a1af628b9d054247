//! A dead registry and a dead audit store are different failures: the first is an answer the
//! desk can act on (CANNOT_VERIFY_NOW, with the fallback), the second refuses the check
//! (UNAVAILABLE) because no answer may leave unrecorded. Neither hangs.

use bhyt_proto::v1::{CacheStatus, ResultCode};
use bhyt_verify::registry::generate::Kind;
use tonic::Code;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};
use crate::support::Postgres;

#[tokio::test]
async fn a_dead_registry_gives_cannot_verify_now_and_cached_answers_continue() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.registry.url = pg.database("registry_outage").await;
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let (valid, expired) = (first(&cards, Kind::Valid), first(&cards, Kind::Expired));
    client
        .check_coverage(by_citizen("warm", valid))
        .await
        .unwrap();

    pg.stop();
    let cached = client
        .check_coverage(by_citizen("cached", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(cached.result),
        Ok(ResultCode::CardValid)
    );
    assert_eq!(cached.cache.unwrap().status(), CacheStatus::Fallback);

    let cold = client
        .check_coverage(by_citizen("cold", expired))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(cold.result),
        Ok(ResultCode::CannotVerifyNow)
    );
    assert!(!cold.usable);
    assert!(
        cold.message.unwrap().en.contains("photo ID"),
        "the desk is told the fallback"
    );
    assert!(!cold.audit_record_id.is_empty(), "the outcome is audited");
    let (status, health) = backend.http_get("/health").await;
    assert_eq!(status, 200, "checks are still answered and recorded");
    assert!(health.contains("\"registry\":\"unreachable\""), "{health}");
    backend.stop().await;
}

#[tokio::test]
async fn a_dead_audit_store_refuses_checks_quickly() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.audit.url = pg.database("audit_outage").await;
    config.audit.commit_timeout_ms = 2000;
    // Without a spool (audit_spool.rs has the spool): refused, not answered unrecorded.
    config.audit.spool_max_bytes = 0;
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);
    client
        .check_coverage(by_citizen("before", valid))
        .await
        .unwrap();

    pg.stop();
    // The client's own deadline is far above the commit timeout: an UNAVAILABLE, not a
    // DEADLINE_EXCEEDED, shows the server gave up by itself.
    let mut request = tonic::Request::new(by_citizen("during", valid));
    request.set_timeout(std::time::Duration::from_secs(60));
    let status = client
        .check_coverage(request)
        .await
        .expect_err("no answer without a record");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retry"), "{}", status.message());
    let (code, health) = backend.http_get("/health").await;
    assert_eq!(code, 503, "{health}");

    pg.restart();
    let after = client
        .check_coverage(by_citizen("during", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(after.result),
        Ok(ResultCode::CardValid),
        "the retry is answered"
    );
    backend.stop().await;
}
