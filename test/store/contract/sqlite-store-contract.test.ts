/** The Store contract (store-contract.ts) on SqliteStore over a real SQLite file. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { describeStoreContract } from './store-contract.js';

describeStoreContract('SqliteStore (real SQLite file)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-store-contract-'));
  const store = new SqliteStore({ file: path.join(dir, 'fhir.sqlite'), synchronous: 'NORMAL', readCacheEntries: 1000 });
  return {
    store,
    async dispose() {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
