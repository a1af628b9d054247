//! What the desk types, line by line: the QR scanner (it types like a keyboard and ends with
//! Enter), a receptionist typing the 12-digit ID, or an OCR device typing the MRZ as one line
//! of 90 characters or three of 30.
//!
//! Lines are read with a length bound, so a scanner stuck on repeat or a pasted document cannot
//! grow memory; the three MRZ lines are gathered into one key. Errors name what was expected,
//! never the text typed (it may be someone's ID).

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::desk::Lang;
use crate::read::{DeskKey, KeyError};

/// The longest line taken: a CCCD QR text is about 100 to 200 characters.
pub const MAX_LINE: usize = 1024;

/// Characters of a TD1 MRZ line as an OCR device types it.
const MRZ_LINE: usize = 30;

/// One line from the desk.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Longer than [`MAX_LINE`]; its bytes were skipped up to the end of the line.
    TooLong,
}

/// Reads lines with a bound on their length. Cancel-safe: a partial line stays buffered here, so
/// `next` may lose a `select!` race and be called again.
pub struct LineReader<R> {
    inner: R,
    partial: Vec<u8>,
    too_long: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            partial: Vec::new(),
            too_long: false,
        }
    }

    /// The next line, without its line ending; `None` at the end of input.
    pub async fn next(&mut self) -> io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // End of input: a last line without Enter still counts.
                if self.partial.is_empty() && !self.too_long {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let (chunk, ended) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            if self.partial.len() + chunk.len() > MAX_LINE {
                self.too_long = true;
                self.partial.clear();
            } else if !self.too_long {
                self.partial.extend_from_slice(chunk);
            }
            let used = chunk.len() + usize::from(ended);
            self.inner.consume(used);
            if ended {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        let bytes = std::mem::take(&mut self.partial);
        if std::mem::take(&mut self.too_long) {
            return Line::TooLong;
        }
        // Invalid UTF-8 becomes replacement characters, which no parser accepts.
        Line::Text(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Why a line gave no key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the line is longer than {MAX_LINE} characters")]
    TooLong,
    /// MRZ lines stopped before the third.
    #[error("incomplete MRZ: {0} of 3 lines")]
    IncompleteMrz(usize),
}

impl InputError {
    /// A stable code for the HIS.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Key(KeyError::Id(_)) => "not_an_id",
            InputError::Key(KeyError::Qr(_)) => "not_a_qr_code",
            InputError::Key(KeyError::Mrz(_)) => "not_an_mrz",
            InputError::Key(KeyError::MrzWithoutId) => "mrz_without_id",
            InputError::TooLong => "too_long",
            InputError::IncompleteMrz(_) => "incomplete_mrz",
        }
    }

    /// The desk's words.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::En => format!("Not read: {self}. Scan the QR code or type the 12-digit ID."),
            Lang::Vi => {
                let what = match self {
                    InputError::Key(KeyError::Id(_)) => "không phải số CCCD 12 chữ số".into(),
                    InputError::Key(KeyError::Qr(_)) => "không phải mã QR của CCCD".into(),
                    InputError::Key(KeyError::Mrz(_)) => {
                        "dòng MRZ không hợp lệ (sai độ dài hoặc số kiểm tra)".into()
                    }
                    InputError::Key(KeyError::MrzWithoutId) => "MRZ không phải của thẻ CCCD".into(),
                    InputError::TooLong => format!("dòng dài hơn {MAX_LINE} ký tự"),
                    InputError::IncompleteMrz(n) => format!("MRZ chưa đủ: {n}/3 dòng"),
                };
                format!("Không nhận được: {what}. Quét mã QR hoặc nhập số CCCD 12 chữ số.")
            }
        }
    }
}

/// Turns desk lines into keys, gathering the three lines of an MRZ.
#[derive(Default)]
pub struct KeyInput {
    mrz: Vec<String>,
}

impl KeyInput {
    pub fn new() -> Self {
        Self::default()
    }

    /// What `line` completes: nothing (a blank line, or an MRZ line waiting for the next), or
    /// keys and errors in order (an unfinished MRZ is reported before the line that cut it).
    pub fn push(&mut self, line: Line) -> Vec<Result<DeskKey, InputError>> {
        let text = match line {
            Line::TooLong => return self.cut(Err(InputError::TooLong)),
            Line::Text(text) => text,
        };
        let text = text.trim();
        if text.is_empty() {
            return Vec::new();
        }
        if text.len() == MRZ_LINE && is_mrz(text) {
            self.mrz.push(text.to_owned());
            if self.mrz.len() < 3 {
                return Vec::new();
            }
            let lines = std::mem::take(&mut self.mrz).join("\n");
            return vec![DeskKey::from_mrz(&lines).map_err(InputError::from)];
        }
        let key = if text.len() == 3 * MRZ_LINE && is_mrz(text) {
            DeskKey::from_mrz(text)
        } else if text.contains('|') {
            DeskKey::from_qr(text)
        } else {
            DeskKey::from_id(text)
        };
        self.cut(key.map_err(InputError::from))
    }

    /// `next`, after reporting an MRZ left unfinished.
    fn cut(&mut self, next: Result<DeskKey, InputError>) -> Vec<Result<DeskKey, InputError>> {
        let mut out = Vec::new();
        if !self.mrz.is_empty() {
            out.push(Err(InputError::IncompleteMrz(self.mrz.len())));
            self.mrz.clear();
        }
        out.push(next);
        out
    }
}

/// Whether `text` is made of the MRZ's characters only.
fn is_mrz(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'<')
}

#[cfg(test)]
mod tests {
    // The MRZ builder comes with the virtual card (CI builds with every feature).
    #[cfg(feature = "virtual-card")]
    use emrtd::lds::build::{self, Td1Fields};

    use super::*;

    #[cfg(feature = "virtual-card")]
    const QR: &str = "001099012345|123456789|Nguyễn Văn An|15011999|Nam|Hà Nội|10072021";

    async fn lines(input: &[u8]) -> Vec<Line> {
        let mut reader = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_end_with_enter_or_the_input_and_are_bounded() {
        let long = "7".repeat(MAX_LINE + 1);
        let input = format!("001099012345\r\n{long}\nlast");
        let got = lines(input.as_bytes()).await;
        assert_eq!(
            got,
            [
                Line::Text("001099012345\r".into()),
                Line::TooLong,
                Line::Text("last".into())
            ]
        );
        // Exactly the bound is taken.
        let edge = "7".repeat(MAX_LINE);
        assert_eq!(lines(edge.as_bytes()).await, [Line::Text(edge.clone())]);
    }

    #[cfg(feature = "virtual-card")]
    #[test]
    fn an_id_a_qr_text_and_an_mrz_in_one_or_three_lines() {
        let mut input = KeyInput::new();
        let key = |mut out: Vec<Result<DeskKey, InputError>>| {
            assert_eq!(out.len(), 1);
            out.pop().unwrap().unwrap()
        };
        assert!(matches!(
            key(input.push(Line::Text(" 001099012345\r".into()))),
            DeskKey::Id(_)
        ));
        assert!(matches!(
            key(input.push(Line::Text(QR.into()))),
            DeskKey::Qr(_)
        ));
        let mrz = build::td1_mrz(&Td1Fields::cccd_example());
        assert!(matches!(
            key(input.push(Line::Text(mrz.clone()))),
            DeskKey::Mrz { .. }
        ));
        assert!(input.push(Line::Text(mrz[..30].into())).is_empty());
        assert!(input.push(Line::Text(mrz[30..60].into())).is_empty());
        let got = key(input.push(Line::Text(mrz[60..].into())));
        assert_eq!(got.citizen_id().as_str(), "001099012345");
        assert!(input.push(Line::Text("  \r".into())).is_empty());
    }

    #[cfg(feature = "virtual-card")]
    #[test]
    fn bad_lines_are_named_and_an_unfinished_mrz_is_reported() {
        let mut input = KeyInput::new();
        let errors = |out: Vec<Result<DeskKey, InputError>>| -> Vec<&'static str> {
            out.into_iter().map(|r| r.unwrap_err().code()).collect()
        };
        assert_eq!(
            errors(input.push(Line::Text("12345".into()))),
            ["not_an_id"]
        );
        assert_eq!(
            errors(input.push(Line::Text("001|x".into()))),
            ["not_a_qr_code"]
        );
        assert_eq!(errors(input.push(Line::TooLong)), ["too_long"]);
        let mrz = build::td1_mrz(&Td1Fields::cccd_example());
        let misread = mrz.replacen("990115", "990116", 1);
        assert_eq!(errors(input.push(Line::Text(misread))), ["not_an_mrz"]);
        // Two MRZ lines, then a typed ID: the MRZ is reported unfinished, the ID still taken.
        input.push(Line::Text(mrz[..30].into()));
        input.push(Line::Text(mrz[30..60].into()));
        let out = input.push(Line::Text("001099012345".into()));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap_err(), &InputError::IncompleteMrz(2));
        assert!(out[1].is_ok());
        // The messages never repeat the text typed.
        let typed = "079099999999";
        let error = KeyInput::new()
            .push(Line::Text(format!("{typed}|")))
            .pop()
            .unwrap()
            .unwrap_err();
        for lang in [Lang::Vi, Lang::En] {
            assert!(!error.text(lang).contains(typed), "{}", error.text(lang));
        }
    }
}
