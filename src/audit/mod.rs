//! The audit log: every check, answered or refused, is appended before its answer leaves, and
//! nothing in it can be changed, inserted or deleted without the integrity check noticing.
//!
//! - [`chain`]: what a record is and how it is hashed into its writer's chain.
//! - [`writer`]: the group-commit writer each backend process runs.
//! - [`idempotency`]: the answers already given, looked up in batches.
//! - [`spool`]: the local file records wait in while the store cannot commit.
//! - [`store`]: the SQL tables, shared by writers and queries.
//! - [`integrity`]: re-computing the chains and checking the signed checkpoints.

pub mod chain;
pub mod idempotency;
pub mod integrity;
pub mod spool;
pub mod store;
pub mod writer;

pub use chain::{AuditEntry, EventKind, Evidence};
pub use writer::{AuditError, AuditLog, Idempotent};
