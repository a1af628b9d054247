//! BER-TLV as the LDS files use it (ISO/IEC 7816-4, ICAO 9303-10): multi-byte tags, definite
//! lengths of up to 4 bytes.
//!
//! Every length on a card is attacker-controlled, so the reader is strict: a value must fit in the
//! bytes actually present, indefinite lengths are refused, and nothing is allocated from a
//! declared length. Values borrow from the input. Non-minimal length encodings (`81 05`) are
//! accepted: BER allows them and they cost nothing to read.
//!
//! The reader itself parses one level at a time; recursive walks take a depth budget
//! ([`MAX_DEPTH`]) so hostile nesting cannot exhaust the stack.

use std::fmt;

/// Deepest nesting any walk over card data follows. The deepest LDS structure (EF.SOD: tag 77,
/// ContentInfo, SignedData, SignerInfo, attribute, value) is well below this.
pub const MAX_DEPTH: usize = 16;

/// Most bytes a tag may take (ISO/IEC 7816-4 uses at most three).
const MAX_TAG_BYTES: usize = 3;
/// Most bytes a length may take after its `8x` byte.
const MAX_LENGTH_BYTES: usize = 4;

/// Why bytes are not well-formed BER-TLV. Carries offsets and lengths only, never data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    #[error("input ends inside a tag or length")]
    Truncated,
    #[error("declared length {declared} exceeds the {available} bytes present")]
    LengthBeyondInput { declared: usize, available: usize },
    #[error("indefinite length (80) is not allowed")]
    IndefiniteLength,
    #[error("length field of more than 4 bytes")]
    LengthTooLong,
    #[error("tag of more than 3 bytes")]
    TagTooLong,
    #[error("invalid tag encoding")]
    InvalidTag,
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("expected tag {expected}, found {found}")]
    UnexpectedTag { expected: Tag, found: Tag },
    #[error("{0} trailing bytes after the TLV")]
    TrailingBytes(usize),
    #[error("tag {0} is primitive, expected a constructed value")]
    NotConstructed(Tag),
    #[error("required tag {0} is missing")]
    Missing(Tag),
}

/// A tag as its encoded bytes read big-endian: `0x61` (DG1), `0x5F1F` (MRZ), `0x7F49`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u32);

impl Tag {
    /// A tag from its encoded bytes read big-endian (not checked: compare with parsed tags).
    pub const fn new(encoded: u32) -> Self {
        Tag(encoded)
    }

    /// The encoded bytes read big-endian.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Whether the value holds nested TLVs (bit 6 of the first byte).
    pub const fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    const fn first_byte(self) -> u8 {
        let mut v = self.0;
        while v > 0xFF {
            v >>= 8;
        }
        v as u8
    }

    /// The encoded bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let bytes = self.0.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
        bytes[skip..].to_vec()
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 0xFF {
            write!(f, "{:04X}", self.0)
        } else {
            write!(f, "{:02X}", self.0)
        }
    }
}

/// One TLV borrowed from the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    tag: Tag,
    value: &'a [u8],
    raw: &'a [u8],
}

impl fmt::Debug for Tlv<'_> {
    /// Tag and length only: values are card data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tlv({}, {} bytes)", self.tag, self.value.len())
    }
}

impl<'a> Tlv<'a> {
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The value bytes.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Tag, length and value exactly as received (what a hash or signature covers).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The nested TLVs of a constructed value.
    pub fn children(&self) -> Result<Iter<'a>, TlvError> {
        if !self.tag.is_constructed() {
            return Err(TlvError::NotConstructed(self.tag));
        }
        Ok(iter(self.value))
    }

    /// The first nested TLV with this tag, if any; malformed children are errors.
    pub fn find(&self, tag: Tag) -> Result<Option<Tlv<'a>>, TlvError> {
        for child in self.children()? {
            let child = child?;
            if child.tag == tag {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// The first nested TLV with this tag; its absence is an error.
    pub fn require(&self, tag: Tag) -> Result<Tlv<'a>, TlvError> {
        self.find(tag)?.ok_or(TlvError::Missing(tag))
    }
}

/// Reads one TLV from the front of `input`; returns it and the bytes after it.
pub fn parse_one(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let (tag, after_tag) = read_tag(input)?;
    let (len, after_len) = read_length(after_tag)?;
    if len > after_len.len() {
        return Err(TlvError::LengthBeyondInput {
            declared: len,
            available: after_len.len(),
        });
    }
    let header_len = input.len() - after_len.len();
    let (raw, rest) = input.split_at(header_len + len);
    let tlv = Tlv {
        tag,
        value: &raw[header_len..],
        raw,
    };
    Ok((tlv, rest))
}

/// Reads exactly one TLV with the expected tag filling all of `input`.
pub fn parse_exact(input: &[u8], expected: Tag) -> Result<Tlv<'_>, TlvError> {
    let (tlv, rest) = parse_one(input)?;
    if tlv.tag != expected {
        return Err(TlvError::UnexpectedTag {
            expected,
            found: tlv.tag,
        });
    }
    if !rest.is_empty() {
        return Err(TlvError::TrailingBytes(rest.len()));
    }
    Ok(tlv)
}

/// The consecutive TLVs in `input`.
pub fn iter(input: &[u8]) -> Iter<'_> {
    Iter { rest: input }
}

/// Iterator over consecutive TLVs. After an error it yields nothing more.
#[derive(Clone)]
pub struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse_one(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Checks that `input` is a sequence of well-formed TLVs, recursively through constructed values,
/// nested at most `max_depth` levels (a top-level TLV is at depth 1).
pub fn check_tree(input: &[u8], max_depth: usize) -> Result<(), TlvError> {
    if max_depth == 0 {
        return if input.is_empty() {
            Ok(())
        } else {
            Err(TlvError::TooDeep)
        };
    }
    for tlv in iter(input) {
        let tlv = tlv?;
        if tlv.tag.is_constructed() {
            check_tree(tlv.value, max_depth - 1)?;
        }
    }
    Ok(())
}

fn read_tag(input: &[u8]) -> Result<(Tag, &[u8]), TlvError> {
    let (&first, mut rest) = input.split_first().ok_or(TlvError::Truncated)?;
    // 00 and FF are padding between objects in ISO 7816, never a tag in the LDS.
    if first == 0x00 || first == 0xFF {
        return Err(TlvError::InvalidTag);
    }
    let mut value = u32::from(first);
    if first & 0x1F != 0x1F {
        return Ok((Tag(value), rest));
    }
    for n in 1..MAX_TAG_BYTES {
        let (&b, after) = rest.split_first().ok_or(TlvError::Truncated)?;
        // A tag number with a leading zero group (first subsequent byte 80) is not BER.
        if n == 1 && b == 0x80 {
            return Err(TlvError::InvalidTag);
        }
        value = value << 8 | u32::from(b);
        rest = after;
        if b & 0x80 == 0 {
            return Ok((Tag(value), rest));
        }
    }
    Err(TlvError::TagTooLong)
}

fn read_length(input: &[u8]) -> Result<(usize, &[u8]), TlvError> {
    let (&first, rest) = input.split_first().ok_or(TlvError::Truncated)?;
    match first {
        0x00..=0x7F => Ok((usize::from(first), rest)),
        0x80 => Err(TlvError::IndefiniteLength),
        _ => {
            let count = usize::from(first & 0x7F);
            if count > MAX_LENGTH_BYTES {
                return Err(TlvError::LengthTooLong);
            }
            if rest.len() < count {
                return Err(TlvError::Truncated);
            }
            let (bytes, rest) = rest.split_at(count);
            let len = bytes.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
            // On a 32-bit target a 4-byte length may not fit usize: then it cannot fit the input.
            let len = usize::try_from(len).map_err(|_| TlvError::LengthBeyondInput {
                declared: usize::MAX,
                available: rest.len(),
            })?;
            Ok((len, rest))
        }
    }
}

/// Encodes one TLV with a minimal definite length. For builders of test data and the virtual
/// card; values longer than 4 GiB are not LDS data.
pub fn encode(tag: Tag, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&tag.to_bytes());
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

/// [`encode`] into a new vector.
pub fn encoded(tag: Tag, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    encode(tag, value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_forms() {
        let (t, rest) = parse_one(&[0x60, 0x02, 0xAA, 0xBB, 0x01]).unwrap();
        assert_eq!(
            (t.tag(), t.value(), rest),
            (Tag::new(0x60), &[0xAA, 0xBB][..], &[1][..])
        );
        assert_eq!(t.raw(), &[0x60, 0x02, 0xAA, 0xBB]);

        let mut long = vec![0x77, 0x82, 0x01, 0x00];
        long.extend([7u8; 256]);
        let t = parse_exact(&long, Tag::new(0x77)).unwrap();
        assert_eq!(t.value().len(), 256);

        // Non-minimal long form is BER and accepted.
        let t = parse_exact(&[0x04, 0x81, 0x01, 0x09], Tag::new(0x04)).unwrap();
        assert_eq!(t.value(), &[9]);
        let t = parse_exact(&[0x04, 0x84, 0, 0, 0, 1, 9], Tag::new(0x04)).unwrap();
        assert_eq!(t.value(), &[9]);
    }

    #[test]
    fn reads_multi_byte_tags() {
        let t = parse_exact(&[0x5F, 0x1F, 0x01, b'I'], Tag::new(0x5F1F)).unwrap();
        assert_eq!(t.value(), b"I");
        assert!(!t.tag().is_constructed());
        let t = parse_exact(&[0x7F, 0x49, 0x00], Tag::new(0x7F49)).unwrap();
        assert!(t.tag().is_constructed());
        let t = parse_exact(&[0x5F, 0x81, 0x01, 0x00], Tag::new(0x5F8101)).unwrap();
        assert_eq!(t.value(), b"");
        assert_eq!(Tag::new(0x5F8101).to_bytes(), [0x5F, 0x81, 0x01]);
        assert_eq!(Tag::new(0x61).to_bytes(), [0x61]);
    }

    #[test]
    fn refuses_hostile_lengths() {
        // Declared 4 GiB with 2 bytes present: an error, and nothing is allocated for it.
        assert_eq!(
            parse_one(&[0x77, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]),
            Err(TlvError::LengthBeyondInput {
                declared: 0xFFFF_FFFF,
                available: 2
            })
        );
        assert_eq!(
            parse_one(&[0x61, 0x05, 1, 2]),
            Err(TlvError::LengthBeyondInput {
                declared: 5,
                available: 2
            })
        );
        assert_eq!(
            parse_one(&[0x61, 0x80, 0, 0]),
            Err(TlvError::IndefiniteLength)
        );
        assert_eq!(
            parse_one(&[0x61, 0x85, 0, 0, 0, 0, 1]),
            Err(TlvError::LengthTooLong)
        );
        assert_eq!(parse_one(&[0x61, 0x82, 0x01]), Err(TlvError::Truncated));
        assert_eq!(parse_one(&[0x61]), Err(TlvError::Truncated));
        assert_eq!(parse_one(&[]), Err(TlvError::Truncated));
    }

    #[test]
    fn refuses_bad_tags() {
        assert_eq!(parse_one(&[0x5F]), Err(TlvError::Truncated));
        assert_eq!(parse_one(&[0x5F, 0x81]), Err(TlvError::Truncated));
        assert_eq!(
            parse_one(&[0x5F, 0x81, 0x81, 0x01, 0]),
            Err(TlvError::TagTooLong)
        );
        assert_eq!(parse_one(&[0x5F, 0x80, 0x01, 0]), Err(TlvError::InvalidTag));
        assert_eq!(parse_one(&[0x00, 0x00]), Err(TlvError::InvalidTag));
        assert_eq!(parse_one(&[0xFF, 0x00]), Err(TlvError::InvalidTag));
    }

    #[test]
    fn exact_checks_tag_and_trailing_bytes() {
        assert_eq!(
            parse_exact(&[0x61, 0x00], Tag::new(0x60)),
            Err(TlvError::UnexpectedTag {
                expected: Tag::new(0x60),
                found: Tag::new(0x61)
            })
        );
        assert_eq!(
            parse_exact(&[0x61, 0x00, 0x00], Tag::new(0x61)),
            Err(TlvError::TrailingBytes(1))
        );
    }

    #[test]
    fn children_and_find() {
        let data = [0x60, 0x08, 0x5F, 0x01, 0x01, b'1', 0x5C, 0x02, 0x61, 0x6D];
        let t = parse_exact(&data, Tag::new(0x60)).unwrap();
        assert_eq!(t.children().unwrap().count(), 2);
        assert_eq!(t.require(Tag::new(0x5C)).unwrap().value(), &[0x61, 0x6D]);
        assert_eq!(t.find(Tag::new(0x5F36)).unwrap(), None);
        assert_eq!(
            t.require(Tag::new(0x5F36)),
            Err(TlvError::Missing(Tag::new(0x5F36)))
        );
        let leaf = t.require(Tag::new(0x5F01)).unwrap();
        assert!(matches!(leaf.children(), Err(TlvError::NotConstructed(_))));
        // A child running past its parent's end is an error, not a read beyond the parent.
        let bad = [0x60, 0x03, 0x5C, 0x05, 0x61, 0x6D, 0x6E];
        let (t, _) = parse_one(&bad).unwrap();
        assert!(matches!(
            t.require(Tag::new(0x5C)),
            Err(TlvError::LengthBeyondInput { .. })
        ));
    }

    #[test]
    fn iterator_stops_after_error() {
        let items: Vec<_> = iter(&[0x04, 0x00, 0x04, 0x05, 0x01, 0x04, 0x00]).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[test]
    fn tree_depth_is_bounded() {
        // 200 nested constructed TLVs: refused at MAX_DEPTH, without recursing 200 deep.
        let mut data = Vec::new();
        for _ in 0..200 {
            data = encoded(Tag::new(0x30), &data);
        }
        assert_eq!(check_tree(&data, MAX_DEPTH), Err(TlvError::TooDeep));
        assert_eq!(check_tree(&data, 200), Ok(()));
        assert_eq!(check_tree(&data, 199), Err(TlvError::TooDeep));
        // A malformed leaf deep inside is found.
        let mut bad = vec![0x04, 0x03, 0x00];
        for _ in 0..3 {
            bad = encoded(Tag::new(0x30), &bad);
        }
        assert!(matches!(
            check_tree(&bad, MAX_DEPTH),
            Err(TlvError::LengthBeyondInput { .. })
        ));
    }

    #[test]
    fn encoder_round_trips() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536] {
            let value = vec![0xA5; len];
            let bytes = encoded(Tag::new(0x5F1F), &value);
            let t = parse_exact(&bytes, Tag::new(0x5F1F)).unwrap();
            assert_eq!(t.value(), &value[..]);
            assert_eq!(t.raw(), &bytes[..]);
        }
    }

    #[test]
    fn debug_shows_no_value() {
        let (t, _) = parse_one(&[0x5F, 0x1F, 0x03, b'A', b'B', b'C']).unwrap();
        assert_eq!(format!("{t:?}"), "Tlv(5F1F, 3 bytes)");
    }
}
