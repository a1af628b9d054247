//! Benchmarks of bhyt-verify: a load generator for `VerificationService` over real gRPC, the
//! baselines it is compared with (a bare tonic server, Redis, the registry without cache), a
//! growth run over registry and audit-log sizes, criterion micro-benchmarks (benches/), and the
//! chip read counted against the protocol's minimum.
//!
//! Nothing here runs under `cargo test`: the figures come from the binaries (`bench-compare`,
//! `bench-growth`, `loadgen`, `bare-server`) and `cargo bench`, and are reported, never asserted.

pub mod chip;
pub mod driver;
pub mod load;
pub mod mix;
pub mod procfs;
pub mod report;
pub mod services;
