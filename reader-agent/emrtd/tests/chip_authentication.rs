//! Chip Authentication against the virtual CCCD, in process: the terminal (`emrtd::ca`) and the
//! chip's side (`emrtd::virtual_card::ca`) are separate implementations, so a channel that works
//! after the key switch shows both computed the same shared point from DG14's key.
//!
//! Clone detection: a clone serves the genuine DG14 but holds another private key. It answers
//! every Chip Authentication step with 90 00; the first command under the new keys fails its MAC
//! on the clone. If `chip_authenticate` reported success without that confirming exchange,
//! `a_clone_is_caught_by_the_first_mac_after_the_key_switch` would fail.

use emrtd::apdu::StatusWord;
use emrtd::ca::{self, CaError, CaParams};
use emrtd::cccd::id_number::CitizenId;
use emrtd::crypto::Cipher;
use emrtd::lds::{build, dg14};
use emrtd::pace::{self, DomainCurve, PacePassword};
use emrtd::reader::{ReadError, Reader};
use emrtd::virtual_card::ca::VirtualCa;
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};

const CITIZEN_ID: &str = "001099012345";
const CAN: &str = "012345";
const DG1: [u8; 4] = [0x61, 0x02, 0x5F, 0x1F];

fn card(ca: VirtualCa, dg14: &[u8]) -> VirtualCard {
    let files = FileSystem::new()
        .with_data_group(1, DG1.to_vec())
        .with_data_group(14, dg14.to_vec());
    VirtualCard::new(files)
        .with_pace(Box::new(VirtualPace::cccd(CAN)))
        .with_chip_authentication(ca)
}

fn open(card: VirtualCard) -> Reader<VirtualCard> {
    let mut reader = Reader::new(card);
    let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
    reader
        .establish_with(|t, stats| pace::establish(t, &password, None, stats))
        .unwrap();
    reader.select_application().unwrap();
    reader
}

/// Reads DG14 over the PACE channel and runs Chip Authentication with what it declares.
fn authenticate(reader: &mut Reader<VirtualCard>) -> Result<CaParams, CaError> {
    let dg14_bytes = reader.read_file(0x0E).unwrap();
    let dg14 = dg14::parse(&dg14_bytes).unwrap();
    let params = CaParams::from_dg14(&dg14)?;
    ca::chip_authenticate(reader, &params)
}

#[test]
fn every_suite_switches_to_working_keys() {
    for cipher in [
        Cipher::Aes128,
        Cipher::Aes192,
        Cipher::Aes256,
        Cipher::TripleDes,
    ] {
        for curve in [
            DomainCurve::BrainpoolP256r1,
            DomainCurve::NistP256,
            DomainCurve::BrainpoolP384r1,
        ] {
            let chip = VirtualCa::new(cipher, curve);
            let dg14 = chip.dg14().to_vec();
            let mut reader = open(card(chip, &dg14));
            let result =
                authenticate(&mut reader).unwrap_or_else(|e| panic!("{cipher:?} {curve:?}: {e}"));
            assert_eq!((result.cipher, result.curve), (cipher, curve));
            // The new channel carries reads.
            assert!(reader.is_secure());
            assert_eq!(reader.read_file(0x01).unwrap(), DG1, "{cipher:?} {curve:?}");
        }
    }
}

#[test]
fn the_cccd_suite_reports_its_protocol() {
    let chip = VirtualCa::cccd();
    let dg14 = chip.dg14().to_vec();
    let mut reader = open(card(chip, &dg14));
    let result = authenticate(&mut reader).unwrap();
    assert_eq!(
        result.protocol,
        der::asn1::ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2.2")
    );
    assert_eq!(result.version, 1);
    assert_eq!(result.curve, DomainCurve::BrainpoolP256r1);
}

#[test]
fn a_clone_is_caught_by_the_first_mac_after_the_key_switch() {
    for cipher in [Cipher::Aes128, Cipher::TripleDes] {
        let genuine = VirtualCa::new(cipher, DomainCurve::BrainpoolP256r1);
        let clone = VirtualCa::clone_of(&genuine);
        assert_eq!(clone.dg14(), genuine.dg14());
        let mut reader = open(card(clone, genuine.dg14()));
        match authenticate(&mut reader) {
            // The clone could not check the terminal's MAC and answered 69 88 in plain.
            Err(CaError::NotAuthenticated(ReadError::Status(status))) => {
                assert_eq!(StatusWord(0x6988).error(), Some(status), "{cipher:?}");
            }
            other => panic!("{cipher:?}: clone not detected: {other:?}"),
        }
        // Nothing more is read from it.
        assert!(!reader.is_secure());
        assert_eq!(reader.read_file(0x01), Err(ReadError::NoSecureChannel));
    }
}

#[test]
fn chip_authentication_needs_a_secure_channel() {
    let chip = VirtualCa::cccd();
    let dg14_bytes = chip.dg14().to_vec();
    let dg14 = dg14::parse(&dg14_bytes).unwrap();
    let params = CaParams::from_dg14(&dg14).unwrap();
    let mut reader = Reader::new(card(chip, &dg14_bytes));
    assert_eq!(
        ca::chip_authenticate(&mut reader, &params),
        Err(CaError::Read(ReadError::NoSecureChannel))
    );
}

#[test]
fn a_card_without_chip_authentication_refuses() {
    let chip = VirtualCa::cccd();
    let dg14 = chip.dg14().to_vec();
    // The same DG14, but the card has no Chip Authentication behind it.
    let files = FileSystem::new()
        .with_data_group(1, DG1.to_vec())
        .with_data_group(14, dg14);
    let card = VirtualCard::new(files).with_pace(Box::new(VirtualPace::cccd(CAN)));
    let mut reader = open(card);
    assert!(matches!(
        authenticate(&mut reader),
        Err(CaError::Refused(_))
    ));
    // The PACE channel is untouched.
    assert_eq!(reader.read_file(0x01).unwrap(), DG1);
}

#[test]
fn dg14_without_a_usable_offer() {
    // Only an ActiveAuthenticationInfo: nothing to run.
    let aa_only = emrtd::virtual_card::aa::dg14_aa_only(build::ECDSA_WITH_SHA256);
    let parsed = dg14::parse(&aa_only).unwrap();
    assert_eq!(CaParams::from_dg14(&parsed), Err(CaError::Unsupported));

    // A key with explicit parameters: the caller must resolve them to a curve.
    let explicit = explicit_key_info();
    let bytes = build::dg14(&explicit, None);
    let parsed = dg14::parse(&bytes).unwrap();
    assert_eq!(
        CaParams::from_dg14(&parsed),
        Err(CaError::ExplicitParameters)
    );
    assert_eq!(
        CaParams::from_dg14_resolving(&parsed, |_| None),
        Err(CaError::ExplicitParameters)
    );
    // The resolver sees the parameters' DER; resolved, the point is still checked against that
    // curve (this one is not on it).
    assert_eq!(
        CaParams::from_dg14_resolving(&parsed, |der| {
            assert_eq!(der, [0x30, 0x03, 0x02, 0x01, 0x01]);
            Some(DomainCurve::BrainpoolP256r1)
        }),
        Err(CaError::InvalidKey)
    );

    // A named-curve key whose point is not on the curve.
    let bad = build::example_ec_public_key_info();
    let bytes = build::dg14(&bad, None);
    let parsed = dg14::parse(&bytes).unwrap();
    assert_eq!(CaParams::from_dg14(&parsed), Err(CaError::InvalidKey));

    // A named curve is the library's to match: the resolver is not asked.
    let chip = VirtualCa::new(Cipher::Aes128, DomainCurve::NistP256);
    let parsed = dg14::parse(chip.dg14()).unwrap();
    let params = CaParams::from_dg14_resolving(&parsed, |_| panic!("asked for a named curve"));
    assert_eq!(params.map(|p| p.curve), Ok(DomainCurve::NistP256));
}

/// An id-ecPublicKey key info whose parameters are a (truncated, stand-in) SpecifiedECDomain
/// SEQUENCE rather than a curve OID.
fn explicit_key_info() -> Vec<u8> {
    let parameters = [0x30, 0x03, 0x02, 0x01, 0x01];
    let mut point = vec![0x04];
    point.extend([0x11; 64]);
    build::public_key_info(dg15_ec_public_key(), Some(&parameters), &point).unwrap()
}

fn dg15_ec_public_key() -> der::asn1::ObjectIdentifier {
    emrtd::lds::dg15::EC_PUBLIC_KEY
}

#[test]
fn a_reader_without_extended_apdus_runs_chip_authentication() {
    use emrtd::virtual_card::Limits;
    let chip = VirtualCa::cccd();
    let dg14 = chip.dg14().to_vec();
    let card = card(chip, &dg14).with_limits(Limits {
        reader_extended: false,
        ..Limits::default()
    });
    let mut reader = open(card);
    // Without the short retry of GENERAL AUTHENTICATE the reader refuses the extended command.
    authenticate(&mut reader).unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), DG1);
}
