#![no_main]
//! The BER-TLV reader: one TLV, exact parsing, iteration, the bounded recursive check.
use emrtd::tlv::{self, MAX_DEPTH, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((t, rest)) = tlv::parse_one(data) {
        assert_eq!(t.raw().len() + rest.len(), data.len());
        assert!(t.value().len() <= t.raw().len());
        if let Ok(children) = t.children() {
            for child in children.take(1000) {
                let _ = child;
            }
        }
        let _ = tlv::parse_exact(data, t.tag());
        let _ = t.find(Tag::new(0x5F1F));
    }
    for item in tlv::iter(data).take(1000) {
        let _ = item;
    }
    let _ = tlv::check_tree(data, MAX_DEPTH);
});
