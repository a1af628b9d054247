//! The `trust-store` command on real master lists and a CRL built by code.

mod pki;

use std::process::Command;

fn run(args: &[&std::path::Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trust-store"))
        .args(args)
        .output()
        .expect("the command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn prints_countries_algorithms_lists_crls_and_skipped() {
    let dir = std::env::temp_dir().join(format!("trust-store-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csca = pki::csca("CN=CSCA Test,O=Test,C=VN", 0x31);
    let rogue = pki::csca("CN=CSCA Test,O=Test,C=VN", 0x32);
    std::fs::write(dir.join("csca.der"), &csca.der).unwrap();
    std::fs::write(dir.join("good.crl"), pki::crl(&csca, &[3, 4])).unwrap();
    std::fs::write(dir.join("rogue.crl"), pki::crl(&rogue, &[])).unwrap();
    std::fs::write(
        dir.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let nl = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/masterlists/NL_ML_2026-07-22.ml");
    // CRLs given first still load after the certificates.
    let (ok, out) = run(&[
        &dir.join("good.crl"),
        &dir.join("rogue.crl"),
        &nl,
        &dir.join("csca.der"),
        &dir.join("junk.pem"),
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(ok, "{out}");
    assert!(out.contains("412 certificates from"), "{out}");
    assert!(
        out.contains("411 of 411 certificates added; signature verified (RsaPkcs1v15)"),
        "{out}"
    );
    assert!(out.contains("VN: 2 certificates, valid 2022-06-29T01:37:07Z .. 2037-10-01T01:37:06Z; ECDSA brainpoolP512r1 (explicit parameters) x2"), "{out}");
    assert!(
        out.contains("good.crl: issuer CN=CSCA Test,O=Test,C=VN, 2 revoked"),
        "{out}"
    );
    assert!(
        out.contains("rogue.crl: CRL signature not verified"),
        "{out}"
    );
    assert!(out.contains("junk.pem#0: "), "{out}");
}

#[test]
fn usage_and_unreadable_files_fail() {
    let (ok, _) = run(&[]);
    assert!(!ok);
    let (ok, _) = run(&[std::path::Path::new("/nonexistent/list.ml")]);
    assert!(!ok);
}
