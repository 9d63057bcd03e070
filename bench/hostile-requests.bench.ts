/**
 * Hostile-request benchmark (issue 10, "No stalls" and "Performance"): while a client reads one
 * Patient by id (autocannon, 8 connections), each request that stalled the server in the outside
 * review is sent once, one after another. For each: its status and answer time (target: answered
 * within 2 s, with a 4xx where a limit applies) and the reads' p50/p99 while it ran (target: p99
 * under 100 ms). A benchmark reports, it does not fail: every hostile request has a timeout (60 s
 * by default) and a timeout is recorded as such; after one, the next waits (bounded) until the
 * server answers a read again. Prints the table and writes bench/results/hostile-requests.md.
 * The server runs with its defaults (safe-harbor de-identification, the ledger on).
 * Usage: npm run bench:hostile  [-- --timeout 60 --connections 8 --repeat 1]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { postJsonText } from './support/closed-loop-clients.js';
import { benchObservation, numberArg, postJson, repoRoot, startFhirServer } from './support/fhir-server-process.js';

const timeoutSeconds = numberArg('timeout', 60);
const readConnections = numberArg('connections', 8);
const repeat = numberArg('repeat', 1);
const answerTargetMs = 2000;
const readP99TargetMs = 100;

interface HostileRequest {
  name: string;
  /** A configurable limit applies: the answer should be a 4xx, not a slow 2xx or a 500. */
  limitApplies: boolean;
  method: 'GET' | 'POST';
  /** Relative to the FHIR base, e.g. `Observation?code=c0`. */
  path: string;
  contentType?: string;
  body?: string;
}

interface Outcome {
  status: number | 'timeout' | 'error';
  answerMs: number;
  diagnostics: string;
}

interface ReadFigures { requests: number; p50Ms: number; p99Ms: number; maxMs: number; non2xx: number; errors: number; timeouts: number }

/** Reads that did not succeed, by kind (autocannon counts a connection reset as an error). */
function failedReads(reads: ReadFigures): string {
  const kinds = [[reads.non2xx, 'non-2xx'], [reads.errors, 'errors'], [reads.timeouts, 'timeouts']] as const;
  return kinds.filter(([n]) => n > 0).map(([n, kind]) => `, ${n} ${kind}`).join('');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hostileRequests(patientId: string, sortableObservationParams: string[]): HostileRequest[] {
  const codes = Array.from({ length: 1000 }, (_, i) => `c${i}`);
  const formPair = (i: number) => `code=http%3A%2F%2Floinc.org%7Cc${i}`;
  const formParts: string[] = [];
  for (let i = 0, bytes = 0; bytes < 10 * 1024 * 1024; i++) {
    const pair = formPair(i);
    formParts.push(pair);
    bytes += pair.length + 1;
  }
  const observations = (n: number) => Array.from({ length: n }, (_, i) => ({
    fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    resource: benchObservation(i, patientId), request: { method: 'POST', url: 'Observation' },
  }));
  return [
    {
      name: 'Patient with 20,000 identifiers', limitApplies: true, method: 'POST', path: 'Patient', contentType: 'application/fhir+json',
      body: JSON.stringify({
        resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01',
        identifier: Array.from({ length: 20_000 }, (_, i) => ({ system: 'http://hospital.example/mrn', value: `MRN-${process.pid}-${i}` })),
      }),
    },
    {
      name: '200 `_sort` keys', limitApplies: true, method: 'GET',
      path: `Observation?_sort=${Array.from({ length: 200 }, (_, i) => `${i % 2 ? '-' : ''}${sortableObservationParams[i % sortableObservationParams.length]}`).join(',')}`,
    },
    {
      name: `10 MB form body to Observation/_search (${formParts.length.toLocaleString('en')} \`code\` pairs)`, limitApplies: true,
      method: 'POST', path: 'Observation/_search', contentType: 'application/x-www-form-urlencoded', body: formParts.join('&'),
    },
    {
      name: 'batch of 10,000 GET entries', limitApplies: true, method: 'POST', path: '', contentType: 'application/fhir+json',
      body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: Array.from({ length: 10_000 }, () => ({ request: { method: 'GET', url: `Patient/${patientId}` } })) }),
    },
    { name: '`Observation?code=c0&…&code=c999` (1,000 AND)', limitApplies: true, method: 'GET', path: `Observation?${codes.map((c) => `code=${c}`).join('&')}` },
    { name: '`Observation?code=c0,…,c999` (1,000 OR)', limitApplies: true, method: 'GET', path: `Observation?code=${codes.join(',')}` },
    {
      name: 'transaction of 400 Observations', limitApplies: false, method: 'POST', path: '', contentType: 'application/fhir+json',
      body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: observations(400) }),
    },
  ];
}

async function sendHostile(baseUrl: string, request: HostileRequest): Promise<Outcome> {
  const started = performance.now();
  try {
    const response = await fetch(request.path ? `${baseUrl}/${request.path}` : baseUrl, {
      method: request.method, body: request.body, signal: AbortSignal.timeout(timeoutSeconds * 1000),
      headers: request.contentType ? { 'content-type': request.contentType } : {},
    });
    const text = await response.text();
    const answerMs = performance.now() - started;
    let diagnostics = '';
    if (response.status >= 400) {
      try {
        const issue = JSON.parse(text).issue?.[0];
        diagnostics = String(issue?.diagnostics ?? issue?.code ?? '');
      } catch { diagnostics = text; }
    }
    return { status: response.status, answerMs, diagnostics: diagnostics.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 90) };
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError';
    return { status: timedOut ? 'timeout' : 'error', answerMs: performance.now() - started, diagnostics: timedOut ? `no answer within ${timeoutSeconds} s` : String((error as Error).message).slice(0, 90) };
  }
}

/** Starts reads by id; `finish()` stops them and returns their figures. */
function startReads(readUrl: string): { finish(): Promise<ReadFigures> } {
  let instance: autocannon.Instance | undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon({ url: readUrl, connections: readConnections, duration: 2 * timeoutSeconds + 30, timeout: timeoutSeconds },
      (error, result) => (error ? reject(error) : resolve(result)));
  });
  return {
    async finish() {
      instance!.stop();
      const result = await done;
      return {
        requests: result.requests.total, p50Ms: result.latency.p50, p99Ms: result.latency.p99, maxMs: result.latency.max,
        non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts,
      };
    },
  };
}

/**
 * Waits (bounded) until a read is answered, so reads held up by a stall are answered and counted
 * before the reads stop; resolves to how long that took.
 */
async function untilReadAnswered(readUrl: string): Promise<number> {
  const started = performance.now();
  for (let attempt = 0; attempt < 10 && performance.now() - started < timeoutSeconds * 1000; attempt++) {
    try {
      const response = await fetch(readUrl, { signal: AbortSignal.timeout(timeoutSeconds * 1000) });
      await response.arrayBuffer();
      break;
    } catch { /* timed out or refused: try again, at most 10 times and for one timeout in all */ }
  }
  return performance.now() - started;
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-hostile-bench-'));
  const server = await startFhirServer(path.join(work, 'data'), path.join(work, 'requests.log'));
  const rows: string[] = [];
  const records: unknown[] = [];
  try {
    const patient = await postJson(`${server.baseUrl}/Patient`, { resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01', name: [{ family: 'Bench' }] });
    // Some Observations for the searches to sort and filter: three transactions of 400.
    const seed = JSON.stringify({
      resourceType: 'Bundle', type: 'transaction',
      entry: Array.from({ length: 400 }, (_, i) => ({ resource: benchObservation(i, patient.id), request: { method: 'POST', url: 'Observation' } })),
    });
    for (let i = 0; i < 3; i++) {
      if (await postJsonText(server.baseUrl, seed, AbortSignal.timeout(timeoutSeconds * 1000)) !== 200) throw new Error('seeding failed');
    }
    // The sortable Observation parameters, from the server's own CapabilityStatement.
    const capability = await (await fetch(`${server.baseUrl}/metadata`)).json() as any;
    const sortable = (capability.rest[0].resource.find((r: any) => r.type === 'Observation').searchParam as any[])
      .filter((p) => p.type !== 'composite' && p.type !== 'special' && !p.name.startsWith('_')).map((p) => p.name as string);
    const readUrl = `${server.baseUrl}/Patient/${patient.id}`;

    const quiet = startReads(readUrl);
    await sleep(3000);
    const baseline = await quiet.finish();
    process.stderr.write(`reads alone: p50 ${baseline.p50Ms} ms, p99 ${baseline.p99Ms} ms\n`);
    rows.push(`| (none: reads alone, 3 s) | | | | | ${baseline.p50Ms} / ${baseline.p99Ms} / ${baseline.maxMs} ms${failedReads(baseline)} | |`);

    for (const request of hostileRequests(patient.id, sortable)) {
      for (let round = 1; round <= repeat; round++) {
        const reads = startReads(readUrl);
        const outcome = await sendHostile(server.baseUrl, request);
        // Keep reading until the server answers a read again, then a little longer, and at
        // least one second in all: reads that a stall held up are then answered and counted.
        const recoveryMs = await untilReadAnswered(readUrl);
        await sleep(Math.max(300, 1000 - outcome.answerMs - recoveryMs));
        const during = await reads.finish();
        const statusOk = request.limitApplies
          ? typeof outcome.status === 'number' && outcome.status >= 400 && outcome.status < 500
          : typeof outcome.status === 'number' && outcome.status < 300;
        const met = statusOk && outcome.answerMs <= answerTargetMs && during.p99Ms < readP99TargetMs;
        process.stderr.write(`${request.name}: ${outcome.status} in ${outcome.answerMs.toFixed(0)} ms; reads p99 ${during.p99Ms} ms\n`);
        records.push({ request: request.name, round, limitApplies: request.limitApplies, ...outcome, reads: during, recoveryMs, met });
        rows.push(`| ${request.name}${repeat > 1 ? ` (#${round})` : ''} | ${outcome.status} | ${(outcome.answerMs / 1000).toFixed(2)} s | ${request.limitApplies ? '4xx' : '2xx'} | ${outcome.diagnostics} | ${during.p50Ms} / ${during.p99Ms} / ${during.maxMs} ms (${during.requests} reads${failedReads(during)}) | ${met ? 'met' : 'not met'} |`);
      }
    }
    const table = [
      `Reads by id with ${readConnections} connections while each request runs; safe-harbor and ledger on; ${new Date().toISOString()}, ${os.cpus().length} CPUs.`,
      `Targets: answered within ${answerTargetMs / 1000} s, a 4xx where a limit applies, the reads' p99 under ${readP99TargetMs} ms.`,
      '',
      '| hostile request | status | answered in | expected | diagnostics | reads p50 / p99 / max | targets |',
      '|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    const out = path.join(repoRoot, 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'hostile-requests.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, readConnections, timeoutSeconds, readsAlone: baseline, results: records }, null, 2)}\n`);
    fs.writeFileSync(path.join(out, 'hostile-requests.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
