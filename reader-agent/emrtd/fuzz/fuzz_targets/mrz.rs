#![no_main]
//! MRZ text from OCR, to BAC key material.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = emrtd::cccd::mrz::key_material(text) {
            let _ = key.bac_key();
        }
    }
});
