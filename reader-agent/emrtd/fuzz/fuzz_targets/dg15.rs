#![no_main]
//! DG15, alone and with a DG14 (the input split at its first byte's value) for the algorithm.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (dg15, dg14) = data.split_at(split);
    for bytes in [data, dg15] {
        if let Ok(key) = emrtd::lds::dg15::parse(bytes) {
            let _ = key.key.named_curve();
            let dg14 = emrtd::lds::dg14::parse(dg14).ok();
            let _ = key.signature_scheme(dg14.as_ref());
        }
    }
});
