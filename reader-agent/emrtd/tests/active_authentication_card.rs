//! The virtual card's INTERNAL AUTHENTICATE as a terminal sees it: where it answers and where it
//! refuses. Verifying the signatures is `cccd-authenticity`'s (its tests run the round trips).

use emrtd::aa;
use emrtd::apdu::StatusWord;
use emrtd::cccd::id_number::CitizenId;
use emrtd::pace::{self, PacePassword};
use emrtd::reader::Reader;
use emrtd::transport::Transport;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};

const CITIZEN_ID: &str = "001099012345";
const CAN: &str = "012345";
const AID_SELECT: [u8; 12] = [0, 0xA4, 4, 0x0C, 7, 0xA0, 0, 0, 2, 0x47, 0x10, 1];

fn card() -> VirtualCard {
    let aa_key = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = FileSystem::new().with_data_group(15, aa_key.dg15().to_vec());
    VirtualCard::new(files)
        .with_pace(Box::new(VirtualPace::cccd(CAN)))
        .with_active_authentication(aa_key)
}

#[test]
fn in_plain_the_card_refuses_to_sign() {
    let mut card = card();
    assert_eq!(card.transmit(&AID_SELECT).unwrap(), [0x90, 0x00]);
    let mut command = vec![0x00, 0x88, 0x00, 0x00, 0x08];
    command.extend([7u8; 8]);
    command.push(0x00);
    assert_eq!(card.transmit(&command).unwrap(), [0x69, 0x82]);
}

#[test]
fn under_secure_messaging_it_signs_and_checks_its_input() {
    let mut reader = Reader::new(card());
    let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
    reader
        .establish_with(|t, stats| pace::establish(t, &password, None, stats))
        .unwrap();
    reader.select_application().unwrap();
    let signature = aa::internal_authenticate(&mut reader, &[1; 8]).unwrap();
    assert_eq!(signature.len(), 64);
    // Two answers to one challenge differ only if the card is randomised; ECDSA here is
    // deterministic (RFC 6979), so the same challenge gives the same answer and another one not.
    assert_eq!(
        aa::internal_authenticate(&mut reader, &[1; 8]).unwrap(),
        signature
    );
    assert_ne!(
        aa::internal_authenticate(&mut reader, &[2; 8]).unwrap(),
        signature
    );
    // A challenge of the wrong length and wrong parameters, sent through the channel.
    use emrtd::apdu::CommandApdu;
    use emrtd::stats::Phase;
    let short = CommandApdu::new(0, 0x88, 0, 0)
        .with_data(vec![1; 7])
        .with_le(256);
    assert_eq!(
        reader.exchange(&short, Phase::Authentication).unwrap().sw,
        StatusWord(0x6700)
    );
    let p1 = CommandApdu::new(0, 0x88, 1, 0)
        .with_data(vec![1; 8])
        .with_le(256);
    assert_eq!(
        reader.exchange(&p1, Phase::Authentication).unwrap().sw,
        StatusWord(0x6A86)
    );
    // The reader's own challenges are fresh.
    assert_ne!(
        aa::fresh_challenge().unwrap(),
        aa::fresh_challenge().unwrap()
    );
}

#[test]
fn a_reader_without_extended_apdus_still_gets_short_signatures() {
    use emrtd::virtual_card::Limits;
    for aa_key in [VirtualAa::ecdsa_p256(AaHash::Sha256), VirtualAa::rsa(1024)] {
        let files = FileSystem::new().with_data_group(15, aa_key.dg15().to_vec());
        let card = VirtualCard::new(files)
            .with_pace(Box::new(VirtualPace::cccd(CAN)))
            .with_active_authentication(aa_key)
            .with_limits(Limits {
                reader_extended: false,
                ..Limits::default()
            });
        let mut reader = Reader::new(card);
        let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
        reader
            .establish_with(|t, stats| pace::establish(t, &password, None, stats))
            .unwrap();
        reader.select_application().unwrap();
        // Without the short retry the reader's refusal of the extended command ends it here.
        let signature = aa::internal_authenticate(&mut reader, &[5; 8]).unwrap();
        assert!(signature.len() == 64 || signature.len() == 128);
        // The counters stayed in step: the channel still works.
        assert!(reader.read_file(0x0F).is_ok());
    }
    // RSA-2048 cannot come back in a short APDU: the card says so (67 00).
    let aa_key = VirtualAa::rsa(2048);
    let card = VirtualCard::new(FileSystem::new())
        .with_pace(Box::new(VirtualPace::cccd(CAN)))
        .with_active_authentication(aa_key)
        .with_limits(Limits {
            reader_extended: false,
            ..Limits::default()
        });
    let mut reader = Reader::new(card);
    let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
    reader
        .establish_with(|t, stats| pace::establish(t, &password, None, stats))
        .unwrap();
    reader.select_application().unwrap();
    assert_eq!(
        aa::internal_authenticate(&mut reader, &[5; 8]),
        Err(aa::AaError::Refused(StatusWord(0x6700)))
    );
}

#[test]
fn a_reader_known_to_refuse_extended_apdus_gets_one_short_command() {
    use emrtd::stats::Phase;
    use emrtd::virtual_card::Limits;
    let aa_key = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = FileSystem::new().with_data_group(15, aa_key.dg15().to_vec());
    let card = VirtualCard::new(files)
        .with_pace(Box::new(VirtualPace::cccd(CAN)))
        .with_active_authentication(aa_key)
        .with_limits(Limits {
            reader_extended: false,
            ..Limits::default()
        });
    let mut reader = Reader::new(card);
    let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
    reader
        .establish_with(|t, stats| pace::establish(t, &password, None, stats))
        .unwrap();
    reader.select_application().unwrap();
    // Reading DG15 teaches the reader that extended APDUs are refused.
    reader.read_file(0x0F).unwrap();
    assert!(!reader.chunk_size().1);
    aa::internal_authenticate(&mut reader, &[6; 8]).unwrap();
    // Fails (2) if Active Authentication tried extended length again before stepping down.
    assert_eq!(reader.stats().phase(Phase::Authentication).apdus, 1);
}
