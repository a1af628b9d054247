//! Personal data never reaches the logs: the real binary, at its most verbose log level, serves
//! checks by citizen ID and card number (valid, malformed, unknown), and its log output is
//! searched for every identifier and name it was given.

use std::process::{Command, Stdio};

use bhyt_proto::v1::check_coverage_request::Subject;
use bhyt_proto::v1::verification_service_client::VerificationServiceClient;
use bhyt_verify::registry::generate::Kind;

use crate::app;
use crate::fixtures::{self, by_citizen, first};
use crate::support::{free_port, wait_for};

#[tokio::test]
async fn logs_carry_no_identifiers_or_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let valid = first(&cards, Kind::Valid);
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_bhyt-verify"))
        .arg("serve")
        .env("BHYT_DATA_DIR", dir.path())
        .env("BHYT_LISTEN", format!("127.0.0.1:{port}"))
        .env("BHYT_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "trace")
        .env("BHYT_TLS__ENABLED", "false")
        .env("BHYT_TLS__DEV_PLAINTEXT", "true")
        // A file, not a pipe: trace output would fill a pipe nobody reads yet.
        .stderr(std::fs::File::create(&log_path).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let mut client = VerificationServiceClient::new(channel.connect().await.unwrap());
    let id = valid.citizen_id.clone().unwrap();
    client
        .check_coverage(by_citizen("p1", valid))
        .await
        .unwrap();
    let mut by_card = by_citizen("p2", valid);
    by_card.subject = Some(Subject::CardNumber(valid.card_number.clone()));
    client.check_coverage(by_card).await.unwrap();
    let mut malformed = by_citizen("p3", valid);
    malformed.subject = Some(Subject::CitizenId(format!("{}9", &id[..11])));
    malformed.date_of_birth.as_mut().unwrap().year += 1;
    let _ = client.check_coverage(malformed).await;
    let mut wrong_name = by_citizen("p4", valid);
    wrong_name.full_name = "Thân Thị Riêngtư".into();
    client.check_coverage(wrong_name).await.unwrap();

    // SIGTERM: a clean shutdown, so every log line is written.
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
        logs.len() > 1000,
        "trace logging was on: {} bytes",
        logs.len()
    );
    for secret in [
        id.as_str(),
        &id[3..],
        &format!("{}9", &id[..11]),
        &valid.card_number,
        &valid.social_insurance_number,
        &valid.full_name,
        "Riêngtư",
        fixtures::OPERATOR_ID,
        "Lê Thị Thu",
    ] {
        assert!(
            !logs.contains(secret),
            "the logs contain personal data ({} characters)",
            secret.len()
        );
    }
}
