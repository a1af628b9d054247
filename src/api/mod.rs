//! The gRPC services: request validation, then the check, the audit query or the administrator's
//! action.

pub mod admin;
pub mod audit;
pub mod caller;
pub mod request;
pub mod verification;
