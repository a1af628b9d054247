//! `AuditService`: the auditor's queries over the look-up log, and its integrity check.

use std::pin::Pin;
use std::sync::Arc;

use bhyt_proto::v1::audit_service_server::AuditService;
use bhyt_proto::v1::{
    IdentityEvidence, IntegrityProblem, LookupPage, LookupRecord, QueryLookupsRequest,
    VerifyIntegrityRequest, VerifyIntegrityResponse, query_lookups_request,
};
use emrtd::cccd::id_number::CitizenId;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::verification::{AUDIT_SUBJECT, Checks};
use crate::tls::Role;

/// Only auditors read the audit trail.
const AUDITORS: &[Role] = &[Role::Auditor];
use crate::audit::chain::ChainedRecord;
use crate::audit::integrity::{self, Verification};
use crate::audit::store::{self, Cursor, Filter};
use crate::audit::writer::{new_record_id, now_micros};
use crate::audit::{AuditEntry, EventKind};
use crate::card_number::CardNumber;
use crate::coverage::Subject;
use crate::keys::CheckpointVerifier;
use crate::seal::Sealer;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub struct AuditApi {
    pub checks: Arc<Checks>,
    pub verifiers: Vec<CheckpointVerifier>,
    /// A writer without a checkpoint for this long (microseconds) is considered stopped.
    pub quiet_after_micros: i64,
}

type PageStream = Pin<Box<dyn Stream<Item = Result<LookupPage, Status>> + Send>>;

fn micros(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.nanos / 1000))
}

fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

impl AuditApi {
    fn filter(&self, req: &QueryLookupsRequest) -> Result<Filter, Status> {
        let from = req
            .from
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("from: required"))?;
        let to = req
            .to
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("to: required"))?;
        let subject_hashes = match &req.subject {
            Some(query_lookups_request::Subject::CitizenId(id)) => {
                let id = CitizenId::parse(id)
                    .map_err(|e| Status::invalid_argument(format!("citizen_id: {e}")))?;
                self.checks.subject_hashes(&Subject::Citizen(id))
            }
            Some(query_lookups_request::Subject::CardNumber(card)) => {
                let card = CardNumber::parse(card)
                    .map_err(|e| Status::invalid_argument(format!("card_number: {e}")))?;
                self.checks.subject_hashes(&Subject::Card(card))
            }
            None => Vec::new(),
        };
        let operator_hashes = match req.operator_citizen_id.as_str() {
            "" => Vec::new(),
            id => {
                let id = CitizenId::parse(id)
                    .map_err(|e| Status::invalid_argument(format!("operator_citizen_id: {e}")))?;
                self.checks.operator_hashes(id.as_str())
            }
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Filter {
            from: micros(from),
            to: micros(to),
            facility_code: non_empty(&req.facility_code),
            station_id: non_empty(&req.station_id),
            operator_hashes,
            subject_hashes,
            results: req.results.clone(),
        })
    }
}

impl AuditApi {
    /// Every read of the audit trail leaves its own record before any data leaves; a read that
    /// cannot be recorded is refused.
    async fn record_read(
        &self,
        caller: &Caller,
        detail: String,
        filter: &Filter,
    ) -> Result<(), Status> {
        let entry = AuditEntry {
            record_id: new_record_id(),
            kind: EventKind::AuditRead,
            recorded_at: now_micros(),
            station_id: caller.label.clone(),
            subject_kind: if filter.subject_hashes.is_empty() {
                ""
            } else {
                "searched"
            }
            .into(),
            subject_hash: filter.subject_hashes.first().cloned().unwrap_or_default(),
            operator_hash: filter.operator_hashes.first().cloned().unwrap_or_default(),
            detail,
            ..Default::default()
        };
        self.checks.audit.append(entry, None).await.map_err(|e| {
            Status::unavailable(format!(
                "{e}; audit reads are refused while they cannot be recorded"
            ))
        })
    }
}

/// What an auditor asked for, in words that name no person (identifiers appear as hash
/// prefixes).
fn describe(req: &QueryLookupsRequest, filter: &Filter) -> String {
    let mut parts = vec![format!(
        "query_lookups from={} to={}",
        filter.from, filter.to
    )];
    if let Some(f) = &filter.facility_code {
        parts.push(format!("facility={f}"));
    }
    if let Some(s) = &filter.station_id {
        parts.push(format!("station={s}"));
    }
    if let Some(h) = filter.subject_hashes.first() {
        parts.push(format!("subject_hash={}…", &h[..12]));
    }
    if let Some(h) = filter.operator_hashes.first() {
        parts.push(format!("operator_hash={}…", &h[..12]));
    }
    if !filter.results.is_empty() {
        parts.push(format!("results={:?}", filter.results));
    }
    if !req.page_token.is_empty() {
        parts.push("resumed".into());
    }
    parts.join(" ")
}

/// Page tokens name the last record sent: "<recorded_at>.<seq>.<writer_id>".
fn encode_token(c: &Cursor) -> String {
    format!("{}.{}.{}", c.recorded_at, c.seq, c.writer_id)
}

fn decode_token(token: &str) -> Result<Cursor, Status> {
    let bad = || Status::invalid_argument("page_token: not a token from a previous page");
    let mut parts = token.splitn(3, '.');
    let recorded_at = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let writer_id = parts
        .next()
        .filter(|w| !w.is_empty())
        .ok_or_else(bad)?
        .to_owned();
    Ok(Cursor {
        recorded_at,
        writer_id,
        seq,
    })
}

/// A record as an auditor sees it, the subject unsealed.
fn lookup_record(r: &ChainedRecord, sealer: &Sealer) -> LookupRecord {
    let e = &r.entry;
    let subject = match e.subject_sealed.as_str() {
        "" => String::new(),
        sealed => sealer
            .open_text(AUDIT_SUBJECT, sealed)
            .unwrap_or_else(|error| format!("<{error}>")),
    };
    LookupRecord {
        record_id: e.record_id.clone(),
        kind: e.kind.as_str().to_owned(),
        subject,
        writer_id: r.writer_id.clone(),
        sequence: r.seq as u64,
        recorded_at: Some(timestamp(e.recorded_at)),
        facility_code: e.facility_code.clone(),
        station_id: e.station_id.clone(),
        operator_hash: e.operator_hash.clone(),
        subject_kind: e.subject_kind.clone(),
        subject_hash: e.subject_hash.clone(),
        result: e.result,
        source_result_code: e.source_code.clone(),
        error_code: e.error_code,
        detail: e.detail.clone(),
        cache: e.cache_status,
        evidence: Some(IdentityEvidence {
            method: e.evidence.method,
            passive_authentication: e.evidence.passive_authentication,
            chip_authentication: e.evidence.chip_authentication,
            active_authentication: e.evidence.active_authentication,
            document_signer_issuer: e.evidence.document_signer_issuer.clone(),
        }),
        latency_micros: u32::try_from(e.latency_micros).unwrap_or(u32::MAX),
        request_id: e.request_id.clone(),
        record_hash: r.record_hash.clone(),
        prev_hash: r.prev_hash.clone(),
        presence: e.evidence.presence,
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type QueryLookupsStream = PageStream;

    async fn query_lookups(
        &self,
        request: Request<QueryLookupsRequest>,
    ) -> Result<Response<PageStream>, Status> {
        let caller = self.checks.admit(&request, AUDITORS).await?;
        let req = request.into_inner();
        let filter = self.filter(&req)?;
        self.record_read(&caller, describe(&req, &filter), &filter)
            .await?;
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let mut remaining = match req.max_records {
            0 => u64::MAX,
            n => u64::from(n),
        };
        let mut cursor = match req.page_token.as_str() {
            "" => None,
            token => Some(decode_token(token)?),
        };
        let pool = self.checks.audit_pool.clone();
        let sealer = self.checks.sealer.clone();
        let pages = async_stream::try_stream! {
            while remaining > 0 {
                let limit = u64::from(page_size).min(remaining) as i64;
                let records = store::query(&pool, &filter, cursor.as_ref(), limit)
                    .await
                    .map_err(|_| Status::unavailable("the audit store is unreachable"))?;
                let Some(last) = records.last() else { break };
                let next = Cursor { recorded_at: last.entry.recorded_at, writer_id: last.writer_id.clone(), seq: last.seq };
                remaining -= records.len() as u64;
                let full = records.len() as i64 == limit;
                yield LookupPage {
                    records: records.iter().map(|r| lookup_record(r, &sealer)).collect(),
                    next_page_token: encode_token(&next),
                };
                cursor = Some(next);
                if !full {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(pages)))
    }

    async fn verify_integrity(
        &self,
        request: Request<VerifyIntegrityRequest>,
    ) -> Result<Response<VerifyIntegrityResponse>, Status> {
        let caller = self.checks.admit(&request, AUDITORS).await?;
        let req = request.into_inner();
        self.record_read(&caller, "verify_integrity".into(), &Filter::default())
            .await?;
        let now = crate::audit::writer::now_micros();
        let range = match (&req.from, &req.to) {
            (None, None) => None,
            (from, to) => Some((
                from.as_ref().map_or(0, micros),
                to.as_ref().map_or(now, micros),
            )),
        };
        let verification = Verification {
            keys: &self.verifiers,
            range,
            now,
            quiet_after: self.quiet_after_micros,
        };
        let report = integrity::verify(&self.checks.audit_pool, &verification)
            .await
            .map_err(|_| Status::unavailable("the audit store is unreachable"))?;
        Ok(Response::new(VerifyIntegrityResponse {
            intact: report.intact(),
            records_checked: report.records_checked,
            writers_checked: report.writers_checked,
            checkpoints_verified: report.checkpoints_verified,
            problems: report
                .problems
                .into_iter()
                .map(|p| IntegrityProblem {
                    writer_id: p.writer_id,
                    sequence: p.seq.max(0) as u64,
                    kind: p.kind.into(),
                    detail: p.detail,
                })
                .collect(),
        }))
    }
}
