//! The in-process backend of the agent's tests (`reader_agent::demo::backend`: mutual TLS, a
//! seeded synthetic registry, the test CSCA and CRL trusted), and what the tests count on it.

// desk_backend.rs uses all of them, desk_flow.rs only the backend.
#[allow(unused_imports)]
pub use reader_agent::demo::backend::{FACILITY, InProcessBackend, STATION, with_card};

use cccd_authenticity::test_pki::TestIssuer;

/// A running backend trusting `issuer`.
pub async fn backend(issuer: &TestIssuer) -> InProcessBackend {
    InProcessBackend::start(issuer)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Coverage checks the backend answered or refused, from its metrics (`bhyt_checks_total` and
/// `bhyt_refusals_total`): what a test counts to show the agent did or did not ask.
#[allow(dead_code)]
pub async fn checks_recorded(running: &InProcessBackend) -> f64 {
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

/// The kinds of the audit records the backend holds for this station's `request_id`, read from
/// its audit store: what a test counts to show a check was recorded once.
#[allow(dead_code)]
pub async fn audit_kinds(
    running: &InProcessBackend,
    request_id: &str,
) -> Vec<bhyt_verify::audit::EventKind> {
    use bhyt_verify::audit::store::{self, Filter};
    use bhyt_verify::config::Config;
    use bhyt_verify::db::{self, Schema};
    let config = Config {
        data_dir: running.dir.path().to_path_buf(),
        ..Config::default()
    };
    let pool = db::connect(&config.audit_url(), 1, Schema::Audit)
        .await
        .unwrap();
    let filter = Filter {
        from: 0,
        to: i64::MAX,
        facility_code: Some(FACILITY.into()),
        station_id: Some(STATION.into()),
        operator_hashes: Vec::new(),
        subject_hashes: Vec::new(),
        results: Vec::new(),
    };
    let records = store::query(&pool, &filter, None, 10_000).await.unwrap();
    pool.close().await;
    records
        .into_iter()
        .filter(|r| r.entry.request_id == request_id)
        .map(|r| r.entry.kind)
        .collect()
}
