//! A real backend started in this process for the demo and the agent's tests: a temp data
//! directory, a private PKI (server, one station, one auditor), a seeded synthetic registry, and
//! the test CSCA and its CRL in the trust directory both the backend and the agent read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bhyt_proto::v1::audit_service_client::AuditServiceClient;
use bhyt_proto::v1::{LookupRecord, QueryLookupsRequest};
use bhyt_verify::config::Config;
use bhyt_verify::coverage::{CardRecord, vietnam_date};
use bhyt_verify::db::{self, Schema};
use bhyt_verify::pki::{Pki, Validity};
use bhyt_verify::registry::generate::{self, Generator, Kind};
use bhyt_verify::server::App;
use bhyt_verify::tls::{Claims, Role};
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::lds::build::{Dg13Person, Td1Fields};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::backend::{BackendConfig, channel};
use crate::desk::FileConfig;

pub const FACILITY: &str = "01821";
pub const STATION: &str = "desk-1";
/// The certificate name of the auditor that reads the audit trail back.
const AUDITOR: &str = "auditor";

/// Why the in-process backend could not start or answer.
#[derive(Debug, thiserror::Error)]
#[error("in-process backend: {0}")]
pub struct BackendSetupError(String);

fn setup<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> BackendSetupError {
    move |e| BackendSetupError(format!("{what}: {e}"))
}

/// A backend serving mutual TLS on loopback ports; stops when dropped.
pub struct InProcessBackend {
    pub dir: tempfile::TempDir,
    /// The gRPC listener.
    pub grpc: std::net::SocketAddr,
    /// The operator endpoints (metrics, health).
    pub http: std::net::SocketAddr,
    /// Covered people with a citizen ID and a full birth date: the holders of the virtual cards.
    pub people: Vec<CardRecord>,
    _stop: oneshot::Sender<()>,
}

impl InProcessBackend {
    /// Seeds 200 synthetic registry rows, issues the certificates, trusts `issuer`'s CSCA and
    /// CRL, and serves on `127.0.0.1:0`.
    pub async fn start(issuer: &TestIssuer) -> Result<Self, BackendSetupError> {
        let dir = tempfile::tempdir().map_err(setup("temp dir"))?;
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let days = Validity::days(30);
        let pki = Pki::init(&dir.path().join("pki"), "test CA", days).map_err(setup("PKI"))?;
        pki.issue_server(
            "server",
            &["localhost".into()],
            &[std::net::Ipv4Addr::LOCALHOST.into()],
            days,
        )
        .map_err(setup("server certificate"))?;
        let station = Claims::new(Role::Station, Some(FACILITY.into()), Some(STATION.into()))
            .map_err(setup("station claims"))?;
        pki.issue_client(STATION, &station, days)
            .map_err(setup("station certificate"))?;
        let auditor = Claims::new(Role::Auditor, None, None).map_err(setup("auditor claims"))?;
        pki.issue_client(AUDITOR, &auditor, days)
            .map_err(setup("auditor certificate"))?;
        let trust = dir.path().join("trust");
        std::fs::create_dir_all(&trust).map_err(setup("trust dir"))?;
        std::fs::write(trust.join("csca.der"), &issuer.csca.der).map_err(setup("trust dir"))?;
        std::fs::write(trust.join("csca.crl"), &issuer.crl).map_err(setup("trust dir"))?;

        let pool = db::connect(&config.registry_url(), 2, Schema::Registry)
            .await
            .map_err(setup("registry"))?;
        let today = vietnam_date(time::OffsetDateTime::now_utc());
        let cards: Vec<_> = Generator::new(7, today).take(200).collect();
        generate::insert(&pool, cards.clone())
            .await
            .map_err(setup("registry seed"))?;
        pool.close().await;
        let people = cards
            .iter()
            .filter(|c| {
                c.kind == Kind::Valid
                    && c.record.citizen_id.is_some()
                    && c.record.birth.day.is_some()
            })
            .map(|c| c.record.clone())
            .take(2)
            .collect();

        let grpc = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(setup("bind"))?;
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(setup("bind"))?;
        let grpc_addr = grpc.local_addr().map_err(setup("bind"))?;
        let http_addr = http.local_addr().map_err(setup("bind"))?;
        let app = App::start(config).await.map_err(setup("start"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = app
                .serve(grpc, http, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(InProcessBackend {
            dir,
            grpc: grpc_addr,
            http: http_addr,
            people,
            _stop: stop,
        })
    }

    /// The private PKI's directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// The trust directory (test CSCA and CRL).
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// The client settings of certificate `name` from the PKI in `pki_dir` (this backend's, or
    /// another CA's to be refused), acting as the facility's desk.
    pub fn client(&self, pki_dir: &Path, name: &str) -> BackendConfig {
        BackendConfig {
            url: format!("https://{}", self.grpc),
            server_name: Some("localhost".into()),
            ca_cert: self.pki_dir().join("ca.pem"),
            station_cert: pki_dir.join("issued").join(format!("{name}.pem")),
            station_key: pki_dir.join("issued").join(format!("{name}.key")),
            facility_code: FACILITY.into(),
            station_id: STATION.into(),
            operator_name: "Lê Thị Thu".into(),
            operator_citizen_id: "079185000123".into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The desk's configuration: this backend, the station's certificate, the trust directory;
    /// the card on `reader` (any reader when `None`), waited for `card_wait`.
    pub fn agent_config(&self, reader: Option<&str>, card_wait: Duration) -> FileConfig {
        let station = self.client(&self.pki_dir(), STATION);
        FileConfig {
            backend_url: station.url,
            server_name: station.server_name,
            ca_cert: station.ca_cert,
            station_cert: station.station_cert,
            station_key: station.station_key,
            facility_code: station.facility_code,
            station_id: station.station_id,
            operator_name: station.operator_name,
            operator_citizen_id: station.operator_citizen_id,
            trust_dir: self.trust_dir(),
            reader: reader.map(str::to_owned),
            card_wait_secs: Some(card_wait.as_secs().max(1)),
            spool_dir: None,
            spool_key_file: None,
            spool_max_entries: None,
            his: None,
            display_face: false,
        }
    }

    /// The audit record `record_id` as an auditor reads it (`None`: no such check recorded).
    pub async fn audit_record(
        &self,
        record_id: &str,
    ) -> Result<Option<LookupRecord>, BackendSetupError> {
        let config = self.client(&self.pki_dir(), AUDITOR);
        let mut client = AuditServiceClient::new(channel(&config).map_err(setup("auditor"))?);
        let everything = QueryLookupsRequest {
            from: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let mut pages = client
            .query_lookups(everything)
            .await
            .map_err(setup("audit query"))?
            .into_inner();
        while let Some(page) = pages.message().await.map_err(setup("audit query"))? {
            if let Some(record) = page.records.into_iter().find(|r| r.record_id == record_id) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }
}

/// Calls `f` with the MRZ and DG13 of `person`'s card (ID, name and birth date from the
/// registry; `expiry` the MRZ's `YYMMDD` expiry, `None` for a card that does not expire).
pub fn with_card<R>(
    person: &CardRecord,
    expiry: Option<&str>,
    f: impl FnOnce(&Td1Fields<'_>, &Dg13Person<'_>) -> R,
) -> R {
    let id = person.citizen_id.as_deref().unwrap_or_default();
    let b = &person.birth;
    let (month, day) = (b.month.unwrap_or(1), b.day.unwrap_or(1));
    let dmy = format!("{day:02}/{month:02}/{}", b.year);
    let yymmdd = format!("{:02}{month:02}{day:02}", b.year % 100);
    let mrz = Td1Fields {
        document_number: id.get(3..).unwrap_or_default(),
        optional_data_1: id,
        date_of_birth: &yymmdd,
        date_of_expiry: expiry,
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
