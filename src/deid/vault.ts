/**
 * The pseudonym vault on SQLite: its own database file, apart from the clinical database, so that
 * the clinical data alone cannot be re-identified (45 CFR 164.514(c): the re-identification code
 * is kept separately and is not derived from the individual's information).
 *
 * Keys. One 32-byte master key; HKDF-SHA256 (RFC 5869) derives two independent sub-keys with
 * distinct `info` labels, one for AES-256-GCM and one for HMAC-SHA256, so that no key is ever used
 * by two algorithms. The master key is uniformly random, so HKDF's salt is left empty (RFC 5869
 * section 3.1: a salt adds little when the input keying material is already a uniform key).
 *
 * What is stored per pair (table `pairs`):
 *   lookup_hash  HMAC(macKey, domain ‖ 0x00 ‖ real), PRIMARY KEY: finds a pair from a real value
 *                without storing it (keyed, so a dictionary of MRNs cannot be hashed offline);
 *   value_hash   HMAC(macKey, "any" ‖ 0x00 ‖ real), indexed: the same value in every domain;
 *   domain       in clear: an identifier system or `id:Patient`, never identifying;
 *   pseudonym    crypto.randomUUID(), indexed with the domain for `reveal`;
 *   sealed       iv(12) ‖ tag(16) ‖ AES-256-GCM(encKey, iv, real, aad = "pair" ‖ 0x00 ‖ domain ‖ 0x00 ‖ pseudonym).
 * The AAD binds a ciphertext to its row (NIST SP 800-38D, section 5.2.1.1: the tag authenticates
 * the additional data too), so a value copied onto another row fails authentication. A random
 * 96-bit IV per value stays far below the 2^32 invocations per key of SP 800-38D section 8.3.
 *
 * The domain must not contain U+0000: the separator then makes "domain ‖ 0 ‖ real" unambiguous.
 * The HMAC labels "any" and "date-offset" may equal a domain name; that is harmless, because each
 * kind of hash is only ever compared within its own column.
 *
 * Durability: the new pairs of a batch (pseudonymizeMany: one resource's identifiers) are one
 * transaction, durable when the promise resolves, before the clinical write that uses them
 * commits. The default is synchronous=FULL (an fsync of the WAL per transaction): a pair lost on
 * power loss while the clinical row survived would leave that row's pseudonym unrevealable and
 * give the same person a second pseudonym. Lookups never write.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { VaultUnavailableError, yieldToEventLoop, type PseudonymVault, type VaultEntryKey } from './deid-types.js';

type Db = Database.Database;
type Statement<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface SqlitePseudonymVaultOptions {
  /** Path of the vault's database file (never the clinical database's). */
  file: string;
  /** The 32-byte master key (see vault-key.ts). */
  key: Buffer;
  /** SQLite `synchronous` in WAL mode; FULL (default) survives power loss, NORMAL a killed process. */
  synchronous?: 'NORMAL' | 'FULL';
}

/** HKDF `info` labels: distinct labels give independent sub-keys (RFC 5869 section 3.2). */
const ENC_KEY_INFO = 'fhir-ledger/pseudonym-vault/v1/aes-256-gcm';
const MAC_KEY_INFO = 'fhir-ledger/pseudonym-vault/v1/hmac-sha256';

const IV_BYTES = 12; // 96 bits, the IV length SP 800-38D section 8.2 recommends
const TAG_BYTES = 16; // full 128-bit tag (SP 800-38D section 5.2.1.2)
const SEP = '\u0000';

/** Each entry brings the file from version i to i+1, in one transaction (table `vault_schema`). */
const VAULT_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE pairs (
    lookup_hash BLOB PRIMARY KEY,
    value_hash  BLOB NOT NULL,
    domain      TEXT NOT NULL,
    pseudonym   TEXT NOT NULL,
    sealed      BLOB NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX pairs_by_value ON pairs (value_hash);
  CREATE UNIQUE INDEX pairs_by_pseudonym ON pairs (domain, pseudonym);
  CREATE TABLE date_offsets (
    subject_hash BLOB PRIMARY KEY,
    sealed       BLOB NOT NULL
  ) WITHOUT ROWID;
  `,
  // The key's fingerprint: a vault opened with another key would silently give known
  // identifiers second pseudonyms (lookups miss), splitting every patient in two.
  `
  CREATE TABLE key_check (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    mac BLOB NOT NULL
  );
  `,
];

const SELECT_PSEUDONYM = 'SELECT pseudonym FROM pairs WHERE lookup_hash = ?';
const SELECT_OFFSET = 'SELECT sealed FROM date_offsets WHERE subject_hash = ?';

/** Unpaired UTF-16 surrogates: they have no UTF-8 form, so two such strings could hash alike. */
const LONE_SURROGATE = /\p{Cs}/u;

function checkText(what: string, value: string): void {
  if (typeof value !== 'string') throw new TypeError(`Pseudonym vault: ${what} must be a string`);
  if (LONE_SURROGATE.test(value)) throw new RangeError(`Pseudonym vault: ${what} is not well-formed Unicode`);
}

function checkKey(key: VaultEntryKey, what: string): void {
  checkDomain(key.domain);
  checkText(what, key.value);
}

/** A pair of a pseudonymizeMany batch: its lookup hash, and its pseudonym once found or stored. */
interface PendingPair {
  domain: string;
  real: string;
  lookupHash: Buffer;
  pseudonym: string | undefined;
}

/**
 * Keys per chunk of a batch: each costs one or two HMACs and an indexed read (an AES-GCM seal
 * when new), a few microseconds; a chunk then holds the event loop for a few milliseconds.
 */
const CHUNK = 256;

function checkDomain(domain: string): void {
  checkText('the domain', domain);
  if (domain === '') throw new RangeError('Pseudonym vault: the domain is empty');
  if (domain.includes(SEP)) throw new RangeError('Pseudonym vault: a domain cannot contain U+0000');
}

export class SqlitePseudonymVault implements PseudonymVault {
  /** The writer connection: migrations, inserts, and the re-selects inside its transactions. */
  private readonly db: Db;
  /**
   * The reader connection. A batch's write transaction stays open across event-loop turns (it is
   * written in chunks); lookups meanwhile read here, and so see only committed pairs (WAL
   * snapshots), never a pseudonym that could still be rolled back.
   */
  private reader: Db | undefined;
  /** Writes one after another: one open transaction on the writer at a time. */
  private writeQueue: Promise<unknown> = Promise.resolve();
  private readonly encKey: crypto.KeyObject;
  private readonly macKey: crypto.KeyObject;
  private closed = false;
  private writeTransactionCount = 0;

  // Prepared once (better-sqlite3 statements are reusable and cheap to run).
  private readonly insertPair: Statement<[Buffer, Buffer, string, string, Buffer]>;
  private readonly reselectPseudonym: Statement<[Buffer], string>;
  private readonly insertOffset: Statement<[Buffer, Buffer]>;
  private readonly reselectOffset: Statement<[Buffer], Buffer>;
  // On the reader connection, prepared once it is open.
  private selectPseudonym!: Statement<[Buffer], string>;
  private selectByValue!: Statement<[Buffer], { domain: string; pseudonym: string }>;
  private selectByPseudonym!: Statement<[string, string], { lookup_hash: Buffer; value_hash: Buffer; sealed: Buffer }>;
  private selectOffset!: Statement<[Buffer], Buffer>;

  /** Opens (creating if needed) the vault file; any failure is a VaultUnavailableError. */
  static open(options: SqlitePseudonymVaultOptions): SqlitePseudonymVault {
    if (!Buffer.isBuffer(options.key) || options.key.length !== 32) {
      throw new VaultUnavailableError('Pseudonym vault: the master key must be 32 bytes');
    }
    const synchronous = options.synchronous ?? 'FULL';
    if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
      throw new VaultUnavailableError('Pseudonym vault: synchronous must be NORMAL or FULL');
    }
    let db: Db | undefined;
    try {
      createPrivateFile(options.file);
      db = new Database(options.file, { fileMustExist: true });
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous}`);
      // A second process holding the write lock: wait, then fail as "unavailable" rather than hang.
      db.pragma('busy_timeout = 5000');
      migrate(db);
      const vault = new SqlitePseudonymVault(db, options.key);
      vault.checkKey(options.file);
      vault.openReader(options.file);
      return vault;
    } catch (err) {
      try { db?.close(); } catch { /* already failing */ }
      if (err instanceof VaultUnavailableError) throw err;
      throw unavailable(`cannot open the vault file ${options.file}`, err);
    }
  }

  private constructor(db: Db, masterKey: Buffer) {
    this.db = db;
    this.encKey = crypto.createSecretKey(Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), ENC_KEY_INFO, 32)));
    this.macKey = crypto.createSecretKey(Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), MAC_KEY_INFO, 32)));
    // ON CONFLICT DO NOTHING without a target covers both the lookup hash (another process, or a
    // concurrent batch, created the pair first) and a (domain, pseudonym) collision.
    this.insertPair = db.prepare(
      'INSERT INTO pairs (lookup_hash, value_hash, domain, pseudonym, sealed) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING');
    this.reselectPseudonym = db.prepare<[Buffer], string>(SELECT_PSEUDONYM).pluck();
    this.insertOffset = db.prepare('INSERT INTO date_offsets (subject_hash, sealed) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.reselectOffset = db.prepare<[Buffer], Buffer>(SELECT_OFFSET).pluck();
  }

  private openReader(file: string): void {
    const reader = new Database(file, { fileMustExist: true, readonly: true });
    this.reader = reader;
    reader.pragma('busy_timeout = 5000');
    this.selectPseudonym = reader.prepare<[Buffer], string>(SELECT_PSEUDONYM).pluck();
    this.selectByValue = reader.prepare('SELECT domain, pseudonym FROM pairs WHERE value_hash = ? ORDER BY domain');
    this.selectByPseudonym = reader.prepare('SELECT lookup_hash, value_hash, sealed FROM pairs WHERE domain = ? AND pseudonym = ?');
    this.selectOffset = reader.prepare<[Buffer], Buffer>(SELECT_OFFSET).pluck();
  }

  /** Runs `work` after every write queued before it (a promise chain as a mutex). */
  private exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const run = this.writeQueue.then(work, work);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  /** Records the key's fingerprint in a new vault; refuses a key that is not the vault's own. */
  private checkKey(file: string): void {
    const fingerprint = this.mac(`key-check${SEP}fhir-ledger pseudonym vault`);
    this.db.prepare('INSERT INTO key_check (id, mac) VALUES (1, ?) ON CONFLICT DO NOTHING').run(fingerprint);
    const recorded = this.db.prepare('SELECT mac FROM key_check WHERE id = 1').pluck().get() as Buffer;
    if (!crypto.timingSafeEqual(recorded, fingerprint)) {
      this.db.close();
      throw new VaultUnavailableError(`Pseudonym vault: the configured key is not the key of ${file} (VAULT_KEY / VAULT_KEY_FILE)`);
    }
  }

  async lookupMany(keys: readonly VaultEntryKey[]): Promise<(string | undefined)[]> {
    for (const key of keys) checkKey(key, 'the value');
    const answers: (string | undefined)[] = new Array(keys.length);
    for (let start = 0; start < keys.length; start += CHUNK) {
      if (start > 0) await yieldToEventLoop();
      const end = Math.min(keys.length, start + CHUNK);
      try {
        for (let i = start; i < end; i++) answers[i] = this.selectPseudonym.get(this.lookupHash(keys[i]!));
      } catch (err) {
        throw this.failure('looking up values', err);
      }
    }
    return answers;
  }

  /**
   * Lookups first (chunked, no write); then the pairs still missing are sealed in chunks, the
   * event loop free between them, and written in ONE transaction: one WAL fsync for the batch,
   * however many pairs it holds.
   */
  async pseudonymizeMany(keys: readonly VaultEntryKey[]): Promise<string[]> {
    for (const key of keys) checkKey(key, 'the value');
    const unique = new Map<string, PendingPair>();
    for (const key of keys) {
      const id = key.domain + SEP + key.value;
      if (!unique.has(id)) unique.set(id, { domain: key.domain, real: key.value, lookupHash: Buffer.alloc(0), pseudonym: undefined });
    }
    const pairs = [...unique.values()];
    for (let start = 0; start < pairs.length; start += CHUNK) {
      if (start > 0) await yieldToEventLoop();
      try {
        for (const pair of pairs.slice(start, start + CHUNK)) {
          pair.lookupHash = this.mac(pair.domain + SEP + pair.real);
          pair.pseudonym = this.selectPseudonym.get(pair.lookupHash);
        }
      } catch (err) {
        throw this.failure('looking up values', err);
      }
    }
    let missing = pairs.filter((p) => p.pseudonym === undefined);
    // A UUID collision within a domain (probability ~2^-122 per pair) loses the insert to the
    // unique index; a fresh UUID then wins. Three rounds are beyond any real need.
    for (let round = 0; round < 3 && missing.length > 0; round++) {
      const rows: [Buffer, Buffer, string, string, Buffer][] = [];
      for (let start = 0; start < missing.length; start += CHUNK) {
        if (start > 0 || round > 0) await yieldToEventLoop();
        for (const pair of missing.slice(start, start + CHUNK)) {
          const pseudonym = crypto.randomUUID();
          rows.push([pair.lookupHash, this.mac('any' + SEP + pair.real), pair.domain, pseudonym, this.seal(pair.real, pairAad(pair.domain, pseudonym))]);
        }
      }
      try {
        await this.insertPairs(rows, missing);
      } catch (err) {
        throw this.failure(`storing ${missing.length} pairs`, err);
      }
      missing = missing.filter((p) => p.pseudonym === undefined);
    }
    if (missing.length > 0) throw new VaultUnavailableError(`Pseudonym vault: could not store a pair in domain ${missing[0]!.domain}`);
    return keys.map((key) => unique.get(key.domain + SEP + key.value)!.pseudonym!);
  }

  /**
   * One transaction for the whole batch, written in chunks with the event loop free between them
   * (20,000 rows at once held it for most of a second); one commit, so one WAL fsync. Readers use
   * the other connection and see none of it before the commit.
   */
  private insertPairs(rows: [Buffer, Buffer, string, string, Buffer][], pairs: PendingPair[]): Promise<void> {
    return this.exclusive(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        for (let start = 0; start < rows.length; start += CHUNK) {
          if (start > 0) await yieldToEventLoop();
          for (const row of rows.slice(start, start + CHUNK)) this.insertPair.run(...row);
        }
        // Re-select rather than trust our own inserts: if another writer won a race, its
        // pseudonym is the one in the file, and the one every caller must get.
        for (let start = 0; start < pairs.length; start += CHUNK) {
          await yieldToEventLoop();
          for (const pair of pairs.slice(start, start + CHUNK)) pair.pseudonym = this.reselectPseudonym.get(pair.lookupHash);
        }
        this.db.exec('COMMIT');
      } catch (err) {
        for (const pair of pairs) pair.pseudonym = undefined;
        try {
          if (this.db.open && this.db.inTransaction) this.db.exec('ROLLBACK');
        } catch { /* already failing */ }
        throw err;
      }
      this.writeTransactionCount++;
    });
  }

  async revealMany(keys: readonly VaultEntryKey[]): Promise<(string | undefined)[]> {
    for (const key of keys) checkKey(key, 'the pseudonym');
    const answers: (string | undefined)[] = new Array(keys.length);
    for (let start = 0; start < keys.length; start += CHUNK) {
      if (start > 0) await yieldToEventLoop();
      for (let i = start; i < Math.min(keys.length, start + CHUNK); i++) answers[i] = this.reveal(keys[i]!.domain, keys[i]!.value);
    }
    return answers;
  }

  async lookupInAnyDomain(real: string): Promise<{ domain: string; pseudonym: string }[]> {
    checkText('the value', real);
    const valueHash = this.mac('any' + SEP + real);
    try {
      return this.selectByValue.all(valueHash);
    } catch (err) {
      throw this.failure('looking up a value in every domain', err);
    }
  }

  /** Write transactions committed by this connection (pairs and date offsets), for tests and diagnostics. */
  get writeTransactions(): number {
    return this.writeTransactionCount;
  }

  private lookupHash(key: VaultEntryKey): Buffer {
    return this.mac(key.domain + SEP + key.value);
  }

  private reveal(domain: string, pseudonym: string): string | undefined {
    let row: { lookup_hash: Buffer; value_hash: Buffer; sealed: Buffer } | undefined;
    try {
      row = this.selectByPseudonym.get(domain, pseudonym);
    } catch (err) {
      throw this.failure(`revealing a pseudonym in domain ${domain}`, err);
    }
    if (row === undefined) return undefined;
    const real = this.unseal(row.sealed, pairAad(domain, pseudonym), `a stored value in domain ${domain}`);
    // The AAD ties the ciphertext to (domain, pseudonym); the hashes tie the row's lookup side to
    // the same value, so rows whose columns were shuffled are caught here too.
    if (!crypto.timingSafeEqual(row.lookup_hash, this.mac(domain + SEP + real))
      || !crypto.timingSafeEqual(row.value_hash, this.mac('any' + SEP + real))) {
      throw new VaultUnavailableError(
        `Pseudonym vault: a stored pair in domain ${domain} is inconsistent (its hashes do not match its value; the row was altered)`);
    }
    return real;
  }

  async dateOffsetDays(subject: string, maxDays: number): Promise<number> {
    checkText('the subject', subject);
    if (!Number.isSafeInteger(maxDays) || maxDays < 1) {
      throw new RangeError('Pseudonym vault: maxDays must be a positive integer');
    }
    const subjectHash = this.mac('date-offset' + SEP + subject);
    try {
      let sealed = this.selectOffset.get(subjectHash);
      if (sealed === undefined) {
        // Uniform over [-maxDays, -1]: 0 would leave the subject's dates unshifted, and a shift
        // into the past never turns a recent date (a newborn's birthDate, an instant just
        // recorded) into a future one that profiles forbid. randomInt draws from the CSPRNG
        // without modulo bias.
        const offset = -crypto.randomInt(1, maxDays + 1);
        const plain = Buffer.alloc(4);
        plain.writeInt32BE(offset);
        const row = this.sealBytes(plain, offsetAad(subjectHash));
        sealed = await this.exclusive(() => {
          this.insertOffset.run(subjectHash, row);
          this.writeTransactionCount++;
          return this.reselectOffset.get(subjectHash); // the winner's offset, as in pseudonymizeMany
        });
        if (sealed === undefined) throw new VaultUnavailableError('Pseudonym vault: could not store a date offset');
      }
      // Stored once and returned as stored, even if maxDays changes later: every date of a subject
      // must keep moving by the same amount, or intervals between them would change.
      return this.openOffset(sealed, subjectHash);
    } catch (err) {
      throw this.failure('reading or storing a date offset', err);
    }
  }

  async knownDateOffsetDays(subject: string): Promise<number | undefined> {
    checkText('the subject', subject);
    const subjectHash = this.mac('date-offset' + SEP + subject);
    try {
      const sealed = this.selectOffset.get(subjectHash);
      return sealed === undefined ? undefined : this.openOffset(sealed, subjectHash);
    } catch (err) {
      throw this.failure('reading a date offset', err);
    }
  }

  private openOffset(sealed: Buffer, subjectHash: Buffer): number {
    const plain = this.unsealBytes(sealed, offsetAad(subjectHash), 'a stored date offset');
    if (plain.length !== 4) throw new VaultUnavailableError('Pseudonym vault: a stored date offset is malformed');
    return plain.readInt32BE(0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeQueue; // a batch being written commits (or rolls back) first
    try {
      this.reader?.close();
      this.db.close(); // the last connection: also checkpoints the WAL and removes -wal and -shm
    } catch (err) {
      throw unavailable('closing the vault file failed', err);
    }
  }

  private mac(text: string): Buffer {
    return crypto.createHmac('sha256', this.macKey).update(text, 'utf8').digest();
  }

  private seal(real: string, aad: Buffer): Buffer {
    return this.sealBytes(Buffer.from(real, 'utf8'), aad);
  }

  private sealBytes(plain: Buffer, aad: Buffer): Buffer {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.encKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]);
  }

  private unseal(sealed: Buffer, aad: Buffer, what: string): string {
    return this.unsealBytes(sealed, aad, what).toString('utf8');
  }

  /** Decrypts iv ‖ tag ‖ ciphertext; a failed tag means a wrong key or an altered row. */
  private unsealBytes(sealed: Buffer, aad: Buffer, what: string): Buffer {
    if (!Buffer.isBuffer(sealed) || sealed.length < IV_BYTES + TAG_BYTES) {
      throw new VaultUnavailableError(`Pseudonym vault: ${what} is malformed (too short)`);
    }
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.encKey, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      // OpenSSL's message says nothing useful; ours says what to look at, with no value in it.
      throw new VaultUnavailableError(
        `Pseudonym vault: ${what} failed authentication (wrong vault key, or the row was altered)`);
    }
  }

  /** Any storage error as VaultUnavailableError: the caller must stop writing clinical data. */
  private failure(what: string, err: unknown): VaultUnavailableError {
    if (err instanceof VaultUnavailableError) return err;
    if (this.closed || !this.db.open) return unavailable(`${what} failed: the vault is closed`, err);
    return unavailable(`${what} failed`, err);
  }
}

/** AAD of a pair's ciphertext (SP 800-38D: authenticated, not encrypted). */
function pairAad(domain: string, pseudonym: string): Buffer {
  return Buffer.from('pair' + SEP + domain + SEP + pseudonym, 'utf8');
}

/** AAD of a date offset's ciphertext: binds it to its subject's row. */
function offsetAad(subjectHash: Buffer): Buffer {
  return Buffer.concat([Buffer.from('date-offset' + SEP), subjectHash]);
}

/**
 * The error for a failed storage operation. SQLite's own messages ("database is locked", "disk
 * I/O error", "database or disk is full") never contain bound values, so they are kept; the
 * original error is kept as `cause` for the logs.
 */
function unavailable(what: string, err: unknown): VaultUnavailableError {
  const detail = err instanceof Database.SqliteError
    ? `${err.code}: ${err.message}`
    : (err as NodeJS.ErrnoException | undefined)?.code ?? (err instanceof Error ? err.message : 'unknown error');
  const error = new VaultUnavailableError(`Pseudonym vault: ${what} (${detail})`);
  Object.defineProperty(error, 'cause', { value: err, enumerable: false, writable: true, configurable: true });
  return error;
}

/**
 * Creates the vault file empty with mode 0600 (and its folder 0700) when it does not exist. SQLite
 * creates -wal and -shm with the database file's permissions (its unix VFS copies them), so the
 * whole vault stays private to its owner.
 */
function createPrivateFile(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return; // existing vault: leave it as it is
    throw err;
  }
  try {
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
}

/** Brings the schema to the current version; refuses a file written by a newer version. */
function migrate(db: Db): void {
  // IMMEDIATE: two processes opening a new vault at once must not both run migration 1.
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS vault_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)');
    db.prepare('INSERT INTO vault_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING').run();
    const version = db.prepare('SELECT version FROM vault_schema WHERE id = 1').pluck().get() as number;
    if (version > VAULT_MIGRATIONS.length) {
      throw new VaultUnavailableError(
        `Pseudonym vault: the vault file has schema version ${version}, newer than this server's ${VAULT_MIGRATIONS.length}`);
    }
    for (let v = version; v < VAULT_MIGRATIONS.length; v++) db.exec(VAULT_MIGRATIONS[v]!);
    db.prepare('UPDATE vault_schema SET version = ? WHERE id = 1').run(VAULT_MIGRATIONS.length);
  }).immediate();
}

/** The schema version this code writes (for tests and diagnostics). */
export const VAULT_SCHEMA_VERSION = VAULT_MIGRATIONS.length;
