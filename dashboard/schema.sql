-- Siaga dashboard store, schema version 4 (PRAGMA user_version).
-- Times named *_at are the dashboard's clock (Unix seconds, REAL);
-- ts columns are the gateway's clock as sent (ISO 8601 text).

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    display_name  TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    REAL    NOT NULL
);

-- Sign-in sessions, so that signing out (or deactivating an account) ends a
-- session for good, even if its cookie was copied.
CREATE TABLE IF NOT EXISTS sessions (
    id          TEXT    PRIMARY KEY,     -- random, kept in the signed cookie
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  REAL    NOT NULL,
    revoked_at  REAL
);

CREATE TABLE IF NOT EXISTS gateways (
    gw          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,           -- online / offline
    status_ts   TEXT,                    -- gateway's clock
    reason      TEXT,
    version     TEXT,
    started     TEXT,
    updated_at  REAL NOT NULL,           -- when we learned the state
    health      TEXT,                    -- last health payload (JSON)
    health_at   REAL
);

CREATE TABLE IF NOT EXISTS buttons (
    id          TEXT PRIMARY KEY,        -- button ids are unique across gateways
    gw          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    transport   TEXT NOT NULL,
    site_name   TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    label       TEXT,
    updated_at  REAL NOT NULL
);

-- What each gateway's inventory registers (schema 4): the kind a press of a
-- button is routed by is the one its *own* gateway registered, so another
-- gateway's inventory (a copied configuration, a stolen gateway) cannot send
-- it to another desk. `buttons` keeps one row per button for display; a
-- registration that disagrees with it on the kind does not overwrite it and
-- is a trouble (button_conflict).
CREATE TABLE IF NOT EXISTS registrations (
    gw          TEXT NOT NULL,
    button      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (gw, button)
);
CREATE INDEX IF NOT EXISTS registrations_button ON registrations(button);
-- Buttons registered under two kinds, found from the index alone (issue 11).
CREATE INDEX IF NOT EXISTS registrations_button_kind ON registrations(button, kind);

-- id = 16 * number + kind code (fire 1, sapa 2): each kind's ids run without
-- gaps, so nobody can infer one kind's alarms from gaps in another's numbers.
CREATE TABLE IF NOT EXISTS alarms (
    id               INTEGER PRIMARY KEY,
    number           INTEGER NOT NULL,   -- 1, 2, 3 ... within the kind
    button           TEXT    NOT NULL,
    gw               TEXT    NOT NULL,   -- gateway that carried the latest press
    kind             TEXT    NOT NULL,
    state            TEXT    NOT NULL,   -- unacknowledged / acknowledged / dispatched / resolved
    rev              INTEGER NOT NULL DEFAULT 0,
    press_count      INTEGER NOT NULL DEFAULT 1,
    first_event_id   TEXT    NOT NULL,
    last_event_id    TEXT    NOT NULL,
    first_press_ts   TEXT    NOT NULL,   -- gateway's clock
    opened_at        REAL    NOT NULL,   -- dashboard's clock
    last_press_at    REAL    NOT NULL,
    acknowledged_at  REAL,
    acknowledged_by  TEXT,
    dispatched_at    REAL,
    dispatched_by    TEXT,
    dispatch_unit    TEXT,               -- who was sent
    resolved_at      REAL,
    resolved_by      TEXT,
    resolution       TEXT,               -- real / false_alarm / test
    note             TEXT,
    test             INTEGER NOT NULL DEFAULT 0,  -- raised by a button in test mode: no sound, no escalation
    escalation       INTEGER NOT NULL DEFAULT 0,  -- escalation steps taken while unacknowledged
    escalated_at     REAL,
    -- Why the alarm needs a second look although it was raised (schema 4):
    -- unregistered (its button is in no inventory), kind_mismatch (a press
    -- claimed another kind than the button's registered one), degraded (the
    -- normal path failed on it and a minimal one raised it). NULL when none.
    anomaly          TEXT
);
-- At most one open alarm per button and kind: further presses join it. (Per
-- kind, so that a press routed to the SAPA desk never joins a fire alarm if a
-- button's registered kind changed while an alarm was open.)
CREATE UNIQUE INDEX IF NOT EXISTS alarms_open_button_kind ON alarms(button, kind) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS alarms_kind_state ON alarms(kind, state, opened_at);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_kind_number ON alarms(kind, number);
-- Costs that grow with the work, not the store (issue 11): the board's open and
-- recently closed alarms, the escalator's unacknowledged ones, a period's statistics.
CREATE INDEX IF NOT EXISTS alarms_state_kind ON alarms(state, kind);
CREATE INDEX IF NOT EXISTS alarms_kind_resolved ON alarms(kind, state, resolved_at);
CREATE INDEX IF NOT EXISTS alarms_kind_opened ON alarms(kind, opened_at);

CREATE TABLE IF NOT EXISTS alarm_actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id    INTEGER NOT NULL REFERENCES alarms(id),
    action      TEXT    NOT NULL,        -- opened / acknowledged / resolved (presses: events.alarm_id)
    actor       TEXT    NOT NULL,        -- username, or "gw:<id>" for presses
    at          REAL    NOT NULL,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    note        TEXT,
    event_id    TEXT
);
CREATE INDEX IF NOT EXISTS alarm_actions_alarm ON alarm_actions(alarm_id, id);

CREATE TABLE IF NOT EXISTS events (
    id           TEXT    PRIMARY KEY,    -- event id from the gateway: redelivery is a no-op
    gw           TEXT    NOT NULL,
    button       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,       -- the desk it went to: the button's registered kind (the event's own if unregistered)
    type         TEXT    NOT NULL,
    ts           TEXT    NOT NULL,       -- gateway's clock
    src          TEXT    NOT NULL,
    received_at  REAL    NOT NULL,       -- dashboard's clock
    alarm_id     INTEGER REFERENCES alarms(id),
    suppressed   TEXT,                   -- why a press raised no alarm (out_of_service)
    payload      TEXT    NOT NULL,       -- as the gateway sent it (its own kind included)
    anomaly      TEXT                    -- unregistered / kind_mismatch (schema 4), NULL when none
);
CREATE INDEX IF NOT EXISTS events_button ON events(button, received_at);

-- Messages that passed validation but could not be processed (a bug, or data
-- the store refused): kept raw so that no alarm vanishes without a trace.
CREATE TABLE IF NOT EXISTS rejected_messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    topic    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    error    TEXT,
    payload  BLOB,
    -- Schema 4: what the message was about, when it could be read, so that a
    -- set-aside message is a trouble shown to whoever may know of it.
    gw       TEXT,
    button   TEXT,
    kind     TEXT,                       -- the button's registered kind (else the event's own)
    press    INTEGER NOT NULL DEFAULT 0, -- it was a press
    alarm_id INTEGER                     -- the alarm raised for it anyway (degraded), if any
);

-- Citizens' reports of Perda/Perkada violations (Open311 service requests).
CREATE TABLE IF NOT EXISTS reports (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket           TEXT    NOT NULL UNIQUE,  -- service_request_id, e.g. LAP-2026-000123
    token            TEXT    NOT NULL UNIQUE,  -- Open311 token
    service_code     TEXT    NOT NULL,
    description      TEXT,
    lat              REAL,
    lon              REAL,
    address          TEXT,
    address_id       TEXT,
    area             TEXT,                     -- kecamatan
    attributes       TEXT    NOT NULL DEFAULT '{}',  -- JSON: code -> value or [values]
    media_url        TEXT,                     -- as an Open311 client gave it (never fetched)
    status           TEXT    NOT NULL,
    resolution       TEXT,
    requested_at     REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    source           TEXT    NOT NULL,         -- "web" or "open311:<api key name>"
    -- The reporter: visible to Satpol PP staff only, never on public pages or Open311.
    reporter_name    TEXT,
    reporter_email   TEXT,
    reporter_phone   TEXT,
    device_id        TEXT,
    account_id       TEXT
);
CREATE INDEX IF NOT EXISTS reports_status ON reports(status, requested_at);
CREATE INDEX IF NOT EXISTS reports_updated ON reports(updated_at);

CREATE TABLE IF NOT EXISTS report_photos (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   INTEGER NOT NULL REFERENCES reports(id),
    position    INTEGER NOT NULL,
    path        TEXT    NOT NULL,    -- relative to the photos folder
    sha256      TEXT    NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS report_photos_report ON report_photos(report_id, position);

-- Every status change: who, when, why; public notes are shown to the reporter.
CREATE TABLE IF NOT EXISTS report_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   INTEGER NOT NULL REFERENCES reports(id),
    at          REAL    NOT NULL,
    actor       TEXT    NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    resolution  TEXT,
    note        TEXT,
    public      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS report_history_report ON report_history(report_id, id);

-- Keys of apps that submit reports on citizens' behalf (Open311 api_key). Only a hash is kept.
CREATE TABLE IF NOT EXISTS api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,          -- the first characters, to recognise a key
    key_hash     TEXT    NOT NULL UNIQUE,   -- SHA-256 of the key
    created_at   REAL    NOT NULL,
    created_by   TEXT    NOT NULL,
    revoked_at   REAL,
    last_used_at REAL
);

-- Supervision (schema 3): each trouble from when it began to when it cleared.
CREATE TABLE IF NOT EXISTS troubles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT    NOT NULL,          -- type:subject, one open trouble per key
    type         TEXT    NOT NULL,          -- gateway_offline, button_missing, low_battery, ...
    gw           TEXT,
    button       TEXT,
    subject      TEXT,                      -- what else it is about (a webhook's name)
    kind         TEXT,                      -- the button's kind (who may see it); NULL for a gateway's trouble
    detail       TEXT    NOT NULL,
    began_at     REAL    NOT NULL,          -- best estimate of when it began
    detected_at  REAL    NOT NULL,
    cleared_at   REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS troubles_open_key ON troubles(key) WHERE cleared_at IS NULL;
CREATE INDEX IF NOT EXISTS troubles_began ON troubles(began_at);

-- Escalation (schema 3): webhook notifications, a durable queue of their own.
-- A row stays pending until its receiver answers 2xx (sent), retries run out
-- (failed), or the alarm is acknowledged before it went out (cancelled).
CREATE TABLE IF NOT EXISTS notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id     INTEGER NOT NULL REFERENCES alarms(id),
    kind         TEXT    NOT NULL,          -- the alarm's kind: who may see this row
    event        TEXT    NOT NULL,          -- alarm.escalated / alarm.acknowledged / alarm.resolved
    step         INTEGER NOT NULL,          -- the escalation step it belongs to
    webhook      TEXT    NOT NULL,          -- the receiver's name in dashboard.toml
    payload      TEXT    NOT NULL,          -- the JSON body, fixed when queued
    status       TEXT    NOT NULL DEFAULT 'pending',  -- pending / sent / failed / cancelled
    created_at   REAL    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL    NOT NULL,
    finished_at  REAL,
    last_error   TEXT
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notifications_alarm ON notifications(alarm_id);

-- Audit (schema 3): every operator and administrator action, and every read of
-- SAPA data, with who, when, from where, and the state before and after.
CREATE TABLE IF NOT EXISTS audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL    NOT NULL,
    actor     TEXT    NOT NULL,          -- username ("siaga" for the dashboard itself)
    role      TEXT,
    action    TEXT    NOT NULL,          -- alarm.acknowledged, user.created, sapa.read, login.failed, ...
    subject   TEXT,                      -- alarm:18, user:dina, button:pasar-andoolo-fire-1, ...
    kind      TEXT,                      -- fire / sapa when it concerns an alarm or button: who may read it
    before    TEXT,                      -- JSON
    after     TEXT,                      -- JSON
    ip        TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at);
-- One actor's rows, newest first, read from the index (issue 11).
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log(actor, at);

-- Buttons taken out of service (faulty, under maintenance) or put in test mode,
-- each until an expiry: presses are still stored, but raise no alarm (out of
-- service) or a silent test alarm (test mode).
CREATE TABLE IF NOT EXISTS button_service (
    button      TEXT    PRIMARY KEY,
    mode        TEXT    NOT NULL,        -- out_of_service / test
    reason      TEXT    NOT NULL,
    until       REAL    NOT NULL,
    set_by      TEXT    NOT NULL,
    set_at      REAL    NOT NULL
);

-- Derived data (issue 11). Everything from this line on changes no data and is run again on
-- every start (dashboard/db.py), so that a store of this schema version gains it in place; db.py
-- drops and makes it anew whenever what it finds of it is not exactly this (a table dropped or
-- altered while a dashboard ran, or an earlier design's tables and triggers), so the version stays.
--
-- The statistics page's monthly summaries: each local month's (WITA) alarms tallied by kind and
-- site, computed from the alarms when first asked for, and valid only while the bookkeeping below
-- is what it was computed at. There are no triggers: a trigger that failed (its table dropped or
-- altered) would fail the alarm's own write, and the ingest would retry it for ever. Instead the
-- one writer of alarms (dashboard/alarms/store.py) counts each change of a column the statistics
-- read, in the alarm's transaction but in a savepoint of its own: if counting fails, the alarm is
-- written all the same and the summaries are distrusted (the generation row deleted). Anything else
-- that changes alarms must delete the generation row too. Sites need no bookkeeping: a summary
-- names the buttons' sites it was computed with (a hash of the buttons table's id and site_name).
CREATE TABLE IF NOT EXISTS stats_alarm_changes (
    day      INTEGER PRIMARY KEY,        -- CAST(opened_at / 86400 AS INTEGER); -1: the generation
    changes  INTEGER NOT NULL            -- only ever grows; for day -1 a random number, never reused
);
CREATE TABLE IF NOT EXISTS stats_summaries (
    month          TEXT    PRIMARY KEY,  -- YYYY-MM, local time (WITA)
    generation     INTEGER NOT NULL,     -- stats_alarm_changes' generation when computed
    alarm_changes  INTEGER NOT NULL,     -- the sum of stats_alarm_changes over the month's days, when computed
    sites          TEXT    NOT NULL      -- the hash of every button's site, when computed
);
-- One row per month and kind (a year: two dozen rows), each holding all its sites.
CREATE TABLE IF NOT EXISTS stats_kinds (
    month              TEXT    NOT NULL,
    kind               TEXT    NOT NULL, -- who may read the row: SAPA rows only for the SAPA desk
    alarms             INTEGER NOT NULL,
    open               INTEGER NOT NULL,
    real               INTEGER NOT NULL,
    false_alarm        INTEGER NOT NULL,
    test               INTEGER NOT NULL,
    to_ack             BLOB    NOT NULL, -- seconds from opening to acknowledgement, sorted (array('d') bytes)
    to_resolve         BLOB    NOT NULL, -- seconds from acknowledgement to resolution, sorted
    sites              TEXT    NOT NULL, -- JSON list of its sites, sorted (a button in no inventory: its id)
    site_counts        BLOB    NOT NULL, -- array('q'): alarms, open, real, false_alarm, test of each site
    site_to_ack        BLOB    NOT NULL, -- each site's times, sorted, one run after another
    site_to_ack_ends   BLOB    NOT NULL, -- array('q'): where each site's run ends (bytes)
    site_to_resolve    BLOB    NOT NULL,
    site_to_resolve_ends BLOB  NOT NULL,
    PRIMARY KEY (month, kind)
);
