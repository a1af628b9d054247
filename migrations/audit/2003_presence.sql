-- The backend's own verdict on a presence proof (PresenceStatus): 0 none offered, 1 verified,
-- 2 offered and not verified. Records written before this column are 0, as they were.
ALTER TABLE audit_records ADD COLUMN evidence_presence BIGINT NOT NULL DEFAULT 0;
