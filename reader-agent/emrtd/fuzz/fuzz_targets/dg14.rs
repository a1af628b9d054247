#![no_main]
//! DG14 SecurityInfos, and the Chip Authentication parameters drawn from them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dg14) = emrtd::lds::dg14::parse(data) {
        let _ = dg14.active_authentication();
        let _ = dg14.chip_authentication_keys().count();
        // Chip Authentication's choice of protocol, key and curve from what DG14 offers.
        let _ = emrtd::ca::CaParams::from_dg14(&dg14);
        let _ = emrtd::ca::CaParams::from_dg14_resolving(&dg14, |_| Some(emrtd::pace::DomainCurve::BrainpoolP256r1));
    }
});
