/**
 * REST core benchmark (issue: REST core, "Performance"). One run, side by side:
 *  1. read by id vs a bare Koa server returning the same bytes (32 connections, 3 alternating rounds);
 *  2. create Observation, validated + indexed + durable (32 connections);
 *  3. transaction bundles of 100 Observations (4 connections), in resources per second.
 * The server runs as its own process (as in production, logging to a file); autocannon runs
 * here. Usage: npm run bench  [-- --duration 10]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type autocannon from 'autocannon';
import { waitForJsonLine } from './support/bare-koa-baseline.js';
import { benchObservation as observation, load, postJson, startFhirServer } from './support/fhir-server-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bareKoa = path.join(here, 'bare-koa-server.js');
const repoRoot = path.resolve(here, '..', '..');
const durationArg = process.argv.indexOf('--duration');
const duration = durationArg > 0 ? Number(process.argv[durationArg + 1]) : 10;
const readRounds = 3;
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

async function run(name: string, options: autocannon.Options): Promise<autocannon.Result> {
  return load(name, { duration, ...options });
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-bench-'));
  // The REST core alone: de-identification is measured on top of it by bench/deid.bench.ts
  // (its issue states its cost relative to this benchmark). The ledger is on, as by default.
  const core = { DEID_MAPPING: 'none' };
  const fhir = await startFhirServer(path.join(work, 'data'), path.join(work, 'requests.log'), core);
  const children: ChildProcess[] = [fhir.child];
  try {
    const post = postJson;
    const patient = await post(`${fhir.baseUrl}/Patient`, { resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01', name: [{ family: 'Bench' }] });
    for (let i = 0; i < 200; i++) await post(`${fhir.baseUrl}/Observation`, observation(i, patient.id));
    const readUrl = `${fhir.baseUrl}/Patient/${patient.id}`;
    const readBody = await (await fetch(readUrl)).text();
    const bodyFile = path.join(work, 'patient.json');
    fs.writeFileSync(bodyFile, readBody);

    const bare = spawn(process.execPath, [bareKoa, bodyFile, 'W/"1"'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(bare);
    const barePort = (await waitForJsonLine(bare, 'port')).port as number;

    // 1. reads, side by side: alternating rounds, so that a slow stretch of this shared machine
    //    weighs on both servers alike; the ratio is of the means over the rounds.
    const bareRounds: number[] = [];
    const fhirRounds: number[] = [];
    let fhirRead: autocannon.Result | undefined;
    for (let round = 0; round < readRounds; round++) {
      bareRounds.push((await run(`bare Koa, same bytes (round ${round + 1})`, { url: `http://127.0.0.1:${barePort}/fhir/Patient/${patient.id}`, connections: 32 })).requests.average);
      fhirRead = await run(`FHIR read by id (round ${round + 1})`, { url: readUrl, connections: 32 });
      fhirRounds.push(fhirRead.requests.average);
    }
    bare.kill();
    const bareRead = { requests: { average: mean(bareRounds) } };
    const fhirReadMean = mean(fhirRounds);

    // 2. creates
    const createBody = JSON.stringify(observation(1, patient.id));
    const creates = await run('create Observation', {
      url: `${fhir.baseUrl}/Observation`, connections: 32, method: 'POST',
      headers: { 'content-type': 'application/fhir+json' }, body: createBody,
    });

    // 3. transaction bundles of 100 resources
    const bundle = JSON.stringify({
      resourceType: 'Bundle', type: 'transaction',
      entry: Array.from({ length: 100 }, (_, i) => ({
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        resource: observation(i, patient.id), request: { method: 'POST', url: 'Observation' },
      })),
    });
    const bundles = await run('transaction of 100', {
      url: fhir.baseUrl, connections: 4, method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: bundle,
    });

    // 4. the same read with the in-memory cache of current versions off: every read hits SQLite.
    //    A DATA_DIR serves one process at a time (its lock), so the first server stops first.
    await fhir.stop();
    const uncached = await startFhirServer(path.join(work, 'data'), path.join(work, 'requests-uncached.log'), { ...core, READ_CACHE_ENTRIES: '0' });
    children.push(uncached.child);
    const uncachedRead = await run('FHIR read by id, cache off', { url: readUrl.replace(fhir.baseUrl, uncached.baseUrl), connections: 32 });
    await uncached.stop();

    const readRatio = fhirReadMean / bareRead.requests.average;
    const resourcesPerSecond = bundles.requests.average * 100;
    const report = {
      date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, durationSeconds: duration,
      read: {
        fhirReqPerSec: fhirReadMean, bareKoaReqPerSec: bareRead.requests.average, ratio: readRatio, p99Ms: fhirRead!.latency.p99,
        rounds: { bare: bareRounds, fhir: fhirRounds },
        cacheOffReqPerSec: uncachedRead.requests.average, cacheOffRatio: uncachedRead.requests.average / bareRead.requests.average,
      },
      createObservation: { reqPerSec: creates.requests.average, p50Ms: creates.latency.p50, p99Ms: creates.latency.p99 },
      transaction100: { bundlesPerSec: bundles.requests.average, resourcesPerSec: resourcesPerSecond, p99Ms: bundles.latency.p99 },
    };
    const table = [
      '| benchmark | result | target | ratio to target |',
      '|---|---|---|---|',
      `| read by id (32 conn., mean of ${readRounds} alternating rounds) | ${fhirReadMean.toFixed(0)} req/s vs bare Koa ${bareRead.requests.average.toFixed(0)} req/s = ${(readRatio * 100).toFixed(0)} % (rounds: ${fhirRounds.map((f, i) => `${(f / bareRounds[i]! * 100).toFixed(0)} %`).join(', ')}) | ≥ 60 % of bare Koa | ${(readRatio / 0.6).toFixed(2)} |`,
      `| read by id, read cache off (32 conn.) | ${uncachedRead.requests.average.toFixed(0)} req/s = ${(uncachedRead.requests.average / bareRead.requests.average * 100).toFixed(0)} % of bare Koa | (informational) | |`,
      `| create Observation (32 conn.) | ${creates.requests.average.toFixed(0)} /s (p99 ${creates.latency.p99} ms) | ≥ 2,500 /s | ${(creates.requests.average / 2500).toFixed(2)} |`,
      `| transaction, 100 resources (4 conn.) | ${resourcesPerSecond.toFixed(0)} resources/s (p99 ${bundles.latency.p99} ms per bundle) | ≥ 5,000 /s | ${(resourcesPerSecond / 5000).toFixed(2)} |`,
    ].join('\n');
    const out = path.join(repoRoot, 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'rest-core.json'), `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(path.join(out, 'rest-core.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
