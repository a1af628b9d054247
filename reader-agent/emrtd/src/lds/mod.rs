//! The Logical Data Structure (ICAO 9303-10): the files an eMRTD application holds, parsed from
//! the bytes as read. Every parser takes untrusted bytes and returns a typed error on anything
//! malformed; none panics or allocates from a declared length.

#[cfg(any(test, feature = "virtual-card"))]
pub mod build;
pub mod com;
pub mod dg1;
pub mod dg14;
pub mod dg15;
pub mod dg2;
pub mod sod;

/// Tag of EF.COM.
pub const COM_TAG: u8 = 0x60;
/// Tag of EF.SOD.
pub const SOD_TAG: u8 = 0x77;

/// Tags of DG1..DG16 (ICAO 9303-10, table 34), index = data group number - 1.
const DATA_GROUP_TAGS: [u8; 16] = [
    0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70,
];

/// The tag a data group's file starts with.
pub fn data_group_tag(number: u8) -> Option<u8> {
    DATA_GROUP_TAGS
        .get(usize::from(number).checked_sub(1)?)
        .copied()
}

/// The data group a tag (as listed in EF.COM) stands for.
pub fn data_group_of_tag(tag: u8) -> Option<u8> {
    DATA_GROUP_TAGS
        .iter()
        .position(|&t| t == tag)
        .map(|i| i as u8 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_group_tags() {
        assert_eq!(data_group_tag(1), Some(0x61));
        assert_eq!(data_group_tag(13), Some(0x6D));
        assert_eq!(data_group_tag(16), Some(0x70));
        assert_eq!(data_group_tag(0), None);
        assert_eq!(data_group_tag(17), None);
        assert_eq!(data_group_of_tag(0x75), Some(2));
        assert_eq!(data_group_of_tag(0x77), None);
        for n in 1..=16 {
            assert_eq!(data_group_tag(n).and_then(data_group_of_tag), Some(n));
        }
    }
}
