//! The desk's read against emrtd's virtual card, in process: genuine cards issued under the test
//! PKI and every bad card the desk must name. The same read runs over PC/SC in the desk flow's
//! tests; here each fault is placed exactly.

use std::time::SystemTime;

use cccd_authenticity::passive::Policy;
use cccd_authenticity::test_pki::TestIssuer;
use cccd_authenticity::trust::TrustStore;
use emrtd::cccd::mrz::BacKeyMaterial;
use emrtd::lds::build::{self, Dg13Person, Td1Fields};
use emrtd::lds::dg1;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::ca::VirtualCa;
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{Faults, FileSystem, VirtualCard};
use reader_agent::read::{Access, DeskKey, ReadFailure, ReadOptions, Unproven, Verdict, read_card};

#[path = "common/holder.rs"]
mod holder;
use holder::{ID, person, td1, trust};

/// The holder's QR: born 15/01/1999, card issued 10/07/2025 (at 26: valid until 40, 15/01/2039).
const QR: &str = "001099012345|123456789|Nguyễn Văn An|15011999|Nam|Số 1 Phố Huế, Hà Nội|10072025";

/// A card's files, before the issuer signs (tests alter them before or after signing).
struct Files {
    dg1: Vec<u8>,
    dg13: Vec<u8>,
    dg14: Option<Vec<u8>>,
    dg15: Vec<u8>,
}

impl Files {
    fn new(td1: &Td1Fields<'_>, person: &Dg13Person<'_>, aa: &VirtualAa) -> Self {
        Files {
            dg1: build::dg1(&build::td1_mrz(td1)),
            dg13: build::dg13(person),
            dg14: aa.dg14().map(<[u8]>::to_vec),
            dg15: aa.dg15().to_vec(),
        }
    }

    fn groups(&self) -> Vec<(u8, &[u8])> {
        let mut groups: Vec<(u8, &[u8])> = vec![(1, &self.dg1), (13, &self.dg13)];
        if let Some(dg14) = &self.dg14 {
            groups.push((14, dg14));
        }
        groups.push((15, &self.dg15));
        groups
    }

    fn sign(&self, issuer: &TestIssuer) -> Vec<u8> {
        issuer.document_signer.sign_sod(&self.groups())
    }

    /// The card serving these files and `sod`, opened by PACE-CAN and BAC with its own MRZ.
    fn card(&self, sod: Vec<u8>, aa: VirtualAa) -> VirtualCard {
        let files = self
            .groups()
            .into_iter()
            .fold(FileSystem::new(), |fs, (n, bytes)| {
                fs.with_data_group(n, bytes.to_vec())
            })
            .with_file(0x011D, sod);
        let bac = BacKeyMaterial::from_mrz(&dg1::parse(&self.dg1).unwrap()).mrz_information();
        VirtualCard::new(files)
            .with_bac(&bac)
            .with_pace(Box::new(VirtualPace::cccd(&ID[6..])))
            .with_active_authentication(aa)
    }
}

fn genuine_card(issuer: &TestIssuer) -> VirtualCard {
    issuer.card(&td1(), &person(), VirtualAa::ecdsa_p256(AaHash::Sha256))
}

fn read_chip(
    card: VirtualCard,
    key: &DeskKey,
    trust: &TrustStore,
) -> Result<reader_agent::read::ChipRead, ReadFailure> {
    let options = ReadOptions {
        trust,
        now: SystemTime::now(),
        challenge: Some(*b"nonce-01"),
        policy: Policy::default(),
    };
    read_card(card, key, &options)
}

fn by_id() -> DeskKey {
    DeskKey::from_id(ID).unwrap()
}

fn unproven(read: &reader_agent::read::ChipRead) -> Vec<Unproven> {
    match read.verdict() {
        Verdict::Verified => panic!("verified: {read:?}"),
        Verdict::NotVerified(reasons) => reasons,
        _ => unreachable!(),
    }
}

#[test]
fn a_genuine_card_read_with_the_typed_id_is_verified_on_every_link() {
    let issuer = TestIssuer::vietnam_like();
    let read = read_chip(genuine_card(&issuer), &by_id(), &trust(&issuer)).unwrap();
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    assert_eq!(read.access, Access::PaceCan);
    assert!(read.passive_genuine() && read.active.is_some());
    assert_eq!(read.full_name(), Some("Nguyễn Văn An"));
    let (nonce, signature) = read.active_authentication.as_ref().unwrap();
    assert_eq!(nonce, b"nonce-01");
    assert!(!signature.is_empty());
    assert_eq!(
        read.data_groups.keys().copied().collect::<Vec<_>>(),
        [1, 13, 14, 15]
    );
    // Debug names links, not the person.
    let shown = format!("{read:?}");
    assert!(!shown.contains(ID) && !shown.contains("Nguy"), "{shown}");
}

#[test]
fn a_card_refusing_pace_is_read_with_bac_from_the_qr_and_asks_for_it_when_only_typed() {
    let issuer = TestIssuer::vietnam_like();
    let refusing = || {
        genuine_card(&issuer).with_faults(Faults {
            refuse_pace: true,
            ..Faults::default()
        })
    };
    let qr = DeskKey::from_qr(QR).unwrap();
    let read = read_chip(refusing(), &qr, &trust(&issuer)).unwrap();
    // Without the fallback this is a PACE error; with a wrong expiry rule, WrongMrzKey.
    assert_eq!(read.access, Access::Bac);
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    assert_eq!(
        read_err(refusing(), &by_id(), &issuer),
        ReadFailure::NeedQrForBac
    );
    // A QR whose dates give another expiry (issued at 22: until 25) is refused by BAC.
    let other =
        DeskKey::from_qr("001099012345|123456789|Nguyễn Văn An|15011999|Nam|Hà Nội|10072021")
            .unwrap();
    assert_eq!(
        read_err(refusing(), &other, &issuer),
        ReadFailure::WrongMrzKey
    );
}

fn read_err(card: VirtualCard, key: &DeskKey, issuer: &TestIssuer) -> ReadFailure {
    read_chip(card, key, &trust(issuer)).expect_err("the read must fail")
}

#[test]
fn a_wrong_can_is_named_as_such() {
    let issuer = TestIssuer::vietnam_like();
    // Another valid ID: its last six digits are not this card's CAN. If PACE's refusal were
    // read as "PACE unsupported" this would fall back to BAC and fail as NeedQrForBac.
    let key = DeskKey::from_id("001099054321").unwrap();
    assert_eq!(
        read_err(genuine_card(&issuer), &key, &issuer),
        ReadFailure::WrongCan
    );
}

#[test]
fn the_chip_of_another_citizen_with_the_same_can_is_refused() {
    let issuer = TestIssuer::vietnam_like();
    // Same last six digits, another province: PACE opens, DG13 names someone else.
    let key = DeskKey::from_id("079099012345").unwrap();
    assert_eq!(
        read_err(genuine_card(&issuer), &key, &issuer),
        ReadFailure::OtherCitizen
    );
}

#[test]
fn a_clone_answers_but_is_not_chip_verified() {
    let issuer = TestIssuer::vietnam_like();
    let genuine = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = Files::new(&td1(), &person(), &genuine);
    let clone = files.card(files.sign(&issuer), VirtualAa::clone_of(&genuine));
    let read = read_chip(clone, &by_id(), &trust(&issuer)).unwrap();
    // The copied data is genuine; only the chip's own key gives it away.
    assert!(read.passive_genuine());
    assert!(read.active.is_none());
    assert!(matches!(
        unproven(&read)[..],
        [Unproven::ActiveAuthentication(_)]
    ));
}

#[test]
fn a_forged_sod_is_named() {
    let issuer = TestIssuer::vietnam_like();
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = Files::new(&td1(), &person(), &aa);
    let mut sod = files.sign(&issuer);
    // The signature is the SOD's last field. Unflipped, the list is empty and this fails.
    let last = sod.len() - 1;
    sod[last] ^= 0x01;
    let read = read_chip(files.card(sod, aa), &by_id(), &trust(&issuer)).unwrap();
    assert!(
        matches!(unproven(&read)[..], [Unproven::SodSignature(_)]),
        "{read:?}"
    );
}

#[test]
fn an_altered_dg13_is_a_hash_mismatch() {
    let issuer = TestIssuer::vietnam_like();
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let mut files = Files::new(&td1(), &person(), &aa);
    let sod = files.sign(&issuer);
    // Another name written in after signing. Without the hash check the read is verified.
    files.dg13 = build::dg13(&Dg13Person {
        full_name: "Nguyễn Văn Ân",
        ..person()
    });
    let read = read_chip(files.card(sod, aa), &by_id(), &trust(&issuer)).unwrap();
    assert_eq!(unproven(&read), [Unproven::HashMismatch(13)]);
    assert!(!read.passive_genuine());
}

#[test]
fn a_card_from_an_untrusted_issuer_is_named() {
    let trusted = TestIssuer::vietnam_like();
    let stranger = TestIssuer::look_alike();
    let read = read_chip(genuine_card(&stranger), &by_id(), &trust(&trusted)).unwrap();
    assert!(
        matches!(unproven(&read)[..], [Unproven::UntrustedSigner(_)]),
        "{read:?}"
    );
    // An agent with an empty trust store proves nothing either (a store that trusted any
    // signer would make both reads verified).
    let read = read_with_store(genuine_card(&trusted), &TrustStore::new());
    assert!(unproven(&read).contains(&Unproven::UntrustedSigner(
        "no trusted certificate has the issuer's name and key identifier".into()
    )));
}

fn read_with_store(card: VirtualCard, store: &TrustStore) -> reader_agent::read::ChipRead {
    read_chip(card, &by_id(), store).unwrap()
}

#[test]
fn an_expired_card_is_genuine_but_not_verified() {
    let issuer = TestIssuer::vietnam_like();
    let expired = Td1Fields {
        date_of_expiry: Some("240115"),
        ..Td1Fields::cccd_example()
    };
    let card = issuer.card(
        &expired,
        &Dg13Person::example(),
        VirtualAa::ecdsa_p256(AaHash::Sha256),
    );
    let read = read_chip(card, &by_id(), &trust(&issuer)).unwrap();
    assert!(read.passive_genuine() && read.active.is_some());
    // Without the expiry check every proof holds and this read is verified.
    assert_eq!(unproven(&read), [Unproven::CardExpired]);
}

#[test]
fn a_card_that_is_not_a_cccd_is_named() {
    let issuer = TestIssuer::vietnam_like();
    // A passport-like document of another state, opened with the same CAN.
    let foreign = Td1Fields {
        document_code: "P",
        issuing_state: "UTO",
        ..td1()
    };
    let card = issuer.card(&foreign, &person(), VirtualAa::ecdsa_p256(AaHash::Sha256));
    assert_eq!(read_err(card, &by_id(), &issuer), ReadFailure::NotCccd);
    // A chip without the eMRTD files at all. (A read that skipped the DG1 check would accept
    // the first card.)
    let empty =
        VirtualCard::new(FileSystem::new()).with_pace(Box::new(VirtualPace::cccd(&ID[6..])));
    assert_eq!(read_err(empty, &by_id(), &issuer), ReadFailure::NotCccd);
}

#[test]
fn garbled_and_truncated_answers_are_named_not_panics() {
    let issuer = TestIssuer::vietnam_like();
    // A response MAC broken mid-read (the 9th command: after PACE, during the files).
    let garbled = genuine_card(&issuer).with_faults(Faults {
        corrupt_mac_at_command: Some(9),
        ..Faults::default()
    });
    assert!(matches!(
        read_err(garbled, &by_id(), &issuer),
        ReadFailure::Garbled(_)
    ));
    // DG13 cut short of the length its header declares.
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let mut files = Files::new(&td1(), &person(), &aa);
    let sod = files.sign(&issuer);
    files.dg13.truncate(files.dg13.len() / 2);
    let failure = read_err(files.card(sod, aa), &by_id(), &issuer);
    assert!(matches!(failure, ReadFailure::Garbled(_)), "{failure:?}");
}

#[test]
fn a_card_removed_mid_read_is_a_removal() {
    let issuer = TestIssuer::vietnam_like();
    // During PACE, during the files, during Active Authentication. A transport error mapped
    // to anything but Removed (or a panic) fails here.
    for after in [3, 8, 12] {
        let card = genuine_card(&issuer).with_faults(Faults {
            remove_after_commands: Some(after),
            ..Faults::default()
        });
        assert_eq!(
            read_err(card, &by_id(), &issuer),
            ReadFailure::Removed,
            "removed after {after} commands"
        );
    }
}

#[test]
fn chip_authentication_runs_with_a_key_given_by_explicit_parameters() {
    use cccd_authenticity::verify::{NamedCurve, explicit_parameters};
    use emrtd::crypto::Cipher;
    use emrtd::pace::DomainCurve;
    let issuer = TestIssuer::vietnam_like();
    let aa = VirtualAa::rsa(1024);
    // brainpoolP256r1 spelt out field by field in DG14, as some issuers write it.
    let parameters = explicit_parameters(NamedCurve::BrainpoolP256r1);
    let ca = VirtualCa::with_parameters(Cipher::Aes128, DomainCurve::BrainpoolP256r1, &parameters);
    assert!(ca.dg14().windows(parameters.len()).any(|w| w == parameters));
    let mut files = Files::new(&td1(), &person(), &aa);
    files.dg14 = Some(ca.dg14().to_vec());
    let card = files
        .card(files.sign(&issuer), aa)
        .with_chip_authentication(ca);
    let read = read_chip(card, &by_id(), &trust(&issuer)).unwrap();
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    let ran = read.chip_authentication.expect("Chip Authentication ran");
    assert_eq!(ran.curve, DomainCurve::BrainpoolP256r1);
}

#[test]
fn chip_authentication_runs_when_dg14_offers_it_and_catches_a_clone() {
    let issuer = TestIssuer::vietnam_like();
    // RSA Active Authentication needs no DG14, so DG14 is Chip Authentication's.
    let (aa, ca) = (VirtualAa::rsa(1024), VirtualCa::cccd());
    let (clone_aa, clone_ca) = (VirtualAa::clone_of(&aa), VirtualCa::clone_of(&ca));
    let mut files = Files::new(&td1(), &person(), &aa);
    files.dg14 = Some(ca.dg14().to_vec());
    let sod = files.sign(&issuer);
    let card = files.card(sod.clone(), aa).with_chip_authentication(ca);
    let read = read_chip(card, &by_id(), &trust(&issuer)).unwrap();
    assert_eq!(read.verdict(), Verdict::Verified, "{read:?}");
    assert!(read.chip_authentication.is_some());

    // The clone copies DG14 but not the key: Chip Authentication fails. Without CA in the read
    // the list would not name it.
    let card = files.card(sod, clone_aa).with_chip_authentication(clone_ca);
    let read = read_chip(card, &by_id(), &trust(&issuer)).unwrap();
    assert!(
        unproven(&read)
            .iter()
            .any(|u| matches!(u, Unproven::ChipAuthentication(_))),
        "{read:?}"
    );
}
