#![no_main]
//! EF.SOD (CMS SignedData).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sod) = emrtd::lds::sod::parse(data) {
        let _ = sod
            .signer()
            .and_then(|s| s.signed_attributes)
            .map(|a| a.signed_bytes());
    }
});
