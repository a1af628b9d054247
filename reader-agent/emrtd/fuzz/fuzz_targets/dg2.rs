#![no_main]
//! DG2 down to the face's image: every header length and count is the card's to lie about.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(face) = emrtd::lds::dg2::parse(data) {
        // The image lies inside the input and is what its first bytes say.
        assert!(face.image.len() <= data.len());
        assert_eq!(
            emrtd::lds::dg2::ImageFormat::sniff(face.image),
            Some(face.format)
        );
    }
});
