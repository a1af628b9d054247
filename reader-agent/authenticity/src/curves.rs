//! Curves found in real CSCA keys that no RustCrypto crate provides, built from RustCrypto's
//! generic field and point arithmetic.

pub mod bp512;
