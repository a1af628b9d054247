//! The reception desk's path, end to end and in process: the QR string gives the ID, birth date
//! and issue date; the renewal-age rule gives the expiry; that is the BAC key. The virtual card
//! holds LDS files made by the encoders; the reader fetches them over secure messaging and every
//! parser reads them back, with each data group checked against EF.SOD's hashes.

use emrtd::cccd::dg13::{self, CardExpiry as Dg13Expiry};
use emrtd::cccd::expiry::{CardExpiry, card_expiry};
use emrtd::cccd::mrz::BacKeyMaterial;
use emrtd::cccd::qr;
use emrtd::lds::build::{self, Dg13Person, OldIdField, ParentsLayout, Td1Fields};
use emrtd::lds::dg1::{self, MrzExpiry};
use emrtd::lds::{com, dg14, dg15, sod};
use emrtd::reader::Reader;
use emrtd::tlv;
use emrtd::virtual_card::{FileSystem, VirtualCard};
use sha2::{Digest, Sha256};

struct Card {
    com: Vec<u8>,
    sod: Vec<u8>,
    dg1: Vec<u8>,
    dg13: Vec<u8>,
    dg14: Vec<u8>,
    dg15: Vec<u8>,
}

fn card(td1: &Td1Fields<'_>, person: &Dg13Person<'_>) -> Card {
    let dg1 = build::dg1(&build::td1_mrz(td1));
    let dg13 = build::dg13(person);
    let ec = build::example_ec_public_key_info();
    let dg14 = build::dg14(&ec, Some(build::ECDSA_WITH_SHA256));
    let dg15 = build::dg15(&ec);
    let sod = build::sod(&[(1, &dg1), (13, &dg13), (14, &dg14), (15, &dg15)], &[]).unwrap();
    Card {
        com: build::com(&[1, 13, 14, 15]),
        sod,
        dg1,
        dg13,
        dg14,
        dg15,
    }
}

/// The card configured from its own DG1 (as a real card's BAC key comes from its MRZ), opened
/// by the reader with the desk's key.
fn read(card: &Card, desk_key: &BacKeyMaterial) -> Card {
    let card_key = BacKeyMaterial::from_mrz(&dg1::parse(&card.dg1).unwrap());
    read_with(card, &card_key, desk_key)
}

fn read_with(card: &Card, card_key: &BacKeyMaterial, desk_key: &BacKeyMaterial) -> Card {
    let files = FileSystem::new()
        .with_file(0x011E, card.com.clone())
        .with_file(0x011D, card.sod.clone())
        .with_data_group(1, card.dg1.clone())
        .with_data_group(13, card.dg13.clone())
        .with_data_group(14, card.dg14.clone())
        .with_data_group(15, card.dg15.clone());
    let virtual_card = VirtualCard::new(files).with_bac(&card_key.mrz_information());
    let mut reader = Reader::new(virtual_card);
    reader.select_application().unwrap();
    reader.establish_bac(&desk_key.bac_key().unwrap()).unwrap();
    Card {
        com: reader.read_file(0x1E).unwrap(),
        sod: reader.read_file(0x1D).unwrap(),
        dg1: reader.read_file(0x01).unwrap(),
        dg13: reader.read_file(0x0D).unwrap(),
        dg14: reader.read_file(0x0E).unwrap(),
        dg15: reader.read_file(0x0F).unwrap(),
    }
}

/// Every data group read matches its hash in EF.SOD, and EF.COM lists it.
fn check_hashes(read: &Card) {
    let sod = sod::parse(&read.sod).unwrap();
    let lso = &sod.security_object;
    for (n, bytes) in [
        (1, &read.dg1),
        (13, &read.dg13),
        (14, &read.dg14),
        (15, &read.dg15),
    ] {
        assert_eq!(lso.hash_of(n), Some(&Sha256::digest(bytes)[..]), "DG{n}");
    }
    assert_eq!(
        com::parse(&read.com).unwrap().data_groups(),
        [1, 13, 14, 15]
    );
}

#[test]
fn expiring_card_from_qr_to_parsed_data_groups() {
    let scanned =
        "001099012345|123456789|Nguyễn Văn An|15011999|Nam|Số 1 Phố Huế, Hà Nội|10072021\r\n";
    let desk = qr::parse(scanned).unwrap();
    // Issued at 22: valid until the 25th birthday.
    let expiry = card_expiry(desk.date_of_birth, desk.issue_date).unwrap();
    assert_eq!(expiry.mrz_field(), "240115");
    let key = BacKeyMaterial::from_citizen(&desk.id, desk.date_of_birth, expiry);

    let issued = card(&Td1Fields::cccd_example(), &Dg13Person::example());
    let read = read(&issued, &key);
    check_hashes(&read);

    let mrz = dg1::parse(&read.dg1).unwrap();
    assert_eq!(mrz.citizen_id(), Some(desk.id));
    let dg13 = dg13::parse(&read.dg13).unwrap();
    assert_eq!(dg13.citizen_id(), Some(desk.id));
    assert_eq!(dg13.full_name.as_deref(), Some(desk.full_name.as_str()));
    assert_eq!(dg13.old_id, desk.old_id);
    assert_eq!(dg13.sex(), Some(desk.sex));
    assert!(dg13.father.is_some() && dg13.mother.is_some());
    let dg14 = dg14::parse(&read.dg14).unwrap();
    let dg15 = dg15::parse(&read.dg15).unwrap();
    assert!(dg15.signature_scheme(Some(&dg14)).is_some());
}

#[test]
fn no_expiry_card_with_the_other_dg13_layout() {
    // Born 1960, issued at 61: no expiry; the MRZ expiry is filler; DG13 nests the parents one
    // SEQUENCE each and has the old ID in field 16.
    let desk = qr::parse("001060012345||Trần Văn Cả|02031960|Nam|Hà Nội|10072021").unwrap();
    let expiry = card_expiry(desk.date_of_birth, desk.issue_date).unwrap();
    assert_eq!(expiry, CardExpiry::Never);
    let key = BacKeyMaterial::from_citizen(&desk.id, desk.date_of_birth, expiry);

    let td1 = Td1Fields {
        document_number: "060012345",
        optional_data_1: "001060012345",
        date_of_birth: "600302",
        date_of_expiry: None,
        ..Td1Fields::cccd_example()
    };
    let person = Dg13Person {
        id: "001060012345",
        full_name: "Trần Văn Cả",
        date_of_birth: "02/03/1960",
        expiry: "Không thời hạn",
        parents: ParentsLayout::SequenceEach,
        old_id: Some(("012345678", OldIdField::Field16)),
        ..Dg13Person::example()
    };
    let read = read(&card(&td1, &person), &key);
    check_hashes(&read);
    assert_eq!(
        dg1::parse(&read.dg1).unwrap().date_of_expiry(),
        MrzExpiry::Never
    );
    let dg13 = dg13::parse(&read.dg13).unwrap();
    assert!(matches!(dg13.expiry, Some(Dg13Expiry::NoExpiry(_))));
    assert_eq!(dg13.old_id.as_deref(), Some("012345678"));
    assert_eq!(dg13.father.as_deref(), Some(person.father));
    assert_eq!(dg13.mother.as_deref(), Some(person.mother));
}

#[test]
fn hostile_files_read_from_the_card_are_typed_errors() {
    let key = BacKeyMaterial::from_mrz(
        &dg1::Td1::parse(build::td1_mrz(&Td1Fields::cccd_example()).as_bytes()).unwrap(),
    );
    let mut issued = card(&Td1Fields::cccd_example(), &Dg13Person::example());
    // DG13 whose inner SET claims more bytes than its parent holds (the outer TLV is
    // consistent, so the reader delivers the file whole).
    let body = tlv::parse_exact(&issued.dg13, tlv::Tag::new(0x6D)).unwrap();
    let fields = body
        .require(tlv::Tag::new(0x30))
        .unwrap()
        .require(tlv::Tag::new(0x31))
        .unwrap();
    let set = fields.raw().as_ptr() as usize - issued.dg13.as_ptr() as usize;
    assert_eq!(issued.dg13[set + 1], 0x82);
    issued.dg13[set + 2] = 0x7F;
    // DG1 with one check digit changed.
    let mut dg1 = issued.dg1.clone();
    dg1[5 + 14] = if dg1[5 + 14] == b'0' { b'1' } else { b'0' };
    issued.dg1 = dg1;
    // A byte of DG15's key changed: it parses, but no longer matches EF.SOD.
    let len = issued.dg15.len();
    issued.dg15[len - 1] ^= 0x01;

    let read = read_with(&issued, &key, &key);
    assert!(matches!(
        dg13::parse(&read.dg13),
        Err(dg13::Dg13Error::Tlv(_))
    ));
    assert!(matches!(
        dg1::parse(&read.dg1),
        Err(dg1::Dg1Error::CheckDigit(dg1::MrzField::DocumentNumber))
    ));
    let sod = sod::parse(&read.sod).unwrap();
    assert!(dg15::parse(&read.dg15).is_ok());
    assert_ne!(
        sod.security_object.hash_of(15),
        Some(&Sha256::digest(&read.dg15)[..])
    );
}
