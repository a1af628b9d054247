#![no_main]
//! EF.COM.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = emrtd::lds::com::parse(data);
});
