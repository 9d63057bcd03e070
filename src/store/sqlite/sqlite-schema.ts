/**
 * SQLite schema, applied as numbered migrations tracked in `PRAGMA user_version`.
 *
 * - resources: one row per logical resource (its current version number and state).
 * - versions: every version ever written (history), the JSON text stored once; `seq` orders
 *   system-wide history.
 * - search_params: interned (resource type, parameter code) pairs, so index rows carry a small
 *   integer instead of repeating strings.
 * - idx_*: index values of the CURRENT version of each resource, one table per parameter type.
 *
 * Migration 2, the Merkle log (ledger/):
 * - ledger_leaves: one leaf per version, written in the version's transaction; leaf_index is
 *   the position in the log (0-based, commit order). Which anchor first covers a leaf is not
 *   stored per leaf (that would rewrite every leaf page after each anchor): it is the anchored
 *   row of ledger_anchors with the smallest tree_size > leaf_index.
 * - ledger_nodes: hashes of complete subtrees of 2^level leaves (level >= 4, see
 *   ledger/merkle-log.ts), a cache derived from the leaves that makes roots and proofs O(log n).
 * - ledger_anchors: roots sent to or found on the chain, by tree size.
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
  `
  CREATE TABLE ledger_leaves (
    leaf_index INTEGER PRIMARY KEY,
    rid        INTEGER NOT NULL,
    version_id INTEGER NOT NULL,
    salt       BLOB    NOT NULL,
    leaf_hash  BLOB    NOT NULL
  );
  CREATE UNIQUE INDEX ledger_leaves_version ON ledger_leaves (rid, version_id);

  CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
  ) WITHOUT ROWID;

  CREATE TABLE ledger_anchors (
    tree_size        INTEGER PRIMARY KEY,
    root             BLOB    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'anchored', 'abandoned')),
    tx_hash          TEXT,
    raw_tx           TEXT,
    block_number     INTEGER,
    chain_id         TEXT,
    contract_address TEXT,
    gas_used         INTEGER,
    created_at       INTEGER NOT NULL,
    anchored_at      INTEGER
  );
  `,
  // Migration 3: composite search parameters (search.html#composite) — c1 is the token that
  // comes first in every R4 composite, c2 holds the second component, whatever its type — and
  // the columns behind :of-type (Identifier.type) and :identifier (Reference.identifier).
  `
  CREATE TABLE idx_composite (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL,
    c1_system TEXT, c1_code TEXT,
    c2_system TEXT, c2_code TEXT, c2_value REAL, c2_low REAL, c2_high REAL, c2_text TEXT
  );
  CREATE INDEX idx_composite_lookup ON idx_composite (pid, c1_code, c1_system);
  CREATE INDEX idx_composite_rid ON idx_composite (rid);

  ALTER TABLE idx_token ADD COLUMN of_type TEXT;
  ALTER TABLE idx_reference ADD COLUMN identifier_system TEXT;
  ALTER TABLE idx_reference ADD COLUMN identifier_value TEXT;
  CREATE INDEX idx_reference_identifier ON idx_reference (pid, identifier_value);
  `,
  // Migration 4: covering indexes.
  `
  -- Covering indexes where the hot searches need them: a lookup by value yields rid without
  -- touching the table row, and a per-resource EXISTS probe on a token or date is answered from
  -- the index alone. At a million Observations this is the difference between random table
  -- reads and index-only scans. Other tables keep narrow indexes: every index column is paid
  -- for on every write.
  DROP INDEX idx_string_lookup;    CREATE INDEX idx_string_lookup ON idx_string (pid, value, rid);
  DROP INDEX idx_token_lookup;     CREATE INDEX idx_token_lookup ON idx_token (pid, code, system, rid);
  DROP INDEX idx_token_rid;        CREATE INDEX idx_token_rid ON idx_token (rid, pid, code, system);
  DROP INDEX idx_date_lookup;      CREATE INDEX idx_date_lookup ON idx_date (pid, low, high, rid);
  DROP INDEX idx_date_rid;         CREATE INDEX idx_date_rid ON idx_date (rid, pid, low, high);
  DROP INDEX idx_reference_lookup; CREATE INDEX idx_reference_lookup ON idx_reference (pid, target_id, target_type, rid);
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
  composite: 'idx_composite',
} as const;
