//! The desk's whole flow through the real PC/SC path: a private pcscd with the vpcd driver, the
//! virtual CCCD from the test PKI served through vpcd, and a real backend (in process, mutual
//! TLS, its trust directory holding the test CSCA and CRL). The agent waits for the card with
//! its PC/SC watcher, reads it through libpcsclite, proves it, asks the backend and words the
//! answer for the desk.
//!
//! Each test holds the pcscd lock and bounds its waits. Linux only (Debian's pcscd and
//! vsmartcard-vpcd).

#![cfg(target_os = "linux")]

#[path = "common/backend.rs"]
mod backend;
#[allow(dead_code)] // pcsc_path.rs uses the rest of the harness (restarts, slots).
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bhyt_proto::v1::ResultCode;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::transport::{Transport, TransportError};
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};
use reader_agent::desk::{self, FileConfig, Lang, Outcome};
use reader_agent::read::{DeskKey, ReadFailure, Verdict};
use reader_agent::vpcd::{Behaviour, CONTACTLESS_ATR, InsertedCard, VirtualReader};
use support::pcscd::{PrivatePcscd, exclusive};

use backend::{Running, STATION, backend, station_config, with_card};

const WAIT: Duration = Duration::from_secs(20);

fn agent_config(running: &Running, reader: &str) -> FileConfig {
    let station = station_config(running, &running.dir.path().join("pki"), STATION);
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
        trust_dir: running.dir.path().join("trust"),
        reader: Some(reader.to_owned()),
        card_wait_secs: Some(WAIT.as_secs()),
    }
}

/// The chip on the vpcd reader, shared by every power-on of one insertion: the bridge asks its
/// factory for a chip at start and again at power-on and reset, and the AA key cannot be copied
/// into a second chip. Each insertion is served on its own thread, hence a thread-local.
struct SharedChip(Rc<RefCell<VirtualCard>>);

impl Transport for SharedChip {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.0.borrow_mut().transmit(command)
    }
}

thread_local! {
    static CHIP: RefCell<Option<Rc<RefCell<VirtualCard>>>> = const { RefCell::new(None) };
}

/// Puts a card on the vpcd reader: `files`, PACE with `can`, Active Authentication with `aa`.
fn insert(port: u16, files: FileSystem, can: String, aa: VirtualAa) -> InsertedCard {
    let mut aa = Some(aa);
    VirtualReader::on_port(port)
        .insert(
            move || {
                CHIP.with(|slot| {
                    let mut slot = slot.borrow_mut();
                    let chip = slot.get_or_insert_with(|| {
                        let card = VirtualCard::new(files.clone())
                            .with_pace(Box::new(VirtualPace::cccd(&can)));
                        let card = match aa.take() {
                            Some(aa) => card.with_active_authentication(aa),
                            None => card,
                        };
                        Rc::new(RefCell::new(card))
                    });
                    SharedChip(Rc::clone(chip))
                })
            },
            &CONTACTLESS_ATR,
            Behaviour::default(),
            WAIT,
        )
        .expect("card inserted into vpcd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_flow_genuine_card_clone_and_wrong_can_through_pcscd() {
    let _lock = exclusive();
    let (pcscd, port) = PrivatePcscd::start("BHYT Flow PCD");
    let reader = "BHYT Flow PCD 00 00";
    let issuer = TestIssuer::vietnam_like();
    let running = backend(&issuer).await;
    let person = running.people[0].clone();
    let id = person.citizen_id.clone().unwrap();
    let can = id[6..].to_owned();
    let config = agent_config(&running, reader);
    let key = DeskKey::from_id(&id).unwrap();

    // Genuine: verified by the agent and by the backend, CARD_VALID, said so at the desk.
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = with_card(&person, |mrz, holder| issuer.card_files(mrz, holder, &aa));
    let card = insert(port, files.clone(), can.clone(), aa);
    let (outcome, timings) = tokio::time::timeout(WAIT * 2, desk::check(&config, &key))
        .await
        .expect("the check finishes");
    let Outcome::Answered { read, answer } = &outcome else {
        panic!("{outcome:?}; pcscd log:\n{}", pcscd.log());
    };
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    assert_eq!(answer.result(), ResultCode::CardValid);
    assert!(answer.presence.as_ref().is_some_and(|p| p.verified));
    assert!(desk::chip_verified(read, answer));
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("ĐÃ XÁC THỰC"), "{text}");
    assert!(text.contains(&person.full_name), "{text}");
    assert!(text.contains(&answer.audit_record_id), "{text}");
    let english = desk::render(&outcome, Lang::En);
    assert!(english.contains("Chip: VERIFIED"), "{english}");
    eprintln!(
        "genuine card over pcscd+vpcd: {} APDUs; card {:?}, challenge {:?}, read {:?}, check {:?} \
         (reported, not asserted)",
        read.stats.total().apdus,
        timings.wait_for_card,
        timings.challenge,
        timings.read,
        timings.check
    );
    card.remove();
    wait_until_empty(reader);

    // A clone: the genuine files, another AA key. Coverage is answered; the desk is told the
    // chip is not verified, and why.
    let clone_aa = VirtualAa::clone_of(&VirtualAa::ecdsa_p256(AaHash::Sha256));
    let genuine = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = with_card(&person, |mrz, holder| {
        issuer.card_files(mrz, holder, &genuine)
    });
    let card = insert(port, files, can.clone(), clone_aa);
    let (outcome, _) = tokio::time::timeout(WAIT * 2, desk::check(&config, &key))
        .await
        .expect("the check finishes");
    let Outcome::Answered { read, answer } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(answer.result(), ResultCode::CardValid);
    assert!(!desk::chip_verified(read, answer));
    assert!(
        answer.presence.as_ref().is_some_and(|p| !p.verified),
        "{read:?} {:?}",
        answer.presence
    );
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("KHÔNG XÁC THỰC"), "{text}");
    assert!(!text.contains("ĐÃ XÁC THỰC"), "{text}");
    let english = desk::render(&outcome, Lang::En);
    assert!(english.contains("NOT VERIFIED"), "{english}");
    assert!(
        english.contains("active authentication failed"),
        "{english}"
    );
    card.remove();
    wait_until_empty(reader);

    // A wrong CAN: a clear error, and the backend is never asked for coverage.
    let audit_before = audit_records(&running).await;
    // Two checks so far (genuine, clone): the count works, so an equal count below means none.
    assert_eq!(audit_before, 2.0);
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = with_card(&person, |mrz, holder| issuer.card_files(mrz, holder, &aa));
    let card = insert(port, files, can, aa);
    let wrong = DeskKey::from_id("001099054321").unwrap();
    let (outcome, _) = tokio::time::timeout(WAIT * 2, desk::check(&config, &wrong))
        .await
        .expect("the check finishes");
    assert!(
        matches!(outcome, Outcome::ReadFailed(ReadFailure::WrongCan)),
        "{outcome:?}"
    );
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("sai số CCCD"), "{text}");
    // No CheckCoverage reached the backend (a challenge is not a check).
    assert_eq!(audit_records(&running).await, audit_before);

    // The backend unreachable (nothing listening where the configuration points): the card is
    // still read and proven, and the desk is told to use the official fallback.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let offline = FileConfig {
        backend_url: format!("https://{}", closed.local_addr().unwrap()),
        ..config.clone()
    };
    drop(closed);
    let (outcome, _) = tokio::time::timeout(WAIT * 2, desk::check(&offline, &key))
        .await
        .expect("the check finishes");
    let Outcome::Unreachable { read, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("KHÔNG KẾT NỐI ĐƯỢC MÁY CHỦ"), "{text}");
    assert!(text.contains("số thẻ BHYT"), "{text}");
    // Never "verified" without the backend's verdict on its own challenge.
    assert!(!text.contains("ĐÃ XÁC THỰC"), "{text}");
    let english = desk::render(&outcome, Lang::En);
    assert!(
        english.contains("NOT confirmed by the backend"),
        "{english}"
    );
    card.remove();
    wait_until_empty(reader);
}

/// Checks the backend answered or refused so far.
async fn audit_records(running: &Running) -> f64 {
    backend::checks_recorded(running).await
}

/// Waits until pcscd reports no card on `reader`: pcscd polls vpcd about every 400 ms, so a card
/// just pulled can still be listed as present, and the next check would find the old one.
fn wait_until_empty(reader: &str) {
    let name = std::ffi::CString::new(reader).unwrap();
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let mut states = [pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE)];
        if context
            .get_status_change(Duration::from_millis(500), &mut states)
            .is_ok()
            && !states[0].event_state().contains(pcsc::State::PRESENT)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the card stayed on {reader} for {WAIT:?} after its removal");
}
