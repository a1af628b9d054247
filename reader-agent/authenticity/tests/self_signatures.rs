//! Self-signatures of real CSCA certificates, verified over their TBS bytes as received.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cccd_authenticity::trust::TrustStore;
use cccd_authenticity::verify::{self, VerifyError};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/masterlists")
        .join(name)
}

/// Tallies, per outcome, the self-signatures of a list's self-issued certificates.
fn tally(list: &str) -> BTreeMap<String, usize> {
    let mut store = TrustStore::new();
    store.add_file(&data(list)).unwrap();
    let mut counts = BTreeMap::new();
    for c in store.certificates() {
        let tbs = c.cert.tbs_certificate();
        let ski = tbs
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, k)| k.0.as_bytes().to_vec());
        let aki = tbs
            .get_extension::<AuthorityKeyIdentifier>()
            .ok()
            .flatten()
            .and_then(|(_, k)| k.key_identifier.map(|k| k.as_bytes().to_vec()));
        let other_key = matches!((&ski, &aki), (Some(s), Some(a)) if s != a);
        if tbs.subject() != tbs.issuer() {
            *counts
                .entry("not self-issued (link certificate)".to_string())
                .or_default() += 1;
            continue;
        }
        let key = match verify::verify_certificate(&c.raw, &c.raw) {
            Ok(scheme) => format!("verified {scheme:?}"),
            Err(VerifyError::UnsupportedKeyAlgorithm(oid)) => format!("unsupported key {oid}"),
            Err(VerifyError::UnknownExplicitCurve { field_bits }) => {
                format!("explicit curve unsupported ({field_bits} bits)")
            }
            // Same-name link certificates (new key signed by the old one) are not self-signed.
            Err(VerifyError::BadSignature) if other_key => {
                "same-name link certificate (key identifiers differ)".to_string()
            }
            Err(e) => format!("{e}"),
        };
        *counts.entry(key).or_default() += 1;
    }
    eprintln!("{list}: {counts:#?}");
    counts
}

#[test]
fn german_list_self_signatures() {
    let counts = tally("DE_ML_2026-05-28-08-28-45.ml");
    assert!(
        !counts.contains_key("signature does not verify"),
        "{counts:?}"
    );
    assert_eq!(counts["verified Ecdsa(P256)"], 14);
    assert_eq!(counts["verified Ecdsa(BrainpoolP256r1)"], 14);
    assert_eq!(counts["verified Ecdsa(BrainpoolP384r1)"], 33);
    assert_eq!(counts["verified Ecdsa(P384)"], 18);
    assert_eq!(counts["verified Ecdsa(P521)"], 10);
    assert_eq!(counts["verified RsaPkcs1v15"], 195);
    assert_eq!(counts["verified RsaPss"], 80);
    // brainpoolP512r1 keys (10 self-signed; 5 more are same-name link certificates).
    assert_eq!(counts["verified Ecdsa(BrainpoolP512r1)"], 10);
    assert!(!counts.keys().any(|k| k.starts_with("explicit curve")));
    assert_eq!(counts.values().sum::<usize>(), 588);
}

#[test]
fn dutch_list_self_signatures() {
    let counts = tally("NL_ML_2026-07-22.ml");
    assert!(
        !counts.contains_key("signature does not verify"),
        "{counts:?}"
    );
    assert_eq!(counts["verified Ecdsa(P256)"], 14);
    assert_eq!(counts["verified Ecdsa(BrainpoolP256r1)"], 14);
    assert_eq!(counts["verified Ecdsa(BrainpoolP384r1)"], 38);
    assert_eq!(counts["verified Ecdsa(P384)"], 22);
    assert_eq!(counts["verified Ecdsa(P521)"], 14);
    assert_eq!(counts["verified RsaPkcs1v15"], 208);
    assert_eq!(counts["verified RsaPss"], 88);
    assert_eq!(counts["verified Ecdsa(BrainpoolP512r1)"], 12);
    assert!(!counts.keys().any(|k| k.starts_with("explicit curve")));
    assert_eq!(counts.values().sum::<usize>(), 411);
}

#[test]
fn vietnamese_csca_verifies_its_own_signature_on_explicit_brainpool_p512r1() {
    use verify::{NamedCurve, Verified};
    let vn = std::fs::read(data("VN_CSCA_ePassport_2022.der")).unwrap();
    assert_eq!(
        verify::verify_certificate(&vn, &vn),
        Ok(Verified::Ecdsa(NamedCurve::BrainpoolP512r1))
    );
    let parts = verify::certificate_parts(&vn).unwrap();
    assert_eq!(
        parts.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.4",
        "ecdsa-with-SHA512"
    );
    assert_eq!(
        verify::describe_key(parts.spki),
        "ECDSA brainpoolP512r1 (explicit parameters)"
    );
    // One flipped bit anywhere in the signature (a BIT STRING holding the DER of r and s):
    // refused, as malformed DER or as a signature that does not verify.
    let tail = vn.len() - parts.signature.len();
    for i in 0..parts.signature.len() {
        for bit in [0x01, 0x80] {
            let mut bad = vn.clone();
            bad[tail + i] ^= bit;
            assert!(
                verify::verify_certificate(&bad, &vn).is_err(),
                "byte {i} bit {bit:#x}"
            );
        }
    }
    // One flipped bit in the signed bytes: refused.
    let mut bad = vn.clone();
    bad[20] ^= 0x01;
    assert_eq!(
        verify::verify_certificate(&bad, &vn),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn one_flipped_bit_fails_a_verified_self_signature() {
    let mut store = TrustStore::new();
    store.add_file(&data("NL_ML_2026-07-22.ml")).unwrap();
    let mut checked = 0;
    for c in store.certificates() {
        if verify::verify_certificate(&c.raw, &c.raw).is_err() {
            continue;
        }
        // Last byte of the DER is the signature's last byte (an INTEGER s inside the BIT STRING).
        let mut bad = c.raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(
            verify::verify_certificate(&bad, &bad).is_err(),
            "{}",
            c.source
        );
        // One bit of the TBS (inside the serial number region) changes the signed bytes.
        let mut bad = c.raw.clone();
        let parts = verify::certificate_parts(&c.raw).unwrap();
        let tbs_end = c
            .raw
            .windows(parts.tbs.len())
            .position(|w| w == parts.tbs)
            .unwrap()
            + parts.tbs.len();
        bad[tbs_end - 1] ^= 0x01;
        assert!(
            verify::verify_certificate(&bad, &c.raw).is_err(),
            "{}",
            c.source
        );
        checked += 1;
    }
    // 398 before brainpoolP512r1 was supported, plus the list's 12 brainpoolP512r1 CSCAs.
    assert_eq!(checked, 410);
}

#[test]
fn explicit_parameters_with_one_changed_field_match_no_curve() {
    use der::{Decode, Encode, Tagged};
    let mut store = TrustStore::new();
    store.add_file(&data("NL_ML_2026-07-22.ml")).unwrap();
    let mut explicit = 0;
    for c in store.certificates() {
        let spki = c.cert.tbs_certificate().subject_public_key_info();
        let Some(params) = spki.algorithm.parameters.as_ref() else {
            continue;
        };
        if params.tag() != der::Tag::Sequence {
            continue; // named curve, RSA NULL
        }
        let mut raw = params.to_der().unwrap();
        let good = der::asn1::AnyRef::from_der(&raw).unwrap();
        if verify::curve_of(Some(good)).is_err() {
            continue; // none since brainpoolP512r1 is supported: counted below
        }
        // The last byte is the cofactor (or the order's last byte when the cofactor is absent).
        let last = raw.len() - 1;
        raw[last] ^= 0x02;
        let bad = der::asn1::AnyRef::from_der(&raw).unwrap();
        assert!(
            matches!(
                verify::curve_of(Some(bad)),
                Err(VerifyError::UnknownExplicitCurve { .. })
            ),
            "{}",
            c.source
        );
        explicit += 1;
    }
    eprintln!("explicit-parameter keys refused after one change: {explicit}");
    // 99 before brainpoolP512r1 was supported, plus the list's 12 brainpoolP512r1 keys.
    assert_eq!(explicit, 111);
}

#[test]
fn chip_authentication_curves_from_real_and_built_explicit_parameters() {
    use der::{Decode, Encode, Tagged};
    use emrtd::pace::DomainCurve;
    use verify::NamedCurve;
    let ecdh = |curve| match curve {
        NamedCurve::P256 => Some(DomainCurve::NistP256),
        NamedCurve::BrainpoolP256r1 => Some(DomainCurve::BrainpoolP256r1),
        NamedCurve::BrainpoolP384r1 => Some(DomainCurve::BrainpoolP384r1),
        _ => None,
    };
    // Issuers' own explicit encodings (with seeds, cofactors, leading zeros as they wrote them).
    let mut store = TrustStore::new();
    store.add_file(&data("NL_ML_2026-07-22.ml")).unwrap();
    let mut resolved = 0;
    for c in store.certificates() {
        let spki = c.cert.tbs_certificate().subject_public_key_info();
        let Some(params) = spki.algorithm.parameters.as_ref() else {
            continue;
        };
        if params.tag() != der::Tag::Sequence {
            continue;
        }
        let raw = params.to_der().unwrap();
        let curve = verify::curve_of(Some(der::asn1::AnyRef::from_der(&raw).unwrap())).unwrap();
        assert_eq!(verify::chip_authentication_curve(&raw), ecdh(curve));
        resolved += usize::from(ecdh(curve).is_some());
    }
    assert!(
        resolved > 0,
        "the list holds explicit brainpoolP256r1/P384r1 keys"
    );
    // The test cards' encoder, curve by curve.
    for curve in [
        NamedCurve::P256,
        NamedCurve::P384,
        NamedCurve::P521,
        NamedCurve::BrainpoolP256r1,
        NamedCurve::BrainpoolP384r1,
        NamedCurve::BrainpoolP512r1,
    ] {
        let raw = verify::explicit_parameters(curve);
        let any = der::asn1::AnyRef::from_der(&raw).unwrap();
        assert_eq!(verify::curve_of(Some(any)).ok(), Some(curve));
        assert_eq!(verify::chip_authentication_curve(&raw), ecdh(curve));
    }
    // Named curves too; nothing for garbage.
    let bp256 = der::asn1::ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7");
    assert_eq!(
        verify::chip_authentication_curve(&bp256.to_der().unwrap()),
        Some(DomainCurve::BrainpoolP256r1)
    );
    for garbage in [
        &[][..],
        &[0x30, 0x03, 0x02, 0x01, 0x01],
        &[0x05, 0x00],
        &[0x30, 0x80],
    ] {
        assert_eq!(verify::chip_authentication_curve(garbage), None);
    }
}
