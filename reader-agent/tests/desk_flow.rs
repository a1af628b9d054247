//! The desk's whole flow through the real PC/SC path: a private pcscd with the vpcd driver, the
//! virtual CCCDs of the test PKI served through vpcd, and a real backend (in process, mutual
//! TLS, its trust directory holding the test CSCA and CRL). The agent waits for the card with
//! its PC/SC watcher, reads it through libpcsclite, proves it, asks the backend and words the
//! answer for the desk; where the backend answered, its audit record is read back as an auditor
//! reads it.
//!
//! Each test holds the pcscd lock and bounds its waits. Linux only (Debian's pcscd and
//! vsmartcard-vpcd).

#![cfg(target_os = "linux")]

#[path = "common/backend.rs"]
mod backend;
#[path = "common/his_client.rs"]
mod his_client;
#[path = "common/relay.rs"]
mod relay;
#[allow(dead_code)] // pcsc_path.rs uses the rest of the harness.
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bhyt_proto::v1::{
    CheckCoverageResponse, IdentityMethod, LookupRecord, PresenceStatus, ResultCode,
};
use bhyt_verify::coverage::CardRecord;
use cccd_authenticity::test_pki::TestIssuer;
use reader_agent::demo::backend::InProcessBackend;
use reader_agent::demo::cards::{self, CardKind, qr_text};
use reader_agent::demo::wait_until_empty;
use reader_agent::desk::{self, FileConfig, Lang, Outcome, Timings};
use reader_agent::face::{self, FaceFailure};
use reader_agent::his::HisConfig;
use reader_agent::read::{Access, ChipRead, DeskKey, ReadFailure, Unproven, Verdict};
use reader_agent::station::Station;
use reader_agent::vpcd::{Behaviour, InsertedCard};
use support::{PrivateReader, WAIT};
use tokio::io::AsyncWriteExt;

use backend::{audit_kinds, backend, checks_recorded};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use emrtd::virtual_card::FileLog;

/// A desk: its reader (a private pcscd), a running backend, the holder of the cards, and the
/// agent's configuration for that reader.
struct Desk {
    reader: PrivateReader,
    issuer: TestIssuer,
    backend: InProcessBackend,
    person: CardRecord,
    config: FileConfig,
}

impl Desk {
    async fn start(reader_name: &str) -> Desk {
        let reader = PrivateReader::start(reader_name);
        let issuer = TestIssuer::vietnam_like();
        let backend = backend(&issuer).await;
        let person = backend.people[0].clone();
        let config = backend.agent_config(Some(&reader.name), WAIT);
        Desk {
            reader,
            issuer,
            backend,
            person,
            config,
        }
    }

    /// The typed ID of the card's holder.
    fn typed_id(&self) -> DeskKey {
        DeskKey::from_id(self.person.citizen_id.as_deref().unwrap()).unwrap()
    }

    /// Puts the holder's card of `kind` on the reader.
    fn insert(&self, kind: CardKind, behaviour: Behaviour) -> InsertedCard {
        cards::insert(
            self.reader.port,
            &self.issuer,
            &self.person,
            kind,
            behaviour,
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}; pcscd log:\n{}", self.reader.pcscd.log()))
    }

    /// [`Self::insert`], with the log of the files the chip is asked for.
    fn insert_logged(&self, kind: CardKind, behaviour: Behaviour) -> (InsertedCard, FileLog) {
        cards::insert_logged(
            self.reader.port,
            &self.issuer,
            &self.person,
            kind,
            behaviour,
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}; pcscd log:\n{}", self.reader.pcscd.log()))
    }

    /// One check at the desk, bounded.
    async fn check(&self, key: &DeskKey) -> (Outcome, Timings) {
        tokio::time::timeout(WAIT * 2, desk::check(&self.config, key))
            .await
            .expect("the check finishes")
    }

    /// Takes the card off and waits until pcscd no longer lists it, so the next check cannot
    /// find the old card.
    fn remove(&self, card: InsertedCard) {
        card.remove();
        assert!(
            wait_until_empty(&self.reader.name, WAIT),
            "the card stayed on the reader for {WAIT:?} after its removal"
        );
    }

    /// The audit record of `answer`, as an auditor reads it.
    async fn record(&self, answer: &CheckCoverageResponse) -> LookupRecord {
        self.backend
            .audit_record(&answer.audit_record_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("the answer's audit record")
    }
}

fn answered(outcome: &Outcome) -> (&ChipRead, &CheckCoverageResponse) {
    match outcome {
        Outcome::Answered { read, answer } => (read, answer),
        other => panic!("not answered: {other:?}"),
    }
}

fn reasons(read: &ChipRead) -> Vec<Unproven> {
    match read.verdict() {
        Verdict::NotVerified(reasons) => reasons,
        other => panic!("{other:?}: {read:?}"),
    }
}

/// Asserts the desk says "verified" in both languages and the audit record is chip-verified.
async fn assert_chip_verified(desk: &Desk, outcome: &Outcome) {
    let (read, answer) = answered(outcome);
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    assert_eq!(answer.result(), ResultCode::CardValid);
    assert!(
        answer.presence.as_ref().is_some_and(|p| p.verified),
        "{:?}",
        answer.presence
    );
    assert!(desk::chip_verified(read, answer));
    let text = desk::render(outcome, Lang::Vi);
    assert!(text.contains("ĐÃ XÁC THỰC"), "{text}");
    assert!(text.contains(&desk.person.full_name), "{text}");
    assert!(text.contains(&answer.audit_record_id), "{text}");
    let english = desk::render(outcome, Lang::En);
    assert!(english.contains("Chip: VERIFIED"), "{english}");
    let record = desk.record(answer).await;
    assert_eq!(record.presence(), PresenceStatus::Verified, "{record:?}");
    let evidence = record.evidence.expect("the record's evidence");
    assert_eq!(evidence.method(), IdentityMethod::Chip);
    assert!(evidence.passive_authentication && evidence.active_authentication);
}

/// Asserts coverage was answered but the desk is told the chip is not verified, with `vi` and
/// `en` among the reasons, and the audit record says the proof failed.
async fn assert_not_chip_verified(desk: &Desk, outcome: &Outcome, vi: &str, en: &str) {
    let (read, answer) = answered(outcome);
    assert_eq!(answer.result(), ResultCode::CardValid);
    assert!(!desk::chip_verified(read, answer));
    assert!(
        answer.presence.as_ref().is_some_and(|p| !p.verified),
        "{read:?} {:?}",
        answer.presence
    );
    let text = desk::render(outcome, Lang::Vi);
    assert!(text.contains("KHÔNG XÁC THỰC"), "{text}");
    assert!(!text.contains("ĐÃ XÁC THỰC"), "{text}");
    assert!(text.contains(vi), "{text}");
    let english = desk::render(outcome, Lang::En);
    assert!(english.contains("NOT VERIFIED"), "{english}");
    assert!(!english.contains("Chip: VERIFIED"), "{english}");
    assert!(english.contains(en), "{english}");
    let record = desk.record(answer).await;
    assert_eq!(record.presence(), PresenceStatus::Failed, "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_card_clone_wrong_can_and_offline_through_pcscd() {
    let desk = Desk::start("BHYT Flow PCD").await;
    let key = desk.typed_id();

    // Genuine: verified by the agent and by the backend, CARD_VALID, said so at the desk, and
    // the audit record is marked chip-verified.
    let card = desk.insert(CardKind::Genuine, Behaviour::default());
    let (outcome, timings) = desk.check(&key).await;
    assert_chip_verified(&desk, &outcome).await;
    let (read, _) = answered(&outcome);
    assert_eq!(read.access, Access::PaceCan);
    eprintln!(
        "genuine card over pcscd+vpcd: {} APDUs; card {:?}, challenge {:?}, read {:?} ({:?}), \
         check {:?} (reported, not asserted)",
        read.stats.total().apdus,
        timings.wait_for_card,
        timings.challenge,
        timings.read,
        read.timings,
        timings.check
    );
    desk.remove(card);

    // A clone: the genuine files, another AA key. Coverage is answered; the desk is told the
    // chip is not verified, and why.
    let card = desk.insert(CardKind::Clone, Behaviour::default());
    let (outcome, _) = desk.check(&key).await;
    assert_not_chip_verified(
        &desk,
        &outcome,
        "xác thực chủ động thất bại",
        "active authentication failed",
    )
    .await;
    desk.remove(card);

    // A wrong CAN: a clear error, and the backend is never asked for coverage.
    let before = checks_recorded(&desk.backend).await;
    // Two checks so far (genuine, clone): the count works, so an equal count below means none.
    assert_eq!(before, 2.0);
    let card = desk.insert(CardKind::Genuine, Behaviour::default());
    let wrong = DeskKey::from_id("001099054321").unwrap();
    let (outcome, _) = desk.check(&wrong).await;
    assert!(
        matches!(outcome, Outcome::ReadFailed(ReadFailure::WrongCan)),
        "{outcome:?}"
    );
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("sai số CCCD"), "{text}");
    // No CheckCoverage reached the backend (a challenge is not a check).
    assert_eq!(checks_recorded(&desk.backend).await, before);

    // The backend unreachable (nothing listening where the configuration points): the card is
    // still read and proven, and the desk is told to use the official fallback.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let offline = FileConfig {
        backend_url: format!("https://{}", closed.local_addr().unwrap()),
        ..desk.config.clone()
    };
    drop(closed);
    let (outcome, _) = tokio::time::timeout(WAIT * 2, desk::check(&offline, &key))
        .await
        .expect("the check finishes");
    let Outcome::Unreachable { read, pending, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    // The check to keep for later: this patient, the desk's claims, no proof (the chip signed
    // no challenge of the backend's) and a request id of its own. Replay: tests/spool.rs.
    assert!(pending.presence_proof.is_none());
    assert!(
        pending
            .evidence
            .as_ref()
            .is_some_and(|e| e.passive_authentication)
    );
    assert_eq!(pending.full_name, desk.person.full_name);
    assert_eq!(pending.request_id.len(), 36);
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
    desk.remove(card);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_dg13_is_answered_but_never_shown_as_chip_verified() {
    let desk = Desk::start("BHYT Tamper PCD").await;
    // DG13 rewritten after signing (another residence, so name and ID still match the
    // registry): without the hash check this card is verified.
    let card = desk.insert(CardKind::TamperedDg13, Behaviour::default());
    let (outcome, _) = desk.check(&desk.typed_id()).await;
    let (read, _) = answered(&outcome);
    assert_eq!(reasons(read), [Unproven::HashMismatch(13)]);
    assert!(!read.passive_genuine());
    assert_not_chip_verified(
        &desk,
        &outcome,
        "DG13 không khớp mã băm",
        "DG13 does not match its hash in EF.SOD",
    )
    .await;
    let (_, answer) = answered(&outcome);
    let record = desk.record(answer).await;
    assert!(!record.evidence.unwrap().passive_authentication);
    desk.remove(card);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_from_an_untrusted_signer_is_named_and_not_chip_verified() {
    let desk = Desk::start("BHYT Forger PCD").await;
    // Issued under a look-alike CSCA (same names, other keys): a trust store that matched
    // names only would pass it.
    let card = desk.insert(CardKind::UntrustedSigner, Behaviour::default());
    let (outcome, _) = desk.check(&desk.typed_id()).await;
    let (read, _) = answered(&outcome);
    assert!(
        matches!(reasons(read)[..], [Unproven::UntrustedSigner(_)]),
        "{read:?}"
    );
    assert_not_chip_verified(
        &desk,
        &outcome,
        "cơ quan ký không nằm trong danh sách tin cậy",
        "the document signer is not trusted",
    )
    .await;
    desk.remove(card);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pulled_mid_read_is_named_and_the_next_insertion_verifies() {
    let desk = Desk::start("BHYT Pulled PCD").await;
    let key = desk.typed_id();
    // Pulled after PACE, among the files (about 8 APDUs open the chip).
    let pulled = Behaviour {
        pull_after_apdus: Some(10),
        ..Behaviour::default()
    };
    let card = desk.insert(CardKind::Genuine, pulled);
    let (outcome, _) = desk.check(&key).await;
    // Without the pull this is answered and verified.
    assert!(
        matches!(outcome, Outcome::ReadFailed(ReadFailure::Removed)),
        "{outcome:?}"
    );
    assert_eq!(card.counters().apdus(), 10);
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("thẻ bị nhấc ra khi đang đọc"), "{text}");
    assert!(text.contains("Chưa hỏi cổng BHYT"), "{text}");
    let english = desk::render(&outcome, Lang::En);
    assert!(english.contains("removed during the read"), "{english}");
    // Nothing half-read went to the backend.
    assert_eq!(checks_recorded(&desk.backend).await, 0.0);
    desk.remove(card);

    // Put back: the second attempt verifies end to end.
    let card = desk.insert(CardKind::Genuine, Behaviour::default());
    let (outcome, _) = desk.check(&key).await;
    assert_chip_verified(&desk, &outcome).await;
    desk.remove(card);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_refusing_pace_is_read_with_bac_from_the_qr_code() {
    let desk = Desk::start("BHYT Bac PCD").await;
    let card = desk.insert(CardKind::PaceRefused, Behaviour::default());
    // Typed ID only: PACE is refused and BAC needs the QR's dates; the desk asks for the QR.
    let (outcome, _) = desk.check(&desk.typed_id()).await;
    assert!(
        matches!(outcome, Outcome::ReadFailed(ReadFailure::NeedQrForBac)),
        "{outcome:?}"
    );
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("hãy quét mã QR"), "{text}");
    assert_eq!(checks_recorded(&desk.backend).await, 0.0);

    // The QR scanned, the same card still on the reader: BAC with the key worked out from the
    // QR's birth and issue dates (a wrong expiry rule makes this WrongMrzKey).
    let qr = DeskKey::from_qr(&qr_text(&desk.person)).unwrap();
    let (outcome, _) = desk.check(&qr).await;
    let (read, _) = answered(&outcome);
    assert_eq!(read.access, Access::Bac);
    assert_chip_verified(&desk, &outcome).await;
    let text = desk::render(&outcome, Lang::Vi);
    assert!(text.contains("Mở chip: BAC"), "{text}");
    desk.remove(card);
}

/// pcsc-lite 1.9.9 adds serial readers such as vpcd only at start (see pcsc_path.rs), so the
/// reader is plugged in across a pcscd restart: the desk's watcher loses the service, gets it
/// back, and finds the new reader with the card on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_plugged_in_while_the_desk_waits_is_used() {
    let mut desk = Desk::start("BHYT Old PCD").await;
    let hot = "BHYT Hot PCD 00 00";
    let config = FileConfig {
        reader: Some(hot.to_owned()),
        ..desk.config.clone()
    };
    let key = desk.typed_id();
    let finished = AtomicBool::new(false);
    let check = async {
        let result = tokio::time::timeout(WAIT * 2, desk::check(&config, &key)).await;
        finished.store(true, Ordering::SeqCst);
        result.expect("the check finishes")
    };
    let plug_in = async {
        // The desk is waiting, with no such reader yet.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the desk gave up before the reader came"
        );
        let pcscd = &mut desk.reader.pcscd;
        pcscd.remove_vpcd("vpcd-0").expect("unplug the old reader");
        let port = pcscd
            .add_vpcd("vpcd-0", "BHYT Hot PCD")
            .expect("plug in the new one");
        pcscd.restart().expect("restart pcscd");
        desk.reader.port = port;
        desk.insert(CardKind::Genuine, Behaviour::default())
    };
    let ((outcome, _), card) = tokio::join!(check, plug_in);
    assert_chip_verified(&desk, &outcome).await;
    card.remove();
    assert!(wait_until_empty(hot, WAIT));
}

/// The console's text, shared with the running station.
#[derive(Clone, Default)]
struct Console(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Reads the stream until an event of `kind`; every message read, in order.
async fn until(stream: &mut his_client::Stream, kind: &str) -> Vec<his_client::Message> {
    let mut seen = Vec::new();
    loop {
        let message = stream
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before {kind}: {seen:?}"));
        let done = message.event == kind;
        seen.push(message);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_a_typed_key_and_the_his_stream_receives_each_event() {
    let desk = Desk::start("BHYT Run PCD").await;
    let reader = desk.reader.name.as_str();
    let person = desk.person.clone();
    let id = person.citizen_id.clone().unwrap();
    let his_dir = tempfile::tempdir().unwrap();
    let his = HisConfig {
        listen: "127.0.0.1:0".into(),
        token_file: his_dir.path().join("his-token"),
        max_streams: 2,
        events_kept: 100,
    };
    let config = FileConfig {
        his: Some(his.clone()),
        ..desk.config.clone()
    };
    let station = Station::start(config.clone(), Lang::En)
        .await
        .expect("the station starts");
    let addr = station.his_addr().expect("the HIS port is bound");
    let token = std::fs::read_to_string(&his.token_file).unwrap();
    let token = token.trim();

    // The desk: a line that is no key, then the patient's ID; the card comes after. The HIS
    // connects once the station runs (it serves the port from then on).
    let (mut keys, input) = tokio::io::duplex(4096);
    let console = Console::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        station.run(tokio::io::BufReader::new(input), console.clone(), async {
            let _ = stopped.await;
        }),
    );
    let mut stream = his_client::Stream::open(addr, token, None).await;
    keys.write_all(format!("12345\n{id}\n").as_bytes())
        .await
        .unwrap();
    let before = until(&mut stream, "check_started").await;
    // The watcher's reader_added comes whenever its thread lists the readers: left aside.
    let desk_only = |messages: &[his_client::Message]| -> Vec<String> {
        messages
            .iter()
            .map(|m| m.event.clone())
            .filter(|kind| kind != "reader_added")
            .collect()
    };
    let kinds = desk_only(&before);
    assert!(
        kinds.ends_with(&["input_rejected".to_owned(), "check_started".to_owned()]),
        "{kinds:?}"
    );
    let rejected = before.iter().find(|m| m.event == "input_rejected").unwrap();
    assert_eq!(rejected.data["reason"], "not_an_id");
    assert_eq!(before.last().unwrap().data["key"], "id");

    let card = desk.insert(CardKind::Genuine, Behaviour::default());
    let after = tokio::time::timeout(WAIT * 2, until(&mut stream, "check_answered"))
        .await
        .unwrap_or_else(|_| panic!("no answer; pcscd log:\n{}", desk.reader.pcscd.log()));
    assert_eq!(desk_only(&after), ["card_inserted", "check_answered"]);
    let inserted = after.iter().find(|m| m.event == "card_inserted").unwrap();
    assert_eq!(inserted.data["reader"], reader);
    let answered = &after.last().unwrap().data;
    let seqs: Vec<u64> = before.iter().chain(&after).map(|m| m.id).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(answered["check"], 1);
    assert_eq!(answered["who"]["citizen_id"], id.as_str());
    assert_eq!(answered["who"]["full_name"], person.full_name.as_str());
    assert_eq!(answered["chip"]["verified"], true, "{answered}");
    assert_eq!(answered["chip"]["genuine_by_agent"], true);
    assert_eq!(answered["chip"]["backend_verified"], true);
    assert_eq!(answered["chip"]["access"], "pace_can");
    assert_eq!(answered["answer"]["result"], "CARD_VALID");
    assert_eq!(answered["answer"]["usable"], true);
    assert!(
        !answered["answer"]["audit_record_id"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        !answered["answer"]["proof_token"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(answered["request_id"].as_str().unwrap().len(), 36);

    // The pull endpoint has the same answer.
    let auth = his_client::bearer(token);
    let pulled = his_client::json(
        his_client::get(
            addr,
            &format!("/v1/events?after={}", after[after.len() - 2].id),
            &[("authorization", &auth)],
        )
        .await,
    )
    .await;
    assert_eq!(pulled["events"][0], *answered);

    card.remove();
    until(&mut stream, "card_removed").await;
    assert!(wait_until_empty(reader, WAIT), "the reader empties");

    // A second key and no card: asked to stop while waiting, the station cancels the check and
    // stops at once (the card wait is 20 s; the bound below is half of it).
    keys.write_all(format!("{id}\n").as_bytes()).await.unwrap();
    until(&mut stream, "check_started").await;
    stop.send(()).unwrap();
    let cancelled = until(&mut stream, "check_cancelled").await;
    assert_eq!(cancelled.last().unwrap().data["check"], 2);
    tokio::time::timeout(WAIT / 2, run)
        .await
        .expect("the station stops within the bound")
        .unwrap()
        .expect("a clean stop");
    // The stream ends with the station.
    assert!(stream.next().await.is_none());
    let text = console.text();
    assert!(text.contains("Chip: VERIFIED"), "{text}");
    assert!(text.contains("Not read"), "{text}");

    // The end of input stops it too, and the HIS token is the one made at first start.
    let station = Station::start(config, Lang::Vi).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&his.token_file).unwrap().trim(),
        token
    );
    let done = station.run(
        tokio::io::BufReader::new(&b""[..]),
        Console::default(),
        std::future::pending(),
    );
    tokio::time::timeout(WAIT, done)
        .await
        .expect("stopped at the end of input")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_a_key_from_the_his_keeps_the_check_while_the_backend_is_down_and_sends_it_once()
{
    let desk = Desk::start("BHYT Spool PCD").await;
    let relay = relay::Relay::start(desk.backend.grpc).await;
    relay.down();
    let dir = tempfile::tempdir().unwrap();
    let his = HisConfig {
        listen: "127.0.0.1:0".into(),
        token_file: dir.path().join("his-token"),
        max_streams: 2,
        events_kept: 100,
    };
    let config = FileConfig {
        backend_url: relay.url(),
        spool_dir: Some(dir.path().join("spool")),
        spool_key_file: Some(dir.path().join("spool.key")),
        his: Some(his.clone()),
        ..desk.config.clone()
    };
    let pacing = reader_agent::spool::Pacing {
        idle: Duration::from_millis(300),
        first_retry: Duration::from_millis(300),
        max_retry: Duration::from_secs(1),
    };
    let station = Station::start(config, Lang::En)
        .await
        .expect("the station starts")
        .with_replay_pacing(pacing);
    let addr = station.his_addr().unwrap();
    let token = std::fs::read_to_string(&his.token_file).unwrap();
    let (keys, input) = tokio::io::duplex(4096);
    let console = Console::default();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        station.run(tokio::io::BufReader::new(input), console.clone(), async {
            let _ = stopped.await;
        }),
    );
    let mut stream = his_client::Stream::open(addr, token.trim(), None).await;
    // This time the HIS hands the desk its key (as for an agent running as a service): a
    // malformed body is refused, a key is accepted and checked as a typed one would be.
    let id = desk.person.citizen_id.clone().unwrap();
    let refused = his_client::post_json(
        addr,
        "/v1/checks",
        token.trim(),
        &serde_json::json!({"id": id}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let accepted = his_client::post_json(
        addr,
        "/v1/checks",
        token.trim(),
        &serde_json::json!({"key": id}),
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let started = until(&mut stream, "check_started").await;
    assert_eq!(started.last().unwrap().data["key"], "id");
    let card = desk.insert(CardKind::Genuine, Behaviour::default());
    let offline = tokio::time::timeout(WAIT * 2, until(&mut stream, "check_spooled"))
        .await
        .expect("the check is kept");
    assert!(
        offline.iter().any(|m| m.event == "backend_unreachable"),
        "{offline:?}"
    );
    let request_id = offline.last().unwrap().data["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        console.text().contains("The check was kept"),
        "{}",
        console.text()
    );
    card.remove();

    // The backend is back: the kept check is sent and its answer reaches the HIS, once.
    relay.up();
    let delivered = tokio::time::timeout(WAIT * 2, until(&mut stream, "spooled_check_answered"))
        .await
        .expect("the kept check is sent once the backend is back");
    let answered = &delivered.last().unwrap().data;
    assert_eq!(answered["request_id"], request_id.as_str());
    assert_eq!(answered["answer"]["result"], "CARD_VALID");
    let kinds = audit_kinds(&desk.backend, &request_id).await;
    assert_eq!(kinds, [bhyt_verify::audit::EventKind::Check], "{kinds:?}");

    // The end of input stops the desk, and its replay with it.
    drop(keys);
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the station and its replay stop at the end of input")
        .unwrap()
        .expect("a clean stop");
    // Delivered, so no longer kept: nothing left to send a second time.
    let left = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "entry")
        })
        .count();
    assert_eq!(left, 0);
}

/// The face is read only when configured, and then only after the answer, over the same card
/// session; the APDUs of the check are what the chip's log and counters say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dg2_is_read_only_when_configured_after_the_answer_and_a_card_pulled_first_is_named() {
    let desk = Desk::start("BHYT Face Check PCD").await;
    let key = desk.typed_id();
    assert!(!desk.config.display_face, "off unless configured");

    // Off: the check is answered and verified, and the chip is never asked for DG2 (the log
    // shows it is asked for the files the check reads, so an empty log proves nothing).
    let (card, log) = desk.insert_logged(CardKind::Genuine, Behaviour::default());
    let (outcome, _, open) =
        tokio::time::timeout(WAIT * 2, desk::check_keeping(&desk.config, &key, false))
            .await
            .expect("the check finishes");
    assert_chip_verified(&desk, &outcome).await;
    assert!(open.is_none());
    assert!(log.touched_data_group(13), "{:?}", log.files());
    assert!(!log.touched_data_group(2), "{:?}", log.files());
    // Every APDU of the check, as the card counted them.
    let check_apdus = card.counters().apdus();
    let (read, _) = answered(&outcome);
    assert_eq!(u64::from(read.stats.total().apdus), check_apdus);
    desk.remove(card);

    // On: the same answer, then DG2 over the session the check kept open: exactly the photo's
    // bytes, after the check's own APDUs.
    let face_config = FileConfig {
        display_face: true,
        ..desk.config.clone()
    };
    let (card, log) = desk.insert_logged(CardKind::Genuine, Behaviour::default());
    let (outcome, _, open) = tokio::time::timeout(
        WAIT * 2,
        desk::check_keeping(&face_config, &key, face_config.display_face),
    )
    .await
    .expect("the check finishes");
    assert_chip_verified(&desk, &outcome).await;
    assert!(!log.touched_data_group(2), "not before the answer");
    let face = desk::read_face(open.expect("the session kept open")).await;
    let photo = face.result.as_ref().expect("the photo");
    assert_eq!(photo.image, cards::face_image(&desk.person));
    assert_eq!(photo.media_type(), "image/jpeg");
    assert_eq!(log.files().last(), Some(&0x0102), "{:?}", log.files());
    let face_apdus = card.counters().apdus() - check_apdus;
    assert_eq!(u64::from(face.apdus.apdus), face_apdus);
    eprintln!(
        "face: {} bytes in {} APDUs ({} B received), {:?} after the answer (reported, not \
         asserted)",
        photo.image.len(),
        face.apdus.apdus,
        face.apdus.bytes_received,
        face.elapsed
    );
    let line = face::render(&face, Lang::En);
    assert!(line.contains("Photo from the chip available"), "{line}");
    // One line about the photo, never the image itself.
    assert!(line.len() < 200 && !line.contains('\n'), "{line}");
    desk.remove(card);

    // Pulled after the check's last APDU, before the photo: the answer stands, the photo is
    // named as not read.
    let pulled = Behaviour {
        pull_after_apdus: Some(check_apdus),
        ..Behaviour::default()
    };
    let card = desk.insert(CardKind::Genuine, pulled);
    let (outcome, _, open) =
        tokio::time::timeout(WAIT * 2, desk::check_keeping(&face_config, &key, true))
            .await
            .expect("the check finishes");
    assert_chip_verified(&desk, &outcome).await;
    let face = desk::read_face(open.expect("the session kept open")).await;
    assert_eq!(face.result, Err(FaceFailure::Removed));
    let line = face::render(&face, Lang::Vi);
    assert!(line.contains("KHÔNG hiển thị ảnh"), "{line}");
    assert!(line.contains("thẻ bị nhấc ra"), "{line}");
    card.remove();
    assert!(wait_until_empty(&desk.reader.name, WAIT));
}

/// `run` with `display_face`: the HIS gets the answer, then the photo; a photo replaced after
/// signing is named and never sent, and the answer before it is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_the_face_after_the_answer_and_never_a_photo_that_fails_the_sod() {
    let desk = Desk::start("BHYT Face Run PCD").await;
    let id = desk.person.citizen_id.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let his = HisConfig {
        listen: "127.0.0.1:0".into(),
        token_file: dir.path().join("his-token"),
        max_streams: 2,
        events_kept: 100,
    };
    let config = FileConfig {
        his: Some(his.clone()),
        display_face: true,
        ..desk.config.clone()
    };
    let station = Station::start(config, Lang::En)
        .await
        .expect("the station starts");
    let addr = station.his_addr().unwrap();
    let token = std::fs::read_to_string(&his.token_file).unwrap();
    let (mut keys, input) = tokio::io::duplex(4096);
    let console = Console::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        station.run(tokio::io::BufReader::new(input), console.clone(), async {
            let _ = stopped.await;
        }),
    );
    let mut stream = his_client::Stream::open(addr, token.trim(), None).await;
    let desk_only = |messages: &[his_client::Message]| -> Vec<String> {
        messages
            .iter()
            .map(|m| m.event.clone())
            .filter(|kind| kind != "reader_added")
            .collect()
    };

    // Genuine: the answer, then the face with exactly the photo's bytes.
    keys.write_all(format!("{id}\n").as_bytes()).await.unwrap();
    until(&mut stream, "check_started").await;
    let (card, log) = desk.insert_logged(CardKind::Genuine, Behaviour::default());
    let events = tokio::time::timeout(WAIT * 2, until(&mut stream, "face"))
        .await
        .unwrap_or_else(|_| panic!("no face; pcscd log:\n{}", desk.reader.pcscd.log()));
    assert_eq!(
        desk_only(&events),
        ["card_inserted", "check_answered", "face"]
    );
    let answered = &events[events.len() - 2].data;
    assert_eq!(answered["chip"]["verified"], true, "{answered}");
    let face = &events.last().unwrap().data;
    assert_eq!(face["check"], 1);
    assert_eq!(face["request_id"], answered["request_id"]);
    assert_eq!(face["media_type"], "image/jpeg");
    assert_eq!(face["verified_by_sod"], true);
    assert_eq!(face["byte_size"], cards::FACE_BYTES);
    let image = BASE64_STANDARD
        .decode(face["image_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(image, cards::face_image(&desk.person));
    assert!(log.touched_data_group(2));
    // The pull endpoint serves the same event.
    let pulled = his_client::json(
        his_client::get(
            addr,
            &format!("/v1/events?after={}", events[events.len() - 2].id),
            &[("authorization", &his_client::bearer(token.trim()))],
        )
        .await,
    )
    .await;
    assert_eq!(pulled["events"][0], *face);
    card.remove();
    until(&mut stream, "card_removed").await;
    assert!(wait_until_empty(&desk.reader.name, WAIT));

    // DG2 replaced after signing: the same verified answer, then "not shown", no face event.
    keys.write_all(format!("{id}\n").as_bytes()).await.unwrap();
    until(&mut stream, "check_started").await;
    let card = desk.insert(CardKind::TamperedFace, Behaviour::default());
    let events = tokio::time::timeout(WAIT * 2, until(&mut stream, "face_not_shown"))
        .await
        .expect("the photo is named as not shown");
    assert_eq!(
        desk_only(&events),
        ["card_inserted", "check_answered", "face_not_shown"]
    );
    let answered = &events[events.len() - 2].data;
    assert_eq!(answered["chip"]["verified"], true, "{answered}");
    assert_eq!(answered["answer"]["result"], "CARD_VALID");
    let refused = &events.last().unwrap().data;
    assert_eq!(refused["reason"], "hash_mismatch");
    assert_eq!(refused["request_id"], answered["request_id"]);
    assert!(refused.get("image_base64").is_none());
    card.remove();

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("the station stops")
        .unwrap()
        .unwrap();
    let text = console.text();
    assert!(text.contains("Photo from the chip available"), "{text}");
    assert!(
        text.contains("Photo NOT shown: DG2 does not match its hash in EF.SOD"),
        "{text}"
    );
    assert!(text.contains("The coverage answer above stands"), "{text}");
    // Never the image on the console.
    let prefix = BASE64_STANDARD.encode(&image[..30]);
    assert!(!text.contains(&prefix), "{text}");
}
