//! The desk's events for the clinic's HIS: what happened at the reader and what each check
//! answered, as versioned JSON with a sequence number, kept in a bounded ring so a client can
//! resume after a disconnection.
//!
//! Events carry the patient's identity (the HIS needs it to open the visit); they go only to the
//! authenticated loopback port ([`crate::his`]). The log lines this module writes name the kind,
//! the sequence number and the request id, never a field of the payload, and `Debug` of an event
//! hides the identity.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bhyt_proto::v1::{CheckCoverageResponse, Date as ProtoDate};
use emrtd::cccd::dg13::CardDate;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

use crate::backend::BackendError;
use crate::desk::{self, Lang, Outcome};
use crate::face::FaceRead;
use crate::read::{Access, ChipRead, DeskKey, ReadFailure, Unproven, Verdict};

/// The version of the event shapes; a change that breaks a reader of version 1 bumps it.
pub const VERSION: u8 = 1;

/// Events kept for resuming clients when the configuration says nothing.
pub const DEFAULT_CAPACITY: usize = 1000;

/// One event: the envelope (`v`, `seq`, `time`) and the kind with its fields, flattened into one
/// JSON object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// [`VERSION`].
    pub v: u8,
    /// One more for each event; a restarted agent continues above its previous numbers.
    pub seq: u64,
    /// When the agent published it, RFC 3339 in UTC.
    pub time: String,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A PC/SC reader is present (at start, or plugged in).
    ReaderAdded { reader: String },
    /// A reader is gone (unplugged, or the PC/SC service stopped).
    ReaderRemoved { reader: String },
    /// A card was put on a reader; `atr` is its answer to reset in hex.
    CardInserted { reader: String, atr: String },
    /// The card left the reader.
    CardRemoved { reader: String },
    /// A line typed or scanned at the desk is not key material; nothing was checked.
    InputRejected { reason: String, message: Text },
    /// A check began: the desk gave its key (`id`, `qr` or `mrz`); the agent waits for the card.
    CheckStarted { check: u64, key: String },
    /// The backend answered a check.
    CheckAnswered {
        check: u64,
        request_id: String,
        who: Who,
        chip: Chip,
        answer: Answer,
    },
    /// The check ended without an answer: no card, the chip not read, or a refusal by the
    /// card. The backend was not asked.
    ReadFailed {
        check: u64,
        reason: String,
        message: Text,
    },
    /// The chip was read but the backend could not be asked: the desk uses the official
    /// fallback.
    BackendUnreachable {
        check: u64,
        who: Who,
        chip: Chip,
        fallback: Text,
    },
    /// The backend refused the check itself (`code` is the gRPC status code's name).
    CheckRefused {
        check: u64,
        code: String,
        message: String,
    },
    /// The check in progress was abandoned because the agent is stopping.
    CheckCancelled { check: u64 },
    /// A check the backend could not take was kept in the offline spool.
    CheckSpooled { request_id: String },
    /// A spooled check was sent later and answered.
    SpooledCheckAnswered { request_id: String, answer: Answer },
    /// The holder's photo from the chip (DG2), after the check's answer, when `display_face` is
    /// set: DG2 matched its hash in the EF.SOD passive authentication verified.
    Face {
        check: u64,
        request_id: String,
        /// `image/jpeg`, `image/jp2` or `image/j2c`.
        media_type: String,
        /// The image exactly as the chip holds it, in standard base64.
        image_base64: ImageBase64,
        /// Bytes of the image (before base64).
        byte_size: usize,
        /// As the chip's record states them; 0 when unstated.
        width: u16,
        height: u16,
        /// Always true: a photo that does not match EF.SOD is never sent.
        verified_by_sod: bool,
    },
    /// The photo was wanted but is not shown; the check's answer stands.
    FaceNotShown {
        check: u64,
        request_id: String,
        reason: String,
        message: Text,
    },
}

/// A photo in base64. Biometric data: `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageBase64(pub String);

impl fmt::Debug for ImageBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageBase64({} chars)", self.0.len())
    }
}

/// A message in both of the desk's languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub vi: String,
    pub en: String,
}

/// The holder as read from the chip's DG13. Personal data: `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    pub citizen_id: Option<String>,
    pub full_name: Option<String>,
    /// `YYYY-MM-DD`, or as the card writes it when the day is not a real date (`00/00/1950`).
    pub date_of_birth: Option<String>,
}

impl fmt::Debug for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Who(<redacted>)")
    }
}

/// What the chip proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chip {
    /// The identity may be treated as chip-verified: the agent's proofs held and the backend
    /// verified the presence proof over its own challenge. Never true without the backend.
    pub verified: bool,
    /// The agent's own proofs held (passive authentication, clone check, unexpired card).
    pub genuine_by_agent: bool,
    /// The backend's verdict on the presence proof; `null` when it gave none.
    pub backend_verified: Option<bool>,
    /// `pace_can` or `bac`.
    pub access: String,
    /// Each proof of the agent's that did not hold.
    pub reasons: Vec<Reason>,
    /// Why the backend did not verify the presence proof.
    pub backend_failure: Option<Text>,
}

/// A proof that did not hold, as a code (`hash_mismatch`, `untrusted_signer`, ...) and the data
/// group it concerns, when one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dg: Option<u8>,
}

/// The backend's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The API's `ResultCode` value name, e.g. `CARD_VALID`.
    pub result: String,
    /// Whether the card can be used for this visit.
    pub usable: bool,
    pub message: Text,
    /// The BHYT card number (15 characters), when coverage was found.
    pub card_number: Option<String>,
    pub benefit_level: Option<u32>,
    pub benefit_percent: Option<u32>,
    /// `YYYY-MM-DD`.
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
    /// The facts are older than the source's freshness (the source was down).
    pub stale: bool,
    pub audit_record_id: String,
    /// The backend's signed proof of check (JWS), to keep with the claim.
    pub proof_token: String,
}

impl EventBody {
    /// The `kind` field's value.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::ReaderAdded { .. } => "reader_added",
            EventBody::ReaderRemoved { .. } => "reader_removed",
            EventBody::CardInserted { .. } => "card_inserted",
            EventBody::CardRemoved { .. } => "card_removed",
            EventBody::InputRejected { .. } => "input_rejected",
            EventBody::CheckStarted { .. } => "check_started",
            EventBody::CheckAnswered { .. } => "check_answered",
            EventBody::ReadFailed { .. } => "read_failed",
            EventBody::BackendUnreachable { .. } => "backend_unreachable",
            EventBody::CheckRefused { .. } => "check_refused",
            EventBody::CheckCancelled { .. } => "check_cancelled",
            EventBody::CheckSpooled { .. } => "check_spooled",
            EventBody::SpooledCheckAnswered { .. } => "spooled_check_answered",
            EventBody::Face { .. } => "face",
            EventBody::FaceNotShown { .. } => "face_not_shown",
        }
    }

    /// The backend request id the event is about, for logs.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            EventBody::CheckAnswered { request_id, .. }
            | EventBody::CheckSpooled { request_id }
            | EventBody::SpooledCheckAnswered { request_id, .. }
            | EventBody::Face { request_id, .. }
            | EventBody::FaceNotShown { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// `check_started` for `key`.
    pub fn check_started(check: u64, key: &DeskKey) -> Self {
        let key = match key {
            DeskKey::Id(_) => "id",
            DeskKey::Qr(_) => "qr",
            DeskKey::Mrz { .. } => "mrz",
        };
        EventBody::CheckStarted {
            check,
            key: key.into(),
        }
    }

    /// The event that ends check number `check`.
    pub fn from_outcome(check: u64, outcome: &Outcome) -> Self {
        let both = |f: &dyn Fn(Lang) -> String| Text {
            vi: f(Lang::Vi),
            en: f(Lang::En),
        };
        match outcome {
            Outcome::Setup(_) => EventBody::ReadFailed {
                check,
                reason: "configuration".into(),
                message: both(&|lang| desk::render(outcome, lang).trim_end().to_owned()),
            },
            Outcome::NoCard => EventBody::ReadFailed {
                check,
                reason: "no_card".into(),
                message: both(&|lang| desk::render(outcome, lang).trim_end().to_owned()),
            },
            Outcome::ReadFailed(failure) => EventBody::ReadFailed {
                check,
                reason: failure_code(failure).into(),
                message: both(&|lang| desk::failure_text(failure, lang)),
            },
            Outcome::Unreachable { read, .. } => EventBody::BackendUnreachable {
                check,
                who: who(read),
                chip: chip(read, None),
                fallback: Text {
                    vi: desk::FALLBACK_VI.into(),
                    en: desk::FALLBACK_EN.into(),
                },
            },
            Outcome::Refused(error) => EventBody::CheckRefused {
                check,
                code: match error {
                    BackendError::Refused { code, .. } => format!("{code:?}"),
                    _ => "AgentError".into(),
                },
                message: error.to_string(),
            },
            Outcome::Answered { read, answer } => EventBody::CheckAnswered {
                check,
                request_id: answer.request_id.clone(),
                who: who(read),
                chip: chip(read, Some(answer)),
                answer: Answer::from_response(answer),
            },
        }
    }
}

impl EventBody {
    /// The event about check `check`'s face: the photo, or why it is not shown.
    pub fn from_face(check: u64, request_id: &str, face: &FaceRead) -> Self {
        match &face.result {
            Ok(face) => EventBody::Face {
                check,
                request_id: request_id.to_owned(),
                media_type: face.media_type().to_owned(),
                image_base64: ImageBase64(BASE64_STANDARD.encode(&face.image)),
                byte_size: face.image.len(),
                width: face.width,
                height: face.height,
                verified_by_sod: true,
            },
            Err(failure) => EventBody::FaceNotShown {
                check,
                request_id: request_id.to_owned(),
                reason: failure.code().into(),
                message: Text {
                    vi: failure.text(Lang::Vi),
                    en: failure.text(Lang::En),
                },
            },
        }
    }
}

impl Answer {
    /// The event's view of the backend's answer.
    pub fn from_response(response: &CheckCoverageResponse) -> Self {
        let coverage = response.coverage.as_ref();
        let message = response.message.as_ref();
        Answer {
            result: response.result().as_str_name().to_owned(),
            usable: response.usable,
            message: Text {
                vi: message.map(|m| m.vi.clone()).unwrap_or_default(),
                en: message.map(|m| m.en.clone()).unwrap_or_default(),
            },
            card_number: coverage.map(|c| c.card_number.clone()),
            benefit_level: coverage.map(|c| c.benefit_level),
            benefit_percent: coverage.map(|c| c.benefit_percent),
            valid_from: coverage.and_then(|c| c.valid_from.as_ref()).map(iso_date),
            valid_to: coverage.and_then(|c| c.valid_to.as_ref()).map(iso_date),
            stale: response.cache.as_ref().is_some_and(|c| c.stale),
            audit_record_id: response.audit_record_id.clone(),
            proof_token: response.proof_token.clone(),
        }
    }
}

fn iso_date(date: &ProtoDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

fn who(read: &ChipRead) -> Who {
    let holder = &read.holder;
    Who {
        citizen_id: holder.citizen_id().map(|id| id.as_str().to_owned()),
        full_name: holder.full_name.clone(),
        date_of_birth: holder.date_of_birth.as_ref().map(|date| match date {
            CardDate::Date(d) => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            CardDate::Raw(text) => text.clone(),
        }),
    }
}

fn chip(read: &ChipRead, answer: Option<&CheckCoverageResponse>) -> Chip {
    let presence = answer.and_then(|a| a.presence.as_ref());
    let reasons = match read.verdict() {
        Verdict::Verified => Vec::new(),
        Verdict::NotVerified(reasons) => reasons.iter().map(reason).collect(),
    };
    Chip {
        verified: answer.is_some_and(|a| desk::chip_verified(read, a)),
        genuine_by_agent: read.verdict() == Verdict::Verified,
        backend_verified: presence.map(|p| p.verified),
        access: match read.access {
            Access::PaceCan => "pace_can",
            Access::Bac => "bac",
        }
        .into(),
        reasons,
        backend_failure: presence
            .and_then(|p| p.failure.as_ref())
            .filter(|f| !f.vi.is_empty() || !f.en.is_empty())
            .map(|f| Text {
                vi: f.vi.clone(),
                en: f.en.clone(),
            }),
    }
}

fn reason(unproven: &Unproven) -> Reason {
    let (code, dg) = match unproven {
        Unproven::SodMalformed(_) => ("sod_malformed", None),
        Unproven::SodSignature(_) => ("sod_signature", None),
        Unproven::HashMismatch(n) => ("hash_mismatch", Some(*n)),
        Unproven::NotInSod(n) => ("not_in_sod", Some(*n)),
        Unproven::UnsupportedHash(n) => ("unsupported_hash", Some(*n)),
        Unproven::UntrustedSigner(_) => ("untrusted_signer", None),
        Unproven::CertificateValidity(_) => ("certificate_validity", None),
        Unproven::Revoked => ("revoked", None),
        Unproven::RevocationUnknown => ("revocation_unknown", None),
        Unproven::CardExpired => ("card_expired", None),
        Unproven::NoCloneCheck => ("no_clone_check", None),
        Unproven::ActiveAuthentication(_) => ("active_authentication", None),
        Unproven::ChipAuthentication(_) => ("chip_authentication", None),
    };
    Reason {
        code: code.into(),
        dg,
    }
}

fn failure_code(failure: &ReadFailure) -> &'static str {
    match failure {
        ReadFailure::NotCccd => "not_cccd",
        ReadFailure::WrongCan => "wrong_can",
        ReadFailure::WrongMrzKey => "wrong_mrz_key",
        ReadFailure::NeedQrForBac => "need_qr_for_bac",
        ReadFailure::BadQrDates(_) => "bad_qr_dates",
        ReadFailure::Removed => "removed",
        ReadFailure::Unresponsive => "unresponsive",
        ReadFailure::Garbled(_) => "garbled",
        ReadFailure::Refused(_) => "refused",
        ReadFailure::OtherCitizen => "other_citizen",
        ReadFailure::Reader(_) => "reader",
    }
}

/// The agent's events: published by the desk loop, read by the HIS port. Cloning shares it.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    ring: Mutex<Ring>,
    /// The newest seq, for waiting readers.
    newest: watch::Sender<u64>,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    next_seq: u64,
}

impl EventLog {
    /// A log keeping the newest `capacity` events (at least one). Its first seq is the clock in
    /// microseconds since 1970, so a restarted agent numbers above its previous run and a client
    /// resuming from an old seq gets the new run's events.
    pub fn new(capacity: usize) -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        Self::starting_at(micros.max(1), capacity)
    }

    /// A log whose first event gets seq `first`.
    pub fn starting_at(first: u64, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        EventLog {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring {
                    events: VecDeque::with_capacity(capacity),
                    capacity,
                    next_seq: first,
                }),
                newest: watch::Sender::new(first - 1),
            }),
        }
    }

    /// Publishes `body` with the next seq and the current time; returns the seq.
    pub fn publish(&self, body: EventBody) -> u64 {
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let kind = body.kind();
        let request_id = body.request_id().map(str::to_owned);
        let seq = {
            let mut ring = self
                .inner
                .ring
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let seq = ring.next_seq;
            ring.next_seq += 1;
            if ring.events.len() == ring.capacity {
                ring.events.pop_front();
            }
            ring.events.push_back(Arc::new(Event {
                v: VERSION,
                seq,
                time,
                body,
            }));
            seq
        };
        self.inner.newest.send_replace(seq);
        // Kind, seq and request id only: the payload holds personal data.
        tracing::info!(kind, seq, request_id = request_id.as_deref(), "desk event");
        seq
    }

    /// Up to `limit` events with a seq above `after`, oldest first. A position beyond the newest
    /// event (a clock set back between two runs) reads the ring from its start.
    pub fn after(&self, after: u64, limit: usize) -> Vec<Arc<Event>> {
        let ring = self
            .inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let after = if after >= ring.next_seq { 0 } else { after };
        ring.events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The newest seq (one less than the first before any event).
    pub fn newest(&self) -> u64 {
        *self.inner.newest.borrow()
    }

    /// Notified on each publication, with the newest seq.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.newest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(reader: &str) -> EventBody {
        EventBody::CardInserted {
            reader: reader.into(),
            atr: "3b80".into(),
        }
    }

    #[test]
    fn seq_rises_by_one_and_the_ring_keeps_the_newest() {
        let log = EventLog::starting_at(1, 3);
        for n in 0..5 {
            assert_eq!(log.publish(card(&format!("r{n}"))), n + 1);
        }
        let kept: Vec<u64> = log.after(0, 10).iter().map(|e| e.seq).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(log.after(3, 10).len(), 2);
        assert_eq!(log.after(3, 1)[0].seq, 4);
        assert!(log.after(5, 10).is_empty());
        // A position beyond the newest (the clock set back between runs): from the start.
        assert_eq!(log.after(99, 10)[0].seq, 3);
        assert_eq!(log.newest(), 5);
    }

    #[test]
    fn json_has_the_envelope_and_the_kind_flattened() {
        let log = EventLog::new(10);
        let seq = log.publish(card("ACS ACR1252 00 00"));
        let event = &log.after(0, 1)[0];
        let json = serde_json::to_value(event.as_ref()).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["seq"], seq);
        // Above any earlier run's numbers (the clock in microseconds), and exact in JSON.
        assert!(seq > 1_700_000_000_000_000 && seq < 1 << 53, "{seq}");
        assert_eq!(json["kind"], "card_inserted");
        assert_eq!(json["reader"], "ACS ACR1252 00 00");
        assert!(OffsetDateTime::parse(json["time"].as_str().unwrap(), &Rfc3339).is_ok());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back.body, event.body);
    }

    #[test]
    fn kind_matches_the_serialised_tag() {
        let text = Text {
            vi: "a".into(),
            en: "b".into(),
        };
        let answer = Answer {
            result: "CARD_VALID".into(),
            usable: true,
            message: text.clone(),
            card_number: None,
            benefit_level: None,
            benefit_percent: None,
            valid_from: None,
            valid_to: None,
            stale: false,
            audit_record_id: "1".into(),
            proof_token: "t".into(),
        };
        let who = Who {
            citizen_id: None,
            full_name: None,
            date_of_birth: None,
        };
        let chip = Chip {
            verified: false,
            genuine_by_agent: false,
            backend_verified: None,
            access: "bac".into(),
            reasons: vec![],
            backend_failure: None,
        };
        let all = [
            EventBody::ReaderAdded { reader: "r".into() },
            EventBody::ReaderRemoved { reader: "r".into() },
            card("r"),
            EventBody::CardRemoved { reader: "r".into() },
            EventBody::InputRejected {
                reason: "not_id".into(),
                message: text.clone(),
            },
            EventBody::CheckStarted {
                check: 1,
                key: "id".into(),
            },
            EventBody::CheckAnswered {
                check: 1,
                request_id: "r".into(),
                who: who.clone(),
                chip: chip.clone(),
                answer: answer.clone(),
            },
            EventBody::ReadFailed {
                check: 1,
                reason: "no_card".into(),
                message: text.clone(),
            },
            EventBody::BackendUnreachable {
                check: 1,
                who,
                chip,
                fallback: text.clone(),
            },
            EventBody::CheckRefused {
                check: 1,
                code: "InvalidArgument".into(),
                message: "m".into(),
            },
            EventBody::CheckCancelled { check: 1 },
            EventBody::CheckSpooled {
                request_id: "r".into(),
            },
            EventBody::SpooledCheckAnswered {
                request_id: "r".into(),
                answer,
            },
            EventBody::Face {
                check: 1,
                request_id: "r".into(),
                media_type: "image/jpeg".into(),
                image_base64: ImageBase64("/9j/".into()),
                byte_size: 3,
                width: 0,
                height: 0,
                verified_by_sod: true,
            },
            EventBody::FaceNotShown {
                check: 1,
                request_id: "r".into(),
                reason: "hash_mismatch".into(),
                message: text.clone(),
            },
        ];
        for body in all {
            let json = serde_json::to_value(&body).unwrap();
            assert_eq!(json["kind"], body.kind());
        }
    }

    #[test]
    fn the_face_event_carries_the_image_in_base64_and_debug_hides_it() {
        use crate::face::{Face, FaceFailure};
        use emrtd::lds::dg2::ImageFormat;
        let image: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let read = FaceRead {
            result: Ok(Face {
                format: ImageFormat::Jpeg,
                width: 480,
                height: 640,
                image: image.clone(),
            }),
            elapsed: std::time::Duration::ZERO,
            apdus: Default::default(),
        };
        let body = EventBody::from_face(7, "req-1", &read);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["kind"], "face");
        assert_eq!(json["check"], 7);
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["media_type"], "image/jpeg");
        assert_eq!(json["byte_size"], 1000);
        assert_eq!(json["verified_by_sod"], true);
        let decoded = BASE64_STANDARD
            .decode(json["image_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, image);
        let debug = format!("{body:?}");
        assert!(
            !debug.contains(&json["image_base64"].as_str().unwrap()[..40]),
            "{debug}"
        );
        assert!(debug.contains("ImageBase64(1336 chars)"), "{debug}");

        let failed = FaceRead {
            result: Err(FaceFailure::HashMismatch),
            ..read
        };
        let json = serde_json::to_value(EventBody::from_face(7, "req-1", &failed)).unwrap();
        assert_eq!(json["kind"], "face_not_shown");
        assert_eq!(json["reason"], "hash_mismatch");
        assert!(json["message"]["en"].as_str().unwrap().contains("DG2"));
        assert!(json.get("image_base64").is_none());
    }

    #[test]
    fn debug_hides_the_holder() {
        let who = Who {
            citizen_id: Some("001099012345".into()),
            full_name: Some("Nguyễn Văn An".into()),
            date_of_birth: Some("1999-01-15".into()),
        };
        let text = format!("{who:?}");
        assert!(!text.contains("0010") && !text.contains("Nguy") && !text.contains("1999"));
    }
}
