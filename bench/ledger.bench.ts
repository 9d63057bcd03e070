/**
 * Ledger benchmark (issue: tamper-evident history, "Performance"). One run:
 *  1. create Observation throughput (32 connections), LEDGER=off (leaves written, nothing
 *     anchored) vs LEDGER=on with the embedded chain and default batch settings: the cost of
 *     anchoring on the server that serves the writes;
 *  2. the cost of a leaf itself (salt + RFC 8785 + SHA-256), in-process, per version;
 *  3. writes at a fixed rate (default 1,000/s) with default settings: time from each version's
 *     commit to the mining of the first root that covers it (p50/p95/max), and gas per anchored
 *     version from the receipts.
 * The server runs as its own process, logging to a file. Usage:
 *   npm run build && node dist/bench/ledger.bench.js [--duration 10] [--rate 1000]
 * Results: bench/results/ledger.json and ledger.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { newVersionLeaf } from '../src/ledger/version-leaf.js';
import { numberArg, repoRoot, startFhirServer, type ServerProcess } from './support/fhir-server-process.js';

const duration = numberArg('duration', 10);
const rate = numberArg('rate', 1000);

/** The server of one measurement, its request log beside its data folder. */
function startServer(dataDir: string, env: Record<string, string>): Promise<ServerProcess> {
  return startFhirServer(dataDir, path.join(dataDir, '..', `${path.basename(dataDir)}.log`), env);
}

async function stopServer(server: ServerProcess): Promise<void> {
  await server.stop();
}

function observation(patientId: string) {
  return {
    resourceType: 'Observation', status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2024-01-01T00:00:00Z',
    valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

async function seedPatient(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/Patient`, {
    method: 'POST', headers: { 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01' }),
  });
  return ((await res.json()) as { id: string }).id;
}

async function createLoad(baseUrl: string, patientId: string, options: Partial<autocannon.Options>): Promise<autocannon.Result> {
  const result = await autocannon({
    url: `${baseUrl}/Observation`, method: 'POST', headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify(observation(patientId)), duration, connections: 32, ...options,
  });
  const bad = result.non2xx + result.errors + result.timeouts;
  if (bad > 0) throw new Error(`${bad} failed requests`);
  return result;
}

async function throughput(work: string, name: string, env: Record<string, string>): Promise<number> {
  const server = await startServer(path.join(work, name), env);
  try {
    const patient = await seedPatient(server.baseUrl);
    await createLoad(server.baseUrl, patient, { duration: 2 }); // warm-up
    const result = await createLoad(server.baseUrl, patient, {});
    process.stderr.write(`${name}: ${result.requests.average.toFixed(0)} creates/s, p99 ${result.latency.p99} ms\n`);
    return result.requests.average;
  } finally {
    await stopServer(server);
  }
}

/**
 * The leaf row's own cost in the write transaction: the same INSERT the store runs (next index
 * from max + 1, primary key and (rid, version_id) index), in commits of 32 like a loaded server's
 * group commits, on a real file with WAL and synchronous=NORMAL.
 */
function leafInsertMicrobench(work: string): number {
  const file = path.join(work, 'leaf-insert.sqlite');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE ledger_leaves (leaf_index INTEGER PRIMARY KEY, rid INTEGER NOT NULL, version_id INTEGER NOT NULL, salt BLOB NOT NULL, leaf_hash BLOB NOT NULL); CREATE UNIQUE INDEX ledger_leaves_version ON ledger_leaves (rid, version_id);');
  const insert = db.prepare('INSERT INTO ledger_leaves (leaf_index, rid, version_id, salt, leaf_hash) SELECT coalesce(max(leaf_index) + 1, 0), ?, ?, ?, ? FROM ledger_leaves');
  const commit = db.transaction((from: number) => {
    for (let i = from; i < from + 32; i++) insert.run(i + 1, 1, randomBytes(32), randomBytes(32));
  });
  for (let i = 0; i < 100_000; i += 32) commit(i); // a table that is not empty
  const n = 100_000;
  const start = process.hrtime.bigint();
  for (let i = 100_000; i < 100_000 + n; i += 32) commit(i);
  const micros = Number(process.hrtime.bigint() - start) / 1000 / n;
  db.close();
  return micros;
}

function leafMicrobench(): { microsecondsPerLeaf: number; jsonBytes: number } {
  const lastUpdated = new Date().toISOString();
  const json = JSON.stringify({ ...observation('p'), id: 'x', meta: { versionId: '1', lastUpdated } });
  const version = { resourceType: 'Observation', id: 'x', versionId: 1, lastUpdated, json };
  for (let i = 0; i < 5000; i++) newVersionLeaf(version);
  const n = 100_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) newVersionLeaf(version);
  return { microsecondsPerLeaf: Number(process.hrtime.bigint() - start) / 1000 / n, jsonBytes: Buffer.byteLength(json) };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function latencyAtRate(work: string): Promise<Record<string, number>> {
  const server = await startServer(path.join(work, 'rate'), {});
  try {
    const patient = await seedPatient(server.baseUrl);
    const result = await createLoad(server.baseUrl, patient, { overallRate: rate });
    process.stderr.write(`fixed rate: ${result.requests.average.toFixed(0)} creates/s\n`);
    // Wait until everything written is anchored.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const p = (await (await fetch(`${server.baseUrl}/$ledger`)).json() as { parameter: { name: string; valueInteger?: number }[] }).parameter;
      const get = (n: string) => p.find((x) => x.name === n)?.valueInteger;
      if (get('treeSize') === get('anchoredSize')) break;
      if (Date.now() > deadline) throw new Error('not anchored within 120 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await stopServer(server);
  }
  const db = new Database(path.join(work, 'rate', 'fhir.sqlite'), { readonly: true });
  try {
    const anchors = db.prepare(`SELECT tree_size, anchored_at, gas_used FROM ledger_anchors WHERE status = 'anchored' ORDER BY tree_size`)
      .all() as { tree_size: number; anchored_at: number; gas_used: number }[];
    const versions = db.prepare(`
      SELECT l.leaf_index, v.last_updated FROM ledger_leaves l JOIN versions v ON v.rid = l.rid AND v.version_id = l.version_id
      ORDER BY l.leaf_index`).all() as { leaf_index: number; last_updated: number }[];
    const latencies: number[] = [];
    let a = 0;
    for (const v of versions) {
      while (anchors[a]!.tree_size <= v.leaf_index) a++;
      latencies.push(anchors[a]!.anchored_at - v.last_updated);
    }
    latencies.sort((x, y) => x - y);
    const gas = anchors.reduce((s, x) => s + x.gas_used, 0);
    const sizes = anchors.map((x, i) => x.tree_size - (i === 0 ? 0 : anchors[i - 1]!.tree_size));
    // Roots of full batches (LEDGER_BATCH_LEAVES or more); the last root of a run is a partial
    // batch, sent when its oldest leaf had waited LEDGER_BATCH_SECONDS.
    const full = anchors.filter((_, i) => sizes[i]! >= 1000);
    const fullGas = full.reduce((s, x) => s + x.gas_used, 0);
    const fullLeaves = sizes.filter((n) => n >= 1000).reduce((s, n) => s + n, 0);
    return {
      creates: versions.length, anchors: anchors.length,
      meanLeavesPerAnchor: versions.length / anchors.length, maxLeavesPerAnchor: Math.max(...sizes),
      gasPerAnchor: gas / anchors.length, gasPerVersion: gas / versions.length,
      fullBatches: full.length, gasPerVersionFullBatches: full.length ? fullGas / fullLeaves : NaN,
      latencyP50Ms: percentile(latencies, 0.5), latencyP95Ms: percentile(latencies, 0.95), latencyMaxMs: latencies[latencies.length - 1]!,
    };
  } finally {
    db.close();
  }
}


async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-ledger-bench-'));
  try {
    const leaf = { ...leafMicrobench(), insertMicroseconds: leafInsertMicrobench(work) };
    process.stderr.write(`leaf: ${leaf.microsecondsPerLeaf.toFixed(1)} µs per version of ${leaf.jsonBytes} bytes, row insert ${leaf.insertMicroseconds.toFixed(1)} µs\n`);
    const off = await throughput(work, 'ledger-off', { LEDGER: 'off' });
    const on = await throughput(work, 'ledger-on', {});
    const rated = await latencyAtRate(work);
    const report = {
      date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model,
      durationSeconds: duration, rate,
      leaf, createThroughput: { ledgerOff: off, ledgerOn: on, anchoringOverhead: 1 - on / off },
      leafShareOfCreate: ((leaf.microsecondsPerLeaf + leaf.insertMicroseconds) / 1e6) * on,
      atFixedRate: rated,
    };
    const table = [
      '| measure | result | target |',
      '|---|---|---|',
      `| gas per anchor (one tx per root) | ${rated.gasPerAnchor!.toFixed(0)} | |`,
      `| gas per anchored version, roots of ≥ 1,000 versions (${rated.fullBatches} roots) | ${rated.gasPerVersionFullBatches!.toFixed(1)} | < 50 at 1,000 per root |`,
      `| gas per anchored version over the whole run at ${rate}/s (mean ${rated.meanLeavesPerAnchor!.toFixed(0)} versions per root, last root partial) | ${rated.gasPerVersion!.toFixed(1)} | |`,
      `| write → anchored, at ${rate} creates/s, default settings | p50 ${rated.latencyP50Ms} ms, p95 ${rated.latencyP95Ms} ms, max ${rated.latencyMaxMs} ms | p95 < 10 s |`,
      `| create Observation, LEDGER=off (leaves only) | ${off.toFixed(0)} /s | |`,
      `| create Observation, LEDGER=on (embedded chain) | ${on.toFixed(0)} /s (${((1 - on / off) * 100).toFixed(1)} % below off) | |`,
      `| leaf cost per version: salt + RFC 8785 + SHA-256 of a ${leaf.jsonBytes}-byte Observation, plus its row insert | ${leaf.microsecondsPerLeaf.toFixed(1)} µs + ${leaf.insertMicroseconds.toFixed(1)} µs = ${(report.leafShareOfCreate * 100).toFixed(1)} % of the server's core at ${on.toFixed(0)} creates/s | < 10 % with anchoring |`,
    ].join('\n');
    const out = path.join(repoRoot, 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'ledger.json'), `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(path.join(out, 'ledger.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
