//! Coverage checks through the real gRPC interface, against SQLite and PostgreSQL registries.

use bhyt_proto::v1::check_coverage_request::Subject;
use bhyt_proto::v1::{CheckCoverageRequest, Date, IdentityEvidence, ResultCode, batch_item_result};
use bhyt_verify::config::Config;
use bhyt_verify::registry::generate::Kind;
use tonic::Code;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first, request};
use crate::support;

async fn answers_each_kind_of_card(config: Config) {
    let cards = fixtures::seed(&config, 3000).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let mut ask = async |req: CheckCoverageRequest| {
        let r = client
            .check_coverage(req)
            .await
            .expect("an answer")
            .into_inner();
        (ResultCode::try_from(r.result).unwrap(), r)
    };

    let valid = first(&cards, Kind::Valid);
    let (code, r) = ask(by_citizen("valid", valid)).await;
    assert_eq!(code, ResultCode::CardValid);
    assert!(r.usable);
    let coverage = r.coverage.expect("coverage of a found card");
    assert_eq!(coverage.card_number, valid.card_number);
    assert_eq!(coverage.benefit_level, u32::from(valid.benefit_level));
    assert!(!r.audit_record_id.is_empty());

    for (kind, expected) in [
        (Kind::Expired, ResultCode::CardExpired),
        (Kind::Revoked, ResultCode::CardRevoked),
        (Kind::DefenceInsurer, ResultCode::CardValidDefenceInsurer),
        (
            Kind::PublicSecurityInsurer,
            ResultCode::CardValidPublicSecurityInsurer,
        ),
    ] {
        let (code, _) = ask(by_citizen(&format!("{kind:?}"), first(&cards, kind))).await;
        assert_eq!(code, expected, "{kind:?}");
    }
    let (code, r) = ask(by_citizen("reduced", first(&cards, Kind::Reduced))).await;
    assert!(
        r.source_result_code.starts_with("12"),
        "{code:?} {}",
        r.source_result_code
    );
    assert!(!r.usable);

    // A re-issued card asked by its old number names the new card.
    let old = first(&cards, Kind::ReissuedOld);
    let req = request(
        "reissued",
        Subject::CardNumber(old.card_number.clone()),
        &old.full_name,
        fixtures::birth_of(old),
    );
    let (code, r) = ask(req).await;
    assert!(matches!(
        code,
        ResultCode::ReissuedOldCardValid | ResultCode::ReissuedOldCardExpired
    ));
    let new_card = r.coverage.unwrap().new_card.expect("the new card's fields");
    assert_eq!(
        new_card.card_number,
        old.replaced_by.as_ref().unwrap().card_number
    );

    // Mismatches and absence are answers, not errors.
    let mut wrong_name = by_citizen("wrong-name", valid);
    wrong_name.full_name = "Zương Văn Khác".into();
    assert_eq!(ask(wrong_name).await.0, ResultCode::NameMismatch);
    let mut wrong_day = by_citizen("wrong-day", valid);
    wrong_day.date_of_birth.as_mut().unwrap().day = wrong_day.date_of_birth.unwrap().day % 28 + 1;
    assert_eq!(ask(wrong_day).await.0, ResultCode::BirthDateMismatch);
    let mut year_only = by_citizen("year-only", valid);
    year_only.date_of_birth = Some(Date {
        year: valid.birth.year.into(),
        month: 0,
        day: 0,
    });
    assert_eq!(ask(year_only).await.0, ResultCode::CardValid);
    let mut other_tone_placement = by_citizen("normalised", valid);
    other_tone_placement.full_name = other_tone_placement.full_name.to_uppercase();
    assert_eq!(ask(other_tone_placement).await.0, ResultCode::CardValid);
    let (code, r) = ask(fixtures::unregistered("unknown", "Nguyễn Văn An")).await;
    assert_eq!(
        (code, r.source_result_code.as_str(), r.coverage),
        (ResultCode::NoCardInformation, "050", None)
    );
    backend.stop().await;
}

#[tokio::test]
async fn answers_each_kind_of_card_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    answers_each_kind_of_card(app::config(dir.path())).await;
}

#[tokio::test]
async fn answers_each_kind_of_card_from_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let pg = support::postgres().await;
    let mut config = app::config(dir.path());
    config.registry.url = pg.database("registry_kinds").await;
    config.audit.url = pg.database("audit_kinds").await;
    answers_each_kind_of_card(config).await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let backend = TestBackend::start(app::config(dir.path())).await;
    let mut client = backend.verification().await;
    let good = || {
        request(
            "bad",
            Subject::CitizenId("001099012345".into()),
            "Nguyễn Văn An",
            Date {
                year: 1999,
                month: 3,
                day: 14,
            },
        )
    };
    let cases: Vec<(CheckCoverageRequest, &str)> = vec![
        (
            CheckCoverageRequest {
                subject: Some(Subject::CitizenId("00109901234".into())),
                ..good()
            },
            "citizen_id",
        ),
        (
            CheckCoverageRequest {
                subject: Some(Subject::CitizenId("00109901234x".into())),
                ..good()
            },
            "citizen_id",
        ),
        (
            CheckCoverageRequest {
                subject: Some(Subject::CitizenId("003099012345".into())),
                ..good()
            },
            "citizen_id",
        ),
        (
            CheckCoverageRequest {
                subject: Some(Subject::CitizenId("001299012345".into())),
                ..good()
            },
            "citizen_id",
        ),
        (
            CheckCoverageRequest {
                subject: Some(Subject::CardNumber("DN9010123456789".into())),
                ..good()
            },
            "card_number",
        ),
        (
            CheckCoverageRequest {
                date_of_birth: Some(Date {
                    year: 1999,
                    month: 2,
                    day: 30,
                }),
                ..good()
            },
            "date_of_birth",
        ),
        (
            CheckCoverageRequest {
                full_name: "".into(),
                ..good()
            },
            "full_name",
        ),
        (
            CheckCoverageRequest {
                evidence: Some(IdentityEvidence {
                    method: 99,
                    ..Default::default()
                }),
                ..good()
            },
            "evidence.method",
        ),
        // Within the transport's limit, above the check's: refused by the check, so audited.
        (
            CheckCoverageRequest {
                full_name: "A".repeat(100_000),
                ..good()
            },
            "request",
        ),
    ];
    let count = cases.len();
    for (i, (mut req, field)) in cases.into_iter().enumerate() {
        req.request_id = format!("bad-{i}");
        let status = client.check_coverage(req).await.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{field}: {}",
            status.message()
        );
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{}",
            status.message()
        );
        assert!(
            !status.message().contains("099012345"),
            "no ID in messages: {}",
            status.message()
        );
    }
    // Far above any limit: the transport refuses it before it is decoded.
    let huge = CheckCoverageRequest {
        full_name: "A".repeat(2 << 20),
        ..good()
    };
    let status = client.check_coverage(huge).await.expect_err("refused");
    assert!(
        matches!(
            status.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{status:?}"
    );

    // Each refusal decoded by the service has its audit record; nothing was cached.
    let records = crate::audit_log::all_records(&backend).await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.error_code == Code::InvalidArgument as i32)
            .count(),
        count
    );
    assert_eq!(backend.metric("bhyt_source_queries_total", &[]).await, 0.0);
    backend.stop().await;
}

#[tokio::test]
async fn a_request_id_is_an_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 500).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);

    let first_answer = client
        .check_coverage(by_citizen("same-id", valid))
        .await
        .unwrap()
        .into_inner();
    let retry = client
        .check_coverage(by_citizen("same-id", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        retry, first_answer,
        "a retry gets the first answer, audit record id included"
    );

    let mut other = by_citizen("same-id", valid);
    other.full_name = "Người Khác".into();
    let status = client
        .check_coverage(other)
        .await
        .expect_err("reuse with another payload");
    assert_eq!(status.code(), Code::AlreadyExists);

    // Concurrent duplicates of a new id: one answer, one record.
    let answers = futures::future::join_all((0..8).map(|_| {
        let mut client = client.clone();
        let req = by_citizen("concurrent", valid);
        async move {
            client
                .check_coverage(req)
                .await
                .unwrap()
                .into_inner()
                .audit_record_id
        }
    }))
    .await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    let records = crate::audit_log::all_records(&backend).await;
    let answered: Vec<_> = records.iter().filter(|r| r.error_code == 0).collect();
    assert_eq!(answered.len(), 2, "one record per answered request id");
    backend.stop().await;
}

/// The store is the authority on request ids, not a process: a retry at another replica, or at
/// the same one after a restart, gets the first answer and adds no record. Fails if a replica
/// answered from what it remembers itself (it would answer anew, with a second record).
#[tokio::test]
async fn a_request_id_holds_across_replicas_and_restarts() {
    let pg = support::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    config.audit.url = pg.database("idempotency_replicas").await;
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid);
    let (a, b) = (
        TestBackend::start(config.clone()).await,
        TestBackend::start(config.clone()).await,
    );
    let first_answer = a
        .verification()
        .await
        .check_coverage(by_citizen("across", valid))
        .await
        .unwrap()
        .into_inner();
    let at_b = b
        .verification()
        .await
        .check_coverage(by_citizen("across", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        at_b, first_answer,
        "the other replica gives the first answer"
    );
    let mut other = by_citizen("across", valid);
    other.full_name = "Người Khác".into();
    let status = b.verification().await.check_coverage(other).await;
    assert_eq!(status.expect_err("reused").code(), Code::AlreadyExists);
    a.stop().await;
    let restarted = TestBackend::start(config.clone()).await;
    let after_restart = restarted
        .verification()
        .await
        .check_coverage(by_citizen("across", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_restart, first_answer, "a restarted replica too");

    let records = crate::audit_log::all_records(&restarted).await;
    let answered = records.iter().filter(|r| r.error_code == 0).count();
    assert_eq!(answered, 1, "one record for the request id");
    b.stop().await;
    restarted.stop().await;
}

#[tokio::test]
async fn batch_checks_answer_in_order_and_fail_items_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 500).await;
    let backend = TestBackend::start(config).await;
    let mut client = backend.verification().await;
    let valid = first(&cards, Kind::Valid);
    let expired = first(&cards, Kind::Expired);
    let mut malformed = by_citizen("b-2", valid);
    malformed.subject = Some(Subject::CitizenId("12".into()));
    let items = vec![
        by_citizen("b-0", valid),
        by_citizen("b-1", expired),
        malformed,
        by_citizen("b-3", valid),
    ];
    let results: Vec<_> = client
        .check_coverage_batch(futures::stream::iter(items))
        .await
        .unwrap()
        .into_inner()
        .collect_results()
        .await;
    assert_eq!(
        results.iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        results
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["b-0", "b-1", "b-2", "b-3"]
    );
    let code = |i: usize| match &results[i].outcome {
        Some(batch_item_result::Outcome::Response(r)) => {
            Ok(ResultCode::try_from(r.result).unwrap())
        }
        Some(batch_item_result::Outcome::Error(e)) => Err(e.code),
        None => panic!("empty item"),
    };
    assert_eq!(code(0), Ok(ResultCode::CardValid));
    assert_eq!(code(1), Ok(ResultCode::CardExpired));
    assert_eq!(code(2), Err(Code::InvalidArgument as i32));
    assert_eq!(code(3), Ok(ResultCode::CardValid));
    assert_eq!(
        crate::audit_log::all_records(&backend).await.len(),
        4,
        "each item audited"
    );
    backend.stop().await;
}

trait CollectResults {
    async fn collect_results(self) -> Vec<bhyt_proto::v1::BatchItemResult>;
}

impl CollectResults for tonic::Streaming<bhyt_proto::v1::BatchItemResult> {
    async fn collect_results(mut self) -> Vec<bhyt_proto::v1::BatchItemResult> {
        let mut out = Vec::new();
        while let Some(item) = self.message().await.unwrap() {
            out.push(item);
        }
        out
    }
}
