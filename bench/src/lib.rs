//! Benchmarks of bhyt-verify: a load generator for `VerificationService` over real gRPC, the
//! baselines it is compared with (a bare tonic server, Redis, the registry without cache), a
//! growth run over registry and audit-log sizes, and criterion micro-benchmarks (benches/).
//!
//! Nothing here runs under `cargo test`: the figures come from the binaries (`bench-compare`,
//! `bench-growth`, `loadgen`, `bare-server`) and `cargo bench`, and are reported, never asserted.

pub mod driver;
pub mod load;
pub mod mix;
pub mod procfs;
pub mod report;
pub mod services;
