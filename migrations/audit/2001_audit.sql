-- The audit log: every check, answered or refused. Each backend process (writer) keeps its own
-- hash chain (writer_id, seq), so replicas sharing one PostgreSQL never contend for a chain head.
-- Personal identifiers are stored only as keyed hashes. Times are Unix microseconds (UTC).
CREATE TABLE audit_writers (
    writer_id    TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    key_id       TEXT NOT NULL,       -- the checkpoint signing key this writer uses
    host         TEXT NOT NULL
);

CREATE TABLE audit_records (
    writer_id           TEXT NOT NULL,
    seq                 BIGINT NOT NULL,   -- 1, 2, 3, ... per writer
    record_id           TEXT NOT NULL,     -- the id answers and proof tokens name
    kind                TEXT NOT NULL,     -- check, refusal, connection, audit_read, ...
    recorded_at         BIGINT NOT NULL,
    request_id          TEXT NOT NULL,
    facility_code       TEXT NOT NULL,
    station_id          TEXT NOT NULL,
    operator_hash       TEXT NOT NULL,
    subject_kind        TEXT NOT NULL,
    subject_hash        TEXT NOT NULL,
    subject_sealed      TEXT NOT NULL,     -- the identifier itself, AEAD-encrypted, for auditors
    result              BIGINT NOT NULL,   -- bhyt.verify.v1.ResultCode
    source_code         TEXT NOT NULL,
    error_code          BIGINT NOT NULL,   -- gRPC code of a refusal, 0 when answered
    detail              TEXT NOT NULL,     -- refusal message, peer address, query made, ...
    cache_status        BIGINT NOT NULL,   -- bhyt.verify.v1.CacheStatus
    evidence_method     BIGINT NOT NULL,
    evidence_passive    BIGINT NOT NULL,
    evidence_chip       BIGINT NOT NULL,
    evidence_active     BIGINT NOT NULL,
    evidence_ds_issuer  TEXT NOT NULL,
    latency_micros      BIGINT NOT NULL,
    prev_hash           TEXT NOT NULL,
    record_hash         TEXT NOT NULL,
    PRIMARY KEY (writer_id, seq)
);

CREATE UNIQUE INDEX audit_records_by_id ON audit_records (record_id);
CREATE INDEX audit_records_by_time ON audit_records (recorded_at);
CREATE INDEX audit_records_by_subject ON audit_records (subject_hash, recorded_at);
CREATE INDEX audit_records_by_facility ON audit_records (facility_code, recorded_at);
CREATE INDEX audit_records_by_operator ON audit_records (operator_hash, recorded_at);

-- Signed statements "writer W's chain had seq N with hash H at time T". A closing checkpoint
-- is written at clean shutdown; deleting the newest records contradicts the last checkpoint.
CREATE TABLE audit_checkpoints (
    writer_id    TEXT NOT NULL,
    number       BIGINT NOT NULL,          -- 1, 2, 3, ... per writer
    seq          BIGINT NOT NULL,          -- last record covered (0: none yet)
    record_hash  TEXT NOT NULL,
    signed_at    BIGINT NOT NULL,
    closing      BIGINT NOT NULL,          -- 1 for the writer's last checkpoint
    key_id       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    PRIMARY KEY (writer_id, number)
);

-- Idempotency: a station's request_id maps to the first answer, committed with its audit record.
CREATE TABLE idempotency_keys (
    facility_code  TEXT NOT NULL,
    station_id     TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    payload_hash   TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    response       BYTEA NOT NULL,         -- the encoded CheckCoverageResponse, AEAD-encrypted
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (facility_code, station_id, request_id)
);
