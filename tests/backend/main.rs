//! The backend's integration tests: one binary, real Redis and PostgreSQL started privately by
//! `support`, the backend served over real gRPC on port 0.

mod app;
mod audit_log;
mod audit_spool;
mod authorization;
mod caching;
mod checks;
mod cluster;
mod degraded;
mod fixtures;
mod gateway;
mod harness_selftest;
mod outages;
mod overload;
mod presence;
mod privacy;
mod registry;
mod replicas;
mod security;
mod support;
mod tls;
