//! Audit records and their hash chain.
//!
//! Each writer (backend process) has its own chain: record n's hash covers its fields and
//! record n-1's hash, and record 1 starts from a genesis hash derived from the writer id. The
//! encoding hashed is fixed here, field by field with length prefixes, and does not depend on
//! how a database returns the row.

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

/// The identity evidence a check was made with, as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub method: i32,
    pub passive_authentication: bool,
    pub chip_authentication: bool,
    pub active_authentication: bool,
    pub document_signer_issuer: String,
    /// The backend's own verdict on a presence proof: 0 none offered, 1 verified, 2 failed
    /// (`PresenceStatus`).
    pub presence: i32,
}

/// What a record records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// An answered coverage check.
    #[default]
    Check,
    /// A check refused with a gRPC error.
    Refusal,
    /// A connection refused before any call (failed TLS handshake).
    Connection,
    /// A read of the audit trail itself.
    AuditRead,
    /// A call refused for the caller's role or certificate.
    PermissionDenied,
    /// A station slowed down by the abuse limits.
    Throttled,
    /// An administrator's action (a registry import), or its refusal.
    Administration,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Check,
        EventKind::Refusal,
        EventKind::Connection,
        EventKind::AuditRead,
        EventKind::PermissionDenied,
        EventKind::Throttled,
        EventKind::Administration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Check => "check",
            EventKind::Refusal => "refusal",
            EventKind::Connection => "connection",
            EventKind::AuditRead => "audit_read",
            EventKind::PermissionDenied => "permission_denied",
            EventKind::Throttled => "throttled",
            EventKind::Administration => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One record, before it is placed in a chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Chosen by the caller before the record is written, so an answer and its proof token can
    /// name it.
    pub record_id: String,
    pub kind: EventKind,
    /// Unix microseconds, UTC.
    pub recorded_at: i64,
    pub request_id: String,
    pub facility_code: String,
    pub station_id: String,
    pub operator_hash: String,
    pub subject_kind: String,
    pub subject_hash: String,
    /// The subject's identifier, AEAD-encrypted (see `crate::seal`); empty when there is none.
    pub subject_sealed: String,
    /// `bhyt.verify.v1.ResultCode`; 0 when refused.
    pub result: i32,
    pub source_code: String,
    /// gRPC code of a refusal; 0 when answered.
    pub error_code: i32,
    /// The refusal's message, the peer's address, the query an auditor made, ...
    pub detail: String,
    /// `bhyt.verify.v1.CacheStatus`.
    pub cache_status: i32,
    pub evidence: Evidence,
    pub latency_micros: i64,
}

/// A record in its place: writer, sequence number and hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    pub writer_id: String,
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub record_hash: String,
}

/// The hash record 1 of a writer's chain follows.
pub fn genesis_hash(writer_id: &str) -> String {
    let mut h = Hasher::new("bhyt-verify audit genesis v1");
    h.field(writer_id.as_bytes());
    h.finish()
}

/// The hash of `entry` at `seq` in `writer_id`'s chain after `prev_hash`.
pub fn record_hash(writer_id: &str, seq: i64, prev_hash: &str, entry: &AuditEntry) -> String {
    let mut h = Hasher::new("bhyt-verify audit record v1");
    h.field(writer_id.as_bytes());
    h.int(seq);
    h.field(prev_hash.as_bytes());
    h.field(entry.record_id.as_bytes());
    h.field(entry.kind.as_str().as_bytes());
    h.int(entry.recorded_at);
    for text in [
        &entry.request_id,
        &entry.facility_code,
        &entry.station_id,
        &entry.operator_hash,
        &entry.subject_kind,
        &entry.subject_hash,
        &entry.subject_sealed,
    ] {
        h.field(text.as_bytes());
    }
    h.int(entry.result.into());
    h.field(entry.source_code.as_bytes());
    h.int(entry.error_code.into());
    h.field(entry.detail.as_bytes());
    h.int(entry.cache_status.into());
    let e = &entry.evidence;
    h.int(e.method.into());
    h.int(e.passive_authentication.into());
    h.int(e.chip_authentication.into());
    h.int(e.active_authentication.into());
    h.field(e.document_signer_issuer.as_bytes());
    h.int(entry.latency_micros);
    // Added later, and last: records without a presence proof keep the hash they always had.
    if e.presence != 0 {
        h.int(e.presence.into());
    }
    h.finish()
}

/// What a checkpoint signature covers.
pub fn checkpoint_message(
    writer_id: &str,
    number: i64,
    seq: i64,
    record_hash: &str,
    signed_at: i64,
    closing: bool,
) -> Vec<u8> {
    let mut m = Vec::new();
    for part in [
        b"bhyt-verify audit checkpoint v1".as_slice(),
        writer_id.as_bytes(),
        record_hash.as_bytes(),
    ] {
        m.extend_from_slice(&(part.len() as u32).to_be_bytes());
        m.extend_from_slice(part);
    }
    for n in [number, seq, signed_at, closing.into()] {
        m.extend_from_slice(&n.to_be_bytes());
    }
    m
}

/// SHA-256 over length-prefixed fields, so no two different records share an encoding.
struct Hasher(Context);

impl Hasher {
    fn new(domain: &str) -> Self {
        let mut h = Hasher(Context::new(&SHA256));
        h.field(domain.as_bytes());
        h
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn int(&mut self, n: i64) {
        self.0.update(&n.to_be_bytes());
    }

    fn finish(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_hash() {
        let entry = AuditEntry {
            request_id: "r1".into(),
            result: 1,
            ..Default::default()
        };
        let base = record_hash("w", 1, &genesis_hash("w"), &entry);
        let variants = [
            AuditEntry {
                result: 2,
                ..entry.clone()
            },
            AuditEntry {
                request_id: "r2".into(),
                ..entry.clone()
            },
            AuditEntry {
                latency_micros: 1,
                ..entry.clone()
            },
            AuditEntry {
                evidence: Evidence {
                    chip_authentication: true,
                    ..Default::default()
                },
                ..entry.clone()
            },
        ];
        for v in &variants {
            assert_ne!(record_hash("w", 1, &genesis_hash("w"), v), base);
        }
        assert_ne!(record_hash("w", 2, &genesis_hash("w"), &entry), base);
        assert_ne!(record_hash("v", 1, &genesis_hash("w"), &entry), base);
        // Length prefixes keep field boundaries: moving a character between fields changes it.
        let a = AuditEntry {
            facility_code: "ab".into(),
            station_id: "c".into(),
            ..Default::default()
        };
        let b = AuditEntry {
            facility_code: "a".into(),
            station_id: "bc".into(),
            ..Default::default()
        };
        assert_ne!(record_hash("w", 1, "", &a), record_hash("w", 1, "", &b));
    }
}
