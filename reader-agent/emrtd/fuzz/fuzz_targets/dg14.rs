#![no_main]
//! DG14 SecurityInfos.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dg14) = emrtd::lds::dg14::parse(data) {
        let _ = dg14.active_authentication();
        let _ = dg14.chip_authentication_keys().count();
    }
});
