/**
 * The WAL checkpointer on a real SQLite file: the worker copies the log into the database file
 * while the writer goes on, the writer's own automatic checkpoint is only a distant bound, and
 * stopping it leaves the store consistent and reopenable.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { newVersionLeaf } from '../../../src/ledger/version-leaf.js';
import { WalCheckpointer } from '../../../src/store/sqlite/wal-checkpointer.js';
import type { NewVersion } from '../../../src/store/store.js';
import { waitFor } from '../../support/wait-for.js';

let written = 0;
function patientVersion(): NewVersion {
  const id = `p${written++}`;
  const lastUpdated = new Date().toISOString();
  const json = JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: '1', lastUpdated }, text: { status: 'generated', div: 'x'.repeat(2000) } });
  return { resourceType: 'Patient', id, versionId: 1, lastUpdated, json, indexEntries: [], leaf: newVersionLeaf({ resourceType: 'Patient', id, versionId: 1, lastUpdated, json }) };
}

describe('WalCheckpointer (real SQLite file)', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-wal-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('copies committed pages into the database file from its worker while the writer goes on', async () => {
    const file = path.join(dir, 'fhir.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 });
    const sizeBefore = fs.statSync(file).size;
    for (let i = 0; i < 20; i++) {
      await store.transaction(async (tx) => { for (let j = 0; j < 50; j++) await tx.writeVersion(patientVersion()); });
    }
    // About 1,000 rows of 2 KB: far below the writer's own bound of 10,000 pages, so only the
    // worker can have moved them into the main file.
    await waitFor(() => fs.statSync(file).size > sizeBefore + 1_000_000, { what: 'the worker\'s checkpoint' });
    const version = await store.readCurrent('Patient', `p${written - 1}`);
    expect(version?.id).to.equal(`p${written - 1}`);
    await store.close();
    const db = new Database(file, { readonly: true });
    expect((db.prepare('SELECT count(*) AS n FROM versions').get() as { n: number }).n).to.equal(1000);
    db.close();
  });

  it('without it the writer checkpoints as SQLite does by default', async () => {
    const file = path.join(dir, 'plain.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0, backgroundCheckpoints: false });
    const sizeBefore = fs.statSync(file).size;
    for (let i = 0; i < 2; i++) {
      await store.transaction(async (tx) => { for (let j = 0; j < 50; j++) await tx.writeVersion(patientVersion()); });
    }
    // 100 rows stay in the log: nobody checkpointed them before the 1,000-page default. No
    // worker runs, so nothing can move them later: the commits' return is the moment to look.
    expect(fs.statSync(file).size).to.equal(sizeBefore);
    await store.close();
  });

  it('stop() ends the worker even when its database is gone; a second stop() is harmless', async () => {
    const file = path.join(dir, 'gone.sqlite');
    const checkpointer = new WalCheckpointer({ file, synchronous: 'NORMAL', intervalMs: 10 });
    await checkpointer.stop();
    await checkpointer.stop();
  });
});
