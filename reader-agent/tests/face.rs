//! The face (DG2) read over the session the check kept open, against emrtd's virtual card in
//! process: each reason a photo is not shown placed exactly, and a photo large enough that
//! short APDUs must address it beyond 0x7FFF. The same read runs over PC/SC in desk_flow.rs.

use std::time::SystemTime;

use cccd_authenticity::passive::Policy;
use cccd_authenticity::test_pki::TestIssuer;
use cccd_authenticity::trust::TrustStore;
use emrtd::lds::build::{self, FaceRecord};
use emrtd::lds::dg2::FaceRecordVersion;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::{FileLog, Limits, VirtualCard};
use reader_agent::face::{FaceFailure, FaceRead, OpenCard};
use reader_agent::read::{DeskKey, ReadOptions, Verdict, read_card_open};

#[path = "common/holder.rs"]
mod holder;
use holder::{ID, person, td1, trust};

fn dg2(image: &[u8]) -> Vec<u8> {
    build::dg2(&FaceRecord::new(FaceRecordVersion::V2011, image))
}

/// A card of `issuer` whose EF.SOD covers `signed_dg2` and which serves `served_dg2` (either
/// may be absent), and its file log.
fn card(
    issuer: &TestIssuer,
    signed_dg2: Option<&[u8]>,
    served_dg2: Option<&[u8]>,
    limits: Limits,
) -> (VirtualCard, FileLog) {
    let aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let files = issuer.card_files_with_face(&td1(), &person(), &aa, signed_dg2);
    let files = match served_dg2 {
        Some(bytes) => files.with_data_group(2, bytes.to_vec()),
        None => files.without_file(0x0102),
    };
    let log = FileLog::new();
    let chip = VirtualCard::new(files)
        .with_pace(Box::new(emrtd::virtual_card::pace::VirtualPace::cccd(
            &ID[6..],
        )))
        .with_active_authentication(aa)
        .with_limits(limits)
        .with_file_log(log.clone());
    (chip, log)
}

/// The check's read (kept open), then the face over the same session.
fn check_then_face(chip: VirtualCard, store: &TrustStore) -> (Verdict, FaceRead) {
    let options = ReadOptions {
        trust: store,
        now: SystemTime::now(),
        challenge: Some(*b"nonce-02"),
        policy: Policy::default(),
    };
    let (read, reader) = read_card_open(chip, &DeskKey::from_id(ID).unwrap(), &options).unwrap();
    let verdict = read.verdict();
    (
        verdict,
        OpenCard::new(reader, &read, options.policy).read_face(),
    )
}

#[test]
fn a_large_photo_over_short_apdus_is_read_whole_beyond_offset_7fff() {
    let issuer = TestIssuer::vietnam_like();
    // 40 KB: past the 32 KB a plain READ BINARY can address, so the reader must switch to B1.
    let image = build::synthetic_jpeg(40 * 1024, 9);
    let face = dg2(&image);
    let short_only = Limits {
        reader_extended: false,
        ..Limits::default()
    };
    let (chip, log) = card(&issuer, Some(&face), Some(&face), short_only);
    let (verdict, read) = check_then_face(chip, &trust(&issuer));
    assert_eq!(verdict, Verdict::Verified);
    let photo = read.result.expect("the photo");
    assert_eq!(photo.image, image);
    assert_eq!(photo.media_type(), "image/jpeg");
    assert!(log.touched_data_group(2));
    // Short reads under secure messaging: about 230 plain bytes each.
    assert!(
        read.apdus.apdus as usize >= face.len() / 256,
        "{:?}",
        read.apdus
    );
    eprintln!(
        "40 KB photo over short APDUs: {} APDUs, {} B received (reported, not asserted)",
        read.apdus.apdus, read.apdus.bytes_received
    );
}

#[test]
fn each_reason_a_photo_is_not_shown_is_named() {
    let issuer = TestIssuer::vietnam_like();
    let store = trust(&issuer);
    let image = build::synthetic_jpeg(3000, 4);
    let face = dg2(&image);
    let mut altered = face.clone();
    let last = altered.len() - 3;
    altered[last] ^= 0x01;
    let limits = Limits::default();

    // Replaced after signing.
    let (chip, _) = card(&issuer, Some(&face), Some(&altered), limits);
    let (verdict, read) = check_then_face(chip, &store);
    assert_eq!(verdict, Verdict::Verified, "the check itself is untouched");
    assert_eq!(read.result, Err(FaceFailure::HashMismatch));

    // Listed in EF.SOD, absent from the card.
    let (chip, _) = card(&issuer, Some(&face), None, limits);
    let (_, read) = check_then_face(chip, &store);
    assert_eq!(read.result, Err(FaceFailure::Missing));

    // A DG2 the issuer never signed: not even read.
    let (chip, log) = card(&issuer, None, Some(&face), limits);
    let (_, read) = check_then_face(chip, &store);
    assert_eq!(read.result, Err(FaceFailure::NotInSod));
    assert!(!log.touched_data_group(2), "{:?}", log.files());

    // Signed, but not a face this desk can show.
    let not_a_face =
        build::dg2_around(emrtd::lds::dg2::DATA_BLOCK_TAG, b"FAC\0010\0\0\0\0\x0e\0\0");
    let (chip, _) = card(&issuer, Some(&not_a_face), Some(&not_a_face), limits);
    let (_, read) = check_then_face(chip, &store);
    assert!(
        matches!(read.result, Err(FaceFailure::Malformed(_))),
        "{:?}",
        read.result
    );

    // The chip's data not proven (no trusted CSCA): the photo is not read at all.
    let (chip, log) = card(&issuer, Some(&face), Some(&face), limits);
    let (verdict, read) = check_then_face(chip, &TrustStore::new());
    assert!(matches!(verdict, Verdict::NotVerified(_)));
    assert_eq!(read.result, Err(FaceFailure::NotProven));
    assert!(!log.touched_data_group(2), "{:?}", log.files());
    assert_eq!(read.apdus.apdus, 0);
}
