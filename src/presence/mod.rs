//! Presence proofs: the backend's own evidence that the citizen's card was at the desk for this
//! check. The desk asks for a [`challenge`], has the chip sign its nonce (Active Authentication)
//! and sends the signature with EF.SOD and the data groups as read; here they are verified
//! against the backend's own trust store, so "chip-verified" in an answer or an audit record
//! never rests on the desk's word.
//!
//! What must all hold: passive authentication of every data group sent (DG13 and DG15
//! required), Active Authentication with DG15's key (which passive authentication has shown the
//! issuer signed) over this check's nonce, and DG13's citizen ID equal to the one checked.

pub mod challenge;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use bhyt_proto::v1::PresenceProof;
use cccd_authenticity::masterlist::Anchor;
use cccd_authenticity::passive::{self, DataGroupCheck, Policy};
use cccd_authenticity::trust::TrustStore;

use self::challenge::Nonce;

/// The data groups a presence proof needs: DG13 names the citizen, DG15 holds the key the
/// chip signs with.
const REQUIRED: [u8; 2] = [13, 15];

/// The backend's verdict on one proof. Failure texts name authorities and data groups only,
/// never personal data: they go into answers and audit records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceVerdict {
    pub passive_authentication: bool,
    pub active_authentication: bool,
    pub citizen_matches: bool,
    pub document_signer_issuer: String,
    pub failures: Vec<String>,
}

impl PresenceVerdict {
    pub fn verified(&self) -> bool {
        self.passive_authentication && self.active_authentication && self.citizen_matches
    }
}

/// Verifies presence proofs against a CSCA trust store (certificates, ICAO master lists, CRLs).
pub struct PresenceVerifier {
    trust: TrustStore,
    policy: Policy,
}

impl PresenceVerifier {
    pub fn new(trust: TrustStore, policy: Policy) -> Self {
        Self { trust, policy }
    }

    /// Loads every file in `dir`: CSCA certificates first (so master lists can be anchored in
    /// them), then master lists (`.ml`), then CRLs (`.crl`, kept only when a loaded CSCA signed
    /// them). A list whose signer chains only to a CSCA inside the list itself proves nothing
    /// about who published it: it is loaded, and a warning says so. A missing directory is an
    /// empty store: every proof then fails with "no trusted CSCA".
    pub fn load(dir: &Path, policy: Policy) -> std::io::Result<Self> {
        let mut trust = TrustStore::new();
        let mut files: Vec<_> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error),
        };
        let order = |p: &Path| match p.extension().map(|e| e.to_ascii_lowercase()) {
            Some(e) if e == "crl" => 2,
            Some(e) if e == "ml" => 1,
            _ => 0,
        };
        files.sort_by_key(|p| (order(p), p.clone()));
        for path in &files {
            if let Err(error) = trust.add_file(path) {
                tracing::warn!(path = %path.display(), %error, "trust store: file skipped");
            }
        }
        for list in trust.lists() {
            if let Ok(signature) = &list.signature
                && signature.anchor == Anchor::ListItself
            {
                tracing::warn!(
                    list = %list.source,
                    "trust store: this master list's signer chains only to a CSCA inside the list; add that country's CSCA certificate to the trust directory to anchor it"
                );
            }
        }
        tracing::info!(
            dir = %dir.display(),
            certificates = trust.certificates().len(),
            skipped = trust.skipped().len(),
            crls = trust.crls().len(),
            "chip trust store loaded"
        );
        Ok(Self::new(trust, policy))
    }

    /// Verifies `proof` for a check of `citizen_id`, with the chip's answer to `nonce`.
    pub fn verify(
        &self,
        proof: &PresenceProof,
        nonce: &Nonce,
        citizen_id: Option<&str>,
        now: SystemTime,
    ) -> PresenceVerdict {
        let mut verdict = PresenceVerdict::default();
        let mut groups = BTreeMap::new();
        for (&number, bytes) in &proof.data_groups {
            match u8::try_from(number) {
                Ok(n @ 1..=16) => {
                    groups.insert(n, bytes.clone());
                }
                _ => verdict
                    .failures
                    .push(format!("data group {number} does not exist")),
            }
        }
        for n in REQUIRED {
            if !groups.contains_key(&n) {
                verdict.failures.push(format!("DG{n} is required"));
            }
        }
        if !verdict.failures.is_empty() {
            return verdict;
        }

        match passive::passive_authentication(&self.trust, &proof.sod, &groups, now, self.policy) {
            Ok(report) => {
                if let Some(signer) = &report.document_signer {
                    verdict.document_signer_issuer = signer.issuer.clone();
                }
                verdict.passive_authentication = report.is_genuine();
                if !verdict.passive_authentication {
                    verdict.failures.extend(
                        report
                            .unproven()
                            .into_iter()
                            .map(|u| format!("passive: {u}")),
                    );
                }
                // Without DG15 signed by the issuer, a signature with "its" key proves nothing.
                let dg15_signed = report.data_groups.get(&15) == Some(&DataGroupCheck::Matched);
                match cccd_authenticity::active::verify_active_authentication(
                    &groups[&15],
                    groups.get(&14).map(Vec::as_slice),
                    nonce,
                    &proof.active_authentication_signature,
                ) {
                    Ok(_) if dg15_signed => verdict.active_authentication = true,
                    Ok(_) => verdict
                        .failures
                        .push("active: DG15 is not vouched for by EF.SOD".into()),
                    Err(error) => verdict.failures.push(format!("active: {error}")),
                }
            }
            Err(error) => verdict.failures.push(format!("EF.SOD: {error}")),
        }

        // DG13 is trusted only as far as passive authentication went; the comparison is made
        // regardless so the verdict says each thing separately.
        let on_chip = emrtd::cccd::dg13::parse(&groups[&13])
            .ok()
            .and_then(|dg13| dg13.citizen_id());
        match (on_chip, citizen_id) {
            (Some(chip), Some(checked)) if chip.as_str() == checked => {
                verdict.citizen_matches = true;
            }
            (None, _) => verdict
                .failures
                .push("DG13 holds no valid citizen ID".into()),
            (Some(_), Some(_)) => verdict
                .failures
                .push("the chip belongs to another citizen than the one checked".into()),
            (Some(_), None) => verdict.failures.push(
                "a presence proof needs the check to name the citizen ID, not a card number".into(),
            ),
        }
        verdict
    }
}
