//! The national gateway as the coverage source: the backend configured with `[source] kind =
//! "gateway"` against the real simulator process (`gateway-sim`), which answers from the same
//! synthetic registry the backend's tests seed. Faults are switched on the simulator's control
//! endpoint; its counters of log-ins and card checks show what the client really did.
//!
//! The cache is off in these tests, so every check reaches the gateway (what is measured is the
//! source, not the cache).

use std::time::{Duration, Instant};

use bhyt_proto::v1::check_coverage_request::Subject;
use bhyt_proto::v1::{CacheStatus, CheckCoverageRequest, CheckCoverageResponse, ResultCode};
use bhyt_verify::config::{Config, Secret, SourceKind};
use bhyt_verify::coverage::{self, CardRecord, Claim};
use bhyt_verify::registry::generate::{Kind, SyntheticCard};
use bhyt_verify::source::gateway::wire::{self, CheckAnswer};
use time::OffsetDateTime;

use crate::app::{self, TestBackend};
use crate::fixtures::{self, by_citizen, first};
use crate::support::{self, Counts, GATEWAY_USERNAME, GatewaySim};

const PASSWORD: &str = "gw-Pass-5e1f9c";

struct OnGateway {
    sim: GatewaySim,
    cards: Vec<SyntheticCard>,
    backend: TestBackend,
    _dir: tempfile::TempDir,
}

/// Points `config` at the simulator with short timeouts and quick back-off.
fn use_gateway(config: &mut Config, url: &str, password: &str) {
    config.source.kind = SourceKind::Gateway;
    config.source.url = url.to_owned();
    // The simulator speaks plain HTTP.
    config.source.dev_plain_http = true;
    config.source.username = GATEWAY_USERNAME.to_owned();
    config.source.password = Secret::new(password);
    config.source.connect_timeout_ms = 1_000;
    config.source.request_timeout_ms = 2_000;
    config.source.total_timeout_ms = 8_000;
    config.source.retries = 2;
    config.source.backoff_base_ms = 20;
    config.source.backoff_max_ms = 100;
    config.cache.enabled = false;
}

async fn on_gateway(people: usize, tune: impl FnOnce(&mut Config)) -> OnGateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let cards = fixtures::seed(&config, people).await;
    let sim = GatewaySim::start(&config.registry_url(), PASSWORD, &[]);
    use_gateway(&mut config, &sim.url, PASSWORD);
    tune(&mut config);
    let backend = TestBackend::start(config).await;
    OnGateway {
        sim,
        cards,
        backend,
        _dir: dir,
    }
}

async fn check(backend: &TestBackend, request: CheckCoverageRequest) -> CheckCoverageResponse {
    backend
        .verification()
        .await
        .check_coverage(request)
        .await
        .expect("an answer")
        .into_inner()
}

fn result(response: &CheckCoverageResponse) -> ResultCode {
    ResultCode::try_from(response.result).expect("a known result code")
}

/// What the backend's own judge says of `card` for a request that matches it.
fn expected(card: &CardRecord) -> ResultCode {
    let claim = Claim {
        full_name: card.full_name.clone(),
        birth: card.birth,
        facility_code: fixtures::FACILITY.into(),
    };
    let today = coverage::vietnam_date(OffsetDateTime::now_utc());
    coverage::judge(Some(card), &claim, today).result
}

fn assert_cannot_verify(response: &CheckCoverageResponse) {
    assert_eq!(
        result(response),
        ResultCode::CannotVerifyNow,
        "{response:?}"
    );
    assert!(!response.usable);
    let message = response.message.as_ref().unwrap();
    assert!(
        message.en.contains("photo ID"),
        "the desk is told the fallback"
    );
    assert!(
        !response.audit_record_id.is_empty(),
        "the outcome is audited"
    );
}

#[tokio::test]
async fn every_kind_of_card_and_identity_problem_comes_through_the_gateway() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let kinds = [
        Kind::Valid,
        Kind::DefenceInsurer,
        Kind::PublicSecurityInsurer,
        Kind::Expired,
        Kind::Revoked,
        Kind::Reduced,
    ];
    for (n, kind) in kinds.into_iter().enumerate() {
        let card = first(&cards, kind);
        let response = check(&backend, by_citizen(&format!("k{n}"), card)).await;
        assert_eq!(result(&response), expected(card), "{kind:?}");
        assert_eq!(response.source, "gateway");
        assert_eq!(
            response.source_result_code,
            coverage::gateway_code(expected(card))
        );
        let coverage = response.coverage.expect("the card's fields");
        assert_eq!(coverage.card_number, card.card_number, "{kind:?}");
        assert_eq!(coverage.primary_care_facility, card.primary_care_facility);
        assert_eq!(coverage.valid_to.unwrap().year, card.valid_to.year() as u32);
    }
    // Each check was a card check at the gateway, after one log-in: with the registry as the
    // source (the mechanism off) these counters would stay at zero.
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 1,
            checks: kinds.len() as u64
        }
    );

    let valid = first(&cards, Kind::Valid);
    let unknown = fixtures::unregistered_id();
    let born = bhyt_proto::v1::Date {
        year: emrtd::cccd::id_number::CitizenId::parse(&unknown)
            .unwrap()
            .birth_year()
            .into(),
        month: 0,
        day: 0,
    };
    let nobody = fixtures::request(
        "nobody",
        Subject::CitizenId(unknown),
        &valid.full_name,
        born,
    );
    let response = check(&backend, nobody).await;
    assert_eq!(
        (result(&response), response.source_result_code.as_str()),
        (ResultCode::NoCardInformation, "050")
    );

    // The gateway's own verdicts on the request: wrong name, wrong date of birth.
    let mut wrong_name = by_citizen("wrong-name", valid);
    wrong_name.full_name = "Thân Văn Khác".into();
    let response = check(&backend, wrong_name).await;
    assert_eq!(result(&response), ResultCode::NameMismatch);
    assert_eq!(response.source_result_code, "060");
    assert!(
        response.coverage.is_none(),
        "no card fields for a wrong name"
    );
    let mut wrong_birth = by_citizen("wrong-birth", valid);
    let birth = wrong_birth.date_of_birth.as_mut().unwrap();
    birth.day = if birth.day == 1 { 2 } else { birth.day - 1 };
    let response = check(&backend, wrong_birth).await;
    assert_eq!(
        (result(&response), response.source_result_code.as_str()),
        (ResultCode::BirthDateMismatch, "070")
    );
}

#[tokio::test]
async fn the_operators_name_and_cccd_reach_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    // The facility has registered the fixtures' operator, and one other staff member.
    let registered = format!("{}=Lê Thị Thu", fixtures::OPERATOR_ID);
    let sim = GatewaySim::start(
        &config.registry_url(),
        PASSWORD,
        &[
            "--staff",
            &registered,
            "--staff",
            "001090000017=Phạm Văn Bình",
        ],
    );
    use_gateway(&mut config, &sim.url, PASSWORD);
    let backend = TestBackend::start(config).await;
    let valid = first(&cards, Kind::Valid);
    // Were the operator not sent, the gateway would answer 054 here.
    assert_eq!(
        result(&check(&backend, by_citizen("s1", valid)).await),
        ResultCode::CardValid
    );
    let mut stranger = by_citizen("s2", valid);
    stranger.operator.as_mut().unwrap().citizen_id = "001090000018".into();
    let response = check(&backend, stranger).await;
    assert_eq!(
        (result(&response), response.source_result_code.as_str()),
        (ResultCode::OperatorNotRegistered, "054")
    );
    let mut misnamed = by_citizen("s3", valid);
    misnamed.operator.as_mut().unwrap().full_name = "Lê Thị Thuỷ".into();
    let response = check(&backend, misnamed).await;
    assert_eq!(
        (result(&response), response.source_result_code.as_str()),
        (ResultCode::OperatorNameMismatch, "055")
    );
    assert!(!response.usable);
}

#[tokio::test]
async fn reissued_cards_answer_with_the_new_card() {
    let OnGateway {
        cards,
        backend,
        sim: _sim,
        _dir,
    } = on_gateway(2_000, |_| {}).await;
    let today = coverage::vietnam_date(OffsetDateTime::now_utc());
    let old = |still_valid: bool| {
        cards
            .iter()
            .filter(|c| c.kind == Kind::ReissuedOld)
            .map(|c| &c.record)
            .filter(|c| c.citizen_id.is_some() && c.birth.day.is_some())
            .find(|c| (c.valid_to >= today) == still_valid)
            .unwrap_or_else(|| panic!("a re-issued card still valid: {still_valid}"))
    };
    for (still_valid, code, result_code) in [
        (true, "004", ResultCode::ReissuedOldCardValid),
        (false, "003", ResultCode::ReissuedOldCardExpired),
    ] {
        let card = old(still_valid);
        let mut request = by_citizen(&format!("old-{code}"), card);
        request.subject = Some(Subject::CardNumber(card.card_number.clone()));
        let response = check(&backend, request).await;
        assert_eq!(
            (result(&response), response.source_result_code.as_str()),
            (result_code, code)
        );
        assert!(response.usable, "{code}: usable under the new card");
        let new = response.coverage.unwrap().new_card.expect("the new card");
        let replacement = card.replaced_by.as_ref().unwrap();
        assert_eq!(new.card_number, replacement.card_number);
        assert_eq!(
            new.valid_to.unwrap().year,
            replacement.valid_to.year() as u32
        );
        // By citizen ID the gateway answers with the current card itself.
        let response = check(&backend, by_citizen(&format!("now-{code}"), card)).await;
        let coverage = response.coverage.unwrap();
        assert_eq!(coverage.card_number, replacement.card_number);
        assert!(coverage.new_card.is_none());
    }
}

#[tokio::test]
async fn facts_are_cached_but_a_verdict_on_one_request_is_not() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| c.cache.enabled = true).await;
    let valid = first(&cards, Kind::Valid);
    let mut wrong_name = by_citizen("v1", valid);
    wrong_name.full_name = "Thân Văn Khác".into();
    assert_eq!(
        result(&check(&backend, wrong_name).await),
        ResultCode::NameMismatch
    );
    // Had the gateway's "wrong name" been cached for this citizen, the right name would get
    // it too, from the cache, without a second card check.
    let right = check(&backend, by_citizen("v2", valid)).await;
    assert_eq!(result(&right), ResultCode::CardValid);
    assert_eq!(right.cache.unwrap().status(), CacheStatus::Miss);
    let again = check(&backend, by_citizen("v3", valid)).await;
    assert_eq!(result(&again), ResultCode::CardValid);
    assert_ne!(
        again.cache.unwrap().status(),
        CacheStatus::Miss,
        "facts are cached"
    );
    assert_eq!(sim.counts().await.checks, 2);
}

#[tokio::test]
async fn a_coalesced_waiter_does_not_inherit_another_requests_verdict() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| c.cache.enabled = true).await;
    let valid = first(&cards, Kind::Valid);
    // Slow answers, so the second check joins the first one's query for the same citizen.
    sim.set(r#"{"latency_ms": 1500}"#).await;
    let valid_copy = valid.clone();
    let mut wrong_name = by_citizen("w1", valid);
    wrong_name.full_name = "Thân Văn Khác".into();
    let first_check = {
        let backend_client = backend.verification().await;
        tokio::spawn(async move {
            let mut client = backend_client;
            client
                .check_coverage(wrong_name)
                .await
                .unwrap()
                .into_inner()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second_check = {
        let mut client = backend.verification().await;
        tokio::spawn(async move {
            let request = by_citizen("w2", &valid_copy);
            client.check_coverage(request).await.unwrap().into_inner()
        })
    };
    // The second check really waits on the first one's query (bounded poll).
    let mut joined = false;
    for _ in 0..100 {
        if backend.metric("bhyt_coalesced_waiting", &[]).await == 1.0 {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(joined, "the second check joined the first one's query");
    let right = second_check.await.unwrap();
    let wrong = first_check.await.unwrap();
    assert_eq!(result(&wrong), ResultCode::NameMismatch);
    // Sharing the first request's verdict would answer NAME_MISMATCH here; the waiter asks
    // again with its own name instead.
    assert_eq!(result(&right), ResultCode::CardValid);
    assert_eq!(sim.counts().await.checks, 2);
}

#[tokio::test]
async fn an_expired_token_costs_one_log_in_and_one_extra_call() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let valid = first(&cards, Kind::Valid);
    assert_eq!(
        result(&check(&backend, by_citizen("t1", valid)).await),
        ResultCode::CardValid
    );
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 1,
            checks: 1
        }
    );

    sim.set(r#"{"expire_tokens": true}"#).await;
    let response = check(&backend, by_citizen("t2", valid)).await;
    // Without the renewal on 401 this would be CANNOT_VERIFY_NOW.
    assert_eq!(result(&response), ResultCode::CardValid);
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 2,
            checks: 3
        },
        "the refused call, one log-in, the call again"
    );
    // The new token is kept: the next check is one call.
    check(&backend, by_citizen("t3", valid)).await;
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 2,
            checks: 4
        }
    );

    // A burst refused together makes one log-in: each refused check forgets the token only if
    // it is still the one refused. (Forgetting it unconditionally logged in 2-4 times here in
    // most runs; a burst that happens to run in step can still pass.)
    sim.set(r#"{"expire_tokens": true}"#).await;
    // Four people, so that coalescing does not merge the checks.
    let people: Vec<&CardRecord> = cards
        .iter()
        .filter(|c| c.kind == Kind::Valid)
        .map(|c| &c.record)
        .filter(|c| c.citizen_id.is_some() && c.birth.day.is_some())
        .take(4)
        .collect();
    assert_eq!(people.len(), 4);
    let burst: Vec<_> = people
        .into_iter()
        .enumerate()
        .map(|(n, person)| {
            let request = by_citizen(&format!("burst-{n}"), person);
            let client = backend.verification();
            async move { client.await.check_coverage(request).await.unwrap() }
        })
        .collect();
    for answer in futures::future::join_all(burst).await {
        assert_eq!(result(&answer.into_inner()), ResultCode::CardValid);
    }
    let counts = sim.counts().await;
    assert_eq!(counts.logins, 3, "{counts:?}");
    // Four answered calls, and one refused call per check that used the old token (at least
    // the first, at most all four: the burst is not perfectly simultaneous).
    let refused = counts.checks - 4 - 4;
    assert!((1..=4).contains(&refused), "{counts:?}");
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    // Tokens live 61 s, renewed 60 s early: after a second the client renews on its own.
    let sim = GatewaySim::start(
        &config.registry_url(),
        PASSWORD,
        &["--token-ttl-secs", "61"],
    );
    use_gateway(&mut config, &sim.url, PASSWORD);
    config.source.token_refresh_margin_secs = 60;
    let backend = TestBackend::start(config).await;
    let valid = first(&cards, Kind::Valid);
    check(&backend, by_citizen("r1", valid)).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    check(&backend, by_citizen("r2", valid)).await;
    // A log-in before the second call and no refused call: checks stays at 2. Without the
    // margin the old token (still valid at the gateway) would be reused: logins would be 1.
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 2,
            checks: 2
        }
    );
}

#[tokio::test]
async fn a_slow_gateway_is_unavailable_within_the_timeouts() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| {
        c.source.request_timeout_ms = 300;
        c.source.retries = 1;
    })
    .await;
    let valid = first(&cards, Kind::Valid);
    check(&backend, by_citizen("warm", valid)).await;
    sim.set(r#"{"latency_ms": 30000}"#).await;
    let started = Instant::now();
    let response = check(&backend, by_citizen("slow", valid)).await;
    assert_cannot_verify(&response);
    // Bounded: far below the gateway's 30 s (two tries of 0.3 s and a short back-off). This is
    // the timeout at work, not a performance figure.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sim.counts().await.checks,
        1 + 2,
        "the first try and one retry, no more"
    );
}

#[tokio::test]
async fn the_total_timeout_cuts_retries_short() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| {
        c.source.request_timeout_ms = 300;
        c.source.retries = 10;
        c.source.total_timeout_ms = 1_000;
    })
    .await;
    sim.set(r#"{"latency_ms": 30000}"#).await;
    let response = check(&backend, by_citizen("total", first(&cards, Kind::Valid))).await;
    assert_cannot_verify(&response);
    // Each try lasts at least its 0.3 s timeout, so within 1 s at most four start; without
    // the total timeout all eleven would.
    let checks = sim.counts().await.checks;
    assert!((1..=4).contains(&checks), "{checks} tries");
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let valid = first(&cards, Kind::Valid);
    sim.set(r#"{"fail_next": 2}"#).await;
    let response = check(&backend, by_citizen("e1", valid)).await;
    // Two HTTP 500s, then the answer: without retries this would be CANNOT_VERIFY_NOW.
    assert_eq!(result(&response), ResultCode::CardValid);
    assert_eq!(sim.counts().await.checks, 3);

    sim.set(r#"{"fail_next": 10}"#).await;
    let response = check(&backend, by_citizen("e2", valid)).await;
    assert_cannot_verify(&response);
    assert_eq!(sim.counts().await.checks, 3 + 3, "two retries at most");
}

#[tokio::test]
async fn an_unknown_result_code_is_reported_as_such() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    sim.set(r#"{"unknown_code": "987"}"#).await;
    let response = check(&backend, by_citizen("u1", first(&cards, Kind::Valid))).await;
    assert_eq!(result(&response), ResultCode::UnknownSourceCode);
    assert_eq!(response.source_result_code, "987", "the raw code is kept");
    assert!(!response.usable);
    assert!(response.message.unwrap().en.contains("unknown result code"));
    assert!(!response.audit_record_id.is_empty());
}

#[tokio::test]
async fn unreadable_answers_are_not_retried_and_not_guessed() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let valid = first(&cards, Kind::Valid);
    let oversized = format!(r#"{{"maKetQua":"000","ghiChu":"{}"}}"#, "x".repeat(70_000));
    let bad_answers = [
        "<html>maintenance</html>".to_owned(),
        r#"{"maKetQua": 0}"#.to_owned(),
        // A card code without the card's fields.
        r#"{"maKetQua":"000","maThe":"DN4010123456789"}"#.to_owned(),
        oversized,
    ];
    for (n, body) in bad_answers.iter().enumerate() {
        sim.set(&serde_json::json!({ "raw_answer": body }).to_string())
            .await;
        let before = sim.counts().await.checks;
        let response = check(&backend, by_citizen(&format!("b{n}"), valid)).await;
        assert_cannot_verify(&response);
        assert_eq!(
            sim.counts().await.checks,
            before + 1,
            "answer {n}: an unreadable answer is not retried"
        );
    }
}

#[tokio::test]
async fn outages_give_cannot_verify_now() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| c.source.request_timeout_ms = 500).await;
    let valid = first(&cards, Kind::Valid);
    for (n, outage) in ["drop", "hang"].into_iter().enumerate() {
        sim.set(&format!(r#"{{"outage": "{outage}"}}"#)).await;
        let response = check(&backend, by_citizen(&format!("o{n}"), valid)).await;
        assert_cannot_verify(&response);
    }
    // Recovery needs nothing but the gateway back.
    sim.set(r#"{"outage": "none"}"#).await;
    let response = check(&backend, by_citizen("back", valid)).await;
    assert_eq!(result(&response), ResultCode::CardValid);

    // Nothing listening at all: connection refused.
    let dir = tempfile::tempdir().unwrap();
    let mut config = app::config(dir.path());
    let url = format!("http://127.0.0.1:{}", support::free_port());
    use_gateway(&mut config, &url, PASSWORD);
    let refused = TestBackend::start(config).await;
    assert_cannot_verify(&check(&refused, by_citizen("refused", valid)).await);
}

#[tokio::test]
async fn wrong_credentials_never_reach_the_card_check() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| c.source.password = Secret::new("not-the-password")).await;
    let response = check(&backend, by_citizen("c1", first(&cards, Kind::Valid))).await;
    assert_cannot_verify(&response);
    let counts = sim.counts().await;
    assert_eq!(counts.checks, 0, "no card check without a token");
    assert_eq!(counts.logins, 1, "a refused log-in is not retried");
}

/// The real binary at trace level, through log-ins, a refused token, retries and a wrong name:
/// the gateway password, the token-bearing URLs and the citizen's and operator's data are
/// nowhere in its output. (With the URL in an error message, as reqwest's `Display` gives it,
/// `token=` would show up here.)
#[tokio::test]
async fn the_gateway_password_and_personal_data_never_reach_the_logs() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid);
    let sim = GatewaySim::start(&config.registry_url(), PASSWORD, &[]);
    let port = support::free_port();
    let log_path = dir.path().join("server.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("serve")
        .env("BHYT_DATA_DIR", dir.path())
        .env("BHYT_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "BHYT_HTTP_LISTEN",
            format!("127.0.0.1:{}", support::free_port()),
        )
        .env("BHYT_TLS__ENABLED", "false")
        .env("BHYT_TLS__DEV_PLAINTEXT", "true")
        .env("BHYT_CACHE__ENABLED", "false")
        .env("BHYT_SOURCE__KIND", "gateway")
        .env("BHYT_SOURCE__URL", &sim.url)
        .env("BHYT_SOURCE__DEV_PLAIN_HTTP", "true")
        .env("BHYT_SOURCE__USERNAME", GATEWAY_USERNAME)
        .env("BHYT_SOURCE__PASSWORD", PASSWORD)
        .env("BHYT_SOURCE__BACKOFF_BASE_MS", "10")
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_for("the server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let mut client = bhyt_proto::v1::verification_service_client::VerificationServiceClient::new(
        channel.connect().await.unwrap(),
    );
    let answer = client
        .check_coverage(by_citizen("l1", valid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        result(&answer),
        ResultCode::CardValid,
        "the gateway answered"
    );
    sim.set(r#"{"expire_tokens": true, "fail_next": 1}"#).await;
    let mut by_card = by_citizen("l2", valid);
    by_card.subject = Some(Subject::CardNumber(valid.card_number.clone()));
    client.check_coverage(by_card).await.unwrap();
    let mut wrong_name = by_citizen("l3", valid);
    wrong_name.full_name = "Thân Thị Riêngtư".into();
    client.check_coverage(wrong_name).await.unwrap();
    sim.set(r#"{"outage": "drop"}"#).await;
    client
        .check_coverage(by_citizen("l4", valid))
        .await
        .unwrap();
    assert!(sim.counts().await.logins >= 2, "a log-in after the expiry");

    drop(client);
    Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("gateway"),
        "the gateway's path was logged at all"
    );
    let id = valid.citizen_id.clone().unwrap();
    for secret in [
        PASSWORD,
        "token=",
        "id_token",
        id.as_str(),
        &valid.card_number,
        &valid.social_insurance_number,
        &valid.full_name,
        "Riêngtư",
        fixtures::OPERATOR_ID,
        "Lê Thị Thu",
    ] {
        assert!(
            !logs.contains(secret),
            "the logs contain a secret or personal data ({} characters)",
            secret.len()
        );
    }
}

/// Code 010 is the gateway's "card expired": the verdict follows it even when the card's dates
/// would still cover today (the gateway knows of an early end this client cannot see).
#[tokio::test]
async fn code_010_is_an_expired_card_whatever_its_dates() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let valid = first(&cards, Kind::Valid);
    assert_eq!(
        expected(valid),
        ResultCode::CardValid,
        "its dates cover today"
    );
    let answer = CheckAnswer {
        ma_ket_qua: "010".into(),
        ma_the: Some(valid.card_number.clone()),
        ho_ten: Some(valid.full_name.clone()),
        ngay_sinh: Some(wire::format_birth(valid.birth)),
        ma_dkbd: Some(valid.primary_care_facility.clone()),
        cq_bhxh: Some(valid.issuing_office.clone()),
        gt_the_tu: Some(wire::format_date(valid.valid_from)),
        gt_the_den: Some(wire::format_date(valid.valid_to)),
        ..Default::default()
    };
    let body = serde_json::to_string(&answer).unwrap();
    sim.set(&serde_json::json!({ "raw_answer": body }).to_string())
        .await;
    let response = check(&backend, by_citizen("x1", valid)).await;
    // Mapped like 000, this would be CARD_VALID and usable.
    assert_eq!(result(&response), ResultCode::CardExpired);
    assert_eq!(response.source_result_code, "010");
    assert!(!response.usable);
    let coverage = response
        .coverage
        .expect("the card's fields still come along");
    assert_eq!(coverage.card_number, valid.card_number);
}

/// The gateway's own server errors (code 500 and code 101, in an HTTP 200 answer) and a failed
/// log-in (HTTP 500, code 500 or code 101) are retried within the bounded policy.
#[tokio::test]
async fn the_gateways_server_errors_are_retried_at_log_in_and_card_check() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |_| {}).await;
    let valid = first(&cards, Kind::Valid);

    // The first log-in fails with HTTP 500: the check still gets its answer after a retry.
    sim.set(r#"{"fail_next_logins": 1}"#).await;
    let response = check(&backend, by_citizen("l1", valid)).await;
    assert_eq!(result(&response), ResultCode::CardValid);
    assert_eq!(
        sim.counts().await,
        Counts {
            logins: 2,
            checks: 1
        }
    );

    let mut counts = sim.counts().await;
    for (n, code) in ["101", "500"].into_iter().enumerate() {
        // Two card checks answered with the code, then the answer; without retrying the code
        // this would be its verdict (101) or CANNOT_VERIFY_NOW.
        sim.set(&format!(r#"{{"fail_code": "{code}", "fail_next": 2}}"#))
            .await;
        let response = check(&backend, by_citizen(&format!("c{n}"), valid)).await;
        assert_eq!(result(&response), ResultCode::CardValid, "code {code}");
        counts.checks += 3;
        assert_eq!(sim.counts().await, counts, "code {code}");

        // A log-in answered with the code (the token was expired, so a new one is needed):
        // the first card check is refused (401), the log-in fails once and is tried again.
        sim.set(&format!(
            r#"{{"fail_code": "{code}", "fail_next_logins": 1, "expire_tokens": true}}"#
        ))
        .await;
        let response = check(&backend, by_citizen(&format!("t{n}"), valid)).await;
        assert_eq!(
            result(&response),
            ResultCode::CardValid,
            "log-in code {code}"
        );
        counts.logins += 2;
        counts.checks += 2;
        assert_eq!(sim.counts().await, counts, "log-in code {code}");

        // Bounded: a gateway that keeps answering the code is unavailable after two retries.
        sim.set(&format!(r#"{{"fail_code": "{code}", "fail_next": 10}}"#))
            .await;
        let response = check(&backend, by_citizen(&format!("u{n}"), valid)).await;
        assert_cannot_verify(&response);
        counts.checks += 3;
        assert_eq!(
            sim.counts().await,
            counts,
            "code {code}: two retries at most"
        );
        sim.set(r#"{"fail_next": 0, "fail_code": ""}"#).await;
    }
}

/// A plain `http://` gateway would carry the token, the password and patients' data in clear:
/// refused at start-up unless the development flag says otherwise.
#[tokio::test]
async fn a_plain_http_gateway_is_refused_without_the_development_flag() {
    // Each start in a data directory of its own.
    let start = async |url: &str, dev_plain_http: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = app::config(dir.path());
        use_gateway(&mut config, url, PASSWORD);
        config.source.dev_plain_http = dev_plain_http;
        bhyt_verify::server::App::start(config)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let refused = start("http://127.0.0.1:9", false).await.unwrap_err();
    assert!(refused.contains("plain http://"), "{refused}");
    assert!(refused.contains("dev_plain_http"), "{refused}");
    let not_http = start("ftp://gateway.example", true).await.unwrap_err();
    assert!(not_http.contains("https://"), "{not_http}");
    // https:// needs no flag (nothing is called at start-up); the flag allows http://.
    start("https://gateway.example", false).await.unwrap();
    start("http://127.0.0.1:9", true).await.unwrap();
}

/// With the gateway as the source, `/health` reports the gateway (its breaker and its last
/// answer), not the registry database, which answers no checks.
#[tokio::test]
async fn health_reports_the_gateway_when_it_is_the_source() {
    let OnGateway {
        sim,
        cards,
        backend,
        _dir,
    } = on_gateway(300, |c| {
        c.source.breaker_failure_threshold = 2;
        c.source.breaker_cool_down_ms = 600_000;
        c.source.request_timeout_ms = 500;
    })
    .await;
    let health = async || {
        let (code, body) = backend.http_get("/health").await;
        (
            code,
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
    };
    let (code, before) = health().await;
    assert_eq!(code, 200);
    assert_eq!(before["source"], "gateway", "{before}");
    assert!(before.get("registry").is_none(), "{before}");
    assert_eq!(before["gateway"]["breaker"], "closed", "{before}");
    assert!(
        before["gateway"]["last_answer_secs_ago"].is_null(),
        "{before}"
    );
    assert_eq!(before["status"], "ok");

    let valid = first(&cards, Kind::Valid);
    check(&backend, by_citizen("h1", valid)).await;
    let (_, answered) = health().await;
    assert!(
        answered["gateway"]["last_answer_secs_ago"].is_u64(),
        "{answered}"
    );

    // The gateway goes down: two failed checks open the breaker; health says so.
    sim.set(r#"{"outage": "drop"}"#).await;
    for n in 0..2 {
        assert_cannot_verify(&check(&backend, by_citizen(&format!("h-down-{n}"), valid)).await);
    }
    let (code, down) = health().await;
    assert_eq!(code, 200, "checks are still answered and recorded: {down}");
    assert_eq!(down["gateway"]["breaker"], "open", "{down}");
    assert_eq!(down["status"], "degraded", "{down}");
}
