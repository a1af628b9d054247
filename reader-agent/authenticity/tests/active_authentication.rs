//! Active Authentication end to end, in process: the reader (`emrtd::aa`) sends INTERNAL
//! AUTHENTICATE over PACE secure messaging to the virtual CCCD, whose chip side
//! (`emrtd::virtual_card::aa`) signs as a chip does; the verifier here checks the answer against
//! DG15 (and DG14) as read from the card. Signer and verifier are separate implementations.
//!
//! Clone detection: a clone serves the genuine DG15 but signs with a key of its own and answers
//! 90 00; the verifier refuses it from the signature alone. If the verifier skipped the signature
//! check (accepted any 90 00 answer), `a_clone_answering_9000_is_detected` would fail.

use cccd_authenticity::active::{
    AaHash, ActiveAuthError, ActiveAuthentication, verify_active_authentication,
};
use cccd_authenticity::verify::NamedCurve;
use emrtd::aa::{self, AaError};
use emrtd::apdu::StatusWord;
use emrtd::cccd::id_number::CitizenId;
use emrtd::lds::dg15::{self, AaPublicKey};
use emrtd::pace::{self, PacePassword};
use emrtd::reader::{ReadError, Reader};
use emrtd::virtual_card::aa::{self as card_aa, VirtualAa};
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, RsaPublicKey};
use sha1::{Digest, Sha1};

const CITIZEN_ID: &str = "001099012345";
const CAN: &str = "012345";

/// A CCCD with PACE and this Active Authentication key; it serves `dg15`/`dg14` (the key's own
/// unless a test swaps them).
fn card(aa: VirtualAa, dg15: Vec<u8>, dg14: Option<Vec<u8>>) -> VirtualCard {
    let mut files = FileSystem::new().with_data_group(15, dg15);
    if let Some(dg14) = dg14 {
        files = files.with_data_group(14, dg14);
    }
    VirtualCard::new(files)
        .with_pace(Box::new(VirtualPace::cccd(CAN)))
        .with_active_authentication(aa)
}

fn card_with_own_files(aa: VirtualAa) -> VirtualCard {
    let dg15 = aa.dg15().to_vec();
    let dg14 = aa.dg14().map(<[u8]>::to_vec);
    card(aa, dg15, dg14)
}

/// PACE with the CAN, then the application, as the agent opens a CCCD.
fn open(card: VirtualCard) -> Reader<VirtualCard> {
    let mut reader = Reader::new(card);
    let password = PacePassword::from_citizen_id(&CitizenId::parse(CITIZEN_ID).unwrap());
    reader
        .establish_with(|t, stats| pace::establish(t, &password, None, stats))
        .unwrap();
    reader.select_application().unwrap();
    reader
}

/// Reads DG15 and DG14 (when present) from the card, runs AA with `challenge`, returns
/// (dg15, dg14, signature).
fn run(
    reader: &mut Reader<VirtualCard>,
    challenge: &[u8; 8],
) -> (Vec<u8>, Option<Vec<u8>>, Vec<u8>) {
    let dg15 = reader.read_file(0x0F).unwrap();
    let dg14 = reader.read_file(0x0E).ok();
    let signature = aa::internal_authenticate(reader, challenge).unwrap();
    (dg15, dg14, signature)
}

#[test]
fn ecdsa_p256_round_trip_for_each_hash() {
    for hash in [
        card_aa::AaHash::Sha1,
        card_aa::AaHash::Sha224,
        card_aa::AaHash::Sha256,
        card_aa::AaHash::Sha384,
        card_aa::AaHash::Sha512,
    ] {
        let mut reader = open(card_with_own_files(VirtualAa::ecdsa_p256(hash)));
        let challenge = aa::fresh_challenge().unwrap();
        let (dg15, dg14, signature) = run(&mut reader, &challenge);
        assert_eq!(signature.len(), 64, "plain r || s");
        let expected = match hash {
            card_aa::AaHash::Sha1 => AaHash::Sha1,
            card_aa::AaHash::Sha224 => AaHash::Sha224,
            card_aa::AaHash::Sha256 => AaHash::Sha256,
            card_aa::AaHash::Sha384 => AaHash::Sha384,
            _ => AaHash::Sha512,
        };
        assert_eq!(
            verify_active_authentication(&dg15, dg14.as_deref(), &challenge, &signature),
            Ok(ActiveAuthentication::Ecdsa {
                curve: NamedCurve::P256,
                hash: expected
            }),
            "{hash:?}"
        );
    }
}

#[test]
fn ecdsa_with_an_x962_algorithm_oid_in_dg14() {
    let oid = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    let aa_key = VirtualAa::ecdsa_p256_with_algorithm(card_aa::AaHash::Sha256, oid);
    let mut reader = open(card_with_own_files(aa_key));
    let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
    let (dg15, dg14, signature) = run(&mut reader, &challenge);
    assert!(verify_active_authentication(&dg15, dg14.as_deref(), &challenge, &signature).is_ok());
}

#[test]
fn rsa_round_trips_2048_and_1024() {
    for bits in [2048usize, 1024] {
        let mut reader = open(card_with_own_files(VirtualAa::rsa(bits)));
        let challenge = aa::fresh_challenge().unwrap();
        let (dg15, dg14, signature) = run(&mut reader, &challenge);
        assert_eq!(dg14, None);
        assert_eq!(signature.len(), bits / 8);
        assert_eq!(
            verify_active_authentication(&dg15, None, &challenge, &signature),
            Ok(ActiveAuthentication::Rsa {
                modulus_bits: bits,
                hash: AaHash::Sha1
            })
        );
    }
}

/// The card's encoding, checked apart from the verifier: the test raises the signature to e
/// itself and reads the representative by the standard's layout.
#[test]
fn card_rsa_signature_opens_to_the_9796_2_layout() {
    let aa_key = VirtualAa::rsa(1024);
    let dg15_bytes = aa_key.dg15().to_vec();
    let mut reader = open(card_with_own_files(aa_key));
    let challenge = [0xA5; 8];
    let (_, _, signature) = run(&mut reader, &challenge);

    let dg15 = dg15::parse(&dg15_bytes).unwrap();
    let AaPublicKey::Rsa { modulus, exponent } = dg15.key else {
        panic!("not RSA")
    };
    let key = RsaPublicKey::new(
        BoxedUint::from_be_slice_vartime(modulus),
        BoxedUint::from_be_slice_vartime(exponent),
    )
    .unwrap();
    let s = BoxedUint::from_be_slice(&signature, key.n_bits_precision()).unwrap();
    let j = rsa::hazmat::rsa_encrypt(&key, &s).unwrap().to_be_bytes();
    let f = &j[j.len() - 128..];
    // 6A (header 01, partial recovery, no padding) || M1 (106 bytes) || SHA-1 (20) || BC.
    assert_eq!(f[0], 0x6A);
    assert_eq!(f[127], 0xBC);
    let m1 = &f[1..107];
    let mut m = m1.to_vec();
    m.extend_from_slice(&challenge);
    assert_eq!(&f[107..127], Sha1::digest(&m).as_slice());
}

#[test]
fn a_clone_answering_9000_is_detected() {
    for genuine in [
        VirtualAa::ecdsa_p256(card_aa::AaHash::Sha256),
        VirtualAa::rsa(1024),
    ] {
        let clone = VirtualAa::clone_of(&genuine);
        // The clone serves the genuine card's files, byte for byte.
        assert_eq!(clone.dg15(), genuine.dg15());
        let mut reader = open(card_with_own_files(clone));
        let challenge = aa::fresh_challenge().unwrap();
        let (dg15, dg14, signature) = run(&mut reader, &challenge);
        assert_eq!(dg15, genuine.dg15());
        // 90 00 with a signature: nothing at the protocol level gives the clone away.
        assert!(!signature.is_empty());
        let result = verify_active_authentication(&dg15, dg14.as_deref(), &challenge, &signature);
        // The clone signs with its own key: an RSA signature from a different modulus may even
        // exceed the genuine one (about half the time), which is refused as out of range.
        assert!(
            matches!(
                result,
                Err(ActiveAuthError::BadSignature
                    | ActiveAuthError::SignatureOutOfRange
                    | ActiveAuthError::BadHeader
                    | ActiveAuthError::NotPartialRecovery(_)
                    | ActiveAuthError::BadTrailer
                    | ActiveAuthError::UnknownHashId(_)
                    | ActiveAuthError::DigestMismatch)
            ),
            "{result:?}"
        );
    }
}

#[test]
fn a_replayed_answer_to_an_older_challenge_is_refused() {
    for aa_key in [
        VirtualAa::ecdsa_p256(card_aa::AaHash::Sha256),
        VirtualAa::rsa(1024),
    ] {
        let rsa = aa_key.dg14().is_none();
        let mut reader = open(card_with_own_files(aa_key));
        let old = [1u8; 8];
        let (dg15, dg14, old_answer) = run(&mut reader, &old);
        assert!(verify_active_authentication(&dg15, dg14.as_deref(), &old, &old_answer).is_ok());
        let new = [2u8; 8];
        let expected = if rsa {
            ActiveAuthError::DigestMismatch
        } else {
            ActiveAuthError::BadSignature
        };
        assert_eq!(
            verify_active_authentication(&dg15, dg14.as_deref(), &new, &old_answer),
            Err(expected)
        );
    }
}

#[test]
fn truncated_or_garbage_signatures_are_refused() {
    let ec = VirtualAa::ecdsa_p256(card_aa::AaHash::Sha256);
    let (ec15, ec14) = (ec.dg15().to_vec(), ec.dg14().map(<[u8]>::to_vec));
    let mut reader = open(card_with_own_files(ec));
    let challenge = [9u8; 8];
    let (_, _, sig) = run(&mut reader, &challenge);
    let ec14 = ec14.as_deref();
    assert_eq!(
        verify_active_authentication(&ec15, ec14, &challenge, &sig[..63]),
        Err(ActiveAuthError::SignatureLength {
            expected: 64,
            actual: 63
        })
    );
    assert_eq!(
        verify_active_authentication(&ec15, ec14, &challenge, &[]),
        Err(ActiveAuthError::SignatureLength {
            expected: 64,
            actual: 0
        })
    );
    // r = 0 is not a signature; one flipped bit makes another one.
    let mut zero_r = sig.clone();
    zero_r[..32].fill(0);
    assert_eq!(
        verify_active_authentication(&ec15, ec14, &challenge, &zero_r),
        Err(ActiveAuthError::BadSignature)
    );
    let mut flipped = sig.clone();
    flipped[40] ^= 0x04;
    assert_eq!(
        verify_active_authentication(&ec15, ec14, &challenge, &flipped),
        Err(ActiveAuthError::BadSignature)
    );
    // Without DG14 the EC key's algorithm is unknown: nothing is assumed.
    assert_eq!(
        verify_active_authentication(&ec15, None, &challenge, &sig),
        Err(ActiveAuthError::MissingAlgorithm)
    );
    // The challenge must be 8 bytes.
    assert_eq!(
        verify_active_authentication(&ec15, ec14, &challenge[..7], &sig),
        Err(ActiveAuthError::ChallengeLength(7))
    );

    let rsa_key = VirtualAa::rsa(1024);
    let rsa15 = rsa_key.dg15().to_vec();
    let mut reader = open(card_with_own_files(rsa_key));
    let (_, _, sig) = run(&mut reader, &challenge);
    assert_eq!(
        verify_active_authentication(&rsa15, None, &challenge, &sig[1..]),
        Err(ActiveAuthError::SignatureLength {
            expected: 128,
            actual: 127
        })
    );
    assert_eq!(
        verify_active_authentication(&rsa15, None, &challenge, &[0u8; 128]),
        Err(ActiveAuthError::SignatureOutOfRange)
    );
    assert_eq!(
        verify_active_authentication(&rsa15, None, &challenge, &[0xFFu8; 128]),
        Err(ActiveAuthError::SignatureOutOfRange)
    );
    // Garbage below the modulus opens to garbage: refused by the layout or the hash.
    for seed in 1u8..=20 {
        let garbage: Vec<u8> = (0..128u32)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed) & 0x7F)
            .collect();
        assert!(verify_active_authentication(&rsa15, None, &challenge, &garbage).is_err());
    }
    // A bad DG15 is a DG15 error, not a verdict on the chip.
    assert!(matches!(
        verify_active_authentication(&rsa15[..rsa15.len() - 1], None, &challenge, &sig),
        Err(ActiveAuthError::Dg15(_))
    ));
}

#[test]
fn reader_side_refusals() {
    // No secure channel: the reader does not send INTERNAL AUTHENTICATE in plain.
    let mut reader = Reader::new(card_with_own_files(VirtualAa::rsa(1024)));
    assert_eq!(
        aa::internal_authenticate(&mut reader, &[0; 8]),
        Err(AaError::Read(ReadError::NoSecureChannel))
    );
    // A card without Active Authentication answers 6D00.
    let files = FileSystem::new().with_data_group(1, vec![0x61, 0x00]);
    let mut reader = open(VirtualCard::new(files).with_pace(Box::new(VirtualPace::cccd(CAN))));
    assert_eq!(
        aa::internal_authenticate(&mut reader, &[0; 8]),
        Err(AaError::Refused(StatusWord(0x6D00)))
    );
    // The channel survives a refusal: files still read.
    assert_eq!(reader.read_file(0x01).unwrap(), [0x61, 0x00]);
}

#[test]
fn an_rsa_key_ignores_dg14() {
    // A card serving an EC DG14 next to an RSA DG15: the RSA scheme does not look at DG14.
    let rsa_key = VirtualAa::rsa(1024);
    let dg15 = rsa_key.dg15().to_vec();
    let ec14 = card_aa::dg14_aa_only(card_aa::AaHash::Sha256.ecdsa_plain_oid());
    let mut reader = open(card(rsa_key, dg15.clone(), Some(ec14.clone())));
    let challenge = [3u8; 8];
    let signature = aa::internal_authenticate(&mut reader, &challenge).unwrap();
    assert!(verify_active_authentication(&dg15, Some(&ec14), &challenge, &signature).is_ok());
}
