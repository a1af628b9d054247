//! `bhyt-verify demo`: the whole backend on one machine with nothing else installed. Seeds a
//! synthetic registry on first run, serves, and shows the answers to real calls over gRPC: one
//! of each kind of card, a malformed ID, and a repeated request.

use std::time::Duration;

use anyhow::Context;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_proto::v1::{
    CheckCoverageRequest, CheckCoverageResponse, Date, IdentityEvidence, IdentityMethod, Operator,
    ResultCode, check_coverage_request::Subject,
};
use bhyt_verify::config::Config;
use bhyt_verify::coverage::vietnam_date;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::registry::generate::{self, Generator};
use bhyt_verify::server::App;
use emrtd::cccd::id_number::CitizenId;
use sqlx::{AnyPool, Row};
use std::path::PathBuf;
use time::OffsetDateTime;
use tokio::net::TcpListener;

use bhyt_verify::pki::{Pki, Validity};
use bhyt_verify::tls::{Claims, Role};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// People in the synthetic registry seeded on first run.
    #[arg(long, default_value_t = 20_000)]
    people: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after showing the calls instead of serving on.
    #[arg(long)]
    exit: bool,
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let registry = db::connect(&config.registry_url(), 4, Schema::Registry).await?;
    let cards: i64 = sqlx::query("SELECT COUNT(*) FROM cards")
        .fetch_one(&registry)
        .await?
        .try_get(0)?;
    if cards == 0 {
        println!(
            "Seeding a synthetic registry of {} people (seed {}) ...",
            args.people, args.seed
        );
        let today = vietnam_date(OffsetDateTime::now_utc());
        let people = Generator::new(args.seed, today).take(args.people as usize);
        let inserted = generate::insert(&registry, people).await?;
        println!("  {inserted} cards in {}", config.registry_url());
    }
    let examples = Examples::find(&registry, args.seed).await?;
    let desk = demo_certificates(&config)?;

    let grpc = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;
    let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
    let app = App::start(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(grpc, http, async move {
        tokio::select! {
            _ = stopped => {}
            _ = crate::shutdown_signal() => {}
        }
    }));
    println!(
        "\nServing gRPC on {grpc_addr}; metrics and health on http://{http_addr}/metrics, /health\n"
    );

    let mut endpoint = Channel::from_shared(match &desk {
        Some(_) => format!("https://{grpc_addr}"),
        None => format!("http://{grpc_addr}"),
    })?
    .connect_timeout(Duration::from_secs(5));
    if let Some(desk) = &desk {
        endpoint = endpoint.tls_config(desk.client_tls()?)?;
    }
    let mut client = VerificationServiceClient::new(endpoint.connect().await?);
    examples.show(&mut client).await?;

    println!("\nTry it yourself (server reflection is on):");
    match &desk {
        Some(desk) => println!(
            "  grpcurl -cacert {ca} -cert {cert} -key {key} -authority localhost {grpc_addr} \\\n    list bhyt.verify.v1.VerificationService",
            ca = desk.ca.display(),
            cert = desk.cert.display(),
            key = desk.key.display(),
        ),
        None => {
            println!("  grpcurl -plaintext {grpc_addr} list bhyt.verify.v1.VerificationService")
        }
    }
    println!("  curl http://{http_addr}/health");
    println!("  bhyt-verify proof verify <proof_token of an answer>");
    if args.exit {
        let _ = stop.send(());
    } else {
        println!("\nServing until Ctrl-C.");
    }
    server.await??;
    Ok(())
}

/// The demo desk's certificate files.
struct DeskCertificate {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl DeskCertificate {
    fn client_tls(&self) -> anyhow::Result<ClientTlsConfig> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&self.ca)?))
            .domain_name("localhost")
            .identity(Identity::from_pem(
                std::fs::read(&self.cert)?,
                std::fs::read(&self.key)?,
            )))
    }
}

/// With mutual TLS on (the default), a private CA under the data directory, the server's
/// certificate, and certificates for the demo desk (`01821`/`demo-desk`) and an auditor, each
/// made once, as an operator would with `bhyt-verify pki`.
fn demo_certificates(config: &Config) -> anyhow::Result<Option<DeskCertificate>> {
    if !config.tls.enabled {
        return Ok(None);
    }
    let dir = config.data_dir.join("pki");
    let days = Validity::days(365);
    let pki = if dir.join("ca.pem").exists() {
        Pki::open(&dir)?
    } else {
        println!(
            "Creating a private CA in {} with certificates for the demo",
            dir.display()
        );
        let pki = Pki::init(&dir, "bhyt-verify demo CA", days)?;
        pki.issue_server(
            "server",
            &["localhost".into()],
            &["127.0.0.1".parse()?],
            days,
        )?;
        let desk = Claims::new(
            Role::Station,
            Some("01821".into()),
            Some("demo-desk".into()),
        )?;
        pki.issue_client("demo-desk", &desk, days)?;
        pki.issue_client("auditor", &Claims::new(Role::Auditor, None, None)?, days)?;
        pki
    };
    let layout = pki.layout();
    Ok(Some(DeskCertificate {
        ca: layout.ca_cert(),
        cert: layout.issued_cert("demo-desk"),
        key: layout.issued_key("demo-desk"),
    }))
}

/// A registered person to ask about.
struct Person {
    citizen_id: Option<String>,
    card_number: String,
    full_name: String,
    birth: Date,
}

struct Examples {
    cases: Vec<(&'static str, Person)>,
    unregistered: CitizenId,
}

impl Examples {
    /// One person of each kind, picked from the registry itself.
    async fn find(pool: &AnyPool, seed: u64) -> anyhow::Result<Self> {
        let today = bhyt_verify::registry::iso_date(vietnam_date(OffsetDateTime::now_utc()));
        let kinds: [(&'static str, &str); 6] = [
            (
                "valid card",
                "status = 'active' AND replaced_by IS NULL AND insurer = 'social_security' AND valid_to >= $1 AND valid_from <= $1 AND citizen_id IS NOT NULL",
            ),
            (
                "expired card",
                "status = 'active' AND replaced_by IS NULL AND valid_to < $1 AND citizen_id IS NOT NULL",
            ),
            (
                "revoked card",
                "status = 'revoked' AND replaced_by IS NULL AND citizen_id IS NOT NULL AND $1 <> ''",
            ),
            (
                "reduced card",
                "status LIKE 'reduced%' AND replaced_by IS NULL AND citizen_id IS NOT NULL AND $1 <> ''",
            ),
            (
                "re-issued card, asked by its old number",
                "replaced_by IS NOT NULL AND $1 <> ''",
            ),
            (
                "card of the defence insurer",
                "insurer = 'defence' AND status = 'active' AND replaced_by IS NULL AND valid_to >= $1 AND citizen_id IS NOT NULL",
            ),
        ];
        let mut cases = Vec::new();
        for (label, condition) in kinds {
            let sql = format!(
                "SELECT citizen_id, card_number, full_name, birth_year, birth_month, birth_day \
                 FROM cards WHERE {condition} ORDER BY card_number LIMIT 1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&today)
                .fetch_optional(pool)
                .await?;
            if let Some(row) = row {
                let part =
                    |i: usize| row.try_get::<Option<i64>, _>(i).ok().flatten().unwrap_or(0) as u32;
                cases.push((
                    label,
                    Person {
                        citizen_id: row.try_get(0)?,
                        card_number: row.try_get(1)?,
                        full_name: row.try_get(2)?,
                        birth: Date {
                            year: row.try_get::<i64, _>(3)? as u32,
                            month: part(4),
                            day: part(5),
                        },
                    },
                ));
            }
        }
        let unregistered = generate::unregistered_citizen_ids(seed)
            .next()
            .context("the generator always yields unregistered IDs")?;
        Ok(Self {
            cases,
            unregistered,
        })
    }

    async fn show(&self, client: &mut VerificationServiceClient<Channel>) -> anyhow::Result<()> {
        let mut n = 0;
        let mut next_id = || {
            n += 1;
            format!("demo-{}-{n}", std::process::id())
        };
        for (label, person) in &self.cases {
            let subject = match (&person.citizen_id, label.contains("re-issued")) {
                (Some(id), false) => Subject::CitizenId(id.clone()),
                _ => Subject::CardNumber(person.card_number.clone()),
            };
            let request = request(next_id(), subject, &person.full_name, person.birth);
            show(label, client.check_coverage(request).await);
        }
        if let Some((_, person)) = self.cases.first() {
            let id = person.citizen_id.clone().unwrap_or_default();
            let wrong_name = request(
                next_id(),
                Subject::CitizenId(id.clone()),
                "Hoàng Văn Sai",
                person.birth,
            );
            show(
                "valid card, wrong name typed",
                client.check_coverage(wrong_name).await,
            );
            let year_only = Date {
                month: 0,
                day: 0,
                ..person.birth
            };
            let repeat = request(
                next_id(),
                Subject::CitizenId(id),
                &person.full_name,
                year_only,
            );
            show(
                "valid card, year of birth only (second look-up: cached)",
                client.check_coverage(repeat.clone()).await,
            );
            show(
                "the same request again (idempotent: same answer, same record)",
                client.check_coverage(repeat).await,
            );
        }
        let born = Date {
            year: self.unregistered.birth_year().into(),
            month: 1,
            day: 1,
        };
        let unknown = request(
            next_id(),
            Subject::CitizenId(self.unregistered.as_str().into()),
            "Nguyễn Văn An",
            born,
        );
        show(
            "an ID that is not registered",
            client.check_coverage(unknown).await,
        );
        let malformed = request(
            next_id(),
            Subject::CitizenId("003199012345".into()),
            "Nguyễn Văn An",
            Date {
                year: 1990,
                month: 1,
                day: 1,
            },
        );
        show(
            "a malformed ID (no province 003)",
            client.check_coverage(malformed).await,
        );
        Ok(())
    }
}

fn request(request_id: String, subject: Subject, name: &str, birth: Date) -> CheckCoverageRequest {
    CheckCoverageRequest {
        request_id,
        subject: Some(subject),
        full_name: name.into(),
        date_of_birth: Some(birth),
        operator: Some(Operator {
            full_name: "Lê Thị Thu".into(),
            citizen_id: "079185000123".into(),
        }),
        facility_code: "01821".into(),
        station_id: "demo-desk".into(),
        evidence: Some(IdentityEvidence {
            method: IdentityMethod::Typed as i32,
            ..Default::default()
        }),
        presence_proof: None,
    }
}

fn show(label: &str, answer: Result<tonic::Response<CheckCoverageResponse>, tonic::Status>) {
    println!("• {label}");
    match answer {
        Err(status) => println!("    gRPC {:?}: {}", status.code(), status.message()),
        Ok(response) => {
            let r = response.into_inner();
            let result = ResultCode::try_from(r.result).map_or("?", |c| c.as_str_name());
            let message = r.message.as_ref().map_or("", |m| m.vi.as_str());
            println!(
                "    {result} ({}) usable={}: {message}",
                r.source_result_code, r.usable
            );
            if let Some(c) = &r.coverage {
                let to = c.valid_to.as_ref().map_or(String::new(), |d| {
                    format!("{:02}/{:02}/{}", d.day, d.month, d.year)
                });
                println!(
                    "    card {}, benefit {} ({}%), valid to {to}, registered at {}{}",
                    c.card_number,
                    c.benefit_level,
                    c.benefit_percent,
                    c.primary_care_facility,
                    c.new_card
                        .as_ref()
                        .map_or(String::new(), |n| format!(", new card {}", n.card_number)),
                );
            }
            let cache = r
                .cache
                .map(|c| (c.status, c.age_seconds))
                .unwrap_or_default();
            let cache_name =
                bhyt_proto::v1::CacheStatus::try_from(cache.0).map_or("?", |c| c.as_str_name());
            println!(
                "    proof of check {}…",
                &r.proof_token[..r.proof_token.len().min(40)]
            );
            println!(
                "    {cache_name}, age {}s, audit record {}",
                cache.1, r.audit_record_id
            );
        }
    }
}
