/**
 * Pseudonym vault micro-benchmark: the cost of a creation, of pseudonymizing a value the vault
 * already holds, and of a lookup, per SQLite `synchronous` setting. It ran inside the test suite
 * once, as a test that could not fail; a measurement belongs here.
 * Usage: npm run build && node dist/bench/vault.bench.js  [-- --n 10000]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lookupOne, pseudonymizeOne } from '../src/deid/deid-types.js';
import { SqlitePseudonymVault } from '../src/deid/vault.js';
import { numberArg } from './support/fhir-server-process.js';

const n = numberArg('n', 10_000);
const MRN = 'http://hospital.example/mrn';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-vault-bench-'));
const key = crypto.randomBytes(32);

/** Microseconds per call of `call` over n values, one call at a time. */
async function microsPerCall(call: (i: number) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await call(i);
  return Number(process.hrtime.bigint() - started) / n / 1000;
}

try {
  for (const synchronous of ['NORMAL', 'FULL'] as const) {
    const vault = SqlitePseudonymVault.open({ file: path.join(dir, `bench-${synchronous}.db`), key, synchronous });
    const create = await microsPerCall((i) => pseudonymizeOne(vault, MRN, `BENCH-${i}`));
    const existing = await microsPerCall((i) => pseudonymizeOne(vault, MRN, `BENCH-${i}`));
    const lookup = await microsPerCall((i) => lookupOne(vault, MRN, `BENCH-${i}`));
    // A resource's new pairs go in one batch (one vault transaction): the per-value cost of that.
    const keys = Array.from({ length: n }, (_, i) => ({ domain: MRN, value: `BATCH-${i}` }));
    const batchStarted = process.hrtime.bigint();
    await vault.pseudonymizeMany(keys);
    const batch = Number(process.hrtime.bigint() - batchStarted) / n / 1000;
    console.log(`synchronous=${synchronous}: ${n} creations ${create.toFixed(1)} µs/call, `
      + `${n} pseudonymize of existing pairs ${existing.toFixed(1)} µs/call, ${n} lookups ${lookup.toFixed(1)} µs/call, `
      + `${n} creations in one batch ${batch.toFixed(1)} µs/value`);
    await vault.close();
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
