/**
 * SQLite schema, applied as numbered migrations tracked in `PRAGMA user_version`.
 *
 * - resources: one row per logical resource (its current version number and state).
 * - versions: every version ever written (history), the JSON text stored once; `seq` orders
 *   system-wide history.
 * - search_params: interned (resource type, parameter code) pairs, so index rows carry a small
 *   integer instead of repeating strings.
 * - idx_*: index values of the CURRENT version of each resource, one table per parameter type.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE resources (
    rid          INTEGER PRIMARY KEY,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version_id   INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (type, id)
  );
  CREATE INDEX resources_type_updated ON resources (type, last_updated);

  CREATE TABLE versions (
    seq          INTEGER PRIMARY KEY,
    rid          INTEGER NOT NULL REFERENCES resources (rid),
    version_id   INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    content      TEXT,
    UNIQUE (rid, version_id)
  );
  CREATE INDEX versions_updated ON versions (last_updated);

  CREATE TABLE search_params (
    pid  INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    code TEXT NOT NULL,
    UNIQUE (type, code)
  );

  CREATE TABLE idx_string (rid INTEGER NOT NULL, pid INTEGER NOT NULL, value TEXT NOT NULL, raw TEXT NOT NULL);
  CREATE INDEX idx_string_lookup ON idx_string (pid, value);
  CREATE INDEX idx_string_rid ON idx_string (rid);

  CREATE TABLE idx_token (rid INTEGER NOT NULL, pid INTEGER NOT NULL, system TEXT, code TEXT, text TEXT);
  CREATE INDEX idx_token_lookup ON idx_token (pid, code, system);
  CREATE INDEX idx_token_rid ON idx_token (rid);

  CREATE TABLE idx_date (rid INTEGER NOT NULL, pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL);
  CREATE INDEX idx_date_lookup ON idx_date (pid, low, high);
  CREATE INDEX idx_date_rid ON idx_date (rid);

  CREATE TABLE idx_number (rid INTEGER NOT NULL, pid INTEGER NOT NULL, value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL);
  CREATE INDEX idx_number_lookup ON idx_number (pid, value);
  CREATE INDEX idx_number_rid ON idx_number (rid);

  CREATE TABLE idx_quantity (rid INTEGER NOT NULL, pid INTEGER NOT NULL, value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
                             system TEXT, code TEXT, unit TEXT);
  CREATE INDEX idx_quantity_lookup ON idx_quantity (pid, value);
  CREATE INDEX idx_quantity_rid ON idx_quantity (rid);

  CREATE TABLE idx_reference (rid INTEGER NOT NULL, pid INTEGER NOT NULL, target_type TEXT, target_id TEXT, url TEXT NOT NULL);
  CREATE INDEX idx_reference_lookup ON idx_reference (pid, target_id, target_type);
  CREATE INDEX idx_reference_url ON idx_reference (pid, url);
  CREATE INDEX idx_reference_rid ON idx_reference (rid);

  CREATE TABLE idx_uri (rid INTEGER NOT NULL, pid INTEGER NOT NULL, value TEXT NOT NULL);
  CREATE INDEX idx_uri_lookup ON idx_uri (pid, value);
  CREATE INDEX idx_uri_rid ON idx_uri (rid);
  `,
];

/** Index table of each index entry kind. */
export const INDEX_TABLES = {
  string: 'idx_string',
  token: 'idx_token',
  date: 'idx_date',
  number: 'idx_number',
  quantity: 'idx_quantity',
  reference: 'idx_reference',
  uri: 'idx_uri',
} as const;
