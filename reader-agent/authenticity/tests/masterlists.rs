//! Real trust data: the German and Dutch CSCA master lists (copies in testdata/masterlists).

use std::path::PathBuf;

use cccd_authenticity::trust::TrustStore;

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
