//! The crate's test PKI (feature `test-pki`), and the real trust data kept in the repository.
#![allow(dead_code)]

pub use cccd_authenticity::test_pki::*;

pub fn testdata(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/masterlists")
        .join(name);
    std::fs::read(path).expect("test data present")
}
