#![no_main]
//! The Vietnamese DG13.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = emrtd::cccd::dg13::parse(data).map(|d| (d.sex(), d.date_of_birth.map(|b| b.year())));
});
