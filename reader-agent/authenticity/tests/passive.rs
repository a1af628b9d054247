//! Passive authentication against a PKI built by code that mirrors Vietnam's (a CSCA on
//! brainpoolP512r1 with explicit parameters signing with SHA-512), with EF.SOD built and signed
//! by emrtd's test-LDS builder.

mod pki;

use std::collections::BTreeMap;

use cccd_authenticity::chain::ChainError;
use cccd_authenticity::crl::Revocation;
use cccd_authenticity::passive::{
    DataGroupCheck, Policy, check_data_group, passive_authentication,
};
use cccd_authenticity::signed::SignedDataError;
use cccd_authenticity::trust::TrustStore;
use cccd_authenticity::verify::{NamedCurve, Verified, VerifyError};
use cms::cert::IssuerAndSerialNumber;
use cms::signed_data::SignerIdentifier;
use emrtd::lds::build;
use pki::{Issued, Key, days, now};

const CSCA_NAME: &str = "CN=CSCA Test Vietnam,O=Test Government,C=VN";
const DS_NAME: &str = "CN=Document Signer Test 1,O=Test Government,C=VN";

fn data_groups() -> BTreeMap<u8, Vec<u8>> {
    let dg1 = build::dg1(&build::td1_mrz(&build::Td1Fields::cccd_example()));
    let dg13 = build::dg13(&build::Dg13Person::example());
    BTreeMap::from([(1, dg1), (13, dg13)])
}

/// EF.SOD over `dgs`, carrying and signed by `ds` (named by issuer and serial number).
fn sod(ds: &Issued, dgs: &BTreeMap<u8, Vec<u8>>) -> Vec<u8> {
    sod_naming(ds, dgs, ds.key.algorithm.clone())
}

/// Like [`sod`], with the SignerInfo's signature algorithm given.
fn sod_naming(
    ds: &Issued,
    dgs: &BTreeMap<u8, Vec<u8>>,
    signature_algorithm: spki::AlgorithmIdentifierOwned,
) -> Vec<u8> {
    let tbs = ds.cert.tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let sign = |attrs: &[u8]| ds.key.sign(attrs);
    let list: Vec<(u8, &[u8])> = dgs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    build::signed_sod(
        &list,
        &[&ds.der],
        &build::SodSigner {
            sid,
            signature_algorithm,
            sign: &sign,
        },
    )
    .unwrap()
}

fn store_with(csca: &Issued, crl: Option<Vec<u8>>) -> TrustStore {
    let mut store = TrustStore::new();
    assert!(store.add_der(&csca.der, "test CSCA"));
    if let Some(crl) = crl {
        store.add_crl_der(&crl, "test CRL").unwrap();
    }
    store
}

fn ds(csca: &Issued, serial: u8, key: Key) -> Issued {
    pki::document_signer(
        csca,
        DS_NAME,
        serial,
        key,
        now() - days(30),
        now() + days(365),
    )
}

#[test]
fn genuine_with_bp512_explicit_csca_and_bp256_document_signer() {
    let csca = pki::csca(CSCA_NAME, 0x11);
    let ds = ds(&csca, 2, Key::bp256(0x22));
    let store = store_with(&csca, Some(pki::crl(&csca, &[9])));
    let dgs = data_groups();
    let report =
        passive_authentication(&store, &sod(&ds, &dgs), &dgs, now(), Policy::default()).unwrap();
    assert!(report.is_genuine(), "{:?}", report.unproven());
    assert!(report.unproven().is_empty());
    assert_eq!(report.data_groups[&1], DataGroupCheck::Matched);
    assert_eq!(report.data_groups[&13], DataGroupCheck::Matched);
    assert_eq!(
        report.signature,
        Ok(Verified::Ecdsa(NamedCurve::BrainpoolP256r1))
    );
    // The chain link was verified on brainpoolP512r1 given by explicit parameters.
    let chain = report.chain.as_ref().unwrap();
    assert_eq!(chain.scheme, Verified::Ecdsa(NamedCurve::BrainpoolP512r1));
    assert!(chain.csca.contains("CN=CSCA Test Vietnam"));
    let signer = report.document_signer.as_ref().unwrap();
    assert!(signer.issuer.contains("CN=CSCA Test Vietnam"));
    assert_eq!(signer.country.as_deref(), Some("VN"));
    assert!(matches!(report.revocation, Revocation::NotRevoked { .. }));
}

#[test]
fn rsa_and_p384_document_signers() {
    let csca = pki::csca(CSCA_NAME, 0x12);
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    for (key, scheme) in [
        (Key::rsa(), Verified::RsaPkcs1v15),
        (Key::p384(0x33), Verified::Ecdsa(NamedCurve::P384)),
    ] {
        let ds = ds(&csca, 3, key);
        let report =
            passive_authentication(&store, &sod(&ds, &dgs), &dgs, now(), Policy::default())
                .unwrap();
        assert!(report.is_genuine(), "{:?}", report.unproven());
        assert_eq!(report.signature, Ok(scheme));
    }
}

#[test]
fn data_group_changed_after_signing_is_detected() {
    // Fails if data groups were not hashed and compared.
    let csca = pki::csca(CSCA_NAME, 0x13);
    let ds = ds(&csca, 2, Key::bp256(0x23));
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let signed = sod(&ds, &dgs);
    let mut changed = dgs.clone();
    let dg13 = changed.get_mut(&13).unwrap();
    let last = dg13.len() - 1;
    dg13[last] ^= 0x01;
    changed.insert(2, vec![0x75, 0x00]); // a data group the SOD does not list
    let report =
        passive_authentication(&store, &signed, &changed, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert_eq!(report.data_groups[&1], DataGroupCheck::Matched);
    assert_eq!(report.data_groups[&13], DataGroupCheck::Mismatched);
    assert_eq!(report.data_groups[&2], DataGroupCheck::NotInSod);
    // The rest still holds and is reported as such.
    assert!(report.signature.is_ok());
    assert!(report.chain.is_ok());
    let unproven = report.unproven();
    assert_eq!(unproven.len(), 2, "{unproven:?}");
    assert!(unproven[0].contains("DG2") && unproven[1].contains("DG13"));
}

#[test]
fn a_data_group_read_later_is_checked_against_the_same_sod() {
    // DG2 (the face) is read after passive authentication, only when displayed: the same
    // check applies to it alone. Fails if the later check did not hash and compare.
    let csca = pki::csca(CSCA_NAME, 0x13);
    let ds = ds(&csca, 2, Key::bp256(0x23));
    let image = build::synthetic_jpeg(2000, 5);
    let face = build::dg2(&build::FaceRecord::new(
        emrtd::lds::dg2::FaceRecordVersion::V2005,
        &image,
    ));
    let mut dgs = data_groups();
    dgs.insert(2, face.clone());
    let signed = sod(&ds, &dgs);
    let parsed = emrtd::lds::sod::parse(&signed).unwrap();
    let policy = Policy::default();
    assert_eq!(
        check_data_group(&parsed, 2, &face, policy),
        DataGroupCheck::Matched
    );
    let mut altered = face.clone();
    altered[60] ^= 0x01;
    assert_eq!(
        check_data_group(&parsed, 2, &altered, policy),
        DataGroupCheck::Mismatched
    );
    assert_eq!(
        check_data_group(&parsed, 3, &face, policy),
        DataGroupCheck::NotInSod
    );
}

#[test]
fn sod_signed_under_an_untrusted_csca_is_not_genuine() {
    // A look-alike CSCA with the same name but another key: fails if the chain were matched
    // by name only.
    let trusted = pki::csca(CSCA_NAME, 0x14);
    let rogue = pki::csca(CSCA_NAME, 0x15);
    let ds = ds(&rogue, 2, Key::bp256(0x24));
    let store = store_with(&trusted, Some(pki::crl(&trusted, &[])));
    let dgs = data_groups();
    let report =
        passive_authentication(&store, &sod(&ds, &dgs), &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert!(report.signature.is_ok(), "the SOD itself is intact");
    assert!(matches!(
        report.chain,
        Err(ChainError::NoIssuer | ChainError::Signature(_))
    ));
    // The issuer is still named, so an operator sees which CSCA would be needed.
    assert!(
        report
            .document_signer
            .unwrap()
            .issuer
            .contains("CSCA Test Vietnam")
    );
    // An empty trust store: no issuer at all.
    let report = passive_authentication(
        &TrustStore::new(),
        &sod(&ds, &dgs),
        &dgs,
        now(),
        Policy::default(),
    )
    .unwrap();
    assert_eq!(report.chain, Err(ChainError::NoIssuer));
}

#[test]
fn expired_document_signer_is_not_genuine() {
    let csca = pki::csca(CSCA_NAME, 0x16);
    let ds = pki::document_signer(
        &csca,
        DS_NAME,
        2,
        Key::bp256(0x25),
        now() - days(400),
        now() - days(1),
    );
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let signed = sod(&ds, &dgs);
    let report = passive_authentication(&store, &signed, &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    let validity = report.validity.unwrap();
    assert!(!validity.document_signer);
    assert_eq!(validity.csca, Some(true));
    assert!(report.signature.is_ok() && report.chain.is_ok());
    // The same SOD checked at a time inside the validity period is genuine: the time matters.
    let earlier = now() - days(100);
    let report = passive_authentication(&store, &signed, &dgs, earlier, Policy::default()).unwrap();
    assert!(report.validity.unwrap().document_signer);
}

#[test]
fn revoked_document_signer_is_refused_with_a_reason() {
    let csca = pki::csca(CSCA_NAME, 0x17);
    let ds = ds(&csca, 7, Key::bp256(0x26));
    let store = store_with(&csca, Some(pki::crl(&csca, &[5, 7])));
    let dgs = data_groups();
    let report =
        passive_authentication(&store, &sod(&ds, &dgs), &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert!(matches!(report.revocation, Revocation::Revoked { .. }));
    assert!(
        report
            .unproven()
            .iter()
            .any(|r| r.contains("Document Signer is revoked")),
        "{:?}",
        report.unproven()
    );
}

#[test]
fn a_current_crl_loaded_first_does_not_hide_a_later_one_that_revokes() {
    // Both CRLs are current; the first loaded does not list the signer, the second does. Fails
    // if the first current CRL decided alone.
    let csca = pki::csca(CSCA_NAME, 0x18);
    let ds = ds(&csca, 7, Key::bp256(0x27));
    let mut store = store_with(&csca, Some(pki::crl(&csca, &[])));
    store
        .add_crl_der(&pki::crl(&csca, &[7]), "newer CRL")
        .unwrap();
    let dgs = data_groups();
    let report =
        passive_authentication(&store, &sod(&ds, &dgs), &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert!(
        matches!(&report.revocation, Revocation::Revoked { crl, .. } if crl == "newer CRL"),
        "{:?}",
        report.revocation
    );
}

#[test]
fn without_a_crl_revocation_is_unknown_and_not_genuine_by_default() {
    let csca = pki::csca(CSCA_NAME, 0x18);
    let ds = ds(&csca, 2, Key::bp256(0x27));
    let store = store_with(&csca, None);
    let dgs = data_groups();
    let signed = sod(&ds, &dgs);
    let report = passive_authentication(&store, &signed, &dgs, now(), Policy::default()).unwrap();
    assert_eq!(report.revocation, Revocation::NoCrl);
    assert!(!report.is_genuine());
    // Waived by policy: genuine, and the report still says revocation was not checked.
    let waived = Policy {
        require_crl: false,
        ..Policy::default()
    };
    let report = passive_authentication(&store, &signed, &dgs, now(), waived).unwrap();
    assert!(report.is_genuine());
    assert_eq!(
        report.unproven(),
        ["revocation unknown: no CRL of the CSCA"]
    );
    // A CRL past its nextUpdate is stale, not proof.
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let later = now() + days(60);
    let report = passive_authentication(&store, &signed, &dgs, later, Policy::default()).unwrap();
    assert!(matches!(report.revocation, Revocation::StaleCrl { .. }));
}

#[test]
fn flipped_bit_in_the_sod_signature_fails() {
    let csca = pki::csca(CSCA_NAME, 0x19);
    let ds = ds(&csca, 2, Key::bp256(0x28));
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let mut signed = sod(&ds, &dgs);
    // The SignerInfo's signature is the SOD's last element (no unsigned attributes): its last
    // byte is the last byte of the file.
    let last = signed.len() - 1;
    signed[last] ^= 0x01;
    let report = passive_authentication(&store, &signed, &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert_eq!(
        report.signature,
        Err(SignedDataError::Signature(VerifyError::BadSignature))
    );
    // The data groups still match the (unproven) SOD; only the signature link fails.
    assert_eq!(report.data_groups[&1], DataGroupCheck::Matched);
}

#[test]
fn signature_by_another_key_than_the_certificate_fails() {
    // The SOD carries the real DS certificate but is signed with another key.
    let csca = pki::csca(CSCA_NAME, 0x1A);
    let ds = ds(&csca, 2, Key::bp256(0x29));
    let impostor = Issued {
        der: ds.der.clone(),
        cert: ds.cert.clone(),
        key: Key::bp256(0x2A),
    };
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let report = passive_authentication(
        &store,
        &sod(&impostor, &dgs),
        &dgs,
        now(),
        Policy::default(),
    )
    .unwrap();
    assert_eq!(
        report.signature,
        Err(SignedDataError::Signature(VerifyError::BadSignature))
    );
    assert!(!report.is_genuine());
}

#[test]
fn unsigned_dummy_sod_and_garbage() {
    // emrtd's dummy SOD (zero signature, no certificate): nothing beyond the hashes holds.
    let csca = pki::csca(CSCA_NAME, 0x1B);
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let list: Vec<(u8, &[u8])> = dgs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let dummy = build::sod(&list, &[]).unwrap();
    let report = passive_authentication(&store, &dummy, &dgs, now(), Policy::default()).unwrap();
    assert!(!report.is_genuine());
    assert_eq!(
        report.signature,
        Err(SignedDataError::SignerCertificateNotFound)
    );
    assert!(report.document_signer.is_none() && report.validity.is_none());
    // Nothing read at all is not genuine either.
    let ds = ds(&csca, 2, Key::bp256(0x2B));
    let report = passive_authentication(
        &store,
        &sod(&ds, &dgs),
        &BTreeMap::new(),
        now(),
        Policy::default(),
    )
    .unwrap();
    assert!(!report.is_genuine());
    // Bytes that are not EF.SOD are an error, not a report.
    assert!(passive_authentication(&store, &[0x77, 0x00], &dgs, now(), Policy::default()).is_err());
}

#[test]
fn crl_not_signed_by_a_trusted_csca_is_not_honoured() {
    let csca = pki::csca(CSCA_NAME, 0x1C);
    let rogue = pki::csca(CSCA_NAME, 0x1D);
    let mut store = store_with(&csca, None);
    // A rogue CRL "clearing" every DS (empty revocation list) is skipped with a reason.
    assert!(
        store
            .add_crl_der(&pki::crl(&rogue, &[]), "rogue.crl")
            .is_err()
    );
    assert!(store.crls().is_empty());
    assert!(
        store.skipped()[0]
            .reason
            .contains("CRL signature not verified")
    );
    // One flipped bit in a genuine CRL's signature: also skipped.
    let mut crl = pki::crl(&csca, &[2]);
    let last = crl.len() - 1;
    crl[last] ^= 0x01;
    assert!(store.add_crl_der(&crl, "flipped.crl").is_err());
    // PEM CRLs load.
    let pem = der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, &pki::crl(&csca, &[2]))
        .unwrap();
    assert_eq!(store.add_crl_bytes(pem.as_bytes(), "good.pem"), 1);
    assert_eq!(store.crls().len(), 1);
    assert_eq!(store.crls()[0].revoked_count(), 1);
}

#[test]
fn a_data_group_replaced_together_with_its_hash_fails_the_message_digest() {
    // The forger changes DG13 and writes its new hash into the LDSSecurityObject: every DG
    // then matches, and only the signed message digest (hash of the eContent as received)
    // catches it. Fails if the message-digest attribute were not checked.
    use sha2::Digest;
    let csca = pki::csca(CSCA_NAME, 0x1E);
    let ds = ds(&csca, 2, Key::bp256(0x2C));
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let mut signed = sod(&ds, &dgs);
    let mut forged = dgs.clone();
    let dg13 = forged.get_mut(&13).unwrap();
    let last = dg13.len() - 1;
    dg13[last] ^= 0x01;
    let old = sha2::Sha256::digest(&dgs[&13]);
    let new = sha2::Sha256::digest(&forged[&13]);
    let at = signed
        .windows(32)
        .position(|w| w == old.as_slice())
        .unwrap();
    signed[at..at + 32].copy_from_slice(&new);
    let report =
        passive_authentication(&store, &signed, &forged, now(), Policy::default()).unwrap();
    assert_eq!(report.data_groups[&13], DataGroupCheck::Matched);
    assert_eq!(
        report.signature,
        Err(SignedDataError::MessageDigestMismatch)
    );
    assert!(!report.is_genuine());
}

#[test]
fn signed_attributes_naming_another_content_type_fail() {
    // The same SignerInfo checked as if it signed a master list: the content-type attribute
    // (the LDSSecurityObject's type) does not name that content. Fails if content type were
    // not compared.
    let csca = pki::csca(CSCA_NAME, 0x1F);
    let ds = ds(&csca, 2, Key::bp256(0x2D));
    let dgs = data_groups();
    let bytes = sod(&ds, &dgs);
    let parsed = emrtd::lds::sod::parse(&bytes).unwrap();
    let signer = parsed.signer().unwrap();
    let ok = cccd_authenticity::signed::verify_signer_info(
        signer,
        emrtd::lds::sod::ID_LDS_SECURITY_OBJECT,
        parsed.encapsulated_content,
        &ds.der,
        false,
    );
    assert!(ok.is_ok());
    let wrong = cccd_authenticity::signed::verify_signer_info(
        signer,
        cccd_authenticity::masterlist::ID_CSCA_MASTER_LIST,
        parsed.encapsulated_content,
        &ds.der,
        false,
    );
    assert!(matches!(
        wrong,
        Err(SignedDataError::ContentTypeMismatch { .. })
    ));
}

#[test]
fn full_read_through_the_virtual_card_then_passive_authentication() {
    // The virtual CCCD serves a signed EF.SOD; the terminal's reader reads it and the data
    // groups under BAC secure messaging; passive authentication runs on the bytes as read.
    use emrtd::bac::BacKey;
    use emrtd::reader::Reader;
    use emrtd::virtual_card::{FileSystem, VirtualCard};
    let csca = pki::csca(CSCA_NAME, 0x20);
    let ds = ds(&csca, 2, Key::bp256(0x2E));
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    let files = FileSystem::new()
        .with_file(0x011E, build::com(&[1, 13]))
        .with_file(0x011D, sod(&ds, &dgs))
        .with_data_group(1, dgs[&1].clone())
        .with_data_group(13, dgs[&13].clone());
    // ICAO 9303-11 Appendix D's MRZ information opens BAC on the virtual card.
    let card = VirtualCard::new(files).with_bac("L898902C<369080619406236");
    let mut reader = Reader::new(card);
    reader.select_application().unwrap();
    reader
        .establish_bac(&BacKey::new("L898902C", "690806", "940623").unwrap())
        .unwrap();
    let sod_read = reader.read_file(0x1D).unwrap();
    let read: BTreeMap<u8, Vec<u8>> = [1u8, 13]
        .into_iter()
        .map(|n| (n, reader.read_file(n).unwrap()))
        .collect();
    let report =
        passive_authentication(&store, &sod_read, &read, now(), Policy::default()).unwrap();
    assert!(report.is_genuine(), "{:?}", report.unproven());
}

#[test]
fn sha1_is_refused_unless_the_policy_allows_it_and_then_reported() {
    // A CSCA signing with sha1WithRSAEncryption. Fails if SHA-1 were silently accepted.
    let csca = pki::csca_with(CSCA_NAME, Key::rsa_sha1());
    let ds = ds(&csca, 2, Key::bp256(0x2F));
    let dgs = data_groups();
    let signed = sod(&ds, &dgs);
    let mut store = TrustStore::new();
    assert!(store.add_der(&csca.der, "sha1 CSCA"));
    let report = passive_authentication(&store, &signed, &dgs, now(), Policy::default()).unwrap();
    assert_eq!(report.chain, Err(ChainError::Sha1Refused));
    assert!(!report.sha1_accepted);
    assert!(!report.is_genuine());
    let allow = Policy {
        allow_sha1: true,
        require_crl: false,
    };
    let report = passive_authentication(&store, &signed, &dgs, now(), allow).unwrap();
    assert_eq!(report.chain.as_ref().unwrap().scheme, Verified::RsaPkcs1v15);
    assert!(report.sha1_accepted);
    assert!(report.is_genuine(), "{:?}", report.unproven());
}

#[test]
fn signer_info_naming_only_the_key_algorithm_verifies_with_the_digest_algorithm() {
    // Many real SODs name `id-ecPublicKey` or `rsaEncryption` as the SignerInfo's signature
    // algorithm; the hash is then the SignerInfo's digest algorithm (SHA-256 here).
    let csca = pki::csca(CSCA_NAME, 0x21);
    let store = store_with(&csca, Some(pki::crl(&csca, &[])));
    let dgs = data_groups();
    for (key, bare, scheme) in [
        (
            Key::bp256(0x30),
            "1.2.840.10045.2.1",
            Verified::Ecdsa(NamedCurve::BrainpoolP256r1),
        ),
        (Key::rsa(), "1.2.840.113549.1.1.1", Verified::RsaPkcs1v15),
    ] {
        let ds = ds(&csca, 2, key);
        let algorithm = spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap(bare),
            parameters: None,
        };
        let signed = sod_naming(&ds, &dgs, algorithm);
        let report =
            passive_authentication(&store, &signed, &dgs, now(), Policy::default()).unwrap();
        assert_eq!(report.signature, Ok(scheme), "{bare}");
        assert!(report.is_genuine());
    }
}

#[test]
fn malformed_crls_are_skipped_with_reasons() {
    let csca = pki::csca(CSCA_NAME, 0x22);
    let mut store = store_with(&csca, None);
    assert!(matches!(
        store.add_crl_der(&[0x30, 0x03, 0x02, 0x01, 0x00], "garbage.crl"),
        Err(cccd_authenticity::crl::CrlError::Der(_))
    ));
    let mut truncated = pki::crl(&csca, &[2]);
    truncated.truncate(truncated.len() / 2);
    assert!(store.add_crl_der(&truncated, "truncated.crl").is_err());
    // A certificate where a CRL belongs, in PEM: wrong label, skipped.
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &csca.der).unwrap();
    assert_eq!(store.add_crl_bytes(pem.as_bytes(), "cert.pem"), 0);
    assert_eq!(
        store.add_crl_bytes(b"-----BEGIN X509 CRL-----\n!!\n", "bad.pem"),
        0
    );
    let reasons: Vec<&str> = store.skipped().iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].starts_with("undecodable CRL"));
    assert!(reasons[2].contains("not X509 CRL"));
    assert!(reasons[3].contains("bad PEM"));
    assert!(store.crls().is_empty());
}
