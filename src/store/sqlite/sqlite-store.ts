/**
 * The embedded Store adapter on better-sqlite3 in WAL mode.
 *
 * One connection writes, another reads: WAL gives the reader the last committed snapshot, so a
 * read never sees a transaction that is still running. better-sqlite3 is synchronous; the async
 * transaction callbacks of the Store port run one at a time on the writer (SQLite has a single
 * writer anyway), grouped into shared commits (see `transaction`).
 *
 * Durability: with WAL, a commit is in the WAL file before `COMMIT` returns. With
 * synchronous=NORMAL it survives a killed process (kill -9); FULL also fsyncs each commit, for
 * power loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { FhirError } from '../../fhir/fhir-error.js';
import type { SearchIndexEntry } from '../../fhir/search-index-entry.js';
import type { SearchQuery } from '../../fhir/search-query.js';
import { newVersionLeaf } from '../../ledger/version-leaf.js';
import type {
  HistoryPage, HistoryQuery, LedgerAnchor, LedgerAnchorStatus, LedgerLeafRecord, LedgerLeafWithVersion, LedgerStore,
  NewVersion, ResourceKey, SearchPage, Store, StoredVersion, StoreReader, StoreTransaction, SubtreeHash,
} from '../store.js';
import { CurrentVersionCache } from '../current-version-cache.js';
import { assertSchemaNotNewer, type MigrationReport } from '../schema-migrations.js';
import { INDEX_TABLES, SQLITE_MIGRATIONS } from './sqlite-schema.js';
import { WalCheckpointer, WRITER_AUTOCHECKPOINT_PAGES } from './wal-checkpointer.js';
import { searchCountSql, searchPageSql, searchRidsSql, type ParamIdSql, type SqlFragment } from './sqlite-search-sql.js';
import {
  MAX_SNAPSHOT_RIDS, parseSnapshotToken, SearchSnapshots, searchQueryDigest, snapshotToken, type SnapshotPosition,
} from './search-snapshots.js';

type Db = Database.Database;
type Row = Record<string, unknown>;

interface PendingTransaction {
  work: (tx: StoreTransaction) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Upper bound of transactions sharing one COMMIT, so that one commit never grows unbounded. */
const MAX_TRANSACTIONS_PER_COMMIT = 256;

export interface SqliteStoreOptions {
  /** Path of the database file. */
  file: string;
  synchronous: 'NORMAL' | 'FULL';
  /** Current versions kept in memory for reads by id (0 disables the cache). */
  readCacheEntries: number;
  /** Checkpoint the write-ahead log from a worker thread (wal-checkpointer.ts); default true. */
  backgroundCheckpoints?: boolean;
}

/**
 * Applies the migrations the file lacks (schema-migrations.ts), each in its own transaction;
 * the schema version is SQLite's `user_version`. A file of a newer schema was refused before.
 */
function applyMigrations(db: Db): MigrationReport {
  const current = schemaVersionOf(db);
  for (let v = current; v < SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
      // Versions written before the ledger existed become its first leaves, in commit order,
      // in the migration's transaction: the invariant "every stored version is a leaf" holds
      // from the first moment the ledger tables exist.
      if (v + 1 === LEDGER_MIGRATION) backfillLedgerLeaves(db);
    })();
  }
  return { from: current, to: Math.max(current, SQLITE_MIGRATIONS.length) };
}

function schemaVersionOf(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Schema version that introduced the ledger tables. */
const LEDGER_MIGRATION = 2;
const BACKFILL_PAGE = 5000;

function backfillLedgerLeaves(db: Db): void {
  const page = db.prepare(`
    SELECT v.seq, v.rid, r.type, r.id, v.version_id, v.last_updated, v.deleted, v.content
    FROM versions v JOIN resources r ON r.rid = v.rid WHERE v.seq > ? ORDER BY v.seq LIMIT ?`);
  const insert = db.prepare(INSERT_LEAF_SQL);
  for (let after = 0; ;) {
    const rows = page.all(after, BACKFILL_PAGE) as Row[];
    if (rows.length === 0) return;
    for (const row of rows) {
      const leaf = newVersionLeaf(toStoredVersion(row));
      insert.run(row.rid, row.version_id, leaf.salt, leaf.leafHash);
    }
    after = rows[rows.length - 1]!.seq as number;
  }
}

/** The next leaf index is max + 1 (a seek on the primary key), inside the writing transaction. */
const INSERT_LEAF_SQL = `
  INSERT INTO ledger_leaves (leaf_index, rid, version_id, salt, leaf_hash)
  SELECT coalesce(max(leaf_index) + 1, 0), ?, ?, ?, ? FROM ledger_leaves`;

function toStoredVersion(row: Row): StoredVersion {
  return {
    resourceType: row.type as string,
    id: row.id as string,
    versionId: row.version_id as number,
    lastUpdated: new Date(row.last_updated as number).toISOString(),
    deleted: row.deleted === 1,
    json: (row.content as string | null) ?? null,
  };
}

/** Prepared statements cached by SQL text; each connection has its own cache. */
class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();
  constructor(private readonly db: Db) {}
  get(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }
}

const READ_CURRENT_SQL = `
  SELECT r.type, r.id, r.version_id, r.last_updated, r.deleted, v.content
  FROM resources r JOIN versions v ON v.rid = r.rid AND v.version_id = r.version_id
  WHERE r.type = ? AND r.id = ?`;

/**
 * readCurrent for a batch of keys, given as one JSON array of [type, id] pairs: one bound
 * parameter whatever the batch size, so no variable limit applies. DISTINCT: a key given twice
 * is one row.
 */
const READ_CURRENT_MANY_SQL = `
  SELECT r.type, r.id, r.version_id, r.last_updated, r.deleted, v.content
  FROM (SELECT DISTINCT value ->> 0 AS type, value ->> 1 AS id FROM json_each(?)) k
  CROSS JOIN resources r ON r.type = k.type AND r.id = k.id
  JOIN versions v ON v.rid = r.rid AND v.version_id = r.version_id`;

/** Keys per readCurrentMany query: bounds the work (and the JSON text) of one statement. */
const READ_MANY_BATCH = 500;

/** Versions in the order of the keys that name them, each once. */
function inKeyOrder(keys: ResourceKey[], versions: StoredVersion[]): StoredVersion[] {
  const byKey = new Map(versions.map((v) => [`${v.resourceType}/${v.id}`, v]));
  const ordered: StoredVersion[] = [];
  for (const key of keys) {
    const name = `${key.resourceType}/${key.id}`;
    const version = byKey.get(name);
    if (version) {
      ordered.push(version);
      byKey.delete(name);
    }
  }
  return ordered;
}

const READ_VERSION_SQL = `
  SELECT r.type, r.id, v.version_id, v.last_updated, v.deleted, v.content
  FROM resources r JOIN versions v ON v.rid = r.rid
  WHERE r.type = ? AND r.id = ? AND v.version_id = ?`;

/** A resource as it was when the store's last version was a given `seq` (paging snapshots). */
const VERSION_AT_SQL = `
  SELECT r.type, r.id, v.version_id, v.last_updated, v.deleted, v.content
  FROM resources r JOIN versions v ON v.rid = r.rid
  WHERE r.rid = ? AND v.seq <= ? ORDER BY v.version_id DESC LIMIT 1`;

/** Reads over one connection; shared by the store (reader connection) and transactions (writer). */
class SqliteReader implements StoreReader {
  constructor(
    protected readonly statements: StatementCache,
    protected readonly paramIdSql: ParamIdSql,
    /** Paged searches' result lists; only the reader that serves REST searches keeps them. */
    private readonly snapshots?: SearchSnapshots,
  ) {}

  async readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    return this.readCurrentSync(resourceType, id);
  }

  readCurrentSync(resourceType: string, id: string): StoredVersion | undefined {
    const row = this.statements.get(READ_CURRENT_SQL).get(resourceType, id) as Row | undefined;
    return row ? toStoredVersion(row) : undefined;
  }

  async readCurrentMany(keys: ResourceKey[]): Promise<StoredVersion[]> {
    return inKeyOrder(keys, this.readCurrentManySync(keys));
  }

  /** The current versions of the keys, in no particular order: one query per READ_MANY_BATCH keys. */
  readCurrentManySync(keys: ResourceKey[]): StoredVersion[] {
    const found: StoredVersion[] = [];
    for (let start = 0; start < keys.length; start += READ_MANY_BATCH) {
      const batch = keys.slice(start, start + READ_MANY_BATCH).map((k) => [k.resourceType, k.id]);
      const rows = this.statements.get(READ_CURRENT_MANY_SQL).all(JSON.stringify(batch)) as Row[];
      for (const row of rows) found.push(toStoredVersion(row));
    }
    return found;
  }

  async readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    const row = this.statements.get(READ_VERSION_SQL).get(resourceType, id, versionId) as Row | undefined;
    return row ? toStoredVersion(row) : undefined;
  }

  /**
   * A page of a search. The first page fixes the paging snapshot (search-snapshots.ts); when
   * this reader keeps snapshots and more pages follow, the ordered rids of the matches are
   * kept, and later pages are cut from them, each resource as it was at the snapshot.
   */
  async search(query: SearchQuery): Promise<SearchPage> {
    const queryDigest = searchQueryDigest(query);
    const position = query.snapshot === undefined ? this.currentPosition() : this.checkedSnapshot(query.snapshot, queryDigest);
    const token = snapshotToken({ ...position, queryDigest });
    const listKey = this.snapshots ? token : undefined;
    const kept = query.snapshot !== undefined && listKey ? this.snapshots!.get(listKey) : undefined;

    let versions: StoredVersion[] = [];
    let hasMore = false;
    const wantsPage = !query.countOnly && query.count > 0;
    if (wantsPage && kept && (kept.complete || query.offset + query.count < kept.rids.length)) {
      const rids = kept.rids.slice(query.offset, query.offset + query.count);
      versions = rids.map((rid) => this.versionAt(rid, position.seq)).filter((v): v is StoredVersion => v !== undefined);
      hasMore = query.offset + query.count < kept.rids.length;
    } else if (wantsPage) {
      const page = searchPageSql(query, this.paramIdSql, position.rid);
      versions = (this.statements.get(page.sql).all(...page.params) as Row[]).map(toStoredVersion);
      hasMore = versions.length > query.count;
      if (hasMore) versions.pop();
      // The first page of a search that goes on: keep its matches for the pages to come.
      if (hasMore && query.snapshot === undefined && listKey) {
        const list = searchRidsSql(query, this.paramIdSql, position.rid, MAX_SNAPSHOT_RIDS + 1);
        const rids = (this.statements.get(list.sql).pluck().all(...list.params) as number[]);
        const complete = rids.length <= MAX_SNAPSHOT_RIDS;
        if (!complete) rids.pop();
        this.snapshots!.remember(listKey, { rids, complete });
      }
    }
    let total: number | undefined;
    if (query.total !== 'none' || query.countOnly) {
      if (kept?.complete) {
        total = kept.rids.length;
      } else {
        const count = searchCountSql(query, this.paramIdSql, position.rid);
        total = (this.statements.get(count.sql).get(...count.params) as { n: number }).n;
      }
    }
    return { versions, total, snapshot: token, hasMore };
  }

  /** The store's position now: the last version written and the last resource created. */
  private currentPosition(): SnapshotPosition {
    const row = this.statements.get(
      'SELECT (SELECT coalesce(max(seq), 0) FROM versions) AS seq, (SELECT coalesce(max(rid), 0) FROM resources) AS rid',
    ).get() as { seq: number; rid: number };
    return { seq: row.seq, rid: row.rid };
  }

  /**
   * The position of a paging token this store issued for this query (store.ts SearchPage.snapshot);
   * a 400 for anything else. A position beyond the store's own cannot come from a paging link.
   * The messages name no data: only what is wrong with the token.
   */
  private checkedSnapshot(text: string, queryDigest: string): SnapshotPosition {
    const token = parseSnapshotToken(text);
    const rerun = 'run the search again without _snapshot';
    if (!token) throw FhirError.badRequest(`_snapshot is not a paging token of this server: ${rerun}`, 'value');
    if (token.queryDigest !== queryDigest) {
      throw FhirError.badRequest(`_snapshot belongs to another search (the type, criteria, _sort or compartment differ): ${rerun}`, 'value');
    }
    const now = this.currentPosition();
    if (token.seq > now.seq || token.rid > now.rid) {
      throw FhirError.badRequest(`_snapshot is not a paging token of this server: ${rerun}`, 'value');
    }
    return { seq: token.seq, rid: token.rid };
  }

  /** A resource as it was when the store's last version was `seq`. */
  private versionAt(rid: number, seq: number): StoredVersion | undefined {
    const row = this.statements.get(VERSION_AT_SQL).get(rid, seq) as Row | undefined;
    return row ? toStoredVersion(row) : undefined;
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.resourceType !== undefined) { where.push('r.type = ?'); params.push(query.resourceType); }
    if (query.id !== undefined) { where.push('r.id = ?'); params.push(query.id); }
    if (query.since !== undefined) { where.push('v.last_updated >= ?'); params.push(query.since); }
    const whereSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const from = 'FROM versions v JOIN resources r ON r.rid = v.rid';
    const total = (this.statements.get(`SELECT count(*) AS n ${from} ${whereSql}`).get(...params) as { n: number }).n;
    const rows = this.statements.get(
      `SELECT r.type, r.id, v.version_id, v.last_updated, v.deleted, v.content ${from} ${whereSql}
       ORDER BY v.seq DESC LIMIT ? OFFSET ?`,
    ).all(...params, query.count, query.offset) as Row[];
    return { versions: rows.map(toStoredVersion), total };
  }
}

/** A transaction on the writer connection; only valid while its callback runs. */
class SqliteTransaction extends SqliteReader implements StoreTransaction {
  constructor(statements: StatementCache, paramIdSql: ParamIdSql, private readonly store: SqliteStore) {
    super(statements, paramIdSql);
  }

  async writeVersion(version: NewVersion): Promise<void> {
    this.store.writeVersionSync(version);
  }
}

export class SqliteStore implements Store {
  private readonly writer: Db;
  private readonly reader: Db;
  private readonly writerStatements: StatementCache;
  private readonly readerStatements: StatementCache;
  private readonly readOnly: SqliteReader;
  private readonly paramIds = new Map<string, number>();
  /** Transactions waiting for the next group commit. */
  private readonly pending: PendingTransaction[] = [];
  private batchScheduled = false;
  private readonly idleWaiters: (() => void)[] = [];
  /** Versions written by the open batch; they reach the cache only once COMMIT returned. */
  private batchWrites: StoredVersion[] = [];
  private readonly cache: CurrentVersionCache;
  private readonly checkpointer: WalCheckpointer | undefined;
  readonly ledger: LedgerStore;
  /** The schema version the file had when opened, and the one it has now. */
  readonly migration: MigrationReport;

  constructor(options: SqliteStoreOptions) {
    fs.mkdirSync(path.dirname(options.file), { recursive: true });
    this.cache = new CurrentVersionCache(options.readCacheEntries);
    this.writer = new Database(options.file);
    try {
      // Before any pragma that could write: a file of a newer schema is left exactly as it was.
      assertSchemaNotNewer(`the SQLite store ${options.file}`, schemaVersionOf(this.writer), SQLITE_MIGRATIONS.length);
    } catch (error) {
      this.writer.close();
      throw error;
    }
    this.writer.pragma('journal_mode = WAL');
    this.writer.pragma(`synchronous = ${options.synchronous}`);
    this.writer.pragma('busy_timeout = 5000');
    this.writer.pragma('foreign_keys = ON');
    this.migration = applyMigrations(this.writer);
    if (options.backgroundCheckpoints !== false) {
      this.writer.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT_PAGES}`);
      this.checkpointer = new WalCheckpointer({ file: options.file, synchronous: options.synchronous });
    }
    this.reader = new Database(options.file, { readonly: true });
    this.reader.pragma('busy_timeout = 5000');
    this.writerStatements = new StatementCache(this.writer);
    this.readerStatements = new StatementCache(this.reader);
    for (const row of this.writer.prepare('SELECT pid, type, code FROM search_params').all() as Row[]) {
      this.paramIds.set(`${row.type as string}.${row.code as string}`, row.pid as number);
    }
    this.readOnly = new SqliteReader(this.readerStatements, this.paramIdSql, new SearchSnapshots());
    this.ledger = new SqliteLedgerStore(this.readerStatements, this.writerStatements,
      (work) => this.transaction(async () => work()));
  }

  /** Parameter ids as SQL: one type → `= pid`; a system search → every type's pid for the code. */
  private readonly paramIdSql: ParamIdSql = (resourceType, code): SqlFragment => {
    if (resourceType === null) {
      return { sql: 'IN (SELECT pid FROM search_params WHERE code = ?)', params: [code] };
    }
    // An unknown pid (no resource of the type ever indexed it) matches nothing, which is right.
    return { sql: '= ?', params: [this.paramIds.get(`${resourceType}.${code}`) ?? -1] };
  };

  private paramId(resourceType: string, code: string): number {
    const key = `${resourceType}.${code}`;
    let pid = this.paramIds.get(key);
    if (pid === undefined) {
      pid = Number(this.writerStatements.get('INSERT INTO search_params (type, code) VALUES (?, ?)')
        .run(resourceType, code).lastInsertRowid);
      this.paramIds.set(key, pid);
    }
    return pid;
  }

  async readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    const cached = this.cache.get(resourceType, id);
    if (cached) return cached;
    const version = this.readOnly.readCurrentSync(resourceType, id);
    if (version) this.cache.set(version);
    return version;
  }

  /** Cached versions first; the others in batched queries on the reader, then cached too. */
  async readCurrentMany(keys: ResourceKey[]): Promise<StoredVersion[]> {
    const cached: StoredVersion[] = [];
    const missing: ResourceKey[] = [];
    for (const key of keys) {
      const version = this.cache.get(key.resourceType, key.id);
      if (version) cached.push(version);
      else missing.push(key);
    }
    const read = missing.length > 0 ? this.readOnly.readCurrentManySync(missing) : [];
    for (const version of read) this.cache.set(version);
    return inKeyOrder(keys, [...cached, ...read]);
  }

  readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    return this.readOnly.readVersion(resourceType, id, versionId);
  }

  search(query: SearchQuery): Promise<SearchPage> {
    return this.readOnly.search(query);
  }

  history(query: HistoryQuery): Promise<HistoryPage> {
    return this.readOnly.history(query);
  }

  /**
   * Group commit: transactions that arrive while the writer is busy (or within the same
   * event-loop turn) run one after another inside ONE SQLite transaction, each in its own
   * SAVEPOINT. A failing one is rolled back to its savepoint alone; the others commit together.
   * No caller hears of success before COMMIT has returned, so an acknowledged write is always
   * a committed one, while the commit cost (WAL frames for every touched page) is shared.
   * Each caller still sees all-or-nothing and serial order, which is what the port promises.
   */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve, reject } as PendingTransaction);
      if (!this.batchScheduled) {
        this.batchScheduled = true;
        // setImmediate runs after the I/O phase: requests that arrived in this turn join the batch.
        setImmediate(() => void this.runBatch());
      }
    });
  }

  private async runBatch(): Promise<void> {
    const tx = new SqliteTransaction(this.writerStatements, this.paramIdSql, this);
    const succeeded: { item: PendingTransaction; value: unknown }[] = [];
    const paramIdsAtStart = new Map(this.paramIds);
    try {
      this.writer.exec('BEGIN IMMEDIATE');
    } catch (error) {
      for (const item of this.pending.splice(0)) item.reject(error);
      this.finishBatch();
      return;
    }
    try {
      for (let n = 0; n < MAX_TRANSACTIONS_PER_COMMIT && this.pending.length > 0; n++) {
        const item = this.pending.shift()!;
        const paramIdsBefore = new Map(this.paramIds);
        const writesBefore = this.batchWrites.length;
        this.writer.exec('SAVEPOINT unit');
        try {
          const value = await item.work(tx);
          this.writer.exec('RELEASE unit');
          succeeded.push({ item, value });
        } catch (error) {
          this.writer.exec('ROLLBACK TO unit');
          this.writer.exec('RELEASE unit');
          this.restoreParamIds(paramIdsBefore);
          this.batchWrites.length = writesBefore;
          item.reject(error);
        }
      }
      this.writer.exec('COMMIT');
    } catch (error) {
      // COMMIT (or a savepoint statement) failed, e.g. disk full: nothing of the batch is kept
      // and nobody is told otherwise.
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      this.restoreParamIds(paramIdsAtStart);
      this.batchWrites = [];
      for (const { item } of succeeded) item.reject(error);
      this.finishBatch();
      return;
    }
    for (const version of this.batchWrites) this.cache.set(version);
    this.batchWrites = [];
    for (const { item, value } of succeeded) item.resolve(value);
    this.finishBatch();
  }

  private finishBatch(): void {
    this.batchScheduled = false;
    if (this.pending.length > 0) {
      this.batchScheduled = true;
      setImmediate(() => void this.runBatch());
    } else {
      for (const waiter of this.idleWaiters.splice(0)) waiter();
    }
  }

  /** Interned parameter ids created inside a rolled-back unit no longer exist. */
  private restoreParamIds(snapshot: Map<string, number>): void {
    this.paramIds.clear();
    for (const [k, v] of snapshot) this.paramIds.set(k, v);
  }

  /** Appends a version and replaces the resource's index rows; called inside a transaction. */
  writeVersionSync(version: NewVersion): void {
    const s = this.writerStatements;
    const lastUpdated = Date.parse(version.lastUpdated);
    const deleted = version.json === null ? 1 : 0;
    const existing = s.get('SELECT rid FROM resources WHERE type = ? AND id = ?')
      .get(version.resourceType, version.id) as { rid: number } | undefined;
    let rid: number;
    if (existing) {
      rid = existing.rid;
      s.get('UPDATE resources SET version_id = ?, last_updated = ?, deleted = ? WHERE rid = ?')
        .run(version.versionId, lastUpdated, deleted, rid);
      for (const table of Object.values(INDEX_TABLES)) s.get(`DELETE FROM ${table} WHERE rid = ?`).run(rid);
    } else {
      rid = Number(s.get('INSERT INTO resources (type, id, version_id, last_updated, deleted) VALUES (?, ?, ?, ?, ?)')
        .run(version.resourceType, version.id, version.versionId, lastUpdated, deleted).lastInsertRowid);
    }
    s.get('INSERT INTO versions (rid, version_id, last_updated, deleted, content) VALUES (?, ?, ?, ?, ?)')
      .run(rid, version.versionId, lastUpdated, deleted, version.json);
    // The version's ledger leaf, in the same transaction: no version without its leaf, no
    // leaf without its version (DESIGN.md "The spine").
    s.get(INSERT_LEAF_SQL).run(rid, version.versionId, version.leaf.salt, version.leaf.leafHash);
    for (const entry of version.indexEntries) this.insertIndexEntry(rid, version.resourceType, entry);
    this.batchWrites.push({
      resourceType: version.resourceType, id: version.id, versionId: version.versionId,
      lastUpdated: version.lastUpdated, deleted: deleted === 1, json: version.json,
    });
  }

  private insertIndexEntry(rid: number, resourceType: string, entry: SearchIndexEntry): void {
    const s = this.writerStatements;
    const pid = this.paramId(resourceType, entry.param);
    switch (entry.kind) {
      case 'string':
        s.get('INSERT INTO idx_string (rid, pid, value, raw) VALUES (?, ?, ?, ?)').run(rid, pid, entry.value, entry.raw);
        break;
      case 'token':
        s.get('INSERT INTO idx_token (rid, pid, system, code, text, of_type) VALUES (?, ?, ?, ?, ?, ?)')
          .run(rid, pid, entry.system, entry.code, entry.text, entry.ofType ?? null);
        break;
      case 'date':
        s.get('INSERT INTO idx_date (rid, pid, low, high) VALUES (?, ?, ?, ?)').run(rid, pid, entry.low, entry.high);
        break;
      case 'number':
        s.get('INSERT INTO idx_number (rid, pid, value, low, high) VALUES (?, ?, ?, ?, ?)')
          .run(rid, pid, entry.value, entry.low, entry.high);
        break;
      case 'quantity':
        s.get('INSERT INTO idx_quantity (rid, pid, value, low, high, system, code, unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
          .run(rid, pid, entry.value, entry.low, entry.high, entry.system, entry.code, entry.unit);
        break;
      case 'reference':
        s.get('INSERT INTO idx_reference (rid, pid, target_type, target_id, url, identifier_system, identifier_value) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(rid, pid, entry.targetType, entry.targetId, entry.url, entry.identifierSystem ?? null, entry.identifierValue ?? null);
        break;
      case 'uri':
        s.get('INSERT INTO idx_uri (rid, pid, value) VALUES (?, ?, ?)').run(rid, pid, entry.value);
        break;
      case 'composite': {
        const second = entry.second;
        const c2 = {
          system: 'system' in second ? second.system : null,
          code: 'code' in second ? second.code : null,
          value: 'value' in second && typeof second.value === 'number' ? second.value : null,
          low: 'low' in second ? second.low : null,
          high: 'high' in second ? second.high : null,
          text: second.kind === 'string' ? second.value : null,
        };
        s.get(`INSERT INTO idx_composite (rid, pid, c1_system, c1_code, c2_system, c2_code, c2_value, c2_low, c2_high, c2_text)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
          .run(rid, pid, entry.first.system, entry.first.code, c2.system, c2.code, c2.value, c2.low, c2.high, c2.text);
        break;
      }
    }
  }

  async close(): Promise<void> {
    if (this.batchScheduled) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.checkpointer?.stop();
    this.reader.close();
    this.writer.close();
  }
}

function toAnchor(row: Row): LedgerAnchor {
  return {
    treeSize: row.tree_size as number,
    root: row.root as Buffer,
    status: row.status as LedgerAnchorStatus,
    txHash: (row.tx_hash as string | null) ?? null,
    rawTx: (row.raw_tx as string | null) ?? null,
    blockNumber: (row.block_number as number | null) ?? null,
    chainId: (row.chain_id as string | null) ?? null,
    contractAddress: (row.contract_address as string | null) ?? null,
    gasUsed: (row.gas_used as number | null) ?? null,
    createdAt: row.created_at as number,
    anchoredAt: (row.anchored_at as number | null) ?? null,
  };
}

function toLeaf(row: Row): LedgerLeafRecord {
  return {
    leafIndex: row.leaf_index as number,
    resourceType: row.type as string,
    id: row.id as string,
    versionId: row.version_id as number,
    salt: row.salt as Buffer,
    leafHash: row.leaf_hash as Buffer,
  };
}

/**
 * The ledger tables. Reads go to the reader connection (committed data only); writes are
 * queued as transactions of the store, so they share its group commit and never run on the
 * writer connection while another transaction is open on it.
 */
class SqliteLedgerStore implements LedgerStore {
  constructor(
    private readonly reads: StatementCache,
    private readonly writes: StatementCache,
    private readonly write: (work: () => void) => Promise<void>,
  ) {}

  async treeSize(): Promise<number> {
    const row = this.reads.get('SELECT max(leaf_index) AS m FROM ledger_leaves').get() as { m: number | null };
    return row.m === null ? 0 : row.m + 1;
  }

  async leafHashes(start: number, end: number): Promise<Buffer[]> {
    if (end <= start) return [];
    const rows = this.reads.get('SELECT leaf_hash FROM ledger_leaves WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index')
      .all(start, end) as { leaf_hash: Buffer }[];
    if (rows.length !== end - start) throw new Error(`ledger leaves ${start}..${end - 1} are not all stored`);
    return rows.map((r) => r.leaf_hash);
  }

  async leafOfVersion(resourceType: string, id: string, versionId: number): Promise<LedgerLeafRecord | undefined> {
    const row = this.reads.get(`
      SELECT l.leaf_index, r.type, r.id, l.version_id, l.salt, l.leaf_hash
      FROM resources r JOIN ledger_leaves l ON l.rid = r.rid
      WHERE r.type = ? AND r.id = ? AND l.version_id = ?`).get(resourceType, id, versionId) as Row | undefined;
    return row ? toLeaf(row) : undefined;
  }

  async leavesWithVersions(start: number, limit: number): Promise<LedgerLeafWithVersion[]> {
    const rows = this.reads.get(`
      SELECT l.leaf_index, r.type, r.id, l.version_id, l.salt, l.leaf_hash,
             v.version_id AS v_version_id, v.last_updated, v.deleted, v.content
      FROM ledger_leaves l
      LEFT JOIN resources r ON r.rid = l.rid
      LEFT JOIN versions v ON v.rid = l.rid AND v.version_id = l.version_id
      WHERE l.leaf_index >= ? ORDER BY l.leaf_index LIMIT ?`).all(start, limit) as Row[];
    return rows.map((row) => ({
      ...toLeaf(row),
      resourceType: (row.type as string | null) ?? '',
      id: (row.id as string | null) ?? '',
      version: row.v_version_id === null || row.type === null ? undefined : toStoredVersion(row),
    }));
  }

  async versionsWithoutLeaves(limit: number): Promise<StoredVersion[]> {
    const rows = this.reads.get(`
      SELECT r.type, r.id, v.version_id, v.last_updated, v.deleted, v.content
      FROM versions v JOIN resources r ON r.rid = v.rid
      WHERE NOT EXISTS (SELECT 1 FROM ledger_leaves l WHERE l.rid = v.rid AND l.version_id = v.version_id)
      ORDER BY v.seq LIMIT ?`).all(limit) as Row[];
    return rows.map(toStoredVersion);
  }

  async subtreeHash(level: number, index: number): Promise<Buffer | undefined> {
    const row = this.reads.get('SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?').get(level, index) as { hash: Buffer } | undefined;
    return row?.hash;
  }

  async subtreeHashCount(level: number): Promise<number> {
    const row = this.reads.get('SELECT max(idx) AS m FROM ledger_nodes WHERE level = ?').get(level) as { m: number | null };
    return row.m === null ? 0 : row.m + 1;
  }

  saveSubtreeHashes(hashes: SubtreeHash[]): Promise<void> {
    if (hashes.length === 0) return Promise.resolve();
    return this.write(() => {
      // OR IGNORE: a subtree hash is a pure function of the leaves, so one already stored
      // (by a concurrent or repeated materialization) is the same value.
      const insert = this.writes.get('INSERT OR IGNORE INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)');
      for (const h of hashes) insert.run(h.level, h.index, h.hash);
    });
  }

  async anchors(): Promise<LedgerAnchor[]> {
    return (this.reads.get('SELECT * FROM ledger_anchors ORDER BY tree_size').all() as Row[]).map(toAnchor);
  }

  async anchor(treeSize: number): Promise<LedgerAnchor | undefined> {
    const row = this.reads.get('SELECT * FROM ledger_anchors WHERE tree_size = ?').get(treeSize) as Row | undefined;
    return row ? toAnchor(row) : undefined;
  }

  async latestAnchored(): Promise<LedgerAnchor | undefined> {
    const row = this.reads.get(`SELECT * FROM ledger_anchors WHERE status = 'anchored' ORDER BY tree_size DESC LIMIT 1`)
      .get() as Row | undefined;
    return row ? toAnchor(row) : undefined;
  }

  async firstAnchoredCovering(leafIndex: number): Promise<LedgerAnchor | undefined> {
    const row = this.reads.get(`SELECT * FROM ledger_anchors WHERE status = 'anchored' AND tree_size > ? ORDER BY tree_size LIMIT 1`)
      .get(leafIndex) as Row | undefined;
    return row ? toAnchor(row) : undefined;
  }

  saveAnchor(anchor: LedgerAnchor): Promise<void> {
    return this.write(() => {
      this.writes.get(`
        INSERT OR REPLACE INTO ledger_anchors
          (tree_size, root, status, tx_hash, raw_tx, block_number, chain_id, contract_address, gas_used, created_at, anchored_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        anchor.treeSize, anchor.root, anchor.status, anchor.txHash, anchor.rawTx, anchor.blockNumber,
        anchor.chainId, anchor.contractAddress, anchor.gasUsed, anchor.createdAt, anchor.anchoredAt);
    });
  }
}
