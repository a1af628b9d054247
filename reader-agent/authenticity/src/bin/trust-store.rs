//! Prints what a CSCA trust store holds: per country, how many certificates, their key
//! algorithms and validity; each master list and what its own signature proved; the CRLs
//! honoured; and everything skipped, with the reason.
//!
//! Usage: `trust-store FILE...` with master lists (`.ml`), certificates (DER/PEM) and CRLs
//! (`.crl`, DER/PEM; loaded after the certificates whatever the order given).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use cccd_authenticity::chain;
use cccd_authenticity::trust::TrustStore;
use cccd_authenticity::verify;
use der::Encode;

#[derive(Default)]
struct Country {
    certificates: usize,
    algorithms: BTreeMap<String, usize>,
    earliest: Option<String>,
    latest: Option<String>,
    self_signature_failures: usize,
}

fn main() -> ExitCode {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: trust-store FILE... (master lists .ml, certificates, CRLs .crl)");
        return ExitCode::from(2);
    }
    let is_crl = |p: &PathBuf| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("crl"));
    let mut store = TrustStore::new();
    let mut failed = false;
    for path in files
        .iter()
        .filter(|p| !is_crl(p))
        .chain(files.iter().filter(|p| is_crl(p)))
    {
        if let Err(e) = store.add_file(path) {
            eprintln!("{e}");
            failed = true;
        }
    }

    let mut countries: BTreeMap<String, Country> = BTreeMap::new();
    for c in store.certificates() {
        let tbs = c.cert.tbs_certificate();
        let country = chain::country(tbs.subject()).unwrap_or_else(|| "??".to_string());
        let entry = countries.entry(country).or_default();
        entry.certificates += 1;
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map(|d| verify::describe_key(&d))
            .unwrap_or_else(|_| "undecodable key".to_string());
        *entry.algorithms.entry(spki).or_default() += 1;
        let from = tbs.validity().not_before.to_string();
        let to = tbs.validity().not_after.to_string();
        if entry.earliest.as_ref().is_none_or(|e| from < *e) {
            entry.earliest = Some(from);
        }
        if entry.latest.as_ref().is_none_or(|l| to > *l) {
            entry.latest = Some(to);
        }
        if tbs.subject() == tbs.issuer() && verify::verify_certificate(&c.raw, &c.raw).is_err() {
            entry.self_signature_failures += 1;
        }
    }

    println!("# Trust store");
    println!(
        "{} certificates from {} countries, {} CRLs, {} skipped",
        store.certificates().len(),
        countries.len(),
        store.crls().len(),
        store.skipped().len()
    );
    println!("\n## Master lists");
    for list in store.lists() {
        let signature = match &list.signature {
            Ok(s) => format!(
                "signature verified ({:?}), signer {} issued by {} ({:?})",
                s.scheme, s.signer, s.csca, s.anchor
            ),
            Err(e) => format!("signature NOT verified: {e}"),
        };
        println!(
            "{}: {} of {} certificates added; {signature}",
            list.source, list.added, list.certificates
        );
    }
    println!("\n## Countries");
    for (country, c) in &countries {
        let algorithms: Vec<String> = c
            .algorithms
            .iter()
            .map(|(a, n)| format!("{a} x{n}"))
            .collect();
        println!(
            "{country}: {} certificates, valid {} .. {}; {}{}",
            c.certificates,
            c.earliest.as_deref().unwrap_or("?"),
            c.latest.as_deref().unwrap_or("?"),
            algorithms.join(", "),
            if c.self_signature_failures > 0 {
                format!(
                    "; {} self-issued certificates whose self-signature does not verify (link certificates or unsupported)",
                    c.self_signature_failures
                )
            } else {
                String::new()
            }
        );
    }
    println!("\n## CRLs");
    for crl in store.crls() {
        println!(
            "{}: issuer {}, {} revoked",
            crl.source,
            crl.issuer(),
            crl.revoked_count()
        );
    }
    println!("\n## Skipped");
    for s in store.skipped() {
        println!("{}: {}", s.source, s.reason);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
