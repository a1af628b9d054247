//! The holder's face (DG2) for the desk's display, read on demand after the check.
//!
//! DG2 is the chip's largest file (tens of KB) and the coverage check needs nothing from it, so
//! the desk reads it only when `display_face` is set, and only once the answer is out: the read
//! keeps its card session open ([`crate::read::read_card_open`]) and the station then asks that
//! same session, on a blocking thread, for DG2. The photo is handed on only when DG2 matches the
//! hash in an EF.SOD that passive authentication verified (the authenticity crate's own check);
//! otherwise the desk is told why and no photo is shown. Nothing here changes the check's
//! answer, which was given before.

use std::fmt;
use std::time::{Duration, Instant};

use cccd_authenticity::passive::{self, DataGroupCheck, Policy};
use emrtd::apdu::StatusError;
use emrtd::lds::dg2::{self, Dg2Error, ImageFormat};
use emrtd::lds::sod;
use emrtd::reader::{ReadError, Reader};
use emrtd::stats::{Phase, PhaseStats};
use emrtd::transport::{Transport, TransportError};

use crate::desk::Lang;
use crate::read::ChipRead;

/// Short file id of DG2.
const DG2: u8 = 0x02;

/// A chip still open after the check's read: the session, and what the face is checked against.
pub struct OpenCard<T: Transport> {
    reader: Reader<T>,
    /// EF.SOD as read for the check.
    sod: Vec<u8>,
    /// Passive authentication held on every link, so the SOD's hashes are the issuer's.
    sod_verified: bool,
    policy: Policy,
}

impl<T: Transport> OpenCard<T> {
    /// Keeps `reader` (its channel open) with what `read` proved of the card's EF.SOD.
    pub fn new(reader: Reader<T>, read: &ChipRead, policy: Policy) -> Self {
        OpenCard {
            reader,
            sod: read.sod.clone(),
            sod_verified: read.passive_genuine(),
            policy,
        }
    }

    /// Reads DG2 over the open session, checks it against EF.SOD and extracts the image. The
    /// session ends with it (the card is left as it is, not reset).
    pub fn read_face(mut self) -> FaceRead {
        let started = Instant::now();
        let result = self.face();
        FaceRead {
            result,
            elapsed: started.elapsed(),
            apdus: self.reader.stats().phase(Phase::File(DG2)),
        }
    }

    fn face(&mut self) -> Result<Face, FaceFailure> {
        // An unverified SOD proves nothing about DG2: not even worth the read.
        if !self.sod_verified {
            return Err(FaceFailure::NotProven);
        }
        let sod = sod::parse(&self.sod).map_err(|_| FaceFailure::NotProven)?;
        if sod.security_object.hash_of(2).is_none() {
            return Err(FaceFailure::NotInSod);
        }
        let bytes = self.reader.read_file(DG2).map_err(FaceFailure::from_read)?;
        match passive::check_data_group(&sod, 2, &bytes, self.policy) {
            DataGroupCheck::Matched => {}
            DataGroupCheck::Mismatched => return Err(FaceFailure::HashMismatch),
            DataGroupCheck::NotInSod => return Err(FaceFailure::NotInSod),
            _ => return Err(FaceFailure::UnsupportedHash),
        }
        let face = dg2::parse(&bytes).map_err(FaceFailure::Malformed)?;
        Ok(Face {
            format: face.format,
            width: face.width,
            height: face.height,
            image: face.image.to_vec(),
        })
    }
}

/// What the face read gave, and what it cost.
#[derive(Debug, Clone)]
pub struct FaceRead {
    pub result: Result<Face, FaceFailure>,
    /// From the request to the checked image (or the failure).
    pub elapsed: Duration,
    /// The READ BINARY commands of DG2.
    pub apdus: PhaseStats,
}

/// The holder's photo, its bytes exactly as DG2 holds them, matched against EF.SOD. Biometric
/// data: `Debug` shows its kind and size, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Face {
    pub format: ImageFormat,
    /// As the facial record states them (0: unstated).
    pub width: u16,
    pub height: u16,
    pub image: Vec<u8>,
}

impl Face {
    /// The media type to show it with (`image/jpeg`, `image/jp2`, `image/j2c`).
    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }
}

impl fmt::Debug for Face {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Face")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.image.len())
            .finish()
    }
}

/// Why no photo is shown. The check's answer stands either way.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaceFailure {
    /// Passive authentication did not hold, so EF.SOD's hash of DG2 proves nothing.
    #[error("the chip's data is not proven to be the issuer's, so its photo is not either")]
    NotProven,
    /// EF.SOD has no hash for DG2.
    #[error("EF.SOD holds no hash of DG2: the photo cannot be verified")]
    NotInSod,
    /// EF.SOD's hash algorithm is unsupported or refused by policy.
    #[error("EF.SOD's hash algorithm is not accepted")]
    UnsupportedHash,
    /// The card has no DG2.
    #[error("the card holds no photo (no DG2)")]
    Missing,
    /// DG2 differs from what the issuer signed.
    #[error("DG2 does not match its hash in EF.SOD (altered photo)")]
    HashMismatch,
    /// The card left the reader before DG2 was read.
    #[error("the card was removed before the photo was read")]
    Removed,
    /// The card or reader failed otherwise.
    #[error("the photo could not be read: {0}")]
    Unreadable(String),
    /// DG2 matched EF.SOD but holds no image this desk can show.
    #[error("the photo's record is not usable: {0}")]
    Malformed(Dg2Error),
}

impl FaceFailure {
    fn from_read(e: ReadError) -> Self {
        match e {
            ReadError::Transport(TransportError::CardRemoved) => FaceFailure::Removed,
            ReadError::Status(StatusError::FileNotFound) => FaceFailure::Missing,
            other => FaceFailure::Unreadable(other.to_string()),
        }
    }

    /// A code for the HIS event.
    pub fn code(&self) -> &'static str {
        match self {
            FaceFailure::NotProven => "not_proven",
            FaceFailure::NotInSod => "not_in_sod",
            FaceFailure::UnsupportedHash => "unsupported_hash",
            FaceFailure::Missing => "missing",
            FaceFailure::HashMismatch => "hash_mismatch",
            FaceFailure::Removed => "removed",
            FaceFailure::Unreadable(_) => "unreadable",
            FaceFailure::Malformed(_) => "malformed",
        }
    }

    /// The reason in the desk's words.
    pub fn text(&self, lang: Lang) -> String {
        if lang == Lang::En {
            return self.to_string();
        }
        match self {
            FaceFailure::NotProven => {
                "dữ liệu chip chưa được xác minh là của cơ quan cấp, nên ảnh cũng không".into()
            }
            FaceFailure::NotInSod => {
                "EF.SOD không có mã băm của DG2: không xác minh được ảnh".into()
            }
            FaceFailure::UnsupportedHash => "thuật toán băm của EF.SOD không được chấp nhận".into(),
            FaceFailure::Missing => "thẻ không có ảnh (không có DG2)".into(),
            FaceFailure::HashMismatch => "DG2 không khớp mã băm trong EF.SOD (ảnh bị sửa)".into(),
            FaceFailure::Removed => "thẻ bị nhấc ra trước khi đọc xong ảnh".into(),
            FaceFailure::Unreadable(e) => format!("không đọc được ảnh ({e})"),
            FaceFailure::Malformed(e) => format!("bản ghi ảnh không dùng được ({e})"),
        }
    }
}

/// The console's line about the photo: where to see it, or why there is none. Never the image.
pub fn render(read: &FaceRead, lang: Lang) -> String {
    match (&read.result, lang) {
        (Ok(face), Lang::Vi) => format!(
            "Ảnh chân dung từ chip: có ({}, {} byte), khớp EF.SOD; xem trên phần mềm HIS.",
            face.media_type(),
            face.image.len()
        ),
        (Ok(face), Lang::En) => format!(
            "Photo from the chip available ({}, {} bytes), matches EF.SOD; shown in the HIS.",
            face.media_type(),
            face.image.len()
        ),
        (Err(e), Lang::Vi) => format!(
            "KHÔNG hiển thị ảnh chân dung: {}. Kết quả BHYT ở trên vẫn giữ nguyên.",
            e.text(lang)
        ),
        (Err(e), Lang::En) => format!(
            "Photo NOT shown: {}. The coverage answer above stands.",
            e.text(lang)
        ),
    }
}
