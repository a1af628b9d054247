//! PACE against the virtual CCCD, in process: the terminal (`emrtd::pace`) and the card's side
//! (`emrtd::virtual_card::pace`) are separate implementations, so a run that opens a working
//! secure channel shows both derived the same keys from the same password. Every supported suite,
//! a wrong CAN, a refusing card with the BAC fallback, and a card without EF.CardAccess.

use emrtd::apdu::StatusWord;
use emrtd::bac::BacKey;
use emrtd::cccd::id_number::CitizenId;
use emrtd::crypto::Cipher;
use emrtd::pace::{self, DomainCurve, PaceError, PaceParams, PacePassword};
use emrtd::reader::{ReadError, Reader};
use emrtd::stats::Phase;
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{Faults, FileSystem, VirtualCard};

/// A CCCD-shaped ID: CAN is its last 6 digits.
const CITIZEN_ID: &str = "001099012345";
const CAN: &str = "012345";
/// The MRZ information printed on the card (document number = last 9 digits of the ID).
const MRZ_INFORMATION: &str = "099012345999010183901016";

fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
}

fn dg1() -> Vec<u8> {
    tlv(&[0x61], &tlv(&[0x5F, 0x1F], &[b'<'; 90]))
}

fn dg13() -> Vec<u8> {
    tlv(
        &[0x6D],
        &(0..700u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
}

/// EF.CardAccess declaring one PACEInfo: ECDH-GM with `cipher`, standardized parameter `id`.
fn card_access(cipher: Cipher, curve: DomainCurve) -> Vec<u8> {
    let suite = match cipher {
        Cipher::TripleDes => 1,
        Cipher::Aes128 => 2,
        Cipher::Aes192 => 3,
        Cipher::Aes256 => 4,
        _ => unreachable!(),
    };
    let mut info = tlv(
        &[0x06],
        &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, suite],
    );
    info.extend(tlv(&[0x02], &[2]));
    info.extend(tlv(&[0x02], &[curve.parameter_id()]));
    tlv(&[0x31], &tlv(&[0x30], &info))
}

fn files(card_access: Option<Vec<u8>>) -> FileSystem {
    let files = FileSystem::new()
        .with_data_group(1, dg1())
        .with_data_group(13, dg13());
    match card_access {
        Some(bytes) => files.with_card_access(bytes),
        None => files,
    }
}

fn cccd() -> VirtualCard {
    VirtualCard::new(files(Some(card_access(
        Cipher::Aes128,
        DomainCurve::BrainpoolP256r1,
    ))))
    .with_bac(MRZ_INFORMATION)
    .with_pace(Box::new(
        VirtualPace::cccd(CAN).with_mrz_information(MRZ_INFORMATION),
    ))
}

fn can() -> PacePassword {
    PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap())
}

/// The reader's opening with PACE: EF.CardAccess, PACE, then the application under SM.
fn open_with_pace(
    reader: &mut Reader<VirtualCard>,
    password: &PacePassword,
) -> Result<(), PaceError> {
    let card_access = reader.read_card_access().unwrap();
    reader.establish_with(|transport, stats| {
        pace::establish(transport, password, card_access.as_deref(), stats)
    })
}

#[test]
fn pace_can_opens_the_cccd_and_files_read_under_aes_secure_messaging() {
    let mut reader = Reader::new(cccd());
    open_with_pace(&mut reader, &can()).unwrap();
    assert!(reader.transport_mut().secure_session());
    reader.select_application().unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
    assert_eq!(reader.read_file(0x0D).unwrap(), dg13());
    // MSE:Set AT and four GENERAL AUTHENTICATE: the protocol's minimum.
    assert_eq!(reader.stats().phase(Phase::Pace).apdus, 5);
}

#[test]
fn every_supported_suite_against_the_card() {
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
            let card = VirtualCard::new(files(Some(card_access(cipher, curve))))
                .with_pace(Box::new(VirtualPace::new(cipher, curve).with_can(CAN)));
            let mut reader = Reader::new(card);
            open_with_pace(&mut reader, &can())
                .unwrap_or_else(|e| panic!("{cipher:?} {curve:?}: {e}"));
            reader.select_application().unwrap();
            assert_eq!(
                reader.read_file(0x0D).unwrap(),
                dg13(),
                "{cipher:?} {curve:?}"
            );
        }
    }
}

#[test]
fn pace_with_the_mrz_password() {
    let mut reader = Reader::new(cccd());
    let password = PacePassword::mrz("099012345", "990101", "390101").unwrap();
    open_with_pace(&mut reader, &password).unwrap();
    reader.select_application().unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
}

#[test]
fn a_wrong_can_is_a_wrong_password_and_a_retry_with_the_right_one_works() {
    let mut reader = Reader::new(cccd());
    assert_eq!(
        open_with_pace(&mut reader, &PacePassword::can("012346").unwrap()),
        Err(PaceError::WrongPassword)
    );
    assert!(!reader.is_secure());
    assert!(!reader.transport_mut().secure_session());
    // The card's side refused before opening anything: application files stay closed.
    assert!(matches!(
        reader.read_file(0x01),
        Err(ReadError::NoSecureChannel)
    ));
    open_with_pace(&mut reader, &can()).unwrap();
    reader.select_application().unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
}

#[test]
fn a_card_refusing_pace_gives_6982_and_bac_still_opens_it() {
    let card = cccd().with_faults(Faults {
        refuse_pace: true,
        ..Faults::default()
    });
    let mut reader = Reader::new(card);
    assert_eq!(
        open_with_pace(&mut reader, &can()),
        Err(PaceError::Refused(StatusWord(0x6982)))
    );
    // The caller's fallback.
    reader.select_application().unwrap();
    reader
        .establish_bac(&BacKey::from_mrz_information(MRZ_INFORMATION).unwrap())
        .unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
}

#[test]
fn without_ef_card_access_the_cccd_suite_is_assumed() {
    let card = VirtualCard::new(files(None)).with_pace(Box::new(VirtualPace::cccd(CAN)));
    let mut reader = Reader::new(card);
    assert_eq!(reader.read_card_access().unwrap(), None);
    reader
        .establish_with(|t, stats| pace::establish(t, &can(), None, stats))
        .unwrap();
    reader.select_application().unwrap();
    assert_eq!(reader.read_file(0x0D).unwrap(), dg13());
    // A card on another suite than the assumed one refuses MSE:Set AT (6A80) without the file.
    let card = VirtualCard::new(files(None)).with_pace(Box::new(
        VirtualPace::new(Cipher::Aes256, DomainCurve::NistP256).with_can(CAN),
    ));
    let mut reader = Reader::new(card);
    assert_eq!(
        reader.establish_with(|t, stats| pace::establish(t, &can(), None, stats)),
        Err(PaceError::Refused(StatusWord(0x6A80)))
    );
    // With explicit parameters it opens.
    reader
        .establish_with(|t, stats| {
            pace::establish_with_params(
                t,
                &can(),
                &PaceParams::ecdh_gm(Cipher::Aes256, DomainCurve::NistP256),
                stats,
            )
        })
        .unwrap();
}

#[test]
fn card_access_declaring_nothing_runnable_is_unsupported() {
    // Only PACE with Integrated Mapping (0.4.0.127.0.7.2.2.4.4.2).
    let mut info = tlv(
        &[0x06],
        &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x04, 0x02],
    );
    info.extend(tlv(&[0x02], &[2]));
    info.extend(tlv(&[0x02], &[13]));
    let file = tlv(&[0x31], &tlv(&[0x30], &info));
    let mut reader = Reader::new(cccd());
    assert_eq!(
        reader.establish_with(|t, stats| pace::establish(t, &can(), Some(&file), stats)),
        Err(PaceError::Unsupported)
    );
    // Nothing was sent.
    assert_eq!(reader.stats().phase(Phase::Pace).apdus, 0);
}

/// A file of `len` bytes in all (tag, length, content), as the reader sizes it.
fn file_of(tag: u8, len: usize) -> Vec<u8> {
    let header = if len - 2 <= 0x7F {
        2
    } else if len - 3 <= 0xFF {
        3
    } else {
        4
    };
    let out = tlv(&[tag], &vec![0x5A; len - header]);
    assert_eq!(out.len(), len);
    out
}

/// A complete read as the desk does it, opened with PACE-CAN: EF.CardAccess, PACE, the
/// application, EF.SOD, DG1, DG13 and DG15 (sizes of a CCCD's files), counted against the fewest
/// APDUs the protocol allows for the same files. The authentication step (INTERNAL AUTHENTICATE,
/// one APDU) belongs to the authenticity work and is not counted here.
#[test]
fn complete_read_with_pace_against_the_protocol_minimum() {
    let (sod, dg1, dg13, dg15) = (
        file_of(0x77, 1804),
        file_of(0x61, 95),
        file_of(0x6D, 704),
        file_of(0x6F, 304),
    );
    for (name, reader_extended) in [("extended length", true), ("short APDUs only", false)] {
        let files = FileSystem::new()
            .with_card_access(card_access(Cipher::Aes128, DomainCurve::BrainpoolP256r1))
            .with_file(0x011D, sod.clone())
            .with_data_group(1, dg1.clone())
            .with_data_group(13, dg13.clone())
            .with_data_group(15, dg15.clone());
        let limits = emrtd::virtual_card::Limits {
            reader_extended,
            ..Default::default()
        };
        let card = VirtualCard::new(files)
            .with_limits(limits)
            .with_pace(Box::new(VirtualPace::cccd(CAN)));
        let mut reader = Reader::new(card);
        open_with_pace(&mut reader, &can()).unwrap();
        reader.select_application().unwrap();
        let mut sizes = Vec::new();
        for (sfi, expected) in [(0x1D, &sod), (0x01, &dg1), (0x0D, &dg13), (0x0F, &dg15)] {
            let read = reader.read_file(sfi).unwrap();
            assert_eq!(&read, expected);
            sizes.push(read.len());
        }
        // Fewest: SELECT + READ of EF.CardAccess, 5 for PACE (MSE:Set AT, 4 GENERAL
        // AUTHENTICATE), SELECT of the application, and per file ceil(size / largest chunk):
        // 0xFF00 plain bytes extended; 223 under AES secure messaging in a short APDU.
        let chunk = if reader_extended { 0xFF00 } else { 223 };
        let minimum = 2 + 5 + 1 + sizes.iter().map(|&n| n.div_ceil(chunk) as u32).sum::<u32>();
        let stats = reader.stats();
        println!("{name}: files {sizes:?}\n{stats}\n  protocol minimum: {minimum} APDUs");
        // Short only, the reader refuses the one extended attempt of the session.
        let overhead = u32::from(!reader_extended);
        assert_eq!(stats.total().apdus, minimum + overhead, "{name}");
    }
}
