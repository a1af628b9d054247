//! reader-agent: the program at the reception desk. This library holds its parts; `main.rs` is the
//! program.

pub mod backend;
pub mod card;
#[cfg(feature = "demo")]
pub mod demo;
pub mod desk;
pub mod events;
pub mod face;
pub mod his;
pub mod input;
#[cfg(all(feature = "private-pcscd", unix))]
pub mod pcscd;
pub mod read;
pub mod secret_file;
#[cfg(windows)]
pub mod service;
pub mod spool;
pub mod station;
pub mod vpcd;
