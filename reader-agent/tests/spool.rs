//! The offline spool against a real backend (in process, mutual TLS, its own audit store)
//! reached through a relay the test switches off and on: checks made while the backend is
//! unreachable are kept sealed on disk and, once it is back, each is answered and recorded
//! exactly once, a replay interrupted after sending included. The card is emrtd's virtual CCCD
//! in process; desk_flow.rs shows desk::check hands over the same pending check through PC/SC.

#[path = "common/backend.rs"]
mod backend;
#[allow(dead_code)] // the scanner's file-tree walk and every form are not all used here
#[path = "../../tests/backend/support/personal_data.rs"]
mod personal_data;
#[path = "common/relay.rs"]
mod relay;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bhyt_proto::v1::{CheckCoverageRequest, PresenceChallenge, ResultCode};
use bhyt_verify::audit::EventKind;
use bhyt_verify::coverage::CardRecord;
use cccd_authenticity::passive::Policy;
use cccd_authenticity::test_pki::TestIssuer;
use cccd_authenticity::trust::TrustStore;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use prost::Message;
use reader_agent::backend::{Backend, nonce_of, request_id};
use reader_agent::desk::{self, Lang, Outcome};
use reader_agent::read::{ChipRead, DeskKey, ReadOptions, load_trust_dir, read_card};
use reader_agent::spool::{
    Pacing, Replayed, Spool, SpoolConfig, Stop, replay_loop, replay_once, text,
};
use tokio::sync::{mpsc, oneshot};

use backend::{InProcessBackend, STATION, audit_kinds, backend, with_card};
use personal_data::Scanner;
use relay::Relay;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// A desk: the backend behind a relay, the station's client through it, a spool.
struct Desk {
    issuer: TestIssuer,
    running: InProcessBackend,
    relay: Relay,
    client: Backend,
    trust: TrustStore,
    spool: Spool,
    dir: tempfile::TempDir,
}

async fn desk() -> Desk {
    let issuer = TestIssuer::vietnam_like();
    let running = backend(&issuer).await;
    let relay = Relay::start(running.grpc).await;
    let mut config = running.client(&running.pki_dir(), STATION);
    config.url = relay.url();
    let client = Backend::new(config).unwrap();
    let trust = load_trust_dir(&running.dir.path().join("trust")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&spool_config(dir.path())).unwrap();
    Desk {
        issuer,
        running,
        relay,
        client,
        trust,
        spool,
        dir,
    }
}

fn spool_config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.join("spool"),
        key_file: dir.join("keys").join("spool.key"),
        max_entries: 500,
    }
}

impl Desk {
    fn person(&self, n: usize) -> CardRecord {
        self.running.people[n].clone()
    }

    /// `person`'s genuine card read at the desk, Active Authentication over `nonce` (or the
    /// agent's own when the backend gave none).
    fn read(&self, person: &CardRecord, nonce: Option<[u8; 8]>) -> ChipRead {
        let key = DeskKey::from_id(person.citizen_id.as_deref().unwrap()).unwrap();
        let options = ReadOptions {
            trust: &self.trust,
            now: SystemTime::now(),
            challenge: nonce,
            policy: Policy::default(),
        };
        let card = with_card(person, None, |mrz, holder| {
            self.issuer
                .card(mrz, holder, VirtualAa::ecdsa_p256(AaHash::Sha256))
        });
        tokio::task::block_in_place(|| read_card(card, &key, &options)).unwrap()
    }

    /// The desk's whole check for `person`, its challenge asked before the read as desk::check
    /// does; `cut` switches the backend off between the read and the check.
    async fn check(&mut self, person: &CardRecord, cut: bool) -> Outcome {
        let challenge = self.client.challenge().await;
        let read = self.read(person, challenge.as_ref().ok().and_then(nonce_of));
        if cut {
            self.relay.down();
        }
        desk::ask(&mut self.client, read, challenge).await
    }
}

impl Desk {
    /// A challenge from the backend, and `person`'s card read with the chip signing it.
    async fn read_over_challenge(&mut self, person: &CardRecord) -> (ChipRead, PresenceChallenge) {
        let challenge = self.client.challenge().await.unwrap();
        (self.read(person, nonce_of(&challenge)), challenge)
    }

    /// The backend down, `person`'s check made and kept; the backend stays down.
    async fn kept_while_down(&mut self, person: &CardRecord) -> CheckCoverageRequest {
        self.relay.down();
        let check = pending(self.check(person, false).await);
        self.spool.put(&check).unwrap();
        check
    }

    /// Exactly one answered check in the backend's audit store for `request_id`, and nothing
    /// else. With a fresh request id per send (no idempotency) a repeat would make two.
    async fn assert_recorded_once(&self, request_id: &str) {
        assert_eq!(
            audit_kinds(&self.running, request_id).await,
            [EventKind::Check]
        );
    }
}

fn pending(outcome: Outcome) -> CheckCoverageRequest {
    match outcome {
        Outcome::Unreachable { pending, .. } => *pending,
        other => panic!("expected the backend unreachable: {other:?}"),
    }
}

/// The scanner for `person` and the desk's operator (the in-process backend's station).
fn scanner(person: &CardRecord) -> Scanner {
    let mut scanner = Scanner::new();
    let id = person.citizen_id.as_deref().unwrap();
    scanner.identifier("citizen ID", id);
    scanner.identifier("document number", &id[3..]);
    scanner.name("name", &person.full_name);
    scanner.identifier("operator ID", "079185000123");
    scanner.name("operator", "Lê Thị Thu");
    scanner
}

/// Asserts the spool directory holds no form of `person`'s data, and that the same scan does
/// find it in the check written unsealed (so a spool writing plaintext fails this).
fn assert_sealed(spool: &Spool, person: &CardRecord, check: &CheckCoverageRequest) {
    let scanner = scanner(person);
    let (files, findings) = scanner.scan_tree(spool.dir(), |_| false);
    assert!(files >= 2, "the key check and the entry: {files} files");
    assert!(
        findings.is_empty(),
        "personal data in the spool: {findings:?}"
    );
    let planted = scanner.scan_bytes("unsealed entry", &check.encode_to_vec());
    for needle in [
        "citizen ID, as is",
        "name (NFC), as is",
        "operator ID, as is",
    ] {
        assert!(
            planted.iter().any(|f| f.needle == needle),
            "the scan misses {needle}: {planted:?}"
        );
    }
}

fn only_delivered(round: &reader_agent::spool::Round) -> &reader_agent::spool::Replayed {
    assert!(round.stopped.is_none(), "{:?}", round.stopped);
    let [replayed] = round.replayed.as_slice() else {
        panic!("{round:?}");
    };
    replayed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_made_while_the_backend_is_down_is_kept_sealed_and_recorded_once() {
    let mut d = desk().await;
    let person = d.person(0);
    let check = d.kept_while_down(&person).await;
    // Never sent, so no proof: the chip signed no challenge of the backend's.
    assert!(check.presence_proof.is_none());
    assert_sealed(&d.spool, &person, &check);
    let words = text::kept(Some(&Ok(())), &check.request_id, Lang::Vi);
    assert!(words.contains(&check.request_id), "{words}");

    // Still down: the round stops at the first entry, which stays, one failed attempt noted.
    let round = replay_once(&d.spool, &mut d.client).await;
    assert!(round.replayed.is_empty(), "{round:?}");
    assert!(
        matches!(&round.stopped, Some(Stop::Backend(e)) if e.is_unreachable()),
        "{round:?}"
    );
    let names = d.spool.pending().unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(d.spool.load(&names[0]).unwrap().attempts, 1);

    // Back. A replayer sends the entry and crashes before removing it...
    d.relay.up();
    let entry = d.spool.load(&names[0]).unwrap();
    let lost = d
        .client
        .send(entry.request.clone())
        .await
        .expect("answered");
    // ...and the next round sends it again: the backend's first answer, no second record.
    let round = replay_once(&d.spool, &mut d.client).await;
    let Replayed::Delivered {
        request_id, answer, ..
    } = only_delivered(&round)
    else {
        panic!("{round:?}");
    };
    assert_eq!(request_id, &check.request_id);
    assert_eq!(answer.audit_record_id, lost.audit_record_id);
    assert_eq!(answer.result(), ResultCode::CardValid);
    // Not chip-verified by the backend: no verdict at all.
    assert!(answer.presence.is_none());
    assert!(d.spool.is_empty().unwrap());
    d.assert_recorded_once(&check.request_id).await;
    // What `spool send` prints names no one.
    let printed = text::round(&round, Lang::Vi) + &text::round(&round, Lang::En);
    assert!(printed.contains(&check.request_id), "{printed}");
    let findings = scanner(&person).scan_bytes("spool send output", printed.as_bytes());
    assert!(findings.is_empty(), "{findings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_cut_off_mid_call_is_kept_as_sent_and_gets_one_answer() {
    let mut d = desk().await;

    // The backend went away after the challenge: the request is kept as sent, proof included.
    let person = d.person(0);
    let check = pending(d.check(&person, true).await);
    assert!(check.presence_proof.is_some());
    d.spool.put(&check).unwrap();
    assert_sealed(&d.spool, &person, &check);
    // Back within the challenge's two minutes: the backend verifies the chip itself.
    d.relay.up();
    let round = replay_once(&d.spool, &mut d.client).await;
    let Replayed::Delivered { answer, .. } = only_delivered(&round) else {
        panic!("{round:?}");
    };
    assert!(
        answer.presence.as_ref().is_some_and(|p| p.verified),
        "{answer:?}"
    );
    d.assert_recorded_once(&check.request_id).await;

    // The call reached the backend and only its answer was lost: the kept request gets that
    // answer back (idempotency is looked up before the challenge, which is spent by now).
    let person = d.person(1);
    let (read, challenge) = d.read_over_challenge(&person).await;
    let check = d
        .client
        .request(&read, Some(&challenge), request_id().unwrap());
    let lost = d.client.send(check.clone()).await.expect("answered");
    d.spool.put(&check).unwrap();
    let round = replay_once(&d.spool, &mut d.client).await;
    let Replayed::Delivered { answer, .. } = only_delivered(&round) else {
        panic!("{round:?}");
    };
    assert_eq!(answer.audit_record_id, lost.audit_record_id);
    d.assert_recorded_once(&check.request_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_proof_whose_challenge_is_spent_is_dropped_and_the_check_still_answered() {
    let mut d = desk().await;
    let person = d.person(0);
    let (read, challenge) = d.read_over_challenge(&person).await;
    // The challenge is used by another check first: refused as a stale one would be
    // (FAILED_PRECONDITION), without waiting two minutes.
    let other = d
        .client
        .request(&read, Some(&challenge), request_id().unwrap());
    d.client.send(other).await.expect("answered");
    let check = d
        .client
        .request(&read, Some(&challenge), request_id().unwrap());
    d.spool.put(&check).unwrap();

    let round = replay_once(&d.spool, &mut d.client).await;
    let Replayed::Delivered { answer, .. } = only_delivered(&round) else {
        panic!("{round:?}");
    };
    assert_eq!(answer.result(), ResultCode::CardValid);
    // Sent again without the proof: answered, and not chip-verified by the backend.
    assert!(answer.presence.is_none(), "{answer:?}");
    assert!(d.spool.is_empty().unwrap());
    // The refused attempt and the answer: still one check.
    assert_eq!(
        audit_kinds(&d.running, &check.request_id).await,
        [EventKind::Refusal, EventKind::Check]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_unreadable_entry_is_set_aside_and_the_round_goes_on() {
    let mut d = desk().await;
    let person = d.person(0);
    d.relay.down();
    let read = d.read(&person, None);
    let request = |d: &Desk| d.client.request(&read, None, request_id().unwrap());
    // Oldest first: another facility's check (PERMISSION_DENIED for this station), one whose
    // file gets altered, then a good one.
    let mut foreign = request(&d);
    foreign.facility_code = "79001".into();
    let altered = request(&d);
    let good = request(&d);
    for check in [&foreign, &altered, &good] {
        d.spool.put(check).unwrap();
    }
    let altered_name = d.spool.pending().unwrap()[1].clone();
    let path = d.spool.dir().join(&altered_name);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    d.relay.up();
    let round = replay_once(&d.spool, &mut d.client).await;
    assert!(round.stopped.is_none(), "{round:?}");
    let [
        Replayed::Refused {
            request_id: refused,
            code,
            ..
        },
        Replayed::Unreadable { file, .. },
        Replayed::Delivered {
            request_id: delivered,
            ..
        },
    ] = round.replayed.as_slice()
    else {
        panic!("{round:?}");
    };
    assert_eq!(refused, &foreign.request_id);
    assert_eq!(*code, tonic::Code::PermissionDenied);
    assert_eq!(file, &altered_name);
    assert_eq!(delivered, &good.request_id);

    let counts = d.spool.counts().unwrap();
    assert_eq!(
        (counts.pending, counts.refused, counts.unreadable),
        (0, 1, 1)
    );
    let kept = d.spool.refused().unwrap().pop().unwrap().unwrap();
    assert_eq!(kept.request, foreign);
    assert_eq!(kept.refusal.unwrap().0, tonic::Code::PermissionDenied);
    // Refused and unreadable entries stay sealed too.
    let (_, findings) = scanner(&person).scan_tree(d.spool.dir(), |_| false);
    assert!(findings.is_empty(), "{findings:?}");
    // The altered check was never sent; it waits, as .bad, for someone to look.
    assert!(
        audit_kinds(&d.running, &altered.request_id)
            .await
            .is_empty()
    );
    assert!(d.spool.dir().join(format!("{altered_name}.bad")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_loop_retries_while_down_and_delivers_when_back() {
    let mut d = desk().await;
    let person = d.person(0);
    let check = d.kept_while_down(&person).await;

    let (tx, mut rx) = mpsc::channel(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let pacing = Pacing {
        idle: Duration::from_millis(50),
        first_retry: Duration::from_millis(50),
        max_retry: Duration::from_millis(200),
    };
    let config = {
        let mut c = d.running.client(&d.running.pki_dir(), STATION);
        c.url = d.relay.url();
        c
    };
    let replayer = tokio::spawn(replay_loop(
        d.spool.clone(),
        Backend::new(config).unwrap(),
        pacing,
        tx,
        async {
            let _ = stopped.await;
        },
    ));

    // Wait (bounded) until the loop has found the backend down at least twice: back-off, no
    // report, the entry kept.
    let name = d.spool.pending().unwrap()[0].clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while d.spool.load(&name).unwrap().attempts < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop never tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rx.try_recv().is_err());

    d.relay.up();
    let replayed = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("delivered once the backend is back")
        .expect("the loop reports");
    let Replayed::Delivered { request_id, .. } = replayed else {
        panic!("{replayed:?}");
    };
    assert_eq!(request_id, check.request_id);
    assert!(d.spool.is_empty().unwrap());
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, replayer)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    d.assert_recorded_once(&check.request_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_list_and_send_from_the_command_line() {
    let mut d = desk().await;
    let person = d.person(0);
    let check = d.kept_while_down(&person).await;
    d.relay.up();

    let station = d.running.client(&d.running.pki_dir(), STATION);
    let spool = spool_config(d.dir.path());
    let toml = format!(
        "backend_url = {:?}\nserver_name = \"localhost\"\nca_cert = {:?}\nstation_cert = {:?}\n\
         station_key = {:?}\nfacility_code = {:?}\nstation_id = {:?}\noperator_name = {:?}\n\
         operator_citizen_id = {:?}\ntrust_dir = {:?}\nspool_dir = {:?}\nspool_key_file = {:?}\n",
        d.relay.url(),
        station.ca_cert,
        station.station_cert,
        station.station_key,
        station.facility_code,
        station.station_id,
        station.operator_name,
        station.operator_citizen_id,
        d.running.dir.path().join("trust"),
        spool.dir,
        spool.key_file,
    );
    let config = d.dir.path().join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let agent = |args: &[&str]| {
        let out = tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_reader-agent"))
                .args(args)
                .output()
                .unwrap()
        });
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout + &stderr)
    };
    let scanner = scanner(&person);

    let (code, out) = agent(&["spool", "list", "--config", &config, "--lang", "en"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Waiting: 1"), "{out}");
    assert!(out.contains("Oldest kept:"), "{out}");

    let (code, out) = agent(&["spool", "send", "--config", &config, "--lang", "en"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("Sent {}", check.request_id)), "{out}");
    assert!(out.contains("chip NOT verified by the backend"), "{out}");
    assert!(
        scanner.scan_bytes("send", out.as_bytes()).is_empty(),
        "{out}"
    );

    let (code, out) = agent(&["spool", "list", "--config", &config]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Chờ gửi: 0"), "{out}");
    d.assert_recorded_once(&check.request_id).await;

    // The backend down again with a check waiting: exit 3, the check still there.
    d.spool
        .put(
            &d.client
                .request(&d.read(&person, None), None, request_id().unwrap()),
        )
        .unwrap();
    d.relay.down();
    let (code, out) = agent(&["spool", "send", "--config", &config, "--lang", "en"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("Stopped"), "{out}");
    assert_eq!(d.spool.len().unwrap(), 1);

    // A configuration without a spool is named.
    let bare = d.dir.path().join("bare.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("spool_"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bare, without).unwrap();
    let (code, out) = agent(&["spool", "list", "--config", bare.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no spool_dir"), "{out}");
}
