//! The chip of Vietnam's citizen ID card (CCCD) as an ICAO 9303 eMRTD, and the key material the
//! reception desk holds for it.
//!
//! Pure protocol and parsing: this crate does no I/O. The card is reached through a transport trait
//! the caller implements (PC/SC in the agent, an in-process virtual card in tests).

#![forbid(unsafe_code)]

pub mod aa;
pub mod apdu;
pub mod bac;
pub mod ca;
pub mod cccd;
pub mod crypto;
pub mod lds;
pub mod pace;
pub mod reader;
pub mod sm;
pub mod stats;
pub mod tlv;
pub mod transport;
#[cfg(any(test, feature = "virtual-card"))]
pub mod virtual_card;
