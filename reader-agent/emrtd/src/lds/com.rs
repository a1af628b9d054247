//! EF.COM (tag 60): the LDS and Unicode versions and the list of data groups present.
//!
//! The list tells the reader which files to ask for; it is not covered by EF.SOD, so it is a
//! hint, never proof that a data group exists or is absent.

use crate::lds::data_group_of_tag;
use crate::tlv::{self, Tag, TlvError};

pub const COM_TAG: Tag = Tag::new(0x60);
pub const LDS_VERSION_TAG: Tag = Tag::new(0x5F01);
pub const UNICODE_VERSION_TAG: Tag = Tag::new(0x5F36);
pub const TAG_LIST_TAG: Tag = Tag::new(0x5C);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComError {
    #[error("EF.COM structure: {0}")]
    Tlv(#[from] TlvError),
    #[error("LDS version is not 4 digits")]
    LdsVersion,
    #[error("Unicode version is not 6 digits")]
    UnicodeVersion,
}

/// EF.COM's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Com {
    /// Major and minor LDS version (`0107` is 1.7).
    pub lds_version: (u8, u8),
    /// Major, minor and release of the Unicode version (`040000` is 4.0.0).
    pub unicode_version: (u8, u8, u8),
    /// The tags listed, as listed (unknown ones kept).
    pub tags: Vec<u8>,
}

impl Com {
    /// Data group numbers of the listed tags that name one, in list order.
    pub fn data_groups(&self) -> Vec<u8> {
        self.tags
            .iter()
            .filter_map(|&t| data_group_of_tag(t))
            .collect()
    }
}

/// Parses EF.COM.
pub fn parse(bytes: &[u8]) -> Result<Com, ComError> {
    let com = tlv::parse_exact(bytes, COM_TAG)?;
    let lds = digits::<2>(com.require(LDS_VERSION_TAG)?.value()).ok_or(ComError::LdsVersion)?;
    let unicode =
        digits::<3>(com.require(UNICODE_VERSION_TAG)?.value()).ok_or(ComError::UnicodeVersion)?;
    let tags = com.require(TAG_LIST_TAG)?.value().to_vec();
    // Any other content must still be well-formed.
    for child in com.children()? {
        child?;
    }
    Ok(Com {
        lds_version: (lds[0], lds[1]),
        unicode_version: (unicode[0], unicode[1], unicode[2]),
        tags,
    })
}

/// `N` two-digit decimal numbers from exactly `2 N` ASCII digits.
fn digits<const N: usize>(value: &[u8]) -> Option<[u8; N]> {
    if value.len() != 2 * N || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in value.chunks_exact(2).enumerate() {
        out[i] = (pair[0] - b'0') * 10 + (pair[1] - b'0');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::build;

    #[test]
    fn parses_built_com() {
        let bytes = build::com(&[1, 2, 13, 14, 15]);
        // Independent check of the encoding the builder produced (ICAO 9303-10 layout).
        assert_eq!(
            bytes,
            [
                0x60, 0x17, 0x5F, 0x01, 0x04, b'0', b'1', b'0', b'7', 0x5F, 0x36, 0x06, b'0', b'4',
                b'0', b'0', b'0', b'0', 0x5C, 0x05, 0x61, 0x75, 0x6D, 0x6E, 0x6F
            ]
        );
        let com = parse(&bytes).unwrap();
        assert_eq!(com.lds_version, (1, 7));
        assert_eq!(com.unicode_version, (4, 0, 0));
        assert_eq!(com.data_groups(), [1, 2, 13, 14, 15]);
    }

    #[test]
    fn keeps_unknown_tags() {
        let mut value = Vec::new();
        tlv::encode(LDS_VERSION_TAG, b"0108", &mut value);
        tlv::encode(UNICODE_VERSION_TAG, b"040000", &mut value);
        tlv::encode(TAG_LIST_TAG, &[0x61, 0x99], &mut value);
        let com = parse(&tlv::encoded(COM_TAG, &value)).unwrap();
        assert_eq!(com.tags, [0x61, 0x99]);
        assert_eq!(com.data_groups(), [1]);
    }

    #[test]
    fn refuses_malformed() {
        let good = build::com(&[1]);
        assert!(matches!(
            parse(&good[..good.len() - 1]),
            Err(ComError::Tlv(_))
        ));
        let mut wrong = good.clone();
        wrong[0] = 0x61;
        assert!(matches!(
            parse(&wrong),
            Err(ComError::Tlv(TlvError::UnexpectedTag { .. }))
        ));
        let mut letters = good.clone();
        letters[5] = b'A';
        assert_eq!(parse(&letters), Err(ComError::LdsVersion));
        let mut value = Vec::new();
        tlv::encode(LDS_VERSION_TAG, b"0107", &mut value);
        tlv::encode(TAG_LIST_TAG, &[0x61], &mut value);
        assert_eq!(
            parse(&tlv::encoded(COM_TAG, &value)),
            Err(ComError::Tlv(TlvError::Missing(UNICODE_VERSION_TAG)))
        );
        tlv::encode(UNICODE_VERSION_TAG, b"04000", &mut value);
        assert_eq!(
            parse(&tlv::encoded(COM_TAG, &value)),
            Err(ComError::UnicodeVersion)
        );
        // A broken TLV after the required ones is still an error.
        let mut value = good[2..].to_vec();
        value.extend([0x53, 0x05, 0x00]);
        assert!(matches!(
            parse(&tlv::encoded(COM_TAG, &value)),
            Err(ComError::Tlv(TlvError::LengthBeyondInput { .. }))
        ));
    }
}
