//! DG2 (tag 75): the holder's face (ICAO 9303-10, 4.7.2), as the desk displays it.
//!
//! Nesting: DG2 → biometric information group template (7F61, instance count in 02) → the first
//! biometric information template (7F60) → its biometric data block (5F2E, or 7F2E where the
//! issuer marks it enciphered) → an ISO/IEC 19794-5 facial record. Two editions of that record
//! are met on cards:
//!
//! - **2005** (version `010`): a 14-byte general header (format `FAC\0`, version, record length,
//!   image count), then per image a 20-byte facial information block starting with the block's
//!   own length and the feature point count, 8 bytes per feature point, 12 bytes of image
//!   information, and the image;
//! - **2011** (version `030`): a 17-byte general header, then per representation its length, a
//!   capture time and device (14 bytes), quality blocks (a count and 5 bytes each), 17 bytes of
//!   facial information starting with the landmark count, 8 bytes per landmark, 11 bytes of image
//!   information, and the image.
//!
//! Only the first image is taken; every header is skipped by the lengths and counts it states,
//! each checked against the bytes actually present, so a lying length is an error and never a
//! read beyond the record. What the image is comes from its own first bytes (JPEG `FF D8`, a
//! JPEG 2000 file's signature box, or a bare JPEG 2000 codestream `FF 4F FF 51`): the record's
//! image-type code differs between editions, and a viewer needs what the bytes are.

use std::fmt;

use crate::tlv::{self, Tag, TlvError};

/// Tag of DG2.
pub const DG2_TAG: Tag = Tag::new(0x75);
/// Biometric information group template.
pub const GROUP_TAG: Tag = Tag::new(0x7F61);
/// Number of instances inside the group template.
pub const COUNT_TAG: Tag = Tag::new(0x02);
/// Biometric information template (one per instance).
pub const TEMPLATE_TAG: Tag = Tag::new(0x7F60);
/// Biometric header template inside each instance.
pub const HEADER_TAG: Tag = Tag::new(0xA1);
/// Biometric data block.
pub const DATA_BLOCK_TAG: Tag = Tag::new(0x5F2E);
/// Biometric data block, marked enciphered.
pub const DATA_BLOCK_ENCIPHERED_TAG: Tag = Tag::new(0x7F2E);

/// The facial record's format identifier.
pub const FORMAT_ID: [u8; 4] = *b"FAC\0";

/// Size of the 2005 edition's general header and fixed per-image parts.
const V2005_HEADER: usize = 14;
const V2005_FACIAL_INFORMATION: usize = 20;
const V2005_IMAGE_INFORMATION: usize = 12;
/// Size of the 2011 edition's general header and fixed per-representation parts.
const V2011_HEADER: usize = 17;
/// Representation length (4), capture date and time (9), device technology, vendor and type (5).
const V2011_REPRESENTATION_START: usize = 18;
const V2011_QUALITY_BLOCK: usize = 5;
const V2011_FACIAL_INFORMATION: usize = 17;
const V2011_IMAGE_INFORMATION: usize = 11;
/// A feature point (2005) or landmark point (2011).
const POINT: usize = 8;

/// Why DG2 holds no displayable face. Names structure and lengths, never content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dg2Error {
    #[error("DG2 structure: {0}")]
    Tlv(#[from] TlvError),
    #[error("DG2 declares {0} biometric instances")]
    NoInstance(u64),
    #[error("the biometric data block is not an ISO/IEC 19794-5 facial record")]
    NotFacialRecord,
    #[error("facial record version {0:?} is not 010 (2005) or 030 (2011)")]
    UnsupportedVersion([u8; 4]),
    #[error("the facial record holds no image")]
    NoImage,
    #[error("the facial record's {field} declares {declared} bytes where {available} are present")]
    Length {
        field: &'static str,
        declared: usize,
        available: usize,
    },
    #[error("the facial record's image is empty")]
    EmptyImage,
    #[error("the image is neither JPEG nor JPEG 2000")]
    UnknownImageFormat,
}

/// The edition of the facial record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaceRecordVersion {
    /// ISO/IEC 19794-5:2005, version `010`.
    V2005,
    /// ISO/IEC 19794-5:2011, version `030`.
    V2011,
}

impl FaceRecordVersion {
    /// The version field's four bytes.
    pub const fn bytes(self) -> [u8; 4] {
        match self {
            FaceRecordVersion::V2005 => *b"010\0",
            FaceRecordVersion::V2011 => *b"030\0",
        }
    }
}

/// What the image bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (ISO/IEC 10918), starting `FF D8`.
    Jpeg,
    /// A JPEG 2000 file (JP2), starting with its signature box `00 00 00 0C 6A 50 20 20`.
    Jpeg2000,
    /// A bare JPEG 2000 codestream, starting `FF 4F FF 51` (SOC, SIZ).
    Jpeg2000Codestream,
}

impl ImageFormat {
    /// Recognises an image by its first bytes.
    pub fn sniff(image: &[u8]) -> Option<Self> {
        if image.starts_with(&[0xFF, 0xD8]) {
            Some(ImageFormat::Jpeg)
        } else if image.starts_with(&[0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]) {
            Some(ImageFormat::Jpeg2000)
        } else if image.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
            Some(ImageFormat::Jpeg2000Codestream)
        } else {
            None
        }
    }

    /// The media type a viewer is given (RFC 3745 for JP2; `image/j2c` is IANA's codestream).
    pub const fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Jpeg2000 => "image/jp2",
            ImageFormat::Jpeg2000Codestream => "image/j2c",
        }
    }
}

/// The first face in DG2. The image is biometric data: `Debug` shows its size, never its bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Face<'a> {
    /// Biometric instances DG2 declares (only the first is taken).
    pub instances: u64,
    pub version: FaceRecordVersion,
    pub format: ImageFormat,
    /// Width and height in pixels as the record states them (0: unstated).
    pub width: u16,
    pub height: u16,
    /// The encoded image, borrowed from DG2 as read.
    pub image: &'a [u8],
}

impl fmt::Debug for Face<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Face")
            .field("instances", &self.instances)
            .field("version", &self.version)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("image_len", &self.image.len())
            .finish()
    }
}

/// Parses DG2 down to the first face's image.
pub fn parse(bytes: &[u8]) -> Result<Face<'_>, Dg2Error> {
    let dg2 = tlv::parse_exact(bytes, DG2_TAG)?;
    let group = dg2.require(GROUP_TAG)?;
    let count = group.require(COUNT_TAG)?.value();
    // A count longer than 8 bytes cannot be meant; any non-zero count will do, the first is read.
    let instances = match count {
        [] => 0,
        bytes if bytes.len() > 8 => u64::MAX,
        bytes => bytes.iter().fold(0u64, |n, &b| n << 8 | u64::from(b)),
    };
    if instances == 0 {
        return Err(Dg2Error::NoInstance(instances));
    }
    let template = group.require(TEMPLATE_TAG)?;
    let block = match template.find(DATA_BLOCK_TAG)? {
        Some(block) => block,
        None => template.require(DATA_BLOCK_ENCIPHERED_TAG)?,
    };
    let (version, width, height, image) = facial_record(block.value())?;
    if image.is_empty() {
        return Err(Dg2Error::EmptyImage);
    }
    let format = ImageFormat::sniff(image).ok_or(Dg2Error::UnknownImageFormat)?;
    Ok(Face {
        instances,
        version,
        format,
        width,
        height,
        image,
    })
}

/// The first image of a facial record: (version, width, height, image bytes).
fn facial_record(record: &[u8]) -> Result<(FaceRecordVersion, u16, u16, &[u8]), Dg2Error> {
    let mut header = Cursor::new(record);
    if header.take(4, "format identifier")? != FORMAT_ID {
        return Err(Dg2Error::NotFacialRecord);
    }
    let version = header.take(4, "version")?;
    let version = if version == FaceRecordVersion::V2005.bytes() {
        FaceRecordVersion::V2005
    } else if version == FaceRecordVersion::V2011.bytes() {
        FaceRecordVersion::V2011
    } else {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(version);
        return Err(Dg2Error::UnsupportedVersion(bytes));
    };
    // The record's own length bounds everything after it; bytes beyond it are ignored.
    let record_len = header.u32("record length")?;
    let record = bounded(record, record_len, "record length")?;
    let mut cursor = Cursor::new(record);
    match version {
        FaceRecordVersion::V2005 => {
            cursor.take(V2005_HEADER - 2, "general header")?;
            if cursor.u16("image count")? == 0 {
                return Err(Dg2Error::NoImage);
            }
            let start = cursor.position;
            let block_len = cursor.u32("facial record data length")?;
            let block = bounded(&record[start..], block_len, "facial record data length")?;
            let mut block = Cursor::new(block);
            block.take(4, "facial record data length")?;
            let points = block.u16("feature point count")?;
            block.take(V2005_FACIAL_INFORMATION - 6, "facial information")?;
            block.take(usize::from(points) * POINT, "feature points")?;
            let (width, height) = image_information(&mut block, V2005_IMAGE_INFORMATION)?;
            Ok((version, width, height, block.rest()))
        }
        FaceRecordVersion::V2011 => {
            cursor.take(V2011_HEADER - 2 - 3, "general header")?;
            if cursor.u16("representation count")? == 0 {
                return Err(Dg2Error::NoImage);
            }
            cursor.take(3, "general header")?;
            let start = cursor.position;
            let representation_len = cursor.u32("representation length")?;
            let representation = bounded(
                &record[start..],
                representation_len,
                "representation length",
            )?;
            let mut rep = Cursor::new(representation);
            rep.take(V2011_REPRESENTATION_START, "representation header")?;
            let quality_blocks = rep.u8("quality block count")?;
            rep.take(
                usize::from(quality_blocks) * V2011_QUALITY_BLOCK,
                "quality blocks",
            )?;
            let landmarks = rep.u16("landmark point count")?;
            rep.take(V2011_FACIAL_INFORMATION - 2, "facial information")?;
            rep.take(usize::from(landmarks) * POINT, "landmark points")?;
            let (width, height) = image_information(&mut rep, V2011_IMAGE_INFORMATION)?;
            Ok((version, width, height, rep.rest()))
        }
    }
}

/// Image information: face image type, image data type, width, height, then edition-specific
/// fields; `len` bytes in all.
fn image_information(cursor: &mut Cursor<'_>, len: usize) -> Result<(u16, u16), Dg2Error> {
    let info = cursor.take(len, "image information")?;
    let width = u16::from_be_bytes([info[2], info[3]]);
    let height = u16::from_be_bytes([info[4], info[5]]);
    Ok((width, height))
}

/// The first `declared` bytes of `bytes` (a length field counting from its own first byte).
fn bounded<'a>(bytes: &'a [u8], declared: u32, field: &'static str) -> Result<&'a [u8], Dg2Error> {
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    bytes.get(..declared).ok_or(Dg2Error::Length {
        field,
        declared,
        available: bytes.len(),
    })
}

/// Reads fixed-size fields off the front of a slice, never beyond it.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Dg2Error> {
        let rest = &self.bytes[self.position..];
        let taken = rest.get(..n).ok_or(Dg2Error::Length {
            field,
            declared: n,
            available: rest.len(),
        })?;
        self.position += n;
        Ok(taken)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, Dg2Error> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, Dg2Error> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Dg2Error> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.position..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::build::{self, FaceRecord};

    fn jpeg(len: usize) -> Vec<u8> {
        build::synthetic_jpeg(len, 7)
    }

    #[test]
    fn both_editions_yield_exactly_the_image() {
        let image = jpeg(15_000);
        for version in [FaceRecordVersion::V2005, FaceRecordVersion::V2011] {
            for points in [0u16, 3] {
                let record = FaceRecord {
                    points,
                    quality_blocks: 2,
                    ..FaceRecord::new(version, &image)
                };
                let dg2 = build::dg2(&record);
                let face = parse(&dg2).unwrap();
                assert_eq!(face.image, &image[..], "{version:?}, {points} points");
                assert_eq!(face.version, version);
                assert_eq!(face.format, ImageFormat::Jpeg);
                assert_eq!((face.width, face.height), (record.width, record.height));
                assert_eq!(face.instances, 1);
            }
        }
    }

    #[test]
    fn image_formats_are_recognised_by_their_bytes() {
        let jp2 = [
            0u8, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A, 1, 2,
        ];
        let j2c = [0xFFu8, 0x4F, 0xFF, 0x51, 0, 0x29, 9, 9];
        for (bytes, format, media) in [
            (&jp2[..], ImageFormat::Jpeg2000, "image/jp2"),
            (&j2c[..], ImageFormat::Jpeg2000Codestream, "image/j2c"),
        ] {
            let dg2 = build::dg2(&FaceRecord::new(FaceRecordVersion::V2005, bytes));
            let face = parse(&dg2).unwrap();
            assert_eq!((face.format, face.format.media_type()), (format, media));
            assert_eq!(face.image, bytes);
        }
        assert_eq!(ImageFormat::Jpeg.media_type(), "image/jpeg");
        let png = b"\x89PNG\r\n\x1a\n....";
        assert_eq!(
            parse(&build::dg2(&FaceRecord::new(FaceRecordVersion::V2011, png))),
            Err(Dg2Error::UnknownImageFormat)
        );
        assert_eq!(
            parse(&build::dg2(&FaceRecord::new(FaceRecordVersion::V2011, &[]))),
            Err(Dg2Error::EmptyImage)
        );
    }

    #[test]
    fn the_enciphered_block_tag_is_read_too() {
        let image = jpeg(300);
        let record = build::facial_record(&FaceRecord::new(FaceRecordVersion::V2005, &image));
        let dg2 = build::dg2_around(DATA_BLOCK_ENCIPHERED_TAG, &record);
        assert_eq!(parse(&dg2).unwrap().image, &image[..]);
    }

    #[test]
    fn truncated_dg2_is_an_error_at_every_length() {
        let image = jpeg(600);
        for version in [FaceRecordVersion::V2005, FaceRecordVersion::V2011] {
            let dg2 = build::dg2(&FaceRecord {
                points: 2,
                quality_blocks: 1,
                ..FaceRecord::new(version, &image)
            });
            for cut in 0..dg2.len() {
                assert!(parse(&dg2[..cut]).is_err(), "{version:?} cut at {cut}");
            }
        }
    }

    /// Rewrites the facial record inside a DG2, keeping the TLV lengths consistent, so the
    /// record's own fields are what is tested.
    fn with_record(record: Vec<u8>) -> Vec<u8> {
        build::dg2_around(DATA_BLOCK_TAG, &record)
    }

    fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn lying_lengths_and_counts_are_errors_never_reads_beyond() {
        let image = jpeg(400);
        let v2005 = build::facial_record(&FaceRecord::new(FaceRecordVersion::V2005, &image));
        let v2011 = build::facial_record(&FaceRecord::new(FaceRecordVersion::V2011, &image));

        // The record's length: larger than the record, and 4 GiB.
        for record in [&v2005, &v2011] {
            for lie in [record.len() as u32 + 1, u32::MAX] {
                let mut bad = record.clone();
                put_u32(&mut bad, 8, lie);
                assert!(
                    matches!(
                        parse(&with_record(bad)),
                        Err(Dg2Error::Length {
                            field: "record length",
                            ..
                        })
                    ),
                    "record length {lie}"
                );
            }
        }
        // The record's length shorter than its header.
        let mut bad = v2005.clone();
        put_u32(&mut bad, 8, 13);
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length { .. })
        ));

        // 2005: the facial block's length beyond the record.
        let mut bad = v2005.clone();
        put_u32(&mut bad, V2005_HEADER, u32::MAX);
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length {
                field: "facial record data length",
                ..
            })
        ));
        // 2005: feature points claimed beyond the block.
        let mut bad = v2005.clone();
        bad[V2005_HEADER + 4..V2005_HEADER + 6].copy_from_slice(&[0xFF, 0xFF]);
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length {
                field: "feature points",
                ..
            })
        ));
        // 2011: the representation's length beyond the record.
        let mut bad = v2011.clone();
        put_u32(&mut bad, V2011_HEADER, u32::MAX);
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length {
                field: "representation length",
                ..
            })
        ));
        // 2011: quality blocks and landmarks claimed beyond the representation.
        let quality_at = V2011_HEADER + V2011_REPRESENTATION_START;
        let mut bad = v2011.clone();
        bad[quality_at] = 0xFF;
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length {
                field: "quality blocks",
                ..
            })
        ));
        let landmarks_at = quality_at + 1;
        let mut bad = v2011.clone();
        bad[landmarks_at..landmarks_at + 2].copy_from_slice(&[0xFF, 0xFF]);
        assert!(matches!(
            parse(&with_record(bad)),
            Err(Dg2Error::Length {
                field: "landmark points",
                ..
            })
        ));

        // A smaller, consistent length cuts the image where it says, and what is left must
        // still be an image.
        let mut shorter = v2005.clone();
        let cut = shorter.len() as u32 - 100;
        put_u32(&mut shorter, 8, cut);
        put_u32(&mut shorter, V2005_HEADER, cut - V2005_HEADER as u32);
        let face_bytes = with_record(shorter);
        let face = parse(&face_bytes).unwrap();
        assert_eq!(face.image, &image[..image.len() - 100]);
    }

    #[test]
    fn wrong_wrappers_are_named() {
        let image = jpeg(100);
        let record = build::facial_record(&FaceRecord::new(FaceRecordVersion::V2005, &image));
        // Not DG2.
        assert!(matches!(
            parse(&tlv::encoded(Tag::new(0x61), &[])),
            Err(Dg2Error::Tlv(TlvError::UnexpectedTag { .. }))
        ));
        // No group template, no count, zero instances, no instance template, no data block.
        assert_eq!(
            parse(&tlv::encoded(DG2_TAG, &[])),
            Err(Dg2Error::Tlv(TlvError::Missing(GROUP_TAG)))
        );
        let group = |inner: &[u8]| tlv::encoded(DG2_TAG, &tlv::encoded(GROUP_TAG, inner));
        assert_eq!(
            parse(&group(&[])),
            Err(Dg2Error::Tlv(TlvError::Missing(COUNT_TAG)))
        );
        assert_eq!(
            parse(&group(&tlv::encoded(COUNT_TAG, &[0]))),
            Err(Dg2Error::NoInstance(0))
        );
        assert_eq!(
            parse(&group(&tlv::encoded(COUNT_TAG, &[1]))),
            Err(Dg2Error::Tlv(TlvError::Missing(TEMPLATE_TAG)))
        );
        let mut no_block = tlv::encoded(COUNT_TAG, &[1]);
        no_block.extend(tlv::encoded(TEMPLATE_TAG, &tlv::encoded(HEADER_TAG, &[])));
        assert_eq!(
            parse(&group(&no_block)),
            Err(Dg2Error::Tlv(TlvError::Missing(DATA_BLOCK_ENCIPHERED_TAG)))
        );
        // Not a facial record, or an edition this parser does not know.
        let mut other = record.clone();
        other[..4].copy_from_slice(b"FIR\0");
        assert_eq!(parse(&with_record(other)), Err(Dg2Error::NotFacialRecord));
        let mut other = record.clone();
        other[4..8].copy_from_slice(b"020\0");
        assert_eq!(
            parse(&with_record(other)),
            Err(Dg2Error::UnsupportedVersion(*b"020\0"))
        );
        // No image in the record.
        let mut none = record.clone();
        none[12..14].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&with_record(none)), Err(Dg2Error::NoImage));
    }

    #[test]
    fn debug_shows_no_image_bytes() {
        let image = jpeg(64);
        let dg2 = build::dg2(&FaceRecord::new(FaceRecordVersion::V2005, &image));
        let text = format!("{:?}", parse(&dg2).unwrap());
        assert!(text.contains("image_len: 64"), "{text}");
        assert!(!text.contains("255"), "{text}");
    }
}
