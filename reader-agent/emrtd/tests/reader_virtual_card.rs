//! The terminal's reader against the virtual CCCD, in process: BAC, secure messaging, every
//! chunk-size step-down, 6Cxx, odd READ BINARY above 0x7FFF, faults and hostile files.

use emrtd::apdu::{CommandApdu, StatusError};
use emrtd::bac::{BacError, BacKey};
use emrtd::crypto::{Cipher, SessionKeys};
use emrtd::reader::{ReadError, Reader};
use emrtd::sm::{SecureChannel, SmError};
use emrtd::stats::Phase;
use emrtd::transport::TransportError;
use emrtd::virtual_card::{
    CardPace, Faults, FileSystem, Limits, PaceOutcome, PlainCommand, VirtualCard,
};

/// ICAO 9303-11 Appendix D's MRZ information, printed on the virtual card.
const MRZ_INFORMATION: &str = "L898902C<369080619406236";

/// Appendix D's EF.COM.
const EF_COM: [u8; 22] = [
    0x60, 0x14, 0x5F, 0x01, 0x04, 0x30, 0x31, 0x30, 0x36, 0x5F, 0x36, 0x06, 0x30, 0x34, 0x30, 0x30,
    0x30, 0x30, 0x5C, 0x02, 0x61, 0x75,
];

/// A tiny BER-TLV encoder for fixtures (the LDS builders are not used here).
fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n @ 0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        n => out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
}

fn patterned(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn dg1() -> Vec<u8> {
    let mrz = b"IDVNM0790123458001079012345<<<9001014M3001014VNM<<<<<<<<<<<0NGUYEN<<VAN<A<<<<<<<<<<<<<<<<<<";
    tlv(&[0x61], &tlv(&[0x5F, 0x1F], &mrz[..90]))
}

fn card_access() -> Vec<u8> {
    tlv(&[0x31], &tlv(&[0x30], &patterned(18, 1)))
}

fn files() -> FileSystem {
    FileSystem::new()
        .with_card_access(card_access())
        .with_file(0x011E, EF_COM.to_vec())
        .with_file(0x011D, tlv(&[0x77], &patterned(1800, 2)))
        .with_data_group(1, dg1())
        .with_data_group(2, tlv(&[0x75], &patterned(40_000, 3)))
        .with_data_group(13, tlv(&[0x6D], &patterned(700, 4)))
        .with_data_group(15, tlv(&[0x6F], &patterned(300, 5)))
}

fn key() -> BacKey {
    BacKey::new("L898902C", "690806", "940623").unwrap()
}

fn card() -> VirtualCard {
    VirtualCard::new(files()).with_bac(MRZ_INFORMATION)
}

/// Card access, application, BAC: the usual opening.
fn opened(card: VirtualCard) -> Reader<VirtualCard> {
    let mut reader = Reader::new(card);
    assert_eq!(reader.read_card_access().unwrap(), Some(card_access()));
    reader.select_application().unwrap();
    reader.establish_bac(&key()).unwrap();
    reader
}

#[test]
fn bac_then_files_over_secure_messaging() {
    let mut reader = opened(card());
    assert!(reader.transport_mut().secure_session());
    assert_eq!(reader.read_file(0x1E).unwrap(), EF_COM);
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
    assert_eq!(reader.read_file(0x1D).unwrap().len(), 1804);
    // Extended length worked end to end: one APDU per file.
    assert_eq!(reader.stats().phase(Phase::File(0x1D)).apdus, 1);
    assert_eq!(reader.chunk_size(), (0xFF00, true));
}

#[test]
fn files_are_refused_without_a_secure_channel() {
    let mut reader = Reader::new(card());
    reader.select_application().unwrap();
    assert_eq!(reader.read_file(0x01), Err(ReadError::NoSecureChannel));
    // And the card itself refuses plain access (6982).
    let plain = CommandApdu::new(0, 0xB0, 0x81, 0).with_le(4);
    let response = reader.exchange(&plain, Phase::File(1)).unwrap();
    assert_eq!(
        response.sw.check(),
        Err(StatusError::SecurityStatusNotSatisfied)
    );
}

#[test]
fn wrong_mrz_key_is_refused() {
    let mut reader = Reader::new(card());
    reader.select_application().unwrap();
    let wrong = BacKey::new("L898902C", "690806", "940624").unwrap();
    assert_eq!(
        reader.establish_bac(&wrong),
        Err(ReadError::Bac(BacError::Refused(
            StatusError::AuthenticationFailed
        )))
    );
    assert!(!reader.is_secure());
    assert!(!reader.transport_mut().secure_session());
}

#[test]
fn forged_response_mac_is_a_typed_error_and_yields_no_data() {
    // Commands: select CardAccess, read it, select application, GET CHALLENGE, EXTERNAL
    // AUTHENTICATE, then the first READ BINARY of DG1 (the 6th) gets a corrupted MAC.
    let faults = Faults {
        corrupt_mac_at_command: Some(6),
        ..Faults::default()
    };
    let mut reader = opened(card().with_faults(faults));
    assert_eq!(reader.read_file(0x01), Err(ReadError::Sm(SmError::BadMac)));
    // The channel is closed: nothing more is read over it.
    assert!(!reader.is_secure());
    assert_eq!(reader.read_file(0x01), Err(ReadError::NoSecureChannel));
    // Without the fault the same read succeeds (so the test fails if the MAC check is off).
    assert_eq!(opened(card()).read_file(0x01).unwrap(), dg1());
}

/// Reads DG13 and DG2 under `limits`; returns the learnt chunk and the APDUs for DG13.
fn read_under(limits: Limits) -> ((usize, bool), u32, Reader<VirtualCard>) {
    let mut reader = opened(card().with_limits(limits));
    assert_eq!(
        reader.read_file(0x0D).unwrap(),
        tlv(&[0x6D], &patterned(700, 4))
    );
    let apdus = reader.stats().phase(Phase::File(0x0D)).apdus;
    assert_eq!(
        reader.read_file(0x02).unwrap(),
        tlv(&[0x75], &patterned(40_000, 3))
    );
    (reader.chunk_size(), apdus, reader)
}

#[test]
fn step_down_when_the_reader_rejects_extended_apdus() {
    let limits = Limits {
        reader_extended: false,
        ..Limits::default()
    };
    let (chunk, dg13_apdus, reader) = read_under(limits);
    // 3DES secure messaging: 231 plain bytes is the largest short read.
    assert_eq!(chunk, (231, false));
    // Learnt on the first read of the session (EF.CardAccess): one extended attempt refused by
    // the reader (counted as sent), then the read itself.
    assert_eq!(reader.stats().phase(Phase::CardAccess).apdus, 2);
    // Kept for the session: DG13 (704 bytes) in ceil(704 / 231) = 4 reads, no more attempts.
    assert_eq!(dg13_apdus, 4);
}

#[test]
fn step_down_when_the_card_refuses_extended_apdus() {
    let limits = Limits {
        card_extended: false,
        ..Limits::default()
    };
    let (chunk, dg13_apdus, reader) = read_under(limits);
    assert_eq!(chunk, (231, false));
    // 67 00 for 0xFF00, 0x4000, 0x1000, 0x400 on EF.CardAccess, then the short read.
    assert_eq!(reader.stats().phase(Phase::CardAccess).apdus, 4 + 1);
    assert_eq!(dg13_apdus, 4);
}

#[test]
fn step_down_to_the_cards_extended_limit() {
    let limits = Limits {
        max_extended_read: 0x1000,
        ..Limits::default()
    };
    let (chunk, dg13_apdus, reader) = read_under(limits);
    assert_eq!(chunk, (0x1000, true));
    // 67 00 for 0xFF00 and 0x4000 on EF.CardAccess, then 0x1000 works.
    assert_eq!(reader.stats().phase(Phase::CardAccess).apdus, 2 + 1);
    assert_eq!(dg13_apdus, 1);
    // DG2 (40 004 bytes) in ceil(40004 / 4096) = 10 reads, no further step-down.
    assert_eq!(reader.stats().phase(Phase::File(2)).apdus, 10);
}

#[test]
fn step_down_through_short_sizes() {
    for (max, expected) in [(200, 160), (150, 128), (100, 64), (40, 32), (20, 16)] {
        let limits = Limits {
            card_extended: false,
            max_short_read: max,
            ..Limits::default()
        };
        let mut reader = opened(card().with_limits(limits));
        assert_eq!(
            reader.read_file(0x0D).unwrap(),
            tlv(&[0x6D], &patterned(700, 4))
        );
        assert_eq!(reader.chunk_size(), (expected, false), "card max {max}");
    }
}

#[test]
fn exact_length_from_6cxx() {
    let limits = Limits {
        reader_extended: false,
        max_short_read: 100,
        exact_length_hint: true,
        ..Limits::default()
    };
    let mut reader = opened(card().with_limits(limits));
    assert_eq!(
        reader.read_file(0x0D).unwrap(),
        tlv(&[0x6D], &patterned(700, 4))
    );
    // Learnt from 6C64 once the file's length was known; kept for the next file.
    assert_eq!(reader.chunk_size(), (100, false));
    let before = reader.stats().phase(Phase::File(0x0F)).apdus;
    assert_eq!(before, 0);
    assert_eq!(
        reader.read_file(0x0F).unwrap(),
        tlv(&[0x6F], &patterned(300, 5))
    );
    // 304 bytes at 100 per read: 4 reads, no more 6C round trips.
    assert_eq!(reader.stats().phase(Phase::File(0x0F)).apdus, 4);
}

#[test]
fn odd_read_binary_beyond_0x7fff_with_short_apdus() {
    // Short reads only: 40 004 bytes need ~174 reads, the last ~33 of them with INS B1.
    let limits = Limits {
        reader_extended: false,
        ..Limits::default()
    };
    let mut reader = opened(card().with_limits(limits));
    assert_eq!(
        reader.read_file(0x02).unwrap(),
        tlv(&[0x75], &patterned(40_000, 3))
    );
}

#[test]
fn card_removed_mid_read() {
    let limits = Limits {
        reader_extended: false,
        ..Limits::default()
    };
    let faults = Faults {
        remove_after_commands: Some(10),
        ..Faults::default()
    };
    let mut reader = opened(card().with_limits(limits).with_faults(faults));
    assert_eq!(
        reader.read_file(0x02),
        Err(ReadError::Transport(TransportError::CardRemoved))
    );
}

#[test]
fn truncated_and_hostile_files() {
    let declared_long = {
        let mut f = tlv(&[0x61], &[0x55; 0x200]);
        f.truncate(50);
        f
    };
    let cases: [(Vec<u8>, ReadError); 4] = [
        (declared_long, ReadError::Truncated),
        (
            vec![0x61, 0x83, 0xFF, 0xFF, 0xFF, 1, 2, 3],
            ReadError::FileTooLarge {
                declared: 0xFF_FFFF + 5,
            },
        ),
        (vec![0x00, 0x05, 1, 2, 3, 4, 5], ReadError::Malformed),
        (vec![0x61, 0x84, 0, 0, 0, 1, 9], ReadError::Malformed),
    ];
    for (bytes, expected) in cases {
        for limits in [
            Limits::default(),
            Limits {
                reader_extended: false,
                max_short_read: 16,
                ..Limits::default()
            },
        ] {
            let card = VirtualCard::new(FileSystem::new().with_data_group(1, bytes.clone()))
                .with_bac(MRZ_INFORMATION);
            let mut reader = Reader::new(card.with_limits(limits));
            reader.select_application().unwrap();
            reader.establish_bac(&key()).unwrap();
            assert_eq!(
                reader.read_file(0x01),
                Err(expected.clone()),
                "{bytes:02X?}"
            );
        }
    }
}

#[test]
fn missing_card_access_and_missing_file() {
    let mut reader = Reader::new(
        VirtualCard::new(FileSystem::new().with_data_group(1, dg1())).with_bac(MRZ_INFORMATION),
    );
    assert_eq!(reader.read_card_access().unwrap(), None);
    reader.select_application().unwrap();
    reader.establish_bac(&key()).unwrap();
    assert_eq!(
        reader.read_file(0x0E),
        Err(ReadError::Status(StatusError::FileNotFound))
    );
    // A protected error keeps the channel usable.
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
}

/// Hands fixed AES session keys to the card on one GENERAL AUTHENTICATE: not PACE, only a way
/// to open an AES session on both sides so AES secure messaging runs against the card's side.
struct FixedAesSession(Vec<u8>);

impl CardPace for FixedAesSession {
    fn process(&mut self, command: &PlainCommand<'_>) -> PaceOutcome {
        let session = (command.ins == 0x86).then(|| SessionKeys::derive(Cipher::Aes128, &self.0));
        PaceOutcome {
            data: Vec::new(),
            sw: 0x9000,
            session,
        }
    }
}

#[test]
fn aes_secure_messaging_against_the_card_side() {
    let secret = b"fixed test secret".to_vec();
    let card = VirtualCard::new(files()).with_pace(Box::new(FixedAesSession(secret.clone())));
    for limits in [
        Limits::default(),
        Limits {
            reader_extended: false,
            ..Limits::default()
        },
    ] {
        let mut reader = Reader::new(
            VirtualCard::new(files())
                .with_pace(Box::new(FixedAesSession(secret.clone())))
                .with_limits(limits),
        );
        // Opened through the hook PACE uses.
        reader
            .establish_with(|transport, stats| {
                let ga = CommandApdu::new(0, 0x86, 0, 0)
                    .with_data([0x7C, 0])
                    .with_le(256);
                let raw = stats.transmit(transport, Phase::Pace, &ga.to_bytes().unwrap())?;
                assert_eq!(raw, [0x90, 0x00]);
                let keys = SessionKeys::derive(Cipher::Aes128, &secret);
                Ok::<_, TransportError>(SecureChannel::new(keys, &[0; 16]).unwrap())
            })
            .unwrap();
        assert_eq!(reader.stats().phase(Phase::Pace).apdus, 1);
        reader.select_application().unwrap();
        assert_eq!(reader.read_file(0x01).unwrap(), dg1());
        assert_eq!(
            reader.read_file(0x02).unwrap(),
            tlv(&[0x75], &patterned(40_000, 3))
        );
        if !limits.reader_extended {
            assert_eq!(reader.chunk_size(), (223, false));
        }
    }
    drop(card);
}

#[test]
fn refused_pace_answers_6982() {
    let faults = Faults {
        refuse_pace: true,
        ..Faults::default()
    };
    let mut reader = Reader::new(card().with_faults(faults));
    let mse = CommandApdu::new(0, 0x22, 0xC1, 0xA4).with_data([0x80, 0x0A]);
    let response = reader.exchange(&mse, Phase::Pace).unwrap();
    assert_eq!(
        response.sw.check(),
        Err(StatusError::SecurityStatusNotSatisfied)
    );
    // Fallback: BAC works.
    reader.select_application().unwrap();
    reader.establish_bac(&key()).unwrap();
    assert_eq!(reader.read_file(0x01).unwrap(), dg1());
}

#[test]
fn complete_read_counts_against_the_protocol_minimum() {
    for (name, limits) in [
        ("extended", Limits::default()),
        (
            "short only",
            Limits {
                reader_extended: false,
                ..Limits::default()
            },
        ),
    ] {
        let mut reader = Reader::new(card().with_limits(limits));
        reader.read_card_access().unwrap();
        reader.select_application().unwrap();
        reader.establish_bac(&key()).unwrap();
        let mut sizes = Vec::new();
        for sfi in [0x1D, 0x01, 0x0D, 0x0F] {
            sizes.push(reader.read_file(sfi).unwrap().len());
        }
        let stats = reader.stats();
        // Smallest count: SELECT + READ of EF.CardAccess (its 22 bytes fit one read), SELECT of the
        // application, 2 for BAC, and per file ceil(len / largest chunk). Short only, the reader
        // refuses the first (extended) attempt, once per session.
        let chunk = if limits.reader_extended { 0xFF00 } else { 231 };
        let minimum: u32 = 3 + 2 + sizes.iter().map(|&n| n.div_ceil(chunk) as u32).sum::<u32>();
        let total = stats.total();
        println!("{name}: files {sizes:?}\n{stats}\n  protocol minimum: {minimum} APDUs");
        let overhead = if limits.reader_extended { 0 } else { 1 };
        assert_eq!(total.apdus, minimum + overhead, "{name}");
    }
}
