//! `VerificationService`: one check from request to recorded answer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bhyt_proto::v1::verification_service_server::VerificationService;
use bhyt_proto::v1::{
    BatchItemResult, CacheInfo, CacheStatus, CheckCoverageRequest, CheckCoverageResponse, Coverage,
    IdentityMethod, IssuePresenceChallengeRequest, ItemError, LocalizedText, NewCard,
    PresenceChallenge, PresenceResult, PresenceStatus, ResultCode, batch_item_result,
    check_coverage_request,
};
use futures::{Stream, StreamExt};
use prost::Message;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tonic::{Request, Response, Status, Streaming};

use super::caller::{Caller, Gate, Refusal};
use super::request::{self, FieldError, ValidCheck};
use crate::abuse::{AbuseLimits, Limit};
use crate::audit::writer::new_record_id;
use crate::audit::{AuditEntry, AuditError, AuditLog, EventKind, Idempotent, store};
use crate::cache::CacheTier;
use crate::card_number::benefit_percent;
use crate::coverage::{self, CardRecord, Subject, Verdict};
use crate::keys::Pseudonymizer;
use crate::lookup::{Found, Lookup, Provenance};
use crate::messages;
use crate::metrics::Metrics;
use crate::overload::{CheckSlots, EPISODE_QUIET, Shed};
use crate::presence::challenge::Challenges;
use crate::presence::{PresenceVerdict, PresenceVerifier};
use crate::proof::{EvidenceClaim, ProofClaims, ProofSigner};
use crate::seal::Sealer;
use crate::source::{SourceError, SourceQuery};
use crate::tls::{HandshakeFailure, Role};

/// The keys a check uses: pseudonyms for hashes, the sealer for data at rest, the proof signer.
pub struct Secrets {
    pub pseudonymizer: Pseudonymizer,
    pub sealer: Arc<Sealer>,
    pub proof: ProofSigner,
}

/// Presence proofs: the challenges this service issues and the verifier of the chip's answers.
pub struct Presence {
    pub challenges: Challenges,
    pub verifier: Arc<PresenceVerifier>,
}

/// An idempotency key: facility, station, request id.
type RequestKey = (String, String, String);

/// Checks in flight per idempotency key, so a retry racing its original waits for it.
type KeyLocks = Mutex<HashMap<RequestKey, Arc<tokio::sync::Mutex<()>>>>;

pub struct Checks {
    pub lookup: Lookup,
    pub audit: AuditLog,
    pub audit_pool: AnyPool,
    pub keys: Pseudonymizer,
    pub sealer: Arc<Sealer>,
    pub proof: ProofSigner,
    pub metrics: Arc<Metrics>,
    pub abuse: AbuseLimits,
    pub gate: Gate,
    pub presence: Presence,
    pub max_message_bytes: usize,
    pub batch_concurrency: usize,
    /// The bound on checks in flight (load shedding).
    pub slots: CheckSlots,
    in_progress: KeyLocks,
}

impl Checks {
    /// Wiring: each part is built by the server from its own configuration.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lookup: Lookup,
        audit: AuditLog,
        audit_pool: AnyPool,
        secrets: Secrets,
        metrics: Arc<Metrics>,
        abuse: AbuseLimits,
        gate: Gate,
        presence: Presence,
        max_message_bytes: usize,
        slots: CheckSlots,
    ) -> Self {
        Self {
            lookup,
            audit,
            audit_pool,
            keys: secrets.pseudonymizer,
            sealer: secrets.sealer,
            proof: secrets.proof,
            metrics,
            abuse,
            gate,
            presence,
            max_message_bytes,
            batch_concurrency: 16,
            slots,
            in_progress: Mutex::default(),
        }
    }

    /// The keyed hash standing for a subject in the audit log.
    pub fn subject_hash(&self, subject: &Subject) -> String {
        self.keys.hash("audit-subject", &audit_subject(subject))
    }

    pub fn operator_hash(&self, citizen_id: &str) -> String {
        self.keys.hash("audit-operator", citizen_id.trim())
    }

    /// The subject's hash under every pseudonym key, for searches across key rotations.
    pub fn subject_hashes(&self, subject: &Subject) -> Vec<String> {
        self.keys
            .all_hashes("audit-subject", &audit_subject(subject))
    }

    pub fn operator_hashes(&self, citizen_id: &str) -> Vec<String> {
        self.keys.all_hashes("audit-operator", citizen_id.trim())
    }

    /// Admits the caller of a request to roles `allowed`; every refusal is audited.
    pub async fn admit<T>(&self, request: &Request<T>, allowed: &[Role]) -> Result<Caller, Status> {
        match self.gate.admit(request, allowed) {
            Ok(caller) => Ok(caller),
            Err(Refusal::Unauthenticated(status)) => {
                let peer = request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                Err(self.record_denial(&peer, status).await)
            }
            Err(Refusal::Denied { caller, status }) => {
                Err(self.record_denial(&caller.label, status).await)
            }
        }
    }

    /// Records a refused call (role, certificate, facility) and returns its status.
    pub async fn record_denial(&self, who: &str, status: Status) -> Status {
        self.metrics.check_refused(status.code());
        let entry = AuditEntry {
            record_id: new_record_id(),
            kind: EventKind::PermissionDenied,
            recorded_at: crate::audit::writer::now_micros(),
            station_id: who.chars().take(64).collect(),
            error_code: status.code() as i32,
            detail: status.message().to_owned(),
            ..Default::default()
        };
        match self.audit.append(entry, None).await {
            Ok(()) => status,
            Err(e) => audit_unavailable(e),
        }
    }

    /// Records a connection refused at the TLS handshake: no gRPC call ever existed, so this
    /// record is the only trace the server keeps of it.
    pub async fn record_handshake_failure(&self, failure: &HandshakeFailure) {
        let entry = AuditEntry {
            record_id: new_record_id(),
            kind: EventKind::Connection,
            recorded_at: crate::audit::writer::now_micros(),
            station_id: failure.peer_addr.to_string(),
            error_code: tonic::Code::Unavailable as i32,
            detail: format!("tls handshake refused: {}", failure.reason.code()),
            ..Default::default()
        };
        if let Err(error) = self.audit.append(entry, None).await {
            tracing::error!(%error, peer = %failure.peer_addr, "a refused handshake could not be recorded");
        }
    }

    /// Runs one check for `caller`: validate, replay or refuse a reused request id, look up,
    /// judge, record.
    pub async fn check(
        &self,
        caller: &Caller,
        mut req: CheckCoverageRequest,
    ) -> Result<CheckCoverageResponse, Status> {
        let started = Instant::now();
        if let Err(message) = caller.may_check_for(&req.facility_code, &req.station_id) {
            return Err(self
                .record_denial(&caller.label, Status::permission_denied(message))
                .await);
        }
        // Before any work: a shed check has looked nothing up and holds nothing.
        let _slot = match self.slots.admit().await {
            Ok(slot) => slot,
            Err(shed) => return Err(self.shed(&req, shed, started)),
        };
        let _in_flight = self.metrics.in_flight();
        let size = req.encoded_len();
        if size > self.max_message_bytes {
            let error = FieldError {
                field: "request",
                message: format!(
                    "{size} bytes exceeds the limit of {}",
                    self.max_message_bytes
                ),
            };
            return Err(self.refuse(&req, invalid(&error), started).await);
        }
        let valid = match request::validate(&req) {
            Ok(valid) => valid,
            Err(error) => return Err(self.refuse(&req, invalid(&error), started).await),
        };
        let payload_hash = request::payload_hash(&mut req);
        let key = (
            req.facility_code.clone(),
            req.station_id.clone(),
            req.request_id.clone(),
        );
        let lock = self.key_lock(&key);
        let serialised = lock.lock().await;
        let stored = self.stored_answer(&req).await;
        let outcome = match stored {
            Err(status) => Err(status),
            Ok(Some(stored)) if stored.payload_hash == payload_hash => self
                .sealer
                .open(IDEMPOTENT_ANSWER, &stored.response)
                .ok()
                .and_then(|bytes| CheckCoverageResponse::decode(bytes.as_slice()).ok())
                .ok_or_else(|| {
                    Status::internal("the stored answer for this request_id is unreadable")
                }),
            Ok(Some(_)) => {
                let status = Status::already_exists(
                    "request_id: already used by this station for a different request; use a new request_id",
                );
                Err(self.refuse(&req, status, started).await)
            }
            Ok(None) => {
                let subject_hash = self.subject_hash(&valid.subject);
                match self.within_limits(&req, &subject_hash, started).await {
                    Ok(()) => match self.presence_verdict(&req, &valid, &payload_hash).await {
                        Ok(presence) => {
                            self.answer(&req, valid, subject_hash, payload_hash, presence, started)
                                .await
                        }
                        Err(status) => Err(self.refuse(&req, status, started).await),
                    },
                    Err(status) => Err(status),
                }
            }
        };
        drop(serialised);
        self.release_key_lock(&key, lock);
        outcome
    }

    /// The answer already given for this request_id (see [`AuditLog::stored_answer`]). With
    /// the store unreachable and a spool configured, a key found in neither is treated as new:
    /// the check is answered and spooled. (A key answered before the outage and retried during
    /// it is then answered again, with a record of its own; its second key row is skipped at
    /// replay.)
    async fn stored_answer(
        &self,
        req: &CheckCoverageRequest,
    ) -> Result<Option<store::StoredAnswer>, Status> {
        let lookup = self
            .audit
            .stored_answer(&req.facility_code, &req.station_id, &req.request_id)
            .await;
        match lookup {
            Ok(stored) => Ok(stored),
            Err(_) if self.audit.spool_enabled() => Ok(None),
            Err(error) => {
                tracing::error!(%error, "idempotency look-up failed");
                Err(audit_unavailable(AuditError::Unavailable(
                    "audit store unreachable".into(),
                )))
            }
        }
    }

    /// Refuses a check the service has no room for. Not audited one by one (see
    /// [`crate::overload`]): the first of an episode writes one `throttled` record, in the
    /// background so the refusal leaves at once.
    fn shed(&self, req: &CheckCoverageRequest, shed: Shed, started: Instant) -> Status {
        self.metrics.check_refused(tonic::Code::ResourceExhausted);
        let message = self.slots.message(shed);
        if self.slots.begins_episode(Instant::now()) {
            tracing::warn!(reason = shed.reason(), "overloaded: shedding checks");
            let entry = AuditEntry {
                detail: format!(
                    "{message}; this record stands for every check shed until {} s pass without one",
                    EPISODE_QUIET.as_secs()
                ),
                ..self.entry_base(req, EventKind::Throttled, started)
            };
            let audit = self.audit.clone();
            tokio::spawn(async move {
                if let Err(error) = audit.append(entry, None).await {
                    tracing::error!(%error, "the start of an overload could not be recorded");
                }
            });
        }
        let pushback = u64::try_from(self.slots.pushback().as_millis()).unwrap_or(u64::MAX);
        let mut status = Status::resource_exhausted(message);
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", pushback.into());
        status
    }

    /// Applies the station's abuse limits. A suspected enumeration is recorded once per window
    /// (a throttled flood must not flood the audit log too); every throttled check is counted.
    async fn within_limits(
        &self,
        req: &CheckCoverageRequest,
        subject_hash: &str,
        started: Instant,
    ) -> Result<(), Status> {
        let station = format!("{}/{}", req.facility_code, req.station_id);
        let Err(verdict) = self.abuse.admit(&station, subject_hash, Instant::now()) else {
            return Ok(());
        };
        self.metrics.check_refused(tonic::Code::ResourceExhausted);
        let status = match verdict.limit {
            Limit::Rate { retry_after } => Status::resource_exhausted(format!(
                "this station is over its rate limit: retry in {} ms",
                retry_after.as_millis().max(1)
            )),
            Limit::Enumeration { distinct } => {
                self.metrics.enumeration_suspected();
                if verdict.first {
                    let entry = AuditEntry {
                        detail: format!(
                            "suspected enumeration: {distinct} distinct people in the window"
                        ),
                        ..self.entry_base(req, EventKind::Throttled, started)
                    };
                    self.audit
                        .append(entry, None)
                        .await
                        .map_err(audit_unavailable)?;
                    tracing::warn!(facility = %req.facility_code, station = %req.station_id, distinct, "suspected enumeration: station throttled");
                }
                Status::resource_exhausted(
                    "this station has checked more distinct people than a desk can: new people are refused for now",
                )
            }
        };
        Err(status)
    }

    /// Redeems a presence proof's challenge (refusing one that is stale, reused or not this
    /// station's) and verifies the proof; `None` when the request carries none.
    async fn presence_verdict(
        &self,
        req: &CheckCoverageRequest,
        valid: &ValidCheck,
        payload_hash: &str,
    ) -> Result<Option<PresenceVerdict>, Status> {
        let Some(proof) = &req.presence_proof else {
            return Ok(None);
        };
        let nonce = self
            .presence
            .challenges
            .redeem(
                &proof.challenge,
                &req.facility_code,
                &req.station_id,
                // The request's keys and payload: its own retry may use the challenge again.
                &self.keys.hash(
                    "presence-request",
                    &format!(
                        "{}/{}/{}/{payload_hash}",
                        req.facility_code, req.station_id, req.request_id
                    ),
                ),
                OffsetDateTime::now_utc(),
                self.lookup.cache().connection(),
            )
            .await
            .map_err(|error| {
                self.metrics.presence_proof("refused");
                Status::failed_precondition(format!("presence_proof.challenge: {error}"))
            })?;
        let citizen = match &valid.subject {
            Subject::Citizen(id) => Some(id.as_str().to_owned()),
            Subject::Card(_) => None,
        };
        let (verifier, proof) = (self.presence.verifier.clone(), proof.clone());
        // Certificate chains on brainpoolP512r1 cost milliseconds: off the async workers.
        let verdict = tokio::task::spawn_blocking(move || {
            verifier.verify(&proof, &nonce, citizen.as_deref(), SystemTime::now())
        })
        .await
        .map_err(|_| Status::internal("the presence proof could not be verified"))?;
        self.metrics.presence_proof(if verdict.verified() {
            "verified"
        } else {
            "failed"
        });
        Ok(Some(verdict))
    }

    async fn answer(
        &self,
        req: &CheckCoverageRequest,
        valid: ValidCheck,
        subject_hash: String,
        payload_hash: String,
        presence: Option<PresenceVerdict>,
        started: Instant,
    ) -> Result<CheckCoverageResponse, Status> {
        let presence_status = match &presence {
            None => PresenceStatus::NotOffered,
            Some(v) if v.verified() => PresenceStatus::Verified,
            Some(_) => PresenceStatus::Failed,
        };
        let now = OffsetDateTime::now_utc();
        let query = SourceQuery {
            subject: &valid.subject,
            full_name: &valid.claim.full_name,
            birth: valid.claim.birth,
            operator_name: &valid.operator_name,
            operator_id: valid.operator_id.as_str(),
        };
        let miss = CacheInfo {
            status: CacheStatus::Miss as i32,
            age_seconds: 0,
            stale: false,
        };
        let (source_code, verdict, card, cache) = match self.lookup.find(&query).await {
            Ok(Found::Facts(cached, provenance)) => {
                let verdict = coverage::judge(
                    cached.card.as_ref(),
                    &valid.claim,
                    coverage::vietnam_date(now),
                );
                let age = u32::try_from((now.unix_timestamp() - cached.fetched_at).max(0))
                    .unwrap_or(u32::MAX);
                (
                    verdict.source_code.to_owned(),
                    verdict,
                    cached.card,
                    CacheInfo {
                        status: cache_status(provenance) as i32,
                        age_seconds: age,
                        stale: matches!(provenance, Provenance::Stale(_)),
                    },
                )
            }
            // The source judged this request itself; its raw code is kept, known or not.
            Ok(Found::Verdict {
                result,
                source_code,
            }) => (source_code, coverage::verdict(result), None, miss),
            Err(error) => {
                // A dead source is an outcome the desk must see, not a failed call. An open
                // breaker has logged the outage once already.
                if matches!(error, SourceError::CircuitOpen { .. }) {
                    tracing::debug!(%error, "coverage source not asked");
                } else {
                    tracing::warn!(%error, "coverage source failed");
                }
                let verdict = coverage::verdict(ResultCode::CannotVerifyNow);
                (String::new(), verdict, None, miss)
            }
        };
        let (vi, en) = messages::for_result(verdict.result);
        let base = self.entry_base(req, EventKind::Check, started);
        let operator_hash = self.operator_hash(valid.operator_id.as_str());
        let proof = self.proof.sign(&ProofClaims {
            sub: subject_hash.clone(),
            fac: req.facility_code.clone(),
            sta: req.station_id.clone(),
            op: operator_hash.clone(),
            iat: now.unix_timestamp(),
            res: verdict.result.as_str_name().to_owned(),
            src: source_code.clone(),
            usable: verdict.usable,
            ev: EvidenceClaim {
                method: IdentityMethod::try_from(valid.evidence.method)
                    .map_or("", |m| m.as_str_name())
                    .to_owned(),
                passive: valid.evidence.passive_authentication,
                chip: valid.evidence.chip_authentication,
                active: valid.evidence.active_authentication,
                presence: presence
                    .as_ref()
                    .map(|v| if v.verified() { "verified" } else { "failed" }.to_owned()),
            },
            rec: base.record_id.clone(),
            req: req.request_id.clone(),
        });
        let response = CheckCoverageResponse {
            request_id: req.request_id.clone(),
            result: verdict.result as i32,
            source_result_code: source_code.clone(),
            usable: verdict.usable,
            message: Some(LocalizedText {
                vi: vi.into(),
                en: en.into(),
            }),
            coverage: card
                .as_ref()
                .map(|c| coverage_of(c, &valid.claim.facility_code)),
            cache: Some(cache),
            audit_record_id: base.record_id.clone(),
            checked_at: Some(prost_types::Timestamp {
                seconds: now.unix_timestamp(),
                nanos: 0,
            }),
            source: self.lookup.source_name().to_owned(),
            proof_token: proof,
            presence: presence.as_ref().map(presence_result),
        };
        let entry = AuditEntry {
            subject_kind: valid.subject.kind().to_owned(),
            subject_hash,
            subject_sealed: self.sealer.seal_text(AUDIT_SUBJECT, valid.subject.value()),
            operator_hash,
            result: verdict.result as i32,
            source_code,
            cache_status: cache.status,
            evidence: crate::audit::Evidence {
                presence: presence_status as i32,
                // What the backend read from EF.SOD itself, rather than the desk's claim.
                document_signer_issuer: presence
                    .as_ref()
                    .map(|v| v.document_signer_issuer.clone())
                    .filter(|issuer| !issuer.is_empty())
                    .unwrap_or_else(|| valid.evidence.document_signer_issuer.clone()),
                ..valid.evidence.clone()
            },
            detail: answer_detail(&cache, presence.as_ref()),
            ..base
        };
        let idempotent = Idempotent {
            payload_hash,
            response: self
                .sealer
                .seal(IDEMPOTENT_ANSWER, &response.encode_to_vec()),
        };
        self.audit
            .append(entry, Some(idempotent))
            .await
            .map_err(|e| {
                self.metrics.check_refused(tonic::Code::Unavailable);
                audit_unavailable(e)
            })?;
        let cache_label = if cache.stale {
            "stale"
        } else {
            cache_label(cache.status)
        };
        self.metrics
            .check_answered(verdict_label(&verdict), cache_label);
        Ok(response)
    }

    /// Records a refused request, then returns the refusal (or UNAVAILABLE if even that cannot
    /// be recorded).
    async fn refuse(&self, req: &CheckCoverageRequest, status: Status, started: Instant) -> Status {
        let (kind, raw) = match &req.subject {
            Some(check_coverage_request::Subject::CitizenId(id)) => ("citizen_id", id.as_str()),
            Some(check_coverage_request::Subject::CardNumber(card)) => {
                ("card_number", card.as_str())
            }
            None => ("none", ""),
        };
        let raw: String = raw.trim().chars().take(64).collect();
        let entry = AuditEntry {
            subject_kind: kind.into(),
            subject_hash: self.keys.hash("audit-subject", &format!("{kind}:{raw}")),
            subject_sealed: self.sealer.seal_text(AUDIT_SUBJECT, &raw),
            operator_hash: self
                .operator_hash(req.operator.as_ref().map_or("", |o| o.citizen_id.as_str())),
            error_code: status.code() as i32,
            detail: status.message().to_owned(),
            ..self.entry_base(req, EventKind::Refusal, started)
        };
        self.metrics.check_refused(status.code());
        match self.audit.append(entry, None).await {
            Ok(_) => status,
            Err(e) => audit_unavailable(e),
        }
    }

    /// The fields every record has, whatever the outcome. Free text from the request is bounded
    /// so a hostile request cannot bloat the log.
    fn entry_base(
        &self,
        req: &CheckCoverageRequest,
        kind: EventKind,
        started: Instant,
    ) -> AuditEntry {
        let bounded = |s: &str| s.chars().take(64).collect::<String>();
        let evidence = req.evidence.as_ref();
        AuditEntry {
            record_id: new_record_id(),
            kind,
            recorded_at: crate::audit::writer::now_micros(),
            request_id: bounded(&req.request_id),
            facility_code: bounded(&req.facility_code),
            station_id: bounded(&req.station_id),
            evidence: crate::audit::Evidence {
                method: evidence.map_or(0, |e| e.method),
                ..Default::default()
            },
            latency_micros: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            ..Default::default()
        }
    }

    fn key_lock(&self, key: &RequestKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.in_progress.lock().expect("key locks");
        // The key is copied only for a request not already in flight.
        match locks.get(key) {
            Some(lock) => lock.clone(),
            None => locks.entry(key.clone()).or_default().clone(),
        }
    }

    fn release_key_lock(&self, key: &RequestKey, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.in_progress.lock().expect("key locks");
        // Only the last holder removes the entry: the map and this handle hold one each.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(key);
        }
    }
}

/// What stands for a subject in the audit log before hashing. Card numbers stand by their
/// social-insurance number, so both printed forms of a card find the same records.
fn audit_subject(subject: &Subject) -> String {
    let value = match subject {
        Subject::Citizen(id) => id.as_str(),
        Subject::Card(card) => card.social_insurance_number(),
    };
    format!("{}:{value}", subject.kind())
}

/// Associated data of sealed values: what each one is.
pub const AUDIT_SUBJECT: &str = "audit-subject";
const IDEMPOTENT_ANSWER: &str = "idempotent-answer";

fn presence_result(verdict: &PresenceVerdict) -> PresenceResult {
    let failure = (!verdict.verified()).then(|| LocalizedText {
        vi: format!(
            "Không xác thực được chip thẻ: {}. Không coi danh tính là đã xác thực bằng chip.",
            verdict.failures.join("; ")
        ),
        en: format!(
            "The card's chip was not verified: {}. Do not treat the identity as chip-verified.",
            verdict.failures.join("; ")
        ),
    });
    PresenceResult {
        verified: verdict.verified(),
        passive_authentication: verdict.passive_authentication,
        active_authentication: verdict.active_authentication,
        citizen_matches: verdict.citizen_matches,
        document_signer_issuer: verdict.document_signer_issuer.clone(),
        failure,
    }
}

fn invalid(error: &FieldError) -> Status {
    Status::invalid_argument(error.to_string())
}

fn audit_unavailable(error: AuditError) -> Status {
    Status::unavailable(format!(
        "{error}; no answer is given without a record: retry with the same request_id"
    ))
}

fn cache_status(provenance: Provenance) -> CacheStatus {
    match provenance {
        Provenance::Source => CacheStatus::Miss,
        Provenance::Cache(CacheTier::Redis) | Provenance::Stale(CacheTier::Redis) => {
            CacheStatus::Hit
        }
        Provenance::Cache(CacheTier::Fallback) | Provenance::Stale(CacheTier::Fallback) => {
            CacheStatus::Fallback
        }
    }
}

/// The audit record's note on an answer: a stale cache entry (the audit record has no field of
/// its own for it) and a presence proof that did not verify.
fn answer_detail(cache: &CacheInfo, presence: Option<&PresenceVerdict>) -> String {
    let stale = cache.stale.then(|| {
        format!(
            "answered from a stale cache entry, {} s old",
            cache.age_seconds
        )
    });
    let presence = presence
        .filter(|v| !v.verified())
        .map(|v| format!("presence not verified: {}", v.failures.join("; ")));
    stale
        .into_iter()
        .chain(presence)
        .collect::<Vec<_>>()
        .join("; ")
}

fn cache_label(status: i32) -> &'static str {
    match CacheStatus::try_from(status) {
        Ok(CacheStatus::Hit) => "hit",
        Ok(CacheStatus::Fallback) => "fallback",
        _ => "miss",
    }
}

fn verdict_label(verdict: &Verdict) -> &'static str {
    verdict.result.as_str_name()
}

fn date(d: time::Date) -> bhyt_proto::v1::Date {
    bhyt_proto::v1::Date {
        year: d.year() as u32,
        month: u8::from(d.month()).into(),
        day: d.day().into(),
    }
}

fn coverage_of(card: &CardRecord, facility: &str) -> Coverage {
    let (percent, description) = benefit_percent(card.benefit_level).unwrap_or((0, ""));
    Coverage {
        card_number: card.card_number.clone(),
        social_insurance_number: card.social_insurance_number.clone(),
        category: card.category.clone(),
        benefit_level: card.benefit_level.into(),
        benefit_percent: percent,
        benefit_description: description.into(),
        valid_from: Some(date(card.valid_from)),
        valid_to: Some(date(card.valid_to)),
        primary_care_facility: card.primary_care_facility.clone(),
        primary_care_is_this_facility: card.primary_care_facility == facility,
        area_code: card.area_code.clone().unwrap_or_default(),
        five_year_date: card.five_year_date.map(date),
        issuing_office: card.issuing_office.clone(),
        new_card: card.replaced_by.as_ref().map(|n| NewCard {
            card_number: n.card_number.clone(),
            valid_from: Some(date(n.valid_from)),
            valid_to: Some(date(n.valid_to)),
        }),
    }
}

/// Who may check coverage: reception desks and hospital information systems.
const CHECKERS: &[Role] = &[Role::Station, Role::HisIntegration];

/// The gRPC face of [`Checks`].
pub struct VerificationApi(pub Arc<Checks>);

type BatchStream = Pin<Box<dyn Stream<Item = Result<BatchItemResult, Status>> + Send>>;

#[tonic::async_trait]
impl VerificationService for VerificationApi {
    #[tracing::instrument(skip_all, fields(station = %request.get_ref().station_id))]
    async fn check_coverage(
        &self,
        request: Request<CheckCoverageRequest>,
    ) -> Result<Response<CheckCoverageResponse>, Status> {
        let caller = self.0.admit(&request, CHECKERS).await?;
        self.0
            .check(&caller, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn issue_presence_challenge(
        &self,
        request: Request<IssuePresenceChallengeRequest>,
    ) -> Result<Response<PresenceChallenge>, Status> {
        let caller = self.0.admit(&request, CHECKERS).await?;
        let req = request.into_inner();
        if let Err(message) = caller.may_check_for(&req.facility_code, &req.station_id) {
            return Err(self
                .0
                .record_denial(&caller.label, Status::permission_denied(message))
                .await);
        }
        if let Err(error) = request::validate_station(&req.facility_code, &req.station_id) {
            return Err(invalid(&error));
        }
        let issued = self.0.presence.challenges.issue(
            &req.facility_code,
            &req.station_id,
            OffsetDateTime::now_utc(),
        );
        Ok(Response::new(PresenceChallenge {
            challenge: issued.challenge,
            nonce: issued.nonce.to_vec(),
            expires_at: Some(prost_types::Timestamp {
                seconds: issued.expires_at.unix_timestamp(),
                nanos: 0,
            }),
        }))
    }

    type CheckCoverageBatchStream = BatchStream;

    async fn check_coverage_batch(
        &self,
        request: Request<Streaming<CheckCoverageRequest>>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = Arc::new(self.0.admit(&request, CHECKERS).await?);
        let checks = self.0.clone();
        let concurrency = checks.batch_concurrency;
        // Items are checked concurrently but answered in the order sent.
        let results = request
            .into_inner()
            .enumerate()
            .map(move |(index, item)| {
                let (checks, caller) = (checks.clone(), caller.clone());
                async move {
                    let req = item?;
                    let request_id = req.request_id.clone();
                    let outcome = match checks.check(&caller, req).await {
                        Ok(response) => batch_item_result::Outcome::Response(response),
                        Err(status) => batch_item_result::Outcome::Error(ItemError {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        }),
                    };
                    Ok(BatchItemResult {
                        request_id,
                        index: index as u32,
                        outcome: Some(outcome),
                    })
                }
            })
            .buffered(concurrency);
        Ok(Response::new(Box::pin(results)))
    }
}
