//! Card authenticity for the CCCD chip, usable by the reader agent and the backend alike.
//!
//! Passive authentication needs trusted CSCA certificates; production readers get them from ICAO
//! CSCA master lists. [`trust`] loads those (and plain certificate files and CRLs), keeping every
//! certificate's bytes as received so later signature checks run over the original TBS bytes;
//! [`masterlist`] also checks a list's own signature. [`verify`] checks signatures on the curves
//! and RSA schemes of real trust data (brainpoolP512r1 from [`curves`]), [`signed`] CMS
//! SignerInfos, [`chain`] one certificate link, [`crl`] revocation, and [`passive`] runs passive
//! authentication of the data groups read against EF.SOD and reports every link; [`active`]
//! verifies a chip's Active Authentication signature (clone detection).
#![forbid(unsafe_code)]

pub mod active;
pub mod chain;
pub mod crl;
pub mod curves;
pub mod masterlist;
pub mod passive;
pub mod signed;
#[cfg(feature = "test-pki")]
pub mod test_pki;
pub mod trust;
pub mod verify;
