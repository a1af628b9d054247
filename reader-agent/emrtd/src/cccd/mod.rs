//! What is specific to Vietnam's card: the 12-digit ID number, the QR code, DG13.

pub mod id_number;
