//! `reader-agent demo`: the desk's whole flow on virtual CCCDs through the real PC/SC path. A
//! private pcscd with the vpcd reader, a backend started in this process (private PKI, synthetic
//! registry, the test CSCA trusted), then: the desk waits, a genuine card is put on the reader,
//! read with PACE, proven (passive and Active Authentication over the backend's challenge),
//! checked and printed, with the time of each phase and the APDU counts against the protocol's
//! minimum; then a clone and a card with altered data, to show the refusals.
//!
//! Needs Debian's `pcscd` and `vsmartcard-vpcd`; says so when they are missing.

pub mod backend;
pub mod cards;
#[cfg(unix)]
mod flow;

use std::time::{Duration, Instant};

#[cfg(unix)]
pub use flow::{DemoError, DemoOptions, DemoSummary, FaceCost, Measured, run};

/// Waits until pcscd reports no card on `reader` (it polls vpcd about every 400 ms, so a card
/// just taken off can still be listed as present, and the next check would find it); `false`
/// after `wait`.
pub fn wait_until_empty(reader: &str, wait: Duration) -> bool {
    let Ok(name) = std::ffi::CString::new(reader) else {
        return false;
    };
    let Ok(context) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let mut states = [pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE)];
        if context
            .get_status_change(Duration::from_millis(500), &mut states)
            .is_ok()
            && !states[0].event_state().contains(pcsc::State::PRESENT)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
