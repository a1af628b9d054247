//! The virtual CCCDs the demo and the tests put on the vpcd reader: a registry person's genuine
//! card under the test PKI, and the bad cards the desk must name (a clone, altered data, a
//! forger's issuer, a card that refuses PACE, a photo replaced after signing). Every card holds
//! a face in DG2 (a synthetic JPEG of [`FACE_BYTES`], as large as real CCCD photos), hashed in
//! its EF.SOD like the other data groups.

use std::time::Duration;

use bhyt_verify::coverage::CardRecord;
use cccd_authenticity::test_pki::TestIssuer;
use emrtd::cccd::date::Date;
use emrtd::cccd::expiry::{CardExpiry, card_expiry};
use emrtd::cccd::mrz::BacKeyMaterial;
use emrtd::lds::build::{self, Dg13Person, FaceRecord};
use emrtd::lds::dg1;
use emrtd::lds::dg2::FaceRecordVersion;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{Faults, FileLog, VirtualCard};

use super::backend::with_card;
use crate::vpcd::{Behaviour, BridgeError, CONTACTLESS_ATR, InsertedCard, VirtualReader};

/// The issue date printed on every virtual card and in its QR code (`DD/MM/YYYY`).
const ISSUED: &str = "10/07/2025";

/// Which card goes on the reader.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// Issued under the trusted test CSCA, with its own Active Authentication key.
    Genuine,
    /// The genuine card's files copied onto another chip: its key is not DG15's.
    Clone,
    /// DG13 rewritten after the issuer signed (another residence): its hash no longer matches.
    TamperedDg13,
    /// Issued under a look-alike CSCA (same names, other keys) that no trust store holds.
    UntrustedSigner,
    /// A genuine card that refuses PACE: readable with BAC and the MRZ key from the QR code.
    PaceRefused,
    /// A genuine card whose photo (DG2) was replaced after signing: everything the check
    /// needs verifies, the photo does not match its hash.
    TamperedFace,
}

/// Size of the photo on every virtual card.
pub const FACE_BYTES: usize = 15 * 1024;

/// The photo on `person`'s genuine card: exactly the bytes a desk must hand on.
pub fn face_image(person: &CardRecord) -> Vec<u8> {
    let seed = person
        .citizen_id
        .as_deref()
        .unwrap_or_default()
        .bytes()
        .fold(0u8, |acc, b| acc.wrapping_add(b));
    build::synthetic_jpeg(FACE_BYTES, seed)
}

/// DG2 around `image` (ISO/IEC 19794-5:2005, as older eMRTDs write it).
fn dg2(image: &[u8]) -> Vec<u8> {
    build::dg2(&FaceRecord::new(FaceRecordVersion::V2005, image))
}

/// The issue date as the card's `Date`.
fn issue_date() -> Date {
    Date::parse_dmy_slashed(ISSUED).unwrap_or_else(|_| unreachable!("a valid constant date"))
}

/// The person's birth date (the registry's people on cards have a full one).
fn birth_date(person: &CardRecord) -> Option<Date> {
    let b = &person.birth;
    Date::new(b.year, b.month?, b.day?).ok()
}

/// The MRZ expiry of `person`'s card issued on [`ISSUED`], by the renewal-age rule (the BAC key
/// the desk works out from the QR code must match it).
fn mrz_expiry(person: &CardRecord) -> Option<String> {
    let expiry = card_expiry(birth_date(person)?, issue_date()).ok()?;
    match expiry {
        CardExpiry::On(date) => Some(date.to_yymmdd()),
        _ => None,
    }
}

/// The text the QR scanner types for `person`'s card (ID, no old ID, name, birth date, sex,
/// residence, issue date).
pub fn qr_text(person: &CardRecord) -> String {
    let id = person.citizen_id.as_deref().unwrap_or_default();
    let b = &person.birth;
    let issued = ISSUED.replace('/', "");
    format!(
        "{id}||{}|{:02}{:02}{}|Nam|{}|{issued}",
        person.full_name,
        b.day.unwrap_or(1),
        b.month.unwrap_or(1),
        b.year,
        Dg13Person::example().residence
    )
}

/// Puts `person`'s card of `kind` on the vpcd reader at `port` (the chip is built on the
/// bridge's thread and kept for the whole insertion).
pub fn insert(
    port: u16,
    issuer: &TestIssuer,
    person: &CardRecord,
    kind: CardKind,
    behaviour: Behaviour,
    wait: Duration,
) -> Result<InsertedCard, BridgeError> {
    insert_logged(port, issuer, person, kind, behaviour, wait).map(|(card, _)| card)
}

/// [`insert`], and the log of the application files the chip is asked for.
pub fn insert_logged(
    port: u16,
    issuer: &TestIssuer,
    person: &CardRecord,
    kind: CardKind,
    behaviour: Behaviour,
    wait: Duration,
) -> Result<(InsertedCard, FileLog), BridgeError> {
    let face = dg2(&face_image(person));
    let expiry = mrz_expiry(person);
    let genuine_aa = VirtualAa::ecdsa_p256(AaHash::Sha256);
    let look_alike;
    let signer = if kind == CardKind::UntrustedSigner {
        look_alike = TestIssuer::look_alike();
        &look_alike
    } else {
        issuer
    };
    let (mut files, mrz_information) = with_card(person, expiry.as_deref(), |mrz, holder| {
        let files = signer.card_files_with_face(
            mrz,
            &Dg13Person {
                issue_date: ISSUED,
                ..holder.clone()
            },
            &genuine_aa,
            Some(&face),
        );
        let dg1 = build::dg1(&build::td1_mrz(mrz));
        let bac = dg1::parse(&dg1)
            .map(|td1| BacKeyMaterial::from_mrz(&td1).mrz_information().to_string())
            .unwrap_or_default();
        (files, bac)
    });
    if kind == CardKind::TamperedDg13 {
        let altered = with_card(person, expiry.as_deref(), |_, holder| {
            build::dg13(&Dg13Person {
                issue_date: ISSUED,
                residence: "Số 99 Phố Giả, Hà Nội",
                ..holder.clone()
            })
        });
        files = files.with_data_group(13, altered);
    }
    if kind == CardKind::TamperedFace {
        // Another photo of the same size, put in after the issuer signed.
        let mut other = face_image(person);
        other[100] ^= 0x01;
        files = files.with_data_group(2, dg2(&other));
    }
    let aa = if kind == CardKind::Clone {
        VirtualAa::clone_of(&genuine_aa)
    } else {
        genuine_aa
    };
    let can = person
        .citizen_id
        .as_deref()
        .and_then(|id| id.get(6..))
        .unwrap_or_default()
        .to_owned();
    let refuse_pace = kind == CardKind::PaceRefused;
    let log = FileLog::new();
    let card_log = log.clone();
    let card = VirtualReader::on_port(port).insert_one(
        move || {
            VirtualCard::new(files)
                .with_bac(&mrz_information)
                .with_pace(Box::new(VirtualPace::cccd(&can)))
                .with_active_authentication(aa)
                .with_faults(Faults {
                    refuse_pace,
                    ..Faults::default()
                })
                .with_file_log(card_log)
        },
        &CONTACTLESS_ATR,
        behaviour,
        wait,
    )?;
    Ok((card, log))
}
