//! The backend served with mutual TLS: who may call what, from the certificate alone, checked on
//! every call; each refusal audited.

use std::time::Duration;

use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{QueryLookupsRequest, ResultCode, VerifyIntegrityRequest};
use bhyt_verify::pki::{Issued, Pki, Validity};
use bhyt_verify::registry::generate::Kind;
use bhyt_verify::tls::{Claims, Role};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};

struct Secured {
    backend: TestBackend,
    pki: Pki,
    ca_pem: String,
}

impl Secured {
    fn channel(&self, who: &Issued) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost")
            .identity(Identity::from_pem(&who.cert_pem, &who.key_pem));
        Endpoint::from_shared(format!("https://{}", self.backend.grpc))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    fn issue(
        &self,
        name: &str,
        role: Role,
        facility: Option<&str>,
        station: Option<&str>,
    ) -> Issued {
        let claims = Claims::new(role, facility.map(Into::into), station.map(Into::into)).unwrap();
        self.pki
            .issue_client(name, &claims, Validity::days(30))
            .unwrap()
    }
}

/// A backend with mutual TLS on, its CA and server certificate under the data directory.
async fn secured(
    dir: &std::path::Path,
) -> (Secured, Vec<bhyt_verify::registry::generate::SyntheticCard>) {
    let pki = Pki::init(&dir.join("pki"), "test CA", Validity::days(30)).unwrap();
    pki.issue_server(
        "server",
        &["localhost".into()],
        &["127.0.0.1".parse().unwrap()],
        Validity::days(30),
    )
    .unwrap();
    let ca_pem = std::fs::read_to_string(dir.join("pki/ca.pem")).unwrap();
    let mut config = app::config(dir);
    config.tls.enabled = true;
    config.tls.dev_plaintext = false;
    config.tls.crl_reload_secs = 1;
    let cards = fixtures::seed(&config, 300).await;
    let backend = TestBackend::start(config).await;
    (
        Secured {
            backend,
            pki,
            ca_pem,
        },
        cards,
    )
}

#[tokio::test]
async fn identities_come_from_certificates_and_roles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cards) = secured(dir.path()).await;
    let valid = first(&cards, Kind::Valid);
    let desk = s.issue("desk-1", Role::Station, Some("01821"), Some("desk-1"));
    let his = s.issue("his", Role::HisIntegration, Some("01821"), None);
    let auditor = s.issue("auditor", Role::Auditor, None, None);

    // The desk checks for itself.
    let mut as_desk = VerificationServiceClient::new(s.channel(&desk));
    let answer = as_desk
        .check_coverage(by_citizen("own", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ResultCode::try_from(answer.result),
        Ok(ResultCode::CardValid)
    );

    // ... but not as another facility or another desk.
    let mut elsewhere = by_citizen("elsewhere", valid);
    elsewhere.facility_code = "79001".into();
    let status = as_desk.check_coverage(elsewhere).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().starts_with("facility_code: "),
        "{}",
        status.message()
    );
    let mut other_desk = by_citizen("other-desk", valid);
    other_desk.station_id = "desk-9".into();
    assert_eq!(
        as_desk.check_coverage(other_desk).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A hospital system checks for any station of its facility.
    let mut as_his = VerificationServiceClient::new(s.channel(&his));
    let mut ward = by_citizen("ward", valid);
    ward.station_id = "ward-3".into();
    as_his.check_coverage(ward).await.unwrap();

    // Only auditors read the audit trail; an auditor cannot check coverage.
    for who in [&desk, &his] {
        let status = AuditServiceClient::new(s.channel(who))
            .query_lookups(QueryLookupsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    let status = VerificationServiceClient::new(s.channel(&auditor))
        .check_coverage(by_citizen("auditor", valid))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // The auditor sees every refusal above recorded, and its own read.
    let mut as_auditor = AuditServiceClient::new(s.channel(&auditor));
    as_auditor
        .verify_integrity(VerifyIntegrityRequest::default())
        .await
        .unwrap();
    let records = crate::audit_log::query_with(&mut as_auditor).await;
    let denied = records
        .iter()
        .filter(|r| r.kind == "permission_denied")
        .count();
    assert_eq!(
        denied, 5,
        "two facility/desk refusals, two audit reads, one auditor check"
    );
    let reads: Vec<_> = records.iter().filter(|r| r.kind == "audit_read").collect();
    assert_eq!(reads.len(), 2, "the integrity check and this query");
    assert!(
        reads.iter().all(|r| r.station_id.starts_with("auditor:")),
        "who read is recorded"
    );
    s.backend.stop().await;
}

#[tokio::test]
async fn a_certificate_revoked_while_connected_is_refused_on_its_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cards) = secured(dir.path()).await;
    let valid = first(&cards, Kind::Valid);
    let desk = s.issue("desk-1", Role::Station, Some("01821"), Some("desk-1"));
    let mut client = VerificationServiceClient::new(s.channel(&desk));
    client
        .check_coverage(by_citizen("before", valid))
        .await
        .unwrap();

    s.pki.revoke("desk-1").unwrap();
    // The CRL is re-read within a second or two; the open connection is refused once it is.
    let mut refused = None;
    for i in 0..200 {
        match client
            .check_coverage(by_citizen(&format!("after-{i}"), valid))
            .await
        {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("the revoked certificate was refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"));
    s.backend.stop().await;
}

#[tokio::test]
async fn refused_handshakes_are_recorded_as_connection_events() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = secured(dir.path()).await;
    let stranger = Pki::init(&dir.path().join("other-ca"), "other CA", Validity::days(30)).unwrap();
    let foreign = stranger
        .issue_client(
            "desk-1",
            &Claims::new(Role::Station, Some("01821".into()), Some("desk-1".into())).unwrap(),
            Validity::days(30),
        )
        .unwrap();
    let status = VerificationServiceClient::new(s.channel(&foreign))
        .check_coverage(by_citizen("x", &fixtures::seed_free_card()))
        .await
        .unwrap_err();
    // Refused before any gRPC exchange: tonic shows a transport error (see the tls tests).
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Unknown),
        "{status:?}"
    );

    let auditor = s.issue("auditor", Role::Auditor, None, None);
    let mut as_auditor = AuditServiceClient::new(s.channel(&auditor));
    let mut events = Vec::new();
    for _ in 0..100 {
        events = crate::audit_log::query_with(&mut as_auditor).await;
        if events.iter().any(|r| r.kind == "connection") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = events
        .iter()
        .find(|r| r.kind == "connection")
        .expect("a connection event");
    assert!(
        event.detail.contains("tls handshake refused"),
        "{}",
        event.detail
    );
    assert!(
        event.station_id.starts_with("127.0.0.1:"),
        "the peer address: {}",
        event.station_id
    );
    s.backend.stop().await;
}

#[tokio::test]
async fn only_administrators_import_the_registry_and_the_cache_forgets_what_changed() {
    use bhyt_proto::v1::RegistryChunk;
    use bhyt_proto::v1::admin_service_client::AdminServiceClient;
    use bhyt_verify::coverage::CardStatus;

    let dir = tempfile::tempdir().unwrap();
    let (s, cards) = secured(dir.path()).await;
    let desk = s.issue("desk-1", Role::Station, Some("01821"), Some("desk-1"));
    let admin = s.issue("admin", Role::Administrator, None, None);
    let auditor = s.issue("auditor", Role::Auditor, None, None);
    let mut as_desk = VerificationServiceClient::new(s.channel(&desk));

    // The desk's answer is cached (in process: no Redis here).
    let mut revoked = cards
        .iter()
        .find(|c| {
            c.kind == Kind::Valid && c.record.citizen_id.is_some() && c.record.birth.day.is_some()
        })
        .unwrap()
        .clone();
    assert_eq!(
        result_of(&mut as_desk, "before", &revoked.record).await,
        ResultCode::CardValid
    );

    // The registry says the card was revoked: a CSV of one row, sent in two chunks.
    revoked.record.status = CardStatus::Revoked;
    let mut csv = Vec::new();
    bhyt_verify::registry::generate::write_csv(&mut csv, [revoked.clone()]).unwrap();
    let (head, tail) = csv.split_at(csv.len() / 2);
    let upload = |parts: Vec<Vec<u8>>| {
        futures::stream::iter(parts.into_iter().map(|csv| RegistryChunk {
            csv,
            skip_bad_rows: false,
        }))
    };

    // Not a station's business: refused and audited.
    let status = AdminServiceClient::new(s.channel(&desk))
        .import_registry(upload(vec![csv.clone()]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let mut as_admin = AdminServiceClient::new(s.channel(&admin));
    let report = as_admin
        .import_registry(upload(vec![head.to_vec(), tail.to_vec()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (report.rows_read, report.rows_loaded, report.bad_row_count),
        (1, 1, 0)
    );
    assert!(report.cache_entries_forgotten >= 1, "{report:?}");
    // Without the cache forgetting, this would still be the cached CARD_VALID.
    assert_eq!(
        result_of(&mut as_desk, "after", &revoked.record).await,
        ResultCode::CardRevoked
    );

    // A file with a bad row loads nothing and names the line, never the cell's text.
    let mut bad = csv.clone();
    bad.extend_from_slice(b"XX9999,not,a,card\n");
    let status = as_admin
        .import_registry(upload(vec![bad]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("line 3"), "{status:?}");
    let status = as_admin.import_registry(upload(vec![])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let records =
        crate::audit_log::query_with(&mut AuditServiceClient::new(s.channel(&auditor))).await;
    let admin_records: Vec<_> = records.iter().filter(|r| r.kind == "admin").collect();
    assert_eq!(
        admin_records.len(),
        5,
        "the import (started, done), the bad file (started, refused), the empty upload"
    );
    assert!(
        admin_records
            .iter()
            .all(|r| r.station_id.starts_with("admin:"))
    );
    assert_eq!(admin_records[0].detail, "registry import started");
    assert!(
        admin_records[1].detail.contains("1 loaded"),
        "{:?}",
        admin_records[1].detail
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == "permission_denied")
            .count(),
        1
    );
    s.backend.stop().await;
}

async fn result_of(
    desk: &mut VerificationServiceClient<Channel>,
    request_id: &str,
    card: &bhyt_verify::coverage::CardRecord,
) -> ResultCode {
    let answer = desk
        .check_coverage(by_citizen(request_id, card))
        .await
        .unwrap();
    answer.into_inner().result()
}
