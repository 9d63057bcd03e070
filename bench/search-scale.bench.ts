/**
 * Search at scale (issue: full search API). Loads 1,000,000 Observations over 10,000 Patients
 * through the real server (transaction bundles over HTTP), then measures with 8 concurrent
 * clients the p95 latency of the hot first-page searches, the time of `_total=accurate` over
 * the million, and prints SQLite's query plans for them.
 *
 * Usage: node dist/bench/search-scale.bench.js [--patients 10000] [--per-patient 100]
 *        [--data <dir>] (an existing folder from an earlier run skips the load) [--seconds 20]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SearchParameterRegistry } from '../src/fhir/search-parameter-registry.js';
import { parseSearchQuery } from '../src/fhir/search-query-parser.js';
import { searchCountSql, searchPageSql, type ParamIdSql } from '../src/store/sqlite/sqlite-search-sql.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'src', 'cli.js');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const PATIENTS = Number(arg('patients', '10000'));
const PER_PATIENT = Number(arg('per-patient', '100'));
const SECONDS = Number(arg('seconds', '20'));
const dataDir = path.resolve(arg('data', path.join(os.tmpdir(), `fhir-ledger-search-${PATIENTS}x${PER_PATIENT}`)));

const LOINC = ['8867-4', '29463-7', '8302-2', '2339-0', '8480-6', '8462-4', '2093-3', '2085-9', '4548-4', '39156-5'];
const FAMILIES = ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
  'Hernández', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin'];

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function startServer(): Promise<{ child: ChildProcess; baseUrl: string }> {
  const port = await freePort();
  const log = fs.openSync(path.join(os.tmpdir(), 'fhir-ledger-search-bench.log'), 'w');
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LEDGER: 'off', DEID_MAPPING: 'none' },
    stdio: ['ignore', log, 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${port}/fhir`;
  for (let attempt = 0; ; attempt++) {
    try { if ((await fetch(`${baseUrl}/metadata`)).ok) break; } catch {
      if (attempt > 600 || child.exitCode !== null) throw new Error('server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { child, baseUrl };
}

function patientOf(n: number) {
  return {
    resourceType: 'Patient', id: `p${n}`,
    identifier: [{ system: 'urn:bench:mrn', value: `mrn-${n}` }],
    name: [{ family: FAMILIES[n % FAMILIES.length], given: [`Given${n % 500}`] }],
    gender: n % 2 ? 'male' : 'female',
    birthDate: new Date(Date.UTC(1930, 0, 1) + (n * 7919 % 25_000) * 86_400_000).toISOString().slice(0, 10),
  };
}

function observationOf(patient: number, k: number) {
  const code = LOINC[k % LOINC.length]!;
  return {
    resourceType: 'Observation', status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] },
    subject: { reference: `Patient/p${patient}` },
    effectiveDateTime: new Date(Date.UTC(2015, 0, 1) + ((patient * 31 + k * 977) % 3650) * 86_400_000).toISOString(),
    valueQuantity: { value: 50 + ((patient + k) % 150), unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
  };
}

async function post(baseUrl: string, bundle: unknown): Promise<void> {
  const res = await fetch(baseUrl, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', Prefer: 'return=minimal' }, body: JSON.stringify(bundle) });
  if (res.status !== 200) throw new Error(`load failed: ${res.status} ${(await res.text()).slice(0, 500)}`);
  await res.arrayBuffer();
}

async function load(baseUrl: string): Promise<void> {
  const started = Date.now();
  const BATCH = 500;
  for (let from = 0; from < PATIENTS; from += BATCH) {
    const entry = [];
    for (let n = from; n < Math.min(PATIENTS, from + BATCH); n++) entry.push({ resource: patientOf(n), request: { method: 'PUT', url: `Patient/p${n}` } });
    await post(baseUrl, { resourceType: 'Bundle', type: 'transaction', entry });
  }
  // Observations: 4 loaders in parallel, one bundle of 500 each at a time.
  const total = PATIENTS * PER_PATIENT;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const from = next;
      next += BATCH;
      if (from >= total) return;
      const entry = [];
      for (let j = from; j < Math.min(total, from + BATCH); j++) {
        entry.push({ resource: observationOf(j % PATIENTS, Math.floor(j / PATIENTS)), request: { method: 'POST', url: 'Observation' } });
      }
      await post(baseUrl, { resourceType: 'Bundle', type: 'transaction', entry });
      if ((from / BATCH) % 200 === 0) process.stderr.write(`  loaded ${from + BATCH} / ${total} Observations (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  process.stderr.write(`loaded ${PATIENTS} Patients and ${total} Observations in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

/** p50/p95/max of `makePath()` requests from 8 concurrent clients during SECONDS. */
async function latencies(baseUrl: string, makePath: () => string): Promise<{ n: number; p50: number; p95: number; max: number }> {
  const samples: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  const client = async () => {
    while (Date.now() < end) {
      const t = performance.now();
      const res = await fetch(`${baseUrl}/${makePath()}`);
      if (res.status !== 200) throw new Error(`search failed ${res.status}`);
      await res.arrayBuffer();
      samples.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: 8 }, client));
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { n: samples.length, p50: at(0.5), p95: at(0.95), max: samples[samples.length - 1]! };
}

function explain(db: Database.Database, resourceType: string, query: string): string {
  const registry = SearchParameterRegistry.loadR4();
  const pids = new Map((db.prepare('SELECT pid, type, code FROM search_params').all() as { pid: number; type: string; code: string }[])
    .map((r) => [`${r.type}.${r.code}`, r.pid]));
  const paramId: ParamIdSql = (type, code) => ({ sql: '= ?', params: [pids.get(`${type}.${code}`) ?? -1] });
  const parsed = parseSearchQuery(resourceType, [...new URLSearchParams(query)], registry, { defaultCount: 20, maxCount: 1000, strict: true });
  const page = parsed.query.total === 'accurate' ? searchCountSql(parsed.query, paramId) : searchPageSql(parsed.query, paramId);
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${page.sql}`).all(...page.params) as { detail: string }[];
  return plan.map((p) => `    ${p.detail}`).join('\n');
}

async function main(): Promise<void> {
  const fresh = !fs.existsSync(path.join(dataDir, 'fhir.sqlite'));
  const server = await startServer();
  try {
    if (fresh) await load(server.baseUrl);
    else process.stderr.write(`reusing ${dataDir}\n`);
    const random = (n: number) => Math.floor(Math.random() * n);
    const cases: [string, () => string][] = [
      ['Observation?patient=…&code=http://loinc.org|…&date=ge…&_count=20',
        () => `Observation?patient=Patient/p${random(PATIENTS)}&code=${encodeURIComponent(`http://loinc.org|${LOINC[random(LOINC.length)]}`)}&date=ge2018-01-01&_count=20`],
      ['Patient?name=…&_count=20', () => `Patient?name=${FAMILIES[random(FAMILIES.length)]!.slice(0, 4)}&_count=20`],
      ['Patient?birthdate=…&_count=20', () => `Patient?birthdate=${1930 + random(68)}-0${1 + random(9)}&_count=20`],
    ];
    const rows: string[] = [];
    for (const [name, makePath] of cases) {
      await latencies(server.baseUrl, makePath); // warm-up round, same length
      const r = await latencies(server.baseUrl, makePath);
      rows.push(`| \`${name}\` | ${r.n} | ${r.p50.toFixed(1)} ms | ${r.p95.toFixed(1)} ms | ${r.max.toFixed(1)} ms | p95 < 20 ms |`);
      process.stderr.write(`${rows[rows.length - 1]}\n`);
    }
    const totals: number[] = [];
    for (const code of LOINC.slice(0, 5)) {
      const t = performance.now();
      const res = await fetch(`${server.baseUrl}/Observation?code=${encodeURIComponent(`http://loinc.org|${code}`)}&_total=accurate&_count=0`);
      const bundle = await res.json() as { total: number };
      totals.push(performance.now() - t);
      process.stderr.write(`  _total=accurate code=${code}: ${bundle.total} in ${totals[totals.length - 1]!.toFixed(0)} ms\n`);
    }
    rows.push(`| \`Observation?code=…&_total=accurate\` (${PATIENTS * PER_PATIENT / LOINC.length} matches) | ${totals.length} | ${[...totals].sort((a, b) => a - b)[2]!.toFixed(0)} ms | | ${Math.max(...totals).toFixed(0)} ms | < 500 ms |`);

    const db = new Database(path.join(dataDir, 'fhir.sqlite'), { readonly: true });
    const plans = [
      ['Observation', `patient=Patient/p1&code=${encodeURIComponent('http://loinc.org|2339-0')}&date=ge2018-01-01`],
      ['Patient', 'name=smit'],
      ['Patient', 'birthdate=1970-03'],
      ['Observation', `code=${encodeURIComponent('http://loinc.org|2339-0')}&_total=accurate`],
    ].map(([type, q]) => `${type}?${decodeURIComponent(q!)}\n${explain(db, type!, q!)}`).join('\n\n');
    db.close();
    const report = [
      `Search at scale: ${PATIENTS} Patients, ${PATIENTS * PER_PATIENT} Observations, 8 concurrent clients, ${SECONDS} s per search (${os.cpus().length} cores).`,
      '', '| search | requests | p50 | p95 | max | target |', '|---|---|---|---|---|---|', ...rows, '',
      'Query plans (EXPLAIN QUERY PLAN):', '', '```', plans, '```', '',
    ].join('\n');
    const out = path.join(here, '..', '..', 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'search-scale.md'), report);
    process.stdout.write(report);
  } finally {
    server.child.kill('SIGTERM');
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
