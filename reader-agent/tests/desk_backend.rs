//! The agent's read and its backend client against a real backend started in process, over
//! mutual TLS with certificates from the backend's own PKI, and a trust directory holding the
//! test CSCA and its CRL on both sides. The card is emrtd's virtual CCCD in process (the PC/SC
//! path has tests of its own): what is under test here is the check, end to end.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bhyt_proto::v1::ResultCode;
use bhyt_verify::config::Config;
use bhyt_verify::coverage::{CardRecord, vietnam_date};
use bhyt_verify::db::{self, Schema};
use bhyt_verify::pki::{Pki, Validity};
use bhyt_verify::registry::generate::{self, Generator, Kind};
use bhyt_verify::server::App;
use bhyt_verify::tls::{Claims, Role};
use cccd_authenticity::passive::Policy;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::lds::build::{Dg13Person, Td1Fields};
use emrtd::virtual_card::VirtualCard;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use reader_agent::backend::{Backend, BackendConfig, BackendError, nonce_of};
use reader_agent::read::{DeskKey, ReadOptions, Verdict, load_trust_dir, read_card};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const FACILITY: &str = "01821";
const STATION: &str = "desk-1";

/// A backend with mutual TLS, a seeded registry and the test CSCA trusted.
struct Running {
    dir: tempfile::TempDir,
    grpc: std::net::SocketAddr,
    people: Vec<CardRecord>,
    _stop: oneshot::Sender<()>,
}

async fn backend(issuer: &TestIssuer) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    let pki = Pki::init(&dir.path().join("pki"), "test CA", Validity::days(30)).unwrap();
    pki.issue_server(
        "server",
        &["localhost".into()],
        &["127.0.0.1".parse().unwrap()],
        Validity::days(30),
    )
    .unwrap();
    let claims = Claims::new(Role::Station, Some(FACILITY.into()), Some(STATION.into())).unwrap();
    pki.issue_client(STATION, &claims, Validity::days(30))
        .unwrap();
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(trust.join("csca.der"), &issuer.csca.der).unwrap();
    std::fs::write(trust.join("csca.crl"), &issuer.crl).unwrap();

    let pool = db::connect(&config.registry_url(), 2, Schema::Registry)
        .await
        .unwrap();
    let today = vietnam_date(time::OffsetDateTime::now_utc());
    let cards: Vec<_> = Generator::new(7, today).take(200).collect();
    generate::insert(&pool, cards.clone()).await.unwrap();
    pool.close().await;
    let people = cards
        .iter()
        .filter(|c| {
            c.kind == Kind::Valid && c.record.citizen_id.is_some() && c.record.birth.day.is_some()
        })
        .map(|c| c.record.clone())
        .take(2)
        .collect();

    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let app = App::start(config).await.expect("backend starts");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .serve(grpc, http, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        dir,
        grpc: addr,
        people,
        _stop: stop,
    }
}

fn station_config(running: &Running, pki_dir: &Path, name: &str) -> BackendConfig {
    BackendConfig {
        url: format!("https://{}", running.grpc),
        server_name: Some("localhost".into()),
        ca_cert: running.dir.path().join("pki").join("ca.pem"),
        station_cert: pki_dir.join("issued").join(format!("{name}.pem")),
        station_key: pki_dir.join("issued").join(format!("{name}.key")),
        facility_code: FACILITY.into(),
        station_id: STATION.into(),
        operator_name: "Lê Thị Thu".into(),
        operator_citizen_id: "079185000123".into(),
        timeout: Duration::from_secs(10),
    }
}

/// Calls `f` with the MRZ and DG13 of `person`'s card.
fn with_card<R>(person: &CardRecord, f: impl FnOnce(&Td1Fields<'_>, &Dg13Person<'_>) -> R) -> R {
    let id = person.citizen_id.as_deref().unwrap();
    let b = &person.birth;
    let (month, day) = (b.month.unwrap(), b.day.unwrap());
    let dmy = format!("{day:02}/{month:02}/{}", b.year);
    let yymmdd = format!("{:02}{month:02}{day:02}", b.year % 100);
    let mrz = Td1Fields {
        document_number: &id[3..],
        optional_data_1: id,
        date_of_birth: &yymmdd,
        date_of_expiry: None,
        ..Td1Fields::cccd_example()
    };
    let holder = Dg13Person {
        id,
        full_name: &person.full_name,
        date_of_birth: &dmy,
        ..Dg13Person::example()
    };
    f(&mrz, &holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_card_is_chip_verified_by_the_backend_and_a_clone_is_not() {
    let issuer = TestIssuer::vietnam_like();
    let running = backend(&issuer).await;
    let person = running.people[0].clone();
    let trust = load_trust_dir(&running.dir.path().join("trust")).unwrap();
    let config = station_config(&running, &running.dir.path().join("pki"), STATION);
    let mut client = Backend::new(config).unwrap();
    let key = DeskKey::from_id(person.citizen_id.as_deref().unwrap()).unwrap();

    // Genuine: the agent's own verdict and the backend's agree.
    let challenge = client.challenge().await.expect("a challenge");
    let options = ReadOptions {
        trust: &trust,
        now: SystemTime::now(),
        challenge: nonce_of(&challenge),
        policy: Policy::default(),
    };
    let card = with_card(&person, |mrz, holder| {
        issuer.card(mrz, holder, VirtualAa::ecdsa_p256(AaHash::Sha256))
    });
    let read = tokio::task::block_in_place(|| read_card(card, &key, &options)).unwrap();
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    let answer = client.check(&read, &challenge).await.expect("an answer");
    assert_eq!(answer.result(), ResultCode::CardValid);
    let presence = answer.presence.expect("the backend's verdict on the proof");
    // Without the presence proof in the request this is unset; with a nonce other than the
    // challenge's, active authentication fails.
    assert!(presence.verified, "{:?}", presence.failure);
    assert!(!answer.audit_record_id.is_empty());

    // A clone: the genuine card's files, its own key. Coverage is answered, not chip-verified.
    let genuine = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = with_card(&person, |mrz, holder| {
        issuer.card_files(mrz, holder, &genuine)
    });
    let can = &person.citizen_id.as_deref().unwrap()[6..];
    let clone = VirtualCard::new(files)
        .with_pace(Box::new(VirtualPace::cccd(can)))
        .with_active_authentication(VirtualAa::clone_of(&genuine));
    let challenge = client.challenge().await.unwrap();
    let options = ReadOptions {
        challenge: nonce_of(&challenge),
        ..options
    };
    let read = tokio::task::block_in_place(|| read_card(clone, &key, &options)).unwrap();
    assert!(matches!(read.verdict(), Verdict::NotVerified(_)));
    let answer = client.check(&read, &challenge).await.expect("an answer");
    assert_eq!(answer.result(), ResultCode::CardValid);
    let presence = answer.presence.expect("a verdict");
    assert!(presence.passive_authentication && !presence.verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_certificate_from_another_ca_is_refused_as_unreachable() {
    let issuer = TestIssuer::vietnam_like();
    let running = backend(&issuer).await;
    let other = tempfile::tempdir().unwrap();
    let rogue = Pki::init(&other.path().join("pki"), "rogue CA", Validity::days(30)).unwrap();
    let claims = Claims::new(Role::Station, Some(FACILITY.into()), Some(STATION.into())).unwrap();
    rogue
        .issue_client(STATION, &claims, Validity::days(30))
        .unwrap();
    let config = station_config(&running, &other.path().join("pki"), STATION);
    let mut client = Backend::new(config).unwrap();
    // With the backend's own station certificate this call succeeds (the test above).
    let refused = client.challenge().await.expect_err("refused handshake");
    assert!(
        matches!(refused, BackendError::Unreachable(_)),
        "{refused:?}"
    );

    // And nothing listening at all.
    let mut config = station_config(&running, &running.dir.path().join("pki"), STATION);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.url = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut client = Backend::new(config).unwrap();
    let down = client.challenge().await.expect_err("nothing listening");
    assert!(down.is_unreachable(), "{down:?}");
}
