//! The bhyt-verify gRPC API, generated from `proto/bhyt/verify/v1/*.proto`.
//!
//! Usable by clients (reader-agent, tests, integrators writing Rust) without the server's
//! dependencies: only prost, prost-types and tonic's code-generation support.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("bhyt.verify.v1");

    /// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/bhyt_verify_v1_descriptor.bin"));
}
