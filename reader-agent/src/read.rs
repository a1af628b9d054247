//! The desk's read of a CCCD, over any emrtd [`Transport`] (PC/SC at the desk, the in-process
//! virtual card in tests): open the chip with the desk's key material, read what the check
//! needs, and prove what can be proven.
//!
//! Access: PACE with the CAN (the ID's last six digits) first; when the card refuses PACE or its
//! EF.CardAccess declares no suite this library runs, BAC with the MRZ key, which needs the
//! birth date and the expiry, so only the QR text gives it. Proofs: passive authentication
//! against the agent's own trust store, Active Authentication over a nonce (the backend's
//! presence challenge when online), Chip Authentication when DG14 offers it.
//!
//! The outcome separates two things on purpose. A [`ReadFailure`] means there is nothing to show:
//! the chip could not be opened or read. A [`ChipRead`] means the data came off the chip, and it
//! says which proofs held; [`ChipRead::verdict`] is "verified" only when every one did. Neither
//! carries personal data in its `Display` or `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cccd_authenticity::active::{ActiveAuthentication, verify_active_authentication};
use cccd_authenticity::crl::Revocation;
use cccd_authenticity::passive::{self, DataGroupCheck, PassiveAuthentication, Policy};
use cccd_authenticity::trust::{TrustError, TrustStore};
use cccd_authenticity::verify;
use emrtd::aa::{self, AaError, CHALLENGE_LEN};
use emrtd::apdu::StatusError;
use emrtd::bac::BacError;
use emrtd::ca::{self, CaError, CaParams};
use emrtd::cccd::date::Date;
use emrtd::cccd::dg13::{self, Dg13};
use emrtd::cccd::expiry::{self, ExpiryError};
use emrtd::cccd::id_number::{CitizenId, IdNumberError};
use emrtd::cccd::mrz::{self, BacKeyMaterial, MrzTextError};
use emrtd::cccd::qr::{self, QrData, QrError};
use emrtd::lds::dg1::{self, MrzExpiry};
use emrtd::lds::dg14;
use emrtd::pace::{self, PaceError, PacePassword};
use emrtd::reader::{ReadError, Reader};
use emrtd::stats::ReadStats;
use emrtd::transport::{Transport, TransportError};

/// Short file ids of what the desk reads.
const SOD: u8 = 0x1D;
const DG1: u8 = 0x01;
const DG13: u8 = 0x0D;
const DG14: u8 = 0x0E;
const DG15: u8 = 0x0F;

/// What the receptionist gave: a typed ID (PACE only), the scanned QR text or the MRZ text
/// (PACE, and BAC when PACE is refused). Debug shows nothing personal.
#[derive(Clone)]
pub enum DeskKey {
    /// The 12-digit citizen ID, typed.
    Id(CitizenId),
    /// The QR code's content.
    Qr(Box<QrData>),
    /// The MRZ on the card's back, typed by an OCR device: the ID from its optional data, and
    /// BAC's key as printed (no expiry to work out).
    Mrz {
        id: CitizenId,
        bac: Box<BacKeyMaterial>,
    },
}

impl fmt::Debug for DeskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeskKey::Id(_) => "DeskKey::Id(<redacted>)",
            DeskKey::Qr(_) => "DeskKey::Qr(<redacted>)",
            DeskKey::Mrz { .. } => "DeskKey::Mrz(<redacted>)",
        })
    }
}

/// Why the desk's input is not key material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The typed text is not a citizen ID.
    #[error("not a 12-digit citizen ID: {0}")]
    Id(IdNumberError),
    /// The scanned text is not a CCCD QR code.
    #[error("not a CCCD QR code: {0}")]
    Qr(QrError),
    /// The OCR text is not a valid MRZ (shape or check digits).
    #[error("not a valid MRZ: {0}")]
    Mrz(MrzTextError),
    /// The MRZ is valid but not a CCCD's: no 12-digit citizen ID in its optional data.
    #[error("the MRZ is not a CCCD's: it holds no citizen ID")]
    MrzWithoutId,
}

impl DeskKey {
    /// A typed ID.
    pub fn from_id(text: &str) -> Result<Self, KeyError> {
        CitizenId::parse(text)
            .map(DeskKey::Id)
            .map_err(KeyError::Id)
    }

    /// A scanned QR text.
    pub fn from_qr(text: &str) -> Result<Self, KeyError> {
        qr::parse(text)
            .map(|q| DeskKey::Qr(Box::new(q)))
            .map_err(KeyError::Qr)
    }

    /// MRZ text from an OCR device (three lines of 30 characters, or one of 90).
    pub fn from_mrz(text: &str) -> Result<Self, KeyError> {
        let td1 = mrz::parse_text(text).map_err(KeyError::Mrz)?;
        let id = td1.citizen_id().ok_or(KeyError::MrzWithoutId)?;
        Ok(DeskKey::Mrz {
            id,
            bac: Box::new(BacKeyMaterial::from_mrz(&td1)),
        })
    }

    /// The citizen the desk expects on the reader.
    pub fn citizen_id(&self) -> &CitizenId {
        match self {
            DeskKey::Id(id) => id,
            DeskKey::Qr(q) => &q.id,
            DeskKey::Mrz { id, .. } => id,
        }
    }

    /// BAC's key material, when the QR gives birth date and issue date (hence the expiry).
    fn bac(&self) -> Result<Option<BacKeyMaterial>, ExpiryError> {
        match self {
            DeskKey::Id(_) => Ok(None),
            DeskKey::Qr(q) => {
                let expiry = expiry::card_expiry(q.date_of_birth, q.issue_date)?;
                Ok(Some(BacKeyMaterial::from_citizen(
                    &q.id,
                    q.date_of_birth,
                    expiry,
                )))
            }
            DeskKey::Mrz { bac, .. } => Ok(Some((**bac).clone())),
        }
    }
}

/// How the chip was opened.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// PACE with the CAN.
    PaceCan,
    /// BAC with the MRZ key from the QR code, after PACE was refused or not runnable.
    Bac,
}

/// Why the read produced nothing to show. Messages name the cause, never the person.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadFailure {
    /// The card has no eMRTD application, or its DG1 is not a Vietnamese ID card.
    #[error("the card is not a CCCD (chip citizen ID card)")]
    NotCccd,
    /// PACE refused the CAN: the ID typed or scanned is not this card's.
    #[error("the card refused the access number: the ID does not belong to this card")]
    WrongCan,
    /// BAC refused the MRZ key derived from the QR code.
    #[error("the card refused the key from the QR code (birth date or expiry do not match)")]
    WrongMrzKey,
    /// PACE was refused and BAC needs the QR code (birth date, issue date).
    #[error("the card does not accept PACE; scan the QR code so BAC can be used")]
    NeedQrForBac,
    /// The QR's dates give no expiry, so no BAC key.
    #[error("the QR code's dates give no card expiry: {0}")]
    BadQrDates(ExpiryError),
    /// The card was taken off the reader (or the reader went away) during the read.
    #[error("the card was removed during the read; put it back on the reader")]
    Removed,
    /// The card or the reader stopped answering.
    #[error("the card did not answer in time")]
    Unresponsive,
    /// The card's answers are malformed, truncated or fail secure messaging.
    #[error("the card's answers are garbled ({0}); try again or use another reader")]
    Garbled(String),
    /// The card refused a read it must allow.
    #[error("the card refused a read: {0}")]
    Refused(StatusError),
    /// The chip belongs to another citizen than the one typed or scanned.
    #[error("the chip belongs to another citizen than the ID given")]
    OtherCitizen,
    /// The reader or driver failed otherwise.
    #[error("card reader failure: {0}")]
    Reader(String),
}

impl ReadFailure {
    fn from_transport(e: TransportError) -> Self {
        match e {
            TransportError::CardRemoved => ReadFailure::Removed,
            TransportError::Timeout => ReadFailure::Unresponsive,
            TransportError::Rejected => ReadFailure::Reader("command refused by the reader".into()),
            TransportError::Other(s) => ReadFailure::Reader(s),
            other => ReadFailure::Reader(other.to_string()),
        }
    }

    fn from_read(e: ReadError) -> Self {
        match e {
            ReadError::Transport(t) => Self::from_transport(t),
            ReadError::Status(StatusError::FileNotFound) => ReadFailure::NotCccd,
            ReadError::Status(s) => ReadFailure::Refused(s),
            ReadError::Bac(b) => Self::from_bac(b),
            other => ReadFailure::Garbled(other.to_string()),
        }
    }

    fn from_bac(e: BacError) -> Self {
        match e {
            BacError::Refused(_) | BacError::CardNotAuthenticated => ReadFailure::WrongMrzKey,
            BacError::Transport(t) => Self::from_transport(t),
            other => ReadFailure::Garbled(other.to_string()),
        }
    }

    fn from_pace(e: PaceError) -> Self {
        match e {
            PaceError::WrongPassword => ReadFailure::WrongCan,
            PaceError::Transport(t) => Self::from_transport(t),
            other => ReadFailure::Garbled(other.to_string()),
        }
    }
}

/// A proof that did not hold, or could not be made. Names the link, never the person.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    /// EF.SOD does not parse as a signed security object.
    #[error("EF.SOD is malformed: {0}")]
    SodMalformed(String),
    /// EF.SOD's signature does not verify with the Document Signer it carries: forged or altered.
    #[error("EF.SOD signature does not verify (forged or altered)")]
    SodSignature(String),
    /// A data group differs from the hash the issuer signed.
    #[error("DG{0} does not match its hash in EF.SOD (altered data)")]
    HashMismatch(u8),
    /// A data group the desk relies on is not covered by EF.SOD.
    #[error("DG{0} is not listed in EF.SOD")]
    NotInSod(u8),
    /// EF.SOD's hash algorithm is unsupported or refused by policy.
    #[error("DG{0}: EF.SOD's hash algorithm is not accepted")]
    UnsupportedHash(u8),
    /// The Document Signer does not chain to a CSCA in the agent's trust store.
    #[error("the document signer is not trusted ({0})")]
    UntrustedSigner(String),
    /// A certificate of the chain is outside its validity period.
    #[error("the {0} certificate is not valid now")]
    CertificateValidity(&'static str),
    /// The Document Signer is revoked.
    #[error("the document signer is revoked")]
    Revoked,
    /// No current CRL of the CSCA: revocation unknown.
    #[error("revocation unknown: no current CRL of the issuer")]
    RevocationUnknown,
    /// The card's expiry date (DG1) has passed.
    #[error("the card expired")]
    CardExpired,
    /// The card has neither DG15 (Active Authentication) nor Chip Authentication: no clone check.
    #[error("the chip offers no clone check (no DG15, no Chip Authentication)")]
    NoCloneCheck,
    /// The chip did not sign the nonce with DG15's key: a clone, or a broken card.
    #[error("active authentication failed: {0}")]
    ActiveAuthentication(String),
    /// The chip failed Chip Authentication: it does not hold DG14's key.
    #[error("chip authentication failed: {0}")]
    ChipAuthentication(String),
}

/// What the read of a card established.
#[derive(Clone)]
pub struct ChipRead {
    /// How the chip was opened.
    pub access: Access,
    /// EF.SOD as read.
    pub sod: Vec<u8>,
    /// The data groups read, by number (1, 13, and 14, 15 when present).
    pub data_groups: BTreeMap<u8, Vec<u8>>,
    /// DG13, parsed: name and the rest for display.
    pub holder: Dg13,
    /// The card's expiry from DG1 (`None`: the card does not expire).
    pub expires: Option<Date>,
    /// Passive authentication's report (`None` when EF.SOD did not parse).
    pub passive: Option<PassiveAuthentication>,
    /// The nonce Active Authentication signed, and the chip's signature.
    pub active_authentication: Option<([u8; CHALLENGE_LEN], Vec<u8>)>,
    /// Active Authentication's verification, when the chip signed.
    pub active: Option<ActiveAuthentication>,
    /// Chip Authentication's parameters, when it ran and succeeded.
    pub chip_authentication: Option<CaParams>,
    /// Every proof that did not hold.
    pub unproven: Vec<Unproven>,
    /// APDU statistics of the read, by phase.
    pub stats: ReadStats,
    /// Time spent in each step of the read.
    pub timings: ReadTimings,
}

/// Where a read's time went, step by step (the desk's log, the demo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTimings {
    /// EF.CardAccess, PACE (or BAC) and the application's selection.
    pub open: Duration,
    /// EF.SOD and the data groups over secure messaging.
    pub files: Duration,
    /// INTERNAL AUTHENTICATE and the check of its signature.
    pub active_authentication: Duration,
    /// Chip Authentication, when DG14 offers it.
    pub chip_authentication: Duration,
    /// Passive authentication against the trust store.
    pub passive_authentication: Duration,
}

impl fmt::Debug for ChipRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChipRead")
            .field("access", &self.access)
            .field("data_groups", &self.data_groups.keys().collect::<Vec<_>>())
            .field("passive_genuine", &self.passive_genuine())
            .field("active", &self.active)
            .field("chip_authentication", &self.chip_authentication.is_some())
            .field("unproven", &self.unproven)
            .finish_non_exhaustive()
    }
}

/// Whether the chip is proven genuine and present.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every proof held: issuer's signature, unaltered data, a live chip holding its key, an
    /// unexpired card.
    Verified,
    /// At least one proof did not hold; the reasons, first the most telling.
    NotVerified(Vec<Unproven>),
}

impl ChipRead {
    /// Whether passive authentication held on every link.
    pub fn passive_genuine(&self) -> bool {
        self.passive
            .as_ref()
            .is_some_and(PassiveAuthentication::is_genuine)
    }

    /// The verdict: verified only when nothing is unproven.
    pub fn verdict(&self) -> Verdict {
        if self.unproven.is_empty() && self.passive_genuine() {
            Verdict::Verified
        } else {
            Verdict::NotVerified(self.unproven.clone())
        }
    }

    /// The holder's full name from DG13.
    pub fn full_name(&self) -> Option<&str> {
        self.holder.full_name.as_deref()
    }
}

/// What the read needs besides the card and the key.
pub struct ReadOptions<'a> {
    /// The agent's CSCA certificates and CRLs.
    pub trust: &'a TrustStore,
    /// The time certificates and the card's expiry are checked at.
    pub now: SystemTime,
    /// The nonce for Active Authentication: the backend's presence challenge, or `None` for a
    /// fresh one from the operating system.
    pub challenge: Option<[u8; CHALLENGE_LEN]>,
    /// Passive authentication policy (SHA-1, CRL required).
    pub policy: Policy,
}

/// Loads a trust directory: every file in it (CSCA certificates, master lists, then CRLs, which
/// need their CSCA loaded first).
pub fn load_trust_dir(dir: &Path) -> Result<TrustStore, TrustError> {
    let mut store = TrustStore::new();
    let entries = std::fs::read_dir(dir).map_err(|source| TrustError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    // CRLs last; otherwise by name, for a stable order.
    files.sort_by_key(|p| {
        let crl = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("crl"));
        (crl, p.clone())
    });
    for file in files {
        store.add_file(&file)?;
    }
    Ok(store)
}

/// Reads and authenticates the card behind `transport` with the desk's `key`.
pub fn read_card<T: Transport>(
    transport: T,
    key: &DeskKey,
    options: &ReadOptions<'_>,
) -> Result<ChipRead, ReadFailure> {
    read_card_open(transport, key, options).map(|(read, _)| read)
}

/// [`read_card`], and the reader with its secure channel still open, so that the same card
/// session can be asked for more afterwards (the face, see [`crate::face`]) without opening
/// the chip again. Dropping the reader ends the session.
pub fn read_card_open<T: Transport>(
    transport: T,
    key: &DeskKey,
    options: &ReadOptions<'_>,
) -> Result<(ChipRead, Reader<T>), ReadFailure> {
    let mut timings = ReadTimings::default();
    let mut step = Instant::now();
    let mut lap = move || {
        let now = Instant::now();
        std::mem::replace(&mut step, now).elapsed()
    };
    let mut reader = Reader::new(transport);
    let access = open(&mut reader, key)?;
    timings.open = lap();

    let sod = reader.read_file(SOD).map_err(ReadFailure::from_read)?;
    let dg1 = reader.read_file(DG1).map_err(ReadFailure::from_read)?;
    let td1 = dg1::parse(&dg1).map_err(|_| ReadFailure::NotCccd)?;
    if td1.issuing_state() != "VNM" || !td1.document_code().starts_with('I') {
        return Err(ReadFailure::NotCccd);
    }
    let dg13_bytes = match reader.read_file(DG13) {
        Err(ReadError::Status(StatusError::FileNotFound)) => return Err(ReadFailure::NotCccd),
        other => other.map_err(ReadFailure::from_read)?,
    };
    let holder = dg13::parse(&dg13_bytes).map_err(|e| ReadFailure::Garbled(e.to_string()))?;
    if holder.citizen_id().as_ref() != Some(key.citizen_id()) {
        return Err(ReadFailure::OtherCitizen);
    }
    let dg14 = optional(&mut reader, DG14)?;
    let dg15 = optional(&mut reader, DG15)?;

    let mut data_groups = BTreeMap::from([(1, dg1), (13, dg13_bytes)]);
    if let Some(dg14) = &dg14 {
        data_groups.insert(14, dg14.clone());
    }
    if let Some(dg15) = &dg15 {
        data_groups.insert(15, dg15.clone());
    }
    let mut unproven = Vec::new();
    timings.files = lap();

    // Active Authentication over the nonce, on the channel the chip opened.
    let mut active_authentication = None;
    let mut active = None;
    if let Some(dg15) = &dg15 {
        let challenge = match options.challenge {
            Some(c) => c,
            None => aa::fresh_challenge()
                .map_err(|_| ReadFailure::Reader("random number generator".into()))?,
        };
        match aa::internal_authenticate(&mut reader, &challenge) {
            Ok(signature) => {
                match verify_active_authentication(dg15, dg14.as_deref(), &challenge, &signature) {
                    Ok(done) => active = Some(done),
                    Err(e) => unproven.push(Unproven::ActiveAuthentication(e.to_string())),
                }
                active_authentication = Some((challenge, signature));
            }
            Err(AaError::Read(e)) => return Err(ReadFailure::from_read(e)),
            Err(e) => unproven.push(Unproven::ActiveAuthentication(e.to_string())),
        }
    }
    timings.active_authentication = lap();

    // Chip Authentication when DG14 offers it (its key's curve named or given explicitly); a
    // chip without its key fails here.
    let mut chip_authentication = None;
    if let Some(params) = dg14
        .as_deref()
        .and_then(|bytes| dg14::parse(bytes).ok())
        .and_then(|parsed| {
            CaParams::from_dg14_resolving(&parsed, verify::chip_authentication_curve).ok()
        })
    {
        match ca::chip_authenticate(&mut reader, &params) {
            Ok(done) => chip_authentication = Some(done),
            Err(CaError::Read(e)) => return Err(ReadFailure::from_read(e)),
            Err(e) => unproven.push(Unproven::ChipAuthentication(e.to_string())),
        }
    }
    if dg15.is_none() && chip_authentication.is_none() && unproven.is_empty() {
        unproven.push(Unproven::NoCloneCheck);
    }
    timings.chip_authentication = lap();

    // Passive authentication: first in the list, since it says whether anything else matters.
    let mut passive_failures = Vec::new();
    let passive = match passive::passive_authentication(
        options.trust,
        &sod,
        &data_groups,
        options.now,
        options.policy,
    ) {
        Ok(report) => {
            passive_failures = passive_unproven(&report, options.policy);
            Some(report)
        }
        Err(e) => {
            passive_failures.push(Unproven::SodMalformed(e.to_string()));
            None
        }
    };
    passive_failures.append(&mut unproven);
    let mut unproven = passive_failures;
    timings.passive_authentication = lap();

    let expires = match td1.date_of_expiry() {
        MrzExpiry::Never => None,
        MrzExpiry::Date(yymmdd) => Some(expiry_date(yymmdd).ok_or(ReadFailure::NotCccd)?),
    };
    // A clock that gives no date cannot show the card is current.
    if expires.is_some_and(|date| today(options.now).is_none_or(|t| date < t)) {
        unproven.push(Unproven::CardExpired);
    }

    let read = ChipRead {
        access,
        sod,
        data_groups,
        holder,
        expires,
        passive,
        active_authentication,
        active,
        chip_authentication,
        unproven,
        stats: reader.stats().clone(),
        timings,
    };
    Ok((read, reader))
}

/// PACE with the CAN; BAC with the QR's key when PACE is refused or not runnable.
fn open<T: Transport>(reader: &mut Reader<T>, key: &DeskKey) -> Result<Access, ReadFailure> {
    let card_access = match reader.read_card_access() {
        Ok(file) => file,
        // Some cards refuse the plain select; PACE then runs the CCCD's known suite.
        Err(ReadError::Status(_)) => None,
        Err(e) => return Err(ReadFailure::from_read(e)),
    };
    let password = PacePassword::from_citizen_id(key.citizen_id());
    let pace = reader
        .establish_with(|t, stats| pace::establish(t, &password, card_access.as_deref(), stats));
    match pace {
        Ok(()) => {
            reader
                .select_application()
                .map_err(ReadFailure::from_read)?;
            Ok(Access::PaceCan)
        }
        Err(PaceError::Refused(_) | PaceError::Unsupported) => {
            let material = key
                .bac()
                .map_err(ReadFailure::BadQrDates)?
                .ok_or(ReadFailure::NeedQrForBac)?;
            let bac_key = material.bac_key().map_err(ReadFailure::from_bac)?;
            reader
                .select_application()
                .map_err(ReadFailure::from_read)?;
            reader
                .establish_bac(&bac_key)
                .map_err(ReadFailure::from_read)?;
            Ok(Access::Bac)
        }
        Err(e) => Err(ReadFailure::from_pace(e)),
    }
}

/// A data group the card may lack: `None` when it answers "file not found".
fn optional<T: Transport>(reader: &mut Reader<T>, sfi: u8) -> Result<Option<Vec<u8>>, ReadFailure> {
    match reader.read_file(sfi) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadError::Status(StatusError::FileNotFound)) => Ok(None),
        Err(e) => Err(ReadFailure::from_read(e)),
    }
}

/// Each failed link of passive authentication, typed.
fn passive_unproven(report: &PassiveAuthentication, policy: Policy) -> Vec<Unproven> {
    let mut out = Vec::new();
    if let Err(e) = &report.signature {
        out.push(Unproven::SodSignature(e.to_string()));
    }
    for (&n, check) in &report.data_groups {
        match check {
            DataGroupCheck::Matched => {}
            DataGroupCheck::Mismatched => out.push(Unproven::HashMismatch(n)),
            DataGroupCheck::NotInSod => out.push(Unproven::NotInSod(n)),
            _ => out.push(Unproven::UnsupportedHash(n)),
        }
    }
    if let Err(e) = &report.chain {
        out.push(Unproven::UntrustedSigner(e.to_string()));
    }
    match report.validity {
        None => {}
        Some(v) => {
            if !v.document_signer {
                out.push(Unproven::CertificateValidity("document signer"));
            }
            if v.csca == Some(false) {
                out.push(Unproven::CertificateValidity("CSCA"));
            }
        }
    }
    match &report.revocation {
        Revocation::Revoked { .. } => out.push(Unproven::Revoked),
        // Without a trusted issuer there is no CRL to consult: the chain already says it all.
        Revocation::NoCrl | Revocation::StaleCrl { .. }
            if policy.require_crl && report.chain.is_ok() =>
        {
            out.push(Unproven::RevocationUnknown);
        }
        _ => {}
    }
    // Whatever else the report holds against the card, so "genuine" is never claimed by
    // omission.
    if out.is_empty() && !report.is_genuine() {
        out.push(Unproven::UntrustedSigner(report.unproven().join("; ")));
    }
    out
}

/// The MRZ's `YYMMDD` expiry: CCCDs were first issued in 2016, so every expiry is in 20YY.
fn expiry_date(yymmdd: &str) -> Option<Date> {
    let digit = |i: usize| -> Option<u16> {
        yymmdd
            .as_bytes()
            .get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| u16::from(b - b'0'))
    };
    let year = 2000 + digit(0)? * 10 + digit(1)?;
    let month = u8::try_from(digit(2)? * 10 + digit(3)?).ok()?;
    let day = u8::try_from(digit(4)? * 10 + digit(5)?).ok()?;
    Date::new(year, month, day).ok()
}

/// The calendar day in Vietnam (UTC+7) of `now`; `None` only for a clock outside years 1-9999.
fn today(now: SystemTime) -> Option<Date> {
    let local = time::OffsetDateTime::from(now).to_offset(time::macros::offset!(+7));
    let date = local.date();
    let year = u16::try_from(date.year()).ok()?;
    Date::new(year, u8::from(date.month()), date.day()).ok()
}
