//! One check at the desk: wait for the card on the reader, read and prove it, ask the backend,
//! and word the answer for the receptionist (Vietnamese first, English on request).
//!
//! The wording never lets a coverage answer pass for a chip-verified identity: "chip verified"
//! is printed only when the agent's own proofs held *and* the backend's verdict on the presence
//! proof says verified.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime};

use bhyt_proto::v1::{
    CheckCoverageRequest, CheckCoverageResponse, Date as ProtoDate, PresenceChallenge,
};
use cccd_authenticity::passive::Policy;
use cccd_authenticity::trust::TrustStore;
use serde::Deserialize;

use crate::backend::{Backend, BackendConfig, BackendError, nonce_of, request_id};
use crate::card::{CardEvent, ExtendedApduMemory, PcscCard, Watcher, WatcherConfig};
use crate::face::{FaceFailure, FaceRead, OpenCard};
use crate::his::HisConfig;
use crate::read::{self, Access, ChipRead, DeskKey, ReadFailure, ReadOptions, Unproven, Verdict};
use crate::spool::{DEFAULT_MAX_ENTRIES, SpoolConfig};

/// The agent's configuration file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `https://host:port` of the backend's gRPC listener.
    pub backend_url: String,
    /// The name on the backend's certificate, when not the URL's host.
    pub server_name: Option<String>,
    pub ca_cert: PathBuf,
    pub station_cert: PathBuf,
    pub station_key: PathBuf,
    pub facility_code: String,
    pub station_id: String,
    pub operator_name: String,
    pub operator_citizen_id: String,
    /// CSCA certificates, master lists and CRLs for the agent's own passive authentication.
    pub trust_dir: PathBuf,
    /// The PC/SC reader to use; unset: the first reader a card is put on.
    pub reader: Option<String>,
    /// How long to wait for the card, in seconds (default 60).
    pub card_wait_secs: Option<u64>,
    /// Where checks are kept while the backend is unreachable (unset: not kept).
    pub spool_dir: Option<PathBuf>,
    /// The spool's 32-byte key; created at first start (required with `spool_dir`).
    pub spool_key_file: Option<PathBuf>,
    /// Most checks the spool keeps (default 500); beyond, a check is refused, never an older
    /// one dropped.
    pub spool_max_entries: Option<usize>,
    /// The HIS port of `reader-agent run` (`[his]`); none: console only.
    pub his: Option<HisConfig>,
    /// Read the holder's photo (DG2) after each answer, for the HIS to display (default
    /// false: DG2 is never read).
    #[serde(default)]
    pub display_face: bool,
}

impl FileConfig {
    /// Reads and parses the file.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The spool's part; `None` when no spool is configured.
    pub fn spool(&self) -> Result<Option<SpoolConfig>, String> {
        match (&self.spool_dir, &self.spool_key_file) {
            (None, None) => Ok(None),
            (Some(dir), Some(key_file)) => Ok(Some(SpoolConfig {
                dir: dir.clone(),
                key_file: key_file.clone(),
                max_entries: self.spool_max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
            })),
            _ => Err("spool_dir and spool_key_file go together: set both or neither".into()),
        }
    }

    /// How long a check waits for the card.
    pub fn card_wait(&self) -> Duration {
        Duration::from_secs(self.card_wait_secs.unwrap_or(60))
    }

    /// The backend client's part.
    pub fn backend(&self) -> BackendConfig {
        BackendConfig {
            url: self.backend_url.clone(),
            server_name: self.server_name.clone(),
            ca_cert: self.ca_cert.clone(),
            station_cert: self.station_cert.clone(),
            station_key: self.station_key.clone(),
            facility_code: self.facility_code.clone(),
            station_id: self.station_id.clone(),
            operator_name: self.operator_name.clone(),
            operator_citizen_id: self.operator_citizen_id.clone(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the desk is told when the backend cannot be asked: the official fallback.
pub const FALLBACK_VI: &str = "KHÔNG KẾT NỐI ĐƯỢC MÁY CHỦ hoặc chứng chỉ trạm bị từ chối. Làm theo quy trình dự phòng: số thẻ BHYT kèm giấy tờ tùy thân có ảnh.";
pub const FALLBACK_EN: &str = "BACKEND UNREACHABLE or station certificate refused. Use the official fallback: BHYT card number plus photo ID.";

/// The desk's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

/// How a check ended.
#[non_exhaustive]
#[derive(Debug)]
pub enum Outcome {
    /// The desk's configuration is unusable (trust dir, certificates).
    Setup(String),
    /// No card came within the wait, or no reader.
    NoCard,
    /// The chip could not be read; the backend was not asked.
    ReadFailed(ReadFailure),
    /// The chip was read but the backend could not be asked (down, or certificate refused).
    /// `pending` is the check to keep in the spool and send later (see `spool`).
    Unreachable {
        read: Box<ChipRead>,
        error: BackendError,
        pending: Box<CheckCoverageRequest>,
    },
    /// The backend refused the check itself.
    Refused(BackendError),
    /// The backend answered.
    Answered {
        read: Box<ChipRead>,
        answer: Box<CheckCoverageResponse>,
    },
}

/// Times of the phases, for the desk's log and the demo.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub wait_for_card: Duration,
    pub challenge: Duration,
    pub read: Duration,
    pub check: Duration,
}

/// Waits for a card (on `reader`, or any), then reads, proves and asks the backend.
pub async fn check(config: &FileConfig, key: &DeskKey) -> (Outcome, Timings) {
    let (outcome, timings, _) = check_keeping(config, key, false).await;
    (outcome, timings)
}

/// [`check`], keeping the card session open afterwards when `keep_open` (the caller shows the
/// answer, then reads the face over it with [`read_face`]). `None` when not kept, or when no
/// chip data came of the check.
pub async fn check_keeping(
    config: &FileConfig,
    key: &DeskKey,
    keep_open: bool,
) -> (Outcome, Timings, Option<OpenChip>) {
    let mut timings = Timings::default();
    let trust = match read::load_trust_dir(&config.trust_dir) {
        Ok(store) => Arc::new(store),
        Err(e) => return (Outcome::Setup(e.to_string()), timings, None),
    };
    let mut backend = match Backend::new(config.backend()) {
        Ok(b) => b,
        Err(e) => return (Outcome::Setup(e.to_string()), timings, None),
    };
    let started = Instant::now();
    let wanted = config.reader.clone();
    let wait = config.card_wait();
    let reader = tokio::task::spawn_blocking(move || wait_for_card(wanted.as_deref(), wait))
        .await
        .ok()
        .flatten();
    timings.wait_for_card = started.elapsed();
    let Some(reader) = reader else {
        return (Outcome::NoCard, timings, None);
    };
    let (outcome, open) =
        check_card_keeping(&mut backend, &trust, key, reader, &mut timings, keep_open).await;
    (outcome, timings, open)
}

/// The card session kept open after a check, for the face.
pub type OpenChip = OpenCard<PcscCard>;

/// Reads and proves the card on `reader` and asks the backend: the check once the card is there.
pub async fn check_card(
    backend: &mut Backend,
    trust: &Arc<TrustStore>,
    key: &DeskKey,
    reader: String,
    timings: &mut Timings,
) -> Outcome {
    check_card_keeping(backend, trust, key, reader, timings, false)
        .await
        .0
}

/// Reads DG2 over the session a check kept open (blocking PC/SC, on a blocking thread).
pub async fn read_face(open: OpenChip) -> FaceRead {
    let started = Instant::now();
    tokio::task::spawn_blocking(move || open.read_face())
        .await
        .unwrap_or_else(|_| FaceRead {
            result: Err(FaceFailure::Unreadable("the card thread failed".into())),
            elapsed: started.elapsed(),
            apdus: Default::default(),
        })
}

/// [`check_card`], keeping the card session open afterwards when `keep_open` (for the face),
/// if the chip was read and the outcome shows it (answered, or the backend unreachable).
pub async fn check_card_keeping(
    backend: &mut Backend,
    trust: &Arc<TrustStore>,
    key: &DeskKey,
    reader: String,
    timings: &mut Timings,
    keep_open: bool,
) -> (Outcome, Option<OpenChip>) {
    // The challenge first, so the chip signs the backend's nonce. Offline, the read goes on with
    // a nonce of the agent's own: the desk still learns whether the chip is genuine.
    let started = Instant::now();
    let challenge = backend.challenge().await;
    timings.challenge = started.elapsed();
    let nonce = challenge.as_ref().ok().and_then(nonce_of);

    let started = Instant::now();
    let key_for_read = key.clone();
    let trust = Arc::clone(trust);
    let read = tokio::task::spawn_blocking(move || {
        let transport = PcscCard::connect(&reader, ExtendedApduMemory::default())
            .map_err(|e| ReadFailure::Reader(e.to_string()))?;
        let options = ReadOptions {
            trust: &trust,
            now: SystemTime::now(),
            challenge: nonce,
            policy: Policy::default(),
        };
        // Not kept, the reader is dropped here, which ends the session.
        read::read_card_open(transport, &key_for_read, &options).map(|(read, reader)| {
            let open = keep_open.then(|| OpenCard::new(reader, &read, options.policy));
            (read, open)
        })
    })
    .await
    .unwrap_or_else(|_| Err(ReadFailure::Reader("read task failed".into())));
    timings.read = started.elapsed();
    let (read, open) = match read {
        Ok(read) => read,
        Err(failure) => return (Outcome::ReadFailed(failure), None),
    };
    let started = Instant::now();
    let outcome = ask(backend, read, challenge).await;
    timings.check = started.elapsed();
    let open = open.filter(|_| {
        matches!(
            outcome,
            Outcome::Answered { .. } | Outcome::Unreachable { .. }
        )
    });
    (outcome, open)
}

/// Asks the backend about `read`, made with `challenge` (what IssuePresenceChallenge gave
/// before the read).
///
/// When the backend cannot be asked, the outcome carries the check to keep for later. Unasked
/// (the challenge already failed), it gets a fresh request id and no presence proof: nothing
/// was sent, and the chip signed no challenge of the backend's. Asked without an answer (down
/// or timed out mid-call), it is the very request sent, proof and request id included: the
/// backend may have recorded it, and only the same request id and payload get that first
/// answer back rather than a second record.
pub async fn ask(
    backend: &mut Backend,
    read: ChipRead,
    challenge: Result<PresenceChallenge, BackendError>,
) -> Outcome {
    let challenge = match challenge {
        Ok(c) => c,
        Err(error) if error.is_unreachable() => {
            let pending = match request_id() {
                Ok(id) => backend.request(&read, None, id),
                Err(e) => return Outcome::Setup(e.to_string()),
            };
            return Outcome::Unreachable {
                read: Box::new(read),
                error,
                pending: Box::new(pending),
            };
        }
        Err(error) => return Outcome::Refused(error),
    };
    let request = match request_id() {
        Ok(id) => backend.request(&read, Some(&challenge), id),
        Err(e) => return Outcome::Setup(e.to_string()),
    };
    let answer = backend.send(request.clone()).await;
    let read = Box::new(read);
    match answer {
        Ok(answer) => Outcome::Answered {
            read,
            answer: Box::new(answer),
        },
        Err(error) if error.is_unreachable() => Outcome::Unreachable {
            read,
            error,
            pending: Box::new(request),
        },
        Err(error) => Outcome::Refused(error),
    }
}

/// Blocks until a card is on `reader` (any reader when `None`); its name, or `None` after
/// `wait`.
pub fn wait_for_card(reader: Option<&str>, wait: Duration) -> Option<String> {
    let watcher = Watcher::start(WatcherConfig {
        poll: Duration::from_millis(300),
        retry: Duration::from_millis(300),
    })
    .ok()?;
    let deadline = Instant::now() + wait;
    let found = loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break None;
        };
        match watcher.events().recv_timeout(left) {
            Ok(CardEvent::CardInserted { reader: name, .. })
                if reader.is_none_or(|r| r == name) =>
            {
                break Some(name);
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break None,
        }
    };
    watcher.stop();
    found
}

/// Whether the desk may treat the identity as chip-verified: both the agent and the backend say so.
pub fn chip_verified(read: &ChipRead, answer: &CheckCoverageResponse) -> bool {
    read.verdict() == Verdict::Verified && answer.presence.as_ref().is_some_and(|p| p.verified)
}

/// The answer as the desk's console shows it.
pub fn render(outcome: &Outcome, lang: Lang) -> String {
    let t = |vi: &str, en: &str| match lang {
        Lang::Vi => vi.to_owned(),
        Lang::En => en.to_owned(),
    };
    let mut out = String::new();
    match outcome {
        Outcome::Setup(e) => {
            let _ = writeln!(out, "{}: {e}", t("Lỗi cấu hình", "Configuration error"));
        }
        Outcome::NoCard => {
            let _ = writeln!(
                out,
                "{}",
                t(
                    "Không thấy thẻ trên đầu đọc. Đặt thẻ CCCD lên đầu đọc và thử lại.",
                    "No card on the reader. Put the CCCD on the reader and try again."
                )
            );
        }
        Outcome::ReadFailed(failure) => {
            let _ = writeln!(
                out,
                "{}: {}",
                t("Không đọc được chip", "Chip not read"),
                failure_text(failure, lang)
            );
            let _ = writeln!(
                out,
                "{}",
                t(
                    "Chưa hỏi cổng BHYT. Xử lý lỗi trên rồi đọc lại thẻ.",
                    "The insurance service was not asked. Fix the above and read the card again."
                )
            );
        }
        Outcome::Unreachable { read, error, .. } => {
            who(&mut out, read, lang);
            chip_line(&mut out, read, None, lang);
            let _ = writeln!(out, "{} ({error})", t(FALLBACK_VI, FALLBACK_EN));
        }
        Outcome::Refused(error) => {
            let _ = writeln!(
                out,
                "{}: {error}",
                t("Máy chủ từ chối yêu cầu", "The backend refused the check")
            );
        }
        Outcome::Answered { read, answer } => {
            who(&mut out, read, lang);
            chip_line(&mut out, read, Some(answer), lang);
            let message = answer
                .message
                .as_ref()
                .map(|m| match lang {
                    Lang::Vi => m.vi.clone(),
                    Lang::En => m.en.clone(),
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}: {:?} — {message}",
                t("Kết quả BHYT", "Coverage"),
                answer.result()
            );
            let _ = writeln!(
                out,
                "{}: {}",
                t("Dùng được cho lượt khám", "Usable for this visit"),
                yes_no(answer.usable, lang)
            );
            if let Some(coverage) = &answer.coverage {
                let _ = writeln!(
                    out,
                    "{}: {} ({}%)",
                    t("Mức hưởng", "Benefit level"),
                    coverage.benefit_level,
                    coverage.benefit_percent
                );
                let _ = writeln!(
                    out,
                    "{}: {} – {}",
                    t("Hạn thẻ", "Valid"),
                    date_text(coverage.valid_from.as_ref()),
                    date_text(coverage.valid_to.as_ref())
                );
            }
            let _ = writeln!(
                out,
                "{}: {}",
                t("Mã bản ghi kiểm tra", "Audit record"),
                answer.audit_record_id
            );
        }
    }
    out
}

fn who(out: &mut String, read: &ChipRead, lang: Lang) {
    let label = match lang {
        Lang::Vi => "Họ tên (chip)",
        Lang::En => "Name (chip)",
    };
    let _ = writeln!(out, "{label}: {}", read.full_name().unwrap_or("?"));
    // Said because BAC is the fallback: a desk that sees it often has cards refusing PACE.
    let opened = match (read.access, lang) {
        (Access::Bac, Lang::Vi) => "Mở chip: BAC (khóa từ mã QR; thẻ từ chối PACE)",
        (Access::Bac, Lang::En) => "Chip opened with: BAC (key from the QR code; PACE refused)",
        (_, Lang::Vi) => "Mở chip: PACE (mã CAN từ số CCCD)",
        (_, Lang::En) => "Chip opened with: PACE (CAN from the citizen ID)",
    };
    let _ = writeln!(out, "{opened}");
}

fn chip_line(
    out: &mut String,
    read: &ChipRead,
    answer: Option<&CheckCoverageResponse>,
    lang: Lang,
) {
    let verified = answer.is_some_and(|a| chip_verified(read, a));
    if verified {
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Vi => "Chip: ĐÃ XÁC THỰC (thẻ thật, có mặt)",
                Lang::En => "Chip: VERIFIED (genuine card, present)",
            }
        );
        return;
    }
    if answer.is_none() && read.verdict() == Verdict::Verified {
        // Offline: the agent's own proofs held, but no backend verdict over its challenge.
        let _ = writeln!(
            out,
            "{}",
            match lang {
                Lang::Vi => "Chip: thẻ thật theo kiểm tra của máy trạm; CHƯA được máy chủ xác nhận",
                Lang::En => "Chip: genuine by this station's checks; NOT confirmed by the backend",
            }
        );
        return;
    }
    let _ = writeln!(
        out,
        "{}",
        match lang {
            Lang::Vi => "Chip: KHÔNG XÁC THỰC — không coi danh tính là đã xác thực bằng chip",
            Lang::En => "Chip: NOT VERIFIED — do not treat the identity as chip-verified",
        }
    );
    if let Verdict::NotVerified(reasons) = read.verdict() {
        for reason in reasons {
            let _ = writeln!(out, "  - {}", unproven_text(&reason, lang));
        }
    }
    if let Some(failure) = answer
        .and_then(|a| a.presence.as_ref())
        .and_then(|p| p.failure.as_ref())
    {
        let text = match lang {
            Lang::Vi => &failure.vi,
            Lang::En => &failure.en,
        };
        if !text.is_empty() {
            let label = match lang {
                Lang::Vi => "máy chủ",
                Lang::En => "backend",
            };
            let _ = writeln!(out, "  - {label}: {text}");
        }
    }
}

pub(crate) fn yes_no(value: bool, lang: Lang) -> &'static str {
    match (value, lang) {
        (true, Lang::Vi) => "có",
        (false, Lang::Vi) => "không",
        (true, Lang::En) => "yes",
        (false, Lang::En) => "no",
    }
}

fn date_text(date: Option<&ProtoDate>) -> String {
    date.map_or_else(
        || "?".into(),
        |d| format!("{:02}/{:02}/{}", d.day, d.month, d.year),
    )
}

/// A read failure in the desk's words.
pub fn failure_text(failure: &ReadFailure, lang: Lang) -> String {
    if lang == Lang::En {
        return failure.to_string();
    }
    match failure {
        ReadFailure::NotCccd => "thẻ không phải CCCD gắn chip".into(),
        ReadFailure::WrongCan => "sai số CCCD: thẻ từ chối mã truy cập (CAN)".into(),
        ReadFailure::WrongMrzKey => {
            "thẻ từ chối khóa từ mã QR (ngày sinh/hạn thẻ không khớp)".into()
        }
        ReadFailure::NeedQrForBac => "thẻ không hỗ trợ PACE; hãy quét mã QR trên thẻ".into(),
        ReadFailure::BadQrDates(_) => "ngày trên mã QR không hợp lệ".into(),
        ReadFailure::Removed => "thẻ bị nhấc ra khi đang đọc; đặt lại thẻ lên đầu đọc".into(),
        ReadFailure::Unresponsive => "thẻ không phản hồi kịp".into(),
        ReadFailure::Garbled(e) => format!("dữ liệu từ thẻ bị lỗi ({e})"),
        ReadFailure::Refused(e) => format!("thẻ từ chối lệnh đọc ({e})"),
        ReadFailure::OtherCitizen => "chip thuộc về công dân khác với số CCCD đã nhập".into(),
        ReadFailure::Reader(e) => format!("lỗi đầu đọc: {e}"),
    }
}

/// A failed proof in the desk's words.
pub fn unproven_text(unproven: &Unproven, lang: Lang) -> String {
    if lang == Lang::En {
        return unproven.to_string();
    }
    match unproven {
        Unproven::SodMalformed(_) => "EF.SOD hỏng".into(),
        Unproven::SodSignature(_) => "chữ ký EF.SOD sai (giả mạo hoặc bị sửa)".into(),
        Unproven::HashMismatch(n) => {
            format!("DG{n} không khớp mã băm trong EF.SOD (dữ liệu bị sửa)")
        }
        Unproven::NotInSod(n) => format!("DG{n} không có trong EF.SOD"),
        Unproven::UnsupportedHash(n) => format!("DG{n}: thuật toán băm không được chấp nhận"),
        Unproven::UntrustedSigner(_) => "cơ quan ký không nằm trong danh sách tin cậy".into(),
        Unproven::CertificateValidity(which) => format!("chứng thư {which} hết hiệu lực"),
        Unproven::Revoked => "chứng thư ký đã bị thu hồi".into(),
        Unproven::RevocationUnknown => "không có CRL hiện hành để kiểm tra thu hồi".into(),
        Unproven::CardExpired => "thẻ CCCD đã hết hạn".into(),
        Unproven::NoCloneCheck => "chip không hỗ trợ kiểm tra thẻ nhân bản".into(),
        Unproven::ActiveAuthentication(_) => {
            "xác thực chủ động thất bại (có thể là thẻ nhân bản)".into()
        }
        Unproven::ChipAuthentication(_) => "xác thực chip thất bại (có thể là thẻ nhân bản)".into(),
    }
}
