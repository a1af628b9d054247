//! The gRPC services: request validation, then the check or the audit query.

pub mod audit;
pub mod caller;
pub mod request;
pub mod verification;
