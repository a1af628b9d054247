//! Compiles the .proto files with protox (pure Rust), so no `protoc` is needed on a new machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "bhyt/verify/v1/coverage.proto",
        "bhyt/verify/v1/admin.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Kept for gRPC server reflection.
    std::fs::write(
        out.join("bhyt_verify_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No `connect` helpers: clients bring their own channel (and TLS), so this crate needs
        // no transport.
        .build_transport(false)
        // Maps as BTreeMap: encoded in key order, so the same request always has the same
        // bytes. With HashMap the order follows each decode's random hasher, and the backend's
        // payload hash (idempotency) would tell a retry from itself.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
