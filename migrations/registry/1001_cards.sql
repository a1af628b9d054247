-- The coverage registry: one row per BHYT card, as a social-security export would list them.
-- Portable between SQLite and PostgreSQL (queried through sqlx's Any driver): dates are ISO
-- 'YYYY-MM-DD' text, small numbers BIGINT.
CREATE TABLE cards (
    card_number              TEXT PRIMARY KEY,      -- 15-character form
    social_insurance_number  TEXT NOT NULL,         -- 10-digit mã số BHXH
    citizen_id               TEXT,                  -- 12-digit; NULL for a child without an ID
    full_name                TEXT NOT NULL,
    birth_year               BIGINT NOT NULL,
    birth_month              BIGINT,                -- NULL when only the year is recorded
    birth_day                BIGINT,
    sex                      TEXT NOT NULL,         -- 'M' or 'F'
    category                 TEXT NOT NULL,
    benefit_level            BIGINT NOT NULL,
    province_code            TEXT NOT NULL,         -- 2-digit province of issue
    valid_from               TEXT NOT NULL,
    valid_to                 TEXT NOT NULL,
    primary_care_facility    TEXT NOT NULL,
    area_code                TEXT,                  -- K1/K2/K3
    five_year_date           TEXT,
    issuing_office           TEXT NOT NULL,
    status                   TEXT NOT NULL,         -- see coverage::CardStatus
    insurer                  TEXT NOT NULL,         -- see coverage::Insurer
    replaced_by              TEXT                   -- the new card's number when re-issued
                                                    -- (checked by the import, not by a foreign
                                                    -- key, so both databases behave alike)
);

CREATE INDEX cards_by_citizen ON cards (citizen_id);
CREATE INDEX cards_by_social_insurance_number ON cards (social_insurance_number);
-- Finds the older cards that name a card as their replacement: their answers change with it.
CREATE INDEX cards_by_replaced_by ON cards (replaced_by);
