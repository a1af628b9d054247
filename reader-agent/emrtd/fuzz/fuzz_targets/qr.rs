#![no_main]
//! The QR string as a scanner types it (bytes that are not UTF-8 never reach the parser).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = emrtd::cccd::qr::parse(text);
    }
});
