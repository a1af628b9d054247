//! The card layer: readers and cards over PC/SC.
//!
//! [`watcher`] owns a PC/SC context on a dedicated thread and reports readers and cards coming
//! and going; [`transport`] carries emrtd's APDUs to one connected card. PC/SC itself is the
//! platform interface (pcsc-lite on Linux, WinSCard on Windows, both behind the `pcsc` crate), so
//! nothing here is specific to one system.

pub mod transport;
pub mod watcher;

pub use transport::{CardLink, ConnectError, ExtendedApduMemory, PcscCard};
pub use watcher::{CardEvent, Watcher, WatcherConfig};
