/**
 * Schema migrations of the SQLite store (store/schema-migrations.ts), as an upgrade meets them:
 * a database made by the previous schema is migrated at start and by `fhir-ledger migrate`
 * (its own process) with its data kept and searchable; a database of a newer schema is refused
 * with a clear error and left byte for byte as it was.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { SchemaTooNewError } from '../../../src/store/schema-migrations.js';
import { SQLITE_MIGRATIONS } from '../../../src/store/sqlite/sqlite-schema.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { temporaryDataDir } from '../../support/test-server.js';
import { ids, patient, query, versionOf } from '../contract/store-fixtures.js';

const cli = fileURLToPath(new URL('../../../src/cli.js', import.meta.url));
const CURRENT = SQLITE_MIGRATIONS.length;

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A database as the previous release left it: every migration but the last, and a Patient
 * written with that schema's rows (resource, version, name index row, ledger leaf).
 */
function previousSchemaDatabase(file: string): void {
  const db = new Database(file);
  for (let v = 0; v < CURRENT - 1; v++) db.exec(SQLITE_MIGRATIONS[v]!);
  db.pragma(`user_version = ${CURRENT - 1}`);
  const version = versionOf(patient('kept', 'Keeper'), 1, '2024-03-01T00:00:00.000Z');
  const at = Date.parse(version.lastUpdated);
  db.prepare('INSERT INTO resources (rid, type, id, version_id, last_updated, deleted) VALUES (1, ?, ?, 1, ?, 0)').run('Patient', 'kept', at);
  db.prepare('INSERT INTO versions (rid, version_id, last_updated, deleted, content) VALUES (1, 1, ?, 0, ?)').run(at, version.json);
  db.prepare('INSERT INTO search_params (pid, type, code) VALUES (1, ?, ?)').run('Patient', 'family');
  db.prepare('INSERT INTO idx_string (rid, pid, value, raw) VALUES (1, 1, ?, ?)').run('keeper', 'Keeper');
  db.prepare('INSERT INTO ledger_leaves (leaf_index, rid, version_id, salt, leaf_hash) VALUES (0, 1, 1, ?, ?)')
    .run(version.leaf.salt, version.leaf.leafHash);
  db.close();
}

function schemaVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

describe('SQLite store schema migrations', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = temporaryDataDir('fhir-ledger-migrate-'); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('opening a database of the previous schema migrates it, and its data stays readable and searchable', async () => {
    const file = path.join(dir, 'fhir.sqlite');
    previousSchemaDatabase(file);
    const store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 });
    try {
      expect(store.migration).to.deep.equal({ from: CURRENT - 1, to: CURRENT });
      expect((await store.readCurrent('Patient', 'kept'))?.versionId).to.equal(1);
      expect(ids((await store.search(query('Patient', [['family', 'keep']]))).versions)).to.deep.equal(['kept']);
      // New writes go on from the migrated data: the next leaf follows the old one.
      await store.transaction(async (tx) => tx.writeVersion(versionOf(patient('kept', 'Keeper2'), 2)));
      expect(await store.ledger.treeSize()).to.equal(2);
    } finally {
      await store.close();
    }
    expect(schemaVersion(file)).to.equal(CURRENT);
  });

  it('`fhir-ledger migrate` migrates the DATA_DIR store in its own process, then finds it up to date', async () => {
    previousSchemaDatabase(path.join(dir, 'fhir.sqlite'));
    const first = await runCli(['migrate'], { DATA_DIR: dir });
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.contain(`store schema migrated from version ${CURRENT - 1} to ${CURRENT}`);
    const again = await runCli(['migrate'], { DATA_DIR: dir });
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.contain(`store schema is up to date (version ${CURRENT})`);
  });

  it('a database of a newer schema is refused at open and by migrate, and left unchanged', async () => {
    const file = path.join(dir, 'fhir.sqlite');
    const db = new Database(file);
    db.exec('CREATE TABLE from_the_future (x INTEGER)');
    db.pragma(`user_version = ${CURRENT + 5}`);
    db.close();
    const before = fs.readFileSync(file);

    expect(() => new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 })).to.throw(SchemaTooNewError, `schema version ${CURRENT + 5}`);
    const cli = await runCli(['migrate'], { DATA_DIR: dir });
    expect(cli.code).to.equal(1);
    expect(cli.stderr).to.contain(`has schema version ${CURRENT + 5}, newer than the ${CURRENT} this fhir-ledger knows`);
    expect(fs.readFileSync(file).equals(before)).to.equal(true);
    expect(fs.readdirSync(dir)).to.deep.equal(['fhir.sqlite']);
  });
});
