//! What is specific to Vietnam's card: the 12-digit ID number, the QR code, DG13.

pub mod date;
pub mod dg13;
pub mod expiry;
pub mod id_number;
pub mod mrz;
pub mod qr;
