//! Card authenticity for the CCCD chip, usable by the reader agent and the backend alike.
//!
//! Passive authentication needs trusted CSCA certificates; production readers get them from ICAO
//! CSCA master lists. [`trust`] loads those (and plain certificate files), keeping every
//! certificate's bytes as received so later signature checks run over the original TBS bytes.
#![forbid(unsafe_code)]

pub mod chain;
pub mod crl;
pub mod curves;
pub mod masterlist;
pub mod passive;
pub mod signed;
pub mod trust;
pub mod verify;
