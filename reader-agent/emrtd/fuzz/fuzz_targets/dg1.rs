#![no_main]
//! DG1 and the bare TD1 MRZ.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mrz) = emrtd::lds::dg1::parse(data) {
        let _ = (mrz.document_number(), mrz.name(), mrz.citizen_id());
    }
    if let Ok(mrz) = emrtd::lds::dg1::Td1::parse(data) {
        let _ = (mrz.optional_data_1().len(), mrz.date_of_expiry());
    }
});
