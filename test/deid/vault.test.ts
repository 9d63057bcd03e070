/**
 * SqlitePseudonymVault and loadVaultKey on real files in a temporary folder (no mocks): stable
 * random pseudonyms, per-domain separation, lookups that never create, reveal, wrong keys and
 * altered rows refused, no identifier in clear in any of the vault's files, date offsets, key
 * loading, and failures reported as VaultUnavailableError. (The micro-benchmark is bench/vault.bench.ts.)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { lookupOne, pseudonymizeOne, revealOne, VaultUnavailableError } from '../../src/deid/deid-types.js';
import { loadVaultKey } from '../../src/deid/vault-key.js';
import { SqlitePseudonymVault, VAULT_SCHEMA_VERSION } from '../../src/deid/vault.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MRN = 'http://hospital.example/mrn';
const SSN = 'http://hl7.org/fhir/sid/us-ssn';

/** The error `fn` throws (fails the test if it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  expect.fail('expected an error');
}

/** The error `promise` rejects with (fails the test if it resolves). */
async function rejected(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  expect.fail('expected a rejection');
}

describe('SqlitePseudonymVault', () => {
  let dir: string;
  let file: string;
  const key = crypto.randomBytes(32);
  const open = (options: { key?: Buffer; file?: string } = {}) =>
    SqlitePseudonymVault.open({ file: options.file ?? file, key: options.key ?? key, synchronous: 'NORMAL' });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vault-test-'));
    file = path.join(dir, 'nested', 'vault.db');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same pseudonym to the same value, also after close and reopen', async () => {
    const vault = open();
    const p1 = await pseudonymizeOne(vault, MRN, 'MRN-0001');
    expect(await pseudonymizeOne(vault, MRN, 'MRN-0001')).to.equal(p1);
    expect(await lookupOne(vault, MRN, 'MRN-0001')).to.equal(p1);
    await vault.close();

    const again = open();
    expect(await pseudonymizeOne(again, MRN, 'MRN-0001')).to.equal(p1);
    expect(await lookupOne(again, MRN, 'MRN-0001')).to.equal(p1);
    expect(await revealOne(again, MRN, p1)).to.equal('MRN-0001');
    await again.close();
  });

  it('gives different pseudonyms in different domains and to different values', async () => {
    const vault = open();
    const inMrn = await pseudonymizeOne(vault, MRN, '123-45-6789');
    const inSsn = await pseudonymizeOne(vault, SSN, '123-45-6789');
    const other = await pseudonymizeOne(vault, MRN, '123-45-6780');
    expect(inMrn).to.not.equal(inSsn);
    expect(other).to.not.equal(inMrn);
    expect(await revealOne(vault, MRN, inSsn)).to.equal(undefined); // a pseudonym belongs to its domain
    await vault.close();
  });

  it('makes random UUID v4 pseudonyms, not derived from the value or the key', async () => {
    const a = open();
    const b = open({ file: path.join(dir, 'other', 'vault.db') });
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const pa = await pseudonymizeOne(a, 'id:Patient', `patient-${i}`);
      const pb = await pseudonymizeOne(b, 'id:Patient', `patient-${i}`);
      expect(pa).to.match(UUID_V4);
      expect(pb).to.match(UUID_V4);
      expect(pa).to.not.equal(pb); // same key, same value, different vault: unrelated pseudonyms
      seen.add(pa);
    }
    expect(seen.size).to.equal(50);
    await a.close();
    await b.close();
  });

  it('lookup never creates a pair', async () => {
    const vault = open();
    expect(await lookupOne(vault, MRN, 'MRN-404')).to.equal(undefined);
    expect(await lookupOne(vault, MRN, 'MRN-404')).to.equal(undefined);
    expect(await vault.lookupInAnyDomain('MRN-404')).to.deep.equal([]);
    await vault.close();
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare('SELECT count(*) FROM pairs').pluck().get()).to.equal(0);
    raw.close();
  });

  it('finds a value in every domain with lookupInAnyDomain', async () => {
    const vault = open();
    const inMrn = await pseudonymizeOne(vault, MRN, 'A-1');
    const inSsn = await pseudonymizeOne(vault, SSN, 'A-1');
    await pseudonymizeOne(vault, MRN, 'B-2');
    const found = await vault.lookupInAnyDomain('A-1');
    expect(found).to.have.deep.members([{ domain: MRN, pseudonym: inMrn }, { domain: SSN, pseudonym: inSsn }]);
    expect(found).to.have.length(2);
    expect(await vault.lookupInAnyDomain('A-')).to.deep.equal([]);
    await vault.close();
  });

  it('reveals the real value of a pseudonym, and undefined for an unknown one', async () => {
    const vault = open();
    const values = ['MRN-1', 'Ünïcødé 名前 😀', '', ' spaces ', 'a\u0000b'];
    const pseudonyms = await vault.pseudonymizeMany(values.map((value) => ({ domain: MRN, value })));
    expect(await vault.revealMany(pseudonyms.map((value) => ({ domain: MRN, value })))).to.deep.equal(values);
    expect(await revealOne(vault, MRN, crypto.randomUUID())).to.equal(undefined);
    expect(await revealOne(vault, 'id:Patient', pseudonyms[0]!)).to.equal(undefined);
    await vault.close();
  });

  it('rejects a domain containing U+0000 and values that are not well-formed Unicode', async () => {
    const vault = open();
    expect(await rejected(pseudonymizeOne(vault, 'a\u0000b', 'x'))).to.be.instanceOf(RangeError);
    expect(await rejected(pseudonymizeOne(vault, MRN, 'lone \ud800 surrogate'))).to.be.instanceOf(RangeError);
    await vault.close();
  });

  it('refuses to open with a wrong key (no second pseudonyms), and opens again with the right one', async () => {
    const key = crypto.randomBytes(32);
    const vault = open({ key });
    const p = await pseudonymizeOne(vault, MRN, 'SECRET-MRN-42');
    await vault.close();

    const err = thrown(() => open({ key: crypto.randomBytes(32) }));
    expect(err).to.be.instanceOf(VaultUnavailableError);
    expect(err.message).to.match(/not the key of/);
    expect(err.message).to.not.contain(key.toString('hex'));

    const again = open({ key });
    expect(await lookupOne(again, MRN, 'SECRET-MRN-42')).to.equal(p);
    await again.close();
  });

  it('refuses a row whose ciphertext was altered or moved to another row', async () => {
    const vault = open();
    const p1 = await pseudonymizeOne(vault, MRN, 'TAMPER-1');
    const p2 = await pseudonymizeOne(vault, MRN, 'TAMPER-2');
    await vault.close();

    const raw = new Database(file);
    const sealed = raw.prepare('SELECT sealed FROM pairs WHERE pseudonym = ?').pluck();
    const s1 = sealed.get(p1) as Buffer;
    const flipped = Buffer.from(s1);
    flipped[flipped.length - 1]! ^= 0x01;
    raw.prepare('UPDATE pairs SET sealed = ? WHERE pseudonym = ?').run(flipped, p1);
    raw.prepare('UPDATE pairs SET sealed = ? WHERE pseudonym = ?').run(s1, p2); // a valid value, wrong row
    raw.close();

    const again = open();
    for (const p of [p1, p2]) {
      const err = await rejected(revealOne(again, MRN, p));
      expect(err).to.be.instanceOf(VaultUnavailableError);
      expect(err.message).to.not.match(/TAMPER/);
    }
    await again.close();
  });

  it('refuses a pair whose pseudonym and ciphertext were moved onto another value\'s row', async () => {
    const vault = open();
    const p1 = await pseudonymizeOne(vault, MRN, 'SHUFFLE-1');
    await pseudonymizeOne(vault, MRN, 'SHUFFLE-2');
    await vault.close();

    // Give SHUFFLE-2's row the pseudonym and sealed value of SHUFFLE-1: the AAD still matches, the
    // lookup hash does not.
    const raw = new Database(file);
    const row = raw.prepare('SELECT lookup_hash, sealed FROM pairs WHERE pseudonym = ?').get(p1) as { lookup_hash: Buffer; sealed: Buffer };
    raw.prepare('DELETE FROM pairs WHERE pseudonym = ?').run(p1);
    raw.prepare('UPDATE pairs SET pseudonym = ?, sealed = ? WHERE lookup_hash <> ?').run(p1, row.sealed, row.lookup_hash);
    raw.close();

    const again = open();
    const err = await rejected(revealOne(again, MRN, p1));
    expect(err).to.be.instanceOf(VaultUnavailableError);
    expect(err.message).to.match(/inconsistent/);
    await again.close();
  });

  it('never stores a real value in clear in the database, -wal or -shm file', async () => {
    const secrets = ['SSN-987-65-4321', 'MRN-CLEARTEXT-CHECK', 'Zoë Ångström-Ñúñez', 'subject-CLEAR-DATE'];
    const vault = open();
    for (const s of secrets.slice(0, 3)) {
      await pseudonymizeOne(vault, MRN, s);
      await pseudonymizeOne(vault, SSN, s);
    }
    await vault.dateOffsetDays(secrets[3]!, 365);
    const scan = () => {
      const files = [file, `${file}-wal`, `${file}-shm`].filter((f) => fs.existsSync(f));
      for (const f of files) {
        const bytes = fs.readFileSync(f);
        for (const s of secrets) {
          for (const encoding of ['utf8', 'utf16le', 'latin1'] as const) {
            expect(bytes.includes(Buffer.from(s, encoding)), `${path.basename(f)} contains ${s} (${encoding})`).to.equal(false);
          }
        }
      }
      return files.length;
    };
    expect(scan()).to.equal(3); // while open: the pairs are in the WAL
    await vault.close();
    expect(scan()).to.be.greaterThan(0); // after close: checkpointed into the main file
  });

  it('creates the vault file, its WAL and shared memory with mode 0600', async function () {
    if (process.platform === 'win32') this.skip();
    const vault = open();
    await pseudonymizeOne(vault, MRN, 'MODE-1');
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      expect(fs.statSync(f).mode & 0o777, path.basename(f)).to.equal(0o600);
    }
    expect(fs.statSync(path.dirname(file)).mode & 0o777).to.equal(0o700);
    await vault.close();
  });

  it('records its schema version', async () => {
    await open().close();
    const raw = new Database(file);
    expect(raw.prepare('SELECT version FROM vault_schema').pluck().get()).to.equal(VAULT_SCHEMA_VERSION);
    raw.prepare('UPDATE vault_schema SET version = ?').run(VAULT_SCHEMA_VERSION + 1);
    raw.close();
    expect(() => open()).to.throw(VaultUnavailableError, /newer/);
  });

  it('gives each subject a stable, random date offset into the past, within maxDays', async () => {
    const vault = open();
    const offsets: number[] = [];
    for (let i = 0; i < 200; i++) {
      const d = await vault.dateOffsetDays(`Patient/${i}`, 30);
      expect(d).to.be.a('number');
      expect(Number.isInteger(d)).to.equal(true);
      expect(d).to.be.within(-30, -1);
      expect(await vault.dateOffsetDays(`Patient/${i}`, 30)).to.equal(d);
      offsets.push(d);
    }
    expect(new Set(offsets).size).to.be.greaterThan(1);
    // maxDays 1: only -1 exists.
    for (let i = 0; i < 50; i++) expect(await vault.dateOffsetDays(`one-day/${i}`, 1)).to.equal(-1);
    expect(await rejected(vault.dateOffsetDays('x', 0))).to.be.instanceOf(RangeError);
    await vault.close();

    const again = open();
    for (const [i, d] of offsets.entries()) expect(await again.dateOffsetDays(`Patient/${i}`, 30)).to.equal(d);
    await again.close();
  });

  it('reads a date offset it holds without ever creating one (knownDateOffsetDays, for previews)', async () => {
    const vault = open();
    expect(await vault.knownDateOffsetDays('Patient/new')).to.equal(undefined);
    expect(await vault.knownDateOffsetDays('Patient/new')).to.equal(undefined);
    const count = () => {
      const db = new Database(file, { readonly: true });
      try { return db.prepare('SELECT count(*) FROM date_offsets').pluck().get(); } finally { db.close(); }
    };
    expect(count()).to.equal(0);
    const d = await vault.dateOffsetDays('Patient/new', 100);
    expect(await vault.knownDateOffsetDays('Patient/new')).to.equal(d);
    await vault.close();
    const again = open();
    expect(await again.knownDateOffsetDays('Patient/new')).to.equal(d);
    await again.close();
  });

  it('refuses an altered date offset', async () => {
    const vault = open();
    await vault.dateOffsetDays('Patient/a', 100);
    await vault.dateOffsetDays('Patient/b', 100);
    await vault.close();
    const raw = new Database(file);
    const rows = raw.prepare('SELECT subject_hash, sealed FROM date_offsets').all() as { subject_hash: Buffer; sealed: Buffer }[];
    // Swap the two subjects' offsets.
    const update = raw.prepare('UPDATE date_offsets SET sealed = ? WHERE subject_hash = ?');
    update.run(rows[1]!.sealed, rows[0]!.subject_hash);
    update.run(rows[0]!.sealed, rows[1]!.subject_hash);
    raw.close();
    const again = open();
    const err = await rejected(again.dateOffsetDays('Patient/a', 100));
    expect(err).to.be.instanceOf(VaultUnavailableError);
    expect(err.message).to.match(/date offset/);
    await again.close();
  });

  it('reports a file that cannot be opened as VaultUnavailableError', async () => {
    fs.mkdirSync(file, { recursive: true }); // the path is a directory
    expect(() => open()).to.throw(VaultUnavailableError, /cannot open the vault file/);

    const garbage = path.join(dir, 'garbage.db');
    fs.writeFileSync(garbage, crypto.randomBytes(8192));
    expect(() => open({ file: garbage })).to.throw(VaultUnavailableError);

    expect(() => open({ key: crypto.randomBytes(16) })).to.throw(VaultUnavailableError, /32 bytes/);
  });

  it('reports use after close as VaultUnavailableError without the value', async () => {
    const vault = open();
    await vault.close();
    await vault.close(); // idempotent
    for (const call of [
      () => pseudonymizeOne(vault, MRN, 'CLOSED-VALUE'),
      () => lookupOne(vault, MRN, 'CLOSED-VALUE'),
      () => vault.lookupInAnyDomain('CLOSED-VALUE'),
      () => revealOne(vault, MRN, crypto.randomUUID()),
      () => vault.dateOffsetDays('CLOSED-VALUE', 10),
    ]) {
      const err = await rejected(call());
      expect(err).to.be.instanceOf(VaultUnavailableError);
      expect(err.message).to.match(/closed/);
      expect(err.message).to.not.contain('CLOSED-VALUE');
    }
  });

  it('reports a locked vault as VaultUnavailableError', async function () {
    this.timeout(20000);
    const vault = open();
    await pseudonymizeOne(vault, MRN, 'LOCK-0');
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    other.exec('BEGIN IMMEDIATE'); // another process holds the write lock
    try {
      // Reads still work in WAL mode; the write waits busy_timeout (5 s), then fails.
      expect(await lookupOne(vault, MRN, 'LOCK-0')).to.match(UUID_V4);
      const err = await rejected(pseudonymizeOne(vault, MRN, 'LOCKED-VALUE'));
      expect(err).to.be.instanceOf(VaultUnavailableError);
      expect(err.message).to.match(/SQLITE_BUSY/);
      expect(err.message).to.not.contain('LOCKED-VALUE');
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(await pseudonymizeOne(vault, MRN, 'LOCKED-VALUE')).to.match(UUID_V4);
    await vault.close();
  });

  it('pseudonymizeMany: answers aligned with the keys, repeated keys alike, new pairs in one transaction', async () => {
    const vault = open();
    const known = await pseudonymizeOne(vault, MRN, 'BATCH-KNOWN');
    const before = vault.writeTransactions;
    const keys = [
      ...Array.from({ length: 1000 }, (_, i) => ({ domain: MRN, value: `BATCH-${i}` })),
      { domain: MRN, value: 'BATCH-KNOWN' }, { domain: SSN, value: 'BATCH-1' }, { domain: MRN, value: 'BATCH-1' },
    ];
    const made = await vault.pseudonymizeMany(keys);
    expect(vault.writeTransactions - before).to.equal(1);
    expect(made).to.have.length(keys.length);
    expect(made[1000]).to.equal(known);
    expect(made[1002]).to.equal(made[1]);
    expect(made[1001]).to.not.equal(made[1]);
    expect(new Set(made.slice(0, 1000)).size).to.equal(1000);
    expect(await vault.lookupMany(keys)).to.deep.equal(made);
    expect(await vault.revealMany(keys.map((k, i) => ({ domain: k.domain, value: made[i]! })))).to.deep.equal(keys.map((k) => k.value));
    // Nothing new: no write at all.
    await vault.pseudonymizeMany(keys);
    expect(vault.writeTransactions - before).to.equal(1);
    await vault.close();
  });

  it('answers lookups while a large batch is being written (only committed pairs or none), and an overlapping batch agrees', async () => {
    const vault = open();
    const keys = Array.from({ length: 3000 }, (_, i) => ({ domain: MRN, value: `LARGE-${i}` }));
    let settled = false;
    const batch = vault.pseudonymizeMany(keys).finally(() => { settled = true; });
    // A second batch overlapping the first waits for it and gets the same pseudonyms.
    const overlapping = vault.pseudonymizeMany(keys.slice(0, 10));
    const seen: (string | undefined)[] = [];
    while (!settled) {
      // As requests arrive: each in a later turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      seen.push(await lookupOne(vault, MRN, 'LARGE-0'));
    }
    const made = await batch;
    expect(seen.length, 'lookups answered while the batch was written').to.be.greaterThan(1);
    for (const answer of seen) expect([undefined, made[0]]).to.include(answer);
    expect(await overlapping).to.deep.equal(made.slice(0, 10));
    await vault.close();
  });

});

describe('loadVaultKey', () => {
  let dir: string;
  const key = crypto.randomBytes(32);
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vault-test-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const defaults = () => ({ defaultKeyFile: path.join(dir, 'keys', 'vault.key'), createIfMissing: false });

  it('reads a key value in hex or base64, which wins over any file', async () => {
    fs.mkdirSync(path.join(dir, 'keys'));
    fs.writeFileSync(defaults().defaultKeyFile, `${crypto.randomBytes(32).toString('hex')}\n`);
    expect(loadVaultKey({ ...defaults(), keyHex: key.toString('hex') }).equals(key)).to.equal(true);
    expect(loadVaultKey({ ...defaults(), keyHex: key.toString('hex').toUpperCase() }).equals(key)).to.equal(true);
    expect(loadVaultKey({ ...defaults(), keyHex: key.toString('base64') }).equals(key)).to.equal(true);
    expect(loadVaultKey({ ...defaults(), keyHex: ` ${key.toString('base64url')}\n` }).equals(key)).to.equal(true);
  });

  it('reads the first line of a key file, hex or base64', async () => {
    const hexFile = path.join(dir, 'hex.key');
    fs.writeFileSync(hexFile, `${key.toString('hex')}\r\nsecond line ignored\n`);
    expect(loadVaultKey({ ...defaults(), keyFile: hexFile }).equals(key)).to.equal(true);
    const b64File = path.join(dir, 'b64.key');
    fs.writeFileSync(b64File, key.toString('base64'));
    expect(loadVaultKey({ ...defaults(), keyFile: b64File }).equals(key)).to.equal(true);
    // An empty key value counts as unset.
    expect(loadVaultKey({ ...defaults(), keyHex: '', keyFile: b64File }).equals(key)).to.equal(true);
  });

  it('creates the default key file with mode 0600 when allowed, then keeps using it', async function () {
    const options = { ...defaults(), createIfMissing: true };
    const created = loadVaultKey(options);
    expect(created).to.have.length(32);
    const text = fs.readFileSync(options.defaultKeyFile, 'utf8');
    expect(text).to.equal(`${created.toString('hex')}\n`);
    if (process.platform !== 'win32') expect(fs.statSync(options.defaultKeyFile).mode & 0o777).to.equal(0o600);
    expect(loadVaultKey(options).equals(created)).to.equal(true);
    expect(loadVaultKey({ ...options, createIfMissing: false }).equals(created)).to.equal(true);
  });

  it('refuses to run without a key when it may not create one, or when a named key file is missing', async () => {
    expect(() => loadVaultKey(defaults())).to.throw(VaultUnavailableError, /does not exist/);
    expect(() => loadVaultKey({ ...defaults(), createIfMissing: true, keyFile: path.join(dir, 'missing.key') }))
      .to.throw(VaultUnavailableError, /missing\.key does not exist/);
    expect(fs.existsSync(defaults().defaultKeyFile)).to.equal(false);
  });

  it('rejects malformed keys without printing them', async () => {
    const hex = key.toString('hex');
    const malformed = [hex.slice(0, 62), `${hex}00`, `${hex.slice(0, 63)}g`, key.subarray(0, 31).toString('base64'),
      crypto.randomBytes(33).toString('base64'), 'not a key at all'];
    for (const value of malformed) {
      const err = thrown(() => loadVaultKey({ ...defaults(), keyHex: value }));
      expect(err).to.be.instanceOf(VaultUnavailableError);
      expect(err.message).to.match(/malformed/);
      expect(err.message).to.not.contain(value);
      expect(err.message).to.not.contain(value.slice(0, 8));

      const f = path.join(dir, 'bad.key');
      fs.writeFileSync(f, `${value}\n`);
      const fileErr = thrown(() => loadVaultKey({ ...defaults(), keyFile: f }));
      expect(fileErr).to.be.instanceOf(VaultUnavailableError);
      expect(fileErr.message).to.match(/malformed/);
      expect(fileErr.message).to.not.contain(value.slice(0, 8));
    }
    const empty = path.join(dir, 'empty.key');
    fs.writeFileSync(empty, '');
    expect(() => loadVaultKey({ ...defaults(), keyFile: empty })).to.throw(VaultUnavailableError, /malformed/);
  });

  it('gives a key that opens a vault', async () => {
    const k = loadVaultKey({ defaultKeyFile: path.join(dir, 'vault.key'), createIfMissing: true });
    const vault = SqlitePseudonymVault.open({ file: path.join(dir, 'vault.db'), key: k });
    const p = await pseudonymizeOne(vault, MRN, 'KEY-1');
    await vault.close();
    const again = SqlitePseudonymVault.open({
      file: path.join(dir, 'vault.db'),
      key: loadVaultKey({ defaultKeyFile: path.join(dir, 'vault.key'), createIfMissing: false }),
    });
    expect(await revealOne(again, MRN, p)).to.equal('KEY-1');
    await again.close();
  });
});
