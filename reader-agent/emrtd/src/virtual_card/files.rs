//! The virtual card's files: EF.CardAccess in the master file, the LDS files in the eMRTD
//! application. Contents are served exactly as given, so tests can serve truncated or hostile bytes.

use std::collections::BTreeMap;

/// File identifier of EF.CardAccess (master file, short file id 0x1C).
pub const CARD_ACCESS_FID: u16 = 0x011C;

/// The card's file system.
#[derive(Clone, Default)]
pub struct FileSystem {
    card_access: Option<Vec<u8>>,
    application: BTreeMap<u16, Vec<u8>>,
}

impl FileSystem {
    /// No files at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts EF.CardAccess in the master file.
    pub fn with_card_access(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.card_access = Some(bytes.into());
        self
    }

    /// Puts a file with this file identifier in the eMRTD application (011E EF.COM, 011D EF.SOD,
    /// 0101..0110 DG1..DG16).
    pub fn with_file(mut self, fid: u16, bytes: impl Into<Vec<u8>>) -> Self {
        self.application.insert(fid, bytes.into());
        self
    }

    /// Takes the file with this file identifier out of the application (a card lacking a file
    /// its EF.SOD lists).
    pub fn without_file(mut self, fid: u16) -> Self {
        self.application.remove(&fid);
        self
    }

    /// Puts data group `n` (1..=16) in the application.
    pub fn with_data_group(self, n: u8, bytes: impl Into<Vec<u8>>) -> Self {
        self.with_file(0x0100 | u16::from(n), bytes)
    }

    /// The master file's EF by file id (only EF.CardAccess exists there).
    pub(crate) fn master_file(&self, fid: u16) -> Option<&[u8]> {
        (fid == CARD_ACCESS_FID)
            .then_some(self.card_access.as_deref())
            .flatten()
    }

    /// An application EF by file id.
    pub(crate) fn application_file(&self, fid: u16) -> Option<&[u8]> {
        self.application.get(&fid).map(Vec::as_slice)
    }
}

/// Short file id to file id in the LDS (ICAO 9303-10, 3.x): DGn -> 01nn, 1D EF.SOD, 1E EF.COM,
/// 1C EF.CardAccess.
pub(crate) fn fid_of_sfi(sfi: u8) -> Option<u16> {
    match sfi {
        0x01..=0x10 | 0x1C | 0x1D | 0x1E => Some(0x0100 | u16::from(sfi)),
        _ => None,
    }
}
