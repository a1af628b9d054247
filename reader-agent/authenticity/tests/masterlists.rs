//! Real trust data: the German and Dutch CSCA master lists (copies in testdata/masterlists).

use std::path::PathBuf;

use cccd_authenticity::trust::TrustStore;
use der::Decode;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/masterlists")
        .join(name)
}

const VN_CSCA: &str = "CN=CSCA ePassport Vietnam";

fn load(name: &str) -> TrustStore {
    let mut store = TrustStore::new();
    store.add_file(&data(name)).expect("master list loads");
    for s in store.skipped() {
        eprintln!("skipped {}: {}", s.source, s.reason);
    }
    store
}

#[test]
fn german_master_list_loads_every_certificate_and_vietnam() {
    let store = load("DE_ML_2026-05-28-08-28-45.ml");
    assert_eq!(store.certificates().len() + store.skipped().len(), 588);
    assert_eq!(
        store.certificates().len(),
        588,
        "skipped: {:?}",
        store.skipped()
    );
    assert!(
        store
            .certificates()
            .iter()
            .any(|c| c.subject().contains(VN_CSCA))
    );
}

#[test]
fn dutch_master_list_loads_every_certificate_and_vietnam() {
    let store = load("NL_ML_2026-07-22.ml");
    assert_eq!(store.certificates().len() + store.skipped().len(), 411);
    assert_eq!(
        store.certificates().len(),
        411,
        "skipped: {:?}",
        store.skipped()
    );
    assert!(
        store
            .certificates()
            .iter()
            .any(|c| c.subject().contains(VN_CSCA))
    );
}

#[test]
fn vietnamese_csca_in_the_lists_is_the_extracted_certificate() {
    let vn = std::fs::read(data("VN_CSCA_ePassport_2022.der")).unwrap();
    let mut single = TrustStore::new();
    assert_eq!(single.add_certificate_bytes(&vn, "VN"), 1);
    assert!(single.certificates()[0].subject().contains(VN_CSCA));
    for list in ["DE_ML_2026-05-28-08-28-45.ml", "NL_ML_2026-07-22.ml"] {
        let store = load(list);
        assert!(store.certificates().iter().any(|c| c.raw == vn), "{list}");
    }
}

#[test]
fn pem_file_loads_and_garbage_is_skipped_not_fatal() {
    let vn = std::fs::read(data("VN_CSCA_ePassport_2022.der")).unwrap();
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &vn).unwrap();
    let bogus = der::pem::encode_string(
        "CERTIFICATE",
        der::pem::LineEnding::LF,
        &[0x30, 0x03, 2, 1, 0],
    )
    .unwrap();
    let mut store = TrustStore::new();
    let added = store.add_certificate_bytes(format!("{pem}{bogus}").as_bytes(), "two.pem");
    assert_eq!(added, 1);
    assert_eq!(store.certificates()[0].raw, vn);
    assert_eq!(store.skipped().len(), 1);
    assert!(store.skipped()[0].reason.contains("undecodable"));
}

#[test]
fn a_certificate_is_not_a_master_list() {
    let vn = std::fs::read(data("VN_CSCA_ePassport_2022.der")).unwrap();
    assert!(cccd_authenticity::masterlist::parse(&vn).is_err());
    let mut truncated = std::fs::read(data("NL_ML_2026-07-22.ml")).unwrap();
    truncated.truncate(5000);
    assert!(cccd_authenticity::masterlist::parse(&truncated).is_err());
}

mod list_signature {
    use super::*;
    use cccd_authenticity::masterlist::{self, Anchor, ListSignatureError};
    use cccd_authenticity::signed::SignedDataError;
    use cccd_authenticity::verify::VerifyError;

    fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(data(name)).unwrap()
    }

    /// Offset of `part` (a slice of `whole`) inside `whole`.
    fn offset(whole: &[u8], part: &[u8]) -> usize {
        part.as_ptr() as usize - whole.as_ptr() as usize
    }

    #[test]
    fn both_real_lists_verify_against_their_signers_csca() {
        for (name, country) in [
            ("DE_ML_2026-05-28-08-28-45.ml", "DE"),
            ("NL_ML_2026-07-22.ml", "NL"),
        ] {
            let raw = bytes(name);
            let list = masterlist::parse(&raw).unwrap();
            let signature = masterlist::verify_signature(&list, &[]).unwrap();
            eprintln!("{name}: {signature:?}");
            assert_eq!(signature.country.as_deref(), Some(country), "{name}");
            assert_eq!(signature.anchor, Anchor::ListItself, "{name}");
            // Loaded by a store, the report says the same.
            let store = load(name);
            let report = &store.lists()[0];
            assert_eq!(report.signature.as_ref().unwrap(), &signature);
        }
    }

    #[test]
    fn a_list_signed_under_a_csca_already_trusted_is_anchored_in_the_store() {
        // The Dutch list carries Germany's CSCAs, so after it the German list's signer chains
        // to a CSCA the store held before that list.
        let mut store = TrustStore::new();
        store.add_file(&data("NL_ML_2026-07-22.ml")).unwrap();
        store
            .add_file(&data("DE_ML_2026-05-28-08-28-45.ml"))
            .unwrap();
        let de = &store.lists()[1];
        assert_eq!(de.signature.as_ref().unwrap().anchor, Anchor::TrustStore);
        assert_eq!(de.certificates, 588);
    }

    #[test]
    fn one_flipped_bit_in_the_content_fails() {
        let raw = bytes("NL_ML_2026-07-22.ml");
        let list = masterlist::parse(&raw).unwrap();
        // A bit inside the first listed certificate's signature: the list still parses.
        let first = list.certificates[0];
        let at = offset(&raw, first) + first.len() - 1;
        let mut bad = raw.clone();
        bad[at] ^= 0x01;
        let list = masterlist::parse(&bad).unwrap();
        assert_eq!(
            masterlist::verify_signature(&list, &[]),
            Err(ListSignatureError::Signature(
                SignedDataError::MessageDigestMismatch
            ))
        );
    }

    #[test]
    fn one_flipped_bit_in_the_signature_fails() {
        for name in ["DE_ML_2026-05-28-08-28-45.ml", "NL_ML_2026-07-22.ml"] {
            let raw = bytes(name);
            let list = masterlist::parse(&raw).unwrap();
            let signers = emrtd::lds::sod::parse_signer_infos(list.signer_infos).unwrap();
            let signature = signers[0].signature;
            let at = offset(&raw, signature) + signature.len() / 2;
            let mut bad = raw.clone();
            bad[at] ^= 0x01;
            let list = masterlist::parse(&bad).unwrap();
            assert!(
                matches!(
                    masterlist::verify_signature(&list, &[]),
                    Err(ListSignatureError::Signature(SignedDataError::Signature(
                        VerifyError::BadSignature | VerifyError::Malformed
                    )))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn a_list_without_its_signers_csca_does_not_verify() {
        // The signer certificate alone, with no CSCA of its country anywhere: the chain fails.
        let raw = bytes("NL_ML_2026-07-22.ml");
        let mut list = masterlist::parse(&raw).unwrap();
        list.certificates.clear();
        let signer_only: Vec<&[u8]> = list
            .signer_certificates
            .iter()
            .copied()
            .filter(|c| {
                let c = x509_cert::Certificate::from_der(c).unwrap();
                c.tbs_certificate().subject() != c.tbs_certificate().issuer()
            })
            .collect();
        list.signer_certificates = signer_only;
        assert!(matches!(
            masterlist::verify_signature(&list, &[]),
            Err(ListSignatureError::Chain(_))
        ));
    }
}

#[test]
fn every_key_in_both_lists_is_usable() {
    // Since brainpoolP512r1 is supported, no CSCA key of either list is left unusable; before,
    // the brainpoolP512r1 keys (DE 17: 15 self-issued and 2 link certificates; NL 12) were
    // "explicit parameters match no supported curve".
    for (list, total) in [
        ("DE_ML_2026-05-28-08-28-45.ml", 588),
        ("NL_ML_2026-07-22.ml", 411),
    ] {
        let store = load(list);
        let mut unusable = Vec::new();
        let mut bp512 = 0;
        for c in store.certificates() {
            let spki =
                der::Encode::to_der(c.cert.tbs_certificate().subject_public_key_info()).unwrap();
            let key = cccd_authenticity::verify::describe_key(&spki);
            if key.starts_with("RSA ")
                || key.starts_with("ECDSA P-")
                || key.starts_with("ECDSA brainpool")
            {
                bp512 += usize::from(key.contains("brainpoolP512r1"));
            } else {
                unusable.push(format!("{}: {key}", c.source));
            }
        }
        assert!(unusable.is_empty(), "{list}: {unusable:?}");
        assert_eq!(store.certificates().len(), total);
        assert!(store.skipped().is_empty());
        assert_eq!(bp512, if total == 588 { 17 } else { 12 }, "{list}");
    }
}

#[test]
fn a_tampered_list_adds_no_certificate() {
    // One bit of the content changed: the list's signature fails, so none of its certificates
    // is trusted; each is skipped with the reason. Fails if lists were loaded unverified.
    let raw = std::fs::read(data("NL_ML_2026-07-22.ml")).unwrap();
    let list = cccd_authenticity::masterlist::parse(&raw).unwrap();
    let first = list.certificates[0];
    let at = first.as_ptr() as usize - raw.as_ptr() as usize + first.len() - 1;
    let mut bad = raw.clone();
    bad[at] ^= 0x01;
    let mut store = TrustStore::new();
    assert_eq!(store.add_master_list(&bad, "tampered.ml").unwrap(), 0);
    assert!(store.certificates().is_empty());
    assert_eq!(store.skipped().len(), 411);
    assert!(
        store.skipped()[0]
            .reason
            .starts_with("master list signature not verified: ")
    );
    assert!(store.lists()[0].signature.is_err());
    assert_eq!(store.lists()[0].added, 0);
}
