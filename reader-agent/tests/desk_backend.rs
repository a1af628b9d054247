//! The agent's read and its backend client against a real backend started in process, over
//! mutual TLS with certificates from the backend's own PKI, and a trust directory holding the
//! test CSCA and its CRL on both sides. The card is emrtd's virtual CCCD in process (the PC/SC
//! path is desk_flow.rs): what is under test here is the check, end to end.

#[path = "common/backend.rs"]
mod backend;

use std::time::SystemTime;

use bhyt_proto::v1::ResultCode;
use bhyt_verify::pki::{Pki, Validity};
use bhyt_verify::tls::{Claims, Role};
use cccd_authenticity::passive::Policy;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::virtual_card::VirtualCard;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use reader_agent::backend::{Backend, BackendError, nonce_of};
use reader_agent::read::{DeskKey, ReadOptions, Verdict, load_trust_dir, read_card};

use backend::{FACILITY, STATION, backend, with_card};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_card_is_chip_verified_by_the_backend_and_a_clone_is_not() {
    let issuer = TestIssuer::vietnam_like();
    let running = backend(&issuer).await;
    let person = running.people[0].clone();
    let trust = load_trust_dir(&running.trust_dir()).unwrap();
    let config = running.client(&running.pki_dir(), STATION);
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
    let card = with_card(&person, None, |mrz, holder| {
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
    let files = with_card(&person, None, |mrz, holder| {
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
    let config = running.client(&other.path().join("pki"), STATION);
    let mut client = Backend::new(config).unwrap();
    // With the backend's own station certificate this call succeeds (the test above).
    let refused = client.challenge().await.expect_err("refused handshake");
    assert!(
        matches!(refused, BackendError::Unreachable(_)),
        "{refused:?}"
    );

    // And nothing listening at all.
    let mut config = running.client(&running.pki_dir(), STATION);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.url = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut client = Backend::new(config).unwrap();
    let down = client.challenge().await.expect_err("nothing listening");
    assert!(down.is_unreachable(), "{down:?}");
}
