//! Presence proofs end to end: a genuine virtual CCCD issued under a Vietnam-like test PKI is
//! read with PACE by the chip library, signs the backend's challenge (Active Authentication),
//! and the backend verifies SOD, data groups and signature itself before it answers and records
//! "chip-verified". Clones, another citizen's card, untrusted issuers and replayed or foreign
//! challenges must not pass.

use bhyt_proto::v1::{
    CheckCoverageRequest, IdentityEvidence, IdentityMethod, IssuePresenceChallengeRequest,
    PresenceChallenge, PresenceProof, PresenceResult, PresenceStatus, ResultCode,
    verification_service_client::VerificationServiceClient,
};
use bhyt_verify::coverage::CardRecord;
use bhyt_verify::registry::generate::Kind;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::aa;
use emrtd::cccd::id_number::CitizenId;
use emrtd::lds::build::{Dg13Person, Td1Fields};
use emrtd::pace::{self, PacePassword};
use emrtd::reader::Reader;
use emrtd::virtual_card::VirtualCard;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use tonic::Code;
use tonic::transport::Channel;

use crate::app::{self, TestBackend};
use crate::audit_log::all_records;
use crate::fixtures::{self, FACILITY, by_citizen, first};
use crate::support::temp_dir;

/// What the desk read from the chip, and its answer to a challenge.
struct ChipRead {
    sod: Vec<u8>,
    groups: Vec<(u32, Vec<u8>)>,
    card: Reader<VirtualCard>,
}

impl ChipRead {
    /// Opens the card with PACE (the CAN from the citizen ID) and reads EF.SOD, DG13-DG15.
    fn from(card: VirtualCard, citizen_id: &str) -> Self {
        let mut reader = Reader::new(card);
        let password = PacePassword::from_citizen_id(&CitizenId::parse(citizen_id).unwrap());
        reader
            .establish_with(|t, stats| pace::establish(t, &password, None, stats))
            .unwrap();
        reader.select_application().unwrap();
        let sod = reader.read_file(0x1D).unwrap();
        let groups = [13u8, 14, 15]
            .into_iter()
            .map(|n| (u32::from(n), reader.read_file(n).unwrap()))
            .collect();
        Self {
            sod,
            groups,
            card: reader,
        }
    }

    /// The chip signs `challenge`'s nonce; the proof carries everything the backend needs.
    fn prove(&mut self, challenge: &PresenceChallenge) -> PresenceProof {
        let nonce: [u8; 8] = challenge.nonce.as_slice().try_into().unwrap();
        PresenceProof {
            challenge: challenge.challenge.clone(),
            sod: self.sod.clone(),
            data_groups: self.groups.iter().cloned().collect(),
            active_authentication_signature: aa::internal_authenticate(&mut self.card, &nonce)
                .unwrap(),
        }
    }
}

/// A card for `person` (the registry's), from `issuer`, signing with `aa`.
fn card_of(issuer: &TestIssuer, person: &CardRecord, aa: VirtualAa) -> VirtualCard {
    let id = person.citizen_id.as_deref().unwrap();
    let birth = fixtures::birth_of(person);
    let dmy = format!("{:02}/{:02}/{}", birth.day, birth.month, birth.year);
    let yymmdd = format!("{:02}{:02}{:02}", birth.year % 100, birth.month, birth.day);
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
    issuer.card(&mrz, &holder, aa)
}

/// A backend trusting `issuer` (its CSCA and CRL in the data directory's `trust/`).
async fn backend_trusting(
    issuer: Option<&TestIssuer>,
) -> (tempfile::TempDir, TestBackend, Vec<CardRecord>) {
    let dir = temp_dir();
    let config = app::config(dir.path());
    let cards = fixtures::seed(&config, 300).await;
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    if let Some(issuer) = issuer {
        std::fs::write(trust.join("csca.der"), &issuer.csca.der).unwrap();
        std::fs::write(trust.join("csca.crl"), &issuer.crl).unwrap();
    }
    let backend = TestBackend::start(config).await;
    let people = [Kind::Valid, Kind::Expired]
        .into_iter()
        .map(|k| first(&cards, k).clone())
        .collect();
    (dir, backend, people)
}

async fn challenge(backend: &TestBackend, station: &str) -> PresenceChallenge {
    backend
        .verification()
        .await
        .issue_presence_challenge(IssuePresenceChallengeRequest {
            facility_code: FACILITY.into(),
            station_id: station.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn chip_check(request_id: &str, person: &CardRecord, proof: PresenceProof) -> CheckCoverageRequest {
    CheckCoverageRequest {
        evidence: Some(IdentityEvidence {
            method: IdentityMethod::Chip as i32,
            ..Default::default()
        }),
        presence_proof: Some(proof),
        ..by_citizen(request_id, person)
    }
}

#[tokio::test]
async fn a_genuine_card_proves_presence_and_the_record_and_token_say_so() {
    let issuer = TestIssuer::vietnam_like();
    let (_dir, backend, people) = backend_trusting(Some(&issuer)).await;
    let person = &people[0];
    let mut chip = ChipRead::from(
        card_of(&issuer, person, VirtualAa::ecdsa_p256(AaHash::Sha256)),
        person.citizen_id.as_deref().unwrap(),
    );
    let proof = chip.prove(&challenge(&backend, "desk-1").await);
    let answer = backend
        .verification()
        .await
        .check_coverage(chip_check("p-1", person, proof))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.result(), ResultCode::CardValid);
    let presence = answer.presence.expect("a verdict on the proof");
    assert!(presence.verified, "{:?}", presence.failure);
    assert!(presence.passive_authentication && presence.active_authentication);
    assert!(presence.citizen_matches);
    assert!(
        presence
            .document_signer_issuer
            .contains("CSCA Test Vietnam"),
        "{}",
        presence.document_signer_issuer
    );

    let record = all_records(&backend)
        .await
        .into_iter()
        .find(|r| r.record_id == answer.audit_record_id)
        .unwrap();
    assert_eq!(record.presence(), PresenceStatus::Verified);
    // The proof of check carries the verdict (its payload is the JWS's middle part).
    let payload = answer.proof_token.split('.').nth(1).unwrap();
    let claims =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    assert!(
        String::from_utf8(claims)
            .unwrap()
            .contains(r#""presence":"verified""#)
    );
}

#[tokio::test]
async fn replayed_foreign_and_forged_challenges_are_refused_and_audited() {
    let issuer = TestIssuer::vietnam_like();
    let (_dir, backend, people) = backend_trusting(Some(&issuer)).await;
    let person = &people[0];
    let mut chip = ChipRead::from(
        card_of(&issuer, person, VirtualAa::ecdsa_p256(AaHash::Sha256)),
        person.citizen_id.as_deref().unwrap(),
    );
    let mut desk = backend.verification().await;
    let issued = challenge(&backend, "desk-1").await;
    let proof = chip.prove(&issued);
    desk.check_coverage(chip_check("r-1", person, proof.clone()))
        .await
        .unwrap();

    // The same proof again under a new request id: the challenge is spent.
    let replay = desk
        .check_coverage(chip_check("r-2", person, proof.clone()))
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::FailedPrecondition, "{replay:?}");
    assert!(replay.message().contains("already used"), "{replay:?}");

    // A challenge issued to another station.
    let elsewhere = chip.prove(&challenge(&backend, "desk-2").await);
    let foreign = desk
        .check_coverage(chip_check("r-3", person, elsewhere))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::FailedPrecondition, "{foreign:?}");

    // A challenge with a later expiry written in: its tag no longer matches.
    let mut forged = chip.prove(&challenge(&backend, "desk-1").await);
    forged.challenge[8] ^= 0x01;
    let status = desk
        .check_coverage(chip_check("r-4", person, forged))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let refusals = all_records(&backend)
        .await
        .into_iter()
        .filter(|r| r.kind == "refusal" && r.error_code == Code::FailedPrecondition as i32)
        .count();
    assert_eq!(refusals, 3, "each refusal is audited");
}

#[tokio::test]
async fn a_clone_an_old_signature_another_citizen_or_an_unknown_issuer_is_not_chip_verified() {
    let issuer = TestIssuer::vietnam_like();
    let (_dir, backend, people) = backend_trusting(Some(&issuer)).await;
    let (person, other) = (&people[0], &people[1]);
    let id = person.citizen_id.as_deref().unwrap();
    let mut desk = backend.verification().await;

    // A clone: the genuine card's signed data, its own key; it answers 9000 all the same.
    let genuine = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let clone = VirtualAa::clone_of(&genuine);
    let files = issuer.card_files(
        &Td1Fields::cccd_example(),
        &Dg13Person {
            id,
            ..Dg13Person::example()
        },
        &genuine,
    );
    let clone_card = VirtualCard::new(files)
        .with_pace(Box::new(emrtd::virtual_card::pace::VirtualPace::cccd(
            &id[6..],
        )))
        .with_active_authentication(clone);
    let mut chip = ChipRead::from(clone_card, id);
    let proof = chip.prove(&challenge(&backend, "desk-1").await);
    let v = verdict_on(&mut desk, chip_check("c-1", person, proof)).await;
    assert!(
        v.passive_authentication && !v.active_authentication && !v.verified,
        "{v:?}"
    );
    assert!(v.failure.unwrap().en.contains("active"));

    // A genuine card's signature over an earlier challenge, sent with a fresh one.
    let mut chip = ChipRead::from(card_of(&issuer, person, genuine), id);
    let old = chip.prove(&challenge(&backend, "desk-1").await);
    let mut stale = chip.prove(&challenge(&backend, "desk-1").await);
    stale.active_authentication_signature = old.active_authentication_signature;
    let v = verdict_on(&mut desk, chip_check("c-2", person, stale)).await;
    assert!(!v.active_authentication && !v.verified, "{v:?}");

    // Another citizen's genuine card presented for this person.
    let other_id = other.citizen_id.as_deref().unwrap();
    let mut chip = ChipRead::from(
        card_of(&issuer, other, VirtualAa::ecdsa_p256(AaHash::Sha256)),
        other_id,
    );
    let proof = chip.prove(&challenge(&backend, "desk-1").await);
    let v = verdict_on(&mut desk, chip_check("c-3", person, proof)).await;
    assert!(v.passive_authentication && v.active_authentication, "{v:?}");
    assert!(!v.citizen_matches && !v.verified);
    let failure = v.failure.unwrap();
    assert!(failure.en.contains("another citizen"), "{failure:?}");
    assert!(!failure.en.contains(other_id) && !failure.vi.contains(other_id));

    // A card from an issuer this backend does not trust (same names, other keys).
    let stranger = TestIssuer::look_alike();
    let mut chip = ChipRead::from(
        card_of(&stranger, person, VirtualAa::ecdsa_p256(AaHash::Sha256)),
        id,
    );
    let proof = chip.prove(&challenge(&backend, "desk-1").await);
    let v = verdict_on(&mut desk, chip_check("c-4", person, proof)).await;
    assert!(!v.passive_authentication && !v.verified, "{v:?}");

    let failed = all_records(&backend)
        .await
        .into_iter()
        .filter(|r| r.presence() == PresenceStatus::Failed)
        .count();
    assert_eq!(failed, 4, "each failed proof is recorded as such");
}

/// The verdict on a check's presence proof; the coverage answer stands whatever it is.
async fn verdict_on(
    desk: &mut VerificationServiceClient<Channel>,
    request: CheckCoverageRequest,
) -> PresenceResult {
    let answer = desk.check_coverage(request).await.unwrap().into_inner();
    assert_eq!(answer.result(), ResultCode::CardValid);
    answer.presence.unwrap()
}

#[tokio::test]
async fn a_presence_proof_needs_the_chip_method_and_real_data_groups() {
    let (_dir, backend, people) = backend_trusting(None).await;
    let mut request = chip_check("m-1", &people[0], PresenceProof::default());
    request.evidence.as_mut().unwrap().method = IdentityMethod::Typed as i32;
    let status = backend
        .verification()
        .await
        .check_coverage(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("presence_proof"), "{status:?}");

    // Data groups that do not exist are refused before anything is verified or written down.
    let mut request = chip_check("m-2", &people[0], PresenceProof::default());
    request
        .presence_proof
        .as_mut()
        .unwrap()
        .data_groups
        .insert(99, vec![0; 4]);
    let status = backend
        .verification()
        .await
        .check_coverage(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("presence_proof.data_groups"),
        "{status:?}"
    );
}
