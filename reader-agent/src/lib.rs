//! reader-agent: the program at the reception desk. This library holds its parts; `main.rs` is the
//! program.

pub mod backend;
pub mod card;
pub mod desk;
pub mod read;
pub mod vpcd;
