//! A real backend started in process for the agent's tests: mutual TLS with certificates from
//! its own PKI, a seeded synthetic registry, and the test CSCA and CRL in its trust directory.

use std::path::Path;
use std::time::Duration;

use bhyt_verify::config::Config;
use bhyt_verify::coverage::{CardRecord, vietnam_date};
use bhyt_verify::db::{self, Schema};
use bhyt_verify::pki::{Pki, Validity};
use bhyt_verify::registry::generate::{self, Generator, Kind};
use bhyt_verify::server::App;
use bhyt_verify::tls::{Claims, Role};
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::lds::build::{Dg13Person, Td1Fields};
use reader_agent::backend::BackendConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const FACILITY: &str = "01821";
pub const STATION: &str = "desk-1";

/// A backend with mutual TLS, a seeded registry and the test CSCA trusted.
pub struct Running {
    pub dir: tempfile::TempDir,
    pub grpc: std::net::SocketAddr,
    /// The operator endpoints (metrics).
    pub http: std::net::SocketAddr,
    pub people: Vec<CardRecord>,
    _stop: oneshot::Sender<()>,
}

pub async fn backend(issuer: &TestIssuer) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
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
    let http_addr = http.local_addr().unwrap();
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
        http: http_addr,
        people,
        _stop: stop,
    }
}

pub fn station_config(running: &Running, pki_dir: &Path, name: &str) -> BackendConfig {
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
pub fn with_card<R>(
    person: &CardRecord,
    f: impl FnOnce(&Td1Fields<'_>, &Dg13Person<'_>) -> R,
) -> R {
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

/// Coverage checks the backend answered or refused, from its metrics (`bhyt_checks_total` and
/// `bhyt_refusals_total`): what a test counts to show the agent did or did not ask.
#[allow(dead_code)]
pub async fn checks_recorded(running: &Running) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(running.http).await.unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    let counted: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("bhyt_checks_total") || l.starts_with("bhyt_refusals_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    counted.iter().sum()
}
