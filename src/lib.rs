//! bhyt-verify: answers "is this citizen covered by health insurance (BHYT), at what benefit
//! level, and is the card usable here today?" over gRPC, fast, and records every look-up in a
//! tamper-evident audit log.
//!
//! The path of one check: `api::verification` validates the request (`api::request`), asks
//! [`coverage`]'s checker, which reads through [`cache`] to a [`source`] (the [`registry`]
//! database), judges the card ([`coverage::judge`]) and appends the outcome to [`audit`] before
//! the answer leaves.

pub mod abuse;
pub mod api;
pub mod audit;
pub mod cache;
pub mod card_number;
pub mod config;
pub mod coverage;
pub mod db;
pub mod keys;
pub mod lookup;
pub mod messages;
pub mod metrics;
pub mod names;
pub mod overload;
pub mod pki;
pub mod presence;
pub mod proof;
pub mod redis_link;
pub mod registry;
pub mod seal;
pub mod server;
pub mod source;
pub mod source_lock;
pub mod tls;
